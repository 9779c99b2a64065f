//! PBFT behind the unchanged `ballot-replica` host and the real key-value service:
//! every replica answers the client by session, checkpoints carry the service state,
//! and a lagging replica's service is restored by state transfer.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ballot_core::service::{Consistency, Session};
use ballot_core::{Instant, Membership, NodeId, Protocol, Recovered};
use ballot_kv::{KvRequest, KvResponse, KvStore};
use ballot_pbft::insecure::{HashSigner, HashVerifier};
use ballot_pbft::{Config, Crypto, Message, Pbft, RequestAuth};
use ballot_replica::{Replica, ReplicaConfig, ReplicaOutput, RequestId};
use bytes::Bytes;

/// Trusts every command: the replica host does not sign commands yet (see
/// docs/pbft.md, "Not done yet").
struct TrustedClients;

impl RequestAuth for TrustedClients {
    fn verify(&self, _command: &[u8]) -> bool {
        true
    }
}

type Node = Replica<Pbft, KvStore>;

struct Net {
    nodes: Vec<Node>,
    now: Instant,
    wire: VecDeque<(NodeId, NodeId, Message)>,
    replies: BTreeMap<(usize, RequestId), Result<KvResponse, ballot_wire::ClientError>>,
    cut: Option<NodeId>,
}

impl Net {
    fn new() -> Self {
        let members = Membership::new((1..=4).map(NodeId));
        let nodes = (1..=4)
            .map(|i| {
                let id = NodeId(i);
                let mut cfg = Config::new(id);
                cfg.checkpoint_interval = 2;
                cfg.log_window = 4;
                cfg.request_timeout = Duration::from_millis(500);
                cfg.status_interval = Duration::from_millis(50);
                let crypto = Crypto {
                    signer: Arc::new(HashSigner(id)),
                    verifier: Arc::new(HashVerifier),
                    requests: Arc::new(TrustedClients),
                };
                let pbft = Pbft::new(cfg, members.clone(), Recovered::default(), crypto, Instant::ZERO).unwrap();
                Replica::new(pbft, KvStore::new(), ReplicaConfig::default())
            })
            .collect();
        Net { nodes, now: Instant::ZERO, wire: VecDeque::new(), replies: BTreeMap::new(), cut: None }
    }

    fn step(&mut self) {
        let now = self.now;
        for (i, n) in self.nodes.iter_mut().enumerate() {
            while let Some(out) = n.poll_output() {
                match out {
                    ReplicaOutput::Send { to, message } => self.wire.push_back((NodeId(i as u64 + 1), to, message)),
                    ReplicaOutput::Persist(b) => n.persisted(now, b.id),
                    ReplicaOutput::Reply { request, result, .. } => {
                        self.replies.insert((i, request), result);
                    }
                    _ => {}
                }
            }
        }
        if let Some((from, to, m)) = self.wire.pop_front() {
            if self.cut.is_none_or(|c| c != from && c != to) {
                self.nodes[to.0 as usize - 1].handle_message(now, from, m);
            }
            return;
        }
        self.now = self.nodes.iter().filter_map(Node::poll_timeout).min().unwrap_or(now).max(now);
        let now = self.now;
        for n in &mut self.nodes {
            if n.poll_timeout().is_some_and(|t| t <= now) {
                n.handle_timeout(now);
            }
        }
    }

    fn run_until(&mut self, what: &str, cond: impl Fn(&Net) -> bool) {
        let end = self.now + Duration::from_secs(20);
        while !cond(self) {
            assert!(self.now < end, "timed out: {what}");
            self.step();
        }
    }

    /// A client broadcasts `request` in `session` to every replica.
    fn request(&mut self, id: u64, session: Option<Session>, request: &KvRequest) {
        let now = self.now;
        for n in &mut self.nodes {
            n.request(now, RequestId(id), session, request.clone());
        }
    }

    fn answered(&self, id: u64, by: &[usize]) -> bool {
        by.iter().all(|&i| self.replies.contains_key(&(i, RequestId(id))))
    }
}

fn put(k: &str, v: &str) -> KvRequest {
    KvRequest::Put { key: Bytes::from(k.to_owned()), value: Bytes::from(v.to_owned()), prev_kv: false }
}

#[test]
fn every_replica_answers_by_session_and_reads_match() {
    let mut net = Net::new();
    assert_eq!(net.nodes[0].protocol().client_rule(), ballot_core::ClientRule::Matching { writes: 2, reads: 3 });
    for seq in 1..=5u64 {
        net.request(seq, Some(Session { client: 7 + seq, seq: 1 }), &put(&format!("k{seq}"), "v"));
        net.run_until("a write answered by all four", |n| n.answered(seq, &[0, 1, 2, 3]));
        let answers: Vec<_> = (0..4).map(|i| net.replies[&(i, RequestId(seq))].clone()).collect();
        assert!(answers.iter().all(|a| *a == answers[0] && a.is_ok()), "{answers:?}");
    }
    // The read-only optimisation: every replica answers from its executed state.
    let get = KvRequest::Get { key: Bytes::from_static(b"k3"), consistency: Consistency::Linearizable };
    net.request(100, None, &get);
    net.run_until("a read answered by all four", |n| n.answered(100, &[0, 1, 2, 3]));
    let reads: Vec<_> = (0..4).map(|i| net.replies[&(i, RequestId(100))].clone()).collect();
    assert!(reads.iter().all(|r| *r == reads[0]));
    assert!(matches!(&reads[0], Ok(KvResponse::Get { kv: Some(kv), .. }) if kv.value == "v"));
    // Checkpoints were taken of the real service state and became stable.
    for n in &net.nodes {
        assert!(n.protocol().stable_checkpoint().seq >= 4, "{:?}", n.protocol());
        assert_eq!(n.digest(), net.nodes[0].digest());
    }
}

#[test]
fn lagging_replica_service_is_restored_by_state_transfer() {
    let mut net = Net::new();
    net.cut = Some(NodeId(4));
    for seq in 1..=12u64 {
        net.request(seq, Some(Session { client: 9 + seq % 3, seq }), &put(&format!("a{seq}"), "x"));
        net.run_until("a write answered by three", |n| n.answered(seq, &[0, 1, 2]));
    }
    assert_eq!(net.nodes[3].applied(), 0);
    net.cut = None;
    let target = net.nodes[0].applied();
    net.run_until("n4 catches up", |n| n.nodes[3].applied() >= target);
    assert_eq!(net.nodes[3].digest(), net.nodes[0].digest(), "n4's service state equals the others'");
}
