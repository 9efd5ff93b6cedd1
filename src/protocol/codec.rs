//! The pure codec of the Message protocol: bytes in, messages out, and back. No I/O.
//!
//! A frame is a big-endian `u16` header length, a UTF-8 JSON header object of that length, and
//! exactly `content-length` bytes of content (see `docs/protocol.md` in the crate).
//!
//! * [`Message`] is one frame, decoded or to be sent; [`Message::encode`] writes it byte for byte
//!   as the Python reference programs (`libclient.py`, `libserver.py`) do.
//! * [`Decoder`] is incremental: feed it bytes in any chunking (or let it hand out its own buffer
//!   to a `read` call with [`Decoder::read_with`]) and pull complete messages out one by one,
//!   owned ([`Decoder::next_message`]) or lent as a [`Frame`] ([`Decoder::next_frame`]), which
//!   reads a whole frame in place in the decoder's buffer.
//! * [`request`], [`request_search`], [`request_binary`], [`response_text`], [`respond`] and
//!   [`error_response`] build the reference requests and responses; [`encode_response`]
//!   writes the frame of [`respond`]'s answer straight into a buffer, as a server sends it.
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
//! Parsing uses `serde_json`; the flat objects of escape-free strings and plain integers that
//! every client writes (a header, a search request) are read in place without it, with the
//! same result. Python also accepts `NaN`, `Infinity`, `-Infinity`, numbers
//! too large for a float (as infinity), lone surrogate escapes and nesting deeper than 128
//! levels; rawloop rejects them. Integers beyond 64 bits, and `-0`, are read as floats where
//! Python keeps integers (so such a `content-length` is refused, and re-encoding writes a
//! float), and `serde_json`'s default float parsing may be one unit in the last place off
//! (its `float_roundtrip` feature makes it exact).

mod answers;
mod content;
mod decoder;
mod frame;
mod frame_error;
mod json_string;
mod known_headers;
mod message;
mod plain_json;
mod python_json;

pub use answers::{
    encode_response, error_response, request, request_binary, request_search, respond,
    response_binary, response_text, search, CLIENT_BINARY_TYPE, SERVER_BINARY_TYPE,
};
pub use decoder::{Decoder, DEFAULT_MAX_CONTENT_LEN};
pub use frame::Frame;
pub use frame_error::{FrameError, Stage};
pub use message::{
    EncodeError, Message, HOST_BYTEORDER, MAX_HEADER_LEN, REQUIRED_HEADERS, TEXT_JSON,
};
pub use python_json::{to_python_json, to_python_repr, to_python_str};
