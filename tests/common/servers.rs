//! Servers on threads of their own that hand back what they counted, and a server loaded by
//! many clients at once.

use std::fmt::Debug;
use std::io;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rawloop::{Reactor, Selector, Stats, Waker};

use super::fds::{open_fds, Fds};

/// How many clients the load tests run at once.
pub const CONNECTIONS: usize = 200;

/// A server running on its own thread until [`stop`](Running::stop), which returns what it
/// counted. (Like [`ServerThread`](super::ServerThread), but the thread hands back the
/// reactor's [`Stats`] or a server's own counters, so tests can check handler errors and
/// closes.)
pub struct Running<T: Send + 'static> {
    waker: Waker,
    join: Option<JoinHandle<io::Result<T>>>,
}

impl<T: Send + Debug + 'static> Running<T> {
    /// Runs `server` on a new thread: it sends its waker once it serves, serves until woken
    /// to stop, and returns what it counted.
    pub fn spawn<F>(server: F) -> Running<T>
    where
        F: FnOnce(mpsc::Sender<Waker>) -> io::Result<T> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let join = thread::spawn(move || server(tx));
        match rx.recv() {
            Ok(waker) => Running {
                waker,
                join: Some(join),
            },
            Err(_) => panic!("the server failed to start: {:?}", join.join()),
        }
    }
}

impl<T: Send + 'static> Running<T> {
    /// Stops the server and waits for its thread: every fd it owned is closed on return
    /// (libkqueue aside, see [`Fds::assert_back`]).
    pub fn stop(mut self) -> T {
        self.waker.stop().expect("waking the server to stop");
        let join = self.join.take().expect("stopped once");
        join_thread(join).expect("the server failed")
    }
}

impl<T: Send + 'static> Drop for Running<T> {
    fn drop(&mut self) {
        if let Some(join) = self.join.take() {
            let _ = self.waker.stop();
            let _ = join.join();
        }
    }
}

/// A `Reactor<S>` on a new thread: `setup` registers what it serves, then it runs until
/// stopped, and returns its counters.
pub fn reactor_server<S, F>(setup: F) -> Running<Stats>
where
    S: Selector + 'static,
    F: FnOnce(&mut Reactor<S>) -> io::Result<()> + Send + 'static,
{
    Running::spawn(move |tx| {
        let mut reactor = Reactor::<S>::new()?;
        setup(&mut reactor)?;
        tx.send(reactor.waker())
            .expect("the test waits for the waker");
        reactor.run()?;
        Ok(reactor.stats())
    })
}

/// Joins a thread, passing its panic on.
pub fn join_thread<T>(handle: JoinHandle<T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// A server under load, measured by `fds` (taken first, see [`Fds`]): `start` starts the
/// server and says where it listens, `clients` runs the clients against that and says what
/// they did. Then the server must close every connection its clients closed (its fd count
/// falls back to what it held idle before the clients came), and once stopped leave nothing
/// open. Returns what `start` gave and what the server counted.
pub fn serve_clients<S, A, T>(
    fds: &Fds,
    start: impl FnOnce() -> (A, Running<T>),
    clients: impl FnOnce(&A) -> String,
) -> (A, T)
where
    S: Selector,
    T: Send + 'static,
{
    super::raise_fd_limit(4096);
    let (at, server) = start();
    let idle = open_fds();
    let done = clients(&at);
    fds.wait_for(
        idle,
        Duration::from_secs(10),
        "the server did not close the connections its clients closed",
    );
    let counted = server.stop();
    fds.assert_back();
    eprintln!("{}: {done}", super::backend_name::<S>());
    (at, counted)
}
