//! The soak benchmark (not a CI test): `echo_server` and `app_server` under mixed, partly
//! abusive load for a chosen time, watched for leaks and instability.
//!
//! `cargo bench --bench soak -- --duration 30m` (default 10m), or
//! `cargo bench --bench soak -- --quick` (about 20 s, 5-s windows: a check that it works).
//!
//! It builds the release `echo_server` and `app_server` examples (`--no-build` uses them as
//! they are), starts them on 127.0.0.1 on free ports below the ephemeral range (port 0 where
//! that range leaves no room), pinned to one CPU with the load on another (Linux), and runs,
//! all at once, against 127.0.0.1:
//!
//! * echo, 50 connections, closed loop: 64-byte messages and every fourth one 4 KiB, 20 ms
//!   apart, every byte checked;
//! * one-request Message clients at 50/s: connect, `request_search("morpheus")`, read to the
//!   end, check the one answer, close;
//! * connect/close churn at 40/s over both servers, half of the closes with RST
//!   (SO_LINGER 0), half of the connections exchanging a little first;
//! * garbage to app_server at 5/s (random bytes, a 1 TiB content-length, a header that is not
//!   JSON): each connection must be closed within 3 s;
//! * 4 slow readers (2 MiB written, read back at about 400 KB/s) and 20 slowloris writers
//!   (one byte every 3 s) against echo_server;
//! * 300 idle connections held open to echo_server, and 50 idle plus 10 byte-a-drip partial
//!   requests to app_server, which must close them at its request timeout (10 s).
//!
//! Every window (10 s) it prints one line per server: elapsed time, the server's open fds,
//! RSS and CPU share, the p50 and p99 of its echoes or requests in that window, what the
//! abusive loads did, failed checks and expected resets; then one line for the load's own CPU.
//! At the end: fds and RSS of the first and last window and the maximum, whether they grew,
//! the whole run's latencies, and the servers' log volume. It exits non-zero if any check
//! failed, a server died, or a server did not stop cleanly on SIGTERM at the end.
//!
//! Everything stops by itself: every socket call has a timeout, every loop watches one stop
//! flag, the servers die with the benchmark (PR_SET_PDEATHSIG) and are SIGKILLed 15 s after
//! the final SIGTERM at the latest.

#[path = "soak/load.rs"]
mod load;
#[path = "soak/procs.rs"]
mod procs;
#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::sleep;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;

use load::{Counters, Shared, Target};
use procs::Server;

#[derive(Parser, Debug)]
#[command(about = "Soak echo_server and app_server under mixed and abusive load")]
struct Args {
    /// How long to run: `30m`, `90s`, `1h`, `1h30m`, or seconds.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    duration: Duration,
    /// About 20 s with 5-s windows, to check that the benchmark works.
    #[arg(long)]
    quick: bool,
    /// The reporting window.
    #[arg(long, value_parser = parse_duration)]
    interval: Option<Duration>,
    /// The servers' backend (select, poll, epoll, kqueue); their default if not given.
    #[arg(long)]
    backend: Option<String>,
    /// Closed-loop echo connections.
    #[arg(long, default_value_t = 50)]
    echo_conns: usize,
    /// Pause between echoes on one connection, in ms.
    #[arg(long, default_value_t = 20)]
    echo_pause_ms: u64,
    /// One-request Message clients per second.
    #[arg(long, default_value_t = 50.0)]
    message_rate: f64,
    /// Churn connections per second (both servers together).
    #[arg(long, default_value_t = 40.0)]
    churn_rate: f64,
    /// Garbage connections to app_server per second.
    #[arg(long, default_value_t = 5.0)]
    garbage_rate: f64,
    /// Slow readers on echo_server.
    #[arg(long, default_value_t = 4)]
    slow_readers: usize,
    /// Slowloris writers on echo_server.
    #[arg(long, default_value_t = 20)]
    slowloris: usize,
    /// Idle connections held open to echo_server.
    #[arg(long, default_value_t = 300)]
    idle: usize,
    /// Idle connections to app_server (closed by its request timeout, then replaced).
    #[arg(long, default_value_t = 50)]
    idle_app: usize,
    /// Byte-a-drip partial requests to app_server.
    #[arg(long, default_value_t = 10)]
    partial_app: usize,
    /// Where the servers' output and logs go.
    #[arg(long, default_value = "target/bench-soak")]
    out: PathBuf,
    /// Use target/release/examples/{echo_server,app_server} as they are.
    #[arg(long)]
    no_build: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// `30m`, `90s`, `1h30m`, `1.5h`, `500ms` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| e.to_string());
    }
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{text:?}: a number without a unit at the end"))?;
        let value: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("{text:?}: expected a number before a unit"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            unit => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|e| e.to_string())
}

