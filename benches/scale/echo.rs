//! The echo runs: each server configuration started, made ready, loaded by
//! `examples/loadgen`, its process tree's CPU time read before and after, stopped; the
//! configurations in turn at each connection count, round after round.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::procs::{reaped_children_cpu_s, tree, MachineTime, MachineUse, Snapshot, Used};
use crate::support::{number, parse_port, run_loadgen, Guard};
use crate::{Env, Plan};

/// A server configuration.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Config {
    /// rawloop `echo_server --threads N` (1: one reactor on the main thread).
    Threads(usize),
    /// rawloop `echo_server --processes N` (a supervisor and N worker processes).
    Processes(usize),
    /// tokio's multi-thread runtime with N workers (`peer_tokio_echo ... N`).
    TokioWorkers(usize),
    /// tokio's current-thread runtime (`peer_tokio_echo`), the reference.
    TokioCurrent,
}

impl Config {
    pub fn name(self) -> String {
        match self {
            Config::Threads(n) => format!("rawloop --threads {n}"),
            Config::Processes(n) => format!("rawloop --processes {n}"),
            Config::TokioWorkers(n) => format!("tokio multi-thread, {n} worker{}", plural(n)),
            Config::TokioCurrent => "tokio current-thread".into(),
        }
    }

    /// Worker processes the server forks (its readiness waits for them).
    pub fn children(self) -> usize {
        match self {
            Config::Processes(n) => n,
            _ => 0,
        }
    }

