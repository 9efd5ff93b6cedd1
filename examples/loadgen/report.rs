//! What a run measures and how it is reported: the totals, CPU time from `/proc`, the JSON
//! object and its text form.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::workload::Workload;
use crate::{Args, Mode};

/// What was measured.
pub struct Totals {
    /// Requests completed in the measured window.
    pub measured: u64,
    /// Every request completed (idle pings, warmup, window, drain).
    pub exchanges: u64,
    pub connects: u64,
    pub bytes_checked: u64,
    pub latency: Histogram<u64>,
}

/// User + system CPU time of process `pid` so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')').ok_or("malformed stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `rest` starts at field 3.
    let ticks = |i: usize| -> Result<u64, String> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("no field {i} in /proc/{pid}/stat"))
    };
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64;
    let total = ticks(14)? + ticks(15)?;
    Ok(Duration::from_nanos(total * 1_000_000_000 / hz))
}

/// The result of a run as one JSON object: what was asked, what was measured.
pub fn to_json(
    args: &Args,
    workload: &Workload,
    t: &Totals,
    elapsed: Duration,
    server_cpu: Option<Duration>,
    own_cpu: Duration,
) -> Value {
    let secs = elapsed.as_secs_f64();
    let us = |q: f64| t.latency.value_at_quantile(q) as f64 / 1000.0;
    let per_request =
        |cpu: Duration| (t.measured > 0).then(|| cpu.as_secs_f64() * 1e6 / t.measured as f64);
    json!({
        "mode": match args.mode { Mode::Echo => "echo", Mode::Message => "message" },
        "keep_alive": workload.keep_alive(),
        "connections": args.connections,
        "idle": args.idle,
        "active_first": args.active_first,
        "size": match args.mode { Mode::Echo => args.size, Mode::Message => workload.request(0, 0).len() },
        "seconds": secs,
        "requests": t.measured,
        "requests_per_s": t.measured as f64 / secs,
        "p50_us": us(0.5),
        "p99_us": us(0.99),
        "p999_us": us(0.999),
        "max_us": t.latency.max() as f64 / 1000.0,
        "server_cpu_s": server_cpu.map(|c| c.as_secs_f64()),
        "server_cpu_per_request_us": server_cpu.and_then(per_request),
        "server_cpu_utilisation": server_cpu.map(|c| c.as_secs_f64() / secs),
        "loadgen_cpu_utilisation": own_cpu.as_secs_f64() / secs,
        "exchanges_total": t.exchanges,
        "connects_total": t.connects,
        "bytes_checked": t.bytes_checked,
    })
}

/// Prints the result of [`to_json`] as text.
pub fn print_text(r: &Value) {
    println!(
        "{} requests in {:.2} s: {:.0} requests/s; latency p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us",
        r["requests"], r["seconds"].as_f64().unwrap_or(0.0), r["requests_per_s"].as_f64().unwrap_or(0.0),
        r["p50_us"].as_f64().unwrap_or(0.0), r["p99_us"].as_f64().unwrap_or(0.0), r["p999_us"].as_f64().unwrap_or(0.0),
    );
    match r["server_cpu_per_request_us"].as_f64() {
        Some(cpu) => println!(
            "server CPU {:.2} us per request ({:.0}% of a core); load generator {:.0}% of a core",
            cpu,
            r["server_cpu_utilisation"].as_f64().unwrap_or(0.0) * 100.0,
            r["loadgen_cpu_utilisation"].as_f64().unwrap_or(0.0) * 100.0
        ),
        None => println!("server CPU not measured (give --server-pid)"),
    }
    println!(
        "{} bytes received and checked, {} exchanges, {} connects",
        r["bytes_checked"], r["exchanges_total"], r["connects_total"]
    );
}
