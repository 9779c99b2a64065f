//! Framing: round trips over arbitrary splits, hostile headers, recovery after errors.

use std::time::{Duration, Instant};

use ballot_wire::{
    DEFAULT_MAX_SIZE, Frame, FrameDecoder, FrameEncoder, FrameKind, HEADER_LEN, Hello, MAX_SIZE_LIMIT,
    PROTOCOL_VERSION, VersionRange, WireError,
};
use bytes::BytesMut;
use proptest::prelude::*;

const KINDS: [FrameKind; 4] = [FrameKind::Hello, FrameKind::Message, FrameKind::Request, FrameKind::Response];

/// Feeds `wire` to a fresh decoder in chunks of the given sizes (cycled), then ends the
/// stream; returns every frame or the first error.
fn decode_chunked(decoder: &mut FrameDecoder, wire: &[u8], chunks: &[usize]) -> Result<Vec<Frame>, WireError> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = wire;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(frame) = decoder.decode(&mut buf)? {
            frames.push(frame);
        }
    }
    while let Some(frame) = decoder.decode_eof(&mut buf)? {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "a cleanly ended stream leaves nothing behind");
    Ok(frames)
}

fn payload_len() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0usize..64, 3 => 64usize..4_096, 1 => 60_000usize..140_000]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Any sequence of frames, split at any points, comes out whole and in order.
    #[test]
    fn frames_survive_arbitrary_splits(
        frames in prop::collection::vec((0usize..4, payload_len().prop_flat_map(|n| prop::collection::vec(any::<u8>(), n))), 0..12),
        chunks in prop::collection::vec(prop_oneof![1usize..16, 1usize..3_000, 1usize..100_000], 1..40),
    ) {
        let encoder = FrameEncoder::default();
        let mut wire = BytesMut::new();
        for (kind, payload) in &frames {
            encoder.encode_payload(KINDS[*kind], payload, &mut wire).unwrap();
        }
        prop_assert_eq!(wire.len(), frames.iter().map(|(_, p)| HEADER_LEN + p.len()).sum::<usize>());
        let got = decode_chunked(&mut FrameDecoder::default(), &wire, &chunks).unwrap();
        prop_assert_eq!(got.len(), frames.len());
        for (frame, (kind, payload)) in got.iter().zip(&frames) {
            prop_assert_eq!(frame.kind, KINDS[*kind]);
            prop_assert_eq!(frame.version, PROTOCOL_VERSION);
            prop_assert_eq!(&frame.payload[..], &payload[..]);
        }
    }

    /// Cutting a stream anywhere inside a frame is reported at the end of the stream.
    #[test]
    fn truncation_anywhere_is_reported(payload in prop::collection::vec(any::<u8>(), 0..300), cut in any::<prop::sample::Index>()) {
        let mut wire = BytesMut::new();
        FrameEncoder::default().encode_payload(FrameKind::Message, &payload, &mut wire).unwrap();
        let cut = 1 + cut.index(wire.len() - 1); // 1..len: at least one byte, not the whole frame
        let missing = if cut < HEADER_LEN { HEADER_LEN - cut } else { wire.len() - cut } as u64;
        let result = decode_chunked(&mut FrameDecoder::default(), &wire[..cut], &[7]);
        prop_assert_eq!(result, Err(WireError::Truncated { missing }));
    }
}

#[test]
fn header_layout_is_stable() {
    let mut wire = BytesMut::new();
    FrameEncoder::default().encode_payload(FrameKind::Response, b"abc", &mut wire).unwrap();
    assert_eq!(&wire[..], &[0xBA, 0x11, ballot_wire::PROTOCOL_VERSION, 4, 0, 0, 0, 3, b'a', b'b', b'c']);
    let header = FrameEncoder::new(1 << 25).with_version(7).header(FrameKind::Hello, 0x0102_0304).unwrap();
    assert_eq!(header, [0xBA, 0x11, 7, 1, 1, 2, 3, 4]);
}

