//! The example programs after the seed tutorials, run as programs, against each other and
//! against Python peers written from the same tutorials (`tests/python/ts_peer.py` for Core
//! Python Programming's timestamp programs, `tests/python/pymotw_peer.py` for PyMOTW's),
//! in both directions where the seed has both ends, on every backend compiled here:
//!
//! * `ts_tcp_*`, `ts_udp_*`, `ts_tcp_*_ss`: every reply is `[<ctime>] <line>`, with the time
//!   as Python's `time.ctime()` writes it in the same time zone, from a Rust or a Python
//!   server, to a Rust or a Python client; over IPv6 too; and the servers print the seeds'
//!   lines. `ctime` itself matches Python's for chosen moments in three time zones.
//! * `binary_*`: the 12 bytes of `struct.Struct('I 2s f')`, the same from Rust and Python,
//!   unpacked the same by both servers; a short record does not stop the Rust server.
//! * `socketpair` and `socketserver_echo` print what their Python seeds print.
//! * `slow_client` against `timeout_server`: the echo comes back in the seed's 16-byte
//!   pieces, and the server reports idle periods while the client pauses.
//! * `multicast_*`: in a network namespace of their own, the sender's datagram reaches the
//!   receiver and its `ack` comes back, Rust to Python, Python to Rust, Rust to Rust.
//! * Every client and server reports its errors as `<program>: <message>` and exits 1.
//!
//! The tests that need python3 are skipped, saying so on stderr, where it is missing; the
//! Rust-to-Rust ones still run.

mod common;
#[path = "../examples/pyfmt/mod.rs"]
mod pyfmt;

use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{Finished, Program};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use nix::sys::signal::Signal;
use rawloop::Selector;

/// The time zone of every program here: half an hour off the hour, no daylight saving, and
/// not the machine's (which is often UTC), so that local time is really converted.
const TZ: &str = "IST-5:30";

/// The longest any one step may take.
const WAIT: Duration = Duration::from_secs(10);

fn peer(file: &str) -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "tests", "python", file]
        .iter()
        .collect()
}

/// Example `name` on backend `backend`, with `args`, in [`TZ`], logging warnings only.
fn rust(name: &str, backend: &str, args: &[&str]) -> Command {
    let mut command = Command::new(common::example_bin(name));
    command
        .args(["--backend", backend])
        .args(args)
        .env("RUST_LOG", "warn")
        .env("TZ", TZ);
    command
}

/// A Python peer (`file`, in tests/python) in mode `args[0]`, unbuffered, in [`TZ`].
fn python(file: &str, args: &[&str]) -> Command {
    let mut command = Command::new("python3");
    command
        .arg("-u")
        .arg(peer(file))
        .args(args)
        .env("TZ", TZ)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONIOENCODING", "utf-8");
    command
}

/// Reads a Python server's `LISTENING <port>`.
fn listening_port(server: &mut Program) -> u16 {
    let line = server.line(WAIT);
    line.strip_prefix("LISTENING ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{} printed {line:?} first", server.name))
}

/// Says that a test was skipped, straight to stderr, where the harness's capture of
/// `eprintln!` in passing tests does not hide it.
fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{why}");
}

