//! 100,000 random and mutated streams through the frame decoder and the codec: no
//! panic, every input yields valid values or typed errors, memory stays bounded, and a
//! stream whose framing survived the damage still delivers the frames after it.
//!
//! `BALLOT_WIRE_FUZZ_SEED=<n>` runs another seed; a failure names its seed and case.

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Instant;

use ballot_core::SeededRng;
use ballot_wire::{
    Frame, FrameDecoder, FrameEncoder, FrameKind, HEADER_LEN, Hello, MAGIC, Request, Response, WireError, decode,
    encode,
};
use bytes::BytesMut;
use common::{Body, body, hello, request, response};
use serde::Serialize;
use serde::de::DeserializeOwned;

const CASES: u64 = 100_000;
/// A small limit, so that corrupted lengths land both above it and within it.
const MAX: usize = 16 * 1024;

#[derive(Clone, Debug, PartialEq)]
enum Value {
    Hello(Hello),
    Message(Body),
    Request(Request<Body>),
    Response(Response<Body>),
}

#[derive(Default, Debug)]
struct Stats {
    frames: u64,
    values: u64,
    errors: BTreeMap<&'static str, u64>,
    resync_checked: u64,
}

impl Stats {
    fn error(&mut self, e: &WireError) {
        let name = match e {
            WireError::BadMagic { .. } => "BadMagic",
            WireError::FrameTooLarge { .. } => "FrameTooLarge",
            WireError::Truncated { .. } => "Truncated",
            WireError::UnsupportedVersion { .. } => "UnsupportedVersion",
            WireError::UnknownKind { .. } => "UnknownKind",
            WireError::Malformed { .. } => "Malformed",
            WireError::TrailingBytes { .. } => "TrailingBytes",
            other => panic!("the decoder or codec returned an unexpected error: {other:?}"),
        };
        *self.errors.entry(name).or_default() += 1;
    }
}

fn random_value(rng: &mut SeededRng) -> (FrameKind, Value) {
    match rng.gen_range(0..4) {
        0 => (FrameKind::Hello, Value::Hello(hello(rng))),
        1 => (FrameKind::Message, Value::Message(body(rng))),
        2 => (FrameKind::Request, Value::Request(request(rng))),
        _ => (FrameKind::Response, Value::Response(response(rng))),
    }
}

fn encode_value(encoder: &FrameEncoder, kind: FrameKind, value: &Value, dst: &mut BytesMut) {
    match value {
        Value::Hello(v) => encoder.encode(kind, v, dst),
        Value::Message(v) => encoder.encode(kind, v, dst),
        Value::Request(v) => encoder.encode(kind, v, dst),
        Value::Response(v) => encoder.encode(kind, v, dst),
    }
    .expect("test values fit the limit");
}

/// A decoded value must survive another round trip unchanged.
fn accept<T: Serialize + DeserializeOwned + PartialEq + Debug>(
    r: Result<T, WireError>,
    wrap: fn(T) -> Value,
    stats: &mut Stats,
) -> Option<Value> {
    match r {
        Ok(v) => {
            let again: T = decode(&encode(&v).expect("a decoded value re-encodes")).expect("and decodes again");
            assert_eq!(again, v, "a decoded value must round-trip");
            stats.values += 1;
            Some(wrap(v))
        }
        Err(e) => {
            assert!(matches!(e, WireError::Malformed { .. } | WireError::TrailingBytes { .. }), "payload error {e:?}");
            stats.error(&e);
            None
        }
    }
}

fn decode_frame(frame: &Frame, stats: &mut Stats) -> Option<Value> {
    assert!(frame.payload.len() <= MAX, "a frame over the limit got through");
    stats.frames += 1;
    match frame.kind {
        FrameKind::Hello => accept(Hello::decode(&frame.payload), Value::Hello, stats),
        FrameKind::Message => accept(frame.decode(), Value::Message, stats),
        FrameKind::Request => accept(frame.decode(), Value::Request, stats),
        FrameKind::Response => accept(frame.decode(), Value::Response, stats),
        other => panic!("unexpected frame kind {other:?}"),
    }
}

