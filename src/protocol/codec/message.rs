//! [`Message`], one frame of the protocol, and how it is encoded byte for byte as the
//! reference programs write it.

use std::error::Error;
use std::fmt;
use std::io;

use serde_json::{Map, Value};

use super::content::decode_json_content;
use super::python_json::{to_python_json, write_decimal, write_py_json, write_py_string, TextOut};
use super::FrameError;

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

/// The four header keys every frame carries, in the order the reference checks them.
pub const REQUIRED_HEADERS: [&str; 4] = [
    "byteorder",
    "content-length",
    "content-type",
    "content-encoding",
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
    /// The parsed content when `content_type` is `text/json`. [`Decoder`](super::Decoder)
    /// always fills it for such a message; the encoder ignores it and writes
    /// [`Message::content`].
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

    /// A message with every field empty, which allocates nothing: a placeholder.
    pub(super) fn empty() -> Message {
        Message {
            byteorder: String::new(),
            content_type: String::new(),
            content_encoding: String::new(),
            extra: Map::new(),
            content: Vec::new(),
            json: None,
        }
    }

    /// A `text/json`, `utf-8` message whose content is `value` as the reference writes it.
    pub fn text_json(value: Value) -> Message {
        let mut message = Message::new(TEXT_JSON, "utf-8", to_python_json(&value));
        message.json = Some(value);
        message
    }

    /// The content parsed as JSON in its `content-encoding`: what a [`Decoder`](super::Decoder)
    /// puts in [`json`](Message::json) for a `text/json` message (whatever the content type).
    pub fn parse_json(&self) -> Result<Value, FrameError> {
        decode_json_content(&self.content_encoding, &self.content)
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
        write_header_head(
            &mut out,
            &self.byteorder,
            &self.content_type,
            &self.content_encoding,
        );
        write_decimal(&mut out, self.content.len());
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

/// The header up to the digits of its content length.
pub(super) fn write_header_head<O: TextOut>(
    out: &mut O,
    byteorder: &str,
    content_type: &str,
    content_encoding: &str,
) {
    out.put("{\"byteorder\": ");
    write_py_string(out, byteorder);
    out.put(", \"content-type\": ");
    write_py_string(out, content_type);
    out.put(", \"content-encoding\": ");
    write_py_string(out, content_encoding);
    out.put(", \"content-length\": ");
}

/// Appends the frame of `Message::new(content_type, content_encoding, content)`, whose
/// [head](super::known_headers) is `head`, to `out`, without building the message or any buffer of
/// its own: `write_content` appends the `content_len` bytes of content. On error `out` is
/// left as it was.
pub(super) fn append_plain_frame(
    head: &str,
    content_len: usize,
    out: &mut Vec<u8>,
    write_content: impl FnOnce(&mut Vec<u8>),
) -> Result<(), EncodeError> {
    // With at most 20 digits and the closing brace, one reservation holds the whole frame.
    out.reserve(2 + head.len() + 21 + content_len);
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(head.as_bytes());
    write_decimal(out, content_len);
    out.push(b'}');
    let header_len = out.len() - start - 2;
    let Ok(len) = u16::try_from(header_len) else {
        out.truncate(start);
        return Err(EncodeError::HeaderTooLong { len: header_len });
    };
    out[start..start + 2].copy_from_slice(&len.to_be_bytes());
    let content_start = out.len();
    write_content(out);
    debug_assert_eq!(out.len() - content_start, content_len, "content length");
    Ok(())
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