fn ipv6_loopback() -> bool {
    TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

// ---------------------------------------------------------------------------------------------
// ctime
// ---------------------------------------------------------------------------------------------

/// Panics unless `reply` is `[<ctime>] <data>` with a time of the last few seconds in [`TZ`],
/// written as `time.ctime()` writes it.
fn assert_stamped(reply: &str, data: &str) {
    assert!(
        reply.len() == pyfmt::STAMP_PREFIX_LEN + data.len()
            && reply.starts_with('[')
            && reply[25..].starts_with("] ")
            && reply.ends_with(data),
        "{reply:?} is not a timestamped {data:?}"
    );
    let stamp = &reply[1..25];
    let zone = TimeZone::posix(TZ).unwrap();
    let now = Timestamp::now().as_second();
    let recent = (now - 10..=now + 1).any(|t| {
        let time = Timestamp::from_second(t).unwrap().to_zoned(zone.clone());
        pyfmt::ctime_of(&time) == stamp
    });
    assert!(
        recent,
        "{stamp:?} is not a time of the last seconds in {TZ}"
    );
}

/// `pyfmt::ctime_of` writes what Python's `time.ctime(t)` writes, for moments that cover
/// the space-padded day, every weekday and month, a leap day and the turn of daylight saving,
/// in three time zones.
#[test]
fn ctime_is_pythons_time_ctime() {
    if !common::python3("seeds") {
        return;
    }
    let moments: Vec<i64> = vec![
        0,
        1_591_271_778, // Thu Jun  4 11:56:18 2020 UTC (the seed's day)
        1_582_934_400, // 2020-02-29, a leap day
        1_615_705_200, // 2021-03-14 07:00 UTC, daylight saving starts in New York
        1_636_264_800, // 2021-11-07 06:00 UTC, and ends
        951_782_400,
        1_700_000_000,
        1_704_067_199, // the last second of 2023
        4_102_444_800, // 2100-01-01
    ];
    let mut moments = moments;
    moments.extend((0..14).map(|d| 1_600_000_000 + d * 86_400 * 29 + d * 3_607));
    let args: Vec<String> = moments.iter().map(|t| t.to_string()).collect();
    for tz in ["UTC0", TZ, "EST5EDT,M3.2.0,M11.1.0"] {
        let out = Command::new("python3")
            .args([
                "-c",
                "import sys, time\nfor t in sys.argv[1:]: print(time.ctime(int(t)))",
            ])
            .args(&args)
            .env("TZ", tz)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let python = String::from_utf8(out.stdout).unwrap();
        let zone = TimeZone::posix(tz).unwrap();
        for (t, expected) in moments.iter().zip(python.lines()) {
            let time = Timestamp::from_second(*t).unwrap().to_zoned(zone.clone());
            assert_eq!(pyfmt::ctime_of(&time), expected, "{t} in {tz}");
        }
    }
}

/// The other Python formats the examples print.
#[test]
fn python_reprs() {
    assert_eq!(pyfmt::bytes(b"Hello, world"), "b'Hello, world'");
    assert_eq!(pyfmt::bytes(b"it's"), "b\"it's\"");
    assert_eq!(
        pyfmt::bytes(b"'\"\\\n\x00\xff"),
        "b'\\'\"\\\\\\n\\x00\\xff'"
    );
    assert_eq!(pyfmt::float(2.7), "2.7");
    assert_eq!(pyfmt::float(f64::from(2.7f32)), "2.700000047683716");
    assert_eq!(pyfmt::float(1.0), "1.0");
    assert_eq!(pyfmt::float(1e16), "1e+16");
    assert_eq!(pyfmt::float(1.5e-7), "1.5e-07");
    assert_eq!(pyfmt::float(0.0001), "0.0001");
    assert_eq!(pyfmt::float(f64::NAN), "nan");
    assert_eq!(pyfmt::hexlify(&[1, 0xab]), "b'01ab'");
    assert_eq!(
        pyfmt::addr(&"[::1]:80".parse::<SocketAddr>().unwrap()),
        "('::1', 80, 0, 0)"
    );
}

// ---------------------------------------------------------------------------------------------
// The timestamp programs
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// tsTserv / tsTclnt
    Tcp,
    /// tsUserv / tsUclnt
    Udp,
    /// tsTservSS / tsTclntSS
    Ss,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Rust,
    Python,
}

