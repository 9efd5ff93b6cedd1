//! [`Decoder`], the incremental frame decoder: bytes in, in any chunking, complete
//! [`Message`]s out.

use std::ops::Range;

use serde_json::Value;

use super::content::json_kind;
use super::known_headers::{match_known, KnownHead};
use super::plain_json::{self, PlainValue};
use super::python_json::to_python_json;
use super::{Frame, FrameError, Message, Stage, REQUIRED_HEADERS};

/// The largest content a [`Decoder`] accepts unless configured otherwise: 4 MiB.
pub const DEFAULT_MAX_CONTENT_LEN: usize = 4 * 1024 * 1024;

const MIN_GROWTH: usize = 4096;
const IDLE_BUFFER_CAPACITY: usize = 64 * 1024;

/// An incremental frame decoder with a bounded memory footprint.
///
/// Feed it bytes as they arrive, split anywhere, with [`feed`](Decoder::feed), or let a read
/// call write into it directly with [`read_with`](Decoder::read_with); then call
/// [`next_message`](Decoder::next_message) until it returns `Ok(None)` — or
/// [`next_frame`](Decoder::next_frame), which lends each message instead and reads a frame
/// that arrived whole in place. At end of stream call [`finish`](Decoder::finish), which
/// reports a frame cut short.
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
    parse_json: bool,
    buf: Vec<u8>,
    start: usize,
    state: State,
    /// The message the last [`next_frame`](Decoder::next_frame) lent out, where it was not
    /// read in place (boxed: a decoder is moved with its connection, and this is rare).
    held: Option<Box<Message>>,
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
            parse_json: true,
            buf: Vec::new(),
            start: 0,
            state: State::LengthPrefix,
            held: None,
        }
    }

    /// Whether `text/json` content is parsed into [`Message::json`] (on by default). Off, the
    /// decoder returns such messages with `json` left `None` and never reports
    /// [`FrameError::ContentNotJson`] or [`FrameError::UnsupportedEncoding`]: for a server that
    /// answers with [`encode_response`](super::encode_response), which reads what it needs
    /// of the content in place. [`Message::parse_json`] parses it later.
    pub fn parse_json(mut self, on: bool) -> Decoder {
        self.parse_json = on;
        self
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
                    let message = std::mem::replace(&mut partial.message, Message::empty());
                    self.state = State::LengthPrefix;
                    self.compact_if_idle();
                    if !self.parse_json {
                        return Ok(Some(message));
                    }
                    return finish_content(message).map(Some);
                }
            }
        }
    }

    /// The next complete message as a [`Frame`] lent until the next call, `Ok(None)` if more
    /// bytes are needed, or the error of a malformed frame: what
    /// [`next_message`](Decoder::next_message) gives, for a caller that answers each request
    /// and lets it go.
    ///
    /// A frame that arrived whole, with a header as every client writes it (the four keys,
    /// strings without escapes), is read in place in the decoder's buffer: nothing is
    /// allocated or copied. Any other frame — split over reads, an unusual header, or with
    /// [`parse_json`](Decoder::parse_json) on — is decoded into a [`Message`] that the
    /// decoder keeps until the next call. At end of stream, call this until it returns
    /// `Ok(None)`, then [`finish`](Decoder::finish) for a frame cut short.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        self.held = None;
        if let Some(at) = self.take_plain_frame() {
            return self.frame_in_buffer(at).map(Some);
        }
        self.held = self.next_message()?.map(Box::new);
        Ok(self.held.as_deref().map(Frame::from))
    }

    /// Consumes the frame at the front of the buffer if it is whole and its header plain, and
    /// says where its parts lie. A header the protocol's programs write (see
    /// `known_headers`) is recognised by comparison; another plain one is parsed.
    fn take_plain_frame(&mut self) -> Option<FrameInBuffer> {
        self.compact_if_idle();
        if self.parse_json || !matches!(self.state, State::LengthPrefix) {
            return None;
        }
        let pending = &self.buf[self.start..];
        let [hi, lo, rest @ ..] = pending else {
            return None;
        };
        let header_len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let header = rest.get(..header_len)?;
        let header_start = self.start + 2;
        let (strings, content_len) = match known_header(header, self.max_content_len) {
            Some((head, content_len)) => (HeaderStrings::Known(head), content_len),
            None => {
                let text = std::str::from_utf8(header).ok()?;
                let plain = plain_header(text, self.max_content_len)?;
                let at = |part: &str| {
                    let at = header_start + (part.as_ptr() as usize - text.as_ptr() as usize);
                    at..at + part.len()
                };
                let strings = HeaderStrings::InBuffer {
                    byteorder: at(plain.byteorder),
                    content_type: at(plain.content_type),
                    content_encoding: at(plain.content_encoding),
                };
                (strings, plain.content_len)
            }
        };
        let content_start = header_start + header_len;
        let content = content_start..content_start + content_len;
        if content.end > self.buf.len() {
            return None;
        }
        self.start = content.end;
        Some(FrameInBuffer { strings, content })
    }

    fn frame_in_buffer(&self, at: FrameInBuffer) -> Result<Frame<'_>, FrameError> {
        let (byteorder, content_type, content_encoding) = match at.strings {
            HeaderStrings::Known(head) => {
                (head.byteorder, head.content_type, head.content_encoding)
            }
            HeaderStrings::InBuffer {
                byteorder,
                content_type,
                content_encoding,
            } => {
                // The header was checked whole and these are parts of it, so this cannot
                // fail; it is checked again only because the strings found then could not
                // outlive that `&mut self` call (20 bytes or so, no `unsafe`).
                let text = |range: Range<usize>| {
                    std::str::from_utf8(&self.buf[range]).map_err(|err| FrameError::HeaderNotUtf8 {
                        valid_up_to: err.valid_up_to(),
                    })
                };
                (
                    text(byteorder)?,
                    text(content_type)?,
                    text(content_encoding)?,
                )
            }
        };
        Ok(Frame {
            byteorder,
            content_type,
            content_encoding,
            extra: None,
            content: &self.buf[at.content],
            json: None,
        })
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
        let held = self.held.as_ref().map_or(0, |m| m.content.capacity());
        self.buf.capacity() + content + held
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
    if let Some((head, content_len)) = known_header(bytes, max_content_len) {
        return Ok(PlainHeader::known(head, content_len).waiting_for_content());
    }
    let text = std::str::from_utf8(bytes).map_err(|err| FrameError::HeaderNotUtf8 {
        valid_up_to: err.valid_up_to(),
    })?;
    match plain_header(text, max_content_len) {
        Some(header) => Ok(header.waiting_for_content()),
        None => parse_json_header(text, max_content_len),
    }
}

