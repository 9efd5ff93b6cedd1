//! The Markdown report: the machine and what it can show, the echo tables, the
//! accept-distribution experiment and the lock-contention check.

use std::fmt::Write as _;
use std::fs;
use std::process::Command;

use crate::accept::{self, Mechanism};
use crate::contention::{self, EVENTS};
use crate::echo::{Config, Measured, Runs};
use crate::Plan;

/// The machine the figures come from.
pub struct Machine {
    pub model: String,
    pub cpus: usize,
    pub cores: Option<String>,
    pub hypervisor: Option<String>,
    pub kernel: String,
}

impl Machine {
    pub fn read() -> Machine {
        let text = Command::new("lscpu")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .unwrap_or_default();
        let get = |key: &str| {
            text.lines()
                .find(|l| l.starts_with(key))
                .map(|l| l[key.len()..].trim().to_string())
        };
        let cores = match (
            get("Core(s) per socket:"),
            get("Socket(s):"),
            get("Thread(s) per core:"),
        ) {
            (Some(c), Some(s), Some(t)) => {
                Some(format!("{s} socket × {c} cores × {t} thread(s) per core"))
            }
            _ => None,
        };
        Machine {
            model: get("Model name:").unwrap_or_else(|| "unknown cpu".into()),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cores,
            hypervisor: get("Hypervisor vendor:"),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        }
    }

    pub fn line(&self) -> String {
        let mut s = format!("{}, {} CPUs", self.model, self.cpus);
        if let Some(c) = &self.cores {
            let _ = write!(s, " ({c})");
        }
        if let Some(h) = &self.hypervisor {
            let _ = write!(s, ", a {h} virtual machine");
        }
        let _ = write!(s, ", Linux {}", self.kernel);
        s
    }
}

pub struct Inputs<'a> {
    pub plan: &'a Plan,
    pub machine: &'a Machine,
    pub busy_before: f64,
    pub command: &'a str,
    pub seconds: f64,
    pub configs: &'a [Config],
    pub runs: &'a Runs,
    pub accept: Option<&'a accept::Results>,
    pub contention: Option<&'a contention::Results>,
    pub attribution: Option<&'a Result<contention::Attribution, String>>,
}

