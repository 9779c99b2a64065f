//! Signed requests through the real replica host: four `Replica<Pbft, KvStore>` with
//! Ed25519 replica keys from node certificates and clients signing with theirs. A
//! primary that alters a request or invents a client is refused and replaced; reads can
//! be ordered; unsigned requests get clear errors. Four `Replica<Pbft, ElectionService>`
//! with an agreed clock expire leases in agreed time.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ballot_core::service::{Command, Consistency, Session, StateMachine};
use ballot_core::{Instant, Membership, NodeId, Recovered};
use ballot_election::{ElectionRequest, ElectionResponse, ElectionService, MIN_TTL_MS};
use ballot_kv::{KvRequest, KvResponse, KvStore};
use ballot_pbft::byzantine::Forge;
use ballot_pbft::{AgreedClock, Config, Crypto, Item, Message, Pbft};
use ballot_pbft_auth::{ClientAuth, ClusterKeys, NodeSigner, RequestSigner};
use ballot_replica::{Replica, ReplicaConfig, ReplicaOutput, RequestId};
use ballot_wire::{ClientError, Codec};
use bytes::Bytes;
use common::Ca;

type Node<S> = Replica<Pbft, S>;
type Reply<S> = Result<<S as StateMachine>::Response, ClientError>;

/// The Unix time (ms) of the replicas' clocks at `Instant::ZERO`, with an agreed clock.
const EPOCH_MS: u64 = 1_800_000_000_000;

/// How a lying primary rewrites the requests of its PRE-PREPAREs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lie {
    /// Changes the value of every put, keeping the client's certificate and signature.
    AlterValue,
    /// Replaces every request by one signed by a client of another CA.
    InventClient,
}

struct Net<S: StateMachine> {
    nodes: Vec<Node<S>>,
    now: Instant,
    wire: VecDeque<(NodeId, NodeId, Message)>,
    replies: BTreeMap<(usize, RequestId), Reply<S>>,
    client: RequestSigner,
    stranger: RequestSigner,
    liar: Option<(NodeId, Lie, Forge)>,
    codec: Codec,
}

impl Net<KvStore> {
    fn new(liar: Option<(u64, Lie)>) -> Self {
        Self::with_service(liar, KvStore::new)
    }
}

impl<S: StateMachine> Net<S> {
    /// Four replicas of `service`, with an agreed clock if the service wants one.
    fn with_service(liar: Option<(u64, Lie)>, service: impl Fn() -> S) -> Self {
        let ca = Ca::new();
        let name = |id: NodeId| format!("n{}.ballot", id.get());
        let certs: Vec<_> = (1..=4).map(|i| ca.issue(&name(NodeId(i)), true)).collect();
        let keys = Arc::new(
            ClusterKeys::from_certificates(
                std::slice::from_ref(&ca.cert),
                (1..=4u64).map(|i| (NodeId(i), certs[i as usize - 1].0.clone())),
                name,
            )
            .unwrap(),
        );
        let auth = Arc::new(ClientAuth::new("ballot", std::slice::from_ref(&ca.cert)).unwrap());
        let members = Membership::new((1..=4).map(NodeId));
        let signer = |i: u64| Arc::new(NodeSigner::new(&certs[i as usize - 1].0, &certs[i as usize - 1].1).unwrap());
        let crypto = |i: u64| Crypto { signer: signer(i), verifier: keys.clone(), requests: auth.clone() };
        let nodes = (1..=4u64)
            .map(|i| {
                let mut cfg = Config::new(NodeId(i));
                cfg.request_timeout = Duration::from_millis(500);
                cfg.status_interval = Duration::from_millis(50);
                cfg.clock = S::wants_agreed_time().then(|| AgreedClock::new(EPOCH_MS));
                let pbft = Pbft::new(cfg, members.clone(), Recovered::default(), crypto(i), Instant::ZERO).unwrap();
                Replica::new(pbft, service(), ReplicaConfig::default())
            })
            .collect();
        let (client_cert, client_key) = ca.issue("client.ballot", false);
        let other = Ca::new();
        let (stranger_cert, stranger_key) = other.issue("client.ballot", false);
        Net {
            nodes,
            now: Instant::ZERO,
            wire: VecDeque::new(),
            replies: BTreeMap::new(),
            client: RequestSigner::new("ballot", &client_cert, &client_key).unwrap(),
            stranger: RequestSigner::new("ballot", &stranger_cert, &stranger_key).unwrap(),
            liar: liar.map(|(i, lie)| (NodeId(i), lie, Forge::new(NodeId(i), signer(i)))),
            codec: Codec::default(),
        }
    }

