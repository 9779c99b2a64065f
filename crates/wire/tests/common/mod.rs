//! Value types and generators shared by the integration tests.

#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;

use ballot_core::{NodeId, SeededRng};
use ballot_wire::{ClientError, Hello, Request, Response, VersionRange};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A service-like request body with every serde shape ballot uses: enums with unit,
/// tuple and struct variants, strings, byte blobs, options, integers of every width,
/// maps and nested sequences.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Ping,
    Get { key: String, revision: i64 },
    Put { key: String, value: Bytes, lease: Option<u64> },
    Txn { ops: Vec<(String, Vec<u8>)>, flags: BTreeMap<u32, bool> },
    Vote(NodeId, u16, i8, char),
}

pub fn string(rng: &mut SeededRng, max: u64) -> String {
    let len = rng.gen_range(0..max + 1);
    (0..len)
        .map(|_| match rng.gen_range(0..10) {
            0 => 'é',
            1 => '∑',
            2 => '🦀',
            _ => char::from(b'a' + rng.gen_range(0..26) as u8),
        })
        .collect()
}

pub fn bytes(rng: &mut SeededRng, max: u64) -> Vec<u8> {
    let len = rng.gen_range(0..max + 1);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

pub fn body(rng: &mut SeededRng) -> Body {
    match rng.gen_range(0..5) {
        0 => Body::Ping,
        1 => Body::Get { key: string(rng, 16), revision: rng.next_u64() as i64 >> rng.gen_range(0..64) },
        2 => Body::Put {
            key: string(rng, 16),
            value: Bytes::from(bytes(rng, 48)),
            lease: rng.gen_bool(0.5).then(|| rng.next_u64() >> rng.gen_range(0..64)),
        },
        3 => Body::Txn {
            ops: (0..rng.gen_range(0..4)).map(|_| (string(rng, 8), bytes(rng, 8))).collect(),
            flags: (0..rng.gen_range(0..4)).map(|_| (rng.next_u64() as u32, rng.gen_bool(0.5))).collect(),
        },
        _ => Body::Vote(
            NodeId(rng.gen_range(1..10)),
            rng.next_u64() as u16,
            rng.next_u64() as i8,
            char::from_u32(rng.gen_range(0..0xD800) as u32).unwrap_or('x'),
        ),
    }
}

pub fn client_error(rng: &mut SeededRng) -> ClientError {
    match rng.gen_range(0..13) {
        0 => ClientError::NotLeader {
            leader: rng.gen_bool(0.5).then(|| NodeId(rng.gen_range(1..10))),
            leader_addr: rng.gen_bool(0.5).then(|| string(rng, 20)),
        },
        1 => ClientError::Busy,
        2 => ClientError::TooLarge { what: string(rng, 8), size: rng.next_u64(), max: rng.next_u64() },
        3 => ClientError::InvalidRequest(string(rng, 20)),
        4 => ClientError::Unavailable(string(rng, 20)),
        5 => ClientError::Timeout,
        6 => ClientError::LeaderChanged,
        7 => ClientError::Compacted { compact_revision: rng.next_u64() },
        8 => ClientError::NotFound(string(rng, 20)),
        9 => ClientError::Unauthenticated,
        10 => ClientError::UnsupportedVersion {
            got: rng.next_u64() as u8,
            supported: VersionRange::new(rng.next_u64() as u8, rng.next_u64() as u8),
        },
        _ => ClientError::Internal(string(rng, 20)),
    }
}

pub fn request(rng: &mut SeededRng) -> Request<Body> {
    Request::new(rng.next_u64() >> rng.gen_range(0..64), body(rng))
}

pub fn response(rng: &mut SeededRng) -> Response<Body> {
    let id = rng.next_u64() >> rng.gen_range(0..64);
    if rng.gen_bool(0.5) { Response::ok(id, body(rng)) } else { Response::err(id, client_error(rng)) }
}

pub fn hello(rng: &mut SeededRng) -> Hello {
    let mut h = Hello::new(string(rng, 12), rng.gen_bool(0.5).then(|| NodeId(rng.gen_range(1..100))));
    h.versions = VersionRange::new(rng.gen_range(1..3) as u8, rng.gen_range(1..4) as u8);
    h
}