/// A known header (see `known_headers`) announcing at most `max_content_len` bytes: its
/// head and the content length. Over the limit it is not taken here, and the full parse
/// reports it.
fn known_header(bytes: &[u8], max_content_len: usize) -> Option<(&'static KnownHead, usize)> {
    let (head, length) = match_known(bytes)?;
    let content_len = usize::try_from(length)
        .ok()
        .filter(|&n| n <= max_content_len)?;
    Some((head, content_len))
}

/// The header parsed in full with `serde_json`, whatever JSON it is.
fn parse_json_header(text: &str, max_content_len: usize) -> Result<Box<Partial>, FrameError> {
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

/// The required header fields, read in place.
struct PlainHeader<'a> {
    byteorder: &'a str,
    content_type: &'a str,
    content_encoding: &'a str,
    content_len: usize,
}

/// Where the parts of a frame read in place lie in the decoder's buffer.
struct FrameInBuffer {
    strings: HeaderStrings,
    content: Range<usize>,
}

/// The three strings of a header read in place.
enum HeaderStrings {
    /// A known header's, held by its head.
    Known(&'static KnownHead),
    /// Another plain header's, where they lie in the buffer.
    InBuffer {
        byteorder: Range<usize>,
        content_type: Range<usize>,
        content_encoding: Range<usize>,
    },
}

/// The header as every client of the protocol writes it — one flat object holding exactly the
/// four required keys once each, strings without escapes and a content length in plain
/// digits within the limit — read without building a JSON value; `None` for anything else
/// (extra keys, escapes, other types, an error), which [`parse_header`] then parses in full.
/// Where it gives a header, the full parse gives the same one.
fn plain_header(text: &str, max_content_len: usize) -> Option<PlainHeader<'_>> {
    let mut fields: [Option<PlainValue<'_>>; 4] = [None; 4];
    plain_json::for_each_member(text, |key, value| {
        let slot = REQUIRED_HEADERS
            .iter()
            .position(|&required| required == key)?;
        // A repeated key: the full parse keeps the last value in the first one's place.
        fields[slot].replace(value).is_none().then_some(())
    })?;
    let [Some(PlainValue::Str(byteorder)), Some(PlainValue::Int(length)), Some(PlainValue::Str(content_type)), Some(PlainValue::Str(content_encoding))] =
        fields
    else {
        return None;
    };
    let content_len = usize::try_from(length)
        .ok()
        .filter(|&n| n <= max_content_len)?;
    Some(PlainHeader {
        byteorder,
        content_type,
        content_encoding,
        content_len,
    })
}

impl PlainHeader<'static> {
    fn known(head: &'static KnownHead, content_len: usize) -> PlainHeader<'static> {
        PlainHeader {
            byteorder: head.byteorder,
            content_type: head.content_type,
            content_encoding: head.content_encoding,
            content_len,
        }
    }
}

impl PlainHeader<'_> {
    /// The header, owned, waiting for its content.
    fn waiting_for_content(self) -> Box<Partial> {
        Box::new(Partial {
            message: Message {
                byteorder: self.byteorder.to_owned(),
                content_type: self.content_type.to_owned(),
                content_encoding: self.content_encoding.to_owned(),
                extra: serde_json::Map::new(),
                content: Vec::new(),
                json: None,
            },
            expected: self.content_len,
        })
    }
}

