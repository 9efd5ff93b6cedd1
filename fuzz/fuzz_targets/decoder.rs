//! The Message decoder on arbitrary bytes: never panics, keeps its memory bounded, and
//! decodes the same messages and errors whether the input arrives whole or in chunks.
//!
//! `cargo +nightly fuzz run decoder -- -max_total_time=120`
#![no_main]

use libfuzzer_sys::fuzz_target;
use rawloop::protocol::codec::{Decoder, FrameError, Message};

const LIMIT: usize = 64 * 1024;

/// Decodes `chunks` in turn, pulling every message after each, then finishes.
fn decode<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> Vec<Result<Message, FrameError>> {
    let mut decoder = Decoder::with_max_content_len(LIMIT);
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk);
        loop {
            match decoder.next_message() {
                Ok(Some(m)) => out.push(Ok(m)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.clone()));
                    if e.is_fatal() {
                        return out;
                    }
                }
            }
        }
        // One partial frame at most: prefix, header, content so far, and this chunk.
        assert!(decoder.memory_usage() <= 2 * (2 + 65_535 + LIMIT + chunk.len()) + 64 * 1024);
    }
    loop {
        match decoder.finish() {
            Ok(Some(m)) => out.push(Ok(m)),
            Ok(None) => break,
            Err(e) => {
                out.push(Err(e));
                break;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let whole = decode(std::iter::once(bytes));
    let step = usize::from(split).max(1);
    let chunked = decode(bytes.chunks(step));
    assert_eq!(whole, chunked);
});