impl Kind {
    fn rust_server(self) -> &'static str {
        match self {
            Kind::Tcp => "ts_tcp_server",
            Kind::Udp => "ts_udp_server",
            Kind::Ss => "ts_tcp_server_ss",
        }
    }
    fn rust_client(self) -> &'static str {
        match self {
            Kind::Tcp => "ts_tcp_client",
            Kind::Udp => "ts_udp_client",
            Kind::Ss => "ts_tcp_client_ss",
        }
    }
    fn python_mode(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Udp => "udp",
            Kind::Ss => "ss",
        }
    }
    /// What the Rust server prints once it is bound.
    fn ready_line(self) -> &'static str {
        match self {
            Kind::Udp => "waiting for message...",
            _ => "waiting for connection...",
        }
    }
    /// The line a server prints for each client (TCP) or datagram (UDP).
    fn client_line(self) -> &'static str {
        match self {
            Kind::Udp => "...received from and returned to: (",
            _ => "...connected from: (",
        }
    }
}

/// The lines every client sends: the seed's session.
const LINES: [&str; 3] = ["5", "6", "hgfu"];

/// One session of a timestamp client with its server over `host`, each side in Rust (on
/// `backend`) or Python: every reply is stamped, the client exits 0, and the server prints a
/// line per client or datagram from `host`, then stops (Rust: on SIGTERM, exit 0; Python:
/// after its count).
fn timestamp_session(kind: Kind, server: Side, client: Side, backend: &str, host: &str) {
    let what = format!("{kind:?}: {server:?} server, {client:?} client, {backend}, {host}");
    let (mut server_program, port) = match server {
        Side::Rust => {
            let port = common::free_port().to_string();
            let name = kind.rust_server();
            let mut program = Program::start(name, &mut rust(name, backend, &[host, &port]), None);
            let ready = program.line(WAIT);
            assert_eq!(ready, kind.ready_line(), "{what}");
            (program, port)
        }
        Side::Python => {
            // tsTserv serves one connection of the Rust client; the others one per line.
            let count = if kind == Kind::Tcp { 1 } else { LINES.len() };
            let mode = format!("{}-server", kind.python_mode());
            let mut command = python("ts_peer.py", &[&mode, host, &count.to_string()]);
            let mut program = Program::start("ts_peer.py", &mut command, None);
            let port = listening_port(&mut program).to_string();
            (program, port)
        }
    };
    // The Rust client also gets an empty line and a line after it, which it must not send.
    let input = match client {
        Side::Rust => format!("{}\n\nnot sent\n", LINES.join("\n")),
        Side::Python => format!("{}\n", LINES.join("\n")),
    };
    let mut command = match client {
        Side::Rust => rust(kind.rust_client(), backend, &[host, &port]),
        Side::Python => {
            let mode = format!("{}-client", kind.python_mode());
            python("ts_peer.py", &[&mode, host, &port])
        }
    };
    let finished = Program::start(kind.rust_client(), &mut command, Some(input.as_bytes()))
        .finish(WAIT)
        .success();
    assert_eq!(finished.stdout.len(), LINES.len(), "{what}: {finished:?}");
    for (reply, line) in finished.stdout.iter().zip(LINES) {
        assert_stamped(reply, line);
    }

    let server_out = match server {
        Side::Rust => {
            // A line per client or datagram, and the Python tsTclntSS opens one more
            // connection for the empty line that ends it.
            let expected = match (kind, client) {
                (Kind::Tcp, _) => 1,
                (Kind::Udp, _) => LINES.len(),
                (Kind::Ss, Side::Rust) => LINES.len(),
                (Kind::Ss, Side::Python) => LINES.len() + 1,
            };
            for _ in 0..expected {
                server_program.line_where(WAIT, |l| l.starts_with(kind.client_line()));
            }
            server_program.signal(Signal::SIGTERM);
            server_program.finish(WAIT).success()
        }
        Side::Python => server_program.finish(WAIT).success(),
    };
    let from = format!("{}'{host}', ", kind.client_line());
    let clients: Vec<_> = server_out
        .stdout
        .iter()
        .filter(|l| l.starts_with(kind.client_line()))
        .collect();
    assert!(!clients.is_empty(), "{what}: {server_out:?}");
    for line in clients {
        assert!(line.starts_with(&from), "{what}: {line:?}");
        let tail = if host.contains(':') { ", 0, 0)" } else { ")" };
        let port = line[from.len()..].strip_suffix(tail);
        assert!(
            port.is_some_and(|p| p.parse::<u16>().is_ok()),
            "{what}: {line:?} is not a Python address tuple"
        );
    }
}