fn finish_content(mut message: Message) -> Result<Message, FrameError> {
    if message.is_json() {
        message.json = Some(message.parse_json()?);
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain read of a header, owned as the decoder keeps it.
    fn parse_plain_header(text: &str, max_content_len: usize) -> Option<Box<Partial>> {
        plain_header(text, max_content_len).map(PlainHeader::waiting_for_content)
    }

    #[test]
    fn whole_plain_frames_are_read_in_place_and_others_held() {
        let mut request = crate::protocol::codec::request_search("morpheus");
        request.json = None;
        let bytes = request.encode().unwrap();
        let mut decoder = Decoder::new().parse_json(false);
        decoder.feed(&bytes);
        decoder.feed(&bytes[..bytes.len() - 1]);
        let frame = decoder.next_frame().unwrap().unwrap();
        assert_eq!(frame.to_message(), request);
        assert!(
            decoder.held.is_none(),
            "the first frame is whole: read in place"
        );
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.feed(&bytes[bytes.len() - 1..]);
        let frame = decoder.next_frame().unwrap().unwrap();
        assert_eq!(frame.to_message(), request);
        assert!(decoder.held.is_some(), "the second came in two parts: held");
        assert_eq!(decoder.next_frame(), Ok(None));
        assert!(decoder.held.is_none() && decoder.is_idle());
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn known_headers_are_matched_and_other_plain_ones_parsed_in_place() {
        let plain = |mut request: Message| {
            request.json = None;
            request
        };
        let mut big = plain(crate::protocol::codec::request_search("ring"));
        big.byteorder = "big".to_owned();
        let requests = [
            plain(crate::protocol::codec::request_search("ring")),
            plain(crate::protocol::codec::request_search("")),
            crate::protocol::codec::request_binary("a", "b"),
            crate::protocol::codec::response_binary(b"xyz"),
            big,
        ];
        let mut decoder = Decoder::new().parse_json(false);
        for request in &requests {
            let bytes = request.encode().unwrap();
            decoder.feed(&bytes);
            let at = decoder.take_plain_frame().expect("read in place");
            assert!(matches!(at.strings, HeaderStrings::Known(_)), "{request:?}");
            assert_eq!(decoder.frame_in_buffer(at).unwrap().to_message(), *request);
        }
        // The same header written without spaces: not known, parsed, still read in place.
        let header = br#"{"byteorder":"little","content-type":"text/json","content-encoding":"utf-8","content-length":2}"#;
        let mut bytes = (header.len() as u16).to_be_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(b"{}");
        decoder.feed(&bytes);
        let at = decoder.take_plain_frame().expect("read in place");
        assert!(matches!(at.strings, HeaderStrings::InBuffer { .. }));
        let frame = decoder.frame_in_buffer(at).unwrap();
        assert_eq!(
            (
                frame.byteorder,
                frame.content_type,
                frame.content_encoding,
                frame.content
            ),
            ("little", "text/json", "utf-8", &b"{}"[..])
        );
        assert!(decoder.is_idle());
    }

    #[test]
    fn a_known_header_over_the_content_limit_is_refused_by_the_full_parse() {
        let request = crate::protocol::codec::request_binary("a", "bcdefghij");
        let mut decoder =
            Decoder::with_max_content_len(request.content.len() - 1).parse_json(false);
        decoder.feed(&request.encode().unwrap());
        assert!(matches!(
            decoder.next_frame(),
            Err(FrameError::ContentTooLong { .. })
        ));
    }

    #[test]
    fn plain_header_parse_agrees_with_the_full_one_or_declines() {
        let plain = [
            r#"{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": 42}"#,
            r#"{"content-length":0,"byteorder":"big","content-type":"","content-encoding":"binary"}"#,
            " \t\r\n{ \"byteorder\" : \"x\" , \"content-type\" : \"caf\u{e9} \u{1f430}\", \"content-encoding\": \"utf-8\", \"content-length\": 18446744073709551615 } \n",
            "{\"byteorder\": \"little\", \"content-type\": \"a/b\", \"content-encoding\": \"\u{7f}\", \"content-length\": 10}",
        ];
        for text in plain {
            let fast = parse_plain_header(text, usize::MAX).expect(text);
            let full = parse_json_header(text, usize::MAX).expect(text);
            assert_eq!(fast.message, full.message, "{text}");
            assert_eq!(fast.expected, full.expected, "{text}");
        }
        let declined = [
            // escapes, extra keys, duplicates, other types, numbers serde reads as floats
            r#"{"byteorder": "li\"ttle", "content-type": "t", "content-encoding": "e", "content-length": 1}"#,
            r#"{"byteorder": "little", "content-type": "t", "content-encoding": "e", "content-length": 1, "x": 1}"#,
            r#"{"byteorder": "little", "byteorder": "big", "content-type": "t", "content-encoding": "e", "content-length": 1}"#,
            r#"{"byteorder": 1, "content-type": "t", "content-encoding": "e", "content-length": 1}"#,
            r#"{"byteorder": "l", "content-type": "t", "content-encoding": "e", "content-length": 1.0}"#,
            r#"{"byteorder": "l", "content-type": "t", "content-encoding": "e", "content-length": 1e3}"#,
            r#"{"byteorder": "l", "content-type": "t", "content-encoding": "e", "content-length": -1}"#,
            r#"{"byteorder": "l", "content-type": "t", "content-encoding": "e", "content-length": 01}"#,
            r#"{"byteorder": "l", "content-type": "t", "content-encoding": "e", "content-length": 18446744073709551616}"#,
            r#"{"byteorder": "l", "content-type": "t", "content-encoding": "e", "content-length": "1"}"#,
            // missing keys, malformed JSON, trailing bytes, control characters
            r#"{"byteorder": "l", "content-type": "t", "content-length": 1}"#,
            r#"{"byteorder": "l", "content-type": "t", "content-encoding": "e", "content-length": 1,}"#,
            r#"{"byteorder": "l", "content-type": "t", "content-encoding": "e", "content-length": 1} x"#,
            "{\"byteorder\": \"l\tx\", \"content-type\": \"t\", \"content-encoding\": \"e\", \"content-length\": 1}",
            r#"{"byteorder": "l" "content-type": "t", "content-encoding": "e", "content-length": 1}"#,
            r#"{}"#,
            r#""#,
            r#"{"byteorder"#,
        ];
        for text in declined {
            assert!(parse_plain_header(text, usize::MAX).is_none(), "{text}");
        }
        // Over the limit: declined, so that the full parse reports ContentTooLong.
        let over = r#"{"byteorder": "l", "content-type": "t", "content-encoding": "e", "content-length": 11}"#;
        assert!(parse_plain_header(over, 10).is_none());
        assert!(matches!(
            parse_header(over.as_bytes(), 10),
            Err(FrameError::ContentTooLong {
                length: 11,
                limit: 10
            })
        ));
    }
}
