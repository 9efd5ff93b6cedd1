//! The connections' state machine on one mio poll: connect, send a request, read and check
//! its reply byte for byte, start the next one (or reconnect), park.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rawloop::protocol::Decoder;

use crate::fail;
use crate::report::Totals;
use crate::workload::{Workload, IDLE_PING};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Checked with one ping, then held open without traffic.
    Idle,
    /// Runs requests in a closed loop.
    Active,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    Warmup,
    Measure,
    /// No new request; the ones in flight finish.
    Drain,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConnState {
    Connecting,
    /// A request is being sent or its reply received.
    Busy,
    /// Whole reply in, no keep-alive: the server must close now, with no byte more.
    AwaitEof,
    /// Out of the poll set: an idle connection after its ping, or an active one after drain.
    Parked,
}

pub struct Conn {
    pub stream: TcpStream,
    pub role: Role,
    pub state: ConnState,
    /// Requests completed on this slot (across reconnects without keep-alive).
    pub seq: u64,
    pub sent: usize,
    pub received: usize,
    pub started: Instant,
    pub decoder: Option<Decoder>,
}

pub struct LoadGen<'w> {
    pub poll: Poll,
    pub addr: SocketAddr,
    pub workload: &'w Workload,
    pub conns: Vec<Conn>,
    pub phase: Phase,
    pub totals: Totals,
    pub buf: Vec<u8>,
}

impl<'w> LoadGen<'w> {
    /// Starts connection `slot` (a new one, or a reconnect for one-request connections).
    pub fn connect(&mut self, role: Role, slot: Option<usize>) -> Result<usize, String> {
        let mut stream =
            TcpStream::connect(self.addr).map_err(|e| format!("connect {}: {e}", self.addr))?;
        let slot = slot.unwrap_or(self.conns.len());
        self.poll
            .registry()
            .register(
                &mut stream,
                Token(slot),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("register: {e}"))?;
        let conn = Conn {
            stream,
            role,
            state: ConnState::Connecting,
            seq: self.conns.get(slot).map_or(0, |c| c.seq),
            sent: 0,
            received: 0,
            started: Instant::now(),
            decoder: self.workload.decoder(),
        };
        if slot == self.conns.len() {
            self.conns.push(conn);
        } else {
            self.conns[slot] = conn;
        }
        self.totals.connects += 1;
        Ok(slot)
    }

