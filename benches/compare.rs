//! The server comparison: rawloop's `echo_server` on every backend compiled here against echo
//! servers on mio and on tokio's current-thread runtime, loaded by `examples/loadgen.rs`.
//!
//! `cargo bench --bench compare` (the full matrix, 5 rounds, about 40 minutes) or
//! `cargo bench --bench compare -- --quick` (a check that it all still works, in seconds).
//!
//! For every cell of the matrix (message size x active connections x idle connections) each
//! server is started on one core, loaded from the other, and stopped; the servers take turns
//! cell by cell (A B C ... A B C), and the whole matrix is repeated for `--rounds` rounds.
//! The report (Markdown, printed and written to `<out>/results.md`) gives the median of each
//! figure over the rounds with the median ratio to mio in the same round, the syscalls per
//! echoed message (rawloop's reactor counters, and `strace -c` as a cross-check), the Message
//! protocol through `app_server` when it is built, and the targets met or not. `<out>` also
//! gets every run's raw figures (`runs.json`) and a plot of CPU time per request against idle
//! connections (`cpu_vs_idle.svg`).
//!
//! Nothing here can hang: every child has a deadline and is killed when it passes, children
//! die with the runner (PR_SET_PDEATHSIG), and a server that cannot hold a configuration is
//! reported as such in its cell while the run goes on.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use clap::Parser;
use rawloop::Backend;
use serde_json::{json, Value};

#[derive(Parser, Debug, Clone)]
#[command(about = "Compare rawloop's echo server with mio and tokio peers")]
struct Args {
    /// A short run (one round, a few cells, half-second measurements) to check that the
    /// benchmark works.
    #[arg(long)]
    quick: bool,
    /// Rounds of the whole matrix; figures are medians over them.
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds measured per run.
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of load before each measurement.
    #[arg(long)]
    warmup: Option<f64>,
    /// Message sizes in bytes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Active connection counts, comma-separated.
    #[arg(long, value_delimiter = ',')]
    active: Option<Vec<usize>>,
    /// Idle connection counts, comma-separated.
    #[arg(long, value_delimiter = ',')]
    idle: Option<Vec<usize>>,
    /// Servers to run, comma-separated (rawloop-select, rawloop-poll, rawloop-epoll, mio,
    /// tokio); all by default.
    #[arg(long, value_delimiter = ',')]
    servers: Option<Vec<String>>,
    /// Where the report, the raw figures and the plot go.
    #[arg(long, default_value = "target/bench-compare")]
    out: PathBuf,
    /// Use the binaries in target/release/examples as they are.
    #[arg(long)]
    no_build: bool,
    /// Skip the strace cross-check.
    #[arg(long)]
    no_strace: bool,
    /// Skip the Message-protocol runs.
    #[arg(long)]
    no_message: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The matrix and timings after `--quick` and the options are applied.
struct Plan {
    rounds: usize,
    warmup: f64,
    duration: f64,
    sizes: Vec<usize>,
    active: Vec<usize>,
    idle: Vec<usize>,
    servers: Vec<Server>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Server {
    Rawloop(BackendName),
    Mio,
    Tokio,
}

/// A backend, ordered and named for tables.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct BackendName(&'static str);

impl Server {
    fn name(self) -> String {
        match self {
            Server::Rawloop(b) => format!("rawloop-{}", b.0),
            Server::Mio => "mio".into(),
            Server::Tokio => "tokio".into(),
        }
    }