#[test]
fn hostile_four_gib_length_fails_at_once_without_allocating() {
    let hostile = [0xBA, 0x11, PROTOCOL_VERSION, FrameKind::Message.as_u8(), 0xFF, 0xFF, 0xFF, 0xFF];
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&hostile);
    let capacity = buf.capacity();
    let mut decoder = FrameDecoder::default();
    let started = Instant::now();
    let err = decoder.decode(&mut buf).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(err, WireError::FrameTooLarge { declared: u64::from(u32::MAX), max: DEFAULT_MAX_SIZE as u64 });
    assert!(err.is_fatal());
    assert_eq!(buf.capacity(), capacity, "nothing may be reserved for a rejected length");
    // The decoder stays failed: the rest of this stream is not to be trusted.
    buf.clear();
    FrameEncoder::default().encode_payload(FrameKind::Message, b"ok", &mut buf).unwrap();
    assert_eq!(decoder.decode(&mut buf), Err(err));
    assert!(decoder.is_failed());
}

#[test]
fn accepted_length_reserves_only_what_can_be_justified() {
    // Even at the largest possible limit, a header claiming almost 4 GiB reserves at most 64 KiB.
    let mut decoder = FrameDecoder::new(usize::MAX);
    assert_eq!(decoder.max_size(), MAX_SIZE_LIMIT);
    let mut buf = BytesMut::from(&[0xBA, 0x11, PROTOCOL_VERSION, 2][..]);
    buf.extend_from_slice(&(MAX_SIZE_LIMIT as u32).to_be_bytes());
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert!(buf.capacity() <= 128 * 1024, "reserved {} bytes on a bare header", buf.capacity());
    assert_eq!(decoder.decode_eof(&mut buf), Err(WireError::Truncated { missing: MAX_SIZE_LIMIT as u64 }));
    // One byte more than the largest limit is refused by any decoder.
    let mut buf = BytesMut::from(&[0xBA, 0x11, PROTOCOL_VERSION, 2][..]);
    buf.extend_from_slice(&(MAX_SIZE_LIMIT as u32 + 1).to_be_bytes());
    assert!(matches!(FrameDecoder::new(usize::MAX).decode(&mut buf), Err(WireError::FrameTooLarge { .. })));
}

#[test]
fn limit_is_inclusive_and_configurable() {
    let encoder = FrameEncoder::new(10);
    let mut wire = BytesMut::new();
    encoder.encode_payload(FrameKind::Message, &[1; 10], &mut wire).unwrap();
    assert_eq!(
        encoder.encode_payload(FrameKind::Message, &[1; 11], &mut wire),
        Err(WireError::TooLarge { size: 11, max: 10 })
    );
    assert_eq!(
        encoder.encode(FrameKind::Message, &vec![1u8; 10], &mut wire),
        Err(WireError::TooLarge { size: 11, max: 10 })
    );
    assert_eq!(wire.len(), HEADER_LEN + 10, "failed encodes leave the buffer as it was");
    let frames = decode_chunked(&mut FrameDecoder::new(10), &wire, &[3]).unwrap();
    assert_eq!(frames[0].payload.len(), 10);

    // A receiver with a smaller limit refuses the same frame.
    assert_eq!(
        decode_chunked(&mut FrameDecoder::new(9), &wire, &[100]),
        Err(WireError::FrameTooLarge { declared: 10, max: 9 })
    );
}

#[test]
fn garbage_is_rejected_at_the_first_byte() {
    let mut decoder = FrameDecoder::default();
    let mut buf = BytesMut::from(&b"G"[..]);
    assert_eq!(decoder.decode(&mut buf), Err(WireError::BadMagic { found: u16::from(b'G') }));
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
    let err = FrameDecoder::default().decode(&mut buf).unwrap_err();
    assert_eq!(err, WireError::BadMagic { found: u16::from_be_bytes(*b"GE") });
    assert!(err.is_fatal());
    // An empty or partial-but-plausible input just waits.
    assert_eq!(FrameDecoder::default().decode(&mut BytesMut::new()), Ok(None));
    assert_eq!(FrameDecoder::default().decode(&mut BytesMut::from(&[0xBA][..])), Ok(None));
}

