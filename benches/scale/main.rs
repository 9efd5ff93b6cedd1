//! The scale-out benchmark: rawloop's `echo_server` on 1 and 2 reactor threads and in 1 and 2
//! worker processes, beside tokio's multi-thread runtime with 1 and 2 workers (and tokio's
//! current-thread runtime as a reference), loaded by `examples/loadgen`; then two smaller
//! experiments: how connections are spread between two reactors (SO_REUSEPORT listeners,
//! one listener with EPOLLEXCLUSIVE, one plain shared listener), and whether a worker thread
//! touches a shared lock per request (futex calls and kernel lock contention counted with
//! `perf stat`).
//!
//! `cargo bench --bench scale` (3 interleaved rounds, about 7 minutes) or
//! `cargo bench --bench scale -- --quick` (a check that it all works, in seconds).
//!
//! Nothing is pinned: two reactor threads need both cores of a 2-core machine, and the load
//! generator shares them. The report says what such a machine can and cannot show.
//!
//! Server CPU time is the whole server's, read from `/proc` before and after each
//! load-generator run: every process of the server's tree (the supervisor and its worker
//! processes), each with all its threads, plus the children it reaped meanwhile. See
//! `procs.rs`.
//!
//! Nothing here can hang: every child has a deadline and is killed when it passes, and
//! children die with the runner (PR_SET_PDEATHSIG).

#[cfg(target_os = "linux")]
mod accept;
#[cfg(target_os = "linux")]
mod contention;
#[cfg(target_os = "linux")]
mod echo;
#[cfg(target_os = "linux")]
mod procs;
#[cfg(target_os = "linux")]
mod report;
#[cfg(target_os = "linux")]
#[path = "../support/mod.rs"]
mod support;

#[cfg(target_os = "linux")]
use {clap::Parser, std::fs, std::path::PathBuf, std::time::Instant};

#[cfg(target_os = "linux")]
#[derive(Parser, Debug, Clone)]
#[command(about = "Scale-out benchmark: rawloop on threads and processes beside tokio")]
pub struct Args {
    /// A short run (one round, half-second measurements) to check that the benchmark works.
    #[arg(long)]
    quick: bool,
    /// Rounds (every configuration in turn, A B C ... A B C); figures are medians over them.
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds measured per echo run.
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of load before each echo measurement.
    #[arg(long)]
    warmup: Option<f64>,
    /// Active connection counts, comma-separated.
    #[arg(long, value_delimiter = ',')]
    connections: Option<Vec<usize>>,
    /// Seconds of short connections per accept-distribution run.
    #[arg(long)]
    accept_duration: Option<f64>,
    /// Where the report and the raw figures go.
    #[arg(long, default_value = "target/bench-scale")]
    out: PathBuf,
    /// Use the binaries in target/release/examples as they are.
    #[arg(long)]
    no_build: bool,
    /// Skip the accept-distribution experiment.
    #[arg(long)]
    no_accept: bool,
    /// Skip the lock-contention check.
    #[arg(long)]
    no_contention: bool,
    /// Before measuring, wait up to this many seconds for the machine to be quiet (under 15%
    /// busy over a second); default 300, 0 with --quick. The report says how busy it was.
    #[arg(long)]
    wait_quiet: Option<f64>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// What is run, after `--quick` and the options.
#[cfg(target_os = "linux")]
pub struct Plan {
    pub quick: bool,
    pub rounds: usize,
    pub warmup: f64,
    pub duration: f64,
    pub connections: Vec<usize>,
    pub size: usize,
    pub accept_duration: f64,
}

#[cfg(target_os = "linux")]
impl Plan {
    fn new(args: &Args) -> Result<Plan, String> {
        let quick = args.quick;
        let plan = Plan {
            quick,
            rounds: args.rounds.unwrap_or(if quick { 1 } else { 3 }),
            warmup: args.warmup.unwrap_or(if quick { 0.2 } else { 1.0 }),
            duration: args.duration.unwrap_or(if quick { 0.5 } else { 5.0 }),
            connections: args.connections.clone().unwrap_or_else(|| vec![50, 200]),
            size: 64,
            accept_duration: args
                .accept_duration
                .unwrap_or(if quick { 0.5 } else { 3.0 }),
        };
        if plan.rounds == 0 || plan.connections.is_empty() || plan.connections.contains(&0) {
            return Err("--rounds and --connections must be at least 1".into());
        }
        Ok(plan)
    }
}

/// Where the runner finds the binaries and puts its scratch files.
#[cfg(target_os = "linux")]
pub struct Env {
    pub bin: PathBuf,
    pub scratch: PathBuf,
}

#[cfg(target_os = "linux")]
fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("scale: {e}");
        std::process::exit(1);
    }
}

