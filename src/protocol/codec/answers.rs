//! The reference programs' requests and the reference server's answers: what
//! `app-client` sends and what `libserver.py` responds.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::content::{decode_json_content, json_kind};
use super::known_headers::{host_head, Kind};
use super::message::append_plain_frame;
use super::plain_json::{self, PlainValue};
use super::python_json::{py_string_len, to_python_str, write_py_string};
use super::{EncodeError, Frame, FrameError, Message};

/// The content type of the reference client's binary requests.
pub const CLIENT_BINARY_TYPE: &str = "binary/custom-client-binary-type";

/// The content type of the reference server's binary responses.
pub const SERVER_BINARY_TYPE: &str = "binary/custom-server-binary-type";

const BINARY_PREFIX: &[u8] = b"First 10 bytes of request: ";

const SEARCH_TABLE: [(&str, &str); 3] = [
    ("morpheus", "Follow the white rabbit. \u{1f430}"),
    (
        "ring",
        "In the caves beneath the Misty Mountains. \u{1f48d}",
    ),
    ("\u{1f436}", "\u{1f43e} Playing ball! \u{1f3d0}"),
];

/// The request the reference client builds from `app-client <host> <port> <action> <value>`:
/// [`request_search`] for `search`, [`request_binary`] for anything else.
pub fn request(action: &str, value: &str) -> Message {
    if action == "search" {
        request_search(value)
    } else {
        request_binary(action, value)
    }
}

/// A search request: `text/json`, `utf-8`, content `{"action": "search", "value": "<value>"}`.
pub fn request_search(value: &str) -> Message {
    let mut content = Map::new();
    content.insert("action".to_owned(), Value::from("search"));
    content.insert("value".to_owned(), Value::from(value));
    Message::text_json(Value::Object(content))
}

/// A binary request: `binary/custom-client-binary-type`, `binary`, content the UTF-8 bytes of
/// `action` followed by those of `value`.
pub fn request_binary(action: &str, value: &str) -> Message {
    let mut content = Vec::with_capacity(action.len() + value.len());
    content.extend_from_slice(action.as_bytes());
    content.extend_from_slice(value.as_bytes());
    Message::new(CLIENT_BINARY_TYPE, "binary", content)
}

/// A `text/json` response with content `{"result": "<result>"}`.
pub fn response_text(result: &str) -> Message {
    let mut content = Map::new();
    content.insert("result".to_owned(), Value::from(result));
    Message::text_json(Value::Object(content))
}

/// The binary response to binary request content: `binary/custom-server-binary-type`,
/// `binary`, content `First 10 bytes of request: ` followed by the first 10 bytes of
/// `request_content` (all of it if shorter, nothing if empty).
pub fn response_binary(request_content: &[u8]) -> Message {
    let head = binary_head(request_content);
    let mut content = Vec::with_capacity(BINARY_PREFIX.len() + head.len());
    content.extend_from_slice(BINARY_PREFIX);
    content.extend_from_slice(head);
    Message::new(SERVER_BINARY_TYPE, "binary", content)
}

/// The bytes of a binary request the binary response repeats: the first 10.
fn binary_head(request_content: &[u8]) -> &[u8] {
    &request_content[..request_content.len().min(10)]
}

/// The result text the reference's search table gives for `query`, if any.
pub fn search(query: &str) -> Option<&'static str> {
    SEARCH_TABLE
        .iter()
        .find(|(key, _)| *key == query)
        .map(|(_, answer)| *answer)
}

/// The server's answer to a request, as `libserver.py` computes it, without its dead ends.
///
/// * `text/json`: the JSON is [`Message::json`], or parsed from the content when that is
///   `None`. For an object, `action` `"search"` looks `value` up in the search table
///   (`No match for '<value>'.` when absent); any other `action` gives
///   `Error: invalid action '<action>'.`. Values are shown as Python's `str()` would show
///   them, so a missing one is `None` (`{}` gives `Error: invalid action 'None'.`). JSON that
///   is not an object gives `Error: invalid request: expected a JSON object, got <kind>.` and
///   content that is not JSON gives `Error: invalid JSON request content.`.
/// * any other content type, empty content included: [`response_binary`].
pub fn respond(request: &Message) -> Message {
    match answer(request.into()) {
        Answer::Text(result) => response_text(&result),
        Answer::Binary => response_binary(&request.content),
    }
}

/// Appends the frame of [`respond`]`(request)` to `out`, byte for byte what
/// `respond(request).encode()` gives, without building the response [`Message`] or any
/// buffer but `out` (a server's path). `request` is a [`Message`] or a [`Frame`] read in
/// place.
pub fn encode_response<'a>(
    request: impl Into<Frame<'a>>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    // The work is in a function of this crate, compiled once, not in each caller's copy.
    append_response(request.into(), out)
}

