//! Real Ed25519 signatures (ring) behind the injected Signer / Verifier: the normal
//! case and a view change run with them, and a forged signature is refused.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ballot_core::NodeId;
use ballot_pbft::insecure::HashRequestAuth;
use ballot_pbft::{Crypto, Prepare, Signed, Signer, Verifier, sha256};
use bytes::Bytes;
use common::{Cluster, test_config};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

struct Ed25519Signer(Ed25519KeyPair);

impl Signer for Ed25519Signer {
    fn sign(&self, message: &[u8]) -> Bytes {
        Bytes::copy_from_slice(self.0.sign(message).as_ref())
    }
}

struct Ed25519Verifier(BTreeMap<NodeId, Vec<u8>>);

impl Verifier for Ed25519Verifier {
    fn verify(&self, signer: NodeId, message: &[u8], signature: &[u8]) -> bool {
        self.0.get(&signer).is_some_and(|k| UnparsedPublicKey::new(&ED25519, k).verify(message, signature).is_ok())
    }
}

fn keypair(id: NodeId) -> Ed25519KeyPair {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&id.0.to_le_bytes());
    Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed")
}

fn crypto(n: u64) -> impl Fn(NodeId) -> Crypto {
    let keys: BTreeMap<NodeId, Vec<u8>> =
        (1..=n).map(|i| (NodeId(i), keypair(NodeId(i)).public_key().as_ref().to_vec())).collect();
    let verifier: Arc<dyn Verifier> = Arc::new(Ed25519Verifier(keys));
    move |id| Crypto {
        signer: Arc::new(Ed25519Signer(keypair(id))),
        verifier: verifier.clone(),
        requests: Arc::new(HashRequestAuth),
    }
}

#[test]
fn ed25519_cluster_orders_and_changes_view() {
    let mut c = Cluster::with_crypto(4, test_config, crypto(4));
    let cmds: Vec<_> = (0..5).map(|i| c.request(&format!("e{i}"))).collect();
    for cmd in &cmds {
        c.submit(cmd);
    }
    c.await_all(&cmds, Duration::from_secs(5), "commands signed with Ed25519");
    c.crash(1);
    let more: Vec<_> = (0..3).map(|i| c.request(&format!("f{i}"))).collect();
    for cmd in &more {
        c.submit(cmd);
    }
    c.await_all(&more, Duration::from_secs(10), "after a view change with Ed25519 certificates");
    assert!(c.node(2).view() >= 1);
}

#[test]
fn ed25519_signatures_do_not_transfer() {
    let make = crypto(4);
    let n2 = make(NodeId(2));
    let n3 = make(NodeId(3));
    let body = Prepare { view: 0, seq: 1, digest: sha256(b"batch") };
    let good = Signed::sign(body, NodeId(2), n2.signer.as_ref());
    assert!(good.verify(n3.verifier.as_ref()));
    let mut forged = Signed::sign(body, NodeId(3), n3.signer.as_ref());
    forged.signer = NodeId(2);
    assert!(!forged.verify(n3.verifier.as_ref()));
}