    /// What the liar sends instead of `m`.
    fn lie(&self, m: Message) -> Message {
        let Some((_, lie, forge)) = &self.liar else { return m };
        let Message::PrePrepare { pre_prepare, batch } = &m else { return m };
        let batch = batch
            .iter()
            .map(|item| match item {
                Item::Request(bytes) => Item::Request(self.rewrite(bytes, *lie)),
                other => other.clone(),
            })
            .collect();
        forge.resign(&Message::PrePrepare { pre_prepare: pre_prepare.clone(), batch })
    }

    fn rewrite(&self, signed: &Bytes, lie: Lie) -> Bytes {
        let parts = ballot_pbft_auth::SignedRequest::parse(signed).unwrap();
        let mut command: Command<KvRequest> = self.codec.decode(parts.body).unwrap();
        if let KvRequest::Put { value, .. } = &mut command.request {
            *value = Bytes::from_static(b"evil");
        }
        let body = self.codec.encode(&command).unwrap();
        match lie {
            Lie::AlterValue => {
                let start = signed.len() - parts.body.len();
                let mut out = signed[..start].to_vec();
                out.extend_from_slice(&body);
                Bytes::from(out)
            }
            Lie::InventClient => self.stranger.sign(&body),
        }
    }

    fn step(&mut self) {
        let now = self.now;
        for i in 0..self.nodes.len() {
            let from = NodeId(i as u64 + 1);
            while let Some(out) = self.nodes[i].poll_output() {
                match out {
                    ReplicaOutput::Send { to, message } => {
                        let message =
                            if self.liar.as_ref().is_some_and(|l| l.0 == from) { self.lie(message) } else { message };
                        self.wire.push_back((from, to, message));
                    }
                    ReplicaOutput::Persist(b) => self.nodes[i].persisted(now, b.id),
                    ReplicaOutput::Reply { request, result, .. } => {
                        self.replies.insert((i, request), result);
                    }
                    _ => {}
                }
            }
        }
        if let Some((from, to, m)) = self.wire.pop_front() {
            self.nodes[to.0 as usize - 1].handle_message(now, from, m);
            return;
        }
        self.now = self.nodes.iter().filter_map(Node::<S>::poll_timeout).min().unwrap_or(now).max(now);
        let now = self.now;
        for n in &mut self.nodes {
            if n.poll_timeout().is_some_and(|t| t <= now) {
                n.handle_timeout(now);
            }
        }
    }

    fn run_until(&mut self, what: &str, cond: impl Fn(&Self) -> bool) {
        let end = self.now + Duration::from_secs(20);
        while !cond(self) {
            assert!(self.now < end, "timed out: {what}");
            self.step();
        }
    }

    /// The client signs `request` in `session` and sends it to every replica.
    fn send(&mut self, id: u64, session: Option<Session>, request: S::Request, ordered: bool) {
        let body = self.codec.encode(&Command { session, request }).unwrap();
        let signed = self.client.sign(&body);
        let now = self.now;
        for n in &mut self.nodes {
            if ordered {
                n.request_ordered(now, RequestId(id), signed.clone());
            } else {
                n.request_command(now, RequestId(id), signed.clone());
            }
        }
    }

