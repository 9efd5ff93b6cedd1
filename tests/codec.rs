//! The Message protocol codec against the frames of `docs/protocol.md` and every class of
//! malformed input.

mod common;

use rawloop::protocol::codec::{
    self, to_python_json, to_python_repr, to_python_str, Decoder, FrameError, Message, Stage,
    CLIENT_BINARY_TYPE, DEFAULT_MAX_CONTENT_LEN, HOST_BYTEORDER, SERVER_BINARY_TYPE,
};
use serde_json::{json, Value};

const MORPHEUS_HEADER: &str = "{\"byteorder\": \"little\", \"content-type\": \"text/json\", \
     \"content-encoding\": \"utf-8\", \"content-length\": 41}";
const MORPHEUS_CONTENT: &str = "{\"action\": \"search\", \"value\": \"morpheus\"}";
const RABBIT_HEADER: &str = "{\"byteorder\": \"little\", \"content-type\": \"text/json\", \
     \"content-encoding\": \"utf-8\", \"content-length\": 43}";
const RABBIT_CONTENT: &str = "{\"result\": \"Follow the white rabbit. \u{1f430}\"}";
const BINARY_HEADER: &str = "{\"byteorder\": \"little\", \
     \"content-type\": \"binary/custom-client-binary-type\", \
     \"content-encoding\": \"binary\", \"content-length\": 11}";
const BINARY_RESPONSE_HEADER: &str = "{\"byteorder\": \"little\", \
     \"content-type\": \"binary/custom-server-binary-type\", \
     \"content-encoding\": \"binary\", \"content-length\": 37}";

fn frame(prefix: [u8; 2], header: &str, content: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(content);
    out
}

fn morpheus_request() -> Vec<u8> {
    frame([0x00, 0x67], MORPHEUS_HEADER, MORPHEUS_CONTENT.as_bytes())
}

fn rabbit_response() -> Vec<u8> {
    frame([0x00, 0x67], RABBIT_HEADER, RABBIT_CONTENT.as_bytes())
}

fn binary_request() -> Vec<u8> {
    frame([0x00, 0x7f], BINARY_HEADER, b"binaryhello")
}

fn binary_response() -> Vec<u8> {
    frame(
        [0x00, 0x7f],
        BINARY_RESPONSE_HEADER,
        b"First 10 bytes of request: binaryhell",
    )
}

/// Encodes `message` as a little-endian host would, as the frames of docs/protocol.md were.
fn encode_little(mut message: Message) -> Vec<u8> {
    message.byteorder = "little".to_owned();
    message.encode().expect("encodable")
}

/// A frame with an arbitrary header text and content.
fn raw_frame(header: &str, content: &[u8]) -> Vec<u8> {
    common::frame(header.as_bytes(), content)
}

fn header_with(content_length: &str, content_type: &str) -> String {
    format!(
        "{{\"byteorder\": \"little\", \"content-type\": {content_type}, \
         \"content-encoding\": \"utf-8\", \"content-length\": {content_length}}}"
    )
}

fn decode_all(decoder: &mut Decoder) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(message) = decoder.next_message().expect("valid frames") {
        out.push(message);
    }
    out
}

fn decode_in_chunks(bytes: &[u8], chunk: usize) -> Vec<Message> {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk) {
        decoder.feed(piece);
        out.extend(decode_all(&mut decoder));
    }
    assert_eq!(decoder.finish(), Ok(None));
    out
}

fn first_error(bytes: &[u8]) -> FrameError {
    let mut decoder = Decoder::new();
    decoder.feed(bytes);
    loop {
        match decoder.finish() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no error for {bytes:?}"),
            Err(err) => return err,
        }
    }
}

#[test]
fn golden_morpheus_request() {
    let bytes = encode_little(codec::request_search("morpheus"));
    assert_eq!(bytes.len(), 146);
    assert_eq!(&bytes[..2], &[0x00, 0x67]);
    assert_eq!(bytes, morpheus_request());
    assert_eq!(encode_little(codec::request("search", "morpheus")), bytes);
}

#[test]
fn golden_rabbit_response() {
    let bytes = encode_little(codec::response_text("Follow the white rabbit. \u{1f430}"));
    assert_eq!(bytes.len(), 148);
    assert_eq!(bytes, rabbit_response());
    assert!(bytes.windows(4).any(|w| w == [0xf0, 0x9f, 0x90, 0xb0]));
}