pub fn median(mut v: Vec<f64>) -> Option<f64> {
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

/// Median, smallest and largest.
fn spread(v: Vec<f64>) -> Option<(f64, f64, f64)> {
    let lo = v.iter().copied().reduce(f64::min)?;
    let hi = v.iter().copied().reduce(f64::max)?;
    Some((median(v)?, lo, hi))
}

pub fn fmt_value(v: f64) -> String {
    if v >= 10_000.0 {
        thousands(v.round() as u64)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn thousands(n: u64) -> String {
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

/// "median (lo–hi)" of `f` over the rounds, or one value with one round.
fn cell(v: Vec<f64>, rounds: usize) -> String {
    match spread(v) {
        None => "–".into(),
        Some((m, _, _)) if rounds == 1 => fmt_value(m),
        Some((m, lo, hi)) => format!("{} ({}–{})", fmt_value(m), fmt_value(lo), fmt_value(hi)),
    }
}

fn values(
    runs: &Runs,
    rounds: usize,
    conns: usize,
    c: Config,
    f: impl Fn(&Measured) -> f64,
) -> Vec<f64> {
    (0..rounds)
        .filter_map(|r| match runs.get(&(r, conns, c)) {
            Some(Ok(m)) => Some(f(m)),
            _ => None,
        })
        .collect()
}

fn failures(runs: &Runs, rounds: usize, conns: usize, c: Config) -> Option<String> {
    let errors: Vec<&String> = (0..rounds)
        .filter_map(|r| match runs.get(&(r, conns, c)) {
            Some(Err(e)) => Some(e),
            _ => None,
        })
        .collect();
    let first: String = errors.first()?.chars().take(120).collect();
    Some(format!(
        "{} failed in {} of {rounds} rounds at {conns} connections: {}",
        c.name(),
        errors.len(),
        first.replace('|', "/")
    ))
}

pub fn report(i: &Inputs<'_>) -> String {
    let plan = i.plan;
    let mut md = String::new();
    let _ = writeln!(md, "# rawloop scale-out benchmark\n");
    let _ = writeln!(
        md,
        "Machine: {}. **This machine has {} cores**{}. Runner: `{}` ({:.0} s); {} interleaved round(s) \
         (every configuration in turn, A B C … A B C), each echo run {} s warmup + {} s measured, \
         {} B messages, closed loop (one request in flight per connection). The machine was {:.0}% busy \
         in the second before the runs started.\n",
        i.machine.line(),
        i.machine.cpus,
        if i.machine.hypervisor.is_some() {
            " (virtual CPUs: other guests may share the physical cores, one source of run-to-run noise)"
        } else {
            ""
        },
        i.command,
        i.seconds,
        plan.rounds,
        plan.warmup,
        plan.duration,
        plan.size,
        i.busy_before * 100.0
    );
    let _ = writeln!(
        md,
        "**The load generator competes with the server for the {} cores.** Nothing is pinned: a \
         server on 2 threads or 2 processes needs both cores, and `examples/loadgen` (one thread) \
         runs beside it on whichever core the scheduler gives it. Every server below therefore \
         shares the machine with a load generator that wants about one core of its own.\n",
        i.machine.cpus
    );
    let ok: Vec<&Measured> = i.runs.values().filter_map(|o| o.as_ref().ok()).collect();
    if let (Some(others), Some(steal)) = (
        spread(ok.iter().map(|m| m.other_cores).collect()),
        spread(ok.iter().map(|m| m.machine.steal).collect()),
    ) {
        let _ = writeln!(
            md,
            "Quiet check during the echo runs: processes other than the server and the load \
             generator used a median {:.2} cores (at most {:.2} in one run); the hypervisor stole a \
             median {:.2} cores (at most {:.2}).\n",
            others.0, others.2, steal.0, steal.2
        );
    }
    md.push_str(&echo_section(i));
    md.push_str(&two_cores(i));
    if let Some(a) = i.accept {
        md.push_str(&accept_section(plan, a));
    }
    md.push_str(&lock_section(plan, i.contention));
    if let Some(a) = i.attribution {
        md.push_str(&lock_sites(a));
    }
    md
}

fn echo_section(i: &Inputs<'_>) -> String {
    let (plan, runs, rounds) = (i.plan, i.runs, i.plan.rounds);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Echo throughput and CPU per request\n\n\
         Median over {rounds} round(s) (smallest–largest in parentheses). CPU per request is the \
         server's whole process tree — every thread of the server process, every worker process \
         and every child it reaped — from `/proc/<pid>/stat` before and after each load-generator \
         run, divided by every exchange the load generator completed in that run (warmup, window \
         and drain). Requests/s and latency are the load generator's, over its measured window.\n"
    );
    let _ = writeln!(
        md,
        "| server | connections | requests/s | CPU µs/request | p50 µs | p99 µs |\n|---|---:|---:|---:|---:|---:|"
    );
    let mut failed = Vec::new();
    for &conns in &plan.connections {
        for &c in i.configs {
            let v = |f: fn(&Measured) -> f64| cell(values(runs, rounds, conns, c, f), rounds);
            let _ = writeln!(
                md,
                "| {} | {conns} | {} | {} | {} | {} |",
                c.name(),
                v(|m| m.rps),
                v(|m| m.cpu_us),
                v(|m| m.p50),
                v(|m| m.p99)
            );
            failed.extend(failures(runs, rounds, conns, c));
        }
    }
    for f in &failed {
        let _ = writeln!(md, "\n- {f}");
    }
    // The accounting cross-check: processes' totals against the sum over their threads.
    let worst = runs
        .values()
        .filter_map(|o| o.as_ref().ok())
        .map(|m| (m.cpu_s - m.thread_sum_cpu_s).abs())
        .fold(None, |acc: Option<f64>, d| {
            Some(acc.map_or(d, |a| a.max(d)))
        });
    if let Some(worst) = worst {
        let _ = writeln!(
            md,
            "\nAccounting check: in every run the per-process total (what the table uses) and the \
             sum over every thread of every process of the tree differed by at most {:.0} ms \
             (each thread's and process's time is rounded to whole clock ticks).",
            worst * 1000.0
        );
    }
    let _ = writeln!(
        md,
        "\n### Where the CPU went\n\n\
         Medians over the rounds, in cores (CPU seconds per second of the run). *Server*: the \
         tree's CPU time over the load-generator run. *Load generator*: its own CPU over its \
         window. *Others*: the machine's busy time (`/proc/stat`) less steal, the server and the \
         load generator — other processes, which should be near 0 on a quiet machine. *Steal*: \
         time the hypervisor gave to other guests. *Top two threads*: the two busiest threads' (or \
         worker processes') shares of the server's CPU time — how evenly the connections were \
         spread. *Context switches*: of the server's threads, per request. *loadgen's figure*: the \
         load generator's own `--server-pid` CPU per request, over its window, which reads the \
         server's pid alone (right for threads; for worker processes it misses the workers, which \
         is why the tree is summed here).\n"
    );
    let _ = writeln!(
        md,
        "| server | connections | server | load generator | others | steal | top two threads | context switches/request | loadgen's figure µs/request |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for &conns in &plan.connections {
        for &c in i.configs {
            let med = |f: fn(&Measured) -> f64| median(values(runs, rounds, conns, c, f));
            let show = |x: Option<f64>| x.map_or("–".into(), fmt_value);
            let split = match (med(|m| m.top_shares.0), med(|m| m.top_shares.1)) {
                (Some(a), Some(b)) => format!("{:.0}% / {:.0}%", a * 100.0, b * 100.0),
                _ => "–".into(),
            };
            let _ = writeln!(
                md,
                "| {} | {conns} | {} | {} | {} | {} | {split} | {} | {} |",
                c.name(),
                show(med(|m| m.server_cores)),
                show(med(|m| m.loadgen_cores)),
                show(med(|m| m.other_cores)),
                show(med(|m| m.machine.steal)),
                show(med(|m| m.switches_per_request)),
                show(median(
                    (0..rounds)
                        .filter_map(|r| match runs.get(&(r, conns, c)) {
                            Some(Ok(m)) => m.cpu_us_root_only,
                            _ => None,
                        })
                        .collect()
                )),
            );
        }
    }
    let _ = writeln!(md, "\n### Ratios of the medians\n");
    let pairs = [
        (Config::Threads(2), Config::Threads(1)),
        (Config::Processes(2), Config::Processes(1)),
        (Config::TokioWorkers(2), Config::TokioWorkers(1)),
        (Config::Threads(2), Config::TokioWorkers(2)),
    ];
    for &conns in &plan.connections {
        for (a, b) in pairs {
            let m = |c: Config, f: fn(&Measured) -> f64| median(values(runs, rounds, conns, c, f));
            if let (Some(ra), Some(rb), Some(ca), Some(cb)) = (
                m(a, |x| x.rps),
                m(b, |x| x.rps),
                m(a, |x| x.cpu_us),
                m(b, |x| x.cpu_us),
            ) {
                let _ = writeln!(
                    md,
                    "- {conns} connections, {} vs {}: requests/s ×{:.2}, CPU per request ×{:.2}",
                    a.name(),
                    b.name(),
                    ra / rb,
                    ca / cb
                );
            }
        }
    }
    md.push_str(&observations(i));
    md
}

/// What the echo figures say beyond the tables, each statement only where the figures bear it
/// out.
fn observations(i: &Inputs<'_>) -> String {
    let (plan, runs, rounds) = (i.plan, i.runs, i.plan.rounds);
    let mut md = String::from("\n### Reading the echo figures\n\n");
    let med = |conns: usize, c: Config, f: fn(&Measured) -> f64| {
        median(values(runs, rounds, conns, c, f))
    };
    // Run-to-run noise: each cell's range over its median.
    if rounds > 1 {
        let mut cpu = Vec::new();
        let mut rps = Vec::new();
        for &conns in &plan.connections {
            for &c in i.configs {
                for (out, f) in [
                    (&mut cpu, (|m: &Measured| m.cpu_us) as fn(&Measured) -> f64),
                    (&mut rps, |m: &Measured| m.rps),
                ] {
                    if let Some((m, lo, hi)) = spread(values(runs, rounds, conns, c, f)) {
                        out.push((hi - lo) / m * 100.0);
                    }
                }
            }
        }
        let top = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        if let (Some(c), Some(r)) = (median(cpu.clone()), median(rps.clone())) {
            let _ = writeln!(
                md,
                "- **Noise.** The same configuration's CPU per request varied between rounds by a \
                 median {c:.0}% of its median (up to {:.0}%), its requests/s by {r:.0}% (up to \
                 {:.0}%). Differences between configurations smaller than that are not findings \
                 on this machine.",
                top(&cpu),
                top(&rps)
            );
        }
    }
    let first = plan.connections.first().copied().unwrap_or(50);
    // Idle cores with two reactors.
    if let (Some(b1), Some(b2), Some(s1), Some(s2)) = (
        med(first, Config::Threads(1), |m| m.machine.busy),
        med(first, Config::Threads(2), |m| m.machine.busy),
        med(first, Config::Threads(1), |m| m.switches_per_request),
        med(first, Config::Threads(2), |m| m.switches_per_request),
    ) {
        if b2 < b1 - 0.1 {
            let tokio = med(first, Config::TokioWorkers(2), |m| m.machine.busy);
            let _ = writeln!(
                md,
                "- **Two reactors leave the cores idle at {first} connections.** With one reactor \
                 the server and the load generator kept {b1:.2} of the 2 cores busy; with two, \
                 {b2:.2}{}. Three runnable threads on two cores take turns: the reactors run out of \
                 ready connections, sleep and are woken ({s2:.2} context switches per request \
                 against {s1:.2}), and the closed loop waits on those wake-ups (a wake-up on the \
                 other CPU is an interrupt, which on a virtual machine also costs an exit to the \
                 hypervisor). So \
                 requests/s falls with a second reactor here; this is the machine, not the \
                 reactor's design, and it says nothing about scaling on a machine with a core per \
                 reactor.",
                tokio.map_or(String::new(), |t| format!(
                    " (tokio with 2 workers: {t:.2})"
                ))
            );
        }
    }
    // Tail latency without work stealing.
    if let (Some(r), Some(t)) = (
        med(first, Config::Threads(2), |m| m.p99),
        med(first, Config::TokioWorkers(2), |m| m.p99),
    ) {
        if r > 1.5 * t {
            let _ = writeln!(
                md,
                "- **p99 on 2 threads: {} µs for rawloop against {} µs for tokio at {first} \
                 connections.** The likely cause: when the scheduler runs the load generator in place \
                 of one reactor, that reactor's connections wait for its next time slice, because \
                 reactors that share nothing cannot serve each other's connections, while tokio's \
                 workers steal each other's tasks. That is the price of no shared state on an \
                 oversubscribed machine; with a core per reactor (and the load elsewhere) it should \
                 not arise, which this machine cannot show.",
                fmt_value(r),
                fmt_value(t)
            );
        }
    }
    // Worker processes' spread.
    let shares = |c: Config| -> Vec<f64> {
        runs.iter()
            .filter(|((_, _, k), _)| *k == c)
            .filter_map(|(_, o)| o.as_ref().ok())
            .map(|m| m.top_shares.0 * 100.0)
            .collect()
    };
    if let (Some((p, _, pmax)), Some((t, _, tmax))) = (
        spread(shares(Config::Processes(2))),
        spread(shares(Config::Threads(2))),
    ) {
        if pmax > tmax + 10.0 {
            let _ = writeln!(
                md,
                "- **Worker processes spread connections unevenly.** With `--processes 2` the \
                 busier worker did a median {p:.0}% of the server's work, {pmax:.0}% in one run; \
                 with `--threads 2` the busier thread {t:.0}% (at most {tmax:.0}%). The workers \
                 share one listener registered without EPOLLEXCLUSIVE, and whichever wakes first \
                 accepts a batch of the load generator's connections (the accept experiment below \
                 shows the same); the threads each have an SO_REUSEPORT listener."
            );
        }
    }
    md
}

fn two_cores(i: &Inputs<'_>) -> String {
    format!(
        "\n## What a {n}-core machine can and cannot show\n\n\
         It can show:\n\n\
         - the cost of the scale-out machinery itself: whether a second reactor thread or worker \
         process makes each request dearer (CPU per request, context switches per request), which \
         shared locks or cache-line ping-pong would;\n\
         - whether anything is shared on the hot path: futex calls and kernel lock contention per \
         request (below), which do not depend on the core count;\n\
         - how the kernel spreads connections between two reactors (SO_REUSEPORT's hash, \
         EPOLLEXCLUSIVE's wake-ups), and what a thundering herd costs;\n\
         - that every configuration works and serves correctly under load (the load generator \
         checks every byte).\n\n\
         It cannot show:\n\n\
         - throughput scaling with cores: with the load generator needing about one of the {n} \
         cores, a server on 2 threads gets what is left of the machine — about one core's worth \
         in all, shared in time slices — so requests/s at 2 threads measures sharing one core's \
         worth of CPU between two reactors, not two cores' worth of work; near-linear scaling can \
         only be seen with the load on other cores or another machine;\n\
         - contention that appears only with many cores: cache-line transfers between sockets, \
         NUMA, a shared accept queue hit by 32 threads at once, the kernel's per-listener locks \
         under many-core accept storms (the SO_REUSEPORT design avoids these by construction, \
         but a 2-core machine cannot measure the difference);\n\
         - latency under a server that has idle cores to spare: here any server thread that \
         wakes may find both cores busy, which adds scheduling delay to p99.\n",
        n = i.machine.cpus
    )
}

fn accept_section(plan: &Plan, results: &accept::Results) -> String {
    let rounds = plan.rounds;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## Accept distribution: SO_REUSEPORT against EPOLLEXCLUSIVE\n\n\
         Two server threads, each with its own epoll (level-triggered), accepting at most 64 \
         connections per wake-up with `rawloop::net::accept_tcp` and echoing on what they \
         accepted; the port shared three ways (see `benches/scale/accept.rs`). *Churn*: 4 client \
         threads, each connecting, one 64-byte echo, close, for {} s. *Bursts*: 50 and 200 \
         long-lived connections opened together, one echo each, then counted on each thread. \
         An *empty wake-up* is a listener readiness whose first accept4 found nothing (EAGAIN): \
         another thread had taken the connection. Medians over {rounds} round(s), ranges in \
         parentheses; the client threads share the {} cores with the two server threads.\n",
        plan.accept_duration,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        md,
        "| mechanism | accepts/s | server CPU µs/connection | larger thread's share (churn) | empty wake-ups per 1000 accepts | accept4 EAGAIN per 1000 accepts | server context switches per 1000 accepts | burst 50: per thread | burst 200: per thread |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let churn = |m: Mechanism, f: &dyn Fn(&accept::Churn) -> f64| -> Vec<f64> {
        (0..rounds)
            .filter_map(|r| match results.get(&(r, m)) {
                Some(Ok(run)) => Some(f(&run.churn)),
                _ => None,
            })
            .collect()
    };
    let bursts = |m: Mechanism, n: usize| -> String {
        let shown: Vec<String> = (0..rounds)
            .filter_map(|r| match results.get(&(r, m)) {
                Some(Ok(run)) => run.bursts.iter().find(|(k, _)| *k == n).map(|(_, held)| {
                    held.iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join("/")
                }),
                _ => None,
            })
            .collect();
        if shown.is_empty() {
            "–".into()
        } else {
            shown.join(", ")
        }
    };
    let mut failed = Vec::new();
    for m in Mechanism::all() {
        let per_k = |f: fn(&accept::Churn) -> u64| {
            move |c: &accept::Churn| f(c) as f64 * 1000.0 / c.accepted.max(1) as f64
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.name(),
            cell(churn(m, &|c| c.accepts_per_s), rounds),
            cell(churn(m, &|c| c.cpu_us_per_conn), rounds),
            match spread(churn(m, &|c| c.top_share() * 100.0)) {
                None => "–".into(),
                Some((x, lo, hi)) if rounds > 1 => format!("{x:.0}% ({lo:.0}–{hi:.0}%)"),
                Some((x, _, _)) => format!("{x:.0}%"),
            },
            cell(churn(m, &per_k(|c| c.empty_wakes)), rounds),
            cell(churn(m, &per_k(|c| c.eagain)), rounds),
            cell(churn(m, &per_k(|c| c.switches)), rounds),
            bursts(m, accept::BURSTS[0]),
            bursts(m, accept::BURSTS[1]),
        );
        for r in 0..rounds {
            if let Some(Err(e)) = results.get(&(r, m)) {
                failed.push(format!("{} failed in round {}: {e}", m.name(), r + 1));
            }
            if let Some(Ok(run)) = results.get(&(r, m)) {
                if run.churn.client_errors > 0 {
                    failed.push(format!(
                        "{} round {}: {} client connections failed",
                        m.name(),
                        r + 1,
                        run.churn.client_errors
                    ));
                }
            }
        }
    }
    for f in &failed {
        let _ = writeln!(md, "\n- {f}");
    }
    md.push_str(&recommendation(rounds, results));
    md
}

/// The medians over the rounds of what the choice rests on, for one mechanism.
struct Figures {
    /// The busier thread's share of a burst, %, the worse of the two burst sizes.
    burst: f64,
    rate: f64,
    cpu: f64,
    switches: f64,
    empty: f64,
}

fn figures(rounds: usize, results: &accept::Results, m: Mechanism) -> Option<Figures> {
    let med = |f: &dyn Fn(&accept::Run) -> f64| {
        median(
            (0..rounds)
                .filter_map(|r| match results.get(&(r, m)) {
                    Some(Ok(run)) => Some(f(run)),
                    _ => None,
                })
                .collect(),
        )
    };
    let per_k = |n: u64, run: &accept::Run| n as f64 * 1000.0 / run.churn.accepted.max(1) as f64;
    Some(Figures {
        burst: med(&|run| {
            run.bursts
                .iter()
                .map(|(n, held)| {
                    held.iter().copied().max().unwrap_or(0) as f64 * 100.0 / (*n).max(1) as f64
                })
                .fold(0.0, f64::max)
        })?,
        rate: med(&|run| run.churn.accepts_per_s)?,
        cpu: med(&|run| run.churn.cpu_us_per_conn)?,
        switches: med(&|run| per_k(run.churn.switches, run))?,
        empty: med(&|run| per_k(run.churn.empty_wakes, run))?,
    })
}

/// The choice, from the figures: how evenly bursts of long-lived connections were spread,
/// and what churn cost.
fn recommendation(rounds: usize, results: &accept::Results) -> String {
    let get = |m| figures(rounds, results, m);
    let (Some(rp), Some(ex), Some(sh)) = (
        get(Mechanism::ReusePort),
        get(Mechanism::Exclusive),
        get(Mechanism::Shared),
    ) else {
        return "\n**No recommendation**: a mechanism failed in every round.\n".into();
    };
    let mut md = String::from("\n### Which the server layer should use\n\n");
    let _ = writeln!(
        md,
        "Measured (medians): the busier thread held {:.0}% of a burst of long-lived connections \
         with SO_REUSEPORT, {:.0}% with EPOLLEXCLUSIVE and {:.0}% with a plain shared listener (the \
         worse of the two burst sizes; 50% is even). Churn: {}, {} and {} accepts/s; {}, {} and {} \
         µs of server CPU per connection; {}, {} and {} server context switches per 1000 accepts; \
         {}, {} and {} empty wake-ups per 1000 accepts.\n",
        rp.burst,
        ex.burst,
        sh.burst,
        fmt_value(rp.rate),
        fmt_value(ex.rate),
        fmt_value(sh.rate),
        fmt_value(rp.cpu),
        fmt_value(ex.cpu),
        fmt_value(sh.cpu),
        fmt_value(rp.switches),
        fmt_value(ex.switches),
        fmt_value(sh.switches),
        fmt_value(rp.empty),
        fmt_value(ex.empty),
        fmt_value(sh.empty),
    );
    // What decides: how evenly long-lived connections are spread (the servers' load is
    // connections that stay), then what a connection costs.
    let more_even = rp.burst + 10.0 < ex.burst;
    let as_even = rp.burst <= ex.burst + 5.0;
    let not_dearer = rp.rate >= ex.rate * 0.9 && rp.cpu <= ex.cpu * 1.1;
    if more_even || (as_even && not_dearer) {
        let _ = writeln!(
            md,
            "**Keep SO_REUSEPORT for TCP and UDP** (what the layer does today). It spread the \
             long-lived connections {} EPOLLEXCLUSIVE, and it shares nothing: each reactor has its \
             own socket and accept queue, so no wake-up is arbitrated and no queue is contended \
             between threads — what one reactor per core on a large machine needs. With \
             EPOLLEXCLUSIVE the kernel wakes the first epoll on the listener's wait queue \
             (registration order) that has a thread waiting, and that thread accepts up to a \
             batch: connections land on whichever thread was idle when they arrived, not evenly, \
             and a server whose connections stay open keeps that imbalance for their lifetime.",
            if more_even {
                "far more evenly than"
            } else {
                "at least as evenly as"
            }
        );
        if ex.cpu < rp.cpu * 0.95 {
            let _ = writeln!(
                md,
                "\nThe trade-off, measured: under churn EPOLLEXCLUSIVE cost {:.0}% less server CPU per \
                 connection ({} against {} context switches per 1000 accepts): with one shared queue \
                 a woken thread finds more connections waiting and accepts them in one wake-up, \
                 while each SO_REUSEPORT queue sees half the arrivals and its thread sleeps and wakes \
                 more often. That is a cost per connection, paid once; uneven long-lived connections \
                 cost on every request after.",
                (1.0 - ex.cpu / rp.cpu) * 100.0,
                fmt_value(ex.switches),
                fmt_value(rp.switches)
            );
        }
        let _ = writeln!(
            md,
            "\nSO_REUSEPORT's limits, to document: the spread is by hash of the 4-tuple (even in \
             number, not in load), a reactor that stalls leaves the connections queued on its \
             socket waiting (no other thread can take them), and closing one listener of the group \
             drops what was queued on it."
        );
    } else {
        let _ = writeln!(
            md,
            "**The figures favour EPOLLEXCLUSIVE here** (SO_REUSEPORT {}), against the expectation \
             that SO_REUSEPORT spreads at least as evenly at no higher cost: repeat on a quiet \
             machine with more rounds before the layer changes.",
            if as_even {
                "cost more per connection"
            } else {
                "spread less evenly"
            }
        );
    }
    let _ = writeln!(
        md,
        "\nWhere one listener is shared — Unix-domain sockets on threads (they have no \
         SO_REUSEPORT), without EPOLLEXCLUSIVE today — EPOLLEXCLUSIVE {} ({} context switches per 1000 accepts against {} \
         for the plain shared listener; {} against {} µs of CPU per connection), and neither spreads a burst of \
         long-lived connections evenly ({:.0}% and {:.0}% on the busier thread). That is why worker \
         processes over TCP each get an SO_REUSEPORT listener of their own, bound by the \
         supervisor before forking so that a replacement worker inherits its predecessor's socket \
         and queue (the `--processes 2` rows above). For Unix sockets, {}; a smaller accept batch \
         on a shared listener may also spread bursts better, which is not measured here.",
        if ex.switches < sh.switches * 0.9 || ex.cpu < sh.cpu * 0.95 {
            "cut the herd's cost"
        } else {
            "did not measurably cut the herd's cost on two threads"
        },
        fmt_value(ex.switches),
        fmt_value(sh.switches),
        fmt_value(ex.cpu),
        fmt_value(sh.cpu),
        ex.burst,
        sh.burst,
        if ex.switches < sh.switches * 0.9 || ex.cpu < sh.cpu * 0.95 {
            "register the shared listener with EPOLLEXCLUSIVE (an exclusive-wake-up interest in \
             the epoll backend)"
        } else {
            "EPOLLEXCLUSIVE is not worth a new interest flag on the evidence of two threads; \
             measure again on a machine with more cores, where the herd grows with the threads"
        }
    );
    md
}

fn lock_section(plan: &Plan, results: Option<&contention::Results>) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## No shared lock on the hot path: how it was checked\n\n\
         **By reading the code** (`src/server/run.rs`, `src/reactor.rs`, `src/context.rs`, \
         `src/remote.rs`, `src/server/limits.rs`, `src/acceptor.rs`, `examples/common`). \
         `StreamServer::threads(N)` binds N TCP listeners with SO_REUSEPORT and moves one into each \
         worker thread, which makes its own `Reactor` there (`run_worker`). What a worker touches \
         per request on an open connection:\n\n\
         - its reactor's selector (its own epoll fd: `epoll_wait`, `epoll_ctl` only when the \
         interest changes), its `Events` buffer, and `Core`: the slab of slots, the timer heap, the \
         closed list, the counters, the read buffer lent to handlers, the round's clock cell — all \
         owned by the reactor, not behind any lock, not shared;\n\
         - the connection's handler (`Echo` and its `OutBuf`, which allocates nothing unless a write \
         is partial) and its socket;\n\
         - `log::debug!`'s level check: a read of the `log` crate's global level, which no thread \
         writes after start-up (a read-shared cache line, no lock).\n\n\
         Per accepted connection (not per request): its own listener, the `make` closure and the \
         optional `verify_request` closure, called through an `Arc` without touching the reference \
         count (read-only, no lock), and the per-reactor `Rc<ServeStats>` of the limits. In the \
         kernel, accept4 and close take the process's file-table lock, which the threads of one \
         process share (worker processes do not); that is per connection, not per request.\n\n\
         Shared objects, and when they are touched: the `Remote` post queue's `Mutex` \
         (`Arc<PostQueue>`), only when work is posted to the reactor and when the reactor runs \
         what was posted after its waker fires — in the server, at shutdown and when a worker \
         reports that it is done; `ServerHandle`'s `Mutex`, when a worker starts (it registers its \
         `Remote`) and at shutdown; the `warn_limited!` throttles' atomics, on error paths only \
         (refused connections, accept failures). Nothing shared is touched per request.\n"
    );
    let _ = writeln!(
        md,
        "**By measuring**: `perf stat --per-thread -e {}` attached to every thread of the server's \
         process tree (`-p` with the server's pid and its worker processes) during one load-generator \
         run: 50 connections, {} B, {} s warmup + {} s measured. A Rust `Mutex` makes no system call \
         when free; a futex call is a lock found held (wait) or a waiter woken (wake), so futex calls \
         per request measure user-space lock contention. `lock:contention_begin` counts kernel locks \
         found held. tokio's multi-thread runtime is the control: its workers park and wake each \
         other through futexes, so it shows what the method reports when threads do meet.\n",
        EVENTS.join(","),
        plan.size,
        plan.warmup,
        plan.duration.min(3.0)
    );
    let Some(results) = results else {
        md.push_str("Skipped (`--no-contention`).\n");
        return md;
    };
    let _ = writeln!(
        md,
        "| server | requests | futex calls | futex calls/request | kernel lock contentions/request | context switches/request | CPU migrations | requests per epoll wait |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut notes = Vec::new();
    for (config, t) in results {
        match t {
            Ok(t) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.4} | {:.4} | {:.3} | {} | {:.1} |",
                    config.name(),
                    thousands(t.exchanges),
                    thousands(t.total(EVENTS[0])),
                    t.per_request(EVENTS[0]),
                    t.per_request(EVENTS[1]),
                    t.per_request(EVENTS[2]),
                    thousands(t.total(EVENTS[3])),
                    t.exchanges as f64 / t.waits().max(1) as f64
                );
                let by_thread: Vec<String> = t
                    .threads
                    .iter()
                    .filter_map(|(name, e)| {
                        let f = e.get(EVENTS[0]).copied().unwrap_or(0);
                        (f > 0).then(|| format!("`{name}` {}", thousands(f)))
                    })
                    .collect();
                notes.push(format!(
                    "{}: futex calls by thread: {}; the two busiest threads did {:.0}% and {:.0}% \
                     of the server's CPU time",
                    config.name(),
                    if by_thread.is_empty() {
                        "none".to_string()
                    } else {
                        by_thread.join(", ")
                    },
                    t.top_shares.0 * 100.0,
                    t.top_shares.1 * 100.0
                ));
            }
            Err(e) => {
                let _ = writeln!(md, "| {} | – | – | – | – | – | – | – |", config.name());
                notes.push(format!("{}: not measured: {e}", config.name()));
            }
        }
    }
    md.push('\n');
    for n in notes {
        let _ = writeln!(md, "- {n}");
    }
    let find = |c: Config| {
        results
            .iter()
            .find(|(k, _)| *k == c)
            .and_then(|(_, t)| t.as_ref().ok())
    };
    if let (Some(one), Some(two)) = (find(Config::Threads(1)), find(Config::Threads(2))) {
        let futex = two.total(EVENTS[0]);
        let per_wait = |t: &contention::Traced| t.exchanges as f64 / t.waits().max(1) as f64;
        let (w2, w1) = (per_wait(two), per_wait(one));
        let _ = writeln!(
            md,
            "\nReading it: rawloop on 2 threads made {} futex call{} in {} requests{}. Each of its \
             epoll waits found {:.1} requests to serve, against {:.1} with one reactor, and its \
             threads switched context {:.3} times per request against {:.3}. {}",
            thousands(futex),
            if futex == 1 { "" } else { "s" },
            thousands(two.exchanges),
            if futex == 0 {
                ": no lock was ever found held"
            } else {
                ""
            },
            w2,
            w1,
            two.per_request(EVENTS[2]),
            one.per_request(EVENTS[2]),
            if w2 < w1 * 0.9 {
                format!(
                    "Two reactors sharing what the load generator leaves of {} cores each run out \
                     of ready connections sooner and sleep, so each wait and wake-up is spread over \
                     fewer requests: that, not a lock, is what a second reactor costs per request \
                     on this machine.",
                    std::thread::available_parallelism().map_or(0, |n| n.get())
                )
            } else {
                "The waits were about as full as with one reactor.".to_string()
            }
        );
    }
    md
}

