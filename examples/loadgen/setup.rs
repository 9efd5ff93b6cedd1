//! Opening the connections before the warmup, idle or active first: the order in which the
//! server accepts and registers them, which is the order in which select(2) and poll(2) scan
//! them.

use std::time::{Duration, Instant};

use mio::Events;

use crate::connection::{ConnState, LoadGen, Role};
use crate::fail;

/// Idle connections connecting at a time, so that the listen backlog holds them.
const BATCH: usize = 64;

/// Opens `count` idle connections and checks each with a one-byte echo, so that the server
/// has accepted and registered every one of them when this returns; then they are parked.
pub fn open_idle(
    gen: &mut LoadGen,
    events: &mut Events,
    count: usize,
    deadline: Instant,
) -> Result<(), String> {
    let mut opened = 0;
    loop {
        let parked = gen.count(Role::Idle, ConnState::Parked);
        if parked == count {
            return Ok(());
        }
        let in_flight = opened - parked;
        for _ in 0..(BATCH - in_flight).min(count - opened) {
            gen.connect(Role::Idle, None)?;
            opened += 1;
        }
        if Instant::now() > deadline {
            return fail(format!(
                "only {parked} of {count} idle connections were open and answering by the setup deadline"
            ));
        }
        gen.turn(events, Duration::from_millis(100))?;
    }
}

/// Opens `count` active connections, which start their closed loops as soon as they are
/// connected. With `first_reply`, returns only when each has had a whole reply, which proves
/// that the server has accepted and registered it (before connections opened later);
/// otherwise when each is connected.
pub fn open_active(
    gen: &mut LoadGen,
    events: &mut Events,
    count: usize,
    first_reply: bool,
    deadline: Instant,
) -> Result<(), String> {
    for _ in 0..count {
        gen.connect(Role::Active, None)?;
    }
    let waiting = |gen: &LoadGen| {
        gen.conns.iter().any(|c| {
            c.role == Role::Active
                && (c.state == ConnState::Connecting || (first_reply && c.seq == 0))
        })
    };
    while waiting(gen) {
        if Instant::now() > deadline {
            return fail(format!(
                "active connections not {} by the setup deadline",
                if first_reply {
                    "answered"
                } else {
                    "established"
                }
            ));
        }
        gen.turn(events, Duration::from_millis(100))?;
    }
    Ok(())
}