#[test]
fn golden_binary_request() {
    let bytes = encode_little(codec::request("binary", "hello"));
    assert_eq!(bytes.len(), 140);
    assert_eq!(&bytes[..2], &[0x00, 0x7f]);
    assert_eq!(bytes, binary_request());
    assert_eq!(
        encode_little(codec::request_binary("binary", "hello")),
        bytes
    );
}

#[test]
fn golden_binary_response() {
    let message = codec::response_binary(b"binaryhello");
    assert_eq!(message.content.len(), 37);
    assert_eq!(encode_little(message), binary_response());
}

#[test]
fn server_answers_golden_requests() {
    let mut decoder = Decoder::new();
    decoder.feed(&morpheus_request());
    let request = decoder.next_message().unwrap().unwrap();
    assert_eq!(
        request.json,
        Some(json!({"action": "search", "value": "morpheus"}))
    );
    assert_eq!(encode_little(codec::respond(&request)), rabbit_response());

    decoder.feed(&binary_request());
    let request = decoder.next_message().unwrap().unwrap();
    assert_eq!(request.content_type, CLIENT_BINARY_TYPE);
    assert_eq!(request.json, None);
    assert_eq!(encode_little(codec::respond(&request)), binary_response());
}

#[test]
fn helpers_use_host_byteorder() {
    assert_eq!(
        HOST_BYTEORDER,
        if cfg!(target_endian = "little") {
            "little"
        } else {
            "big"
        }
    );
    for message in [
        codec::request_search("x"),
        codec::request_binary("a", "b"),
        codec::response_text("r"),
        codec::response_binary(b""),
    ] {
        assert_eq!(message.byteorder, HOST_BYTEORDER);
    }
}

