//! Whether a worker touches a shared lock per request, measured: `perf stat --per-thread`
//! attached to every thread of the server's process tree for one load-generator run, counting
//!
//! - `syscalls:sys_enter_futex`: a Rust `Mutex` (and `Condvar`, thread parking) makes no
//!   system call when it is free, and a futex wait or wake when another thread holds it or
//!   waits for it, so futex calls per request are what lock contention in user space costs;
//! - `lock:contention_begin`: a kernel lock (spinlock, mutex, rwsem) found held, e.g. a
//!   shared accept queue, file table or epoll instance;
//! - `context-switches` and `cpu-migrations`;
//! - `epoll_wait` and `epoll_pwait` calls: requests per wait say how much work each round
//!   found, which is what a second reactor sharing the same load dilutes.
//!
//! Tracepoints count in the kernel without stopping the traced threads (unlike strace, which
//! stops them at every traced system call and so changes the timing being measured). tokio's
//! multi-thread runtime, whose workers park and wake each other through futexes, is measured
//! the same way as the control: it shows that the method sees such traffic when there is some.

use std::collections::BTreeMap;
use std::fs;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use serde_json::{json, Value};

use crate::echo::{echo_load, start, Config};
use crate::procs::{tree, Snapshot};
use crate::support::{number, run_loadgen, Guard};
use crate::{Env, Plan};

pub const EVENTS: [&str; 6] = [
    "syscalls:sys_enter_futex",
    "lock:contention_begin",
    "context-switches",
    "cpu-migrations",
    "syscalls:sys_enter_epoll_wait",
    "syscalls:sys_enter_epoll_pwait",
];

pub fn configs() -> [Config; 4] {
    [
        Config::Threads(1),
        Config::Threads(2),
        Config::Processes(2),
        Config::TokioWorkers(2),
    ]
}

/// One traced run: per thread (`comm-tid`), per event, the count; and the exchanges served.
#[derive(Clone, Debug)]
pub struct Traced {
    pub threads: BTreeMap<String, BTreeMap<String, u64>>,
    pub exchanges: u64,
    pub rps: f64,
    /// The two busiest threads' shares of the server's CPU time in the run: with two workers,
    /// whether both had work.
    pub top_shares: (f64, f64),
}

impl Traced {
    pub fn total(&self, event: &str) -> u64 {
        self.threads.values().filter_map(|e| e.get(event)).sum()
    }

    pub fn per_request(&self, event: &str) -> f64 {
        self.total(event) as f64 / self.exchanges.max(1) as f64
    }

    /// Selector waits (epoll_wait and epoll_pwait).
    pub fn waits(&self) -> u64 {
        self.total(EVENTS[4]) + self.total(EVENTS[5])
    }
}

pub type Results = Vec<(Config, Result<Traced, String>)>;

