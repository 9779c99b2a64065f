//! Codec round trips and limits over random values.

mod common;

use std::collections::BTreeMap;

use ballot_core::SeededRng;
use ballot_wire::{ClientError, Codec, Hello, Request, Response, WireError, decode, encode};
use common::{Body, client_error, hello, request, response};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes `value`, checks the size accounting and the limit at its exact size, and
/// returns the decoded copy.
fn round_trip<T: Serialize + DeserializeOwned>(value: &T) -> T {
    let bytes = encode(value).unwrap();
    assert_eq!(Codec::default().encoded_len(value).unwrap(), bytes.len());
    let exact = Codec::new(bytes.len());
    assert_eq!(exact.encode(value).unwrap(), bytes, "a value exactly at the limit encodes");
    if !bytes.is_empty() {
        let tight = Codec::new(bytes.len() - 1);
        assert_eq!(
            tight.encode(value),
            Err(WireError::TooLarge { size: bytes.len() as u64, max: tight.max_size() as u64 })
        );
        assert!(matches!(tight.decode::<T>(&bytes), Err(WireError::TooLarge { .. })));
    }
    exact.decode(&bytes).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn primitives_round_trip(
        ints in (any::<u64>(), any::<i64>(), any::<u128>(), any::<i16>(), any::<char>(), any::<bool>()),
        text in any::<String>(),
        blob in prop::collection::vec(any::<u8>(), 0..2_000),
        maybe in prop::option::of(any::<i128>()),
        map in prop::collection::btree_map(any::<u16>(), any::<String>(), 0..8),
        float in any::<f64>(),
    ) {
        let value = (ints, text, blob, maybe, map, float.to_bits());
        prop_assert_eq!(round_trip(&value), value.clone());
        // Floats survive bit for bit, NaN included.
        prop_assert_eq!(round_trip(&float).to_bits(), float.to_bits());
    }

    #[test]
    fn envelopes_round_trip(seed in any::<u64>()) {
        let mut rng = SeededRng::new(seed);
        let req: Request<Body> = request(&mut rng);
        prop_assert_eq!(round_trip(&req), req);
        let resp: Response<Body> = response(&mut rng);
        prop_assert_eq!(round_trip(&resp), resp);
        let err: ClientError = client_error(&mut rng);
        prop_assert_eq!(round_trip(&err), err);
        let h: Hello = hello(&mut rng);
        prop_assert_eq!(round_trip(&h), h);
        let batch: Vec<Request<Body>> = (0..rng.gen_range(0..20)).map(|_| request(&mut rng)).collect();
        prop_assert_eq!(round_trip(&batch), batch);
    }

    /// Arbitrary bytes either decode to a value that re-encodes to an equal value, or
    /// give a typed error.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        match decode::<Response<Body>>(&bytes) {
            Ok(v) => prop_assert_eq!(decode::<Response<Body>>(&encode(&v).unwrap()).unwrap(), v),
            Err(e) => prop_assert!(matches!(e, WireError::Malformed { .. } | WireError::TrailingBytes { .. }), "{e}"),
        }
    }
}

#[test]
fn encoding_is_compact_and_stable() {
    // Small integers take one byte; these bytes are the wire format, and changing them
    // needs a protocol version bump.
    let req = Request::new(7, Body::Get { key: "k".into(), revision: -1 });
    assert_eq!(&encode(&req).unwrap()[..], &[7, 1, 1, b'k', 1]);
    let resp: Response<Body> = Response::err(300, ClientError::Compacted { compact_revision: 5 });
    assert_eq!(&encode(&resp).unwrap()[..], &[0xAC, 0x02, 1, 7, 5]);
    let not_leader: Response<()> =
        Response::err(1, ClientError::NotLeader { leader: Some(ballot_core::NodeId(2)), leader_addr: None });
    assert_eq!(&encode(&not_leader).unwrap()[..], &[1, 1, 0, 1, 2, 0]);
}

#[test]
fn maps_and_nested_types_with_hostile_lengths_are_rejected() {
    // Request { id: 1, body: Txn { ops: <2^63 elements> ... } }
    let hostile = [1, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
    assert!(matches!(decode::<Request<Body>>(&hostile), Err(WireError::Malformed { .. })));
    let hostile_map = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 1, 2];
    assert!(matches!(decode::<BTreeMap<u8, u8>>(&hostile_map), Err(WireError::Malformed { .. })));
}

#[test]
fn ballot_core_types_travel_through_the_codec() {
    use ballot_core::{Instant, Membership, NodeId, ProposeError, Role, Snapshot, SnapshotMeta, Status};
    let mut membership = Membership::new([NodeId(1), NodeId(2), NodeId(3)]);
    membership.learners.insert(NodeId(9));
    let snapshot = Snapshot {
        meta: SnapshotMeta { index: 1_000, term: 7, membership: membership.clone() },
        data: bytes::Bytes::from_static(b"state"),
    };
    assert_eq!(round_trip(&snapshot), snapshot);
    let status = Status {
        id: NodeId(2),
        role: Role::Leader,
        leader: Some(NodeId(2)),
        term: 7,
        commit_index: 10,
        applied_index: 9,
        last_index: 11,
        snapshot_index: 5,
        membership,
    };
    assert_eq!(round_trip(&status), status);
    let errors = [ProposeError::NotLeader { leader: None }, ProposeError::TooLarge { size: 5, max: 4 }];
    assert_eq!(round_trip(&errors), errors);
    assert_eq!(round_trip(&Instant::from_millis(1_500)), Instant::from_millis(1_500));
}
