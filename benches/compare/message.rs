//! The Message-protocol section: `app_server` on every backend, one request per connection
//! and keep-alive, beside the floor server, and their syscalls per connection.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::load::Measured;
use crate::plan::MessageServer;
use crate::report::fmt_value;
use crate::rounds::MessageRuns;
use crate::stats::{median, message_ratio, message_values, spread};
use crate::strace::Traced;

/// The references: the floor in each mode, and echo_server (its connections kept).
const FLOOR: (MessageServer, bool) = (MessageServer::Floor, false);
const FLOOR_KEPT: (MessageServer, bool) = (MessageServer::Floor, true);
const ECHO: (MessageServer, bool) = (MessageServer::Echo, true);

pub fn section(
    message: &MessageRuns,
    traced: &[(MessageServer, Result<Traced, String>)],
) -> String {
    let mut md = String::from("\n## Message protocol through app_server (50 connections)\n\n");
    let (runs, floor_skipped) = match message {
        MessageRuns::Skipped(why) => {
            let _ = writeln!(md, "Not measured: {why}.");
            return md;
        }
        MessageRuns::Ran(runs, floor_skipped) => (runs, floor_skipped),
    };
    md.push_str(
        "A search request (`request_search(\"morpheus\")`, a 146-byte frame) answered with its \
         148-byte response frame, checked byte for byte and decoded. One request per \
         connection: connect, request, response, the server closes (latency includes the \
         connect); keep-alive: many requests per connection. The floor \
         (`examples/peer_floor_message.rs`) makes only the calls no such server can avoid: \
         accept4, epoll_ctl, read, write, close and its share of epoll_wait; it runs in turn \
         with app_server round by round under the same load, and with keep-alive makes one \
         read and one write per request. `echo_server` (epoll) runs in turn with them under \
         64-byte echoes at 50 connections: what keep-alive is compared with. Median of the \
         rounds; each ratio is to the CPU of the server named, in the same round.\n\n\
         | server | mode | requests/s | CPU µs/req | CPU range | p50 µs | p99 µs | p99.9 µs |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    if let Some(why) = floor_skipped {
        let _ = writeln!(
            md,
            "| floor | one request per connection | not measured: {why} | | | | | |"
        );
    }
    let mut keys: Vec<(MessageServer, bool)> = runs.keys().map(|&(_, s, ka)| (s, ka)).collect();
    keys.sort();
    keys.dedup();
    for (server, keep_alive) in keys {
        let mode = if keep_alive {
            "keep-alive"
        } else {
            "one request per connection"
        };
        let values = |f: fn(&Measured) -> f64| message_values(runs, server, keep_alive, f);
        let cpu = values(|m| m.cpu_us);
        if cpu.is_empty() {
            let err = runs
                .iter()
                .find(|((_, s, ka), _)| *s == server && *ka == keep_alive)
                .and_then(|(_, o)| o.as_ref().err())
                .cloned()
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "| {} | {mode} | failed: {} | | | | | |",
                server.name(),
                err.replace('|', "/")
            );
            continue;
        }
        let m = |f: fn(&Measured) -> f64| median(values(f)).map_or("–".into(), fmt_value);
        let cpu_ratio = |than| message_ratio(runs, server, keep_alive, than, |m| m.cpu_us);
        let ratios: Vec<String> = match (server, keep_alive) {
            (MessageServer::App(_), false) => vec![(FLOOR, "floor")],
            (MessageServer::App(_), true) => vec![(ECHO, "echo_server"), (FLOOR_KEPT, "floor")],
            (MessageServer::Floor, true) => vec![(ECHO, "echo_server")],
            _ => vec![],
        }
        .into_iter()
        .filter_map(|(than, name)| Some(format!("{:.2}× {name}", cpu_ratio(than)?)))
        .collect();
        let ratio = if ratios.is_empty() {
            String::new()
        } else {
            format!(" ({})", ratios.join(", "))
        };
        let range = spread(&cpu).map_or("–".into(), |(lo, hi)| {
            format!("{}–{}", fmt_value(lo), fmt_value(hi))
        });
        let _ = writeln!(
            md,
            "| {} | {mode} | {} | {}{ratio} | {range} | {} | {} | {} |",
            server.name(),
            m(|x| x.rps),
            m(|x| x.cpu_us),
            m(|x| x.p50),
            m(|x| x.p99),
            m(|x| x.p999)
        );
    }

    if traced.is_empty() {
        md.push_str("\nSyscalls per connection: not measured (`--no-strace`).\n");
        return md;
    }
    md.push_str(
        "\nSyscalls per connection, one request per connection: `strace -c -f -p <server>` \
         attached for a whole load-generator run (50 connections; strace slows the server, so \
         it batches more events per wait than untraced), every syscall the server made \
         divided by the connections the load generator opened. \"Beyond the floor\": the \
         calls per connection that app_server makes and the floor does not (differences under \
         0.01 left out; read and recvfrom count as one call, as do write and sendto).\n\n\
         | server | syscalls/connection | breakdown per connection | beyond the floor |\n\
         |---|---:|---|---|\n",
    );
    let floor = traced.iter().find_map(|(s, t)| match (s, t) {
        (MessageServer::Floor, Ok(t)) => Some(t),
        _ => None,
    });
    for (s, t) in traced {
        match t {
            Ok(t) => {
                let beyond = match (s, floor) {
                    (MessageServer::Floor, _) => "–".to_string(),
                    (_, None) => "no floor measured".to_string(),
                    (_, Some(f)) => beyond_floor(t, f),
                };
                let _ = writeln!(
                    md,
                    "| {} | {:.3} | {} | {beyond} |",
                    s.name(),
                    t.per(t.connects),
                    t.breakdown(t.connects)
                );
            }
            Err(e) => {
                let _ = writeln!(md, "| {} | – | not measured: {e} | |", s.name());
            }
        }
    }
    md
}

/// The syscalls per connection of `t` above those of the floor `f`, by name: "name +0.998".
/// A receive is one call whether it is read or recvfrom, and a send whether write or sendto.
fn beyond_floor(t: &Traced, f: &Traced) -> String {
    let (mine, floor) = (per_call(t), per_call(f));
    let mut extra: Vec<(&str, f64)> = mine
        .iter()
        .map(|(&name, &n)| (name, n - floor.get(name).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d >= 0.01)
        .collect();
    extra.sort_by(|a, b| b.1.total_cmp(&a.1));
    if extra.is_empty() {
        return "nothing".into();
    }
    extra
        .iter()
        .map(|(name, d)| format!("{name} +{d:.3}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The syscalls per connection of `x` by [`same_call`] name.
fn per_call(x: &Traced) -> BTreeMap<&str, f64> {
    let mut calls: BTreeMap<&str, f64> = BTreeMap::new();
    for (name, &n) in &x.calls {
        *calls.entry(same_call(name)).or_default() += n as f64 / x.connects as f64;
    }
    calls
}

/// The name under which a syscall is compared with the floor's: the floor reads and writes
/// with read(2) and write(2), rawloop with recvfrom(2) and sendto(2).
fn same_call(name: &str) -> &str {
    match name {
        "read" | "recvfrom" => "read/recvfrom",
        "write" | "sendto" => "write/sendto",
        other => other,
    }
}