#[cfg(target_os = "linux")]
fn run(args: &Args) -> Result<(), String> {
    let plan = Plan::new(args)?;
    let bin = support::examples_dir()?;
    if !args.no_build {
        support::build_examples(&["echo_server", "loadgen", "peer_tokio_echo"])?;
    }
    fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let scratch = args.out.join("scratch");
    fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let nofile = support::raise_nofile();
    let env = Env { bin, scratch };

    let machine = report::Machine::read();
    // How busy the machine was just before: another benchmark running meanwhile would show.
    let wait = args
        .wait_quiet
        .unwrap_or(if args.quick { 0.0 } else { 300.0 });
    let waited = Instant::now();
    let mut before = procs::busy_sample(1.0);
    while before > 0.15 && waited.elapsed().as_secs_f64() < wait {
        eprintln!(
            "scale: the machine is {:.0}% busy; waiting for it to be quiet ({:.0} of {wait:.0} s)",
            before * 100.0,
            waited.elapsed().as_secs_f64()
        );
        std::thread::sleep(std::time::Duration::from_secs(5));
        before = procs::busy_sample(1.0);
    }
    eprintln!(
        "scale: {}; open-file limit {nofile}; machine {:.0}% busy in the second before",
        machine.line(),
        before * 100.0
    );
    let configs = echo::configs();
    eprintln!(
        "scale: {} rounds x {} connection counts x {} servers, {} s warmup + {} s measured each",
        plan.rounds,
        plan.connections.len(),
        configs.len(),
        plan.warmup,
        plan.duration
    );

    let started = Instant::now();
    let runs = echo::rounds(&env, &plan, &configs, started);
    let accept = if args.no_accept {
        None
    } else {
        Some(accept::experiment(&plan, started))
    };
    let contention = if args.no_contention {
        None
    } else {
        Some(contention::check(&env, &plan))
    };
    let attribution = if args.no_contention {
        None
    } else {
        let a = contention::attribute(&env, &plan);
        match &a {
            Ok(a) => eprintln!(
                "perf record: {} kernel lock contentions in rawloop --threads 2's threads, most at {:?}",
                a.samples,
                a.sites.iter().take(4).collect::<Vec<_>>()
            ),
            Err(e) => eprintln!("perf record: {e}"),
        }
        Some(a)
    };

    let md = report::report(&report::Inputs {
        plan: &plan,
        machine: &machine,
        busy_before: before,
        command: if args.quick {
            "cargo bench --bench scale -- --quick"
        } else {
            "cargo bench --bench scale"
        },
        seconds: started.elapsed().as_secs_f64(),
        configs: &configs,
        runs: &runs,
        accept: accept.as_ref(),
        contention: contention.as_ref(),
        attribution: attribution.as_ref(),
    });
    println!("{md}");
    let results = args.out.join("results.md");
    fs::write(&results, &md).map_err(|e| format!("{}: {e}", results.display()))?;
    let raw = serde_json::json!({
        "echo": echo::raw(&runs),
        "accept": accept.as_ref().map(accept::raw),
        "contention": contention.as_ref().map(contention::raw),
        "lock_sites": attribution.as_ref().map(|a| match a {
            Ok(a) => serde_json::json!({ "samples": a.samples, "sites": a.sites }),
            Err(e) => serde_json::json!({ "error": e }),
        }),
    });
    fs::write(
        args.out.join("runs.json"),
        serde_json::to_string_pretty(&raw).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    eprintln!(
        "scale: done in {:.0} s; report in {}",
        started.elapsed().as_secs_f64(),
        results.display()
    );
    Ok(())
}

// The experiments are Linux's: epoll and EPOLLEXCLUSIVE, /proc, perf.
#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("scale: needs Linux (epoll, /proc and perf)");
    std::process::exit(2);
}