    fn reply(&self, node: usize, id: u64) -> Option<&Reply<S>> {
        self.replies.get(&(node, RequestId(id)))
    }

    fn answered(&self, id: u64, by: &[usize]) -> bool {
        by.iter().all(|&i| self.reply(i, id).is_some())
    }

    /// The answer every replica gave to request `id`, once all four gave the same one.
    fn agreed_reply(&mut self, id: u64) -> Reply<S>
    where
        S::Response: PartialEq,
    {
        self.run_until("an answer from all four", |n| n.answered(id, &[0, 1, 2, 3]));
        let first = self.reply(0, id).unwrap().clone();
        assert!((1..4).all(|i| *self.reply(i, id).unwrap() == first), "replicas answered {id} differently");
        first
    }
}

impl Net<KvStore> {
    fn get(&self, node: usize, key: &str) -> Option<Bytes> {
        match self.nodes[node]
            .service()
            .query(&KvRequest::Get { key: key.to_owned().into(), consistency: Consistency::Serializable })
        {
            KvResponse::Get { kv, .. } => kv.map(|kv| kv.value),
            other => panic!("{other:?}"),
        }
    }
}

fn put(k: &str, v: &str) -> KvRequest {
    KvRequest::Put { key: Bytes::from(k.to_owned()), value: Bytes::from(v.to_owned()), prev_kv: false }
}

fn get(k: &str) -> KvRequest {
    KvRequest::Get { key: Bytes::from(k.to_owned()), consistency: Consistency::Linearizable }
}

#[test]
fn signed_requests_are_ordered_and_every_replica_answers_alike() {
    let mut net = Net::new(None);
    for seq in 1..=3u64 {
        net.send(seq, Some(Session { client: 7, seq }), put(&format!("k{seq}"), "v"), false);
        net.run_until("a write answered by all four", |n| n.answered(seq, &[0, 1, 2, 3]));
        let first = net.reply(0, seq).unwrap().clone();
        assert!(matches!(first, Ok(KvResponse::Put { .. })), "{first:?}");
        assert!((1..4).all(|i| *net.reply(i, seq).unwrap() == first));
    }
    // An ordered read is applied at one log position everywhere: the same answer.
    net.send(10, Some(Session { client: 7, seq: 4 }), get("k2"), true);
    net.run_until("an ordered read answered by all four", |n| n.answered(10, &[0, 1, 2, 3]));
    let read = net.reply(0, 10).unwrap().clone();
    assert!(matches!(&read, Ok(KvResponse::Get { kv: Some(kv), .. }) if kv.value == "v"), "{read:?}");
    assert!((1..4).all(|i| *net.reply(i, 10).unwrap() == read));
    let applied = net.nodes[0].applied();
    assert_eq!(applied, 4, "three puts and the ordered read took a log index each");
    // A fast read is answered at once from the executed state.
    net.send(11, None, get("k3"), false);
    net.run_until("a fast read", |n| n.answered(11, &[0, 1, 2, 3]));
    assert_eq!(net.nodes[0].applied(), applied, "not ordered");
}