    fn command(self, bin: &Path) -> Command {
        let mut cmd = match self {
            Server::Rawloop(b) => {
                let mut cmd = Command::new(bin.join("echo_server"));
                cmd.args(["--backend", b.0]);
                cmd
            }
            Server::Mio => Command::new(bin.join("peer_mio_echo")),
            Server::Tokio => Command::new(bin.join("peer_tokio_echo")),
        };
        cmd.args(["127.0.0.1", "0"]);
        cmd
    }
}

fn all_servers() -> Vec<Server> {
    let mut servers: Vec<Server> = Backend::compiled()
        .into_iter()
        .filter(|b| *b != Backend::Kqueue)
        .map(|b| Server::Rawloop(BackendName(b.name())))
        .collect();
    servers.extend([Server::Mio, Server::Tokio]);
    servers
}

impl Plan {
    fn new(args: &Args) -> Result<Plan, String> {
        let quick = args.quick;
        let servers = match &args.servers {
            None => all_servers(),
            Some(names) => names
                .iter()
                .map(|n| {
                    all_servers()
                        .into_iter()
                        .find(|s| s.name() == *n)
                        .ok_or_else(|| format!("unknown or uncompiled server {n:?}"))
                })
                .collect::<Result<_, _>>()?,
        };
        if !servers.contains(&Server::Mio) {
            return Err("the ratios are to mio: keep mio among the servers".into());
        }
        Ok(Plan {
            rounds: args.rounds.unwrap_or(if quick { 1 } else { 5 }),
            warmup: args.warmup.unwrap_or(if quick { 0.2 } else { 1.0 }),
            duration: args.duration.unwrap_or(if quick { 0.5 } else { 3.0 }),
            sizes: args
                .sizes
                .clone()
                .unwrap_or(if quick { vec![64] } else { vec![64, 4096] }),
            active: args
                .active
                .clone()
                .unwrap_or(if quick { vec![50] } else { vec![1, 50, 500] }),
            idle: args.idle.clone().unwrap_or(if quick {
                vec![0, 1000]
            } else {
                vec![0, 1000, 10_000]
            }),
            servers,
        })
    }
}

/// One cell of the matrix.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Cell {
    size: usize,
    active: usize,
    idle: usize,
}

/// What one run measured.
#[derive(Clone, Debug)]
struct Measured {
    rps: f64,
    cpu_us: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    server_util: f64,
    loadgen_util: f64,
    exchanges: u64,
    stats: Option<Stats>,
}

type Outcome = Result<Measured, String>;

// ---------------------------------------------------------------------------------------------
// Processes: pinned, killed with the runner, never waited for without a deadline.
// ---------------------------------------------------------------------------------------------

/// A child process that is killed when dropped.
struct Guard {
    child: Child,
    what: String,
}

impl Guard {
    fn spawn(mut cmd: Command, what: &str, cpu: Option<usize>) -> Result<Guard, String> {
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // async-signal-safe functions (sched_setaffinity, prctl) on memory of its own.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(cpu) = cpu {
                    pin(0, cpu)?;
                }
                // Linux only; elsewhere a child outlives a runner that is killed outright
                // (Guard's Drop still kills it on every ordinary exit).
                #[cfg(any(target_os = "linux", target_os = "android"))]
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("starting {what}: {e}"))?;
        Ok(Guard {
            child,
            what: what.to_string(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the child to exit, killing it after `timeout`.
    fn wait(&mut self, timeout: Duration) -> Result<std::process::ExitStatus, String> {
        let end = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < end => sleep(Duration::from_millis(10)),
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!("{} did not finish within {timeout:?}", self.what));
                }
                Err(e) => return Err(format!("waiting for {}: {e}", self.what)),
            }
        }
    }

    /// Sends `signal`, then waits up to `timeout` before killing.
    fn stop(&mut self, signal: libc::c_int, timeout: Duration) -> Result<(), String> {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill only sends a signal, to our own child, which has not been reaped.
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        }
        self.wait(timeout).map(drop)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Pins process `pid` (0: the caller) to `cpu`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn pin(pid: libc::pid_t, cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it (cpu < CPU_SETSIZE is checked
    // by the caller's choice of cpus from the affinity mask).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Pinning needs sched_setaffinity (Linux): elsewhere nothing is pinned (`allowed_cpus` is
/// empty, so this is never called).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn pin(_pid: libc::pid_t, _cpu: usize) -> io::Result<()> {
    Ok(())
}

/// The cpus this process may run on.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: as in `pin`; sched_getaffinity fills the set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Without sched_getaffinity: none known, so nothing is pinned.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

/// Raises the soft limit on open files to the hard limit (children inherit it).
fn raise_nofile() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one rlimit struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// Where the runner puts its children, their output and its report.
struct Env {
    bin: PathBuf,
    scratch: PathBuf,
    server_cpu: Option<usize>,
    loadgen_cpu: Option<usize>,
}

/// The port in a server's first line: `... port 12345 ...` or `('127.0.0.1', 12345)`.
fn parse_port(line: &str) -> Option<u16> {
    if let Some(rest) = line.split(" port ").nth(1) {
        return rest.split_whitespace().next()?.parse().ok();
    }
    let rest = line.split("', ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// A server started and listening.
struct Running {
    guard: Guard,
    port: u16,
    err_path: PathBuf,
}

fn start_server(env: &Env, mut cmd: Command, what: &str) -> Result<Running, String> {
    let out_path = env.scratch.join("server.out");
    let err_path = env.scratch.join("server.err");
    let out = fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = fs::File::create(&err_path).map_err(|e| e.to_string())?;
    cmd.env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let mut guard = Guard::spawn(cmd, what, env.server_cpu)?;
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let text = fs::read_to_string(&out_path).unwrap_or_default();
        if let Some(port) = text.lines().next().and_then(parse_port) {
            return Ok(Running {
                guard,
                port,
                err_path,
            });
        }
        if let Ok(Some(status)) = guard.child.try_wait() {
            let err = fs::read_to_string(&err_path).unwrap_or_default();
            return Err(format!(
                "{what} exited ({status}) before listening: {}",
                err.trim()
            ));
        }
        if Instant::now() > end {
            return Err(format!("{what} did not print its port within 10 s"));
        }
        sleep(Duration::from_millis(5));
    }
}

/// Runs the load generator against `port` and returns its JSON report.
fn run_loadgen(env: &Env, port: u16, server_pid: u32, extra: &[String]) -> Result<Value, String> {
    let out_path = env.scratch.join("loadgen.out");
    let err_path = env.scratch.join("loadgen.err");
    let mut cmd = Command::new(env.bin.join("loadgen"));
    cmd.args(["--port", &port.to_string()])
        .args(["--server-pid", &server_pid.to_string()])
        .args(["--json", "--setup-timeout", "60", "--drain-timeout", "10"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).map_err(|e| e.to_string())?)
        .stderr(fs::File::create(&err_path).map_err(|e| e.to_string())?);
    let seconds: f64 = extra
        .windows(2)
        .filter(|w| w[0] == "--warmup" || w[0] == "--duration")
        .filter_map(|w| w[1].parse::<f64>().ok())
        .sum();
    let mut guard = Guard::spawn(cmd, "loadgen", env.loadgen_cpu)?;
    let status = guard.wait(Duration::from_secs_f64(60.0 + 10.0 + 30.0 + seconds))?;
    let out = fs::read_to_string(&out_path).unwrap_or_default();
    let value: Value = serde_json::from_str(out.trim()).map_err(|_| {
        let err = fs::read_to_string(&err_path).unwrap_or_default();
        format!("loadgen ({status}) printed no report: {}", err.trim())
    })?;
    match value.get("error").and_then(Value::as_str) {
        Some(e) => Err(e.to_string()),
        None => Ok(value),
    }
}

/// The counters of `rawloop::Stats` that the report uses.
#[derive(Copy, Clone, Debug)]
struct Stats {
    rounds: u64,
    events: u64,
    dispatched: u64,
    registered: u64,
    closed: u64,
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

fn number(v: &Value, key: &str) -> Result<f64, String> {
    v.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("loadgen report has no {key}"))
}

fn measured(report: &Value, stats: Option<Stats>) -> Result<Measured, String> {
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
fn run_once(env: &Env, server: Command, what: &str, load: &[String]) -> Outcome {
    let mut running = start_server(env, server, what)?;
    let report = run_loadgen(env, running.port, running.guard.pid(), load);
    let stopped = running.guard.stop(libc::SIGTERM, Duration::from_secs(10));
    let report = report?;
    stopped?;
    let stats = parse_stats(&fs::read_to_string(&running.err_path).unwrap_or_default());
    measured(&report, stats)
}

fn echo_load(plan: &Plan, cell: Cell) -> Vec<String> {
    [
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
    .into()
}

// ---------------------------------------------------------------------------------------------
// strace cross-check
// ---------------------------------------------------------------------------------------------

/// Syscalls of one traced run: per syscall name, and the exchanges they served.
struct Traced {
    calls: BTreeMap<String, u64>,
    exchanges: u64,
}

fn strace_run(env: &Env, plan: &Plan, server: Server) -> Result<Traced, String> {
    let what = server.name();
    let mut running = start_server(env, server.command(&env.bin), &what)?;
    let out = env.scratch.join("strace.txt");
    let mut cmd = Command::new("strace");
    cmd.args(["-c", "-f", "-p", &running.guard.pid().to_string(), "-o"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut strace = Guard::spawn(cmd, "strace", env.loadgen_cpu)?;
    // Attached once the server's TracerPid is set.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let status =
            fs::read_to_string(format!("/proc/{}/status", running.guard.pid())).unwrap_or_default();
        let tracer = status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .map(str::trim);
        if matches!(tracer, Some(t) if t != "0") {
            break;
        }
        if Instant::now() > end {
            return Err("strace did not attach within 10 s (is ptrace allowed?)".into());
        }
        if let Ok(Some(status)) = strace.child.try_wait() {
            return Err(format!("strace exited ({status}) before attaching"));
        }
        sleep(Duration::from_millis(10));
    }
    let cell = Cell {
        size: 64,
        active: 50,
        idle: 0,
    };
    let load = echo_load(plan, cell);
    let report = run_loadgen(env, running.port, running.guard.pid(), &load);
    let detached = strace.stop(libc::SIGINT, Duration::from_secs(20));
    let _ = running.guard.stop(libc::SIGTERM, Duration::from_secs(10));
    let report = report?;
    detached?;
    let text = fs::read_to_string(&out).map_err(|e| format!("strace output: {e}"))?;
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 5 || t[0].parse::<f64>().is_err() {
            continue;
        }
        let name = t[t.len() - 1];
        if name == "total" {
            continue;
        }
        if let Ok(n) = t[3].parse::<u64>() {
            calls.insert(name.to_string(), n);
        }
    }
    if calls.is_empty() {
        return Err(format!(
            "no syscall counts in strace's output: {}",
            text.trim()
        ));
    }
    Ok(Traced {
        calls,
        exchanges: number(&report, "exchanges_total")? as u64,
    })
}

// ---------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Every run of the matrix: (round, cell, server) -> outcome.
type Runs = BTreeMap<(usize, Cell, Server), Outcome>;

/// The median of `f` over the rounds, and the median of its ratio to mio's in each round.
fn summary(
    runs: &Runs,
    rounds: usize,
    cell: Cell,
    server: Server,
    f: fn(&Measured) -> f64,
) -> Option<(f64, Option<f64>)> {
    let mut values = Vec::new();
    let mut ratios = Vec::new();
    for r in 0..rounds {
        if let Some(Ok(m)) = runs.get(&(r, cell, server)) {
            values.push(f(m));
            if let Some(Ok(mio)) = runs.get(&(r, cell, Server::Mio)) {
                ratios.push(f(m) / f(mio));
            }
        }
    }
    Some((median(values)?, median(ratios)))
}

/// The smallest and largest value of `f` over the rounds.
fn range(
    runs: &Runs,
    rounds: usize,
    cell: Cell,
    server: Server,
    f: fn(&Measured) -> f64,
) -> Option<(f64, f64)> {
    let v: Vec<f64> = (0..rounds)
        .filter_map(|r| match runs.get(&(r, cell, server)) {
            Some(Ok(m)) => Some(f(m)),
            _ => None,
        })
        .collect();
    let lo = v.iter().copied().reduce(f64::min)?;
    let hi = v.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

/// The median over the rounds of rawloop's estimated syscalls per message,
/// (rounds + 2 x handler calls) / messages, from its reactor counters.
fn syscalls_per_message(runs: &Runs, rounds: usize, cell: Cell, server: Server) -> Option<f64> {
    median(
        (0..rounds)
            .filter_map(|r| match runs.get(&(r, cell, server)) {
                Some(Ok(Measured {
                    stats: Some(st),
                    exchanges,
                    ..
                })) => Some((st.rounds + 2 * st.dispatched) as f64 / *exchanges as f64),
                _ => None,
            })
            .collect(),
    )
}

/// "failed in k of n rounds: <first reason>" for a cell and server, if any round failed.
fn failures(runs: &Runs, rounds: usize, cell: Cell, server: Server) -> Option<String> {
    let errors: Vec<&String> = (0..rounds)
        .filter_map(|r| match runs.get(&(r, cell, server)) {
            Some(Err(e)) => Some(e),
            _ => None,
        })
        .collect();
    let first = errors.first()?;
    let mut reason: String = first.chars().take(120).collect();
    reason = reason.replace('|', "/");
    Some(format!(
        "failed in {} of {rounds} rounds: {reason}",
        errors.len()
    ))
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{:.0}", v)
    } else if v >= 10.0 {
        format!("{:.1}", v)
    } else {
        format!("{:.2}", v)
    }
}

fn with_ratio(s: Option<(f64, Option<f64>)>) -> String {
    match s {
        None => "–".into(),
        Some((v, Some(r))) => format!("{} ({:.2}×)", fmt_value(v), r),
        Some((v, None)) => fmt_value(v),
    }
}

fn size_name(size: usize) -> String {
    if size >= 1024 && size % 1024 == 0 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn cells(plan: &Plan) -> Vec<Cell> {
    let mut cells = Vec::new();
    for &size in &plan.sizes {
        for &active in &plan.active {
            for &idle in &plan.idle {
                cells.push(Cell { size, active, idle });
            }
        }
    }
    cells
}

fn report(
    plan: &Plan,
    runs: &Runs,
    traced: &[(Server, Result<Traced, String>)],
    message: &MessageRuns,
) -> String {
    let mut md = String::new();
    let cells = cells(plan);
    let cpu = |m: &Measured| m.cpu_us;
    let rps = |m: &Measured| m.rps;

    let _ = writeln!(
        md,
        "## Server CPU time per request (µs, median of {} rounds; ratio to mio in the same round)\n",
        plan.rounds
    );
    let _ = write!(md, "| size | active | idle |");
    for s in &plan.servers {
        let _ = write!(md, " {} |", s.name());
    }
    let _ = write!(md, "\n|---|---:|---:|");
    for _ in &plan.servers {
        let _ = write!(md, "---:|");
    }
    md.push('\n');
    for &cell in &cells {
        let _ = write!(
            md,
            "| {} | {} | {} |",
            size_name(cell.size),
            cell.active,
            thousands(cell.idle)
        );
        for &s in &plan.servers {
            let text = match failures(runs, plan.rounds, cell, s) {
                Some(f) if summary(runs, plan.rounds, cell, s, cpu).is_none() => f,
                Some(_) => format!("{} ⚠", with_ratio(summary(runs, plan.rounds, cell, s, cpu))),
                None => with_ratio(summary(runs, plan.rounds, cell, s, cpu)),
            };
            let _ = write!(md, " {text} |");
        }
        md.push('\n');
    }

    let _ = writeln!(
        md,
        "\n## Every figure (median; ratio to mio in the same round)\n\n\
         Latencies in µs from the first byte of a request sent to the last byte of its echo \
         received; server and load generator CPU as a share of one core over the measurement \
         (with 50 or more connections the closed loop keeps one of them near 100% unless other \
         processes share the cores); the CPU range is the lowest and highest figure of the \
         rounds, a measure of the noise.\n"
    );
    md.push_str(
        "| size | active | idle | server | requests/s | CPU µs/req | CPU range | p50 µs | p99 µs | p99.9 µs | server CPU | loadgen CPU |\n\
         |---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for &cell in &cells {
        for &s in &plan.servers {
            let _ = write!(
                md,
                "| {} | {} | {} | {} |",
                size_name(cell.size),
                cell.active,
                thousands(cell.idle),
                s.name()
            );
            if summary(runs, plan.rounds, cell, s, cpu).is_none() {
                let f = failures(runs, plan.rounds, cell, s).unwrap_or_else(|| "not run".into());
                let _ = writeln!(md, " {f} | | | | | | | |");
                continue;
            }
            let p50 = |m: &Measured| m.p50;
            let p99 = |m: &Measured| m.p99;
            let p999 = |m: &Measured| m.p999;
            let su = |m: &Measured| m.server_util * 100.0;
            let lu = |m: &Measured| m.loadgen_util * 100.0;
            let pct = |f: fn(&Measured) -> f64| {
                summary(runs, plan.rounds, cell, s, f)
                    .map_or("–".into(), |(v, _)| format!("{v:.0}%"))
            };
            let spread = range(runs, plan.rounds, cell, s, cpu).map_or("–".into(), |(lo, hi)| {
                format!("{}–{}", fmt_value(lo), fmt_value(hi))
            });
            let _ = writeln!(
                md,
                " {} | {} | {spread} | {} | {} | {} | {} | {} |",
                with_ratio(summary(runs, plan.rounds, cell, s, rps)),
                with_ratio(summary(runs, plan.rounds, cell, s, cpu)),
                with_ratio(summary(runs, plan.rounds, cell, s, p50)),
                with_ratio(summary(runs, plan.rounds, cell, s, p99)),
                with_ratio(summary(runs, plan.rounds, cell, s, p999)),
                pct(su),
                pct(lu),
            );
        }
    }

    // Syscalls per echoed message.
    let _ = writeln!(
        md,
        "\n## Syscalls per echoed message, 50 active connections, no idle\n"
    );
    md.push_str(
        "From rawloop's reactor counters (`Reactor::stats()`, printed by echo_server at exit) over \
         the server's whole life, divided by the messages the load generator exchanged in its whole \
         life: each round is one wait syscall, and each handler call one read plus one write, so \
         syscalls ≈ (rounds + 2 × handler calls) / messages. Median over the rounds.\n\n\
         | size | server | waits/msg | handler calls/msg | events/wait | ≈ syscalls/msg |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for &size in &plan.sizes {
        let cell = Cell {
            size,
            active: 50,
            idle: 0,
        };
        for &s in &plan.servers {
            let Server::Rawloop(_) = s else { continue };
            let per = |f: fn(&Stats) -> f64| {
                let v: Vec<f64> = (0..plan.rounds)
                    .filter_map(|r| match runs.get(&(r, cell, s)) {
                        Some(Ok(m)) => m.stats.as_ref().map(|st| f(st) / m.exchanges as f64),
                        _ => None,
                    })
                    .collect();
                median(v)
            };
            let ratio: Vec<f64> = (0..plan.rounds)
                .filter_map(|r| match runs.get(&(r, cell, s)) {
                    Some(Ok(Measured {
                        stats: Some(st), ..
                    })) => Some(st.events as f64 / st.rounds as f64),
                    _ => None,
                })
                .collect();
            let show = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.3}"));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                size_name(size),
                s.name(),
                show(per(|st| st.rounds as f64)),
                show(per(|st| st.dispatched as f64)),
                show(median(ratio)),
                show(syscalls_per_message(runs, plan.rounds, cell, s)),
            );
        }
    }
    if !traced.is_empty() {
        md.push_str(
            "\nCross-check with `strace -c -f -p <server>` attached for a whole load-generator \
             run (64 B, 50 connections; strace slows the server, so it batches more events per \
             wait than untraced): every syscall the server made, divided by the messages \
             exchanged.\n\n\
             | server | syscalls/msg | breakdown per message |\n|---|---:|---|\n",
        );
        for (s, t) in traced {
            match t {
                Ok(t) => {
                    let total: u64 = t.calls.values().sum();
                    let mut parts: Vec<(&String, &u64)> = t.calls.iter().collect();
                    parts.sort_by(|a, b| b.1.cmp(a.1));
                    let breakdown: Vec<String> = parts
                        .iter()
                        .filter(|(_, &n)| n as f64 / t.exchanges as f64 >= 0.001)
                        .map(|(name, &n)| format!("{name} {:.3}", n as f64 / t.exchanges as f64))
                        .collect();
                    let _ = writeln!(
                        md,
                        "| {} | {:.3} | {} |",
                        s.name(),
                        total as f64 / t.exchanges as f64,
                        breakdown.join(", ")
                    );
                }
                Err(e) => {
                    let _ = writeln!(md, "| {} | – | not measured: {e} |", s.name());
                }
            }
        }
    }

    // Message protocol.
    let _ = writeln!(
        md,
        "\n## Message protocol through app_server (50 connections)\n"
    );
    match message {
        MessageRuns::Skipped(why) => {
            let _ = writeln!(md, "Not measured: {why}.");
        }
        MessageRuns::Ran(runs) => {
            md.push_str(
                "A search request (`request_search(\"morpheus\")`, a 146-byte frame) answered with its \
                 148-byte response frame, checked byte for byte and decoded. One request per \
                 connection: connect, request, response, the server closes (latency includes \
                 the connect); keep-alive: many requests per connection.\n\n\
                 | backend | mode | requests/s | CPU µs/req | p50 µs | p99 µs | p99.9 µs |\n\
                 |---|---|---:|---:|---:|---:|---:|\n",
            );
            let keys: Vec<(String, bool)> = {
                let mut k: Vec<(String, bool)> =
                    runs.keys().map(|(_, b, ka)| (b.clone(), *ka)).collect();
                k.dedup();
                k.sort();
                k.dedup();
                k
            };
            for (backend, keep_alive) in keys {
                let ok: Vec<&Measured> = runs
                    .iter()
                    .filter(|((_, b, ka), _)| *b == backend && *ka == keep_alive)
                    .filter_map(|(_, o)| o.as_ref().ok())
                    .collect();
                let mode = if keep_alive {
                    "keep-alive"
                } else {
                    "one request per connection"
                };
                if ok.is_empty() {
                    let err = runs
                        .iter()
                        .find(|((_, b, ka), _)| *b == backend && *ka == keep_alive)
                        .and_then(|(_, o)| o.as_ref().err())
                        .cloned()
                        .unwrap_or_default();
                    let _ = writeln!(md, "| {backend} | {mode} | failed: {err} | | | | |");
                    continue;
                }
                let m = |f: fn(&Measured) -> f64| {
                    median(ok.iter().map(|x| f(x)).collect()).map_or("–".into(), fmt_value)
                };
                let _ = writeln!(
                    md,
                    "| {backend} | {mode} | {} | {} | {} | {} | {} |",
                    m(|x| x.rps),
                    m(|x| x.cpu_us),
                    m(|x| x.p50),
                    m(|x| x.p99),
                    m(|x| x.p999)
                );
            }
        }
    }

    md.push_str(&targets(plan, runs));
    md
}

/// The targets of the benchmark issue, each met or not.
fn targets(plan: &Plan, runs: &Runs) -> String {
    let mut md = String::from("\n## Targets\n\n");
    let cpu = |m: &Measured| m.cpu_us;
    let epoll = Server::Rawloop(BackendName("epoll"));
    let med = |cell: Cell, s: Server| summary(runs, plan.rounds, cell, s, cpu).map(|x| x.0);
    let verdict = |ok: bool| if ok { "**met**" } else { "**not met**" };
    let first_idle = plan.idle.first().copied().unwrap_or(0);
    for &size in &plan.sizes {
        let cell = Cell {
            size,
            active: 50,
            idle: first_idle,
        };
        if let (Some(e), Some(m)) = (med(cell, epoll), med(cell, Server::Mio)) {
            let _ = writeln!(
                md,
                "- rawloop-epoll CPU per request ≤ mio's at 50 connections, {}: {:.2} µs vs {:.2} µs ({:.2}×): {}",
                size_name(size),
                e,
                m,
                e / m,
                verdict(e <= m)
            );
        }
    }
    if let (Some(&lo), Some(&hi)) = (plan.idle.first(), plan.idle.last()) {
        if hi > lo {
            for &size in &plan.sizes {
                for &active in &plan.active {
                    let a = med(
                        Cell {
                            size,
                            active,
                            idle: lo,
                        },
                        epoll,
                    );
                    let b = med(
                        Cell {
                            size,
                            active,
                            idle: hi,
                        },
                        epoll,
                    );
                    if let (Some(a), Some(b)) = (a, b) {
                        let _ = writeln!(
                            md,
                            "- rawloop-epoll at {} idle within 10% of {} idle, {} × {}: {:.2} → {:.2} µs ({:+.1}%): {}",
                            thousands(hi),
                            lo,
                            size_name(size),
                            active,
                            a,
                            b,
                            (b / a - 1.0) * 100.0,
                            verdict(b <= a * 1.10)
                        );
                    }
                }
            }
        }
    }
    for &size in &plan.sizes {
        let cell = Cell {
            size,
            active: 50,
            idle: first_idle,
        };
        if let Some(x) = syscalls_per_message(runs, plan.rounds, cell, epoll) {
            let _ = writeln!(
                md,
                "- rawloop-epoll syscalls per echoed message ≤ 2.1 at 50 connections, {} (from the reactor counters): {x:.3}: {}",
                size_name(size),
                verdict(x <= 2.1)
            );
        }
    }
    for name in ["select", "poll"] {
        let s = Server::Rawloop(BackendName(name));
        if !plan.servers.contains(&s) {
            continue;
        }
        for &size in &plan.sizes {
            for &active in &plan.active {
                let cell = Cell {
                    size,
                    active,
                    idle: first_idle,
                };
                if let (Some(x), Some(e)) = (med(cell, s), med(cell, epoll)) {
                    let _ = writeln!(
                        md,
                        "- rawloop-{name} at most 15% above epoll with {first_idle} idle, {} × {}: {:.2} vs {:.2} µs ({:+.1}%): {}",
                        size_name(size),
                        active,
                        x,
                        e,
                        (x / e - 1.0) * 100.0,
                        verdict(x <= e * 1.15)
                    );
                }
            }
        }
    }
    md
}

// ---------------------------------------------------------------------------------------------
// The plot
// ---------------------------------------------------------------------------------------------

fn plot(plan: &Plan, runs: &Runs, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;

    let panels: Vec<(usize, usize)> = plan
        .sizes
        .iter()
        .flat_map(|&s| plan.active.iter().map(move |&a| (s, a)))
        .collect();
    let cols = plan.active.len().max(1);
    let rows = plan.sizes.len().max(1);
    let width = (420 * cols as u32).max(640);
    let root = SVGBackend::new(path, (width, 340 * rows as u32 + 40)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (title, body) = root.split_vertically(40);
    title
        .titled(
            "Server CPU time per request against idle connections (median of the rounds)",
            ("sans-serif", 20),
        )
        .map_err(|e| e.to_string())?;
    let areas = body.split_evenly((rows, cols));
    let colours = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    let cpu = |m: &Measured| m.cpu_us;
    for ((size, active), area) in panels.into_iter().zip(areas.iter()) {
        let series: Vec<(Server, Vec<(usize, f64)>)> = plan
            .servers
            .iter()
            .map(|&s| {
                let points = plan
                    .idle
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &idle)| {
                        summary(runs, plan.rounds, Cell { size, active, idle }, s, cpu)
                            .map(|(v, _)| (i, v))
                    })
                    .collect();
                (s, points)
            })
            .collect();
        // A log scale: select and poll grow by orders of magnitude with idle connections,
        // while the others stay within tens of percent of each other.
        let values = series.iter().flat_map(|(_, p)| p.iter().map(|&(_, v)| v));
        let lo = values
            .clone()
            .fold(f64::INFINITY, f64::min)
            .clamp(0.01, 1e9)
            * 0.7;
        let hi = values.fold(0.0f64, f64::max).max(lo * 2.0) * 1.6;
        let idle_labels = plan.idle.clone();
        let n = plan.idle.len().max(1);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{} messages, {} active", size_name(size), active),
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.25f64..(n as f64 - 0.75), (lo..hi).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    idle_labels
                        .get(i as usize)
                        .map_or(String::new(), |&v| thousands(v))
                } else {
                    String::new()
                }
            })
            .disable_x_mesh()
            .y_label_formatter(&|y| fmt_value(*y))
            .x_desc("idle connections")
            .y_desc("µs per request (log scale)")
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, (server, points)) in series.into_iter().enumerate() {
            let colour = colours[k % colours.len()];
            let pts: Vec<(f64, f64)> = points.iter().map(|&(i, v)| (i as f64, v)).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(server.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

/// (round, backend, keep-alive) -> outcome.
type MessageMap = BTreeMap<(usize, String, bool), Outcome>;

enum MessageRuns {
    Skipped(String),
    Ran(MessageMap),
}

fn build(bin_examples: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release"]);
    for e in bin_examples {
        cmd.args(["--example", e]);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("running cargo build: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "cargo build of {} failed ({status})",
            bin_examples.join(", ")
        ))
    }
}

fn machine() -> String {
    let lscpu = Command::new("lscpu").output().ok();
    let model = lscpu
        .as_ref()
        .and_then(|o| String::from_utf8(o.stdout.clone()).ok())
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Model name:"))
                .map(|l| l["Model name:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cpus} cpus, Linux {kernel}")
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("compare: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let plan = Plan::new(args)?;
    // target/release/deps/compare-<hash> -> target/release/examples
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot find the target directory")?
        .join("examples");
    if !args.no_build {
        build(&["echo_server", "loadgen", "peer_mio_echo", "peer_tokio_echo"])?;
    }
    let app_server = if args.no_message {
        Err("skipped with --no-message".to_string())
    } else if args.no_build {
        if bin.join("app_server").exists() {
            Ok(())
        } else {
            Err("target/release/examples/app_server is not built".into())
        }
    } else {
        build(&["app_server"]).map_err(|e| format!("app_server does not build ({e})"))
    };

    // Before pinning, which narrows what available_parallelism sees.
    let machine = machine();
    fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let scratch = args.out.join("scratch");
    fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let nofile = raise_nofile();
    let cpus = allowed_cpus();
    let (server_cpu, loadgen_cpu) = match cpus.as_slice() {
        [.., a, b] => (Some(*a), Some(*b)),
        _ => (None, None),
    };
    if let Some(c) = loadgen_cpu {
        pin(0, c).map_err(|e| format!("pinning the runner: {e}"))?;
    }
    let env = Env {
        bin,
        scratch,
        server_cpu,
        loadgen_cpu,
    };
    let cells = cells(&plan);
    eprintln!(
        "compare: {machine}; open-file limit {nofile}; servers on cpu {server_cpu:?}, load on cpu {loadgen_cpu:?}"
    );
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    eprintln!(
        "compare: CPU pinning is Linux-only (sched_setaffinity): servers and load generator are not pinned here"
    );
    eprintln!(
        "compare: {} rounds x {} cells x {} servers, {} s warmup + {} s measured each",
        plan.rounds,
        cells.len(),
        plan.servers.len(),
        plan.warmup,
        plan.duration
    );

    let started = Instant::now();
    let mut runs: Runs = BTreeMap::new();
    let mut raw = Vec::new();
    for round in 0..plan.rounds {
        for &cell in &cells {
            for &server in &plan.servers {
                let name = server.name();
                let outcome = run_once(
                    &env,
                    server.command(&env.bin),
                    &name,
                    &echo_load(&plan, cell),
                );
                match &outcome {
                    Ok(m) => eprintln!(
                        "[{:>5.0} s] round {} {:>5} B {:>3} active {:>5} idle {:<14} {:>8.0} req/s {:>7.2} µs CPU/req (server {:.0}%, loadgen {:.0}%)",
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
                        "[{:>5.0} s] round {} {:>5} B {:>3} active {:>5} idle {:<14} FAILED: {e}",
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

    let mut traced = Vec::new();
    if !args.no_strace {
        let wanted = [Server::Rawloop(BackendName("epoll")), Server::Mio];
        for s in wanted.into_iter().filter(|s| plan.servers.contains(s)) {
            let t = strace_run(&env, &plan, s);
            match &t {
                Ok(t) => eprintln!(
                    "strace {}: {:.3} syscalls per message",
                    s.name(),
                    t.calls.values().sum::<u64>() as f64 / t.exchanges as f64
                ),
                Err(e) => eprintln!("strace {}: {e}", s.name()),
            }
            traced.push((s, t));
        }
    }

    let message = match app_server {
        Err(why) => MessageRuns::Skipped(why),
        Ok(()) => {
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
                        let outcome = run_once(&env, cmd, "app_server", &load);
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
                            Err(e) => eprintln!(
                                "round {} app_server {}: FAILED: {e}",
                                round + 1,
                                backend.0
                            ),
                        }
                        map.insert((round, backend.0.to_string(), keep_alive), outcome);
                    }
                }
            }
            MessageRuns::Ran(map)
        }
    };

    let mut md = format!(
        "# rawloop server comparison\n\nMachine: {machine}. {} round(s), each run {} s warmup + {} s measured; \
         server pinned to cpu {}, load generator to cpu {}. Runner: `cargo bench --bench compare{}` \
         ({:.0} s).\n\n",
        plan.rounds,
        plan.warmup,
        plan.duration,
        server_cpu.map_or("-".into(), |c| c.to_string()),
        loadgen_cpu.map_or("-".into(), |c| c.to_string()),
        if args.quick { " -- --quick" } else { "" },
        started.elapsed().as_secs_f64()
    );
    md.push_str(&report(&plan, &runs, &traced, &message));
    let svg = args.out.join("cpu_vs_idle.svg");
    match plot(&plan, &runs, &svg) {
        Ok(()) => {
            let _ = writeln!(md, "\nPlot: `{}`.", svg.display());
        }
        Err(e) => {
            let _ = writeln!(md, "\nPlot failed: {e}.");
        }
    }
    println!("{md}");
    let results = args.out.join("results.md");
    fs::write(&results, &md).map_err(|e| format!("{}: {e}", results.display()))?;
    fs::write(
        args.out.join("runs.json"),
        serde_json::to_string_pretty(&raw).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    eprintln!(
        "compare: done in {:.0} s; report in {}",
        started.elapsed().as_secs_f64(),
        results.display()
    );
    Ok(())
}
