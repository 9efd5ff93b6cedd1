//! A parent and a child process talking over a socketpair, after PyMOTW's
//! `socket_socketpair.py`: the parent sends `ping`, the child answers `pong`, and each
//! prints what it received, as the seed does (the first two lines in either order):
//!
//! ```text
//! in parent, sending message
//! in child, waiting for message
//! message from parent: b'ping'
//! response from child: b'pong'
//! ```
//!
//! Each end runs on a reactor of its own. The seed calls `os.fork()`; in Rust, `fork` is
//! `unsafe` (after it, the child may only do what is safe in a copy of a process whose other
//! threads vanished), so this program does what `multiprocessing`'s "spawn" does instead: it
//! starts itself again as the child (`std::process::Command`, which forks and executes at
//! once), and hands the child its end of the pair as standard input, the one way to pass a
//! descriptor to a new program without `unsafe` code. The child (`--child`, not for people)
//! takes the socket from its standard input. Exits 0 once the child has answered and ended,
//! 1 if either side fails or gets no message within `--timeout`.
//!
//! `cargo run --example socketpair -- [--backend B] [--timeout SECS]`

mod common;
mod pyfmt;
mod request;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, ExitCode, Stdio};
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use rawloop::buffer::OutBuf;
use rawloop::{Context, Event, Handler, Interest, Reactor, TimerId};
use request::Until;

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    /// Give up when no message came after this many seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = common::parse_seconds)]
    timeout: Duration,
    /// Run as the child: the socket is standard input.
    #[arg(long, hide = true)]
    child: bool,
}

/// The parent: starts the child with the other end, sends `ping`, prints the answer.
fn parent(args: &Args) -> io::Result<()> {
    let (parent, child) = rawloop::net::socketpair()?;
    let mut child_process = Command::new(std::env::current_exe()?)
        .args(["--child", "--backend", &args.backend.backend.to_string()])
        .arg(format!("--timeout={}", args.timeout.as_secs_f64()))
        .stdin(Stdio::from(OwnedFd::from(child)))
        .spawn()?;
    // The parent's copy of the child's end closed as `Stdio` went: as the seed's `child.close()`.

    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    println!("in parent, sending message");
    let answer = request::exchange(&mut reactor, parent, b"ping", Until::Data, args.timeout);
    let answer = match answer {
        Ok((parent, response)) => {
            println!("response from child: {}", pyfmt::bytes(&response));
            drop(parent); // the seed's parent.close()
            Ok(())
        }
        Err(e) => Err(e),
    };
    let status = child_process.wait()?;
    answer?;
    if !status.success() {
        return Err(io::Error::other(format!("the child failed: {status}")));
    }
    Ok(())
}

/// The child: reads one message, prints it, answers `pong`, closes once it is sent.
fn child(args: &Args) -> io::Result<()> {
    // Standard input is the child's end of the pair: a copy of it, as a stream.
    let socket = UnixStream::from(io::stdin().as_fd().try_clone_to_owned()?);
    socket.local_addr().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("--child needs a socket as standard input: {e}"),
        )
    })?;
    rawloop::net::set_nonblocking(&socket, true)?;
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    println!("in child, waiting for message");
    let ended = Rc::new(RefCell::new(None));
    let pong = Pong {
        out: OutBuf::new(1024),
        answered: false,
        timeout: args.timeout,
        ended: ended.clone(),
    };
    reactor.register(socket, Interest::READABLE, pong)?;
    while ended.borrow().is_none() {
        reactor.run_once(None)?;
    }
    ended.take().expect("checked")
}

/// The child's end: answers the first message with `pong`.
struct Pong {
    out: OutBuf,
    answered: bool,
    timeout: Duration,
    /// How the registration ended, once it has.
    ended: Rc<RefCell<Option<io::Result<()>>>>,
}

impl Handler<UnixStream> for Pong {
    fn registered(&mut self, _: &mut UnixStream, cx: &mut Context<'_>) -> io::Result<()> {
        cx.set_timer(self.timeout)?;
        Ok(())
    }

    fn ready(&mut self, s: &mut UnixStream, cx: &mut Context<'_>, ev: Event) -> io::Result<()> {
        if ev.is_writable() {
            self.out.flush_to(s)?;
        }
        if ev.is_readable() && !self.answered {
            let buf = cx.read_buffer();
            match s.read(buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the parent closed without a message",
                    ))
                }
                Ok(n) => {
                    println!("message from parent: {}", pyfmt::bytes(&buf[..n]));
                    io::stdout().flush()?;
                    self.answered = true;
                    self.out.write_or_queue(s, b"pong")?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        match self.out.interest(!self.answered) {
            done if done.is_empty() => cx.close(), // the seed's child.close()
            interest => cx.set_interest(interest)?,
        }
        Ok(())
    }

    fn timeout(&mut self, _: &mut UnixStream, _: &mut Context<'_>, _: TimerId) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no message from the parent within {:?}", self.timeout),
        ))
    }

    fn closed(&mut self, _: &mut UnixStream, _: &mut Context<'_>, error: Option<&io::Error>) {
        let result = match error {
            None => Ok(()),
            Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        *self.ended.borrow_mut() = Some(result);
    }
}

fn main() -> ExitCode {
    common::init_logging();
    let args = Args::parse();
    if args.child {
        common::exit_on_error("socketpair (child)", child(&args))
    } else {
        common::exit_on_error("socketpair", parent(&args))
    }
}
