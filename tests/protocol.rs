//! The Message protocol end to end on every backend: rawloop's server and client state
//! machines, many concurrent clients, every malformed-input class, timeouts, keep-alive.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{frame, ServerThread};
use rawloop::protocol::{self, codec, ClientConfig, ClientConnection, Message, ServerConfig};
use rawloop::{Interest, Reactor, Selector};

fn start<S: Selector + 'static>(config: ServerConfig) -> (ServerThread, SocketAddr) {
    common::serve_loopback::<S, _>(move |reactor, listener| {
        protocol::serve(reactor, listener, config).map(drop)
    })
}

fn result_text(response: &Message) -> String {
    let json = response.json.as_ref().expect("a text/json response");
    json["result"]
        .as_str()
        .expect("a string result")
        .to_string()
}

fn ask<S: Selector>(addr: SocketAddr, request: Message) -> Message {
    let mut responses = protocol::exchange(
        &mut Reactor::<S>::new().unwrap(),
        addr,
        &[request],
        ClientConfig::default(),
    )
    .unwrap();
    assert_eq!(responses.len(), 1);
    responses.remove(0)
}

pub fn the_five_results_of_protocol_md<S: Selector + 'static>() {
    let (server, addr) = start::<S>(ServerConfig::default());
    for (value, expected) in [
        ("morpheus", "Follow the white rabbit. \u{1f430}"),
        (
            "ring",
            "In the caves beneath the Misty Mountains. \u{1f48d}",
        ),
        ("\u{1f436}", "\u{1f43e} Playing ball! \u{1f3d0}"),
        ("q", "No match for 'q'."),
    ] {
        assert_eq!(
            result_text(&ask::<S>(addr, protocol::request_search(value))),
            expected
        );
    }
    let invalid = Message::text_json(serde_json::json!({"action": "a", "value": "b"}));
    assert_eq!(
        result_text(&ask::<S>(addr, invalid)),
        "Error: invalid action 'a'."
    );
    let binary = ask::<S>(addr, protocol::request_binary("binary", "hello"));
    assert_eq!(binary.content_type, codec::SERVER_BINARY_TYPE);
    assert_eq!(binary.content, b"First 10 bytes of request: binaryhell");
    server.stop().unwrap();
}

pub fn a_thousand_concurrent_clients<S: Selector + 'static>() {
    assert!(common::raise_fd_limit(4096) >= 2100);
    let (server, addr) = start::<S>(ServerConfig::default());
    let mut reactor = Reactor::<S>::new().unwrap();
    let mut exchanges = Vec::new();
    for i in 0..1000 {
        let stream = TcpStream::connect(addr).unwrap();
        let request = match i % 3 {
            0 => protocol::request_search("morpheus"),
            1 => protocol::request_search(&format!("query {i}")),
            _ => protocol::request_binary(&format!("{i:010}"), "tail"),
        };
        let (conn, exchange) =
            ClientConnection::new(format!("client {i}"), &[request], ClientConfig::default())
                .unwrap();
        reactor.register(stream, Interest::WRITABLE, conn).unwrap();
        exchanges.push(exchange);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reactor.is_empty() && Instant::now() < deadline {
        reactor.run_once(Some(Duration::from_millis(100))).unwrap();
    }
    for (i, exchange) in exchanges.iter().enumerate() {
        let exchange = exchange.borrow();
        assert!(
            exchange.finished && exchange.error.is_none(),
            "client {i}: {:?}",
            exchange.error
        );
        let response = &exchange.responses[0];
        match i % 3 {
            0 => assert_eq!(result_text(response), "Follow the white rabbit. \u{1f430}"),
            1 => assert_eq!(result_text(response), format!("No match for 'query {i}'.")),
            _ => assert_eq!(
                response.content,
                format!("First 10 bytes of request: {i:010}").as_bytes()
            ),
        }
    }
    server.stop().unwrap();
}

/// Sends `bytes` raw and says how the server ended the connection: `Ok(response bytes)`
/// once it closed, or an error if it did not close within 5 s.
fn send_raw(addr: SocketAddr, bytes: &[u8], then_close_write: bool) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(bytes)?;
    if then_close_write {
        s.shutdown(std::net::Shutdown::Write)?;
    }
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => Ok(got),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(got),
        Err(e) => Err(e),
    }
}

