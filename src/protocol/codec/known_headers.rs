//! The headers the protocol's programs write, known in advance.
//!
//! Every client and server of the protocol (the reference programs and rawloop's own) writes
//! a header as `json.dumps` writes the reference's dict: the four required keys in one order,
//! then the content length. For the three kinds of message — JSON text, the client's binary
//! request, the server's binary response — in either byte order, that header is the same text
//! up to the digits of the length: its *head*. The heads are written out once. A sender copies
//! one and appends the length; the decoder recognises one with a comparison and reads only
//! the digits, where it would otherwise parse the header (a peer that writes its header another
//! way is parsed as before).

use std::sync::OnceLock;

use super::answers::{CLIENT_BINARY_TYPE, SERVER_BINARY_TYPE};
use super::message::{write_header_head, HOST_BYTEORDER, TEXT_JSON};
use super::plain_json::json_uint;

/// A header up to the digits of its content length, and the three strings it holds.
#[derive(Debug)]
pub(super) struct KnownHead {
    /// `{"byteorder": "little", ..., "content-length": ` (the digits and `}` follow).
    pub(super) text: String,
    pub(super) byteorder: &'static str,
    pub(super) content_type: &'static str,
    pub(super) content_encoding: &'static str,
}

/// The kinds of message a server sends.
#[derive(Copy, Clone, Debug)]
pub(super) enum Kind {
    /// `text/json` in `utf-8`.
    Text,
    /// The server's binary response.
    ServerBinary,
}

/// The content type and encoding of each kind of message: JSON text, the client's binary
/// request, the server's binary response.
const KINDS: [(&str, &str); 3] = [
    (TEXT_JSON, "utf-8"),
    (CLIENT_BINARY_TYPE, "binary"),
    (SERVER_BINARY_TYPE, "binary"),
];

/// Every known head: each kind of message in each byte order, this host's first.
fn known_heads() -> &'static [KnownHead] {
    static HEADS: OnceLock<Vec<KnownHead>> = OnceLock::new();
    HEADS.get_or_init(|| {
        let other = if HOST_BYTEORDER == "little" {
            "big"
        } else {
            "little"
        };
        let mut heads = Vec::new();
        for byteorder in [HOST_BYTEORDER, other] {
            for (content_type, content_encoding) in KINDS {
                let mut text = String::new();
                write_header_head(&mut text, byteorder, content_type, content_encoding);
                heads.push(KnownHead {
                    text,
                    byteorder,
                    content_type,
                    content_encoding,
                });
            }
        }
        heads
    })
}

/// The head of a message of `kind` in this host's byte order (what `Message::new` writes).
pub(super) fn host_head(kind: Kind) -> &'static KnownHead {
    let at = match kind {
        Kind::Text => 0,
        Kind::ServerBinary => 2,
    };
    &known_heads()[at]
}

/// The known head that `header` is, followed by a content length written as JSON writes an
/// integer (no sign, no leading zero, at most `u64::MAX`) and the closing brace, with the
/// length; `None` for any other header.
pub(super) fn match_known(header: &[u8]) -> Option<(&'static KnownHead, u64)> {
    let head = known_heads()
        .iter()
        .find(|head| header.starts_with(head.text.as_bytes()))?;
    let [digits @ .., b'}'] = &header[head.text.len()..] else {
        return None;
    };
    Some((head, json_uint(digits)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec::Message;

    /// The header `Message::encode` writes for `message`.
    fn header_of(message: &Message) -> Vec<u8> {
        let frame = message.encode().unwrap();
        let len = usize::from(u16::from_be_bytes([frame[0], frame[1]]));
        frame[2..2 + len].to_vec()
    }

    #[test]
    fn every_kind_in_either_byte_order_is_known_with_its_length() {
        for (content_type, content_encoding) in KINDS {
            for byteorder in ["little", "big"] {
                for len in [0, 1, 9, 10, 37, 1000, 65_536] {
                    let mut message = Message::new(content_type, content_encoding, vec![b'x'; len]);
                    message.byteorder = byteorder.to_owned();
                    let header = header_of(&message);
                    let (head, length) = match_known(&header).expect(content_type);
                    assert_eq!(length, len as u64);
                    assert_eq!(
                        (head.byteorder, head.content_type, head.content_encoding),
                        (byteorder, content_type, content_encoding)
                    );
                }
            }
        }
        for (kind, content_type, content_encoding) in [
            (Kind::Text, TEXT_JSON, "utf-8"),
            (Kind::ServerBinary, SERVER_BINARY_TYPE, "binary"),
        ] {
            let message = Message::new(content_type, content_encoding, "abc");
            let head = host_head(kind);
            assert_eq!(
                header_of(&message),
                format!("{}3}}", head.text).into_bytes()
            );
            assert_eq!(head.byteorder, HOST_BYTEORDER);
        }
    }

    #[test]
    fn other_headers_and_lengths_json_would_not_write_are_not_known() {
        let head = &host_head(Kind::Text).text;
        for tail in [
            "",
            "}",
            "01}",
            "00}",
            "-1}",
            "1",
            "1 }",
            " 1}",
            "1}}",
            "1.0}",
            "1e3}",
            "x}",
            // one past u64::MAX
            "18446744073709551616}",
        ] {
            let header = format!("{head}{tail}");
            assert!(match_known(header.as_bytes()).is_none(), "{header}");
        }
        let max = format!("{head}18446744073709551615}}");
        assert_eq!(match_known(max.as_bytes()).unwrap().1, u64::MAX);
        // The same keys and values written another way are not known (they are parsed).
        let compact = br#"{"byteorder":"little","content-type":"text/json","content-encoding":"utf-8","content-length":1}"#;
        assert!(match_known(compact).is_none());
    }
}