/// What kind of lock a waiting function takes, for the functions seen in practice.
fn lock_kind(function: &str) -> Option<&'static str> {
    if function == "ep_poll_callback" {
        // Readiness delivered to a socket's epoll: in a worker's stack, the epoll of the peer
        // its reply reached (the load generator's).
        Some("receiver")
    } else if function.starts_with("ep_") || function.contains("epoll") {
        Some("own")
    } else if [
        "schedule",
        "wake_up",
        "rq_lock",
        "ttwu",
        "sched",
        "enqueue",
        "dequeue",
        "load_balance",
    ]
    .iter()
    .any(|k| function.contains(k))
    {
        Some("scheduler")
    } else {
        None
    }
}

fn lock_sites(a: &Result<contention::Attribution, String>) -> String {
    let mut md = String::from(
        "\n**Which kernel locks.** `perf record -a -g -e lock:contention_begin` over another run \
         of rawloop `--threads 2` (50 connections), each contention in the server's threads \
         attributed to the first function on its stack outside the lock code: ",
    );
    let a = match a {
        Err(e) => {
            let _ = writeln!(md, "not measured: {e}.");
            return md;
        }
        Ok(a) if a.samples == 0 => {
            md.push_str("no contention was recorded in the server's threads.\n");
            return md;
        }
        Ok(a) => a,
    };
    let pct = |n: u64| n as f64 * 100.0 / a.samples as f64;
    let shown: Vec<String> = a
        .sites
        .iter()
        .take(8)
        .map(|(f, n)| format!("`{f}` {:.0}%", pct(*n)))
        .collect();
    let _ = write!(
        md,
        "{} contentions: {}. ",
        thousands(a.samples),
        shown.join(", ")
    );
    let of = |kind: &str| -> f64 {
        a.sites
            .iter()
            .filter(|(f, _)| lock_kind(f) == Some(kind))
            .map(|(_, n)| pct(*n))
            .sum()
    };
    let (own, receiver, sched) = (of("own"), of("receiver"), of("scheduler"));
    let _ = writeln!(
        md,
        "{own:.0}% were on the reactor's own epoll instance (its ready-list lock, taken by its \
         epoll_wait while the network stack adds its sockets to the ready list as requests \
         arrive, in softirq context on the other core), {receiver:.0}% in `ep_poll_callback`, the \
         epoll of the socket a reply reaches (the load generator's, as loopback delivers a reply in \
         the sender's context), and {sched:.0}% on a CPU's run queue (wake-ups). {}",
        if own + receiver + sched >= 80.0 {
            "None of these is a lock the two reactors share: each reactor's epoll is its own, the \
             load generator's is the load's, and a run queue belongs to a CPU. A lock shared \
             between reactors would show here as one both workers wait for in the same function \
             per request (an accept queue, the file table, an allocator arena)."
        } else {
            "The rest is listed above; a function both workers wait in per request would be a \
             lock they share."
        }
    );
    md
}
