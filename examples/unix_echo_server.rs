//! A Unix-domain stream echo server on the reactor, after PyMOTW's `socket_echo_server_uds.py`:
//! the address is a path in the file system. A stale socket file left by an earlier run is
//! removed at start (but not a file that is not a socket, nor the socket of a server that is
//! still running); the socket file is removed again at shutdown (SIGINT or SIGTERM: graceful,
//! a second signal stops at once; the reactor's counters are printed on stderr).
//! Connections are echoed by the shared [`common::Echo`] handler.
//!
//! `cargo run --example unix_echo_server -- [--backend select|poll|epoll|kqueue] [--grace-ms MS]
//! [--idle-timeout-ms MS] [--max-connections N] <path>`

mod common;

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use rawloop::net::{self, UnixListenOptions};
use rawloop::server::{self, Limits};
use rawloop::{Reactor, Selector, Token};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    backend: common::BackendArg,
    #[command(flatten)]
    grace: common::GraceArg,
    #[command(flatten)]
    limits: common::LimitsArg,
    /// The socket's path, such as ./uds_socket.
    path: PathBuf,
}

/// A bound Unix listener that removes its socket file when dropped.
#[derive(Debug)]
struct SocketFile {
    listener: Option<UnixListener>,
    path: PathBuf,
}

impl SocketFile {
    /// Binds `path`, first removing a stale socket file there: one that is a socket and that
    /// nothing accepts connections on. Fails with `AddrInUse` if a server answers there, and
    /// with `AlreadyExists` if the path is not a socket.
    fn bind(path: impl AsRef<Path>) -> io::Result<SocketFile> {
        let path = path.as_ref();
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{} is in use by a running server", path.display()),
                    ));
                }
                log::info!("removing stale socket {}", path.display());
                std::fs::remove_file(path)?;
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = net::listen_unix(path, &UnixListenOptions::default())?;
        Ok(SocketFile {
            listener: Some(listener),
            path: path.to_path_buf(),
        })
    }

    /// The listener, to hand to [`serve`]; the file is still removed when `self` drops.
    fn take_listener(&mut self) -> Option<UnixListener> {
        self.listener.take()
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => log::debug!("removed {}", self.path.display()),
            Err(e) => log::warn!("removing {}: {e}", self.path.display()),
        }
    }
}

/// Registers `listener` within `limits` (an idle timeout, a cap on open connections) so that
/// every connection it accepts is echoed. Returns its token.
fn serve<S: Selector>(
    reactor: &mut Reactor<S>,
    listener: UnixListener,
    limits: Limits,
) -> io::Result<Token> {
    // Unix peers are usually unnamed, so connections are numbered for the log.
    let mut count = 0u64;
    let (token, _) = server::serve(&mut reactor.context(), listener, limits, move |_| {
        count += 1;
        log::info!("connection {count}: accepted");
        Ok(common::Echo::new())
    })?;
    Ok(token)
}

fn run(args: Args) -> io::Result<()> {
    let mut socket = SocketFile::bind(&args.path)?;
    let mut reactor = Reactor::with_backend(args.backend.backend)?;
    let listener = socket.take_listener().expect("just bound");
    serve(&mut reactor, listener, args.limits.limits())?;
    reactor.shutdown_on_signals(args.grace.grace())?;
    // Everything it serves with is open: the line says it is ready.
    println!(
        "starting up on {} ({} backend)",
        args.path.display(),
        reactor.backend()
    );
    reactor.run()?;
    eprintln!("reactor stats: {:?}", reactor.stats());
    // Close the connections and the listener before removing the file.
    drop(reactor);
    drop(socket);
    println!("shutting down");
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    common::exit_on_error("unix_echo_server", run(Args::parse()))
}
