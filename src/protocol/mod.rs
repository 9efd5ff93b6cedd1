//! The Message application protocol of the seed's client/server application chapter
//! (`app-server`, `app-client`, `libserver`, `libclient`), wire-compatible with the Python
//! reference programs byte for byte.
//!
//! A frame is a big-endian `u16` header length, a UTF-8 JSON header object with the keys
//! `byteorder`, `content-type`, `content-encoding` and `content-length`, then exactly
//! `content-length` bytes of content. The crate's `docs/protocol.md` describes it
//! byte for byte.
//!
//! [`codec`] is the pure part, bytes in and messages out, with no I/O:
//!
//! ```
//! use rawloop::protocol::{request_search, respond, Decoder};
//!
//! let frame = request_search("morpheus").encode()?;
//! let mut decoder = Decoder::new();
//! for byte in &frame {
//!     decoder.feed(std::slice::from_ref(byte));
//! }
//! let request = decoder.next_message()?.expect("a whole frame was fed");
//! let response = respond(&request);
//! assert_eq!(
//!     response.content,
//!     "{\"result\": \"Follow the white rabbit. \u{1f430}\"}".as_bytes(),
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod client;
pub mod codec;
pub mod server;

pub use client::{exchange, ClientConfig, ClientConnection, Exchange};
pub use codec::{
    encode_response, error_response, request, request_binary, request_search, respond,
    response_binary, response_text, Decoder, EncodeError, Frame, FrameError, Message, Stage,
    DEFAULT_MAX_CONTENT_LEN, HOST_BYTEORDER,
};
pub use server::{serve, serve_with, ServerConfig, ServerConnection};
