//! The Message-protocol codec (`src/protocol/codec/`, the frames of `docs/protocol.md`):
//! encoding and decoding the reference requests and responses, with no I/O.
//!
//! `cargo bench --bench codec`
//!
//! * encode: the search request (146 bytes), its text response (148 bytes), and a binary
//!   request with 4 KiB of content;
//! * decode: each of those frames fed whole, the search request fed one byte at a time (the
//!   worst fragmentation a socket can produce), and 100 search requests back to back fed in
//!   16 KiB reads, as a keep-alive server sees them. Throughput is given in frame bytes;
//! * answer: the search request's response frame, built as a `Message` by `respond` and then
//!   encoded, against `encode_response`, which writes it straight into a buffer; each from a
//!   request decoded with its JSON parsed and from one whose JSON the decoder left unparsed
//!   (`Decoder::parse_json(false)`, as the server decodes);
//! * serve: a keep-alive server's whole work for one search request — the frame fed to a
//!   decoder kept between requests, pulled out and answered into a kept buffer — pulled as an
//!   owned `Message` (`next_message`) against read in place (`next_frame`, what the server
//!   does).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rawloop::protocol::{
    encode_response, request_binary, request_search, respond, Decoder, Message,
};

fn decode_all(decoder: &mut Decoder) -> usize {
    let mut n = 0;
    while let Some(message) = decoder.next_message().expect("valid frame") {
        black_box(&message);
        n += 1;
    }
    n
}

fn frames() -> Vec<(&'static str, Message)> {
    let search = request_search("morpheus");
    let mut decoder = Decoder::new();
    decoder.feed(&search.encode().expect("encode"));
    let decoded = decoder.next_message().expect("decode").expect("a frame");
    let response = respond(&decoded);
    let value = "x".repeat(4096 - "binary".len());
    let binary = request_binary("binary", &value);
    vec![
        ("search request", search),
        ("search response", response),
        ("binary 4 KiB request", binary),
    ]
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec/encode");
    for (name, message) in frames() {
        let len = message.encode().expect("encode").len();
        group.throughput(Throughput::Bytes(len as u64));
        let mut out = Vec::with_capacity(len);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                black_box(&message).encode_into(&mut out).expect("encode");
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec/decode");
    for (name, message) in frames() {
        let frame = message.encode().expect("encode");
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(format!("{name}, whole"), |b| {
            b.iter(|| {
                let mut decoder = Decoder::new();
                decoder.feed(black_box(&frame));
                assert_eq!(decode_all(&mut decoder), 1);
            })
        });
    }

    let frame = request_search("morpheus").encode().expect("encode");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("search request, one byte at a time", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new();
            let mut n = 0;
            for byte in black_box(&frame) {
                decoder.feed(std::slice::from_ref(byte));
                n += decode_all(&mut decoder);
            }
            assert_eq!(n, 1);
        })
    });

    let stream: Vec<u8> = frame.repeat(100);
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("100 search requests, 16 KiB reads", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new();
            let mut n = 0;
            for chunk in black_box(&stream).chunks(16 * 1024) {
                decoder.feed(chunk);
                n += decode_all(&mut decoder);
            }
            assert_eq!(n, 100);
        })
    });
    group.finish();
}

fn answer(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec/answer");
    let frame = request_search("morpheus").encode().expect("encode");
    for (name, parse_json) in [("parsed", true), ("unparsed", false)] {
        let mut decoder = Decoder::new().parse_json(parse_json);
        decoder.feed(&frame);
        let request = decoder.next_message().expect("decode").expect("a frame");
        let mut out = Vec::with_capacity(256);
        group.bench_function(format!("respond + encode, {name}"), |b| {
            b.iter(|| {
                out.clear();
                respond(black_box(&request))
                    .encode_into(&mut out)
                    .expect("encode");
                black_box(out.len())
            })
        });
        group.bench_function(format!("encode_response, {name}"), |b| {
            b.iter(|| {
                out.clear();
                encode_response(black_box(&request), &mut out).expect("encode");
                black_box(out.len())
            })
        });
    }
    group.finish();
}

/// A keep-alive server's work for one request, no I/O: the request frame in, the answer's
/// frame out, with the decoder and the output buffer kept between requests.
fn serve(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec/serve");
    let frame = request_search("morpheus").encode().expect("encode");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    let mut decoder = Decoder::new().parse_json(false);
    let mut out = Vec::with_capacity(256);
    group.bench_function("search request, next_message + encode_response", |b| {
        b.iter(|| {
            decoder.feed(black_box(&frame));
            out.clear();
            let request = decoder.next_message().expect("decode").expect("a frame");
            encode_response(&request, &mut out).expect("encode");
            assert_eq!(decoder.next_message(), Ok(None));
            black_box(out.len())
        })
    });
    group.bench_function("search request, next_frame + encode_response", |b| {
        b.iter(|| {
            decoder.feed(black_box(&frame));
            out.clear();
            let request = decoder.next_frame().expect("decode").expect("a frame");
            encode_response(request, &mut out).expect("encode");
            assert_eq!(decoder.next_frame(), Ok(None));
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = encode, decode, answer, serve
}
criterion_main!(benches);
