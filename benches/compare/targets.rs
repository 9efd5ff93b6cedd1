//! The targets of the benchmark issue, each met, not met, or level with what it is compared
//! to (no verdict on one round).

use std::fmt::Write as _;

use crate::load::Measured;
use crate::plan::{BackendName, Cell, Plan, Server};
use crate::report::{size_name, thousands};
use crate::stats::{range, summary, syscalls_per_message, Runs};

/// The targets of the benchmark issue, each met or not; a target that compares two CPU
/// figures whose ranges over the rounds overlap is neither: the two are level. With one round
/// there is no range, and such a target gets no verdict.
pub fn targets(plan: &Plan, runs: &Runs) -> String {
    let mut md = String::from("\n## Targets\n\n");
    let cpu = |m: &Measured| m.cpu_us;
    let epoll = Server::Rawloop(BackendName("epoll"));
    let med = |cell: Cell, s: Server| summary(runs, plan.rounds, cell, s, cpu).map(|x| x.0);
    let verdict = |ok: bool| if ok { "**met**" } else { "**not met**" };
    // The verdict on the CPU time of `s` in `cell` against that of `than` in `than_cell`,
    // named `other`: met or not by `ok`, unless their ranges over the rounds overlap, which
    // puts the ratio inside the run-to-run spread. One round measures no spread.
    let compared = |ok: bool, cell: Cell, s: Server, than_cell: Cell, than: Server, other: &str| {
        if plan.rounds < 2 {
            return "**no verdict** (one round measures no run-to-run spread)".to_string();
        }
        let spread = |cell: Cell, s: Server| range(runs, plan.rounds, cell, s, cpu);
        match (spread(cell, s), spread(than_cell, than)) {
            (Some((lo, hi)), Some((other_lo, other_hi))) if lo <= other_hi && other_lo <= hi => {
                format!(
                    "**level with {other}** (the ratio is inside the run-to-run spread: \
                     {lo:.2}–{hi:.2} µs vs {other_lo:.2}–{other_hi:.2} µs)"
                )
            }
            _ => verdict(ok).to_string(),
        }
    };
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
                compared(e <= m, cell, epoll, cell, Server::Mio, "mio")
            );
        }
    }
    if let (Some(&lo), Some(&hi)) = (plan.idle.first(), plan.idle.last()) {
        if hi > lo {
            for &size in &plan.sizes {
                for &active in &plan.active {
                    let without = Cell {
                        size,
                        active,
                        idle: lo,
                    };
                    let with = Cell {
                        size,
                        active,
                        idle: hi,
                    };
                    let (a, b) = (med(without, epoll), med(with, epoll));
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
                            compared(b <= a * 1.10, with, epoll, without, epoll, &format!("{lo} idle"))
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
                        compared(x <= e * 1.15, cell, s, cell, epoll, "epoll")
                    );
                }
            }
        }
    }
    md
}
