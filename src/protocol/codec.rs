//! The pure codec of the Message protocol: bytes in, messages out, and back. No I/O.
//!
//! A frame is a big-endian `u16` header length, a UTF-8 JSON header object of that length, and
//! exactly `content-length` bytes of content (see `docs/protocol.md` in the crate).
//!
//! * [`Message`] is one frame, decoded or to be sent; [`Message::encode`] writes it byte for byte
//!   as the Python reference programs (`libclient.py`, `libserver.py`) do.
//! * [`Decoder`] is incremental: feed it bytes in any chunking (or let it hand out its own buffer
//!   to a `read` call with [`Decoder::read_with`]) and pull complete messages out one by one.
//! * [`request`], [`request_search`], [`request_binary`], [`response_text`], [`respond`] and
//!   [`error_response`] build the reference requests and responses.
//! * [`to_python_json`] formats any JSON value the way Python's
//!   `json.dumps(value, ensure_ascii=False)` does; [`to_python_repr`] and [`to_python_str`] the
//!   way Python's `repr()`/`str()` show the decoded value.
//!
//! # Where rawloop differs from the reference on purpose
//!
//! * Content is limited ([`DEFAULT_MAX_CONTENT_LEN`], configurable); a larger `content-length`
//!   is refused as soon as the header is read, before anything is reserved for the content.
//! * The server never spins. For a decoded request [`respond`] always has an answer:
//!   - a `text/json` object is answered as the reference would (`{}` gives
//!     `Error: invalid action 'None'.`, where the reference spins because `{}` is falsy);
//!   - `text/json` content that is valid JSON but not an object (`[]`, `""`, `0`, `null`, ...)
//!     is answered with `Error: invalid request: expected a JSON object, got <kind>.`
//!     (the reference crashes on a truthy one and spins on a falsy one);
//!   - binary content, empty included, gets `First 10 bytes of request: ` followed by up to
//!     10 bytes (the reference spins on empty content).
//! * `text/json` content that is not JSON (empty content included) or not in a supported
//!   encoding is a non-fatal [`FrameError`]: the frame has been consumed, the decoder stays in
//!   step, and [`error_response`] gives the error result to send back. The reference closes.
//! * Header values must have the right type: `content-length` a non-negative integer,
//!   `content-type` and `content-encoding` strings. `byteorder` only has to be present, as in
//!   the reference; a value that is not a string is kept as its JSON text.
//!
//! # JSON parsing differences from Python's `json` module
//!
//! Parsing uses `serde_json`. Python also accepts `NaN`, `Infinity`, `-Infinity`, numbers
//! too large for a float (as infinity), lone surrogate escapes and nesting deeper than 128
//! levels; rawloop rejects them. Integers beyond 64 bits, and `-0`, are read as floats where
//! Python keeps integers (so such a `content-length` is refused, and re-encoding writes a
//! float), and `serde_json`'s default float parsing may be one unit in the last place off
//! (its `float_roundtrip` feature makes it exact).

use std::error::Error;
use std::fmt::{self, Write as _};
use std::io;

use serde_json::{Map, Value};

/// The largest content a [`Decoder`] accepts unless configured otherwise: 4 MiB.
pub const DEFAULT_MAX_CONTENT_LEN: usize = 4 * 1024 * 1024;

/// The largest JSON header a frame can carry (its length is a `u16`).
pub const MAX_HEADER_LEN: usize = u16::MAX as usize;

/// The byte order of this host as Python's `sys.byteorder` names it: `"little"` or `"big"`.
pub const HOST_BYTEORDER: &str = if cfg!(target_endian = "big") {
    "big"
} else {
    "little"
};

/// The content type whose content is JSON text.
pub const TEXT_JSON: &str = "text/json";

/// The content type of the reference client's binary requests.
pub const CLIENT_BINARY_TYPE: &str = "binary/custom-client-binary-type";

