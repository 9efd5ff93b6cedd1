//! One run: a server started, `examples/loadgen` run against it, its JSON report and the
//! server's reactor counters read back, the server stopped.

use std::fs;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::plan::{Cell, Order, Plan};
use crate::servers::{start_server, Env};
use crate::support::number;

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Measured {
    pub rps: f64,
    pub cpu_us: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub server_util: f64,
    pub loadgen_util: f64,
    pub exchanges: u64,
    pub stats: Option<Stats>,
}

pub type Outcome = Result<Measured, String>;

/// The counters of `rawloop::Stats` that the report uses.
#[derive(Copy, Clone, Debug)]
pub struct Stats {
    pub rounds: u64,
    pub events: u64,
    pub dispatched: u64,
    pub registered: u64,
    pub closed: u64,
}

/// Parses the `reactor stats: Stats { rounds: 1, ... }` line rawloop's echo_server prints.
fn parse_stats(text: &str) -> Option<Stats> {
    let line = text.lines().find(|l| l.starts_with("reactor stats:"))?;
    let field = |name: &str| -> Option<u64> {
        let rest = line.split(&format!("{name}: ")).nth(1)?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some(Stats {
        rounds: field("rounds")?,
        events: field("events")?,
        dispatched: field("dispatched")?,
        registered: field("registered")?,
        closed: field("closed")?,
    })
}

pub fn measured(report: &Value, stats: Option<Stats>) -> Result<Measured, String> {
    Ok(Measured {
        rps: number(report, "requests_per_s")?,
        cpu_us: number(report, "server_cpu_per_request_us")?,
        p50: number(report, "p50_us")?,
        p99: number(report, "p99_us")?,
        p999: number(report, "p999_us")?,
        server_util: number(report, "server_cpu_utilisation")?,
        loadgen_util: number(report, "loadgen_cpu_utilisation")?,
        exchanges: number(report, "exchanges_total")? as u64,
        stats,
    })
}

/// One server, one load, start to stop.
pub fn run_once(env: &Env, server: Command, what: &str, load: &[String]) -> Outcome {
    let mut running = start_server(env, server, what)?;
    let report = running.load(env, load);
    let stopped = running.guard.stop(libc::SIGTERM, Duration::from_secs(10));
    let report = report?;
    stopped?;
    let stats = parse_stats(&fs::read_to_string(&running.err_path).unwrap_or_default());
    measured(&report, stats)
}

pub fn echo_load(plan: &Plan, cell: Cell) -> Vec<String> {
    let mut load: Vec<String> = [
        "--mode".to_string(),
        "echo".into(),
        "--size".into(),
        cell.size.to_string(),
        "--connections".into(),
        cell.active.to_string(),
        "--idle".into(),
        cell.idle.to_string(),
        "--warmup".into(),
        plan.warmup.to_string(),
        "--duration".into(),
        plan.duration.to_string(),
    ]
    .into();
    if cell.order == Order::ActiveFirst {
        load.push("--active-first".into());
    }
    load
}
