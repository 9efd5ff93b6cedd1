//! The Markdown report: the CPU table, every figure, syscalls per message, then the
//! registration-order and Message sections and the targets; and how numbers are written in
//! it.

use std::fmt::Write as _;

use crate::load::{Measured, Stats};
use crate::plan::{cells, Cell, MessageServer, Plan, Server};
use crate::rounds::MessageRuns;
use crate::stats::{failures, median, range, summary, syscalls_per_message, Runs};
use crate::strace::Traced;
use crate::targets::targets;
use crate::{message, order};

pub fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{:.0}", v)
    } else if v >= 10.0 {
        format!("{:.1}", v)
    } else {
        format!("{:.2}", v)
    }
}

pub fn with_ratio(s: Option<(f64, Option<f64>)>) -> String {
    match s {
        None => "–".into(),
        Some((v, Some(r))) => format!("{} ({:.2}×)", fmt_value(v), r),
        Some((v, None)) => fmt_value(v),
    }
}

pub fn size_name(size: usize) -> String {
    if size >= 1024 && size % 1024 == 0 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

pub fn thousands(n: usize) -> String {
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

pub fn report(
    plan: &Plan,
    runs: &Runs,
    traced: &[(Server, Result<Traced, String>)],
    message: &MessageRuns,
    message_traced: &[(MessageServer, Result<Traced, String>)],
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
        let cell = Cell::new(size, 50, 0);
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
                    let _ = writeln!(
                        md,
                        "| {} | {:.3} | {} |",
                        s.name(),
                        t.per(t.exchanges),
                        t.breakdown(t.exchanges)
                    );
                }
                Err(e) => {
                    let _ = writeln!(md, "| {} | – | not measured: {e} |", s.name());
                }
            }
        }
    }

    md.push_str(&order::section(plan, runs));
    md.push_str(&message::section(message, message_traced));
    md.push_str(&targets(plan, runs, message));
    md
}
