//! The floor for a Message-protocol server that answers one request per connection: what
//! the kernel makes any such server pay, with no framework around it. `benches/compare` runs
//! it beside `app_server` so that app_server's CPU per request can be read as a multiple of
//! the floor.
//!
//! Per connection it makes exactly the calls no server can avoid: `accept4` (non-blocking,
//! close-on-exec), `epoll_ctl(ADD)`, one `read` of the request, one `write` of the answer,
//! `close` (which also takes the fd out of the epoll set), and its share of `epoll_wait`. The
//! answer is the reference answer to the one request the load generator sends
//! (`request_search("morpheus")`), encoded once at start; a request is complete when its
//! length prefix, header and announced content have arrived (the header is only searched
//! for `content-length`, not parsed). Level-triggered, one accept per listener event.
//!
//! With `--keep-alive` it keeps each connection and answers every whole request a read
//! brings (one write for all of them) until the client closes: the floor of a keep-alive
//! server, one `read` and one `write` per request and its share of `epoll_wait`.
//!
//! `cargo run --release --example peer_floor_message -- [--keep-alive] <host> <port>` (port 0
//! picks a free one; the first line printed names it). It stops on SIGTERM or SIGINT (the
//! default action).

// epoll is Linux's: elsewhere the floor would be kqueue's, which this program does not measure.
#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
    floor::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("peer_floor_message: needs epoll, which only Linux has");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod floor {
    use std::io;
    use std::net::TcpListener;
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};

    use nix::errno::Errno;
    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
    use nix::sys::socket::{accept4, SockFlag};
    use rawloop::protocol::{request_search, respond};

    const LISTENER: u64 = u64::MAX;

    /// A connection: its socket and, only if its request came in pieces, what arrived so far.
    struct Conn {
        fd: OwnedFd,
        partial: Vec<u8>,
    }

    /// The length of the request frame at the start of `bytes`, if all of it is there.
    fn frame_len(bytes: &[u8]) -> Option<usize> {
        let [hi, lo, ..] = *bytes else {
            return None;
        };
        let header_len = usize::from(u16::from_be_bytes([hi, lo]));
        let header = bytes.get(2..2 + header_len)?;
        let key = b"\"content-length\": ";
        let content_len = match header.windows(key.len()).position(|w| w == key) {
            Some(at) => header[at + key.len()..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .fold(0usize, |n, d| n * 10 + usize::from(d - b'0')),
            None => 0,
        };
        let len = 2 + header_len + content_len;
        (bytes.len() >= len).then_some(len)
    }

    /// With keep-alive: answers every whole frame at the start of `bytes` with one write, and
    /// returns how many bytes they took.
    fn answer_all(fd: &OwnedFd, bytes: &[u8], answer: &[u8], out: &mut Vec<u8>) -> usize {
        let mut taken = 0;
        out.clear();
        while let Some(len) = frame_len(&bytes[taken..]) {
            taken += len;
            out.extend_from_slice(answer);
        }
        if !out.is_empty() {
            // The load generator has one request in flight per connection: the answers fit
            // any socket buffer.
            let _ = nix::unistd::write(fd.as_fd(), out);
        }
        taken
    }

    pub fn main() -> io::Result<()> {
        let mut args: Vec<String> = std::env::args().skip(1).collect();
        let keep_alive = args.first().is_some_and(|a| a == "--keep-alive");
        if keep_alive {
            args.remove(0);
        }
        let [host, port] = args.as_slice() else {
            eprintln!("usage: peer_floor_message [--keep-alive] <host> <port>");
            std::process::exit(2);
        };
        let listener = TcpListener::bind((host.as_str(), port.parse::<u16>().unwrap_or(0)))?;
        listener.set_nonblocking(true)?;
        println!(
            "starting up on {host} port {} (floor)",
            listener.local_addr()?.port()
        );
        let answer = respond(&request_search("morpheus"))
            .encode()
            .map_err(io::Error::other)?;

        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(&listener, EpollEvent::new(EpollFlags::EPOLLIN, LISTENER))?;
        let mut conns: Vec<Option<Conn>> = Vec::new();
        let mut events = vec![EpollEvent::empty(); 1024];
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::new();
        loop {
            let n = match epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            for event in &events[..n] {
                if event.data() == LISTENER {
                    match accept4(
                        listener.as_fd(),
                        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                    ) {
                        Ok(fd) => {
                            let key = fd.as_raw_fd() as usize;
                            epoll.add(&fd, EpollEvent::new(EpollFlags::EPOLLIN, key as u64))?;
                            if conns.len() <= key {
                                conns.resize_with(key + 1, || None);
                            }
                            conns[key] = Some(Conn {
                                fd,
                                partial: Vec::new(),
                            });
                        }
                        Err(Errno::EAGAIN | Errno::ECONNABORTED | Errno::EINTR) => {}
                        Err(e) => eprintln!("accept4: {e}"),
                    }
                    continue;
                }
                let key = event.data() as usize;
                let Some(conn) = conns.get_mut(key).and_then(Option::as_mut) else {
                    continue;
                };
                let done = match nix::unistd::read(conn.fd.as_fd(), &mut buf) {
                    Ok(0) => true,
                    Ok(got) if keep_alive => {
                        if conn.partial.is_empty() {
                            let taken = answer_all(&conn.fd, &buf[..got], &answer, &mut out);
                            conn.partial.extend_from_slice(&buf[taken..got]);
                        } else {
                            conn.partial.extend_from_slice(&buf[..got]);
                            let taken = answer_all(&conn.fd, &conn.partial, &answer, &mut out);
                            conn.partial.drain(..taken);
                        }
                        false
                    }
                    Ok(got) => {
                        let whole = if conn.partial.is_empty() {
                            frame_len(&buf[..got]).is_some()
                        } else {
                            conn.partial.extend_from_slice(&buf[..got]);
                            frame_len(&conn.partial).is_some()
                        };
                        if whole {
                            // The answer fits any socket buffer: one write takes it all.
                            let _ = nix::unistd::write(conn.fd.as_fd(), &answer);
                        } else if conn.partial.is_empty() {
                            conn.partial.extend_from_slice(&buf[..got]);
                        }
                        whole
                    }
                    Err(Errno::EAGAIN | Errno::EINTR) => false,
                    Err(_) => true,
                };
                if done {
                    // Dropping the OwnedFd closes it, which takes it out of the epoll set.
                    conns[key] = None;
                }
            }
        }
    }
}