/// The content type of the reference server's binary responses.
pub const SERVER_BINARY_TYPE: &str = "binary/custom-server-binary-type";

/// The four header keys every frame carries, in the order the reference checks them.
pub const REQUIRED_HEADERS: [&str; 4] = [
    "byteorder",
    "content-length",
    "content-type",
    "content-encoding",
];

const BINARY_PREFIX: &[u8] = b"First 10 bytes of request: ";

const SEARCH_TABLE: [(&str, &str); 3] = [
    ("morpheus", "Follow the white rabbit. \u{1f430}"),
    (
        "ring",
        "In the caves beneath the Misty Mountains. \u{1f48d}",
    ),
    ("\u{1f436}", "\u{1f43e} Playing ball! \u{1f3d0}"),
];

/// One message of the protocol: the header fields and the content.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The `byteorder` header: `"little"` or `"big"`, informational only.
    pub byteorder: String,
    /// The `content-type` header, e.g. `text/json` or `binary/custom-client-binary-type`.
    pub content_type: String,
    /// The `content-encoding` header, e.g. `utf-8` or `binary`.
    pub content_encoding: String,
    /// Header keys other than the four required ones, in the order received. The protocol
    /// ignores them; [`Message::encode`] writes them after the required keys.
    pub extra: Map<String, Value>,
    /// The content bytes. `content-length` is always their number.
    pub content: Vec<u8>,
    /// The parsed content when `content_type` is `text/json`. [`Decoder`] always fills it for
    /// such a message; the encoder ignores it and writes [`Message::content`].
    pub json: Option<Value>,
}

impl Message {
    /// A message with this host's byte order, no extra headers and no parsed JSON.
    pub fn new(
        content_type: impl Into<String>,
        content_encoding: impl Into<String>,
        content: impl Into<Vec<u8>>,
    ) -> Message {
        Message {
            byteorder: HOST_BYTEORDER.to_owned(),
            content_type: content_type.into(),
            content_encoding: content_encoding.into(),
            extra: Map::new(),
            content: content.into(),
            json: None,
        }
    }

    /// A `text/json`, `utf-8` message whose content is `value` as the reference writes it.
    pub fn text_json(value: Value) -> Message {
        let mut message = Message::new(TEXT_JSON, "utf-8", to_python_json(&value));
        message.json = Some(value);
        message
    }

    /// Whether the content is JSON text (`content-type` is exactly `text/json`).
    pub fn is_json(&self) -> bool {
        self.content_type == TEXT_JSON
    }

    /// The JSON header as the reference writes it: `byteorder`, `content-type`,
    /// `content-encoding`, `content-length`, then the [`extra`](Message::extra) keys other
    /// than those four.
    pub fn header_json(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str("{\"byteorder\": ");
        write_py_string(&mut out, &self.byteorder);
        out.push_str(", \"content-type\": ");
        write_py_string(&mut out, &self.content_type);
        out.push_str(", \"content-encoding\": ");
        write_py_string(&mut out, &self.content_encoding);
        // Writing to a String cannot fail.
        let _ = write!(out, ", \"content-length\": {}", self.content.len());
        for (key, value) in &self.extra {
            if REQUIRED_HEADERS.contains(&key.as_str()) {
                continue;
            }
            out.push_str(", ");
            write_py_string(&mut out, key);
            out.push_str(": ");
            write_py_json(&mut out, value);
        }
        out.push('}');
        out
    }

    /// The whole frame: length prefix, JSON header and content.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the whole frame to `out`; on error `out` is left as it was.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let header = self.header_json();
        let len = u16::try_from(header.len())
            .map_err(|_| EncodeError::HeaderTooLong { len: header.len() })?;
        out.reserve(2 + header.len() + self.content.len());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&self.content);
        Ok(())
    }
}

/// Why a [`Message`] cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The JSON header is longer than the 65,535 bytes its `u16` length can say.
    HeaderTooLong {
        /// The header's length in bytes.
        len: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::HeaderTooLong { len } => write!(
                f,
                "JSON header is {len} bytes, more than the {MAX_HEADER_LEN} a frame can carry"
            ),
        }
    }
}

