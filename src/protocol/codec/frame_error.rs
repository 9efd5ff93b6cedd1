//! What can be wrong with received bytes: [`FrameError`], one variant per class of
//! malformed input, and the [`Stage`] of a frame it was found in.

use std::error::Error;
use std::fmt;
use std::io;

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
    /// A required header key is absent (checked in the order of
    /// [`REQUIRED_HEADERS`](super::REQUIRED_HEADERS)).
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
    /// server can answer (see [`error_response`](super::error_response)).
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