/// SplitMix64: a seed in, a well-mixed 64-bit value out.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The cumulative counters of one server, to difference window by window.
#[derive(Copy, Clone, Default)]
struct Totals {
    ops: u64,
    checked: u64,
    churn: u64,
    abuse: u64,
    resets: u64,
    failures: u64,
}

impl Totals {
    fn of(c: &Counters) -> Totals {
        Totals {
            ops: c.ops.load(Relaxed),
            checked: c.checked_bytes.load(Relaxed),
            churn: c.churn.load(Relaxed),
            abuse: c.abuse.load(Relaxed),
            resets: c.resets.load(Relaxed),
            failures: c.failures.load(Relaxed),
        }
    }

    fn minus(self, o: Totals) -> Totals {
        Totals {
            ops: self.ops - o.ops,
            checked: self.checked - o.checked,
            churn: self.churn - o.churn,
            abuse: self.abuse - o.abuse,
            resets: self.resets - o.resets,
            failures: self.failures - o.failures,
        }
    }
}

/// One server being watched.
struct Watched {
    server: Server,
    target: Target,
    /// Samples of fds and RSS (KiB), one per window.
    fds: Vec<u64>,
    rss: Vec<u64>,
    last_ticks: u64,
    last: Totals,
    /// The whole run's latencies.
    latency: Histogram<u64>,
    /// It exited during the run (reported then).
    died: bool,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn us(h: &Histogram<u64>, q: f64) -> String {
    if h.is_empty() {
        "-".into()
    } else {
        format!("{}us", h.value_at_quantile(q))
    }
}

fn elapsed_label(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn run(args: Args) -> Result<bool, String> {
    let duration = if args.quick {
        Duration::from_secs(20)
    } else {
        args.duration
    };
    let interval = args.interval.unwrap_or(if args.quick {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(10)
    });
    if interval.is_zero() || duration < interval {
        return Err("the duration must be at least one window".into());
    }
    let examples = support::examples_dir()?;
    if !args.no_build {
        support::build_examples(&["echo_server", "app_server"])?;
    }
    fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let nofile = support::raise_nofile();
    let cpus = support::allowed_cpus();
    let (server_cpu, load_cpu) = match cpus.as_slice() {
        [a, .., b] => (Some(*a), Some(*b)),
        _ => (None, None),
    };
    if let Some(cpu) = load_cpu {
        support::pin_current(cpu).map_err(|e| format!("pinning the load to cpu {cpu}: {e}"))?;
    }

    let request_timeout = Duration::from_secs(10);
    let backend: Vec<String> = match &args.backend {
        Some(b) => vec!["--backend".into(), b.clone()],
        None => Vec::new(),
    };
    let echo_port = procs::free_port_outside_ephemeral(1).unwrap_or(0);
    let echo = Server::start(
        "echo_server",
        &examples.join("echo_server"),
        &backend,
        echo_port,
        server_cpu,
        &args.out,
    )?;
    let app_port = procs::free_port_outside_ephemeral(2).unwrap_or(0);
    let mut app_args = backend.clone();
    app_args.extend([
        "--request-timeout-ms".into(),
        request_timeout.as_millis().to_string(),
    ]);
    let app = Server::start(
        "app_server",
        &examples.join("app_server"),
        &app_args,
        app_port,
        server_cpu,
        &args.out,
    )?;
    let first_line = |name: &str| {
        fs::read_to_string(args.out.join(format!("{name}.out")))
            .ok()
            .and_then(|t| t.lines().next().map(str::to_string))
            .unwrap_or_default()
    };
    let ephemeral = procs::ephemeral_range()
        .map(|(l, h)| format!("{l}-{h}"))
        .unwrap_or_else(|| "unknown".into());
    println!(
        "soak: {} in {}-s windows; {} cpus allowed, servers on cpu {}, load on cpu {}; \
         open-file limit {nofile}; ephemeral ports {ephemeral}",
        elapsed_label(duration),
        interval.as_secs_f64(),
        cpus.len(),
        server_cpu.map_or("any".into(), |c| c.to_string()),
        load_cpu.map_or("any".into(), |c| c.to_string()),
    );
    println!(
        "soak: echo_server pid {} on {} ({}); app_server pid {} on {} ({}); logs in {}",
        echo.pid(),
        echo.addr,
        first_line("echo_server"),
        app.pid(),
        app.addr,
        first_line("app_server"),
        args.out.display()
    );
    let plan = load::Plan {
        echo_addr: echo.addr,
        app_addr: app.addr,
        echo_conns: args.echo_conns,
        echo_pause: Duration::from_millis(args.echo_pause_ms),
        message_rate: args.message_rate,
        churn_rate: args.churn_rate,
        garbage_rate: args.garbage_rate,
        slow_readers: args.slow_readers,
        slowloris: args.slowloris,
        idle_echo: args.idle,
        idle_app: args.idle_app,
        partial_app: args.partial_app,
        app_request_timeout: request_timeout,
    };
    println!(
        "soak: load: echo {} conns (64 B, every 4th 4 KiB, {} ms apart), messages {}/s, \
         churn {}/s, garbage {}/s, {} slow readers, {} slowloris, idle {} echo + {} app, \
         {} partial requests",
        plan.echo_conns,
        args.echo_pause_ms,
        plan.message_rate,
        plan.churn_rate,
        plan.garbage_rate,
        plan.slow_readers,
        plan.slowloris,
        plan.idle_echo,
        plan.idle_app,
        plan.partial_app
    );

    let shared: &'static Shared = Box::leak(Box::new(Shared::new()));
    let tick_rate = procs::ticks_per_second();
    let mut watched: Vec<Watched> = [(echo, Target::Echo), (app, Target::App)]
        .into_iter()
        .map(|(server, target)| {
            let last_ticks = procs::cpu_ticks(&server.pid().to_string()).unwrap_or(0);
            Watched {
                server,
                target,
                fds: Vec::new(),
                rss: Vec::new(),
                last_ticks,
                last: Totals::default(),
                latency: load::new_histogram(),
                died: false,
            }
        })
        .collect();
    let mut load_ticks = procs::cpu_ticks("self").unwrap_or(0);
    let threads = load::start(&plan, shared);

    let started = shared.started;
    let mut window_start = Instant::now();
    let mut died = Vec::new();
    let mut window = 0u32;
    'run: while started.elapsed() < duration {
        window += 1;
        let window_end = started + interval * window;
        while Instant::now() < window_end {
            for w in &mut watched {
                if let Some(status) = w.server.exited() {
                    let line = format!(
                        "{:>6.1}s {}: DIED ({status})",
                        started.elapsed().as_secs_f64(),
                        w.server.name
                    );
                    println!("{line}");
                    died.push(line);
                    w.died = true;
                }
            }
            if !died.is_empty() {
                break 'run;
            }
            sleep(Duration::from_millis(100));
        }
        let now = Instant::now();
        let secs = (now - window_start).as_secs_f64();
        window_start = now;
        let label = elapsed_label(now - started);
        for w in &mut watched {
            let c = shared.counters(w.target);
            let mut h = {
                let mut live = c.latency.lock().unwrap();
                let h = live.clone();
                live.reset();
                h
            };
            let totals = Totals::of(c);
            let d = totals.minus(w.last);
            w.last = totals;
            let Some(s) = procs::sample(&w.server.pid().to_string()) else {
                continue;
            };
            let cpu = (s.cpu_ticks - w.last_ticks) as f64 / tick_rate / secs * 100.0;
            w.last_ticks = s.cpu_ticks;
            w.fds.push(s.fds as u64);
            w.rss.push(s.rss_kib);
            let idle = c.idle_open.load(Relaxed);
            let abuse = match w.target {
                Target::Echo => {
                    format!("churn {:>4} slow+loris {:>3} idle {idle}", d.churn, d.abuse)
                }
                Target::App => format!(
                    "churn {:>4} garbage+timeouts {:>3} idle+partial {idle}",
                    d.churn, d.abuse
                ),
            };
            let kind = match w.target {
                Target::Echo => "echo",
                Target::App => "msg ",
            };
            println!(
                "[{label:>6}] {:<11} fds {:>4} rss {:>6.1} MiB cpu {:>5.1}% | {kind} p50 {:>7} p99 {:>7} n {:>6} | {abuse} | fail {} reset {}",
                w.server.name,
                s.fds,
                mib(s.rss_kib),
                cpu,
                us(&h, 0.5),
                us(&h, 0.99),
                d.ops,
                d.failures,
                d.resets,
            );
            let _ = w.latency.add(&h);
            h.reset();
        }
        let ticks = procs::cpu_ticks("self").unwrap_or(load_ticks);
        println!(
            "[{label:>6}] load        cpu {:>5.1}% (all load threads, one cpu)",
            (ticks - load_ticks) as f64 / tick_rate / secs * 100.0
        );
        load_ticks = ticks;
    }

    // Stop the load, then the servers.
    shared.stop.store(true, Relaxed);
    let join_deadline = Instant::now() + Duration::from_secs(60);
    let mut stuck = 0;
    for t in threads {
        while !t.is_finished() && Instant::now() < join_deadline {
            sleep(Duration::from_millis(20));
        }
        if t.is_finished() {
            if t.join().is_err() {
                died.push("a load thread panicked".into());
            }
        } else {
            stuck += 1;
        }
    }
    if stuck > 0 {
        died.push(format!("{stuck} load threads did not stop within 60 s"));
    }
    let mut stop_problems = Vec::new();
    for w in &mut watched {
        if w.died {
            continue;
        }
        match w.server.stop(Duration::from_secs(15)) {
            Ok(status) if status.success() => {}
            Ok(status) => stop_problems.push(format!("{} exited with {status}", w.server.name)),
            Err(e) => stop_problems.push(e),
        }
    }

    report(&watched, shared, started.elapsed());
    let failures = shared.echo.failures.load(Relaxed) + shared.app.failures.load(Relaxed);
    let ok = failures == 0 && died.is_empty() && stop_problems.is_empty();
    println!();
    if ok {
        println!("soak: PASS: no failed check, both servers up to the end and stopped cleanly");
    } else {
        println!("soak: FAIL:");
        if failures > 0 {
            println!("  {failures} failed checks; the first ones:");
            for f in shared.first_failures.lock().unwrap().iter() {
                println!("    {f}");
            }
        }
        for d in died.iter().chain(&stop_problems) {
            println!("  {d}");
        }
    }
    Ok(ok)
}

/// The median of a few values.
fn median(v: &[u64]) -> Option<u64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// First and last window, the maximum, and whether the value grew: the median of three
/// windows after a warm-up (the first tenth of the run, at least one window, when there are
/// four or more) against the median of the last three, beyond `tolerance`.
fn trend(v: &[u64], tolerance: u64, show: impl Fn(u64) -> String) -> Option<String> {
    let (&first, &last) = (v.first()?, v.last()?);
    let max = *v.iter().max()?;
    let skip = if v.len() >= 4 {
        (v.len() / 10).max(1)
    } else {
        0
    };
    let settled = &v[skip..];
    let early = median(&settled[..settled.len().min(3)])?;
    let late = median(&settled[settled.len().saturating_sub(3)..])?;
    let verdict = if late > early + tolerance {
        "GREW"
    } else {
        "no growth"
    };
    Some(format!(
        "first {}, last {}, max {}: {verdict} (after warm-up, median of 3 windows: {} -> {})",
        show(first),
        show(last),
        show(max),
        show(early),
        show(late)
    ))
}

fn report(watched: &[Watched], shared: &Shared, elapsed: Duration) {
    println!();
    println!(
        "soak: trend over {} windows ({}):",
        watched.first().map_or(0, |w| w.fds.len()),
        elapsed_label(elapsed)
    );
    for w in watched {
        if let Some(t) = trend(&w.fds, 8, |v| v.to_string()) {
            println!("  {:<11} fds: {t}", w.server.name);
        }
        if let Some(t) = trend(&w.rss, 1024, |v| format!("{:.1} MiB", mib(v))) {
            println!("  {:<11} RSS: {t}", w.server.name);
        }
        let c = shared.counters(w.target);
        let h = &w.latency;
        println!(
            "  {:<11} {} {} (p50 {}, p99 {}, p99.9 {}, max {}); {:.1} MiB checked; churn {}; abusive {}; expected resets {}; failed checks {}",
            w.server.name,
            match w.target {
                Target::Echo => "echoes",
                Target::App => "requests",
            },
            c.ops.load(Relaxed),
            us(h, 0.5),
            us(h, 0.99),
            us(h, 0.999),
            if h.is_empty() { "-".into() } else { format!("{}us", h.max()) },
            c.checked_bytes.load(Relaxed) as f64 / (1024.0 * 1024.0),
            c.churn.load(Relaxed),
            c.abuse.load(Relaxed),
            c.resets.load(Relaxed),
            c.failures.load(Relaxed),
        );
    }
    let (n, min, max) = *shared.app_timeouts.lock().unwrap();
    if n > 0 {
        println!(
            "  app_server closed {n} idle or partial connections after {:.2} to {:.2} s",
            min.as_secs_f64(),
            max.as_secs_f64()
        );
    }
    for w in watched {
        log_summary(w);
    }
}

/// The size of a server's log and its most frequent kinds of line (digits masked).
fn log_summary(w: &Watched) {
    let Ok(text) = fs::read_to_string(&w.server.log) else {
        return;
    };
    let mut kinds: HashMap<String, u64> = HashMap::new();
    let (mut lines, mut warn, mut error, mut panics) = (0u64, 0u64, 0u64, 0u64);
    for line in text.lines() {
        lines += 1;
        warn += u64::from(line.contains("WARN"));
        error += u64::from(line.contains("ERROR"));
        panics += u64::from(line.contains("panicked"));
        let kind: String = line
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .take(90)
            .collect();
        *kinds.entry(kind).or_default() += 1;
    }
    println!(
        "  {} log ({}): {lines} lines, {warn} WARN, {error} ERROR, {panics} panics",
        w.server.name,
        w.server.log.display()
    );
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (kind, n) in kinds.iter().take(5) {
        println!("      {n:>7} x {kind}");
    }
}
