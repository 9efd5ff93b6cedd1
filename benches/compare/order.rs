//! The registration-order section: select, poll and epoll at 10 active + 10,000 idle
//! connections with the active connections opened last (the load generator's default) and
//! first, CPU per request with the latency beside it.

use std::fmt::Write as _;

use crate::load::Measured;
use crate::plan::{order_cells, order_servers, Plan, ORDER_ACTIVE, ORDER_IDLE, ORDER_SIZE};
use crate::report::{fmt_value, size_name, thousands, with_ratio};
use crate::stats::{failures, range, summary, Runs};

pub fn section(plan: &Plan, runs: &Runs) -> String {
    let mut md = format!(
        "\n## Registration order: {ORDER_ACTIVE} active + {} idle connections, {}\n\n",
        thousands(ORDER_IDLE),
        size_name(ORDER_SIZE)
    );
    let cells = order_cells(plan);
    if cells.is_empty() {
        md.push_str("Not measured: skipped with `--no-order`.\n");
        return md;
    }
    md.push_str(
        "The order in which the load generator opens its connections is the order in which the \
         server registers them, and the order in which select(2) and poll(2) scan them: idle \
         first puts the active fds at the end (the load generator's default, as in the matrix \
         above), `loadgen --active-first` at the front (each active connection has had a reply \
         before the first idle one connects; the idle ones are still each checked with a \
         one-byte echo before the warm-up). mio runs on epoll (its poll backend cannot be \
         chosen), as the reference for the ratios. p99 stands beside CPU: a server can lower \
         its CPU per request by starving some connections, which shows in the tail. Median of \
         the rounds; ratio to mio in the same round and order.\n\n\
         | server | order | CPU µs/req | CPU range | p99 µs | p50 µs | p99.9 µs | requests/s | server CPU |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let cpu = |m: &Measured| m.cpu_us;
    for s in order_servers(plan) {
        for &cell in &cells {
            let _ = write!(md, "| {} | {} |", s.name(), cell.order.name());
            if summary(runs, plan.rounds, cell, s, cpu).is_none() {
                let f = failures(runs, plan.rounds, cell, s).unwrap_or_else(|| "not run".into());
                let _ = writeln!(md, " {f} | | | | | | |");
                continue;
            }
            let show = |f: fn(&Measured) -> f64| with_ratio(summary(runs, plan.rounds, cell, s, f));
            let spread = range(runs, plan.rounds, cell, s, cpu).map_or("–".into(), |(lo, hi)| {
                format!("{}–{}", fmt_value(lo), fmt_value(hi))
            });
            let util = summary(runs, plan.rounds, cell, s, |m| m.server_util * 100.0)
                .map_or("–".into(), |(v, _)| format!("{v:.0}%"));
            let warn =
                failures(runs, plan.rounds, cell, s).map_or(String::new(), |f| format!(" ⚠ {f}"));
            let _ = writeln!(
                md,
                " {}{warn} | {spread} | {} | {} | {} | {} | {util} |",
                show(|m| m.cpu_us),
                show(|m| m.p99),
                show(|m| m.p50),
                show(|m| m.p999),
                show(|m| m.rps),
            );
        }
    }
    md
}
