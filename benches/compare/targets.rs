//! The targets of the benchmark issue, each met, not met, or level with what it is compared
//! to (no verdict on one round).

use std::fmt::Write as _;

use crate::load::Measured;
use crate::plan::{
    order_cells, BackendName, Cell, MessageServer, Order, Plan, Server, ORDER_ACTIVE, ORDER_IDLE,
};
use crate::report::{fmt_value, size_name, thousands};
use crate::rounds::MessageRuns;
use crate::stats::{
    median, message_ratio, message_values, range, spread, summary, syscalls_per_message, Runs,
};

/// The verdict on a target that compares two CPU figures: met or not by `ok`, unless the
/// ranges over the rounds of the two (`mine` and `theirs`, against what is named `other`)
/// overlap, which puts the ratio inside the run-to-run spread: then they are level. One
/// round measures no spread, and gets no verdict.
pub fn compared_verdict(
    rounds: usize,
    ok: bool,
    mine: Option<(f64, f64)>,
    theirs: Option<(f64, f64)>,
    other: &str,
) -> String {
    if rounds < 2 {
        return "**no verdict** (one round measures no run-to-run spread)".to_string();
    }
    match overlap(mine, theirs) {
        Some(ranges) => {
            format!("**level with {other}** (the ratio is inside the run-to-run spread: {ranges})")
        }
        None => verdict(ok).to_string(),
    }
}

/// The verdict on a target with a margin ("at most `limit` times what `other` costs"), from
/// the best estimate of the ratio (the median of the ratios in the same round, where the
/// two ran in the same rounds): beyond the limit it is not met, ranges overlapping or not
/// (overlapping ranges only hide a miss, they do not make one level); within it, it is met,
/// or level with `other` when the ranges overlap, as [`compared_verdict`] says.
fn margin_verdict(
    rounds: usize,
    ratio: f64,
    limit: f64,
    mine: Option<(f64, f64)>,
    theirs: Option<(f64, f64)>,
    other: &str,
) -> String {
    if rounds < 2 || ratio <= limit {
        return compared_verdict(rounds, ratio <= limit, mine, theirs, other);
    }
    match overlap(mine, theirs) {
        Some(ranges) => format!(
            "**not met** ({ratio:.2}× is beyond {limit:.2}×, though the ranges overlap: {ranges})"
        ),
        None => verdict(false).to_string(),
    }
}

/// The two ranges, written out, where both are known and they overlap.
fn overlap(mine: Option<(f64, f64)>, theirs: Option<(f64, f64)>) -> Option<String> {
    let ((lo, hi), (other_lo, other_hi)) = (mine?, theirs?);
    (lo <= other_hi && other_lo <= hi)
        .then(|| format!("{lo:.2}–{hi:.2} µs vs {other_lo:.2}–{other_hi:.2} µs"))
}

/// Two CPU figures compared: the medians, the median ratio in the same round where the two
/// ran in the same rounds, and each one's range over the rounds.
struct Pair {
    mine: f64,
    theirs: f64,
    same_round: Option<f64>,
    mine_range: Option<(f64, f64)>,
    theirs_range: Option<(f64, f64)>,
}

/// A target line with a margin: both figures, their ratio, the ratio in the same round (the
/// ratio of the figures where there is none) and the verdict.
fn margin_line(what: &str, rounds: usize, pair: Pair, limit: f64, other: &str) -> String {
    let Pair {
        mine,
        theirs,
        same_round,
        mine_range,
        theirs_range,
    } = pair;
    format!(
        "{what}: {mine:.2} µs vs {theirs:.2} µs ({:.2}×; {:.2}× in the same round): {}",
        mine / theirs,
        same_round.unwrap_or(f64::NAN),
        margin_verdict(
            rounds,
            same_round.unwrap_or(mine / theirs),
            limit,
            mine_range,
            theirs_range,
            other
        )
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**not met**"
    }
}

