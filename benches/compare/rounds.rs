//! The runs: every round, every cell, the servers in turn; and the Message protocol through
//! `app_server`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use crate::load::{echo_load, run_once, Outcome};
use crate::plan::{Cell, Order, Plan, Server};
use crate::servers::Env;
use crate::stats::Runs;

/// (round, backend, keep-alive) -> outcome.
pub type MessageMap = BTreeMap<(usize, String, bool), Outcome>;

pub enum MessageRuns {
    Skipped(String),
    Ran(MessageMap),
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

/// `app_server` on every rawloop backend, one request per connection and keep-alive, round
/// after round.
pub fn message(env: &Env, plan: &Plan) -> MessageMap {
    let mut map: MessageMap = BTreeMap::new();
    for round in 0..plan.rounds {
        for &s in &plan.servers {
            let Server::Rawloop(backend) = s else {
                continue;
            };
            for keep_alive in [false, true] {
                let mut cmd = Command::new(env.bin.join("app_server"));
                cmd.args(["--backend", backend.0]);
                if keep_alive {
                    cmd.arg("--keep-alive");
                }
                cmd.args(["127.0.0.1", "0"]);
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
                let outcome = run_once(env, cmd, "app_server", &load);
                match &outcome {
                    Ok(m) => eprintln!(
                        "round {} app_server {} {}: {:.0} req/s, {:.2} µs CPU/req",
                        round + 1,
                        backend.0,
                        if keep_alive {
                            "keep-alive"
                        } else {
                            "one per connection"
                        },
                        m.rps,
                        m.cpu_us
                    ),
                    Err(e) => {
                        eprintln!("round {} app_server {}: FAILED: {e}", round + 1, backend.0)
                    }
                }
                map.insert((round, backend.0.to_string(), keep_alive), outcome);
            }
        }
    }
    map
}