/// The three sessions of a timestamp program over IPv4: Rust to Rust, a Python client to the
/// Rust server, the Rust client to a Python server.
fn both_ways<S: Selector>(kind: Kind) {
    let backend = common::backend_name::<S>();
    timestamp_session(kind, Side::Rust, Side::Rust, backend, "127.0.0.1");
    if common::python3("seeds") {
        timestamp_session(kind, Side::Rust, Side::Python, backend, "127.0.0.1");
        timestamp_session(kind, Side::Python, Side::Rust, backend, "127.0.0.1");
    }
}

fn ts_tcp_both_ways<S: Selector>() {
    both_ways::<S>(Kind::Tcp);
}

fn ts_udp_both_ways<S: Selector>() {
    both_ways::<S>(Kind::Udp);
}

fn ts_tcp_ss_both_ways<S: Selector>() {
    both_ways::<S>(Kind::Ss);
}

/// Over IPv6 (`::1`, as the seed's IPv6 client): the Rust client and the seed's IPv6 client
/// against the Rust servers, and the Rust clients against Python servers on `::1`.
fn timestamps_over_ipv6<S: Selector>() {
    if !ipv6_loopback() {
        skipped("timestamps_over_ipv6: SKIPPED: no IPv6 loopback here");
        return;
    }
    let backend = common::backend_name::<S>();
    for kind in [Kind::Tcp, Kind::Udp, Kind::Ss] {
        timestamp_session(kind, Side::Rust, Side::Rust, backend, "::1");
    }
    if common::python3("seeds") {
        timestamp_session(Kind::Tcp, Side::Rust, Side::Python, backend, "::1");
        timestamp_session(Kind::Udp, Side::Python, Side::Rust, backend, "::1");
    }
}

// ---------------------------------------------------------------------------------------------
// Binary data
// ---------------------------------------------------------------------------------------------

/// `struct.Struct('I 2s f').pack(1, b'ab', 2.7)` on this machine, in hex.
fn packed_hex() -> &'static str {
    if cfg!(target_endian = "little") {
        "0100000061620000cdcc2c40"
    } else {
        "0000000161620000402ccccd"
    }
}

/// What the seed's client prints.
fn binary_client_lines() -> Vec<String> {
    vec![
        "values = (1, b'ab', 2.7)".to_string(),
        format!("sending b'{}'", packed_hex()),
        "closing socket".to_string(),
    ]
}

/// Reads the server's two lines for one record.
fn expect_record(server: &mut Program) {
    let received = server.line_where(WAIT, |l| l.starts_with("received"));
    assert_eq!(received, format!("received b'{}'", packed_hex()));
    assert_eq!(server.line(WAIT), "unpacked: (1, b'ab', 2.700000047683716)");
}

