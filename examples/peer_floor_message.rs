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
//! `cargo run --release --example peer_floor_message -- <host> <port>` (port 0 picks a free
//! one; the first line printed names it). It stops on SIGTERM or SIGINT (the default
//! action).

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

    /// Whether `bytes` hold a whole request frame.
    fn complete(bytes: &[u8]) -> bool {
        let [hi, lo, ..] = *bytes else {
            return false;
        };
        let header_len = usize::from(u16::from_be_bytes([hi, lo]));
        let Some(header) = bytes.get(2..2 + header_len) else {
            return false;
        };
        let key = b"\"content-length\": ";
        let Some(at) = header.windows(key.len()).position(|w| w == key) else {
            return true;
        };
        let digits = &header[at + key.len()..];
        let content_len = digits
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
        bytes.len() >= 2 + header_len + content_len
    }

    pub fn main() -> io::Result<()> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let [host, port] = args.as_slice() else {
            eprintln!("usage: peer_floor_message <host> <port>");
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
                    Ok(got) => {
                        let whole = if conn.partial.is_empty() {
                            complete(&buf[..got])
                        } else {
                            conn.partial.extend_from_slice(&buf[..got]);
                            complete(&conn.partial)
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