    pub fn command(self, bin: &Path) -> Command {
        let mut cmd;
        match self {
            Config::Threads(n) => {
                cmd = Command::new(bin.join("echo_server"));
                cmd.args(["--backend", "epoll", "--threads", &n.to_string()]);
            }
            Config::Processes(n) => {
                cmd = Command::new(bin.join("echo_server"));
                cmd.args(["--backend", "epoll", "--processes", &n.to_string()]);
            }
            Config::TokioWorkers(_) | Config::TokioCurrent => {
                cmd = Command::new(bin.join("peer_tokio_echo"));
            }
        }
        cmd.args(["127.0.0.1", "0"]);
        if let Config::TokioWorkers(n) = self {
            cmd.arg(n.to_string());
        }
        cmd
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Every configuration, in the order they take turns.
pub fn configs() -> Vec<Config> {
    vec![
        Config::Threads(1),
        Config::Threads(2),
        Config::Processes(1),
        Config::Processes(2),
        Config::TokioWorkers(1),
        Config::TokioWorkers(2),
        Config::TokioCurrent,
    ]
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Measured {
    pub rps: f64,
    /// Server CPU time per request, µs: the whole tree over the whole load-generator run,
    /// divided by every exchange the load generator completed in that run.
    pub cpu_us: f64,
    /// The load generator's own figure: the server's pid alone, over its measured window.
    pub cpu_us_root_only: Option<f64>,
    pub p50: f64,
    pub p99: f64,
    /// Cores the server tree used over the load-generator run.
    pub server_cores: f64,
    /// Cores the load generator used over its measured window.
    pub loadgen_cores: f64,
    /// The machine's busy, interrupt and steal time over the run, in cores.
    pub machine: MachineUse,
    /// Busy time, less steal, that neither the server tree nor the load generator was charged
    /// with: other processes (and ksoftirqd), in cores.
    pub other_cores: f64,
    /// Context switches of the server's threads per request.
    pub switches_per_request: f64,
    /// The two busiest threads' shares of the server's CPU time.
    pub top_shares: (f64, f64),
    pub threads: Vec<(String, f64)>,
    pub processes: usize,
    /// The tree's CPU seconds, by process (`cpu_us`'s source) and summed thread by thread
    /// (a cross-check: the two differ only by tick rounding unless a thread or process ended).
    pub cpu_s: f64,
    pub thread_sum_cpu_s: f64,
}

pub type Outcome = Result<Measured, String>;

/// (round, connections, config) -> outcome.
pub type Runs = BTreeMap<(usize, usize, Config), Outcome>;

/// A server started, listening, with its worker processes forked.
pub struct Running {
    pub guard: Guard,
    pub port: u16,
}

pub fn start(env: &Env, config: Config) -> Result<Running, String> {
    let what = config.name();
    let out_path = env.scratch.join("server.out");
    let err_path = env.scratch.join("server.err");
    let out = fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let mut cmd = config.command(&env.bin);
    cmd.env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let mut guard = Guard::spawn(cmd, &what, None)?;
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let text = fs::read_to_string(&out_path).unwrap_or_default();
        let port = text.lines().next().and_then(parse_port);
        if let Some(port) = port {
            if tree(guard.pid()).len() > config.children() {
                // Let the reactors reach their first wait.
                sleep(Duration::from_millis(50));
                return Ok(Running { guard, port });
            }
        }
        if let Ok(Some(status)) = guard.child.try_wait() {
            let err = fs::read_to_string(&err_path).unwrap_or_default();
            return Err(format!(
                "{what} exited ({status}) before listening: {}",
                err.trim()
            ));
        }
        if Instant::now() > end {
            return Err(format!(
                "{what} was not listening with its workers within 10 s"
            ));
        }
        sleep(Duration::from_millis(5));
    }
}

pub fn echo_load(plan: &Plan, connections: usize, warmup: f64, duration: f64) -> Vec<String> {
    [
        "--mode".to_string(),
        "echo".into(),
        "--size".into(),
        plan.size.to_string(),
        "--connections".into(),
        connections.to_string(),
        "--warmup".into(),
        warmup.to_string(),
        "--duration".into(),
        duration.to_string(),
    ]
    .into()
}

/// One server, one load, start to stop.
pub fn run_once(env: &Env, plan: &Plan, config: Config, connections: usize) -> Outcome {
    let mut running = start(env, config)?;
    let root = running.guard.pid();
    let machine0 = MachineTime::read();
    let loadgen0 = reaped_children_cpu_s();
    let before = Snapshot::take(root);
    let t0 = Instant::now();
    let load = echo_load(plan, connections, plan.warmup, plan.duration);
    // run_loadgen reaps the load generator, so its CPU time is in the children's usage after.
    let report = run_loadgen(&env.bin, &env.scratch, running.port, root, &load, None);
    let wall = t0.elapsed().as_secs_f64();
    let used = Snapshot::take(root).since(&before);
    let loadgen_cpu_s = reaped_children_cpu_s() - loadgen0;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let machine = MachineTime::read().since(&machine0, cpus);
    let stopped = running.guard.stop(libc::SIGTERM, Duration::from_secs(15));
    let report = report?;
    stopped?;
    let mut m = measured(&report, &used, wall)?;
    m.machine = machine;
    // Softirq time is inside the tasks' own figures where the kernel charges it to the task it
    // interrupts (tick-based accounting without IRQ_TIME_ACCOUNTING); steal is nobody's.
    m.other_cores = (machine.busy - machine.steal - (used.cpu_s + loadgen_cpu_s) / wall).max(0.0);
    Ok(m)
}

fn measured(report: &Value, used: &Used, wall: f64) -> Outcome {
    let exchanges = number(report, "exchanges_total")?;
    if exchanges <= 0.0 {
        return Err("no exchange completed".into());
    }
    let total: f64 = used.threads.iter().map(|t| t.1.max(0.0)).sum();
    let share = |i: usize| {
        used.threads
            .get(i)
            .filter(|_| total > 0.0)
            .map_or(0.0, |t| t.1.max(0.0) / total)
    };
    Ok(Measured {
        rps: number(report, "requests_per_s")?,
        cpu_us: used.cpu_s * 1e6 / exchanges,
        cpu_us_root_only: report
            .get("server_cpu_per_request_us")
            .and_then(Value::as_f64),
        p50: number(report, "p50_us")?,
        p99: number(report, "p99_us")?,
        server_cores: used.cpu_s / wall,
        loadgen_cores: number(report, "loadgen_cpu_utilisation")?,
        machine: MachineUse::default(),
        other_cores: 0.0,
        switches_per_request: used.switches as f64 / exchanges,
        top_shares: (share(0), share(1)),
        threads: used.threads.clone(),
        processes: used.processes,
        cpu_s: used.cpu_s,
        thread_sum_cpu_s: used.threads.iter().map(|t| t.1).sum(),
    })
}

/// Every configuration at every connection count, round after round (A B C ... A B C).
pub fn rounds(env: &Env, plan: &Plan, configs: &[Config], started: Instant) -> Runs {
    let mut runs = Runs::new();
    for round in 0..plan.rounds {
        for &connections in &plan.connections {
            for &config in configs {
                let outcome = run_once(env, plan, config, connections);
                match &outcome {
                    Ok(m) => eprintln!(
                        "[{:>4.0} s] round {} {:>3} conns {:<30} {:>8.0} req/s {:>6.2} µs CPU/req (server {:.2} cores, loadgen {:.2}, top threads {:.0}%/{:.0}%)",
                        started.elapsed().as_secs_f64(),
                        round + 1,
                        connections,
                        config.name(),
                        m.rps,
                        m.cpu_us,
                        m.server_cores,
                        m.loadgen_cores,
                        m.top_shares.0 * 100.0,
                        m.top_shares.1 * 100.0,
                    ),
                    Err(e) => eprintln!(
                        "[{:>4.0} s] round {} {:>3} conns {:<30} FAILED: {e}",
                        started.elapsed().as_secs_f64(),
                        round + 1,
                        connections,
                        config.name()
                    ),
                }
                runs.insert((round, connections, config), outcome);
            }
        }
    }
    runs
}

/// Every run's figures, for `runs.json`.
pub fn raw(runs: &Runs) -> Value {
    Value::Array(
        runs.iter()
            .map(|((round, connections, config), outcome)| {
                json!({
                    "round": round + 1,
                    "connections": connections,
                    "server": config.name(),
                    "result": match outcome {
                        Ok(m) => json!({
                            "requests_per_s": m.rps,
                            "cpu_per_request_us": m.cpu_us,
                            "loadgen_root_pid_cpu_per_request_us": m.cpu_us_root_only,
                            "p50_us": m.p50,
                            "p99_us": m.p99,
                            "server_cores": m.server_cores,
                            "loadgen_cores": m.loadgen_cores,
                            "machine_busy_cores": m.machine.busy,
                            "machine_irq_softirq_cores": m.machine.irq,
                            "machine_steal_cores": m.machine.steal,
                            "other_cores": m.other_cores,
                            "context_switches_per_request": m.switches_per_request,
                            "processes": m.processes,
                            "server_cpu_s": m.cpu_s,
                            "server_cpu_s_thread_sum": m.thread_sum_cpu_s,
                            "threads_cpu_s": m.threads.iter()
                                .map(|(c, s)| json!([c, s])).collect::<Vec<_>>(),
                        }),
                        Err(e) => json!({ "error": e }),
                    },
                })
            })
            .collect(),
    )
}