#[test]
fn unsigned_requests_get_clear_errors() {
    let mut net = Net::new(None);
    let codec = Codec::default();
    let unsigned =
        codec.encode(&Command { session: Some(Session { client: 1, seq: 1 }), request: put("a", "1") }).unwrap();
    let now = net.now;
    net.nodes[0].request_command(now, RequestId(1), unsigned);
    net.step();
    match net.reply(0, 1) {
        Some(Err(ClientError::InvalidRequest(msg))) => {
            assert!(msg.contains("not a signed request") && msg.contains("--consensus pbft"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(net.nodes[0].protocol().pending_requests(), 0, "nothing was proposed");
}

/// Leases under PBFT: grants, keep-alives and TTL queries are ordered and answered alike
/// by every replica from agreed time; a lease nobody keeps alive expires at the same
/// index everywhere and its election passes to the next candidate.
#[test]
fn election_leases_are_kept_alive_and_expire_in_agreed_time() {
    let mut net = Net::with_service(None, ElectionService::new);
    let mut seq = 0;
    let mut call = |net: &mut Net<ElectionService>, request: ElectionRequest| {
        seq += 1;
        net.send(seq, Some(Session { client: 7, seq }), request, false);
        net.agreed_reply(seq).expect("answered")
    };
    let grant = ElectionRequest::Grant { ttl_ms: MIN_TTL_MS };
    let ElectionResponse::Granted { lease: a, .. } = call(&mut net, grant.clone()) else { panic!("no lease") };
    let ElectionResponse::Granted { lease: b, .. } = call(&mut net, grant) else { panic!("no lease") };
    let campaign = |lease| ElectionRequest::Campaign { election: "e".into(), lease, value: Bytes::from_static(b"v") };
    assert!(matches!(call(&mut net, campaign(a)), ElectionResponse::Elected { .. }));
    assert!(matches!(call(&mut net, campaign(b)), ElectionResponse::Queued { .. }));
    // Only b is kept alive, every 300 ms, for 2 s: a (TTL 1 s) expires meanwhile.
    let start = net.now;
    while net.now < start + Duration::from_secs(2) {
        let reply = call(&mut net, ElectionRequest::KeepAlive { lease: b });
        assert_eq!(reply, ElectionResponse::KeptAlive { lease: b, ttl_ms: MIN_TTL_MS });
        let until = net.now + Duration::from_millis(300);
        net.run_until("300 ms", |n| n.now >= until);
    }
    for node in &net.nodes {
        assert_eq!(node.service().leader("e").map(|l| l.lease), Some(b), "b leads after a expired");
        assert_eq!(node.service().lease_count(), 1);
        assert!(node.service().agreed_time().is_some_and(|t| t >= EPOCH_MS + 1_000));
    }
    assert_eq!(call(&mut net, ElectionRequest::TimeToLive { lease: a }), ElectionResponse::LeaseNotFound { lease: a });
    match call(&mut net, ElectionRequest::TimeToLive { lease: b }) {
        ElectionResponse::TimeToLive { remaining_ms, .. } => assert!(remaining_ms <= MIN_TTL_MS, "{remaining_ms}"),
        other => panic!("{other:?}"),
    }
    let states: Vec<Vec<u8>> = net.nodes.iter().map(|n| n.service().to_snapshot()).collect();
    assert!(states.windows(2).all(|w| w[0] == w[1]), "the replicas' lease states agree");
    // Nobody writes any more: the primary orders time alone once b's deadline is due
    // (the host passes the service's next deadline to the protocol every tick).
    let until = net.now + Duration::from_secs(2);
    net.run_until("2 s without requests", |n| n.now >= until);
    for node in &net.nodes {
        assert_eq!(node.service().lease_count(), 0, "b expired in an idle cluster");
        assert_eq!(node.service().leader("e"), None);
    }
}

#[test]
fn a_primary_that_alters_a_request_is_refused_and_replaced() {
    for lie in [Lie::AlterValue, Lie::InventClient] {
        let mut net = Net::new(Some((1, lie)));
        net.send(1, Some(Session { client: 7, seq: 1 }), put("k", "good"), false);
        net.run_until("the write executes on the three correct replicas", |n| n.answered(1, &[1, 2, 3]));
        for i in 1..4 {
            assert_eq!(net.get(i, "k").as_deref(), Some(&b"good"[..]), "replica {}", i + 1);
            assert!(net.nodes[i].protocol().view() >= 1, "the lying primary was replaced");
            let refused = net.nodes[i].protocol().rejections();
            assert!(
                refused.get("pre-prepare carries a request without a valid client signature").is_some_and(|&n| n > 0),
                "{refused:?}"
            );
        }
        assert!(matches!(net.reply(1, 1), Some(Ok(KvResponse::Put { .. }))));
    }
}
