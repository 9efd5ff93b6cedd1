//! Interop with a Python peer on every backend: `tests/python/peer.py` (written from
//! `docs/protocol.md`, framing exactly as the Python reference programs do) as the client of
//! rawloop's server and as the server of rawloop's client, plus the exact bytes of
//! docs/protocol.md's morpheus exchange.
//!
//! The peer.py tests need python3 on PATH. Where there is none they are skipped, and the
//! test binary says so on stderr; where python3 runs but the peer fails, they fail.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::ServerThread;
use rawloop::protocol::{self, ClientConfig, Message, ServerConfig};
use rawloop::{Reactor, Selector};
use serde_json::{json, Value};

/// How long a peer.py run may take before it is killed and the test fails.
const PEER_DEADLINE: Duration = Duration::from_secs(10);

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/peer.py");

/// The morpheus request as docs/protocol.md shows it: `00 67`, 103 header bytes, 41 content bytes.
const MORPHEUS_REQUEST: &[u8] = b"\x00\x67{\"byteorder\": \"little\", \"content-type\": \"text/json\", \"content-encoding\": \"utf-8\", \"content-length\": 41}{\"action\": \"search\", \"value\": \"morpheus\"}";

/// The reference server's whole response to it, 148 bytes (U+1F430 is `f0 9f 90 b0`).
const MORPHEUS_RESPONSE: &[u8] = b"\x00\x67{\"byteorder\": \"little\", \"content-type\": \"text/json\", \"content-encoding\": \"utf-8\", \"content-length\": 43}{\"result\": \"Follow the white rabbit. \xf0\x9f\x90\xb0\"}";

/// docs/protocol.md's binary request for `binary hello`: 140 bytes, 127 header bytes.
const BINARY_REQUEST: &[u8] = b"\x00\x7f{\"byteorder\": \"little\", \"content-type\": \"binary/custom-client-binary-type\", \"content-encoding\": \"binary\", \"content-length\": 11}binaryhello";

/// The answer to it: `First 10 bytes of request: binaryhell` (37 bytes) in a frame whose
/// header is written as the reference writes every header.
const BINARY_RESPONSE: &[u8] = b"\x00\x7f{\"byteorder\": \"little\", \"content-type\": \"binary/custom-server-binary-type\", \"content-encoding\": \"binary\", \"content-length\": 37}First 10 bytes of request: binaryhell";

/// What is sent, as a peer.py request spec, and what comes back.
enum Expect {
    Result(&'static str),
    Binary(&'static [u8]),
}

/// The five requests of docs/protocol.md's response table and the reference client's binary one.
/// `ref:` sends what the reference app-client sends for `<action> <value>`; `json:a:b` is a
/// text/json request with action `a` (the reference client sends any non-search action as
/// binary, so only a JSON request reaches the invalid-action answer).
const CASES: [(&str, Expect); 6] = [
    (
        "ref:search:morpheus",
        Expect::Result("Follow the white rabbit. \u{1f430}"),
    ),
    (
        "ref:search:ring",
        Expect::Result("In the caves beneath the Misty Mountains. \u{1f48d}"),
    ),
    (
        "ref:search:\u{1f436}",
        Expect::Result("\u{1f43e} Playing ball! \u{1f3d0}"),
    ),
    ("ref:search:q", Expect::Result("No match for 'q'.")),
    ("json:a:b", Expect::Result("Error: invalid action 'a'.")),
    (
        "ref:binary:hello",
        Expect::Binary(b"First 10 bytes of request: binaryhell"),
    ),
];

/// The request rawloop builds for a peer.py request spec.
fn rawloop_request(spec: &str) -> Message {
    let mut parts = spec.splitn(3, ':');
    let (kind, action, value) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    match kind {
        "ref" => protocol::request(action, value),
        "json" => Message::text_json(json!({"action": action, "value": value})),
        _ => unreachable!("bad spec {spec}"),
    }
}

fn start<S: Selector + 'static>() -> (ServerThread, SocketAddr) {
    common::serve_loopback::<S, _>(|reactor, listener| {
        protocol::serve(reactor, listener, ServerConfig::default()).map(drop)
    })
}

/// Whether python3 runs here, found out once per test binary. When it does not, the tests
/// that need peer.py return at once (skipped), and this says so once on stderr, written
/// straight to it so that the test harness's output capture does not hide it.
fn python3() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let why = match Command::new("python3")
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(status) if status.success() => return true,
            Ok(status) => format!("`python3 --version` failed ({status})"),
            Err(err) if err.kind() == io::ErrorKind::NotFound => "python3 is not on PATH".into(),
            // Present but not runnable for another reason: let Peer::spawn fail loudly.
            Err(_) => return true,
        };
        let _ = writeln!(
            io::stderr(),
            "interop: SKIPPED the tests against tests/python/peer.py: {why}. \
             Install python3 to run them."
        );
        false
    })
}

/// A running peer.py: its stdout lines arrive on a channel, so every read has a deadline;
/// the process is killed if it is still running when this is dropped.
struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
    started: Instant,
}

impl Peer {
    fn spawn(args: &[&str]) -> Peer {
        let mut child = Command::new("python3")
            .arg(PEER)
            .args(args)
            .env("PYTHONIOENCODING", "utf-8")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run python3 ({err}): the interop tests need a working python3 \
                     on PATH"
                )
            });
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Peer {
            child,
            lines,
            started: Instant::now(),
        }
    }

    fn next_line(&mut self) -> String {
        let left = PEER_DEADLINE.saturating_sub(self.started.elapsed());
        match self.lines.recv_timeout(left) {
            Ok(line) => line,
            Err(_) => {
                let status = self.child.try_wait().ok().flatten();
                panic!("peer.py gave no more output (exit status {status:?}; see its stderr)")
            }
        }
    }

    fn next_report(&mut self) -> Value {
        let line = self.next_line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("peer.py printed {line:?}: {e}"))
    }

    /// Waits for the process to exit 0 within the deadline.
    fn finish(mut self) {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "peer.py failed: {status} (see its stderr)"
                );
                return;
            }
            assert!(
                self.started.elapsed() < PEER_DEADLINE,
                "peer.py still running after {PEER_DEADLINE:?}"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn field<'a>(report: &'a Value, key: &str) -> &'a str {
    report[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {report}"))
}