fn header_with(length: &str) -> Vec<u8> {
    format!(r#"{{"byteorder": "little", "content-type": "binary/x", "content-encoding": "binary", "content-length": {length}}}"#).into_bytes()
}

/// Every malformed-input class closes that one connection without an answer, while a client
/// in the middle of its own request is still served afterwards.
pub fn each_malformed_request_closes_only_its_connection<S: Selector + 'static>() {
    let (server, addr) = start::<S>(ServerConfig::default().max_content_len(1024 * 1024));
    let good = protocol::request_search("ring").encode().unwrap();
    let mut patient = TcpStream::connect(addr).unwrap();
    patient.write_all(&good[..10]).unwrap();
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("header length 0", vec![0, 0, b'{', b'}'], false),
        ("header not UTF-8", frame(&[0xff, 0xfe, 0xfd], b""), false),
        ("header not JSON", frame(b"{not json", b""), false),
        ("header not an object", frame(b"[1, 2]", b""), false),
        (
            "byteorder missing",
            frame(
                br#"{"content-length": 0, "content-type": "a", "content-encoding": "b"}"#,
                b"",
            ),
            false,
        ),
        (
            "content-length missing",
            frame(
                br#"{"byteorder": "little", "content-type": "a", "content-encoding": "b"}"#,
                b"",
            ),
            false,
        ),
        (
            "content-type missing",
            frame(
                br#"{"byteorder": "little", "content-length": 0, "content-encoding": "b"}"#,
                b"",
            ),
            false,
        ),
        (
            "content-encoding missing",
            frame(
                br#"{"byteorder": "little", "content-length": 0, "content-type": "a"}"#,
                b"",
            ),
            false,
        ),
        (
            "content-length negative",
            frame(&header_with("-1"), b""),
            false,
        ),
        (
            "content-length not an integer",
            frame(&header_with("1.5"), b"x"),
            false,
        ),
        (
            "content-length a string",
            frame(&header_with("\"5\""), b"hello"),
            false,
        ),
        (
            "content-length over the limit",
            frame(&header_with("1099511627776"), b""),
            false,
        ),
        ("peer closes in the prefix", vec![0], true),
        ("peer closes in the header", good[..20].to_vec(), true),
        (
            "peer closes in the content",
            good[..good.len() - 3].to_vec(),
            true,
        ),
    ];
    for (name, bytes, close_write) in cases {
        let answer = send_raw(addr, &bytes, close_write)
            .unwrap_or_else(|e| panic!("{name}: not closed: {e}"));
        assert!(answer.is_empty(), "{name}: got an answer {answer:?}");
    }
    patient.write_all(&good[10..]).unwrap();
    let mut decoder = codec::Decoder::new();
    let mut buf = [0u8; 4096];
    let response = loop {
        let n = patient.read(&mut buf).unwrap();
        assert!(n > 0, "the patient client was closed");
        decoder.feed(&buf[..n]);
        if let Some(m) = decoder.next_message().unwrap() {
            break m;
        }
    };
    assert_eq!(
        result_text(&response),
        "In the caves beneath the Misty Mountains. \u{1f48d}"
    );
    server.stop().unwrap();
}

/// The reference spins forever on these; rawloop answers each.
pub fn empty_and_odd_content_gets_an_answer<S: Selector + 'static>() {
    let (server, addr) = start::<S>(ServerConfig::default());
    let empty_json = Message::new(codec::TEXT_JSON, "utf-8", Vec::new());
    assert_eq!(
        result_text(&ask::<S>(addr, empty_json)),
        "Error: invalid JSON request content."
    );
    for (content, expected) in [
        ("{}", "Error: invalid action 'None'."),
        (
            "[]",
            "Error: invalid request: expected a JSON object, got array.",
        ),
        (
            "null",
            "Error: invalid request: expected a JSON object, got null.",
        ),
    ] {
        let request = Message::new(codec::TEXT_JSON, "utf-8", content);
        assert_eq!(
            result_text(&ask::<S>(addr, request)),
            expected,
            "content {content}"
        );
    }
    let empty_binary = ask::<S>(
        addr,
        Message::new(codec::CLIENT_BINARY_TYPE, "binary", Vec::new()),
    );
    assert_eq!(empty_binary.content, b"First 10 bytes of request: ");
    server.stop().unwrap();
}