#[test]
fn search_table_and_errors() {
    let answer = |request: Message| {
        let response = codec::respond(&request);
        assert_eq!(response.content_type, "text/json");
        assert_eq!(response.content_encoding, "utf-8");
        let value: Value = serde_json::from_slice(&response.content).unwrap();
        assert_eq!(response.json.as_ref(), Some(&value));
        value["result"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        answer(codec::request_search("ring")),
        "In the caves beneath the Misty Mountains. \u{1f48d}"
    );
    assert_eq!(
        answer(codec::request_search("\u{1f436}")),
        "\u{1f43e} Playing ball! \u{1f3d0}"
    );
    assert_eq!(answer(codec::request_search("q")), "No match for 'q'.");
    let other = Message::text_json(json!({"action": "a", "value": "v"}));
    assert_eq!(answer(other), "Error: invalid action 'a'.");
}

#[test]
fn encode_response_writes_what_respond_encodes() {
    let mut requests = vec![
        codec::request_search("morpheus"),
        codec::request_search("ring"),
        codec::request_search("q\"u\\o\nte\u{1}\u{1f436}"),
        codec::request_binary("binary", "hello"),
        codec::request_binary("", ""),
        codec::request_binary("a longer binary request", "than ten bytes"),
        Message::new("text/json", "utf-8", Vec::new()),
        Message::new("text/json", "utf-8", b"not json".to_vec()),
        Message::new("text/json", "latin-1", b"{\"action\": \"search\"}".to_vec()),
        Message::new("text/json", "rot13", b"{}".to_vec()),
        Message::new("text/json", "utf-8", b"[1, 2]".to_vec()),
    ];
    for value in [
        json!({}),
        json!({"action": 5, "value": 1}),
        json!({"action": "search", "value": {"k": "it's"}}),
        json!(null),
    ] {
        requests.push(Message::text_json(value));
    }
    for content in [
        r#"{"action": "search", "value": 5}"#,
        r#"{"action": 18446744073709551615}"#,
        r#"{"value": "x", "action": "search", "action": "x"}"#,
        r#"{"action":"search","value":"ring","value":"morpheus"}"#,
        " {\t\"action\" : \"search\" , \"value\":\"caf\u{e9}\" } ",
        r#"{"action": "search", "value": "a\"b"}"#,
        r#"{"action": "search", "value": 1.5}"#,
        "{}",
    ] {
        requests.push(Message::new("text/json", "utf-8", content));
    }
    for request in requests {
        let mut direct = vec![7];
        codec::encode_response(&request, &mut direct).unwrap();
        let mut expected = vec![7];
        expected.extend(codec::respond(&request).encode().unwrap());
        assert_eq!(direct, expected, "{request:?}");
        // The content read in place (json left unparsed) gets the answer to the parsed JSON.
        let mut parsed = request.clone();
        parsed.json = request.parse_json().ok().filter(|_| request.is_json());
        let mut unparsed = request.clone();
        unparsed.json = None;
        let mut lazy = vec![7];
        codec::encode_response(&unparsed, &mut lazy).unwrap();
        let mut expected = vec![7];
        expected.extend(codec::respond(&parsed).encode().unwrap());
        assert_eq!(lazy, expected, "{request:?}");
    }
}

#[test]
fn emoji_request_matches_reference_length() {
    let message = codec::request_search("\u{1f436}");
    assert_eq!(message.content.len(), 37);
    assert_eq!(
        message.content,
        "{\"action\": \"search\", \"value\": \"\u{1f436}\"}".as_bytes()
    );
}

#[test]
fn odd_json_requests_get_an_answer() {
    let result = |value: Value| {
        let response = codec::respond(&Message::text_json(value));
        response.json.unwrap()["result"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(result(json!({})), "Error: invalid action 'None'.");
    assert_eq!(result(json!({"value": 1})), "Error: invalid action 'None'.");
    assert_eq!(
        result(json!({"action": 5, "value": 1})),
        "Error: invalid action '5'."
    );
    assert_eq!(
        result(json!({"action": [true, null, "x"]})),
        "Error: invalid action '[True, None, 'x']'."
    );
    assert_eq!(result(json!({"action": "search"})), "No match for 'None'.");
    assert_eq!(
        result(json!({"action": "search", "value": 1.0})),
        "No match for '1.0'."
    );
    assert_eq!(
        result(json!({"action": "search", "value": {"k": "it's"}})),
        "No match for '{'k': \"it's\"}'."
    );
    for (value, kind) in [
        (json!([]), "array"),
        (json!(""), "string"),
        (json!(0), "number"),
        (json!(null), "null"),
        (json!(false), "boolean"),
        (json!(["search", "morpheus"]), "array"),
    ] {
        assert_eq!(
            result(value),
            format!("Error: invalid request: expected a JSON object, got {kind}.")
        );
    }
}

#[test]
fn empty_content() {
    let empty_binary = Message::new(CLIENT_BINARY_TYPE, "binary", Vec::new());
    let response = codec::respond(&empty_binary);
    assert_eq!(response.content_type, SERVER_BINARY_TYPE);
    assert_eq!(response.content, b"First 10 bytes of request: ");

    let decoded = decode_in_chunks(&empty_binary.encode().unwrap(), 1);
    assert_eq!(decoded, vec![empty_binary]);

    let empty_json = Message::new("text/json", "utf-8", Vec::new());
    let err = first_error(&empty_json.encode().unwrap());
    assert!(matches!(err, FrameError::ContentNotJson { .. }), "{err:?}");
    assert!(!err.is_fatal());
    let response = codec::error_response(&err).unwrap();
    assert_eq!(
        response.json,
        Some(json!({"result": "Error: invalid JSON request content."}))
    );
    assert_eq!(
        codec::respond(&empty_json).json,
        Some(json!({"result": "Error: invalid JSON request content."}))
    );
}

#[test]
fn decode_whole_and_byte_by_byte() {
    for bytes in [
        morpheus_request(),
        rabbit_response(),
        binary_request(),
        binary_response(),
    ] {
        let whole = decode_in_chunks(&bytes, bytes.len());
        assert_eq!(whole.len(), 1);
        assert_eq!(whole, decode_in_chunks(&bytes, 1));
        assert_eq!(encode_little(whole[0].clone()), bytes);
        for chunk in 2..bytes.len() {
            assert_eq!(decode_in_chunks(&bytes, chunk), whole, "chunk {chunk}");
        }
    }
}

#[test]
fn two_frames_and_a_half_in_one_chunk() {
    let mut stream = morpheus_request();
    stream.extend(binary_request());
    let half = rabbit_response();
    stream.extend(&half[..70]);

    let mut decoder = Decoder::new();
    decoder.feed(&stream);
    let first = decoder.next_message().unwrap().unwrap();
    let second = decoder.next_message().unwrap().unwrap();
    assert_eq!(
        first.json,
        Some(json!({"action": "search", "value": "morpheus"}))
    );
    assert_eq!(second.content, b"binaryhello");
    assert_eq!(decoder.next_message(), Ok(None));
    assert!(!decoder.is_idle());
    assert_eq!(decoder.stage(), Some(Stage::Header));

    decoder.feed(&half[70..]);
    let third = decoder.next_message().unwrap().unwrap();
    assert_eq!(
        third.json,
        Some(json!({"result": "Follow the white rabbit. \u{1f430}"}))
    );
    assert!(decoder.is_idle());
    assert_eq!(decoder.finish(), Ok(None));
}

#[test]
fn finish_returns_buffered_messages_first() {
    let mut decoder = Decoder::new();
    let mut stream = morpheus_request();
    stream.extend(binary_request());
    decoder.feed(&stream);
    assert!(decoder.finish().unwrap().is_some());
    assert!(decoder.finish().unwrap().is_some());
    assert_eq!(decoder.finish(), Ok(None));
}

#[test]
fn read_with_fills_decoder_directly() {
    let mut stream = morpheus_request();
    stream.extend(binary_request());
    let big = Message::new(CLIENT_BINARY_TYPE, "binary", vec![7u8; 100_000]);
    stream.extend(big.encode().unwrap());

    let mut decoder = Decoder::new();
    let mut source = &stream[..];
    let mut messages = Vec::new();
    loop {
        let n = decoder
            .read_with(1000, |buf| std::io::Read::read(&mut source, buf))
            .unwrap();
        if n == 0 {
            break;
        }
        messages.extend(decode_all(&mut decoder));
        assert!(decoder.memory_usage() <= 100_000 + 2 * 1000 + 70_000);
    }
    assert_eq!(decoder.finish(), Ok(None));
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[2], big);

    let err = decoder.read_with(10, |_| Err::<usize, _>("boom"));
    assert_eq!(err, Err("boom"));
    assert_eq!(decoder.buffered(), 0);
    assert_eq!(
        decoder.read_with(10, |buf| Ok::<_, ()>(buf.len() + 5)),
        Ok(10)
    );
    assert_eq!(decoder.buffered(), 10);
}

#[test]
fn truncated_in_each_stage() {
    let bytes = morpheus_request();
    let cases = [
        (1, Stage::LengthPrefix, 1, 2),
        (2, Stage::Header, 0, 103),
        (50, Stage::Header, 48, 103),
        (105, Stage::Content, 0, 41),
        (145, Stage::Content, 40, 41),
    ];
    for (cut, stage, received, expected) in cases {
        let mut decoder = Decoder::new();
        decoder.feed(&bytes[..cut]);
        assert_eq!(decoder.next_message(), Ok(None));
        let err = decoder.finish().unwrap_err();
        assert_eq!(
            err,
            FrameError::Truncated {
                stage,
                received,
                expected
            },
            "cut at {cut}"
        );
        assert!(err.is_fatal());
        assert_eq!(decoder.next_message(), Err(err));
    }
    let mut decoder = Decoder::new();
    assert_eq!(decoder.finish(), Ok(None));
}

type Check = fn(&FrameError) -> bool;

#[test]
fn each_malformed_class_has_its_own_variant() {
    let text_json = "\"text/json\"";
    let cases: Vec<(Vec<u8>, Check)> =
        vec![
        (vec![0, 0, b'{', b'}'], |e| {
            *e == FrameError::HeaderLengthZero
        }),
        (
            {
                let mut f = vec![0, 4];
                f.extend_from_slice(b"{\xff}\x00");
                f
            },
            |e| *e == FrameError::HeaderNotUtf8 { valid_up_to: 1 },
        ),
        (raw_frame("{\"byteorder\": ", b""), |e| {
            matches!(e, FrameError::HeaderNotJson { .. })
        }),
        (raw_frame("{} trailing", b""), |e| {
            matches!(e, FrameError::HeaderNotJson { .. })
        }),
        (raw_frame("[1, 2]", b""), |e| {
            *e == FrameError::HeaderNotObject { found: "array" }
        }),
        (raw_frame("\"byteorder\"", b""), |e| {
            *e == FrameError::HeaderNotObject { found: "string" }
        }),
        (
            raw_frame(
                "{\"content-type\": \"x\", \"content-encoding\": \"y\", \"content-length\": 0}",
                b"",
            ),
            |e| *e == FrameError::MissingHeader { key: "byteorder" },
        ),
        (
            raw_frame(
                "{\"byteorder\": \"big\", \"content-type\": \"x\", \"content-encoding\": \"y\"}",
                b"",
            ),
            |e| {
                *e == FrameError::MissingHeader {
                    key: "content-length",
                }
            },
        ),
        (
            raw_frame("{\"byteorder\": \"big\", \"content-length\": 0}", b""),
            |e| *e == FrameError::MissingHeader { key: "content-type" },
        ),
        (
            raw_frame(
                "{\"byteorder\": \"big\", \"content-length\": 0, \"content-type\": \"x\"}",
                b"",
            ),
            |e| {
                *e == FrameError::MissingHeader {
                    key: "content-encoding",
                }
            },
        ),
        (raw_frame(&header_with("-1", text_json), b""), |e| {
            *e == FrameError::InvalidContentLength {
                found: "-1".to_owned(),
            }
        }),
        (raw_frame(&header_with("41.0", text_json), b""), |e| {
            *e == FrameError::InvalidContentLength {
                found: "41.0".to_owned(),
            }
        }),
        (raw_frame(&header_with("\"41\"", text_json), b""), |e| {
            *e == FrameError::InvalidContentLength {
                found: "\"41\"".to_owned(),
            }
        }),
        (raw_frame(&header_with("true", text_json), b""), |e| {
            *e == FrameError::InvalidContentLength {
                found: "true".to_owned(),
            }
        }),
        (raw_frame(&header_with("null", text_json), b""), |e| {
            *e == FrameError::InvalidContentLength {
                found: "null".to_owned(),
            }
        }),
        (
            raw_frame(&header_with("18446744073709551615", text_json), b""),
            |e| {
                *e == FrameError::ContentTooLong {
                    length: u64::MAX,
                    limit: DEFAULT_MAX_CONTENT_LEN,
                }
            },
        ),
        (raw_frame(&header_with("2", "7"), b"{}"), |e| {
            *e == FrameError::HeaderNotString {
                key: "content-type",
                found: "7".to_owned(),
            }
        }),
        (
            raw_frame(
                "{\"byteorder\": \"big\", \"content-type\": \"text/json\", \
                 \"content-encoding\": null, \"content-length\": 2}",
                b"{}",
            ),
            |e| {
                *e == FrameError::HeaderNotString {
                    key: "content-encoding",
                    found: "null".to_owned(),
                }
            },
        ),
        (
            raw_frame(
                "{\"byteorder\": \"big\", \"content-type\": \"text/json\", \
                 \"content-encoding\": \"utf-16\", \"content-length\": 2}",
                b"{}",
            ),
            |e| {
                *e == FrameError::UnsupportedEncoding {
                    encoding: "utf-16".to_owned(),
                }
            },
        ),
        (raw_frame(&header_with("5", text_json), b"{nope"), |e| {
            matches!(e, FrameError::ContentNotJson { .. })
        }),
        (raw_frame(&header_with("2", text_json), b"\"\xff"), |e| {
            matches!(e, FrameError::ContentNotJson { .. })
        }),
        (morpheus_request()[..120].to_vec(), |e| {
            matches!(
                e,
                FrameError::Truncated {
                    stage: Stage::Content,
                    ..
                }
            )
        }),
    ];
    let mut seen = std::collections::HashSet::new();
    for (bytes, check) in &cases {
        let err = first_error(bytes);
        assert!(check(&err), "unexpected {err:?} for {bytes:?}");
        assert!(!err.to_string().is_empty());
        let io: std::io::Error = err.clone().into();
        assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);
        seen.insert(std::mem::discriminant(&err));
    }
    assert_eq!(seen.len(), 11, "one variant per class");
}

#[test]
fn missing_header_message_matches_reference() {
    let err = first_error(&raw_frame("{}", b""));
    assert_eq!(err.to_string(), "Missing required header 'byteorder'.");
}

#[test]
fn content_errors_keep_the_decoder_in_step() {
    let mut stream = raw_frame(&header_with("3", "\"text/json\""), b"{x}");
    stream.extend(morpheus_request());
    let mut decoder = Decoder::new();
    for byte in &stream {
        decoder.feed(std::slice::from_ref(byte));
    }
    let err = decoder.next_message().unwrap_err();
    assert!(!err.is_fatal());
    let message = decoder.next_message().unwrap().unwrap();
    assert_eq!(message.content, MORPHEUS_CONTENT.as_bytes());
    assert!(decoder.is_idle());
}

#[test]
fn fatal_errors_stick_and_free_the_buffer() {
    let mut decoder = Decoder::new();
    let mut stream = vec![0, 0];
    stream.extend(vec![b'x'; 10_000]);
    decoder.feed(&stream);
    assert_eq!(decoder.next_message(), Err(FrameError::HeaderLengthZero));
    assert_eq!(decoder.stage(), None);
    decoder.feed(&morpheus_request());
    assert_eq!(decoder.next_message(), Err(FrameError::HeaderLengthZero));
    assert_eq!(decoder.finish(), Err(FrameError::HeaderLengthZero));
    assert_eq!(decoder.memory_usage(), 0);
}

#[test]
fn content_limit_is_checked_before_allocating() {
    let mut decoder = Decoder::with_max_content_len(1000);
    assert_eq!(decoder.max_content_len(), 1000);
    let header = header_with("1001", "\"x\"");
    decoder.feed(&raw_frame(&header, b""));
    assert_eq!(
        decoder.next_message(),
        Err(FrameError::ContentTooLong {
            length: 1001,
            limit: 1000
        })
    );

    let mut decoder = Decoder::with_max_content_len(1000);
    decoder.feed(&raw_frame(&header_with("1000", "\"x\""), b""));
    assert_eq!(decoder.next_message(), Ok(None));
    assert_eq!(decoder.stage(), Some(Stage::Content));
    assert!(decoder.memory_usage() < 1000, "{}", decoder.memory_usage());

    let mut decoder = Decoder::new();
    let huge = format!("{}", DEFAULT_MAX_CONTENT_LEN + 1);
    decoder.feed(&raw_frame(&header_with(&huge, "\"x\""), b""));
    assert!(matches!(
        decoder.next_message(),
        Err(FrameError::ContentTooLong { .. })
    ));
    assert_eq!(decoder.memory_usage(), 0);
}

#[test]
fn announced_content_is_reserved_as_it_arrives() {
    let len = DEFAULT_MAX_CONTENT_LEN;
    let mut decoder = Decoder::new();
    decoder.feed(&raw_frame(&header_with(&len.to_string(), "\"x\""), b""));
    assert_eq!(decoder.next_message(), Ok(None));
    decoder.feed(&[1; 10]);
    assert!(decoder.memory_usage() < 64 * 1024);

    let chunk = vec![9u8; 64 * 1024];
    for _ in 0..len / chunk.len() {
        decoder.feed(&chunk);
        assert!(decoder.memory_usage() <= len + 64 * 1024);
    }
    decoder.feed(&[0; 10]);
    let message = decoder.next_message().unwrap().unwrap();
    assert_eq!(message.content.len(), len);
    assert!(message.content.capacity() <= len);
}

#[test]
fn extra_keys_are_kept_and_standard_ones_removed() {
    let header = "{\"z\": [1, {\"y\": null}], \"content-length\": 2, \"byteorder\": \"big\", \
                  \"a\": 1.5, \"content-encoding\": \"binary\", \"content-type\": \"b/c\"}";
    let mut decoder = Decoder::new();
    decoder.feed(&raw_frame(header, b"hi"));
    let message = decoder.next_message().unwrap().unwrap();
    assert_eq!(message.byteorder, "big");
    assert_eq!(message.content_type, "b/c");
    assert_eq!(message.content_encoding, "binary");
    let keys: Vec<&str> = message.extra.keys().map(String::as_str).collect();
    assert_eq!(keys, ["z", "a"]);
    assert_eq!(
        message.header_json(),
        "{\"byteorder\": \"big\", \"content-type\": \"b/c\", \"content-encoding\": \"binary\", \
         \"content-length\": 2, \"z\": [1, {\"y\": null}], \"a\": 1.5}"
    );
    let mut again = Decoder::new();
    again.feed(&message.encode().unwrap());
    assert_eq!(again.next_message().unwrap().unwrap(), message);
}

#[test]
fn byteorder_value_is_informational() {
    let header = "{\"byteorder\": null, \"content-length\": 0, \"content-type\": \"x\", \
                  \"content-encoding\": \"y\"}";
    let mut decoder = Decoder::new();
    decoder.feed(&raw_frame(header, b""));
    assert_eq!(decoder.next_message().unwrap().unwrap().byteorder, "null");
}

#[test]
fn encodings_python_knows() {
    for (encoding, content) in [
        ("UTF-8", "{\"v\": \"\u{e9}\"}".as_bytes()),
        ("utf8", "{\"v\": \"\u{e9}\"}".as_bytes()),
        ("latin-1", b"{\"v\": \"\xe9\"}".as_slice()),
        ("ISO-8859-1", b"{\"v\": \"\xe9\"}".as_slice()),
    ] {
        let message = Message::new("text/json", encoding, content);
        let mut decoder = Decoder::new();
        decoder.feed(&message.encode().unwrap());
        let decoded = decoder.next_message().unwrap().unwrap();
        assert_eq!(decoded.json, Some(json!({"v": "\u{e9}"})), "{encoding}");
    }
    let message = Message::new("text/json", "ascii", b"{\"v\": \"\xe9\"}".as_slice());
    assert!(matches!(
        first_error(&message.encode().unwrap()),
        FrameError::ContentNotJson { .. }
    ));
    let message = Message::new("text/json", "ebcdic", b"{}".as_slice());
    let err = first_error(&message.encode().unwrap());
    assert_eq!(
        codec::error_response(&err).unwrap().json,
        Some(json!({"result": "Error: unsupported content-encoding 'ebcdic'."}))
    );
    assert_eq!(codec::error_response(&FrameError::HeaderLengthZero), None);
}

#[test]
fn header_too_long_to_encode() {
    let mut message = codec::request_binary("a", "b");
    message.content_type = "t".repeat(70_000);
    let err = message.encode().unwrap_err();
    assert!(matches!(err, codec::EncodeError::HeaderTooLong { .. }));
    let mut out = vec![1, 2, 3];
    assert!(message.encode_into(&mut out).is_err());
    assert_eq!(out, [1, 2, 3]);
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn python_json_formatting() {
    let value = json!({
        "s": "q\"b\\n\nr\rt\tb\u{8}f\u{c}z\u{0}\u{1f}\u{7f}\u{e9}\u{2028}\u{1f430}",
        "n": [0, -5, 18446744073709551615u64, 1.0, 0.5, 1e16, 1e15, 1e-5, 0.0001, 1e100, -0.0],
        "o": {},
        "a": [],
        "b": [true, false, null],
    });
    assert_eq!(
        to_python_json(&value),
        "{\"s\": \"q\\\"b\\\\n\\nr\\rt\\tb\\bf\\fz\\u0000\\u001f\u{7f}\u{e9}\u{2028}\u{1f430}\", \
         \"n\": [0, -5, 18446744073709551615, 1.0, 0.5, 1e+16, 1000000000000000.0, 1e-05, \
         0.0001, 1e+100, -0.0], \"o\": {}, \"a\": [], \"b\": [true, false, null]}"
    );
    assert_eq!(
        to_python_json(&json!(3_551_231_553_497_461.0_f64 / 4.0)),
        "887807888374365.2"
    );
}

#[test]
fn python_repr_and_str() {
    let value = json!(["a", "it's", "x\"y'", "\u{7f}\u{a0}\u{e9}\n", null, true, 2, {"k": []}]);
    assert_eq!(
        to_python_repr(&value),
        "['a', \"it's\", 'x\"y\\'', '\\x7f\\xa0\u{e9}\\n', None, True, 2, {'k': []}]"
    );
    assert_eq!(to_python_str(&json!("it's")), "it's");
    assert_eq!(to_python_str(&json!(null)), "None");
}
