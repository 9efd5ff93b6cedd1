//! Property tests of the Message protocol decoder: any input, any chunking.

use proptest::prelude::*;
use rawloop::protocol::codec::{self, Decoder, FrameError, Message, REQUIRED_HEADERS};
use serde_json::{Map, Value};

const CASES: u32 = 3000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// JSON values whose Python-style text parses back to the same value: floats are quarters,
/// which `serde_json` reads back exactly.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-(1i64 << 40)..(1i64 << 40)).prop_map(|k| Value::from(k as f64 / 4.0)),
        "(?s).{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("(?s).{0,6}", inner), 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

fn extra_headers() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec(("(?s).{0,8}", json_value()), 0..3).prop_map(|members| {
        members
            .into_iter()
            .filter(|(key, _)| !REQUIRED_HEADERS.contains(&key.as_str()))
            .collect()
    })
}

fn message() -> impl Strategy<Value = Message> {
    let body = prop_oneof![
        json_value().prop_map(Message::text_json),
        "(?s).{0,16}".prop_map(|value| codec::request_search(&value)),
        ("(?s).{0,8}", "(?s).{0,8}").prop_map(|(a, v)| codec::request_binary(&a, &v)),
        "(?s).{0,16}".prop_map(|result| codec::response_text(&result)),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|c| codec::response_binary(&c)),
        (
            "(?s).{0,20}".prop_filter("opaque type", |t| t != "text/json"),
            "(?s).{0,10}",
            prop::collection::vec(any::<u8>(), 0..600),
        )
            .prop_map(|(t, e, c)| Message::new(t, e, c)),
    ];
    let byteorder = prop_oneof![
        Just("little".to_owned()),
        Just("big".to_owned()),
        "(?s).{0,8}"
    ];
    (body, byteorder, extra_headers()).prop_map(|(mut message, byteorder, extra)| {
        message.byteorder = byteorder;
        message.extra = extra;
        message
    })
}

fn encode_all(messages: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        message.encode_into(&mut out).expect("small headers");
    }
    out
}

/// Splits `bytes` at the given points (taken modulo its length).
fn split<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points
        .iter()
        .map(|p| p % (bytes.len() + 1))
        .chain([0, bytes.len()])
        .collect();
    cuts.sort_unstable();
    cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

