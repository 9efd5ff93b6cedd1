//! A TCP echo server on tokio's current-thread runtime, a peer that `benches/compare`
//! measures rawloop against.
//!
//! It does the same work as rawloop's `echo_server`: one thread, each connection read into a
//! 16 KiB buffer and the bytes written straight back. `write_all` handles partial writes: it
//! waits for the socket to become writable and writes the rest, and the task reads nothing
//! meanwhile. This is the plain tokio echo server of tokio's own examples, on one thread.
//!
//! With a third argument N > 0 it runs on tokio's multi-thread runtime with N workers instead
//! (the scale-out benchmark's peer).
//!
//! `cargo run --release --example peer_tokio_echo -- <host> <port> [workers]` (port 0 picks a
//! free one; the first line printed names it). It stops on SIGTERM or SIGINT (the default
//! action).

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (host, port, workers) = match args.as_slice() {
        [host, port] => (host, port, 0),
        [host, port, workers] => (host, port, workers.parse::<usize>().unwrap_or(0)),
        _ => {
            eprintln!("usage: peer_tokio_echo <host> <port> [workers]");
            std::process::exit(2);
        }
    };
    let port: u16 = port
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("port: {e}")))?;
    let runtime = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_io()
            .build()?
    };
    runtime.block_on(async {
        let listener = TcpListener::bind((host.as_str(), port)).await?;
        println!(
            "starting up on {host} port {} (tokio {})",
            listener.local_addr()?.port(),
            if workers == 0 {
                "current-thread".to_string()
            } else {
                format!("multi-thread, {workers} workers")
            }
        );
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of fds (the runner raises the limit so that this does not happen):
                    // keep serving the connections already open.
                    eprintln!("accept: {e}");
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                if let Err(e) = echo(stream).await {
                    eprintln!("closing connection: {e}");
                }
            });
        }
    })
}