/// The Rust client and the seed's client send the same 12 bytes, which the Rust server and
/// the seed's server unpack the same; a client that sends 3 bytes and leaves is reported
/// and the Rust server goes on.
fn binary_both_ways<S: Selector>() {
    let backend = common::backend_name::<S>();
    let port = common::free_port().to_string();
    let mut server = Program::start(
        "binary_server",
        &mut rust("binary_server", backend, &["127.0.0.1", &port]),
        None,
    );
    server.line_where(WAIT, |l| l == "waiting for a connection");

    let client = Program::start(
        "binary_client",
        &mut rust("binary_client", backend, &["127.0.0.1", &port]),
        None,
    )
    .finish(WAIT)
    .success();
    assert_eq!(client.stdout, binary_client_lines());
    expect_record(&mut server);

    // A short record: reported, not fatal.
    {
        use std::io::Write;
        let mut short = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
        short.write_all(b"abc").unwrap();
    }
    let received = server.line_where(WAIT, |l| l.starts_with("received"));
    assert_eq!(received, "received b'616263'");

    if common::python3("seeds") {
        let mut command = python("pymotw_peer.py", &["binary-client", "127.0.0.1", &port]);
        let python_client = Program::start("pymotw_peer.py binary-client", &mut command, None)
            .finish(WAIT)
            .success();
        assert_eq!(python_client.stdout, binary_client_lines());
        expect_record(&mut server);
    }
    server.signal(Signal::SIGTERM);
    let server = server.finish(WAIT).success();
    assert!(
        server
            .stderr
            .contains("unpack requires a buffer of 12 bytes"),
        "{server:?}"
    );

    if common::python3("seeds") {
        let mut command = python("pymotw_peer.py", &["binary-server", "1"]);
        let mut python_server = Program::start("pymotw_peer.py binary-server", &mut command, None);
        let port = listening_port(&mut python_server).to_string();
        let client = Program::start(
            "binary_client",
            &mut rust("binary_client", backend, &["127.0.0.1", &port]),
            None,
        )
        .finish(WAIT)
        .success();
        assert_eq!(client.stdout, binary_client_lines());
        expect_record(&mut python_server);
        python_server.finish(WAIT).success();
    }
}

// ---------------------------------------------------------------------------------------------
// socketpair and socketserver_echo: one program each, compared with its seed
// ---------------------------------------------------------------------------------------------

/// The position of `line` in `lines`; panics if it is missing.
fn position(lines: &[String], line: &str) -> usize {
    lines
        .iter()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("no {line:?} in {lines:?}"))
}

/// Parent and child each print what they received, in an order the exchange allows, and the
/// lines are the seed's.
fn socketpair_prints_what_the_seed_prints<S: Selector>() {
    let backend = common::backend_name::<S>();
    let out = Program::start("socketpair", &mut rust("socketpair", backend, &[]), None)
        .finish(WAIT)
        .success();
    let lines = &out.stdout;
    assert_eq!(lines.len(), 4, "{out:?}");
    let parent = position(lines, "in parent, sending message");
    let child = position(lines, "in child, waiting for message");
    let message = position(lines, "message from parent: b'ping'");
    let response = position(lines, "response from child: b'pong'");
    assert!(
        child < message && message < response && parent < response,
        "{lines:?}"
    );

    if common::python3("seeds") {
        let seed = Program::start(
            "socket_socketpair.py",
            &mut python("pymotw_peer.py", &["socketpair"]),
            None,
        )
        .finish(WAIT)
        .success();
        let mut ours = out.stdout.clone();
        let mut theirs = seed.stdout.clone();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs);
    }
}

/// The same two lines as the seed on stdout, the handler's steps in order in the log, exit 0.
fn socketserver_echo_prints_what_the_seed_prints<S: Selector>() {
    let backend = common::backend_name::<S>();
    let mut command = rust("socketserver_echo", backend, &[]);
    command.env_remove("RUST_LOG"); // its own default: the seed's DEBUG lines
    let out = Program::start("socketserver_echo", &mut command, None)
        .finish(WAIT)
        .success();
    assert_eq!(
        out.stdout,
        ["Sending : b'Hello, world'", "Received: b'Hello, world'"]
    );
    let log: Vec<String> = out.stderr.lines().map(str::to_string).collect();
    let verify = log
        .iter()
        .position(|l| l.starts_with("EchoServer: verify_request(('127.0.0.1', "))
        .unwrap_or_else(|| panic!("no verify_request in {log:?}"));
    // The handler's steps in order, and the end of the program after all of them; the
    // client's steps in order (the client may see the echo before the handler's `finish`).
    let handler = [
        "EchoRequestHandler: setup",
        "EchoRequestHandler: handle",
        "EchoRequestHandler: recv()->\"b'Hello, world'\"",
        "EchoRequestHandler: finish",
        "client: done",
    ];
    let client = [
        "client: sending data: b'Hello, world'",
        "client: response from server: b'Hello, world'",
        "EchoServer: shutdown()",
        "client: done",
    ];
    for (mut at, steps) in [(verify, &handler[..]), (0, &client[..])] {
        for step in steps {
            let next = position(&log, step);
            assert!(next >= at, "{step:?} out of order in {log:?}");
            at = next;
        }
    }

    if common::python3("seeds") {
        let seed = Program::start(
            "socketserver_echo_simple.py",
            &mut python("pymotw_peer.py", &["socketserver-echo"]),
            None,
        )
        .finish(WAIT)
        .success();
        assert_eq!(out.stdout, seed.stdout);
    }
}