impl Error for EncodeError {}

impl From<EncodeError> for io::Error {
    fn from(err: EncodeError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, err)
    }
}

/// The part of a frame being read: the `u16` length prefix, the JSON header or the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The 2-byte big-endian header length (the reference's "protoheader").
    LengthPrefix,
    /// The JSON header.
    Header,
    /// The content.
    Content,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::LengthPrefix => "length prefix",
            Stage::Header => "JSON header",
            Stage::Content => "content",
        })
    }
}

/// Malformed input: one variant per class.
///
/// All are fatal for the connection except [`UnsupportedEncoding`](Self::UnsupportedEncoding)
/// and [`ContentNotJson`](Self::ContentNotJson): see [`FrameError::is_fatal`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The stream ended in the middle of a frame.
    Truncated {
        /// The part of the frame that was being read.
        stage: Stage,
        /// The bytes of that part received.
        received: usize,
        /// The bytes that part needs.
        expected: usize,
    },
    /// The length prefix is 0: there is no header.
    HeaderLengthZero,
    /// The header is not UTF-8.
    HeaderNotUtf8 {
        /// The length of the header's longest valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The header is not JSON text.
    HeaderNotJson {
        /// The JSON parser's message.
        detail: String,
    },
    /// The header is JSON, but not an object.
    HeaderNotObject {
        /// What it is: `array`, `string`, `number`, `boolean` or `null`.
        found: &'static str,
    },
    /// A required header key is absent (checked in the order of [`REQUIRED_HEADERS`]).
    MissingHeader {
        /// The first missing key.
        key: &'static str,
    },
    /// `content-length` is not a non-negative integer that fits in 64 bits.
    InvalidContentLength {
        /// The value found, as JSON text.
        found: String,
    },
    /// `content-length` is more than the decoder's limit.
    ContentTooLong {
        /// The announced length.
        length: u64,
        /// The decoder's limit.
        limit: usize,
    },
    /// `content-type` or `content-encoding` is not a string.
    HeaderNotString {
        /// The key.
        key: &'static str,
        /// The value found, as JSON text.
        found: String,
    },
    /// A `text/json` message names a content encoding the decoder cannot decode (it knows
    /// UTF-8, ASCII and Latin-1 under Python's names for them). Not fatal.
    UnsupportedEncoding {
        /// The `content-encoding` header.
        encoding: String,
    },
    /// A `text/json` message whose content does not decode in its encoding or is not JSON
    /// text (empty content included). Not fatal.
    ContentNotJson {
        /// What is wrong.
        detail: String,
    },
}

impl FrameError {
    /// Whether the byte stream is lost: `false` only for errors about the content of a frame
    /// that has been read whole, after which the decoder is ready for the next frame and a
    /// server can answer (see [`error_response`]).
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            FrameError::UnsupportedEncoding { .. } | FrameError::ContentNotJson { .. }
        )
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Truncated {
                stage,
                received,
                expected,
            } => write!(
                f,
                "peer closed mid-frame: {received} of {expected} bytes of the {stage} received"
            ),
            FrameError::HeaderLengthZero => f.write_str("JSON header length is 0"),
            FrameError::HeaderNotUtf8 { valid_up_to } => write!(
                f,
                "JSON header is not UTF-8 (invalid byte after {valid_up_to} bytes)"
            ),
            FrameError::HeaderNotJson { detail } => {
                write!(f, "JSON header is not JSON: {detail}")
            }
            FrameError::HeaderNotObject { found } => {
                write!(f, "JSON header is not an object but {found}")
            }
            FrameError::MissingHeader { key } => {
                write!(f, "Missing required header '{key}'.")
            }
            FrameError::InvalidContentLength { found } => {
                write!(f, "content-length is not a non-negative integer: {found}")
            }
            FrameError::ContentTooLong { length, limit } => write!(
                f,
                "content-length {length} is over the limit of {limit} bytes"
            ),
            FrameError::HeaderNotString { key, found } => {
                write!(f, "header '{key}' is not a string: {found}")
            }
            FrameError::UnsupportedEncoding { encoding } => {
                write!(f, "unsupported content-encoding '{encoding}' for text/json")
            }
            FrameError::ContentNotJson { detail } => {
                write!(f, "text/json content is not JSON: {detail}")
            }
        }
    }
}