    fn request_of(&self, slot: usize) -> &'w [u8] {
        let conn = &self.conns[slot];
        match conn.role {
            Role::Idle => IDLE_PING,
            Role::Active => self.workload.request(slot, conn.seq),
        }
    }

    fn reply_of(&self, slot: usize) -> &'w [u8] {
        let conn = &self.conns[slot];
        match conn.role {
            Role::Idle => IDLE_PING,
            Role::Active => self.workload.reply(slot, conn.seq),
        }
    }

    pub fn park(&mut self, slot: usize) -> Result<(), String> {
        let conn = &mut self.conns[slot];
        conn.state = ConnState::Parked;
        self.poll
            .registry()
            .deregister(&mut conn.stream)
            .map_err(|e| format!("deregister: {e}"))
    }

    /// Writes what is left of `slot`'s request, until done or the socket is full.
    fn write_request(&mut self, slot: usize) -> Result<(), String> {
        let request = self.request_of(slot);
        let conn = &mut self.conns[slot];
        while conn.sent < request.len() {
            match conn.stream.write(&request[conn.sent..]) {
                Ok(0) => return fail(format!("connection {slot}: write returned 0")),
                Ok(n) => conn.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return fail(format!("connection {slot}: write: {e}")),
            }
        }
        Ok(())
    }

    /// Handles an event on `slot`: finishes a connect, writes, reads and checks, and starts
    /// the next request when one completes. `closed` says the event reported the peer's end
    /// of stream, so reading must go on until it is seen.
    fn ready(&mut self, slot: usize, closed: bool) -> Result<(), String> {
        if self.conns[slot].state == ConnState::Connecting {
            let conn = &mut self.conns[slot];
            if let Some(e) = conn.stream.take_error().map_err(|e| e.to_string())? {
                return fail(format!("connection {slot}: connect failed: {e}"));
            }
            match conn.stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return fail(format!("connection {slot}: connect failed: {e}")),
            }
            conn.stream
                .set_nodelay(true)
                .map_err(|e| format!("connection {slot}: nodelay: {e}"))?;
            conn.state = ConnState::Busy;
            if conn.role == Role::Active && self.workload.keep_alive() {
                // The latency of a one-request connection includes its connect; of a
                // keep-alive one, only the request.
                conn.started = Instant::now();
            }
        }
        if self.conns[slot].state == ConnState::Busy {
            self.write_request(slot)?;
        }
        loop {
            let reply = self.reply_of(slot);
            let conn = &mut self.conns[slot];
            let n = match conn.stream.read(&mut self.buf) {
                Ok(0) if conn.state == ConnState::AwaitEof => {
                    // The server closed after its response, as the protocol says.
                    return self.park(slot);
                }
                Ok(0) => {
                    return fail(format!(
                        "connection {slot} ({:?}): the server closed it with {} of {} reply bytes received",
                        conn.role,
                        conn.received,
                        reply.len()
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return fail(format!("connection {slot}: read: {e}")),
            };
            let got = &self.buf[..n];
            if conn.state != ConnState::Busy || conn.received + n > reply.len() {
                return fail(format!(
                    "connection {slot} ({:?}): {} bytes received beyond the {}-byte reply",
                    conn.role,
                    conn.received + n - reply.len().min(conn.received + n),
                    reply.len()
                ));
            }
            let want = &reply[conn.received..conn.received + n];
            if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
                return fail(format!(
                    "connection {slot}: reply {} differs at byte {}: got {:#04x}, expected {:#04x}",
                    conn.seq,
                    conn.received + i,
                    got[i],
                    want[i]
                ));
            }
            if let Some(decoder) = conn.decoder.as_mut() {
                decoder.feed(got);
            }
            conn.received += n;
            self.totals.bytes_checked += n as u64;
            if conn.received == reply.len() {
                self.complete(slot)?;
                match self.conns[slot].state {
                    // The reply to the next request cannot be here before the request:
                    // send it and wait for the edge that its reply raises.
                    ConnState::Busy => return self.write_request(slot),
                    // Read on: the end of stream may already be queued.
                    ConnState::AwaitEof => continue,
                    _ => return Ok(()),
                }
            }
            // A short read drained the socket, and the next byte raises a new edge; unless
            // the peer's end of stream was reported, which raises no further edge.
            if n < self.buf.len() && !closed {
                return Ok(());
            }
        }
    }

    /// A whole reply arrived on `slot`: record it and set up what comes next.
    fn complete(&mut self, slot: usize) -> Result<(), String> {
        let now = Instant::now();
        let conn = &mut self.conns[slot];
        self.workload
            .check_reply(conn.decoder.as_mut())
            .map_err(|e| format!("connection {slot}: reply {}: {e}", conn.seq))?;
        self.totals.exchanges += 1;
        conn.seq += 1;
        conn.sent = 0;
        conn.received = 0;
        if conn.role == Role::Idle {
            return self.park(slot);
        }
        if self.phase == Phase::Measure {
            let nanos = now.duration_since(conn.started).as_nanos() as u64;
            self.totals
                .latency
                .record(nanos.max(1))
                .map_err(|e| format!("latency {nanos} ns out of range: {e}"))?;
            self.totals.measured += 1;
        }
        conn.started = now;
        if !self.workload.keep_alive() {
            conn.state = ConnState::AwaitEof;
            return Ok(());
        }
        if self.phase == Phase::Drain {
            return self.park(slot);
        }
        Ok(())
    }

    /// One-request connections that the server closed are replaced, until the drain.
    fn reconnect_finished(&mut self, slot: usize) -> Result<(), String> {
        let conn = &self.conns[slot];
        if conn.role == Role::Active
            && conn.state == ConnState::Parked
            && !self.workload.keep_alive()
            && self.phase != Phase::Drain
        {
            self.connect(Role::Active, Some(slot))?;
        }
        Ok(())
    }

    /// Runs one poll and its events; returns how many events there were.
    pub fn turn(&mut self, events: &mut Events, timeout: Duration) -> Result<usize, String> {
        match self.poll.poll(events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return fail(format!("poll: {e}")),
        }
        let mut n = 0;
        for event in events.iter() {
            let slot = event.token().0;
            n += 1;
            if slot >= self.conns.len() || self.conns[slot].state == ConnState::Parked {
                continue;
            }
            self.ready(slot, event.is_read_closed() || event.is_error())?;
            self.reconnect_finished(slot)?;
        }
        Ok(n)
    }

    pub fn count(&self, role: Role, state: ConnState) -> usize {
        self.conns
            .iter()
            .filter(|c| c.role == role && c.state == state)
            .count()
    }
}
