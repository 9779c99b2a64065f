//! The driver in process: three replicas on an in-memory network with in-memory stores,
//! running the real Raft and Multi-Paxos state machines and the real key-value service.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ballot_core::service::{Consistency, Session};
use ballot_core::{Consensus, MemNetwork, MemStore, Membership, NodeId, Protocol, Recovered, SeededRng, Transport};
use ballot_kv::{KvRequest, KvResponse, KvStore};
use ballot_node::{DriverConfig, Node, NodeHandle, NodeParts, ReplicaConfig};
use ballot_wire::{ClientError, Codec};
use bytes::Bytes;

struct Cluster {
    net: MemNetwork,
    kind: Consensus,
    nodes: HashMap<NodeId, Node<KvStore>>,
    raft_stores: HashMap<NodeId, MemStore<ballot_raft::Entry, ballot_raft::HardState>>,
    paxos_stores: HashMap<NodeId, MemStore<ballot_paxos::Entry, ballot_paxos::HardState>>,
}

fn ids() -> Vec<NodeId> {
    (1..=3).map(NodeId).collect()
}

fn parts<P: Protocol>(
    consensus: Consensus,
    id: NodeId,
    protocol: P,
    store: impl ballot_core::LogStore<P::Entry, P::HardState> + 'static,
    net: &MemNetwork,
) -> NodeParts<P, KvStore, impl ballot_core::LogStore<P::Entry, P::HardState> + 'static> {
    let transport: Arc<dyn Transport> = Arc::new(net.join(id));
    let replica = ReplicaConfig {
        request_timeout: Duration::from_secs(3),
        snapshot_every: 50,
        client_addrs: ids().into_iter().map(|i| (i, format!("node-{}", i.get()))).collect(),
        ..ReplicaConfig::default()
    };
    NodeParts {
        config: DriverConfig::default(),
        replica,
        protocol,
        service: KvStore::new(),
        transport,
        store,
        consensus,
        codec: Codec::default(),
    }
}

impl Cluster {
    fn new(kind: Consensus) -> Self {
        let mut c = Cluster {
            net: MemNetwork::new(4096, 4 * 1024 * 1024),
            kind,
            nodes: HashMap::new(),
            raft_stores: HashMap::new(),
            paxos_stores: HashMap::new(),
        };
        for id in ids() {
            c.start(id);
        }
        c
    }

    fn start(&mut self, id: NodeId) {
        let membership = Membership::new(ids());
        let rng = SeededRng::new(id.get() * 7919 + 17);
        let node = match self.kind {
            Consensus::Raft => {
                let mut store = self.raft_stores.entry(id).or_default().clone();
                let recovered: Recovered<_, _> = ballot_core::LogStore::recover(&mut store).unwrap();
                let mut config = ballot_raft::Config::new(id);
                config.election.timeout_min = Duration::from_millis(150);
                config.election.timeout_max = Duration::from_millis(300);
                config.election.heartbeat_interval = Duration::from_millis(30);
                let raft =
                    ballot_raft::Raft::new(config, membership, recovered, rng, ballot_core::Instant::ZERO).unwrap();
                Node::start(parts(Consensus::Raft, id, raft, store, &self.net)).unwrap()
            }
            Consensus::MultiPaxos => {
                let mut store = self.paxos_stores.entry(id).or_default().clone();
                let recovered: Recovered<_, _> = ballot_core::LogStore::recover(&mut store).unwrap();
                let mut config = ballot_paxos::Config::new(id);
                config.election.timeout_min = Duration::from_millis(150);
                config.election.timeout_max = Duration::from_millis(300);
                config.election.heartbeat_interval = Duration::from_millis(30);
                let paxos =
                    ballot_paxos::MultiPaxos::new(config, membership, recovered, rng, ballot_core::Instant::ZERO)
                        .unwrap();
                Node::start(parts(Consensus::MultiPaxos, id, paxos, store, &self.net)).unwrap()
            }
            // Its replicas sign with keys from certificates: crates/pbft-auth/tests hosts it.
            Consensus::Pbft => panic!("these in-process tests run the crash-fault protocols"),
        };
        self.nodes.insert(id, node);
    }

    fn handle(&self, id: NodeId) -> NodeHandle<KvStore> {
        self.nodes[&id].handle()
    }