impl Error for FrameError {}

impl From<FrameError> for io::Error {
    fn from(err: FrameError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, err)
    }
}

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
    let head = &request_content[..request_content.len().min(10)];
    let mut content = Vec::with_capacity(BINARY_PREFIX.len() + head.len());
    content.extend_from_slice(BINARY_PREFIX);
    content.extend_from_slice(head);
    Message::new(SERVER_BINARY_TYPE, "binary", content)
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
    if !request.is_json() {
        return response_binary(&request.content);
    }
    let parsed;
    let value = match &request.json {
        Some(value) => value,
        None => match decode_json_content(&request.content_encoding, &request.content) {
            Ok(value) => {
                parsed = value;
                &parsed
            }
            Err(FrameError::UnsupportedEncoding { encoding }) => {
                return response_text(&unsupported_encoding_text(&encoding));
            }
            Err(_) => return response_text(INVALID_JSON_TEXT),
        },
    };
    let Value::Object(object) = value else {
        return response_text(&format!(
            "Error: invalid request: expected a JSON object, got {}.",
            json_kind(value)
        ));
    };
    let action = object.get("action").unwrap_or(&Value::Null);
    if action.as_str() == Some("search") {
        let query = object.get("value").unwrap_or(&Value::Null);
        let answer = match query.as_str().and_then(search) {
            Some(answer) => answer.to_owned(),
            None => format!("No match for '{}'.", to_python_str(query)),
        };
        response_text(&answer)
    } else {
        response_text(&format!(
            "Error: invalid action '{}'.",
            to_python_str(action)
        ))
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

const MIN_GROWTH: usize = 4096;
const IDLE_BUFFER_CAPACITY: usize = 64 * 1024;

/// An incremental frame decoder with a bounded memory footprint.
///
/// Feed it bytes as they arrive, split anywhere, with [`feed`](Decoder::feed), or let a read
/// call write into it directly with [`read_with`](Decoder::read_with); then call
/// [`next_message`](Decoder::next_message) until it returns `Ok(None)`. At end of stream call
/// [`finish`](Decoder::finish), which reports a frame cut short.
///
/// Memory: a `content-length` over the limit is refused before anything is reserved for the
/// content, and the content buffer grows with the bytes that arrive, never past the announced
/// length. Content bytes are copied at most twice (from the caller's slice into the buffer,
/// then into the content), once when they arrive while the decoder is waiting for content, and
/// never with `read_with` then, which reads into the content itself. Consumed input is dropped
/// without shifting the buffer on every frame.
/// A caller that drains all messages after each read holds at most one partial frame: the
/// length prefix and header (at most 65,537 bytes), the content so far, and the unread part of
/// the last read.
///
/// After a fatal error (see [`FrameError::is_fatal`]) the decoder returns that error again
/// from every call and ignores further input.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_content_len: usize,
    buf: Vec<u8>,
    start: usize,
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    LengthPrefix,
    Header { len: usize },
    Content(Box<Partial>),
    Failed(FrameError),
}

#[derive(Debug, Clone)]
struct Partial {
    message: Message,
    expected: usize,
}

impl Partial {
    fn remaining(&self) -> usize {
        self.expected - self.message.content.len()
    }

