//! Signals as reactor events, and the graceful shutdown they start, on every backend
//! compiled here: in-process (a handler runs inside the loop, whichever thread the kernel
//! picked), and with the example servers as programs (SIGTERM under load lets every
//! connection finish and the program exit 0; a second signal stops at once).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rawloop::{Reactor, Selector};

/// A signal is watched by one reactor of the process at a time, and the tests of all
/// backends share this process: they take turns.
static SIGNALS: Mutex<()> = Mutex::new(());

fn take_turn() -> MutexGuard<'static, ()> {
    SIGNALS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A process-directed SIGUSR1 (kill, not raise: the kernel picks any thread that does not
/// block it) runs the handler inside the loop of the reactor that watches it.
fn signal_handler_runs_inside_the_loop<S: Selector>() {
    let _turn = take_turn();
    let mut reactor = Reactor::<S>::new().unwrap();
    let thread = thread::current().id();
    reactor
        .on_signal(Signal::SIGUSR1, move |cx, signal| {
            assert_eq!(signal, Signal::SIGUSR1);
            assert_eq!(
                thread::current().id(),
                thread,
                "the handler runs on the loop's thread"
            );
            cx.stop();
            Ok(())
        })
        .unwrap();
    let sender = thread::spawn(|| {
        thread::sleep(Duration::from_millis(50));
        kill(Pid::this(), Signal::SIGUSR1).unwrap();
    });
    let started = Instant::now();
    reactor.run().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    sender.join().unwrap();
    assert_eq!(reactor.stats().signals, 1, "{:?}", reactor.stats());
}

/// One reactor at a time watches a signal; once it stops, another may.
fn a_signal_has_one_watcher_at_a_time<S: Selector>() {
    let _turn = take_turn();
    let mut first = Reactor::<S>::new().unwrap();
    first.on_signal(Signal::SIGUSR2, |_, _| Ok(())).unwrap();
    let mut second = Reactor::<S>::new().unwrap();
    let err = second
        .on_signal(Signal::SIGUSR2, |_, _| Ok(()))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(first.context().remove_signal(Signal::SIGUSR2));
    second.on_signal(Signal::SIGUSR2, |_, _| Ok(())).unwrap();
    drop(second);
    let mut third = Reactor::<S>::new().unwrap();
    third.on_signal(Signal::SIGUSR2, |_, _| Ok(())).unwrap();
}

/// Starts example `name` on backend `S` with `args`, and waits until it accepts.
fn start_server<S: Selector>(name: &str, args: &[&str]) -> (common::ChildGuard, u16) {
    let port = common::free_port();
    let child = common::ChildGuard(
        Command::new(common::example_bin(name))
            .args(["--backend", common::backend_name::<S>()])
            .args(args)
            .args(["127.0.0.1", &port.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    drop(common::connect_retrying(port));
    (child, port)
}

fn stdout_of(mut child: common::ChildGuard) -> String {
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// SIGTERM while 20 clients are in the middle of 64 KiB echoes: the server stops accepting,
/// every client still gets its whole echo, and the program exits 0.
fn sigterm_under_load_finishes_every_echo_and_exits_zero<S: Selector>() {
    const CLIENTS: usize = 20;
    const SIZE: usize = 64 * 1024;
    let (mut server, port) = start_server::<S>("echo_server", &[]);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let payload: Vec<u8> = (0..SIZE).map(|j| ((i * 7 + j) % 251) as u8).collect();
            // Half now; the rest after the signal.
            stream.write_all(&payload[..SIZE / 2]).unwrap();
            (stream, payload)
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    common::send_signal(&server.0, Signal::SIGTERM);
    thread::sleep(Duration::from_millis(100));
    let late = TcpStream::connect(("127.0.0.1", port));
    assert!(late.is_err(), "the listener closed at the signal");
    let workers: Vec<_> = clients
        .into_iter()
        .map(|(mut stream, payload)| {
            thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let rest = payload[SIZE / 2..].to_vec();
                let sender = thread::spawn(move || {
                    writer.write_all(&rest).unwrap();
                    writer.shutdown(Shutdown::Write).unwrap();
                });
                let mut echoed = Vec::new();
                stream.read_to_end(&mut echoed).unwrap();
                sender.join().unwrap();
                assert!(
                    echoed == payload,
                    "{} of {SIZE} bytes came back",
                    echoed.len()
                );
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let status = common::wait_exit(&mut server.0, Duration::from_secs(15));
    assert!(status.success(), "{status}");
    assert!(stdout_of(server).contains("shutting down"));
}

/// A connection that never finishes keeps a graceful shutdown waiting; a second SIGTERM
/// stops the server at once, and it still exits 0.
fn second_signal_stops_at_once<S: Selector>() {
    let (mut server, port) = start_server::<S>("echo_server", &["--grace-ms", "60000"]);
    let mut open = TcpStream::connect(("127.0.0.1", port)).unwrap();
    open.write_all(b"still here").unwrap();
    let mut buf = [0u8; 10];
    open.read_exact(&mut buf).unwrap();
    common::send_signal(&server.0, Signal::SIGTERM);
    thread::sleep(Duration::from_millis(300));
    assert!(
        server.try_wait().unwrap().is_none(),
        "waiting for the open connection"
    );
    let started = Instant::now();
    common::send_signal(&server.0, Signal::SIGTERM);
    let status = common::wait_exit(&mut server.0, Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// SIGTERM to `app_server` with complete requests accepted and not yet answered: each gets
/// its answer (not an EOF or a reset), then the program exits 0.
#[cfg(feature = "protocol")]
fn app_server_answers_accepted_requests_at_shutdown<S: Selector>() {
    use rawloop::protocol::{request_search, Decoder};
    const CLIENTS: usize = 30;
    let (mut server, port) = start_server::<S>("app_server", &[]);
    let frame = request_search("morpheus").encode().unwrap();
    // Each client sends all but the last byte, so every request is in flight at the signal.
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s.write_all(&frame[..frame.len() - 1]).unwrap();
            s
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    common::send_signal(&server.0, Signal::SIGTERM);
    thread::sleep(Duration::from_millis(100));
    for mut s in clients {
        s.write_all(&frame[frame.len() - 1..]).unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).unwrap();
        let mut decoder = Decoder::new();
        decoder.feed(&answer);
        let response = decoder.next_message().unwrap().expect("a whole response");
        assert_eq!(
            response.content,
            "{\"result\": \"Follow the white rabbit. \u{1f430}\"}".as_bytes()
        );
    }
    let status = common::wait_exit(&mut server.0, Duration::from_secs(15));
    assert!(status.success(), "{status}");
}

common::per_backend!(
    signal_handler_runs_inside_the_loop,
    a_signal_has_one_watcher_at_a_time,
    sigterm_under_load_finishes_every_echo_and_exits_zero,
    second_signal_stops_at_once,
    #[cfg(feature = "protocol")]
    app_server_answers_accepted_requests_at_shutdown,
);
