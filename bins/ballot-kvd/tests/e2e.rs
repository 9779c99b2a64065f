//! End to end: real `ballot-kvd` processes on loopback, real QUIC with mutual TLS, real
//! RocksDB, real SIGKILLs. Every test runs once per consensus protocol.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ballot_client::{Error, KvClient};
use ballot_core::NodeId;
use ballot_core::service::Consistency;
use ballot_localcluster::{Cluster, ClusterSpec, Consensus, Service};
use ballot_wire::ClientError;
use bytes::Bytes;
use tokio::sync::Mutex;

/// Minimum election timeout used by these clusters (the maximum is twice this).
const ELECTION_MS: u64 = 500;

fn spec(name: &str, consensus: Consensus, nodes: usize) -> ClusterSpec {
    let dir = ballot_localcluster::test_dir(env!("CARGO_TARGET_TMPDIR"), &format!("{name}-{consensus}")).unwrap();
    let mut spec = ClusterSpec::new(Service::Kv, nodes, dir, env!("CARGO_BIN_EXE_ballot-kvd"));
    spec.consensus = consensus;
    spec.election_timeout_ms = ELECTION_MS;
    spec.heartbeat_ms = 50;
    spec
}

fn start(spec: ClusterSpec) -> Cluster {
    let mut cluster = Cluster::start(spec).expect("start the cluster");
    cluster.wait_ready(Duration::from_secs(30)).expect("cluster becomes ready");
    cluster
}

async fn client(cluster: &Cluster) -> KvClient {
    KvClient::connect(cluster.spec().client_config().unwrap()).await.unwrap()
}