fn traced_run(env: &Env, plan: &Plan, config: Config) -> Result<Traced, String> {
    let mut running = start(env, config)?;
    let root = running.guard.pid();
    let pids: Vec<String> = tree(root).iter().map(u32::to_string).collect();
    let out = env.scratch.join("perf.csv");
    let _ = fs::remove_file(&out);
    let mut cmd = Command::new("perf");
    cmd.args(["stat", "-x", ",", "--per-thread", "-e", &EVENTS.join(",")])
        .args(["-p", &pids.join(","), "-o"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut perf = Guard::spawn(cmd, "perf stat", None)?;
    // perf prints nothing until it stops; give it time to open its counters.
    sleep(Duration::from_millis(500));
    if let Ok(Some(status)) = perf.child.try_wait() {
        let mut err = String::new();
        if let Some(mut e) = perf.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        return Err(format!(
            "perf stat exited ({status}) before the load: {}",
            err.trim().lines().next().unwrap_or("")
        ));
    }
    let before = Snapshot::take(root);
    let load = echo_load(plan, 50, plan.warmup, plan.duration.min(3.0));
    let report = run_loadgen(&env.bin, &env.scratch, running.port, root, &load, None);
    let used = Snapshot::take(root).since(&before);
    let stopped = perf.stop(libc::SIGINT, Duration::from_secs(20));
    let _ = running.guard.stop(libc::SIGTERM, Duration::from_secs(15));
    let report = report?;
    stopped?;
    let text = fs::read_to_string(&out).map_err(|e| format!("perf output: {e}"))?;
    let mut threads: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        if line.starts_with('#') || f.len() < 4 {
            continue;
        }
        let Some(event) = EVENTS.iter().find(|e| f[3] == **e) else {
            continue;
        };
        // "<not counted>": the thread ran nothing while counted.
        let count = f[1].trim().parse::<u64>().unwrap_or(0);
        threads
            .entry(f[0].to_string())
            .or_default()
            .insert(event.to_string(), count);
    }
    if threads.is_empty() {
        return Err(format!("no counts in perf's output: {}", text.trim()));
    }
    let total: f64 = used.threads.iter().map(|t| t.1.max(0.0)).sum();
    let share = |i: usize| {
        used.threads
            .get(i)
            .filter(|_| total > 0.0)
            .map_or(0.0, |t| t.1.max(0.0) / total)
    };
    Ok(Traced {
        threads,
        exchanges: number(&report, "exchanges_total")? as u64,
        rps: number(&report, "requests_per_s")?,
        top_shares: (share(0), share(1)),
    })
}

/// Where the kernel lock contention of rawloop's worker threads comes from: `perf record -a -g
/// -e lock:contention_begin` during a load of `--threads 2`, each sample of the server's
/// threads attributed to the first function on its stack outside the lock's own code.
#[derive(Clone, Debug, Default)]
pub struct Attribution {
    pub samples: u64,
    /// (function, samples), most first.
    pub sites: Vec<(String, u64)>,
}

fn lock_internal(sym: &str) -> bool {
    [
        "spin_lock",
        "mutex_lock",
        "rwsem",
        "down_read",
        "down_write",
        "lock_acquire",
    ]
    .iter()
    .any(|k| sym.contains(k))
}

pub fn attribute(env: &Env, plan: &Plan) -> Result<Attribution, String> {
    let mut running = start(env, Config::Threads(2))?;
    let root = running.guard.pid();
    let threads: std::collections::BTreeSet<u32> = tree(root).into_iter().collect();
    let data = env.scratch.join("lock.data");
    let seconds = plan.warmup + plan.duration.min(3.0);
    let mut cmd = Command::new("perf");
    cmd.args(["record", "-a", "-g", "-e", "lock:contention_begin", "-o"])
        .arg(&data)
        .args(["--", "sleep", &format!("{seconds}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut perf = Guard::spawn(cmd, "perf record", None)?;
    let load = echo_load(plan, 50, plan.warmup, plan.duration.min(3.0));
    let report = run_loadgen(&env.bin, &env.scratch, running.port, root, &load, None);
    let recorded = perf.wait(Duration::from_secs_f64(seconds + 30.0));
    let _ = running.guard.stop(libc::SIGTERM, Duration::from_secs(15));
    report?;
    let status = recorded?;
    if !status.success() {
        return Err(format!("perf record failed ({status})"));
    }
    let script = Command::new("perf")
        .args(["script", "-F", "comm,pid,tid,ip,sym", "-i"])
        .arg(&data)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("perf script: {e}"))?;
    let text = String::from_utf8_lossy(&script.stdout);
    let mut sites: BTreeMap<String, u64> = BTreeMap::new();
    let mut samples = 0;
    // Samples are blank-line separated: "comm pid/tid", then one "\taddr sym" line per frame.
    for sample in text.split("\n\n") {
        let mut lines = sample.lines().filter(|l| !l.trim().is_empty());
        let Some(head) = lines.next() else { continue };
        let pid = head
            .split_whitespace()
            .find_map(|f| f.split_once('/'))
            .and_then(|(p, _)| p.parse::<u32>().ok());
        if !pid.is_some_and(|p| threads.contains(&p)) {
            continue;
        }
        samples += 1;
        let site = lines
            .filter_map(|l| l.split_whitespace().nth(1))
            .find(|sym| !lock_internal(sym))
            .unwrap_or("[unknown]");
        *sites.entry(site.to_string()).or_default() += 1;
    }
    let mut sites: Vec<(String, u64)> = sites.into_iter().collect();
    sites.sort_by_key(|s| std::cmp::Reverse(s.1));
    Ok(Attribution { samples, sites })
}

pub fn check(env: &Env, plan: &Plan) -> Results {
    configs()
        .into_iter()
        .map(|config| {
            let t = traced_run(env, plan, config);
            match &t {
                Ok(t) => eprintln!(
                    "perf {}: {} futex calls, {} kernel lock contentions, {} context switches, {} epoll waits in {} requests",
                    config.name(),
                    t.total(EVENTS[0]),
                    t.total(EVENTS[1]),
                    t.total(EVENTS[2]),
                    t.waits(),
                    t.exchanges
                ),
                Err(e) => eprintln!("perf {}: {e}", config.name()),
            }
            (config, t)
        })
        .collect()
}

pub fn raw(results: &Results) -> Value {
    Value::Array(
        results
            .iter()
            .map(|(config, t)| {
                json!({
                    "server": config.name(),
                    "result": match t {
                        Ok(t) => json!({
                            "exchanges": t.exchanges,
                            "requests_per_s": t.rps,
                            "per_thread": t.threads,
                            "top_two_threads_cpu_share": [t.top_shares.0, t.top_shares.1],
                        }),
                        Err(e) => json!({ "error": e }),
                    },
                })
            })
            .collect(),
    )
}