    /// Makes room for `additional` more bytes without letting the capacity pass `expected`.
    fn reserve(&mut self, additional: usize) {
        let content = &mut self.message.content;
        let needed = content.len() + additional;
        if needed <= content.capacity() {
            return;
        }
        let target = needed
            .max(content.capacity().saturating_mul(2))
            .max(MIN_GROWTH)
            .min(self.expected);
        content.reserve_exact(target - content.len());
    }

    fn extend(&mut self, data: &[u8]) -> usize {
        let take = data.len().min(self.remaining());
        self.reserve(take);
        self.message.content.extend_from_slice(&data[..take]);
        take
    }
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder with the default content limit, [`DEFAULT_MAX_CONTENT_LEN`].
    pub fn new() -> Decoder {
        Decoder::with_max_content_len(DEFAULT_MAX_CONTENT_LEN)
    }

    /// A decoder that refuses frames whose `content-length` is over `max_content_len` bytes.
    pub fn with_max_content_len(max_content_len: usize) -> Decoder {
        Decoder {
            max_content_len,
            buf: Vec::new(),
            start: 0,
            state: State::LengthPrefix,
        }
    }

    /// The content limit in bytes.
    pub fn max_content_len(&self) -> usize {
        self.max_content_len
    }

    /// Adds received bytes. Nothing is parsed until [`next_message`](Decoder::next_message).
    pub fn feed(&mut self, mut data: &[u8]) {
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        if self.start == self.buf.len() {
            if let State::Content(partial) = &mut self.state {
                let taken = partial.extend(data);
                data = &data[taken..];
            }
        }
        if !data.is_empty() {
            self.compact();
            self.buf.extend_from_slice(data);
        }
    }

