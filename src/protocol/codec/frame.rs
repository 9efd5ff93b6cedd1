//! [`Frame`], a decoded message read in place: what [`Decoder::next_frame`] gives a server
//! that answers each request and lets it go, without a [`Message`] of its own.
//!
//! [`Decoder::next_frame`]: super::Decoder::next_frame

use serde_json::{Map, Value};

use super::content::decode_json_content;
use super::{FrameError, Message, TEXT_JSON};

/// One message of the protocol, borrowed: from the decoder's buffer when the whole frame
/// arrived and its header is plain, from a [`Message`] otherwise. The fields mean what
/// [`Message`]'s do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame<'a> {
    /// The `byteorder` header.
    pub byteorder: &'a str,
    /// The `content-type` header.
    pub content_type: &'a str,
    /// The `content-encoding` header.
    pub content_encoding: &'a str,
    /// Header keys other than the four required ones (`None`: there are none).
    pub extra: Option<&'a Map<String, Value>>,
    /// The content bytes.
    pub content: &'a [u8],
    /// The parsed content, where the decoder parsed it (see
    /// [`Decoder::parse_json`](super::Decoder::parse_json)).
    pub json: Option<&'a Value>,
}

impl Frame<'_> {
    /// Whether the content is JSON text (`content-type` is exactly `text/json`).
    pub fn is_json(&self) -> bool {
        self.content_type == TEXT_JSON
    }

    /// The content parsed as JSON in its `content-encoding` (see [`Message::parse_json`]).
    pub fn parse_json(&self) -> Result<Value, FrameError> {
        decode_json_content(self.content_encoding, self.content)
    }

    /// The message this frame holds, owned.
    pub fn to_message(&self) -> Message {
        Message {
            byteorder: self.byteorder.to_owned(),
            content_type: self.content_type.to_owned(),
            content_encoding: self.content_encoding.to_owned(),
            extra: self.extra.cloned().unwrap_or_default(),
            content: self.content.to_vec(),
            json: self.json.cloned(),
        }
    }
}

impl<'a> From<&'a Message> for Frame<'a> {
    fn from(message: &'a Message) -> Frame<'a> {
        Frame {
            byteorder: &message.byteorder,
            content_type: &message.content_type,
            content_encoding: &message.content_encoding,
            extra: (!message.extra.is_empty()).then_some(&message.extra),
            content: &message.content,
            json: message.json.as_ref(),
        }
    }
}
