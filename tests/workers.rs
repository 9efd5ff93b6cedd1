//! The servers that serve on several threads or processes, run as programs on every backend
//! compiled here:
//!
//! * `threaded_echo_server` (PyMOTW's `socketserver_threaded.py`): over 40 connections the
//!   replies come from more than one `worker-N` thread, each reply is the thread's name and
//!   the data; SIGTERM stops it with status 0.
//! * `forking_echo_server` (PyMOTW's `socketserver_forking.py`): each reply carries the pid of
//!   a worker process whose parent is the program; a worker killed with SIGKILL is replaced
//!   by one that serves; SIGTERM to the program stops it with status 0 and leaves none of its
//!   processes; and, on Linux, when the program itself is killed with SIGKILL, its workers
//!   exit too.
//!
//! The checks of parent and child processes read /proc, so they run on Linux only.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;
#[cfg(target_os = "linux")]
use std::time::Instant;

use common::Program;
use nix::sys::signal::Signal;
use rawloop::Selector;

/// The longest any one step may take.
const WAIT: Duration = Duration::from_secs(10);

/// Starts example `name` on `backend` with `args` on a free loopback port, and waits until
/// it says it is serving. Returns it and the port.
fn start(name: &str, backend: &str, args: &[&str]) -> (Program, u16) {
    let port = common::free_port();
    let mut command = Command::new(common::example_bin(name));
    command
        .args(["--backend", backend])
        .args(args)
        .args(["127.0.0.1", &port.to_string()])
        .env("RUST_LOG", "warn");
    let mut program = Program::start(name, &mut command, None);
    program.line_where(WAIT, |l| l.starts_with("serving on 127.0.0.1:"));
    (program, port)
}

/// Sends `data` on a new connection and reads the reply until the server closes.
fn ask(port: u16, data: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(data.as_bytes()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// Splits `<who>: <data>` and checks the data.
fn who_answered(reply: &str, data: &str) -> String {
    let (who, echoed) = reply
        .split_once(": ")
        .unwrap_or_else(|| panic!("{reply:?} is not `<who>: <data>`"));
    assert_eq!(echoed, data, "{reply:?}");
    who.to_string()
}

// ---------------------------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------------------------

/// 40 connections on 2 threads: every reply is `worker-N: <data>`, and both threads answer
/// (the kernel spreads the connections over the two `SO_REUSEPORT` listeners by a hash of
/// each connection's addresses: all 40 on one thread would happen once in 2^39 runs).
fn threaded_replies_come_from_several_workers<S: Selector>() {
    let (server, port) = start(
        "threaded_echo_server",
        common::backend_name::<S>(),
        &["--threads", "2"],
    );
    let mut names = BTreeSet::new();
    for i in 0..40 {
        let data = format!("Hello, world {i}");
        let name = who_answered(&ask(port, &data), &data);
        let n = name
            .strip_prefix("worker-")
            .and_then(|n| n.parse::<usize>().ok());
        assert!(
            n.is_some_and(|n| n < 2),
            "{name:?} is not worker-0 or worker-1"
        );
        names.insert(name);
    }
    assert_eq!(names.len(), 2, "only {names:?} answered");
    server.signal(Signal::SIGTERM);
    let out = server.finish(WAIT).success();
    assert_eq!(out.stdout.last().map(String::as_str), Some("shutting down"));
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// The pids of the live children of `parent` (zombies included), from /proc.
#[cfg(target_os = "linux")]
fn children_of(parent: u32) -> BTreeSet<u32> {
    let mut children = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((_, ppid)) = stat(pid) {
            if ppid == parent {
                children.insert(pid);
            }
        }
    }
    children
}

/// The state letter and the parent of process `pid`, from /proc/<pid>/stat; `None` once it
/// is gone.
#[cfg(target_os = "linux")]
fn stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses; the last `)` ends it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether process `pid` has ended (gone, or a zombie nobody has reaped yet).
#[cfg(target_os = "linux")]
fn ended(pid: u32) -> bool {
    stat(pid).is_none_or(|(state, _)| state == 'Z')
}

/// Waits until `done` holds, at most [`WAIT`].
#[cfg(target_os = "linux")]
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Replies carry pids of the program's worker processes; each worker killed with SIGKILL is
/// replaced, and the replacements serve; SIGTERM stops the program with status 0 and no
/// process of it is left.
#[cfg(target_os = "linux")]
fn forking_workers_are_children_replaced_and_stopped<S: Selector>() {
    let (server, port) = start(
        "forking_echo_server",
        common::backend_name::<S>(),
        &["--processes", "2"],
    );
    let parent = server.child.id();
    let mut workers = BTreeSet::new();
    eventually("two workers", || {
        workers = children_of(parent);
        workers.len() == 2
    });
    for i in 0..10 {
        let data = format!("Hello, world {i}");
        let pid: u32 = who_answered(&ask(port, &data), &data).parse().unwrap();
        assert!(workers.contains(&pid), "{pid} is not one of {workers:?}");
    }

    // Kill every first worker, one at a time: each is replaced by a new child.
    for pid in workers.clone() {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        eventually("a replacement", || {
            let now = children_of(parent);
            !now.contains(&pid) && now.len() == 2
        });
    }
    let replacements = children_of(parent);
    assert!(replacements.is_disjoint(&workers), "{replacements:?}");
    for i in 0..10 {
        let data = format!("again {i}");
        let pid: u32 = who_answered(&ask(port, &data), &data).parse().unwrap();
        assert!(
            replacements.contains(&pid),
            "{pid} is not one of {replacements:?}"
        );
    }

    server.signal(Signal::SIGTERM);
    let out = server.finish(WAIT).success();
    assert_eq!(out.stdout.last().map(String::as_str), Some("shutting down"));
    for pid in replacements {
        eventually("the workers gone", || ended(pid));
    }
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still served"
    );
}

/// SIGKILL to the program, which cannot pass anything on: the kernel tells its workers
/// (`PR_SET_PDEATHSIG`), and they exit.
#[cfg(target_os = "linux")]
fn forking_workers_exit_when_the_program_is_killed<S: Selector>() {
    let (server, port) = start(
        "forking_echo_server",
        common::backend_name::<S>(),
        &["--processes", "2"],
    );
    let parent = server.child.id();
    let mut workers = BTreeSet::new();
    eventually("two workers", || {
        workers = children_of(parent);
        workers.len() == 2
    });
    let data = "before the kill";
    let pid: u32 = who_answered(&ask(port, data), data).parse().unwrap();
    assert!(workers.contains(&pid));

    server.signal(Signal::SIGKILL);
    let out = server.finish(WAIT);
    assert_eq!(out.status.code(), None, "killed by a signal: {out:?}");
    for pid in workers {
        eventually("the orphaned workers gone", || ended(pid));
    }
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still served"
    );
}

common::per_backend!(
    threaded_replies_come_from_several_workers,
    #[cfg(target_os = "linux")]
    forking_workers_are_children_replaced_and_stopped,
    #[cfg(target_os = "linux")]
    forking_workers_exit_when_the_program_is_killed,
);
