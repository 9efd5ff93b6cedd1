//! The runs: every round, every cell, the servers in turn; and the Message protocol through
//! `app_server` and the floor server, in turn round by round.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};

use crate::load::{echo_load, run_once, Outcome};
use crate::plan::{BackendName, Cell, MessageServer, Order, Plan, Server, ECHO_REFERENCE};
use crate::servers::Env;
use crate::stats::Runs;

/// (round, server, keep-alive) -> outcome.
pub type MessageMap = BTreeMap<(usize, MessageServer, bool), Outcome>;

pub enum MessageRuns {
    Skipped(String),
    /// The runs, and why the floor was not among them (if it was not).
    Ran(MessageMap, Option<String>),
}

/// Runs every cell of `schedule` with its servers, round after round (A B C ... A B C), and
/// returns the outcomes and every run's raw figures (for `runs.json`).
pub fn echo(
    env: &Env,
    plan: &Plan,
    schedule: &[(Cell, Vec<Server>)],
    started: Instant,
) -> (Runs, Vec<Value>) {
    let mut runs: Runs = BTreeMap::new();
    let mut raw = Vec::new();
    for round in 0..plan.rounds {
        for (cell, servers) in schedule {
            let cell = *cell;
            let order = match cell.order {
                Order::IdleFirst => "",
                Order::ActiveFirst => " active first",
            };
            for &server in servers {
                let name = server.name();
                let outcome =
                    run_once(env, server.command(&env.bin), &name, &echo_load(plan, cell));
                match &outcome {
                Ok(m) => eprintln!(
                    "[{:>5.0} s] round {} {:>5} B {:>3} active {:>5} idle{order} {:<14} {:>8.0} req/s {:>7.2} µs CPU/req (server {:.0}%, loadgen {:.0}%)",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    cell.size,
                    cell.active,
                    cell.idle,
                    name,
                    m.rps,
                    m.cpu_us,
                    m.server_util * 100.0,
                    m.loadgen_util * 100.0
                ),
                Err(e) => eprintln!(
                    "[{:>5.0} s] round {} {:>5} B {:>3} active {:>5} idle{order} {:<14} FAILED: {e}",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    cell.size,
                    cell.active,
                    cell.idle,
                    name
                ),
            }
                raw.push(json!({
                    "round": round + 1, "server": name, "size": cell.size,
                    "active": cell.active, "idle": cell.idle,
                    "active_first": cell.order == Order::ActiveFirst,
                    "result": match &outcome {
                        Ok(m) => json!({
                            "requests_per_s": m.rps, "cpu_per_request_us": m.cpu_us,
                            "p50_us": m.p50, "p99_us": m.p99, "p999_us": m.p999,
                            "server_cpu_utilisation": m.server_util,
                            "loadgen_cpu_utilisation": m.loadgen_util,
                            "exchanges_total": m.exchanges,
                            "reactor_stats": m.stats.map(|s| json!({
                                "rounds": s.rounds, "events": s.events, "dispatched": s.dispatched,
                                "registered": s.registered, "closed": s.closed,
                            })),
                        }),
                        Err(e) => json!({ "error": e }),
                    },
                }));
                runs.insert((round, cell, server), outcome);
            }
        }
    }
    (runs, raw)
}

/// The servers of the Message runs: `app_server` on every rawloop backend, then the floor
/// (when `floor`), then the echo server the keep-alive runs are compared with (when rawloop's
/// epoll backend is among the servers).
pub fn message_servers(plan: &Plan, floor: bool) -> Vec<MessageServer> {
    let mut servers: Vec<MessageServer> = plan
        .servers
        .iter()
        .filter_map(|&s| match s {
            Server::Rawloop(b) => Some(MessageServer::App(b)),
            _ => None,
        })
        .collect();
    if floor {
        servers.push(MessageServer::Floor);
    }
    if servers.contains(&MessageServer::App(BackendName("epoll"))) {
        servers.push(MessageServer::Echo);
    }
    servers
}

/// The load generator's arguments for the Message protocol, 50 connections.
pub fn message_load(plan: &Plan, keep_alive: bool) -> Vec<String> {
    let mut load: Vec<String> = [
        "--mode",
        "message",
        "--connections",
        "50",
        "--warmup",
        &plan.warmup.to_string(),
        "--duration",
        &plan.duration.to_string(),
    ]
    .map(String::from)
    .into();
    if keep_alive {
        load.push("--keep-alive".into());
    }
    load
}

/// `app_server` on every rawloop backend and the floor, one request per connection and
/// keep-alive, and echo_server, in turn, round after round; each mode under one load.
pub fn message(env: &Env, plan: &Plan, floor: bool) -> MessageMap {
    let mut map: MessageMap = BTreeMap::new();
    for round in 0..plan.rounds {
        for s in message_servers(plan, floor) {
            for &keep_alive in s.modes() {
                let mode = if keep_alive {
                    "keep-alive"
                } else {
                    "one per connection"
                };
                let outcome = run_once(
                    env,
                    s.command(&env.bin, keep_alive),
                    &s.name(),
                    &match s {
                        MessageServer::Echo => echo_load(plan, ECHO_REFERENCE),
                        _ => message_load(plan, keep_alive),
                    },
                );
                match &outcome {
                    Ok(m) => eprintln!(
                        "round {} {} {mode}: {:.0} req/s, {:.2} µs CPU/req",
                        round + 1,
                        s.name(),
                        m.rps,
                        m.cpu_us
                    ),
                    Err(e) => eprintln!("round {} {} {mode}: FAILED: {e}", round + 1, s.name()),
                }
                map.insert((round, s, keep_alive), outcome);
            }
        }
    }
    map
}
