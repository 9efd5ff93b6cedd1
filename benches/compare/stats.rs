//! The figures of many runs: medians over the rounds, ratios to mio, the run-to-run spread,
//! failures.

use std::collections::BTreeMap;

use crate::load::{Measured, Outcome};
use crate::plan::{Cell, MessageServer, Server};
use crate::rounds::MessageMap;

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

/// Every run of the matrix: (round, cell, server) -> outcome.
pub type Runs = BTreeMap<(usize, Cell, Server), Outcome>;

/// The median of `f` over the rounds, and the median of its ratio to mio's in each round.
pub fn summary(
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

/// The smallest and largest of `v`.
pub fn spread(v: &[f64]) -> Option<(f64, f64)> {
    let lo = v.iter().copied().reduce(f64::min)?;
    let hi = v.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

/// The smallest and largest value of `f` over the rounds.
pub fn range(
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
    spread(&v)
}

/// The values of `f` over the rounds of one Message server and mode, those that ran.
pub fn message_values(
    runs: &MessageMap,
    server: MessageServer,
    keep_alive: bool,
    f: fn(&Measured) -> f64,
) -> Vec<f64> {
    runs.iter()
        .filter(|((_, s, ka), _)| *s == server && *ka == keep_alive)
        .filter_map(|(_, o)| o.as_ref().ok().map(f))
        .collect()
}

/// The median over the rounds of the ratio of `f` for one Message server and mode to that of
/// the server and mode `than` in the same round.
pub fn message_ratio(
    runs: &MessageMap,
    server: MessageServer,
    keep_alive: bool,
    than: (MessageServer, bool),
    f: fn(&Measured) -> f64,
) -> Option<f64> {
    median(
        runs.iter()
            .filter(|((_, s, ka), _)| *s == server && *ka == keep_alive)
            .filter_map(|((round, _, _), o)| {
                let mine = o.as_ref().ok()?;
                let theirs = runs.get(&(*round, than.0, than.1))?.as_ref().ok()?;
                Some(f(mine) / f(theirs))
            })
            .collect(),
    )
}

/// The median over the rounds of rawloop's estimated syscalls per message,
/// (rounds + 2 x handler calls) / messages, from its reactor counters.
pub fn syscalls_per_message(runs: &Runs, rounds: usize, cell: Cell, server: Server) -> Option<f64> {
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
pub fn failures(runs: &Runs, rounds: usize, cell: Cell, server: Server) -> Option<String> {
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
