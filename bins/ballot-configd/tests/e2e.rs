//! End to end: `ballot-configd` processes on loopback. A watch survives the failover of
//! the leader (and of the node it is connected to) with no gap and no duplicate.

use std::time::Duration;

use ballot_client::ConfigClient;
use ballot_core::{NodeId, Role};
use ballot_localcluster::{Cluster, ClusterSpec, Consensus, Service};
use ballot_wire::ClientError;

fn start(name: &str, consensus: Consensus) -> Cluster {
    let dir = ballot_localcluster::test_dir(env!("CARGO_TARGET_TMPDIR"), &format!("{name}-{consensus}")).unwrap();
    let mut spec = ClusterSpec::new(Service::Config, 3, dir, env!("CARGO_BIN_EXE_ballot-configd"));
    spec.consensus = consensus;
    spec.election_timeout_ms = 500;
    let mut cluster = Cluster::start(spec).unwrap();
    cluster.wait_ready(Duration::from_secs(30)).unwrap();
    cluster
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn leader(cfg: &ConfigClient) -> NodeId {
    for _ in 0..100 {
        for (_, s) in cfg.client().statuses().await {
            if let Ok(s) = s
                && s.status.role == Role::Leader
            {
                return s.status.id;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader");
}

#[test]
fn watch_survives_leader_failover_without_gap_or_duplicate() {
    let _serial = ballot_localcluster::serial();
    for consensus in Consensus::ALL {
        let mut cluster = start("watch-failover", consensus);
        runtime().block_on(async {
            let cfg = ConfigClient::connect(cluster.spec().client_config().unwrap()).await.unwrap();
            let first = cfg.set("app", "seed", "0").await.unwrap().revision;
            // The watcher uses its own client. The test kills the node serving the watch
            // (cutting its stream) and the leader (a failover), the same node or in turn.
            let watcher = ConfigClient::connect(cluster.spec().client_config().unwrap()).await.unwrap();
            let mut watch = watcher.watch("app", "", true, Some(first + 1)).await.unwrap();
            let total = 120u64;
            // The writer pauses after 30 changes until the watch's node is killed, so that
            // the rest are written after the kill and the watch must reconnect for them
            // (unpaused, a slow test could kill the node after the last change arrived).
            let (resume, resumed) = tokio::sync::oneshot::channel::<()>();
            let writer = {
                let cfg = cfg.clone();
                let mut resumed = Some(resumed);
                tokio::spawn(async move {
                    let mut acked = Vec::new();
                    for i in 0..total {
                        if i == 30
                            && let Some(rx) = resumed.take()
                        {
                            rx.await.unwrap();
                        }
                        // Retried within a session: applied exactly once even across failover.
                        let rev = cfg.set("app", &format!("key{i:03}"), i.to_string()).await.unwrap().revision;
                        acked.push(rev);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    acked
                })
            };
            let mut events = Vec::new();
            while events.len() < 30 {
                events.push(watch.next().await.unwrap());
            }
            let serving = watch.node().unwrap();
            let watched = (1..=3).map(NodeId).find(|&id| cluster.spec().listen(id) == serving).unwrap();
            let old = leader(&cfg).await;
            cluster.kill(watched);
            resume.send(()).unwrap();
            if watched != old {
                while events.len() < 60 {
                    events.push(watch.next().await.unwrap());
                }
                cluster.restart(watched).unwrap();
                cluster.kill(old);
            }
            while (events.len() as u64) < total {
                let e = tokio::time::timeout(Duration::from_secs(20), watch.next())
                    .await
                    .expect("the watch must keep delivering after failover")
                    .unwrap();
                events.push(e);
            }
            let acked = writer.await.unwrap();
            let revisions: Vec<u64> = events.iter().map(|e| e.revision).collect();
            let expected: Vec<u64> = (first + 1..=first + total).collect();
            assert_eq!(revisions, expected, "{consensus}: every revision once, in order, across the failover");
            assert_eq!(acked, expected, "{consensus}: each write applied exactly once");
            for (i, e) in events.iter().enumerate() {
                assert_eq!(e.key, format!("key{i:03}"));
            }
            eprintln!(
                "{consensus}: watch delivered {} events across the failover with {} reconnects",
                events.len(),
                watch.reconnects()
            );
            assert!(watch.reconnects() >= 1, "{consensus}: the watch must have reconnected after its node died");
        });
    }
}

#[test]
fn watch_from_a_compacted_revision_gets_a_clear_error() {
    let _serial = ballot_localcluster::serial();
    let cluster = start("watch-compacted", Consensus::Raft);
    runtime().block_on(async {
        let cfg = ConfigClient::connect(cluster.spec().client_config().unwrap()).await.unwrap();
        for i in 0..10 {
            cfg.set("ns", "k", i.to_string()).await.unwrap();
        }
        let request = ballot_config::ConfigRequest::Compact { revision: 8 };
        cfg.request(request).await.unwrap();
        let err = match cfg.watch("ns", "k", false, Some(2)).await {
            Ok(mut w) => w.next().await.unwrap_err(),
            Err(e) => e,
        };
        assert!(matches!(err, ballot_client::Error::Server(ClientError::Compacted { compact_revision: 8 })), "{err:?}");
        assert!(err.to_string().contains("compacted"), "{err}");
        // From the compaction point on, the history is there.
        let mut w = cfg.watch("ns", "k", false, Some(8)).await.unwrap();
        assert_eq!(w.next().await.unwrap().revision, 8);
    });
}