pub fn half_a_request_is_closed_after_the_timeout<S: Selector + 'static>() {
    let timeout = Duration::from_millis(200);
    let (server, addr) = start::<S>(ServerConfig::default().request_timeout(timeout));
    let good = protocol::request_search("q").encode().unwrap();
    let start = Instant::now();
    let answer = send_raw(addr, &good[..good.len() / 2], false).unwrap();
    let took = start.elapsed();
    assert!(answer.is_empty());
    assert!(took >= timeout, "closed after {took:?}, before the timeout");
    assert!(
        took < timeout + Duration::from_secs(3),
        "closed only after {took:?}"
    );
    // A silent client that never sends a byte is closed too.
    let answer = send_raw(addr, b"", false).unwrap();
    assert!(answer.is_empty());
    server.stop().unwrap();
}

/// With keep-alive the timeout counts from the last response: requests spaced under the
/// timeout keep the connection, for longer than one timeout in all, and silence after the
/// last one closes it a timeout later. (The server moves the deadline without touching its
/// timer; the timer, when it fires, finds the later start and waits the rest.)
pub fn keep_alive_timeout_counts_from_the_last_response<S: Selector + 'static>() {
    let timeout = Duration::from_millis(400);
    let config = ServerConfig::default()
        .keep_alive(true)
        .request_timeout(timeout);
    let (server, addr) = start::<S>(config);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let request = protocol::request_search("ring").encode().unwrap();
    let answer_len = protocol::respond(&protocol::request_search("ring"))
        .encode()
        .unwrap()
        .len();
    let start = Instant::now();
    for i in 0..4 {
        std::thread::sleep(Duration::from_millis(250));
        s.write_all(&request).unwrap();
        let mut answer = vec![0u8; answer_len];
        s.read_exact(&mut answer)
            .unwrap_or_else(|e| panic!("request {i} at {:?}: {e}", start.elapsed()));
    }
    let last = Instant::now();
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("not closed: {e}"),
    }
    let idle = last.elapsed();
    assert!(rest.is_empty());
    assert!(
        idle >= timeout - Duration::from_millis(50),
        "closed after {idle:?}"
    );
    assert!(
        idle < timeout + Duration::from_secs(3),
        "closed only after {idle:?}"
    );
    server.stop().unwrap();
}

pub fn keep_alive_answers_many_requests_in_order<S: Selector + 'static>() {
    let (server, addr) = start::<S>(ServerConfig::default().keep_alive(true));
    let requests: Vec<Message> = (0..100)
        .map(|i| protocol::request_search(&format!("q{i}")))
        .collect();
    let responses = protocol::exchange(
        &mut Reactor::<S>::new().unwrap(),
        addr,
        &requests,
        ClientConfig::default(),
    )
    .unwrap();
    let texts: Vec<String> = responses.iter().map(result_text).collect();
    let expected: Vec<String> = (0..100).map(|i| format!("No match for 'q{i}'.")).collect();
    assert_eq!(texts, expected);
    // A one-request client (as the reference) still works against a keep-alive server.
    assert_eq!(
        result_text(&ask::<S>(addr, protocol::request_search("ring"))),
        "In the caves beneath the Misty Mountains. \u{1f48d}"
    );
    server.stop().unwrap();
}

pub fn a_non_keep_alive_server_answers_one_request_per_connection<S: Selector + 'static>() {
    let (server, addr) = start::<S>(ServerConfig::default());
    let requests = vec![protocol::request_search("ring"); 2];
    let err = protocol::exchange(
        &mut Reactor::<S>::new().unwrap(),
        addr,
        &requests,
        ClientConfig::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    server.stop().unwrap();
}