    /// Waits until every running node names the same leader, which knows it leads.
    async fn leader(&self) -> NodeId {
        for _ in 0..300 {
            let views: Vec<Option<NodeId>> = self.nodes.values().map(|n| n.handle().leader()).collect();
            if let Some(Some(l)) = views.first()
                && views.iter().all(|v| *v == Some(*l))
                && self.nodes.get(l).is_some_and(|n| n.handle().is_leader())
            {
                return *l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no leader agreed on");
    }

    async fn stop(&mut self, id: NodeId) {
        let node = self.nodes.remove(&id).expect("running");
        node.shutdown().await.unwrap();
    }
}

fn put(key: &str, value: &str) -> KvRequest {
    KvRequest::Put { key: Bytes::from(key.to_owned()), value: Bytes::from(value.to_owned()), prev_kv: false }
}

fn get(key: &str, consistency: Consistency) -> KvRequest {
    KvRequest::Get { key: Bytes::from(key.to_owned()), consistency }
}

async fn value(node: &NodeHandle<KvStore>, key: &str, consistency: Consistency) -> Option<Bytes> {
    match node.request(None, get(key, consistency)).await.unwrap() {
        KvResponse::Get { kv, .. } => kv.map(|kv| kv.value),
        other => panic!("unexpected {other:?}"),
    }
}

async fn writes_reads_and_failover(kind: Consensus) {
    let mut cluster = Cluster::new(kind);
    let leader = cluster.leader().await;
    let lh = cluster.handle(leader);
    let follower = *ids().iter().find(|&&i| i != leader).unwrap();
    let fh = cluster.handle(follower);

    // Writes go through the leader; a follower names it.
    let err = fh.request(None, put("k", "v")).await.unwrap_err();
    assert_eq!(
        err,
        ClientError::NotLeader { leader: Some(leader), leader_addr: Some(format!("node-{}", leader.get())) },
        "{kind:?}"
    );
    for i in 0..120 {
        lh.request(None, put(&format!("k{i}"), &i.to_string())).await.unwrap();
    }
    // A linearizable read at a follower sees the latest write: Raft forwards the
    // ReadIndex to the leader; Multi-Paxos answers "not leader", and clients follow that.
    match fh.request(None, get("k119", Consistency::Linearizable)).await {
        Ok(KvResponse::Get { kv, .. }) => assert_eq!(kv.map(|kv| kv.value), Some(Bytes::from("119")), "{kind:?}"),
        Err(ClientError::NotLeader { leader: Some(l), .. }) => {
            assert_eq!(l, leader);
            assert_eq!(value(&lh, "k119", Consistency::Linearizable).await, Some(Bytes::from("119")), "{kind:?}");
        }
        other => panic!("{kind:?}: unexpected {other:?}"),
    }

    // A write retried in the same session applies once.
    let session = Some(Session { client: 42, seq: 1 });
    let first = lh.request(session, put("once", "1")).await.unwrap();
    let again = lh.request(session, put("once", "1")).await.unwrap();
    assert_eq!(first, again, "{kind:?}: the retry gets the first reply");
    let KvResponse::Get { kv: Some(kv), .. } = lh.request(None, get("once", Consistency::Linearizable)).await.unwrap()
    else {
        panic!("missing")
    };
    assert_eq!(kv.version, 1, "{kind:?}: applied exactly once");

    // The leader stops; the others elect a new one and keep every write.
    cluster.stop(leader).await;
    let new = cluster.leader().await;
    assert_ne!(new, leader);
    let nh = cluster.handle(new);
    nh.request(None, put("after", "failover")).await.unwrap();
    for i in [0, 57, 119] {
        assert_eq!(value(&nh, &format!("k{i}"), Consistency::Linearizable).await, Some(Bytes::from(i.to_string())));
    }

    // The old leader restarts from its store (snapshots were taken every 50 entries) and catches up.
    cluster.start(leader);
    let rh = cluster.handle(leader);
    let mut caught_up = false;
    for _ in 0..200 {
        if value(&rh, "after", Consistency::Serializable).await.is_some() {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(caught_up, "{kind:?}: the restarted node catches up");
    assert_eq!(value(&rh, "k57", Consistency::Serializable).await, Some(Bytes::from("57")));
    let status = rh.status();
    assert!(status.status.snapshot_index > 0, "{kind:?}: snapshots were taken: {status:?}");
    for (_, node) in cluster.nodes.drain() {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_writes_reads_and_failover() {
    writes_reads_and_failover(Consensus::Raft).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipaxos_writes_reads_and_failover() {
    writes_reads_and_failover(Consensus::MultiPaxos).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_and_invalid_requests_get_clear_errors() {
    let cluster = Cluster::new(Consensus::Raft);
    let leader = cluster.handle(cluster.leader().await);
    let big = KvRequest::Put { key: Bytes::from("k"), value: Bytes::from(vec![0u8; 2 << 20]), prev_kv: false };
    assert!(matches!(leader.request(None, big).await, Err(ClientError::TooLarge { .. })));
    let empty = KvRequest::Put { key: Bytes::new(), value: Bytes::from("v"), prev_kv: false };
    assert!(matches!(leader.request(None, empty).await, Err(ClientError::InvalidRequest(_))));
    // Many concurrent writes: each is answered (ok or busy), none hangs.
    let mut tasks = Vec::new();
    for i in 0..2000 {
        let h = leader.clone();
        tasks.push(tokio::spawn(async move { h.request(None, put(&format!("c{i}"), "x")).await }));
    }
    let mut ok = 0;
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(10), t).await.expect("answered in time").unwrap() {
            Ok(_) => ok += 1,
            Err(ClientError::Busy) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(ok > 0);
}