// ---------------------------------------------------------------------------------------------
// The slow client and the server with a timeout
// ---------------------------------------------------------------------------------------------

const IDLE_LINE: &str = "  timed out, do some other work here";

/// The seed client's lines after `connecting to ...`.
const SLOW_CLIENT_LINES: [&str; 6] = [
    "sending b'Part one of the message.'",
    "sending b'Part two of the message.'",
    "received b'Part one of the '",
    "received b'message.Part two'",
    "received b' of the message.'",
    "closing socket",
];

/// The client's pauses here (the seed's are 1 and 1.5 s) and the server's idle period.
const START_PAUSE: &str = "0.1";
const PAUSE: &str = "0.25";
const PERIOD: &str = "0.05";

fn slow_client(side: Side, backend: &str, port: &str) -> Finished {
    let mut command = match side {
        Side::Rust => rust(
            "slow_client",
            backend,
            &[
                "--start-pause",
                START_PAUSE,
                "--pause",
                PAUSE,
                "127.0.0.1",
                port,
            ],
        ),
        Side::Python => python(
            "pymotw_peer.py",
            &["slow-client", "127.0.0.1", port, START_PAUSE, PAUSE],
        ),
    };
    let out = Program::start("slow client", &mut command, None)
        .finish(WAIT)
        .success();
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(format!("connecting to 127.0.0.1 port {port}").as_str()),
        "{out:?}"
    );
    assert_eq!(lines[1..], SLOW_CLIENT_LINES, "{out:?}");
    out
}