    /// Lets `read` write up to `max` bytes (at least 1) straight into the decoder, as
    /// `decoder.read_with(65536, |buf| socket.read(buf))`, and keeps the `n` bytes it reports
    /// (clamped to the space given). `max` bytes are reserved and zeroed for the call, so it is
    /// a read size, not a limit. While content is being received and nothing else is
    /// pending, `read` writes into the content itself and is never given more than the rest of
    /// the content. An error from `read` is returned as is, with nothing kept.
    pub fn read_with<E>(
        &mut self,
        max: usize,
        read: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let max = max.max(1);
        let failed = matches!(self.state, State::Failed(_));
        if !failed && self.start == self.buf.len() {
            if let State::Content(partial) = &mut self.state {
                let room = partial.remaining().min(max);
                if room > 0 {
                    partial.reserve(room);
                    let content = &mut partial.message.content;
                    let old = content.len();
                    content.resize(old + room, 0);
                    let result = read(&mut content[old..]);
                    let kept = result.as_ref().map_or(0, |&n| n.min(room));
                    content.truncate(old + kept);
                    return result.map(|_| kept);
                }
            }
        }
        self.compact();
        let old = self.buf.len();
        self.buf.resize(old + max, 0);
        let result = read(&mut self.buf[old..]);
        let kept = match &result {
            Ok(n) if !failed => (*n).min(max),
            _ => 0,
        };
        self.buf.truncate(old + kept);
        result.map(|n| n.min(max))
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or the error of a
    /// malformed frame. Call it until it returns `Ok(None)` after each read.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        loop {
            let pending = &self.buf[self.start..];
            match &mut self.state {
                State::Failed(err) => return Err(err.clone()),
                State::LengthPrefix => {
                    let [hi, lo, ..] = *pending else {
                        return Ok(None);
                    };
                    self.start += 2;
                    let len = usize::from(u16::from_be_bytes([hi, lo]));
                    if len == 0 {
                        return Err(self.fail(FrameError::HeaderLengthZero));
                    }
                    self.state = State::Header { len };
                }
                State::Header { len } => {
                    let len = *len;
                    let Some(header) = pending.get(..len) else {
                        return Ok(None);
                    };
                    match parse_header(header, self.max_content_len) {
                        Ok(partial) => {
                            self.start += len;
                            self.state = State::Content(partial);
                        }
                        Err(err) => return Err(self.fail(err)),
                    }
                }
                State::Content(partial) => {
                    self.start += partial.extend(pending);
                    if partial.remaining() > 0 {
                        return Ok(None);
                    }
                    let message = std::mem::replace(
                        &mut partial.message,
                        Message::new(String::new(), String::new(), Vec::new()),
                    );
                    self.state = State::LengthPrefix;
                    self.compact_if_idle();
                    return finish_content(message).map(Some);
                }
            }
        }
    }

    /// Call at end of stream, like [`next_message`](Decoder::next_message), until it returns
    /// `Ok(None)`: it returns the messages still buffered, then `Ok(None)` if the stream ended
    /// between frames or [`FrameError::Truncated`] if it ended inside one.
    pub fn finish(&mut self) -> Result<Option<Message>, FrameError> {
        if let Some(message) = self.next_message()? {
            return Ok(Some(message));
        }
        let pending = self.buf.len() - self.start;
        let truncated = match &self.state {
            State::LengthPrefix if pending == 0 => return Ok(None),
            State::LengthPrefix => FrameError::Truncated {
                stage: Stage::LengthPrefix,
                received: pending,
                expected: 2,
            },
            State::Header { len } => FrameError::Truncated {
                stage: Stage::Header,
                received: pending,
                expected: *len,
            },
            State::Content(partial) => FrameError::Truncated {
                stage: Stage::Content,
                received: partial.message.content.len(),
                expected: partial.expected,
            },
            State::Failed(err) => return Err(err.clone()),
        };
        Err(self.fail(truncated))
    }

    /// Whether the decoder holds no byte of an unfinished frame (the stream may end here).
    /// Complete frames not yet pulled with `next_message` count as unfinished.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::LengthPrefix) && self.start == self.buf.len()
    }

    /// The part of the frame the decoder is waiting for, or `None` after a fatal error.
    pub fn stage(&self) -> Option<Stage> {
        match self.state {
            State::LengthPrefix => Some(Stage::LengthPrefix),
            State::Header { .. } => Some(Stage::Header),
            State::Content(_) => Some(Stage::Content),
            State::Failed(_) => None,
        }
    }

    /// The bytes received and not yet returned in a message.
    pub fn buffered(&self) -> usize {
        let content = match &self.state {
            State::Content(partial) => partial.message.content.len(),
            _ => 0,
        };
        self.buf.len() - self.start + content
    }

    /// The bytes of memory the decoder's buffers hold (their capacities).
    pub fn memory_usage(&self) -> usize {
        let content = match &self.state {
            State::Content(partial) => partial.message.content.capacity(),
            _ => 0,
        };
        self.buf.capacity() + content
    }

    fn fail(&mut self, err: FrameError) -> FrameError {
        self.state = State::Failed(err.clone());
        self.buf = Vec::new();
        self.start = 0;
        err
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    fn compact_if_idle(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() > IDLE_BUFFER_CAPACITY {
                self.buf.shrink_to(IDLE_BUFFER_CAPACITY);
            }
        }
    }
}