/// The targets of the benchmark issue, each met or not; a target that compares two CPU
/// figures whose ranges over the rounds overlap is neither: the two are level. With one round
/// there is no range, and such a target gets no verdict.
pub fn targets(plan: &Plan, runs: &Runs, message: &MessageRuns) -> String {
    let mut md = String::from("\n## Targets\n\n");
    let cpu = |m: &Measured| m.cpu_us;
    let epoll = Server::Rawloop(BackendName("epoll"));
    let med = |cell: Cell, s: Server| summary(runs, plan.rounds, cell, s, cpu).map(|x| x.0);
    let cpu_range = |cell: Cell, s: Server| range(runs, plan.rounds, cell, s, cpu);
    // The verdict on the CPU time of `s` in `cell` against that of `than` in `than_cell`.
    let compared = |ok: bool, cell: Cell, s: Server, than_cell: Cell, than: Server, other: &str| {
        compared_verdict(
            plan.rounds,
            ok,
            cpu_range(cell, s),
            cpu_range(than_cell, than),
            other,
        )
    };
    let first_idle = plan.idle.first().copied().unwrap_or(0);
    for &size in &plan.sizes {
        let cell = Cell::new(size, 50, first_idle);
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
                    let without = Cell::new(size, active, lo);
                    let with = Cell::new(size, active, hi);
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
        let cell = Cell::new(size, 50, first_idle);
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
                let cell = Cell::new(size, active, first_idle);
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
    md.push_str(&one_connection(plan, runs));
    md.push_str(&order_targets(plan, runs));
    md.push_str(&message_targets(plan, message));
    md
}

/// Issue 13, target 2: rawloop-epoll at one connection, against mio.
fn one_connection(plan: &Plan, runs: &Runs) -> String {
    let mut md = String::new();
    let epoll = Server::Rawloop(BackendName("epoll"));
    let idle = plan.idle.first().copied().unwrap_or(0);
    let cpu = |m: &Measured| m.cpu_us;
    for &size in &plan.sizes {
        let cell = Cell::new(size, 1, idle);
        let what = format!(
            "- rawloop-epoll CPU per request ≤ 1.03× mio's at one connection, {}{}",
            size_name(size),
            if idle == 0 {
                String::new()
            } else {
                format!(", {} idle", thousands(idle))
            }
        );
        let e = summary(runs, plan.rounds, cell, epoll, cpu);
        let m = summary(runs, plan.rounds, cell, Server::Mio, cpu);
        let _ = match (e, m) {
            (Some((e, same_round)), Some((m, _))) => writeln!(
                md,
                "{}",
                margin_line(
                    &what,
                    plan.rounds,
                    Pair {
                        mine: e,
                        theirs: m,
                        same_round,
                        mine_range: range(runs, plan.rounds, cell, epoll, cpu),
                        theirs_range: range(runs, plan.rounds, cell, Server::Mio, cpu),
                    },
                    1.03,
                    "mio"
                )
            ),
            _ if !plan.active.contains(&1) => writeln!(
                md,
                "{what}: not measured (the matrix has no active = 1 cell in this run)"
            ),
            _ => writeln!(md, "{what}: not measured (failed runs; see the tables)"),
        };
    }
    md
}

/// Issue 13, target 1: rawloop-poll and rawloop-select at 10 active + 10,000 idle
/// connections opened idle first, in CPU per request, with the tail and the other order
/// beside it.
fn order_targets(plan: &Plan, runs: &Runs) -> String {
    let mut md = String::new();
    let cells = order_cells(plan);
    let cpu = |m: &Measured| m.cpu_us;
    let p99 = |m: &Measured| m.p99;
    for name in ["poll", "select"] {
        let s = Server::Rawloop(BackendName(name));
        if !plan.servers.contains(&s) {
            continue;
        }
        let what = format!(
            "- rawloop-{name} ≤ {ORDER_TARGET_US:.0} µs CPU per request at {ORDER_ACTIVE} active + {} idle, idle first",
            thousands(ORDER_IDLE)
        );
        let (Some(&idle_first), Some(&active_first)) = (
            cells.iter().find(|c| c.order == Order::IdleFirst),
            cells.iter().find(|c| c.order == Order::ActiveFirst),
        ) else {
            let _ = writeln!(md, "{what}: not measured (`--no-order`)");
            continue;
        };
        let Some((x, _)) = summary(runs, plan.rounds, idle_first, s, cpu) else {
            let _ = writeln!(md, "{what}: not measured (failed runs; see the tables)");
            continue;
        };
        let (lo, hi) = range(runs, plan.rounds, idle_first, s, cpu).unwrap_or((x, x));
        let tail = summary(runs, plan.rounds, idle_first, s, p99)
            .map_or("–".into(), |(v, _)| fmt_value(v));
        let other = summary(runs, plan.rounds, active_first, s, cpu)
            .map_or("not measured".into(), |(v, _)| {
                format!("{} µs", fmt_value(v))
            });
        let note = if plan.rounds < 2 {
            " (one round)"
        } else if lo <= ORDER_TARGET_US && ORDER_TARGET_US < hi {
            " (the median; the range over the rounds straddles the target)"
        } else {
            ""
        };
        let _ = writeln!(
            md,
            "{what}: {} µs (range {}–{}; p99 {tail} µs; active first: {other}): {}{note}",
            fmt_value(x),
            fmt_value(lo),
            fmt_value(hi),
            verdict(x <= ORDER_TARGET_US)
        );
    }
    md
}

/// The CPU per request at 10 active + 10,000 idle that poll and select must reach.
const ORDER_TARGET_US: f64 = 130.0;

/// Issue 13, target 4: app_server one request per connection against the floor, and with
/// keep-alive against echo_server.
fn message_targets(plan: &Plan, message: &MessageRuns) -> String {
    let mut md = String::new();
    let app = MessageServer::App(BackendName("epoll"));
    let floor_line =
        "- app_server (epoll) one request per connection ≤ 1.05× the floor's CPU per request";
    let echo_line = "- app_server (epoll) keep-alive within 10% of echo_server's CPU per request at 50 connections, 64 B";
    let (messages, floor_skipped) = match message {
        MessageRuns::Skipped(why) => {
            let _ = writeln!(md, "{floor_line}: not measured ({why})");
            let _ = writeln!(md, "{echo_line}: not measured ({why})");
            return md;
        }
        MessageRuns::Ran(m, floor_skipped) => (m, floor_skipped),
    };
    let cpu = |m: &Measured| m.cpu_us;
    let figures = |s: MessageServer, keep_alive: bool| {
        let v = message_values(messages, s, keep_alive, cpu);
        Some((median(v.clone())?, spread(&v)))
    };

    let _ = match (figures(app, false), figures(MessageServer::Floor, false)) {
        (Some((a, a_range)), Some((f, f_range))) => writeln!(
            md,
            "{}",
            margin_line(
                floor_line,
                plan.rounds,
                Pair {
                    mine: a,
                    theirs: f,
                    same_round: message_ratio(
                        messages,
                        app,
                        false,
                        (MessageServer::Floor, false),
                        cpu
                    ),
                    mine_range: a_range,
                    theirs_range: f_range,
                },
                1.05,
                "the floor"
            )
        ),
        _ => writeln!(
            md,
            "{floor_line}: not measured ({})",
            floor_skipped
                .clone()
                .unwrap_or_else(|| "failed runs; see the table".into())
        ),
    };

    // What the message load costs a server that does nothing but read and write, beside it.
    let floor_kept = message_ratio(
        messages,
        MessageServer::Floor,
        true,
        (MessageServer::Echo, true),
        cpu,
    )
    .map_or(String::new(), |r| {
        format!(" (the keep-alive floor: {r:.2}× echo_server in the same round)")
    });
    let _ = match (figures(app, true), figures(MessageServer::Echo, true)) {
        (Some((a, a_range)), Some((e, e_range))) => writeln!(
            md,
            "{}{floor_kept}",
            margin_line(
                echo_line,
                plan.rounds,
                Pair {
                    mine: a,
                    theirs: e,
                    same_round: message_ratio(
                        messages,
                        app,
                        true,
                        (MessageServer::Echo, true),
                        cpu
                    ),
                    mine_range: a_range,
                    theirs_range: e_range,
                },
                1.10,
                "echo_server"
            )
        ),
        (None, _) => writeln!(
            md,
            "{echo_line}: not measured (app_server failed; see the table)"
        ),
        (_, None) => writeln!(
            md,
            "{echo_line}: not measured (echo_server failed or did not run; see the table)"
        ),
    };
    md
}