/// The slow client gets its whole echo in 16-byte pieces while the server, between the
/// client's messages, reports idle periods: Rust to Rust, the seed's client to
/// `timeout_server`, the Rust client to the seed's server.
fn slow_client_against_timeout_server<S: Selector>() {
    let backend = common::backend_name::<S>();
    let port = common::free_port().to_string();
    let mut server = Program::start(
        "timeout_server",
        &mut rust(
            "timeout_server",
            backend,
            &["--period", PERIOD, "127.0.0.1", &port],
        ),
        None,
    );
    server.line_where(WAIT, |l| l.starts_with("starting up on 127.0.0.1"));
    let mut sides = vec![Side::Rust];
    if common::python3("seeds") {
        sides.push(Side::Python);
    }
    for side in sides {
        let before = server.drain();
        slow_client(side, backend, &port);
        let idle = server.drain() - before;
        let idle_lines = server.seen[before..]
            .iter()
            .filter(|l| *l == IDLE_LINE)
            .count();
        assert!(
            idle_lines >= 3,
            "{side:?} client: {idle_lines} idle periods of {idle} lines"
        );
    }
    server.signal(Signal::SIGTERM);
    server.finish(WAIT).success();

    if common::python3("seeds") {
        let mut command = python("pymotw_peer.py", &["timeout-server", PERIOD]);
        let mut python_server = Program::start("select_echo_server_timeout.py", &mut command, None);
        let port = listening_port(&mut python_server).to_string();
        slow_client(Side::Rust, backend, &port);
        let out = python_server.finish(WAIT).success();
        let idle = out.stderr.lines().filter(|l| *l == IDLE_LINE).count();
        assert!(idle >= 3, "{out:?}");
        assert!(
            out.stderr
                .contains("  received b'Part two of the message.' from ('127.0.0.1', "),
            "{out:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Runs example `name` with `args` (and `input`), expecting exit 1 with a message that
/// starts `<name>: <start>`.
fn fails_with(name: &str, args: &[&str], input: Option<&[u8]>, start: &str) {
    let out = Program::start(name, &mut rust(name, "poll", args), input).finish(WAIT);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let expected = format!("{name}: {start}");
    assert!(
        out.stderr.lines().any(|l| l.starts_with(&expected)),
        "{name}: want {expected:?}, got {:?}",
        out.stderr
    );
}

/// Clients that cannot connect, a UDP client with no answer, servers whose port is taken and
/// a receiver that cannot join its group say so as `<program>: <message>` and exit 1.
#[test]
fn errors_are_reported_as_program_colon_message() {
    // A port nothing listens on: connects are refused, datagrams unanswered.
    let closed_port = common::free_port().to_string();
    let refused = format!("cannot connect to 127.0.0.1:{closed_port}");
    let line = Some(&b"x\n"[..]);
    for client in ["ts_tcp_client", "ts_tcp_client_ss", "binary_client"] {
        fails_with(client, &["127.0.0.1", &closed_port], line, &refused);
    }
    fails_with(
        "slow_client",
        &["127.0.0.1", &closed_port],
        None,
        "cannot connect",
    );
    fails_with(
        "ts_udp_client",
        &["--timeout", "0.2", "127.0.0.1", &closed_port],
        line,
        &format!("no answer from 127.0.0.1:{closed_port} within 200ms"),
    );

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for server in ["ts_tcp_server", "ts_tcp_server_ss", "binary_server"] {
        fails_with(
            server,
            &["127.0.0.1", &port],
            None,
            &format!("cannot listen on 127.0.0.1:{port}"),
        );
    }
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    fails_with(
        "ts_udp_server",
        &["127.0.0.1", &port],
        None,
        &format!("cannot bind 127.0.0.1:{port}"),
    );
    fails_with(
        "multicast_receiver",
        &["10.1.2.3", "0"],
        None,
        "cannot join group 10.1.2.3",
    );
}

// ---------------------------------------------------------------------------------------------
// Multicast, in a network namespace of its own
// ---------------------------------------------------------------------------------------------

/// Set in the environment of this test binary when it runs again inside a network namespace.
const IN_NAMESPACE: &str = "RAWLOOP_SEEDS_TEST_IN_NAMESPACE";

/// The backends compiled here, by name.
fn backends() -> Vec<&'static str> {
    let mut all = vec!["select", "poll"];
    if cfg!(rawloop_epoll) {
        all.push("epoll");
    }
    if cfg!(rawloop_kqueue) {
        all.push("kqueue");
    }
    all
}

/// Multicast needs an interface that carries it, and loopback does only once told to, which
/// needs a network namespace of its own: the test runs this binary again under
/// `unshare --net` with multicast on and routed to `lo`, and the inner run does the
/// exchanges, on the seed's group and port (nothing else can use them in there). Skipped,
/// with a note, where namespaces are refused or `unshare` is missing.
#[test]
fn multicast_sender_and_receiver() {
    const NAME: &str = "multicast_sender_and_receiver";
    if std::env::var_os(IN_NAMESPACE).is_some() {
        multicast_exchanges();
        return;
    }
    // Built out here: cargo does not run in the namespace.
    common::example_bin("multicast_sender");
    common::example_bin("multicast_receiver");
    let exe = std::env::current_exe().unwrap();
    let script =
        r#"ip link set lo up multicast on && ip route add 224.0.0.0/4 dev lo && exec "$0" "$@""#;
    let mut refusals = Vec::new();
    for unshare in [&["--net"][..], &["--user", "--map-root-user", "--net"]] {
        let output = Command::new("unshare")
            .args(unshare)
            .args(["sh", "-c", script])
            .arg(&exe)
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(IN_NAMESPACE, "1")
            .output();
        let output = match output {
            Ok(output) => output,
            Err(e) => {
                skipped(&format!("{NAME}: SKIPPED: cannot run unshare: {e}"));
                return;
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stdout.contains("running 1 test") {
            assert!(
                output.status.success() && stdout.contains("1 passed"),
                "the test failed in its network namespace:\n{stdout}\n{stderr}"
            );
            return;
        }
        refusals.push(format!("unshare {}: {}", unshare.join(" "), stderr.trim()));
    }
    skipped(&format!(
        "{NAME}: SKIPPED: no network namespace: {}",
        refusals.join("; ")
    ));
}

/// Starts a receiver and waits until it has joined the group.
fn multicast_receiver(side: Side, backend: &str) -> Program {
    match side {
        Side::Rust => {
            let mut command = Command::new(common::example_path("multicast_receiver"));
            command.args(["--backend", backend]).env("RUST_LOG", "warn");
            let mut program = Program::start("multicast_receiver", &mut command, None);
            program.line_where(WAIT, |l| l == "waiting to receive message");
            program
        }
        Side::Python => {
            let mut command = python("pymotw_peer.py", &["multicast-receiver", "1"]);
            let mut program = Program::start("socket_multicast_receiver.py", &mut command, None);
            assert_eq!(program.line(WAIT), "JOINED");
            program
        }
    }
}

/// One datagram to the group and its acknowledgement, each side in Rust or Python.
fn multicast_exchange(receiver: Side, sender: Side, backend: &str) {
    let what = format!("{receiver:?} receiver, {sender:?} sender, {backend}");
    let mut receiving = multicast_receiver(receiver, backend);
    let mut command = match sender {
        Side::Rust => {
            let mut command = Command::new(common::example_path("multicast_sender"));
            command.args(["--backend", backend]).env("RUST_LOG", "warn");
            command
        }
        Side::Python => python("pymotw_peer.py", &["multicast-sender"]),
    };
    let sent = Program::start("multicast sender", &mut command, None)
        .finish(WAIT)
        .success();
    let lines = &sent.stdout;
    assert_eq!(
        lines.first().map(String::as_str),
        Some("sending b'very important data'"),
        "{what}: {sent:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("received b'ack' from (") && l.ends_with(", 10000)")),
        "{what}: {sent:?}"
    );
    assert_eq!(
        lines[lines.len() - 2..],
        ["timed out, no more responses", "closing socket"],
        "{what}"
    );

    let received = receiving.line_where(WAIT, |l| l.starts_with("received "));
    assert!(
        received.starts_with("received 19 bytes from ("),
        "{what}: {received:?}"
    );
    assert_eq!(receiving.line(WAIT), "b'very important data'", "{what}");
    let ack = receiving.line(WAIT);
    assert!(
        ack.starts_with("sending acknowledgement to ("),
        "{what}: {ack:?}"
    );
    if receiver == Side::Rust {
        receiving.signal(Signal::SIGTERM);
    }
    receiving.finish(WAIT).success();
}

/// Inside the namespace: Rust to Rust on every backend, and each Rust end with the seed's
/// other end.
fn multicast_exchanges() {
    for backend in backends() {
        multicast_exchange(Side::Rust, Side::Rust, backend);
    }
    if common::python3("seeds") {
        multicast_exchange(Side::Rust, Side::Python, "poll");
        multicast_exchange(Side::Python, Side::Rust, "select");
    }
}

common::per_backend!(
    ts_tcp_both_ways,
    ts_udp_both_ways,
    ts_tcp_ss_both_ways,
    timestamps_over_ipv6,
    binary_both_ways,
    socketpair_prints_what_the_seed_prints,
    socketserver_echo_prints_what_the_seed_prints,
    slow_client_against_timeout_server,
);