fn parse_header(bytes: &[u8], max_content_len: usize) -> Result<Box<Partial>, FrameError> {
    let text = std::str::from_utf8(bytes).map_err(|err| FrameError::HeaderNotUtf8 {
        valid_up_to: err.valid_up_to(),
    })?;
    let value: Value = serde_json::from_str(text).map_err(|err| FrameError::HeaderNotJson {
        detail: err.to_string(),
    })?;
    let mut header = match value {
        Value::Object(header) => header,
        other => {
            return Err(FrameError::HeaderNotObject {
                found: json_kind(&other),
            })
        }
    };
    if let Some(key) = REQUIRED_HEADERS
        .into_iter()
        .find(|key| !header.contains_key(*key))
    {
        return Err(FrameError::MissingHeader { key });
    }
    let mut take = |key: &str| header.shift_remove(key).unwrap_or(Value::Null);
    let byteorder = take("byteorder");
    let length = take("content-length");
    let content_type = take("content-type");
    let content_encoding = take("content-encoding");

    let expected = length
        .as_u64()
        .ok_or_else(|| FrameError::InvalidContentLength {
            found: to_python_json(&length),
        })?;
    let expected = usize::try_from(expected)
        .ok()
        .filter(|&n| n <= max_content_len)
        .ok_or(FrameError::ContentTooLong {
            length: expected,
            limit: max_content_len,
        })?;
    let string = |key: &'static str, value: Value| match value {
        Value::String(s) => Ok(s),
        other => Err(FrameError::HeaderNotString {
            key,
            found: to_python_json(&other),
        }),
    };
    let content_type = string("content-type", content_type)?;
    let content_encoding = string("content-encoding", content_encoding)?;
    let byteorder = match byteorder {
        Value::String(s) => s,
        other => to_python_json(&other),
    };
    Ok(Box::new(Partial {
        message: Message {
            byteorder,
            content_type,
            content_encoding,
            extra: header,
            content: Vec::new(),
            json: None,
        },
        expected,
    }))
}

fn finish_content(mut message: Message) -> Result<Message, FrameError> {
    if message.is_json() {
        message.json = Some(decode_json_content(
            &message.content_encoding,
            &message.content,
        )?);
    }
    Ok(message)
}

#[derive(Clone, Copy)]
enum TextEncoding {
    Utf8,
    Ascii,
    Latin1,
}

/// Looks an encoding name up as Python's codec registry does for these three codecs: case and
/// the separators `-`, `_`, ` ` and `.` do not matter, and the common aliases are known.
fn text_encoding(name: &str) -> Option<TextEncoding> {
    let normalized: String = name
        .trim()
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ' ' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    match normalized.as_str() {
        "utf8" | "u8" | "utf" | "cp65001" | "utf8ucs2" | "utf8ucs4" => Some(TextEncoding::Utf8),
        "ascii" | "usascii" | "646" | "us" | "ansix341968" | "ansix341986" | "cp367"
        | "csascii" | "ibm367" | "iso646us" | "iso646irv1991" | "isoir6" => {
            Some(TextEncoding::Ascii)
        }
        "latin1" | "latin" | "l1" | "iso88591" | "iso8859" | "iso885911987" | "8859" | "cp819"
        | "isoir100" | "csisolatin1" | "ibm819" => Some(TextEncoding::Latin1),
        _ => None,
    }
}

fn decode_json_content(encoding: &str, content: &[u8]) -> Result<Value, FrameError> {
    let not_json = |detail: String| FrameError::ContentNotJson { detail };
    let decoded;
    let text = match text_encoding(encoding) {
        None => {
            return Err(FrameError::UnsupportedEncoding {
                encoding: encoding.to_owned(),
            })
        }
        Some(TextEncoding::Utf8) => std::str::from_utf8(content).map_err(|err| {
            not_json(format!(
                "not UTF-8 (invalid byte after {} bytes)",
                err.valid_up_to()
            ))
        })?,
        Some(TextEncoding::Ascii) => {
            if let Some(pos) = content.iter().position(|b| !b.is_ascii()) {
                return Err(not_json(format!("not ASCII (byte {pos} is over 0x7f)")));
            }
            std::str::from_utf8(content).map_err(|err| not_json(err.to_string()))?
        }
        Some(TextEncoding::Latin1) => {
            decoded = content.iter().copied().map(char::from).collect::<String>();
            &decoded
        }
    };
    serde_json::from_str(text).map_err(|err| not_json(err.to_string()))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `value` as Python's `json.dumps(value, ensure_ascii=False)` writes it: separators `", "`
/// and `": "`, no newlines, non-ASCII characters raw, strings escaped exactly as Python does
/// (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other control characters below U+0020 as
/// `\u00xx` with lowercase hex).
///
/// Integers are written in full. Floats follow Python's `repr`: the shortest digits that read
/// back to the same float, with `.0` added to whole numbers and exponent form (`1e+16`,
/// `1e-05`) below 1e-4 and from 1e16 on, so `1.0` stays `1.0` and `1e100` is `1e+100`. The one
/// known difference: an integer beyond 64 bits, which `serde_json` parses as a float, is
/// written as a float where Python writes the integer.
pub fn to_python_json(value: &Value) -> String {
    let mut out = String::new();
    write_py_json(&mut out, value);
    out
}

fn write_py_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_py_number(out, n),
        Value::String(s) => write_py_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_json(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_string(out, key);
                out.push_str(": ");
                write_py_json(out, item);
            }
            out.push('}');
        }
    }
}

