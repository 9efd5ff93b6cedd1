//! The Message decoder on arbitrary bytes: never panics, keeps its memory bounded, and
//! decodes the same messages and errors whether the input arrives whole or in chunks, and
//! whether they are pulled as owned messages or as frames read in place.
//!
//! `cargo +nightly fuzz run decoder -- -max_total_time=120`
#![no_main]

use libfuzzer_sys::fuzz_target;
use rawloop::protocol::codec::{Decoder, FrameError, Message};

const LIMIT: usize = 64 * 1024;

/// The next message, owned (`next_message`) or lent and copied (`next_frame`).
fn pull(decoder: &mut Decoder, frames: bool) -> Result<Option<Message>, FrameError> {
    if frames {
        decoder.next_frame().map(|f| f.map(|f| f.to_message()))
    } else {
        decoder.next_message()
    }
}

/// Decodes `chunks` in turn, pulling every message after each, then finishes.
fn decode<'a>(
    chunks: impl Iterator<Item = &'a [u8]>,
    parse_json: bool,
    frames: bool,
) -> Vec<Result<Message, FrameError>> {
    let mut decoder = Decoder::with_max_content_len(LIMIT).parse_json(parse_json);
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk);
        loop {
            match pull(&mut decoder, frames) {
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
        let next = match pull(&mut decoder, frames) {
            Ok(None) => decoder.finish(),
            other => other,
        };
        match next {
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
    let step = usize::from(split).max(1);
    for parse_json in [true, false] {
        let whole = decode(std::iter::once(bytes), parse_json, false);
        let chunked = decode(bytes.chunks(step), parse_json, false);
        assert_eq!(whole, chunked);
        let frames = decode(bytes.chunks(step), parse_json, true);
        assert_eq!(frames, chunked);
    }
});
