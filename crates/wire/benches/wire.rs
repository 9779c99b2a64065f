//! Throughput of the codec and the framing layer.
//!
//! `cargo bench -p ballot-wire` prints one line per case: values or frames per second,
//! nanoseconds per value or frame, and payload throughput. `-- --quick` shortens it.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use ballot_wire::{Codec, FrameDecoder, FrameEncoder, FrameKind, Request, Response};
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// A typical key-value write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Command {
    Put { key: String, value: Bytes, lease: Option<u64> },
}

/// Runs `op` repeatedly for about `budget` and reports its rate. One call of `op`
/// handles `items` items of `bytes` payload bytes each.
fn bench(name: &str, items: u64, bytes: usize, budget: Duration, mut op: impl FnMut()) {
    // Warm up, then size batches so the clock is read rarely.
    let mut batch = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..batch {
            op();
        }
        if t.elapsed() > Duration::from_millis(20) {
            break;
        }
        batch *= 2;
    }
    let (mut calls, started) = (0u64, Instant::now());
    while started.elapsed() < budget {
        for _ in 0..batch {
            op();
        }
        calls += batch;
    }
    let rate = (calls * items) as f64 / started.elapsed().as_secs_f64();
    println!(
        "{name:<46} {rate:>12.0} /s {:>10.1} ns each {:>9.0} MiB/s",
        1e9 / rate,
        rate * bytes as f64 / (1024.0 * 1024.0)
    );
}

fn main() {
    let budget = Duration::from_millis(if std::env::args().any(|a| a == "--quick") { 100 } else { 1_000 });
    let codec = Codec::default();

    let put = Request::new(
        123_456,
        Command::Put { key: "users/1234/profile".into(), value: Bytes::from(vec![7u8; 100]), lease: Some(42) },
    );
    let encoded = codec.encode(&put).unwrap();
    bench(&format!("codec encode Request<Put 100 B> ({} B)", encoded.len()), 1, encoded.len(), budget, || {
        black_box(codec.encode(black_box(&put)).unwrap());
    });
    bench(&format!("codec decode Request<Put 100 B> ({} B)", encoded.len()), 1, encoded.len(), budget, || {
        black_box(codec.decode::<Request<Command>>(black_box(&encoded)).unwrap());
    });
    let resp: Response<u64> = Response::ok(123_456, 99);
    let encoded = codec.encode(&resp).unwrap();
    bench(&format!("codec round trip Response<u64> ({} B)", encoded.len()), 1, encoded.len(), budget, || {
        let b = codec.encode(black_box(&resp)).unwrap();
        black_box(codec.decode::<Response<u64>>(&b).unwrap());
    });

    // Frames: encode a batch of frames into one buffer, then decode it in 16 KiB reads.
    let encoder = FrameEncoder::default();
    for size in [64usize, 4 * 1024, 1024 * 1024] {
        let payload = vec![0xA5u8; size];
        let frames_per_op = (1024 * 1024 / size).clamp(1, 1024);
        let mut wire = BytesMut::new();
        for _ in 0..frames_per_op {
            encoder.encode_payload(FrameKind::Message, &payload, &mut wire).unwrap();
        }
        let wire = wire.freeze();
        let name = format!("frame encode, {size} B payload");
        bench(&name, 1, size, budget / 2, || {
            let mut out = BytesMut::with_capacity(size + 8);
            encoder.encode_payload(FrameKind::Message, black_box(&payload), &mut out).unwrap();
            black_box(out);
        });
        let name = format!("frame decode, {size} B payload, 16 KiB reads");
        bench(&name, frames_per_op as u64, size, budget / 2, || {
            let mut decoder = FrameDecoder::default();
            let mut buf = BytesMut::new();
            let mut n = 0;
            for chunk in wire.chunks(16 * 1024) {
                buf.extend_from_slice(chunk);
                while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                    black_box(&frame);
                    n += 1;
                }
            }
            assert_eq!(n, frames_per_op);
        });
    }
}
