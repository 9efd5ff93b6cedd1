//! The workloads: what the connections send, and the exact reply each request must get.

use rawloop::protocol::{request_search, respond, Decoder, Message};

/// What the connections send and what must come back.
pub enum Workload {
    /// `size`-byte requests cut from `pattern`, echoed unchanged.
    Echo { size: usize, pattern: Vec<u8> },
    /// One Message-protocol request and its exact response frame.
    Message {
        request: Vec<u8>,
        response: Vec<u8>,
        expected: Box<Message>,
        keep_alive: bool,
    },
}

/// The byte sent as an idle connection's check.
pub const IDLE_PING: &[u8] = b"!";

impl Workload {
    pub fn echo(size: usize) -> Workload {
        let pattern = (0..size + 251)
            .map(|i| b'0' + (i % 251 % 75) as u8)
            .collect();
        Workload::Echo { size, pattern }
    }

    pub fn message(keep_alive: bool) -> Result<Workload, String> {
        let request = request_search("morpheus")
            .encode()
            .map_err(|e| e.to_string())?;
        let decoded = decode_one(&request)?;
        let expected = respond(&decoded);
        let response = expected.encode().map_err(|e| e.to_string())?;
        // The expected message as a reader sees it (with its JSON parsed).
        let expected = Box::new(decode_one(&response)?);
        Ok(Workload::Message {
            request,
            response,
            expected,
            keep_alive,
        })
    }

    /// Request number `seq` of connection `conn`.
    pub fn request(&self, conn: usize, seq: u64) -> &[u8] {
        match self {
            Workload::Echo { size, pattern } => {
                let at = (conn * 31 + seq as usize * 7) % 251;
                &pattern[at..at + size]
            }
            Workload::Message { request, .. } => request,
        }
    }

    /// The reply to request `seq` of connection `conn`, byte for byte.
    pub fn reply(&self, conn: usize, seq: u64) -> &[u8] {
        match self {
            Workload::Echo { .. } => self.request(conn, seq),
            Workload::Message { response, .. } => response,
        }
    }

    /// Whether a connection carries more than one request.
    pub fn keep_alive(&self) -> bool {
        match self {
            Workload::Echo { .. } => true,
            Workload::Message { keep_alive, .. } => *keep_alive,
        }
    }

    /// A decoder for replies, where the protocol has frames.
    pub fn decoder(&self) -> Option<Decoder> {
        match self {
            Workload::Echo { .. } => None,
            Workload::Message { .. } => Some(Decoder::new()),
        }
    }

    /// The check of a whole reply beyond its bytes: the frame decodes to the message expected.
    pub fn check_reply(&self, decoder: Option<&mut Decoder>) -> Result<(), String> {
        match (self, decoder) {
            (Workload::Message { expected, .. }, Some(decoder)) => match decoder.next_message() {
                Ok(Some(message)) if message == **expected && decoder.is_idle() => Ok(()),
                Ok(Some(message)) => Err(format!("decoded an unexpected reply: {message:?}")),
                Ok(None) => Err("the reply frame is incomplete".into()),
                Err(e) => Err(format!("the reply does not decode: {e}")),
            },
            _ => Ok(()),
        }
    }
}

fn decode_one(frame: &[u8]) -> Result<Message, String> {
    let mut decoder = Decoder::new();
    decoder.feed(frame);
    match decoder.next_message() {
        Ok(Some(message)) => Ok(message),
        Ok(None) => Err("incomplete frame".into()),
        Err(e) => Err(e.to_string()),
    }
}