#[test]
fn unknown_kinds_and_versions_are_skipped_and_the_stream_continues() {
    let mut wire = BytesMut::new();
    let encoder = FrameEncoder::default();
    encoder.encode(FrameKind::Message, "first", &mut wire).unwrap();
    // A frame of a kind from the future.
    wire.extend_from_slice(&[0xBA, 0x11, PROTOCOL_VERSION, 200, 0, 0, 0, 3, 9, 9, 9]);
    // A frame of an unsupported version.
    encoder.with_version(PROTOCOL_VERSION + 1).encode(FrameKind::Request, "v2", &mut wire).unwrap();
    // A Hello of any version is accepted: that is how versions are negotiated.
    let mut future_hello = Hello::new("c", None);
    future_hello.versions = VersionRange::new(2, 9);
    encoder.with_version(9).encode(FrameKind::Hello, &future_hello, &mut wire).unwrap();
    encoder.encode(FrameKind::Message, "last", &mut wire).unwrap();

    for chunk in [1, 2, 5, 1_000] {
        let mut decoder = FrameDecoder::default();
        let mut buf = BytesMut::new();
        let mut events = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => events.push(Ok((frame.version, frame.kind, frame.payload.to_vec()))),
                    Ok(None) => break,
                    Err(e) => {
                        assert!(!e.is_fatal(), "{e}");
                        events.push(Err(e));
                    }
                }
            }
        }
        assert_eq!(decoder.decode_eof(&mut buf), Ok(None));
        let enc = |s: &str| ballot_wire::encode(s).unwrap().to_vec();
        assert_eq!(
            events,
            vec![
                Ok((PROTOCOL_VERSION, FrameKind::Message, enc("first"))),
                Err(WireError::UnknownKind { kind: 200 }),
                Err(WireError::UnsupportedVersion { got: PROTOCOL_VERSION + 1, supported: VersionRange::SUPPORTED }),
                Ok((9, FrameKind::Hello, ballot_wire::encode(&future_hello).unwrap().to_vec())),
                Ok((PROTOCOL_VERSION, FrameKind::Message, enc("last"))),
            ],
            "chunk size {chunk}"
        );
    }
}

#[test]
fn garbage_payload_in_a_good_frame_does_not_break_the_stream() {
    let mut wire = BytesMut::new();
    let encoder = FrameEncoder::default();
    encoder.encode_payload(FrameKind::Request, &[0xFF, 0xFF, 0xFF], &mut wire).unwrap();
    encoder.encode(FrameKind::Request, &ballot_wire::Request::new(5, 42u32), &mut wire).unwrap();
    let frames = decode_chunked(&mut FrameDecoder::default(), &wire, &[4]).unwrap();
    assert!(matches!(frames[0].decode::<ballot_wire::Request<u32>>(), Err(WireError::Malformed { .. })));
    assert_eq!(frames[1].decode::<ballot_wire::Request<u32>>(), Ok(ballot_wire::Request::new(5, 42)));
}

#[test]
fn fatal_errors_stick_and_a_new_connection_starts_clean() {
    let mut wire = BytesMut::new();
    FrameEncoder::default().encode(FrameKind::Message, &1u8, &mut wire).unwrap();
    let mut corrupt = wire.clone();
    corrupt[1] ^= 0x40;
    corrupt.extend_from_slice(&wire);
    let mut decoder = FrameDecoder::default();
    let err = decoder.decode(&mut corrupt).unwrap_err();
    assert!(matches!(err, WireError::BadMagic { .. }));
    for _ in 0..3 {
        assert_eq!(decoder.decode(&mut corrupt), Err(err.clone()), "a failed decoder keeps failing");
    }
    assert_eq!(decoder.decode_eof(&mut corrupt), Err(err));
    // A fresh decoder (a new connection) reads the same valid bytes fine.
    assert_eq!(decode_chunked(&mut FrameDecoder::default(), &wire, &[1]).unwrap()[0].decode::<u8>(), Ok(1));
}

#[test]
fn negotiated_versions_restrict_the_decoder() {
    let mut decoder = FrameDecoder::default().with_versions(VersionRange::new(1, 3));
    let mut buf = BytesMut::new();
    FrameEncoder::default().with_version(3).encode(FrameKind::Message, &0u8, &mut buf).unwrap();
    assert_eq!(decoder.decode(&mut buf).unwrap().map(|f| f.version), Some(3));
    decoder.set_versions(VersionRange::single(2));
    FrameEncoder::default().with_version(3).encode(FrameKind::Message, &0u8, &mut buf).unwrap();
    assert_eq!(
        decoder.decode(&mut buf),
        Err(WireError::UnsupportedVersion { got: 3, supported: VersionRange::single(2) })
    );
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert!(buf.is_empty(), "the rejected frame was skipped");
}