fn write_py_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_py_number(out: &mut String, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        write_py_float(out, f);
    } else {
        let _ = write!(out, "{n}");
    }
}

/// Python's `float.__repr__`. Rust's `{:e}` gives the shortest digits that read back to `f`,
/// but breaks a tie between two such digit strings upwards where Python takes the one nearer
/// the exact value, to even on a tie; the correctly rounded string of the same length is that
/// one.
fn write_py_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    let shortest = format!("{f:e}");
    let significant = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.bytes().filter(u8::is_ascii_digit).count());
    let nearest = format!("{f:.*e}", significant.saturating_sub(1));
    let sci = if nearest.parse::<f64>() == Ok(f) {
        nearest
    } else {
        shortest
    };
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let decimal_point = exponent + 1;
    if negative {
        out.push('-');
    }
    if decimal_point <= -4 || decimal_point > 16 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exponent.unsigned_abs());
    } else if decimal_point <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat(decimal_point.unsigned_abs() as usize));
        out.push_str(&digits);
    } else {
        let point = decimal_point.unsigned_abs() as usize;
        if point >= digits.len() {
            out.push_str(&digits);
            out.push_str(&"0".repeat(point - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
}

/// `value` as Python's `repr()` shows the object `json.loads` makes of it: `None`, `True`,
/// `False`, numbers as [`to_python_json`] writes them, strings quoted and escaped as Python
/// does, lists `[a, b]` and dicts `{'k': v}`. Which characters count as printable (and so are
/// shown raw) is approximated: controls, C1 controls, separators other than the space, the
/// common format characters, surrogates and private use are escaped; unassigned code points
/// are shown raw where Python would escape them.
pub fn to_python_repr(value: &Value) -> String {
    let mut out = String::new();
    write_py_repr(&mut out, value);
    out
}

/// `value` as Python's `str()` shows the object `json.loads` makes of it: strings as they
/// are, everything else as [`to_python_repr`]. This is how the reference's f-strings show
/// values, as in `No match for '<value>'.`.
pub fn to_python_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => to_python_repr(other),
    }
}

fn write_py_repr(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => write_py_number(out, n),
        Value::String(s) => write_py_str_repr(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_repr(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_str_repr(out, key);
                out.push_str(": ");
                write_py_repr(out, item);
            }
            out.push('}');
        }
    }
}

fn write_py_str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_py_printable(c) => out.push(c),
            c => {
                let code = u32::from(c);
                let _ = if code <= 0xff {
                    write!(out, "\\x{code:02x}")
                } else if code <= 0xffff {
                    write!(out, "\\u{code:04x}")
                } else {
                    write!(out, "\\U{code:08x}")
                };
            }
        }
    }
    out.push(quote);
}

fn is_py_printable(c: char) -> bool {
    !matches!(
        u32::from(c),
        0x00..=0x1f
            | 0x7f..=0xa0
            | 0xad
            | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x890..=0x891
            | 0x8e2
            | 0x1680
            | 0x180e
            | 0x2000..=0x200f
            | 0x2028..=0x202f
            | 0x205f..=0x2064
            | 0x2066..=0x206f
            | 0x3000
            | 0xd800..=0xf8ff
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0xfffe..=0xffff
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
            | 0xf0000..
    )
}
