//! Example programs under test: servers started on port 0, whose first line says where they
//! serve; their open fds (from /proc, on Linux); the counters they print on stderr when they
//! stop; clients run to their end, and the `<program>: <message>` of a client that fails.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Finished, Program};

/// The longest a program may take to say it is ready, to run to its end as a client, or to
/// stop once told to.
pub const WAIT: Duration = Duration::from_secs(30);

/// How long a server may take to close the connections its clients closed.
pub const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Example `name` with `args`, logging warnings and errors only.
pub fn example(name: &str, args: &[&str]) -> Command {
    let mut command = Command::new(super::example_bin(name));
    command.args(args).env("RUST_LOG", "warn");
    command
}

/// A server program that has said it is ready.
pub struct Server {
    pub program: Program,
    /// Its first line: where it serves, on which backend.
    pub first_line: String,
    /// The port in that line (`port <n>` or `('<host>', <n>)`); 0 for a server of a path.
    pub port: u16,
}

impl Server {
    /// Starts example `name` with `args` and reads its first line, which must name `backend`
    /// (`(<backend> backend)`). The fd limit is raised first, for the server to inherit: the
    /// load tests hold hundreds of connections.
    pub fn start(name: &str, args: &[&str], backend: &str) -> Server {
        super::raise_fd_limit(4096);
        let mut program = Program::start(name, &mut example(name, args), None);
        let first_line = program.line(WAIT);
        assert!(
            first_line.ends_with(&format!("({backend} backend)")),
            "{name}: the first line {first_line:?} does not name the {backend} backend"
        );
        let port = port_in(&first_line).unwrap_or(0);
        Server {
            program,
            first_line,
            port,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.program.child.id()
    }

    /// How many fds the server has open now (on Linux; `None` elsewhere).
    pub fn fds(&self) -> Option<usize> {
        process_fds(self.pid())
    }

    /// Waits up to [`CLOSE_WAIT`] for the server to hold exactly `want` fds again (as
    /// counted by [`fds`](Server::fds); nothing to wait for where that is `None`); panics
    /// with `what` otherwise.
    pub fn wait_fds(&self, want: Option<usize>, what: &str) {
        let Some(want) = want else { return };
        let deadline = Instant::now() + CLOSE_WAIT;
        loop {
            let now = self.fds().expect("counted before");
            if now == want {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: {what}: {now} fds open after {CLOSE_WAIT:?}, {want} before",
                    self.program.name
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the server with SIGTERM and checks that it exits 0 with `shutting down` as its
    /// last line; returns how it ended.
    pub fn stop(self) -> Finished {
        self.program.signal(Signal::SIGTERM);
        let out = self.program.finish(WAIT).success();
        assert_eq!(
            out.stdout.last().map(String::as_str),
            Some("shutting down"),
            "{out:?}"
        );
        out
    }
}

/// Runs `clients` against `server`, counting the server's fds before (as it serves nothing)
/// and after: the server must close every connection its clients closed, its count falling
/// back to where it was (within [`CLOSE_WAIT`]). Returns what `clients` returned.
pub fn serve_clients<T>(server: &Server, clients: impl FnOnce() -> T) -> T {
    let idle = server.fds();
    let done = clients();
    server.wait_fds(
        idle,
        "the server did not close the connections its clients closed",
    );
    done
}

/// The port in a server's first line: the number after ` port ` (`starting up on <host>
/// port <n> ...`) or after `', ` (`listening on ('<host>', <n>) ...`).
pub fn port_in(line: &str) -> Option<u16> {
    [" port ", "', "].iter().find_map(|marker| {
        let (_, rest) = line.split_once(marker)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// How many fds process `pid` has open (Linux: /proc/<pid>/fd; `None` elsewhere).
pub fn process_fds(pid: u32) -> Option<usize> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("reading /proc/<pid>/fd");
    Some(dir.count())
}

/// Counters a program printed on stderr as `<label>: <Name> { <field>: <n>, ... }` (the
/// `Debug` form of a struct of numbers, such as `reactor stats: Stats { ... }`).
#[derive(Debug)]
pub struct Counters {
    line: String,
    values: BTreeMap<String, u64>,
}

impl Counters {
    /// The counters on the line of `stderr` that starts with `<label>: `; panics if there is
    /// none, or more than one.
    pub fn of(stderr: &str, label: &str) -> Counters {
        let prefix = format!("{label}: ");
        let mut lines = stderr.lines().filter(|l| l.starts_with(&prefix));
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("no {prefix:?} line on stderr: {stderr}"));
        assert!(lines.next().is_none(), "two {prefix:?} lines: {stderr}");
        let fields = line
            .split_once('{')
            .and_then(|(_, rest)| rest.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{line:?} is not `{prefix}<Name> {{ ... }}`"));
        let values = fields
            .split(',')
            .map(|field| {
                let (name, value) = field
                    .split_once(':')
                    .unwrap_or_else(|| panic!("{field:?} in {line:?} is not `name: n`"));
                let value = value
                    .trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("{field:?} in {line:?}: {e}"));
                (name.trim().to_string(), value)
            })
            .collect();
        Counters {
            line: line.to_string(),
            values,
        }
    }

    /// The counters of `reactor stats: Stats { ... }`, which the reactor servers print.
    pub fn reactor(out: &Finished) -> Counters {
        Counters::of(&out.stderr, "reactor stats")
    }

    /// Counter `name`; panics if the line has none.
    pub fn get(&self, name: &str) -> u64 {
        *self
            .values
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.line))
    }
}

impl std::fmt::Display for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

/// Runs example client `name` with `args` to its end (at most [`WAIT`]); returns how it
/// ended and how long it took.
pub fn run_client(name: &str, args: &[&str]) -> (Finished, Duration) {
    let started = Instant::now();
    let out = Program::start(name, &mut example(name, args), None).finish(WAIT);
    (out, started.elapsed())
}

/// Panics unless the program exited 1 saying `<program>: <message>` on a line of stderr of
/// its own (`message` a prefix of the rest of the line); `what` names the case.
pub fn assert_fails(out: &Finished, message: &str, what: &str) {
    assert_eq!(out.status.code(), Some(1), "{what}: {out:?}");
    let expected = format!("{}: {message}", out.name);
    assert!(
        out.stderr.lines().any(|l| l.starts_with(&expected)),
        "{what}: want a line {expected:?} on stderr, got {out:?}"
    );
}

/// `bytes` as the example programs show them (`common::show`, Python's `repr`): `b'...'`,
/// cut after 64 bytes with the total.
pub fn shown(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    if bytes.len() <= MAX {
        format!("b'{}'", bytes.escape_ascii())
    } else {
        format!(
            "b'{}'... ({} bytes)",
            bytes[..MAX].escape_ascii(),
            bytes.len()
        )
    }
}

/// `len` letters and digits, a different run for every `seed`: a payload that can go on a
/// command line (and shows as itself).
pub fn printable(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    super::echo::payload(seed, len)
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}