async fn leader(kv: &KvClient) -> NodeId {
    for _ in 0..100 {
        for (_, status) in kv.client().statuses().await {
            if let Ok(s) = status
                && s.status.role == ballot_core::Role::Leader
            {
                return s.status.id;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader found");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Leader SIGKILL under concurrent writes: no acknowledged write is lost, and the
/// cluster serves writes again within two election timeouts.
#[test]
fn leader_sigkill_under_concurrent_writes() {
    let _serial = ballot_localcluster::serial();
    for consensus in Consensus::ALL {
        let mut cluster = start(spec("sigkill", consensus, 3));
        runtime().block_on(async {
            let kv = client(&cluster).await;
            let old = leader(&kv).await;
            let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
            let stop = Arc::new(AtomicBool::new(false));
            let mut writers = Vec::new();
            for w in 0..4 {
                let kv = client(&cluster).await;
                let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
                writers.push(tokio::spawn(async move {
                    let mut i = 0u64;
                    let mut successes_after: Vec<Instant> = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let (key, value) = (format!("w{w}-{i:05}"), format!("v{i}"));
                        if kv.put(key.clone(), value.clone()).await.is_ok() {
                            acked.lock().await.insert(key, value);
                            successes_after.push(Instant::now());
                        }
                        i += 1;
                    }
                    successes_after
                }));
            }
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let before_kill = acked.lock().await.len();
            assert!(before_kill > 0, "{consensus}: writes must succeed before the kill");
            let killed_at = Instant::now();
            cluster.kill(old);
            tokio::time::sleep(Duration::from_secs(4)).await;
            stop.store(true, Ordering::Relaxed);
            let mut first_after_kill = None::<Instant>;
            for w in writers {
                for t in w.await.unwrap() {
                    if t > killed_at && first_after_kill.is_none_or(|f| t < f) {
                        first_after_kill = Some(t);
                    }
                }
            }
            let gap = first_after_kill.expect("writes resume after the leader is killed") - killed_at;
            // Two election timeouts (the maximum randomized timeout is 2 x ELECTION_MS),
            // plus the client's 500 ms attempt timeout on the dead node.
            let bound = Duration::from_millis(2 * 2 * ELECTION_MS + 500);
            eprintln!("{consensus}: first acknowledged write {gap:?} after the leader was killed (bound {bound:?})");
            assert!(gap <= bound, "{consensus}: the cluster took {gap:?} to serve writes again (bound {bound:?})");

            // The killed node comes back and catches up; every acknowledged write is there.
            cluster.restart(old).unwrap();
            cluster.wait_ready(Duration::from_secs(30)).unwrap();
            let acked = acked.lock().await.clone();
            assert!(acked.len() > before_kill, "{consensus}: writes must continue after the kill");
            for (key, value) in &acked {
                let got = kv.get(key.clone()).await.unwrap();
                assert_eq!(
                    got.map(|kv| kv.value),
                    Some(Bytes::from(value.clone())),
                    "{consensus}: acknowledged {key} lost"
                );
            }
            // The restarted node has caught up: its local (serializable) state has the data.
            let last = acked.keys().last().unwrap().clone();
            let endpoint = cluster.spec().listen(old).to_string();
            let mut caught_up = false;
            for _ in 0..100 {
                let r = kv
                    .client()
                    .call_at(
                        &endpoint,
                        ballot_kv::KvRequest::Get { key: last.clone().into(), consistency: Consistency::Serializable },
                    )
                    .await;
                if matches!(r, Ok(ballot_kv::KvResponse::Get { kv: Some(_), .. })) {
                    caught_up = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(caught_up, "{consensus}: the restarted node must catch up");
            eprintln!("{consensus}: {} acknowledged writes, all readable", acked.len());
        });
    }
}

/// Full-cluster restart (every node SIGKILLed, with snapshots and compaction along the
/// way): all data comes back from disk.
#[test]
fn full_cluster_restart_recovers_everything() {
    let _serial = ballot_localcluster::serial();
    for consensus in Consensus::ALL {
        let mut s = spec("restart", consensus, 3);
        s.extra_args = vec!["--snapshot-every".into(), "40".into()];
        let mut cluster = start(s);
        runtime().block_on(async {
            let kv = client(&cluster).await;
            for i in 0..150 {
                kv.put(format!("k{i:03}"), format!("v{i}")).await.unwrap();
            }
            kv.delete("k007").await.unwrap();
        });
        for id in cluster.spec().ids() {
            cluster.kill(id);
        }
        for id in cluster.spec().ids() {
            cluster.restart(id).unwrap();
        }
        cluster.wait_ready(Duration::from_secs(30)).unwrap();
        runtime().block_on(async {
            let kv = client(&cluster).await;
            let page = kv.range("k", None, 0, Consistency::Linearizable).await.unwrap();
            assert_eq!(page.kvs.len(), 149, "{consensus}: every key but the deleted one is back");
            assert!(kv.get("k007").await.unwrap().is_none(), "{consensus}: the delete survived too");
            assert_eq!(kv.get("k149").await.unwrap().map(|kv| kv.value), Some(Bytes::from("v149")));
            // Revisions continue where they were.
            let rev = kv.put("after", "restart").await.unwrap().revision;
            assert_eq!(rev, 152, "{consensus}: 150 puts + 1 delete, then this put");
        });
    }
}

/// With two of five nodes down the majority continues; with three down the remaining
/// minority refuses writes with a clear error; when they return the cluster continues.
#[test]
fn minority_refuses_writes_majority_continues() {
    let _serial = ballot_localcluster::serial();
    for consensus in Consensus::ALL {
        let mut cluster = start(spec("minority", consensus, 5));
        runtime().block_on(async {
            let kv = client(&cluster).await;
            kv.put("before", "1").await.unwrap();
            cluster.kill(NodeId(4));
            cluster.kill(NodeId(5));
            kv.put("majority", "2").await.expect("three of five must still accept writes");
            // Node 1 learns the commit with the next heartbeat; wait until it has applied it,
            // so that what it serves locally once cut off is known.
            let endpoint = cluster.spec().listen(NodeId(1)).to_string();
            let serializable_get = || {
                kv.client().call_at(
                    &endpoint,
                    ballot_kv::KvRequest::Get { key: "majority".into(), consistency: Consistency::Serializable },
                )
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !matches!(serializable_get().await, Ok(ballot_kv::KvResponse::Get { kv: Some(_), .. })) {
                assert!(std::time::Instant::now() < deadline, "{consensus}: node 1 never applied the write");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            cluster.kill(NodeId(3));
            let mut config = cluster.spec().client_config().unwrap();
            config.deadline = Duration::from_secs(3);
            let minority = KvClient::connect(config).await.unwrap();
            let err = minority.put("minority", "3").await.expect_err("two of five must not accept writes");
            let msg = err.to_string();
            eprintln!("{consensus}: minority write refused: {msg}");
            // The first attempt may have reached the old leader's log before it lost its
            // quorum: then "outcome unknown" is the truthful answer.
            assert!(
                matches!(
                    err,
                    Error::OutcomeUnknown { .. }
                        | Error::Server(ClientError::Unavailable(_) | ClientError::NotLeader { .. })
                ),
                "{consensus}: expected a clear error, got {err:?}"
            );
            // A serializable read is still served by a minority node, from its own state.
            let r = serializable_get().await.unwrap();
            assert!(matches!(r, ballot_kv::KvResponse::Get { kv: Some(_), .. }), "{consensus}: {r:?}");
            for id in [3, 4, 5] {
                cluster.restart(NodeId(id)).unwrap();
            }
            cluster.wait_ready(Duration::from_secs(30)).unwrap();
            kv.put("healed", "4").await.unwrap();
            // The refused write's outcome was indeterminate: a first attempt may have reached
            // the old leader's log before it lost its quorum, and a healed cluster may commit
            // it (as etcd may after a timeout). It is there whole, or not at all.
            let minority_value = kv.get("minority").await.unwrap().map(|k| k.value);
            assert!(matches!(minority_value.as_deref(), None | Some(b"3")), "{consensus}: {minority_value:?}");
            assert_eq!(kv.get("majority").await.unwrap().map(|k| k.value), Some(Bytes::from("2")));
        });
    }
}

/// Bad input gets clear errors and the cluster keeps serving: an oversized value, a
/// malformed request, a client with a certificate from another CA.
#[test]
fn bad_input_gets_clear_errors() {
    let _serial = ballot_localcluster::serial();
    let cluster = start(spec("badinput", Consensus::Raft, 3));
    runtime().block_on(async {
        let kv = client(&cluster).await;
        let err = kv.put("big", vec![0u8; 2 * 1024 * 1024]).await.unwrap_err();
        assert!(matches!(err, Error::Server(ClientError::TooLarge { .. })), "{err:?}");
        assert!(err.to_string().contains("exceeds the limit"), "{err}");

        // A malformed request: garbage bytes where a request belongs.
        let tls = ballot_quic::TlsConfig::load_client(&cluster.spec().cert_dir()).unwrap();
        let connector =
            ballot_quic::ClientConnector::new(&tls, "ballot", ballot_quic::ClientOptions::default()).unwrap();
        let session = connector.connect(cluster.spec().listen(NodeId(1))).await.unwrap();
        let reply = session.request(Bytes::from_static(b"\xff\xfe not a request")).await.unwrap();
        let response: ballot_wire::Response<ballot_wire::ClientReply<ballot_kv::KvResponse, ballot_kv::KvEvent>> =
            ballot_wire::decode(&reply).unwrap();
        assert!(matches!(response.result, Err(ClientError::InvalidRequest(_))), "{response:?}");

        // A client whose certificate comes from another CA is refused with a clear error.
        let other = tempdir();
        ballot_quic::generate_dev_certs(&other, &[NodeId(1)], &["127.0.0.1".into()]).unwrap();
        let mut config = cluster.spec().client_config().unwrap();
        config.tls = ballot_quic::TlsConfig::load_client(&other).unwrap();
        config.deadline = Duration::from_secs(2);
        let stranger = KvClient::connect(config).await.unwrap();
        let err = stranger.put("x", "y").await.unwrap_err();
        assert!(err.to_string().contains("certificate") || err.to_string().contains("CA"), "{err}");

        // And the cluster still serves.
        kv.put("still", "serving").await.unwrap();
        assert_eq!(kv.get("still").await.unwrap().map(|k| k.value), Some(Bytes::from("serving")));
    });
}

/// A write whose attempt reached the leader and was never answered, and which no retry
/// settled, is reported as "outcome unknown" — not as a later attempt's "not leader".
/// A write no node could have taken is not.
#[test]
fn a_write_lost_in_flight_is_outcome_unknown() {
    let _serial = ballot_localcluster::serial();
    for consensus in Consensus::ALL {
        let mut cluster = start(spec("unknown", consensus, 3));
        runtime().block_on(async {
            let mut config = cluster.spec().client_config().unwrap();
            config.deadline = Duration::from_secs(3);
            let kv = KvClient::connect(config.clone()).await.unwrap();
            let old = leader(&kv).await;
            kv.put("warm", "up").await.unwrap();
            let follower = cluster.spec().ids().into_iter().find(|&id| id != old).unwrap();
            // The leader keeps the client's connection but answers nothing; the last node
            // alone has no quorum.
            cluster.pause(old);
            cluster.pause(follower);
            let err = kv.put("k", "v").await.expect_err("no quorum answers");
            assert!(matches!(err, Error::OutcomeUnknown { .. }), "{consensus}: {err}");
            assert!(err.to_string().contains("may or may not"), "{err}");
            cluster.resume(old);
            cluster.resume(follower);
        });
        cluster.wait_ready(Duration::from_secs(30)).unwrap();
        runtime().block_on(async {
            let mut config = cluster.spec().client_config().unwrap();
            config.deadline = Duration::from_secs(3);
            let old = leader(&KvClient::connect(config.clone()).await.unwrap()).await;
            let follower = cluster.spec().ids().into_iter().find(|&id| id != old).unwrap();
            cluster.kill(old);
            cluster.kill(follower);
            // A fresh client: nothing reaches a node that could apply it.
            let kv = KvClient::connect(config).await.unwrap();
            let err = kv.put("k2", "v").await.expect_err("no quorum");
            assert!(!err.is_outcome_unknown(), "{consensus}: refused everywhere, yet reported {err}");
        });
    }
}

fn tempdir() -> std::path::PathBuf {
    ballot_localcluster::test_dir(env!("CARGO_TARGET_TMPDIR"), "other-ca").unwrap()
}