/// Regression: a keep-alive server whose output filled stopped partway through requests it
/// had already read, and a client that only watched for writable until all its requests were
/// sent deadlocked against it.
pub fn keep_alive_pipeline_larger_than_the_output_limit<S: Selector + 'static>() {
    let config = ServerConfig::default().keep_alive(true).output_limit(2000);
    let (server, addr) = start::<S>(config);
    let requests = vec![protocol::request_search("q"); 3000];
    let responses = protocol::exchange(
        &mut Reactor::<S>::new().unwrap(),
        addr,
        &requests,
        ClientConfig::default(),
    )
    .unwrap();
    assert_eq!(responses.len(), 3000);
    assert!(responses
        .iter()
        .all(|r| result_text(r) == "No match for 'q'."));
    server.stop().unwrap();
}

/// Regression: a keep-alive server closed at once when the client half-closed, dropping the
/// requests it had not answered yet and the responses still queued.
pub fn keep_alive_answers_everything_before_a_half_close<S: Selector + 'static>() {
    let config = ServerConfig::default().keep_alive(true).output_limit(2000);
    let (server, addr) = start::<S>(config);
    let one = protocol::request_search("ring").encode().unwrap();
    let all: Vec<u8> = one.iter().copied().cycle().take(one.len() * 300).collect();
    let answer = send_raw(addr, &all, true).unwrap();
    let mut decoder = codec::Decoder::new();
    decoder.feed(&answer);
    let mut count = 0;
    while let Some(m) = decoder.next_message().unwrap() {
        assert_eq!(
            result_text(&m),
            "In the caves beneath the Misty Mountains. \u{1f48d}"
        );
        count += 1;
    }
    assert_eq!(count, 300);
    server.stop().unwrap();
}

/// Regression: every connection left its 10-second request timer behind until it came
/// due (at 13,000 connections a second, 130,000 dead heap entries). 100,000 one-request
/// connections now leave no pending timer, and while they run there are never more timers
/// than open connections. (What is checked is the reactor's, the same on every backend:
/// this runs on the build's default one.)
#[test]
fn one_request_connections_leave_no_timer() {
    type S = rawloop::DefaultSelector;
    const CLIENTS: usize = 4;
    const EACH: usize = 25_000;
    let mut reactor = Reactor::<S>::new().unwrap();
    let listener = common::loopback_listener();
    let addr = listener.local_addr().unwrap();
    protocol::serve(&mut reactor, listener, ServerConfig::default()).unwrap();
    let request = protocol::request_search("morpheus").encode().unwrap();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let request = request.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                for _ in 0..EACH {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.write_all(&request).unwrap();
                    let mut got = 0;
                    loop {
                        match s.read(&mut buf[got..]).unwrap() {
                            0 => break,
                            n => got += n,
                        }
                    }
                    assert_eq!(got, 148, "a whole answer, then the server's close");
                }
            })
        })
        .collect();
    let mut most = 0;
    while !clients.iter().all(|c| c.is_finished()) {
        reactor.run_once(Some(Duration::from_millis(50))).unwrap();
        let open = reactor.len() - 1;
        assert!(
            reactor.timer_count() <= open,
            "{} timers, {open} connections",
            reactor.timer_count()
        );
        most = most.max(reactor.timer_count());
    }
    for c in clients {
        c.join().unwrap();
    }
    while reactor.len() > 1 {
        reactor.run_once(Some(Duration::from_millis(50))).unwrap();
    }
    assert!(most > 0, "connections had their request timers while open");
    assert_eq!(reactor.timer_count(), 0);
    assert_eq!(reactor.stats().registered, (CLIENTS * EACH + 1) as u64);
}

common::per_backend!(
    the_five_results_of_protocol_md,
    a_thousand_concurrent_clients,
    each_malformed_request_closes_only_its_connection,
    empty_and_odd_content_gets_an_answer,
    half_a_request_is_closed_after_the_timeout,
    keep_alive_answers_many_requests_in_order,
    keep_alive_timeout_counts_from_the_last_response,
    a_non_keep_alive_server_answers_one_request_per_connection,
    keep_alive_pipeline_larger_than_the_output_limit,
    keep_alive_answers_everything_before_a_half_close,
);