struct Outcome {
    /// Each frame's decoded value, `None` where the payload was rejected.
    values: Vec<Option<Value>>,
    fatal: Option<WireError>,
}

/// Runs `input` through a fresh decoder in random chunks, then ends the stream.
fn run(input: &[u8], rng: &mut SeededRng, stats: &mut Stats) -> Outcome {
    let mut decoder = FrameDecoder::new(MAX);
    let mut buf = BytesMut::new();
    let mut values = Vec::new();
    let whole = rng.gen_bool(0.3);
    let mut rest = input;
    let mut ended = false;
    loop {
        let at_eof = rest.is_empty();
        if !at_eof {
            let n = if whole { rest.len() } else { rng.gen_range(1..65).min(rest.len() as u64) as usize };
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        loop {
            let r = if at_eof { decoder.decode_eof(&mut buf) } else { decoder.decode(&mut buf) };
            // Memory stays within a small multiple of what arrived plus one frame.
            assert!(buf.capacity() <= 2 * (input.len() + HEADER_LEN + MAX), "buffer grew to {}", buf.capacity());
            match r {
                Ok(Some(frame)) => values.push(decode_frame(&frame, stats)),
                Ok(None) => break,
                Err(e) => {
                    stats.error(&e);
                    if e.is_fatal() {
                        assert!(decoder.is_failed());
                        assert_eq!(decoder.decode(&mut buf), Err(e.clone()), "a failed decoder must keep failing");
                        return Outcome { values, fatal: Some(e) };
                    }
                    assert!(matches!(e, WireError::UnknownKind { .. } | WireError::UnsupportedVersion { .. }), "{e:?}");
                }
            }
        }
        if at_eof {
            ended = true;
        }
        if ended {
            assert!(buf.is_empty(), "a cleanly ended stream leaves no bytes behind");
            return Outcome { values, fatal: None };
        }
    }
}

#[test]
fn hundred_thousand_garbage_streams() {
    let seed = std::env::var("BALLOT_WIRE_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0xBA11_0001);
    let mut rng = SeededRng::new(seed);
    let encoder = FrameEncoder::new(MAX);
    let mut stats = Stats::default();
    let started = Instant::now();
    let sentinel = Request::new(u64::MAX, Body::Ping);

    for case in 0..CASES {
        let ctx = format!("seed {seed} case {case}");
        // A valid stream of one to four frames, with the offset each frame starts at.
        let mut wire = BytesMut::new();
        let mut originals = Vec::new();
        let mut starts = Vec::new();
        for _ in 0..rng.gen_range(1..5) {
            let (kind, value) = random_value(&mut rng);
            starts.push(wire.len());
            encode_value(&encoder, kind, &value, &mut wire);
            originals.push(value);
        }
        let pick = |rng: &mut SeededRng| starts[rng.gen_range(0..starts.len() as u64) as usize];
        // `resync`: the mutation keeps the framing intact, so a frame appended after it
        // must still come through.
        let (mut input, resync) = match case % 10 {
            // Pure noise, half of it behind a valid magic number.
            0 => {
                let mut v = if rng.gen_bool(0.5) { MAGIC.to_vec() } else { Vec::new() };
                v.extend(common::bytes(&mut rng, 256));
                (v, false)
            }
            // Bit flips anywhere.
            1 => {
                let mut v = wire.to_vec();
                for _ in 0..rng.gen_range(1..5) {
                    let bit = rng.gen_range(0..v.len() as u64 * 8);
                    v[(bit / 8) as usize] ^= 1 << (bit % 8);
                }
                (v, false)
            }
            // Truncation.
            2 => (wire[..rng.gen_range(0..wire.len() as u64) as usize].to_vec(), false),
            // Length field corruption.
            3 => {
                let mut v = wire.to_vec();
                let at = pick(&mut rng) + 4;
                let old = u32::from_be_bytes([v[at], v[at + 1], v[at + 2], v[at + 3]]);
                let new = match rng.gen_range(0..4) {
                    0 => u32::MAX,
                    1 => rng.next_u64() as u32,
                    2 => MAX as u32 + rng.gen_range(1..1_000) as u32,
                    _ => old.wrapping_add(rng.gen_range(0..16) as u32).wrapping_sub(8),
                };
                v[at..at + 4].copy_from_slice(&new.to_be_bytes());
                (v, false)
            }
            // Version corruption: reported and skipped.
            4 => {
                let mut v = wire.to_vec();
                v[pick(&mut rng) + 2] = rng.next_u64() as u8;
                (v, true)
            }
            // Kind corruption: reported and skipped, or decoded as another type.
            5 => {
                let mut v = wire.to_vec();
                v[pick(&mut rng) + 3] = rng.next_u64() as u8;
                (v, true)
            }
            // Payload corruption inside intact frames: the codec must cope.
            6 => {
                let mut v = wire.to_vec();
                for _ in 0..rng.gen_range(1..4) {
                    let (i, start) = {
                        let i = rng.gen_range(0..starts.len() as u64) as usize;
                        (i, starts[i] + HEADER_LEN)
                    };
                    let end = starts.get(i + 1).copied().unwrap_or(v.len());
                    if end > start {
                        let at = rng.gen_range(start as u64..end as u64) as usize;
                        v[at] = rng.next_u64() as u8;
                    }
                }
                (v, true)
            }
            // Concatenation: valid, garbage, valid.
            7 => {
                let mut v = wire.to_vec();
                v.extend(common::bytes(&mut rng, 64));
                v.extend_from_slice(&wire);
                (v, false)
            }
            // Insertion or deletion of bytes.
            8 => {
                let mut v = wire.to_vec();
                let at = rng.gen_range(0..v.len() as u64) as usize;
                if rng.gen_bool(0.5) {
                    let junk = common::bytes(&mut rng, 8);
                    v.splice(at..at, junk);
                } else {
                    let n = (rng.gen_range(1..9) as usize).min(v.len() - at);
                    v.drain(at..at + n);
                }
                (v, false)
            }
            // Untouched: everything decodes to exactly what was sent.
            _ => (wire.to_vec(), true),
        };
        if resync {
            let mut tail = BytesMut::new();
            encoder.encode(FrameKind::Request, &sentinel, &mut tail).unwrap();
            input.extend_from_slice(&tail);
        }

        let outcome = run(&input, &mut rng, &mut stats);

        if resync {
            assert_eq!(outcome.fatal, None, "{ctx}: intact framing must not fail the stream");
            assert_eq!(
                outcome.values.last(),
                Some(&Some(Value::Request(sentinel.clone()))),
                "{ctx}: the frame after the damage must still decode"
            );
            stats.resync_checked += 1;
        }
        if case % 10 == 9 {
            let expected: Vec<Option<Value>> =
                originals.into_iter().map(Some).chain([Some(Value::Request(sentinel.clone()))]).collect();
            assert_eq!(outcome.values, expected, "{ctx}: an untouched stream decodes exactly");
        }
    }

    let elapsed = started.elapsed();
    println!("{CASES} streams in {elapsed:?} (seed {seed}): {stats:?}");
    // The mutations must actually reach every error path, and valid values must get through.
    for name in
        ["BadMagic", "FrameTooLarge", "Truncated", "UnsupportedVersion", "UnknownKind", "Malformed", "TrailingBytes"]
    {
        assert!(stats.errors.get(name).copied().unwrap_or(0) >= 50, "too few {name} errors: {stats:?}");
    }
    assert!(stats.values >= CASES, "too few valid values decoded: {stats:?}");
    assert_eq!(stats.resync_checked, CASES * 4 / 10);
}
