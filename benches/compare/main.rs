//! The server comparison: rawloop's `echo_server` on every backend compiled here against echo
//! servers on mio and on tokio's current-thread runtime, loaded by `examples/loadgen`.
//!
//! `cargo bench --bench compare` (the full matrix, 5 rounds, about 40 minutes) or
//! `cargo bench --bench compare -- --quick` (a check that it all still works, in about a
//! minute).
//!
//! For every cell of the matrix (message size x active connections x idle connections) each
//! server is started on one core, loaded from the other, and stopped; the servers take turns
//! cell by cell (A B C ... A B C), and the whole matrix is repeated for `--rounds` rounds.
//! Each round also runs the registration-order cells (10 active + 10,000 idle connections,
//! 64 B, opened idle first and active first) on every rawloop backend and mio. The report
//! (Markdown, printed and written to `<out>/results.md`) gives the median of each figure over
//! the rounds with the median ratio to mio in the same round, the syscalls per echoed message
//! (rawloop's reactor counters, and `strace -c` as a cross-check), the registration-order
//! table, the Message protocol through `app_server` beside the floor server
//! (`peer_floor_message`, in turn round by round) with their syscalls per connection, and
//! the targets met or not (or level, where a ratio is inside the run-to-run spread). `<out>`
//! also gets every run's raw figures (`runs.json`) and a plot of CPU time per request against
//! idle connections (`cpu_vs_idle.svg`).
//!
//! Nothing here can hang: every child has a deadline and is killed when it passes, children
//! die with the runner (PR_SET_PDEATHSIG), and a server that cannot hold a configuration is
//! reported as such in its cell while the run goes on.

mod load;
mod message;
mod order;
mod plan;
mod plot;
mod report;
mod rounds;
mod servers;
mod stats;
mod strace;
#[path = "../support/mod.rs"]
mod support;
mod targets;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Parser;

use plan::{order_cells, order_servers, schedule, Plan};
use rounds::MessageRuns;
use servers::Env;
use support::{allowed_cpus, build_examples, examples_dir, pin_current, raise_nofile};

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
    /// Skip the registration-order cells (10 active + 10,000 idle, idle first and active
    /// first).
    #[arg(long)]
    no_order: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Builds the Message-protocol example `name` (or, with `--no-build`, checks that it is
/// built); Err says why it cannot run.
fn example(args: &Args, bin: &Path, name: &str) -> Result<(), String> {
    if args.no_message {
        Err("skipped with --no-message".to_string())
    } else if args.no_build {
        if bin.join(name).exists() {
            Ok(())
        } else {
            Err(format!("target/release/examples/{name} is not built"))
        }
    } else {
        build_examples(&[name]).map_err(|e| format!("{name} does not build ({e})"))
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
    let bin = examples_dir()?;
    if !args.no_build {
        build_examples(&["echo_server", "loadgen", "peer_mio_echo", "peer_tokio_echo"])?;
    }
    let app_server = example(args, &bin, "app_server");
    // The floor is measured only beside app_server.
    let floor = match &app_server {
        Ok(()) => example(args, &bin, "peer_floor_message"),
        Err(why) => Err(why.clone()),
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
        pin_current(c).map_err(|e| format!("pinning the runner: {e}"))?;
    }
    let env = Env {
        bin,
        scratch,
        server_cpu,
        loadgen_cpu,
    };
    let schedule = schedule(&plan);
    let runs_per_round: usize = schedule.iter().map(|(_, servers)| servers.len()).sum();
    eprintln!(
        "compare: {machine}; open-file limit {nofile}; servers on cpu {server_cpu:?}, load on cpu {loadgen_cpu:?}"
    );
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    eprintln!(
        "compare: CPU pinning is Linux-only (sched_setaffinity): servers and load generator are not pinned here"
    );
    eprintln!(
        "compare: {} rounds x ({} cells x {} servers + {} registration-order cells x {} servers), {} s warmup + {} s measured each",
        plan.rounds,
        plan::cells(&plan).len(),
        plan.servers.len(),
        order_cells(&plan).len(),
        order_servers(&plan).len(),
        plan.warmup,
        plan.duration
    );
    eprintln!("compare: {runs_per_round} echo runs per round");

    let started = Instant::now();
    let (runs, raw) = rounds::echo(&env, &plan, &schedule, started);
    let traced = if args.no_strace {
        Vec::new()
    } else {
        strace::cross_check(&env, &plan)
    };
    let message = match app_server {
        Err(why) => MessageRuns::Skipped(why),
        Ok(()) => MessageRuns::Ran(
            rounds::message(&env, &plan, floor.is_ok()),
            floor.as_ref().err().cloned(),
        ),
    };
    let message_traced = match &message {
        MessageRuns::Ran(..) if !args.no_strace => {
            strace::message_cross_check(&env, &plan, floor.is_ok())
        }
        _ => Vec::new(),
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
    md.push_str(&report::report(
        &plan,
        &runs,
        &traced,
        &message,
        &message_traced,
    ));
    let svg = args.out.join("cpu_vs_idle.svg");
    match plot::plot(&plan, &runs, &svg) {
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