/// Bytes that are partly frames: valid ones, mutated ones, frames announcing any length, and
/// plain noise.
fn soup_piece() -> impl Strategy<Value = Vec<u8>> {
    let mutated = (
        message(),
        prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..4),
    )
        .prop_map(|(message, edits)| {
            let mut bytes = message.encode().expect("small headers");
            for (at, byte, kind) in edits {
                let at = at % (bytes.len() + 1);
                match kind {
                    0 if at < bytes.len() => bytes[at] ^= byte | 1,
                    1 => bytes.truncate(at),
                    _ => bytes.insert(at, byte),
                }
            }
            bytes
        });
    let length = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..100).prop_map(|n| n.to_string()),
        "-1|2\\.5|1e3|\"7\"|null|true|\\[\\]".prop_map(String::from),
    ];
    let header_value = "\"text/json\"|\"x/y\"|\"utf-8\"|\"latin-1\"|\"\"|7|null";
    let announced =
        (length, 0usize..64, header_value, header_value).prop_map(|(len, have, ty, encoding)| {
            let header = format!(
                "{{\"byteorder\": \"big\", \"content-type\": {ty}, \
             \"content-encoding\": {encoding}, \"content-length\": {len}}}"
            );
            let mut bytes = (header.len() as u16).to_be_bytes().to_vec();
            bytes.extend_from_slice(header.as_bytes());
            bytes.extend(vec![b'['; have]);
            bytes
        });
    let header_only = "\\[\\]|\"s\"|1|null|\\{\\}|\\{\"byteorder\": 1\\}".prop_map(|header| {
        let mut bytes = (header.len() as u16).to_be_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes
    });
    prop_oneof![
        3 => message().prop_map(|m| m.encode().expect("small headers")),
        3 => mutated,
        2 => announced,
        1 => header_only,
        1 => Just(vec![0, 0]),
        2 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// How a test pulls messages out of a decoder.
#[derive(Clone, Copy, Debug)]
enum Pull {
    /// `next_message`, owned.
    Messages,
    /// `next_frame`, lent (and copied into a message for the log).
    Frames,
}

fn pull(decoder: &mut Decoder, how: Pull) -> Result<Option<Message>, FrameError> {
    match how {
        Pull::Messages => decoder.next_message(),
        Pull::Frames => decoder.next_frame().map(|f| f.map(|f| f.to_message())),
    }
}

/// Everything a decoder reports for `chunks` followed by end of stream, up to and including
/// the first fatal error, checking its memory bound after every chunk.
fn run(decoder: &mut Decoder, chunks: &[&[u8]]) -> Vec<Result<Message, FrameError>> {
    run_pulling(decoder, chunks, Pull::Messages)
}

fn run_pulling(
    decoder: &mut Decoder,
    chunks: &[&[u8]],
    how: Pull,
) -> Vec<Result<Message, FrameError>> {
    let mut log = Vec::new();
    let limit = decoder.max_content_len();
    for chunk in chunks {
        decoder.feed(chunk);
        loop {
            match pull(decoder, how) {
                Ok(Some(message)) => log.push(Ok(message)),
                Ok(None) => break,
                Err(err) => {
                    let fatal = err.is_fatal();
                    log.push(Err(err));
                    if fatal {
                        return log;
                    }
                }
            }
        }
        assert!(decoder.buffered() <= 2 + 65_535 + limit);
        assert!(
            decoder.memory_usage() <= limit + 2 * (2 + 65_535 + chunk.len()) + 4096,
            "memory {} for limit {limit}",
            decoder.memory_usage()
        );
    }
    // At end of stream: what is whole first (`finish` gives it too), then what is cut short.
    loop {
        let next = match pull(decoder, how) {
            Ok(None) => decoder.finish(),
            other => other,
        };
        match next {
            Ok(Some(message)) => log.push(Ok(message)),
            Ok(None) => return log,
            Err(err) => {
                let fatal = err.is_fatal();
                log.push(Err(err));
                if fatal {
                    return log;
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn byte_soup_never_panics_and_chunking_does_not_matter(
        pieces in prop::collection::vec(soup_piece(), 1..6),
        points in prop::collection::vec(any::<usize>(), 0..12),
        limit in prop_oneof![0usize..2048, Just(codec::DEFAULT_MAX_CONTENT_LEN)],
    ) {
        let stream = pieces.concat();
        let whole = run(&mut Decoder::with_max_content_len(limit), &[&stream]);
        let chunked = run(&mut Decoder::with_max_content_len(limit), &split(&stream, &points));
        prop_assert_eq!(whole, chunked);
    }

    #[test]
    fn frames_read_in_place_are_the_messages(
        pieces in prop::collection::vec(soup_piece(), 1..6),
        points in prop::collection::vec(any::<usize>(), 0..12),
        limit in prop_oneof![0usize..2048, Just(codec::DEFAULT_MAX_CONTENT_LEN)],
        parse_json in any::<bool>(),
    ) {
        // Each piece twice in a row, as a keep-alive client sends the same request again.
        let stream: Vec<u8> = pieces.iter().flat_map(|piece| [piece, piece]).flatten().copied().collect();
        let chunks = split(&stream, &points);
        let decoder = || Decoder::with_max_content_len(limit).parse_json(parse_json);
        let messages = run_pulling(&mut decoder(), &chunks, Pull::Messages);
        let frames = run_pulling(&mut decoder(), &chunks, Pull::Frames);
        prop_assert_eq!(frames, messages);
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        points in prop::collection::vec(any::<usize>(), 0..8),
        limit in 0usize..1024,
    ) {
        let mut decoder = Decoder::with_max_content_len(limit);
        run(&mut decoder, &split(&bytes, &points));
    }

    #[test]
    fn split_frames_decode_to_the_same_messages(
        messages in prop::collection::vec(message(), 1..6),
        points in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let stream = encode_all(&messages);
        let log = run(&mut Decoder::new(), &split(&stream, &points));
        let expected: Vec<Result<Message, FrameError>> =
            messages.iter().cloned().map(Ok).collect();
        prop_assert_eq!(log, expected);
    }

    #[test]
    fn read_with_decodes_the_same_messages(
        messages in prop::collection::vec(message(), 1..6),
        sizes in prop::collection::vec(1usize..300, 1..16),
    ) {
        let stream = encode_all(&messages);
        let mut decoder = Decoder::new();
        let mut rest = &stream[..];
        let mut decoded = Vec::new();
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = decoder
                .read_with(*size, |buf| {
                    let n = buf.len().min(rest.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    Ok::<_, ()>(n)
                })
                .expect("infallible");
            prop_assert!(n > 0 && n <= *size);
            rest = &rest[n..];
            while let Some(message) = decoder.next_message().expect("valid frames") {
                decoded.push(message);
            }
        }
        prop_assert_eq!(decoder.finish(), Ok(None));
        prop_assert_eq!(decoded, messages);
    }

    #[test]
    fn encode_decode_round_trip(message in message()) {
        let bytes = message.encode().expect("small headers");
        let header_len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        prop_assert_eq!(bytes.len(), 2 + header_len + message.content.len());
        let header = message.header_json();
        prop_assert_eq!(&bytes[2..2 + header_len], header.as_bytes());

        let mut decoder = Decoder::new();
        decoder.feed(&bytes);
        let decoded = decoder.next_message().expect("valid frame").expect("whole frame");
        prop_assert!(decoder.is_idle());
        prop_assert_eq!(decoded.encode().expect("small headers"), bytes);
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn server_answers_every_decoded_request(message in message()) {
        let response = codec::respond(&message);
        let bytes = response.encode().expect("small headers");
        let mut direct = Vec::new();
        codec::encode_response(&message, &mut direct).expect("small headers");
        prop_assert_eq!(&direct, &bytes);
        // A decoder that leaves the JSON unparsed: the answer, reading the content in place,
        // is the answer to the content as a parsing decoder reads it.
        let frame = message.encode().expect("small headers");
        let mut parsing = Decoder::new();
        parsing.feed(&frame);
        let mut lazy = Decoder::new().parse_json(false);
        lazy.feed(&frame);
        let unparsed = lazy.next_message().expect("valid frame").expect("whole frame");
        prop_assert_eq!(unparsed.json.as_ref(), None);
        let mut answer = Vec::new();
        codec::encode_response(&unparsed, &mut answer).expect("small headers");
        let expected = match parsing.next_message() {
            Ok(parsed) => codec::respond(&parsed.expect("whole frame")),
            Err(err) => codec::error_response(&err).expect("a content error"),
        };
        prop_assert_eq!(answer, expected.encode().expect("small headers"));
        let mut decoder = Decoder::new();
        decoder.feed(&bytes);
        let decoded = decoder.next_message().expect("valid frame").expect("whole frame");
        if message.is_json() {
            let result = decoded.json.as_ref().and_then(|v| v.get("result"));
            prop_assert!(result.is_some_and(Value::is_string));
        } else {
            prop_assert!(decoded.content.starts_with(b"First 10 bytes of request: "));
        }
    }
}