/// peer.py as the client of rawloop's server: every result as docs/protocol.md says, every frame
/// byte for byte as rawloop's own codec writes it.
pub fn python_client_against_rawloop_server<S: Selector + 'static>() {
    if !python3() {
        return;
    }
    let (server, addr) = start::<S>();
    let port = addr.port().to_string();
    let mut args = vec!["client", "127.0.0.1", port.as_str()];
    args.extend(CASES.iter().map(|(spec, _)| *spec));
    let mut peer = Peer::spawn(&args);
    for (spec, expect) in &CASES {
        let report = peer.next_report();
        assert_eq!(
            report["canonical"], true,
            "{spec}: response not as the reference writes it: {report}"
        );
        if *spec == "ref:search:morpheus" {
            assert_eq!(field(&report, "request_hex"), hex(MORPHEUS_REQUEST));
            assert_eq!(field(&report, "response_hex"), hex(MORPHEUS_RESPONSE));
        }
        let request = rawloop_request(spec);
        assert_eq!(
            field(&report, "request_hex"),
            hex(&request.encode().unwrap()),
            "{spec}: peer.py's request differs from rawloop's encoding"
        );
        assert_eq!(
            field(&report, "response_hex"),
            hex(&protocol::respond(&request).encode().unwrap()),
            "{spec}: response bytes"
        );
        match expect {
            Expect::Result(text) => {
                assert_eq!(report["header"]["content-type"], "text/json", "{spec}");
                assert_eq!(report["json"], json!({ "result": text }), "{spec}");
            }
            Expect::Binary(content) => {
                assert_eq!(
                    report["header"]["content-type"], "binary/custom-server-binary-type",
                    "{spec}"
                );
                assert_eq!(report["header"]["content-encoding"], "binary", "{spec}");
                assert_eq!(field(&report, "content_hex"), hex(content), "{spec}");
            }
        }
    }
    peer.finish();
    server.stop().unwrap();
}

/// peer.py as the server of rawloop's client (`protocol::exchange`): rawloop gets every
/// answer, and sends every request byte for byte as the reference client does.
pub fn rawloop_client_against_python_server<S: Selector + 'static>() {
    if !python3() {
        return;
    }
    let count = CASES.len().to_string();
    let mut peer = Peer::spawn(&["server", &count]);
    let line = peer.next_line();
    let port: u16 = line
        .strip_prefix("LISTENING ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("peer.py server printed {line:?}"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let config = ClientConfig::default().timeout(Duration::from_secs(5));
    for (spec, expect) in &CASES {
        let request = rawloop_request(spec);
        let responses = protocol::exchange(
            &mut Reactor::<S>::new().unwrap(),
            addr,
            std::slice::from_ref(&request),
            config,
        )
        .unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(responses.len(), 1, "{spec}");
        let response = &responses[0];
        match expect {
            Expect::Result(text) => {
                assert_eq!(response.content_type, "text/json", "{spec}");
                assert_eq!(response.json, Some(json!({ "result": text })), "{spec}");
            }
            Expect::Binary(content) => {
                assert_eq!(response.content_type, "binary/custom-server-binary-type");
                assert_eq!(response.content_encoding, "binary", "{spec}");
                assert_eq!(response.content, *content, "{spec}");
            }
        }
        let report = peer.next_report();
        assert_eq!(
            report["canonical"], true,
            "{spec}: request not as the reference writes it: {report}"
        );
        assert_eq!(
            field(&report, "request_hex"),
            hex(&request.encode().unwrap()),
            "{spec}: the bytes peer.py received"
        );
        assert_eq!(
            field(&report, "response_hex"),
            hex(&protocol::respond(&request).encode().unwrap()),
            "{spec}: peer.py's answer differs from rawloop's codec"
        );
    }
    assert_eq!(
        rawloop_request("ref:search:morpheus").encode().unwrap(),
        MORPHEUS_REQUEST
    );
    assert_eq!(
        rawloop_request("ref:binary:hello").encode().unwrap(),
        BINARY_REQUEST
    );
    peer.finish();
}

fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    response
}

/// The exact bytes rawloop's server sends for docs/protocol.md's requests, then closes.
pub fn raw_bytes_of_the_protocol_md_exchange<S: Selector + 'static>() {
    assert_eq!(MORPHEUS_REQUEST.len(), 146);
    assert_eq!(MORPHEUS_RESPONSE.len(), 148);
    assert_eq!(BINARY_REQUEST.len(), 140);
    let (server, addr) = start::<S>();
    assert_eq!(raw_exchange(addr, MORPHEUS_REQUEST), MORPHEUS_RESPONSE);
    assert_eq!(raw_exchange(addr, BINARY_REQUEST), BINARY_RESPONSE);
    // Delivered one byte at a time.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for byte in MORPHEUS_REQUEST {
        stream.write_all(std::slice::from_ref(byte)).unwrap();
    }
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    assert_eq!(response, MORPHEUS_RESPONSE);
    server.stop().unwrap();
}

common::per_backend!(
    python_client_against_rawloop_server,
    rawloop_client_against_python_server,
    raw_bytes_of_the_protocol_md_exchange,
);
