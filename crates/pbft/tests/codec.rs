//! Messages and durable records survive a serde round trip (postcard, as the wire and
//! the store use).

use std::sync::Arc;

use ballot_core::{Instant, Membership, NodeId, Output, ProposalId, Protocol, Recovered};
use ballot_pbft::insecure::{HashRequestAuth, HashSigner, HashVerifier, signed_request};
use ballot_pbft::{Config, Crypto, Entry, HardState, Message, Pbft};

#[test]
fn messages_and_records_round_trip() {
    let crypto = Crypto {
        signer: Arc::new(HashSigner(NodeId(1))),
        verifier: Arc::new(HashVerifier),
        requests: Arc::new(HashRequestAuth),
    };
    let members = Membership::new((1..=4).map(NodeId));
    let mut p = Pbft::new(Config::new(NodeId(1)), members, Recovered::default(), crypto, Instant::ZERO).unwrap();
    p.propose(Instant::ZERO, ProposalId(1), signed_request(1, b"x")).unwrap();
    let (mut msgs, mut entries) = (Vec::new(), Vec::new());
    while let Some(o) = p.poll_output() {
        match o {
            Output::Persist(b) => {
                entries.extend(b.entries);
                p.persisted(Instant::ZERO, b.id);
            }
            Output::Send { message, .. } => msgs.push(message),
            _ => {}
        }
    }
    assert!(!msgs.is_empty() && !entries.is_empty());
    for m in msgs {
        let bytes = postcard::to_allocvec(&m).unwrap();
        assert_eq!(postcard::from_bytes::<Message>(&bytes).unwrap(), m);
    }
    for e in entries {
        let bytes = postcard::to_allocvec(&e).unwrap();
        assert_eq!(postcard::from_bytes::<Entry>(&bytes).unwrap(), e);
    }
    let hs = HardState { view: 3, changing: true, ..HardState::default() };
    assert_eq!(postcard::from_bytes::<HardState>(&postcard::to_allocvec(&hs).unwrap()).unwrap(), hs);
}
