//! A tokio program with a rawloop reactor nested in it, on one thread.
//!
//! The program is a tokio application (current-thread runtime): it serves its own TCP echo
//! service on `<port>+1` with tokio's types. In the same thread, a rawloop reactor serves an
//! echo server on `<port>`. tokio watches the reactor's readiness fd
//! ([`Reactor::readiness_fd`], the epoll or kqueue fd) through `AsyncFd`, and sleeps until
//! the reactor's next deadline ([`Reactor::next_deadline`]); when either says so it runs the
//! reactor's pending rounds ([`Reactor::run_pending`]), which never wait. tokio's fd
//! registration is edge-triggered, so the fd counts as quiet only once `run_pending` says
//! so.
//!
//! SIGINT or SIGTERM reach the reactor (its signal handling works inside any host): it
//! shuts down gracefully, the program notices [`Reactor::stop_requested`] and exits 0.
//!
//! `cargo run --example embed_tokio -- [--backend epoll|kqueue] [--grace-ms MS] <host> <port>`

mod common;

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rawloop::{Acceptor, Reactor};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    #[command(flatten)]
    grace: common::GraceArg,
    host: String,
    port: u16,
}

/// At most this many reactor rounds run before tokio gets the thread back.
const ROUNDS_PER_TURN: usize = 64;

/// tokio's own echo service: a task per connection.
async fn tokio_echo(listener: tokio::net::TcpListener) {
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("tokio accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

fn run(args: Args) -> io::Result<()> {
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    // A duplicate of the reactor's fd (the same epoll or kqueue instance), owned by tokio's
    // `AsyncFd`, so that it stays open for as long as tokio watches it.
    let fd: OwnedFd = match reactor.readiness_fd() {
        Some(fd) => fd.try_clone_to_owned()?,
        None => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the {} backend waits on no fd another loop could watch; use epoll or kqueue",
                    reactor.backend()
                ),
            ))
        }
    };
    let listener = common::listen(&args.host, args.port)?;
    let rawloop_addr = listener.local_addr()?;
    let acceptor = Acceptor::tcp(|stream, peer, cx| {
        log::info!("rawloop: accepted {peer}");
        cx.register(stream, rawloop::Interest::READABLE, common::Echo::new())?;
        Ok(())
    });
    reactor.register(listener, rawloop::Interest::READABLE, acceptor)?;
    reactor.shutdown_on_signals(args.grace.grace())?;
    let tokio_addr = SocketAddr::new(rawloop_addr.ip(), rawloop_addr.port() + 1);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let tokio_listener = tokio::net::TcpListener::bind(tokio_addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {tokio_addr}: {e}")))?;
        tokio::spawn(tokio_echo(tokio_listener));
        println!(
            "rawloop ({} backend) echoes on {rawloop_addr}, tokio on {tokio_addr}",
            reactor.backend()
        );
        // `with_interest` is deprecated because a raw fd may close under tokio; an `OwnedFd`
        // cannot, so the safe constructor is sound here.
        #[allow(deprecated)]
        let readiness = AsyncFd::with_interest(fd, tokio::io::Interest::READABLE)?;
        loop {
            let deadline = reactor.next_deadline();
            let wake_at = tokio::time::Instant::from_std(
                deadline.unwrap_or_else(|| std::time::Instant::now() + Duration::from_secs(3600)),
            );
            tokio::select! {
                guard = readiness.readable() => {
                    let mut guard = guard?;
                    if reactor.run_pending(ROUNDS_PER_TURN)? {
                        guard.clear_ready();
                    }
                }
                _ = tokio::time::sleep_until(wake_at), if deadline.is_some() => {
                    reactor.run_pending(ROUNDS_PER_TURN)?;
                }
            }
            if reactor.stop_requested() {
                break;
            }
        }
        drop(readiness);
        println!("shutting down");
        Ok(())
    })
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("embed_tokio", run(Args::parse()))
}