fn append_response(request: Frame<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match answer(request) {
        Answer::Text(result) => {
            const OPEN: &[u8] = b"{\"result\": ";
            let len = OPEN.len() + py_string_len(&result) + 1;
            append_plain_frame(&host_head(Kind::Text).text, len, out, |out| {
                out.extend_from_slice(OPEN);
                write_py_string(out, &result);
                out.push(b'}');
            })
        }
        Answer::Binary => {
            let head = binary_head(request.content);
            let len = BINARY_PREFIX.len() + head.len();
            append_plain_frame(&host_head(Kind::ServerBinary).text, len, out, |out| {
                out.extend_from_slice(BINARY_PREFIX);
                out.extend_from_slice(head);
            })
        }
    }
}

/// What the server answers: a `text/json` result, or the binary response.
enum Answer {
    Text(Cow<'static, str>),
    Binary,
}

fn answer(request: Frame<'_>) -> Answer {
    if !request.is_json() {
        return Answer::Binary;
    }
    let parsed;
    let value = match request.json {
        Some(value) => value,
        None => {
            if let Some(answer) = plain_answer(request.content_encoding, request.content) {
                return answer;
            }
            match decode_json_content(request.content_encoding, request.content) {
                Ok(value) => {
                    parsed = value;
                    &parsed
                }
                Err(FrameError::UnsupportedEncoding { encoding }) => {
                    return Answer::Text(unsupported_encoding_text(&encoding).into());
                }
                Err(_) => return Answer::Text(INVALID_JSON_TEXT.into()),
            }
        }
    };
    let Value::Object(object) = value else {
        return Answer::Text(
            format!(
                "Error: invalid request: expected a JSON object, got {}.",
                json_kind(value)
            )
            .into(),
        );
    };
    let action = object.get("action").unwrap_or(&Value::Null);
    let query = object.get("value").unwrap_or(&Value::Null);
    object_answer(
        action.as_str(),
        query.as_str(),
        || to_python_str(action),
        || to_python_str(query),
    )
}

/// The answer to `utf-8` content that is a plain object (see `plain_json`), read in place;
/// `None` for any other content.
fn plain_answer(encoding: &str, content: &[u8]) -> Option<Answer> {
    if encoding != "utf-8" {
        return None;
    }
    let text = std::str::from_utf8(content).ok()?;
    let (mut action, mut query) = (None, None);
    plain_json::for_each_member(text, |key, value| {
        // A repeated key: the last value counts, as in the full parse.
        match key {
            "action" => action = Some(value),
            "value" => query = Some(value),
            _ => {}
        }
        Some(())
    })?;
    fn as_str(value: Option<PlainValue<'_>>) -> Option<&str> {
        match value {
            Some(PlainValue::Str(s)) => Some(s),
            _ => None,
        }
    }
    // What Python's str() shows for a missing value or an integer (strings show as they are).
    let shown = |value: Option<PlainValue<'_>>| match value {
        Some(PlainValue::Int(n)) => n.to_string(),
        _ => "None".to_owned(),
    };
    Some(object_answer(
        as_str(action),
        as_str(query),
        || shown(action),
        || shown(query),
    ))
}

/// The answer to an object request, given its `action` and `value` where they are strings,
/// and how Python's `str()` shows them where they are not.
fn object_answer(
    action: Option<&str>,
    query: Option<&str>,
    show_action: impl FnOnce() -> String,
    show_query: impl FnOnce() -> String,
) -> Answer {
    if action == Some("search") {
        if let Some(answer) = query.and_then(search) {
            return Answer::Text(answer.into());
        }
        let shown = query.map_or_else(show_query, str::to_owned);
        Answer::Text(format!("No match for '{shown}'.").into())
    } else {
        let shown = action.map_or_else(show_action, str::to_owned);
        Answer::Text(format!("Error: invalid action '{shown}'.").into())
    }
}

const INVALID_JSON_TEXT: &str = "Error: invalid JSON request content.";

fn unsupported_encoding_text(encoding: &str) -> String {
    format!("Error: unsupported content-encoding '{encoding}'.")
}

/// The error result a server sends for a non-fatal [`FrameError`] (a `text/json` request
/// whose content is not JSON or is in an unknown encoding); `None` for a fatal one, after which
/// the connection is closed without an answer.
pub fn error_response(err: &FrameError) -> Option<Message> {
    match err {
        FrameError::UnsupportedEncoding { encoding } => {
            Some(response_text(&unsupported_encoding_text(encoding)))
        }
        FrameError::ContentNotJson { .. } => Some(response_text(INVALID_JSON_TEXT)),
        _ => None,
    }
}
