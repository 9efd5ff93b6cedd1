//! Bounded output buffering for non-blocking writes.
//!
//! The rule every rawloop program follows: write at once; keep only what the socket did not
//! take; watch for writable only while something is kept; and stop reading while the kept
//! bytes are over a limit, so that a peer that sends faster than it reads cannot grow the
//! process's memory without bound.

use std::io::{self, Write};

use crate::Interest;

/// Bytes accepted for sending that the socket has not taken yet, up to a soft limit.
///
/// An empty buffer holds no allocation and takes 16 bytes, so that thousands of idle
/// connections cost next to nothing; the bytes a partial write left over live in a heap
/// block of their own only while they wait.
#[derive(Debug)]
pub struct OutBuf {
    tail: Option<Box<Tail>>,
    /// The soft limit, capped at `u32::MAX` bytes (4 GiB).
    limit: u32,
}

/// What a partial write left over: `data[sent..]` is still to be written.
#[derive(Debug)]
struct Tail {
    data: Vec<u8>,
    sent: usize,
}

impl OutBuf {
    /// An empty buffer that reports [`is_full`](OutBuf::is_full) once it holds `limit` bytes
    /// (a limit over 4 GiB counts as 4 GiB).
    pub fn new(limit: usize) -> OutBuf {
        OutBuf {
            tail: None,
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
        }
    }

    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.tail.as_ref().map_or(0, |t| t.data.len() - t.sent)
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.tail.is_none()
    }

    /// Whether the waiting bytes reached the limit: the caller should stop reading (and so
    /// stop producing output) until [`flush_to`](OutBuf::flush_to) drains some.
    pub fn is_full(&self) -> bool {
        self.len() >= self.limit as usize
    }

    /// The interest of a connection that sends through this buffer: writable while bytes
    /// wait, readable while it is still `reading` and the buffer has room. Empty when it
    /// wants neither: it has stopped reading and sent everything, so it is done.
    pub fn interest(&self, reading: bool) -> Interest {
        let mut interest = Interest::empty();
        if reading && !self.is_full() {
            interest |= Interest::READABLE;
        }
        if !self.is_empty() {
            interest |= Interest::WRITABLE;
        }
        interest
    }

    /// Sends `bytes` after whatever is waiting: straight to `w` when nothing is, keeping the
    /// part `w` did not take.
    pub fn write_or_queue<W: Write + ?Sized>(&mut self, w: &mut W, bytes: &[u8]) -> io::Result<()> {
        match &mut self.tail {
            Some(tail) => tail.data.extend_from_slice(bytes),
            None => {
                let done = write_some(w, bytes)?;
                if done < bytes.len() {
                    self.tail = Some(Box::new(Tail {
                        data: bytes[done..].to_vec(),
                        sent: 0,
                    }));
                }
            }
        }
        Ok(())
    }

    /// Writes waiting bytes to `w` until all are sent or `w` would block.
    pub fn flush_to<W: Write + ?Sized>(&mut self, w: &mut W) -> io::Result<()> {
        let Some(tail) = &mut self.tail else {
            return Ok(());
        };
        tail.sent += write_some(w, &tail.data[tail.sent..])?;
        if tail.sent == tail.data.len() {
            self.tail = None;
        } else if tail.sent > tail.data.len() / 2 {
            tail.data.drain(..tail.sent);
            tail.sent = 0;
        }
        Ok(())
    }
}

/// Writes as much of `bytes` as `w` takes now; `WouldBlock` is not an error here.
fn write_some<W: Write + ?Sized>(w: &mut W, bytes: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < bytes.len() {
        match w.write(&bytes[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `room` bytes, then would block.
    struct Narrow {
        taken: Vec<u8>,
        room: usize,
    }

    impl Write for Narrow {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_empty_buffer_is_small_and_holds_no_allocation() {
        assert_eq!(std::mem::size_of::<OutBuf>(), 16);
        let mut w = Narrow {
            taken: Vec::new(),
            room: 100,
        };
        let mut out = OutBuf::new(8);
        out.write_or_queue(&mut w, b"all of it").unwrap();
        assert!(out.is_empty() && out.tail.is_none());
    }

    #[test]
    fn partial_write_keeps_the_tail_in_order() {
        let mut w = Narrow {
            taken: Vec::new(),
            room: 3,
        };
        let mut out = OutBuf::new(8);
        out.write_or_queue(&mut w, b"hello").unwrap();
        assert_eq!(w.taken, b"hel");
        assert_eq!(out.len(), 2);
        out.write_or_queue(&mut w, b" world").unwrap();
        assert_eq!(out.len(), 8);
        assert!(out.is_full());
        w.room = 4;
        out.flush_to(&mut w).unwrap();
        assert_eq!(out.len(), 4);
        assert!(!out.is_full());
        w.room = 100;
        out.flush_to(&mut w).unwrap();
        assert!(out.is_empty());
        assert_eq!(w.taken, b"hello world");
    }
}
