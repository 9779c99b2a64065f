//! End to end: real `ballot-chaind` processes on loopback, real QUIC, real RocksDB, real
//! SIGKILLs. Every test bounds itself in time and stops its processes when done.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ballot_chain_node::protocol::{Message, PROTOCOL_VERSION, Version};
use ballot_chain_node::{ChainClient, ChainSpec, ChainStore};
use ballot_localcluster::{Cluster, ClusterSpec, Service, free_port_base, serial, test_dir};
use ballot_pow::Block;
use bytes::Bytes;

const BIN: &str = env!("CARGO_BIN_EXE_ballot-chaind");

fn client(addr: SocketAddr) -> ChainClient {
    ChainClient::new(addr.to_string(), Duration::from_secs(2))
}

/// Polls `f` every 100 ms until it returns `Some`, failing with `what` after `timeout`.
fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn height(addr: SocketAddr) -> Option<u64> {
    client(addr).tip().ok().map(|t| t.height)
}

fn tip(addr: SocketAddr) -> Option<String> {
    client(addr).tip().ok().map(|t| t.hash)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One `ballot-chaind` process driven by hand (flags per node), killed when dropped.
struct Proc {
    dir: PathBuf,
    listen: SocketAddr,
    http: SocketAddr,
    args: Vec<String>,
    child: Option<Child>,
}

impl Proc {
    fn new(dir: &Path, name: &str, port: u16, args: &[&str]) -> Proc {
        Proc {
            dir: dir.join(name),
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            http: SocketAddr::from(([127, 0, 0, 1], port + 100)),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        }
    }

    fn start(&mut self) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.with_extension("log")).unwrap();
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("--listen")
            .arg(self.listen.to_string())
            .arg("--metrics-listen")
            .arg(self.http.to_string())
            .args(&self.args)
            .env_remove("BALLOT_CONFIG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let http = self.http;
        wait_for(Duration::from_secs(30), "the node to serve HTTP", || height(http));
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Re-validates the stopped node's store.
    fn verify_offline(&self) -> ballot_chain_node::VerifyReport {
        let store = ChainStore::open_existing(&self.dir.join("db")).expect("open the stopped node's store");
        store.verify_stored().expect("verify")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Fast-mining flags: blocks at the proof-of-work limit (about 2^10 hashes), no
/// retarget, so one node makes hundreds of blocks a second.
const FAST: &[&str] = &["--mine", "--block-interval", "1", "--retarget-interval", "100000", "--pow-limit-bits", "10"];
/// The same chain without mining.
const FAST_CHAIN: &[&str] = &["--block-interval", "1", "--retarget-interval", "100000", "--pow-limit-bits", "10"];

#[test]
fn five_mining_processes_converge_on_one_tip() {
    let _serial = serial();
    let dir = test_dir(env!("CARGO_TARGET_TMPDIR"), "chain-converge").unwrap();
    let mut spec = ClusterSpec::new(Service::Chain, 5, dir, BIN);
    spec.extra_args =
        ["--block-interval", "1", "--retarget-interval", "5", "--pow-limit-bits", "16"].map(String::from).to_vec();
    let cluster = Cluster::start(spec).expect("start the network");
    let apis: Vec<SocketAddr> = cluster.spec().ids().iter().map(|&id| cluster.spec().metrics(id)).collect();
    // Every node learns the others by address gossip (each was told of one seed).
    wait_for(Duration::from_secs(60), "every node to have 2+ peers", || {
        apis.iter().all(|&a| client(a).peers().is_ok_and(|p| p.len() >= 2)).then_some(())
    });
    // Mining never stops, so "converged" is a moment where all five name the same tip,
    // at height 10 or more, on a chain with blocks of at least two miners (they compete).
    let miners_of = |height: u64| -> Option<std::collections::HashSet<String>> {
        (1..=height).map(|h| client(apis[0]).block(&h.to_string()).ok().map(|b| b.txs[0].to.clone())).collect()
    };
    let agreed = wait_for(Duration::from_secs(120), "all five nodes on one tip at height >= 10", || {
        let tips: Vec<Option<(u64, String)>> =
            apis.iter().map(|&a| client(a).tip().ok().map(|t| (t.height, t.hash))).collect();
        let first = tips[0].clone()?;
        let same = first.0 >= 10 && tips.iter().all(|t| t.as_ref() == Some(&first));
        (same && miners_of(first.0)?.len() >= 2).then_some(first)
    });
    // The agreed chain re-validates on every node.
    for &a in &apis {
        let report = client(a).verify().expect("verify");
        assert!(report.problems.is_empty(), "{a}: {:?}", report.problems);
    }
    let m = cluster.metrics_text(cluster.spec().ids()[0]).unwrap();
    assert!(metric(&m, "ballot_chain_height") >= agreed.0 as f64);
    assert!(metric(&m, "ballot_chain_blocks_connected_total") >= agreed.0 as f64);
    // The hashrate is sampled every 2 s.
    wait_for(Duration::from_secs(10), "a hashrate above 0 in /metrics", || {
        let m = cluster.metrics_text(cluster.spec().ids()[0]).ok()?;
        (metric(&m, "ballot_chain_hashrate_hashes_per_second") > 0.0).then_some(())
    });
}

#[test]
fn a_node_killed_mid_sync_resumes_and_catches_up() {
    let _serial = serial();
    let dir = test_dir(env!("CARGO_TARGET_TMPDIR"), "chain-sync-kill").unwrap();
    let base = free_port_base(2);
    let mut miner = Proc::new(&dir, "a", base + 1, FAST);
    miner.start();
    wait_for(Duration::from_secs(60), "the miner to reach height 600", || height(miner.http).filter(|h| *h >= 600));
    // Restart the source without mining: a fixed chain to sync.
    miner.kill();
    miner.args = FAST_CHAIN.iter().map(|s| (*s).to_owned()).collect();
    miner.start();
    let target = height(miner.http).unwrap();

    let seed = miner.listen.to_string();
    let mut args = FAST_CHAIN.to_vec();
    args.extend(["--seeds", &seed]);
    let mut syncer = Proc::new(&dir, "b", base + 2, &args);
    syncer.start();
    let reached = wait_for(Duration::from_secs(60), "the syncing node to pass height 50", || {
        height(syncer.http).filter(|h| *h >= 50)
    });
    syncer.kill();
    let report = syncer.verify_offline();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.height >= reached, "the store kept what it had connected");
    syncer.start();
    let resumed = height(syncer.http).unwrap();
    assert!(resumed >= reached, "restarted at {resumed}, had {reached}");
    wait_for(Duration::from_secs(60), "the restarted node to catch up", || {
        (tip(syncer.http) == tip(miner.http) && height(syncer.http) == Some(target)).then_some(())
    });
    let m = ballot_localcluster::http_get(syncer.http, "/readyz", Duration::from_secs(2)).unwrap();
    assert_eq!(m.0, 200, "ready once caught up: {}", m.1);
}

#[test]
fn a_node_killed_repeatedly_while_connecting_blocks_restarts_on_a_valid_tip() {
    let _serial = serial();
    let dir = test_dir(env!("CARGO_TARGET_TMPDIR"), "chain-kill-loop").unwrap();
    let mut node = Proc::new(&dir, "a", free_port_base(1) + 1, FAST);
    let mut last = 0;
    for round in 0..6u64 {
        node.start();
        // Connect blocks (hundreds a second) for a varying while, then SIGKILL.
        std::thread::sleep(Duration::from_millis(300 + 170 * round));
        node.kill();
        let report = node.verify_offline();
        assert!(report.problems.is_empty(), "round {round}: {:?}", report.problems);
        assert!(report.height >= last, "round {round}: the tip went back from {last} to {}", report.height);
        last = report.height;
    }
    assert!(last > 0, "blocks were connected");
}

#[test]
fn a_peer_sending_invalid_blocks_or_bad_frames_is_banned() {
    let _serial = serial();
    let dir = test_dir(env!("CARGO_TARGET_TMPDIR"), "chain-ban").unwrap();
    let base = free_port_base(1);
    let mut honest = Proc::new(&dir, "honest", base + 1, FAST_CHAIN);
    honest.start();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        // A peer (in this process, on the raw peer protocol) that completes the
        // handshake and then pushes a block whose hash misses its target.
        let spec = ChainSpec { block_interval_secs: 1, retarget_interval: 100_000, pow_limit_bits: 10, chain_id: 1 };
        let (endpoint, liar_key) = raw_peer(6);
        let (mut tx, _rx) = endpoint.connect(honest.listen).await.expect("connect").split();
        let params = spec.params();
        let genesis = params.genesis.hash();
        let version = Version {
            protocol: PROTOCOL_VERSION,
            chain: spec.digest(),
            genesis,
            listen_port: endpoint.local_addr().port(),
            height: 0,
            agent: "liar".into(),
        };
        let mut block = Block::new(genesis, params.genesis.header.time + 1, params.genesis.header.bits, Vec::new());
        while ballot_pow::check_proof_of_work(&block.hash(), block.header.bits, &params.pow_limit).is_ok() {
            block.header.nonce += 1;
        }
        for msg in [Message::Version(version), Message::Block(Box::new(block))] {
            tx.send(msg.encode().unwrap()).await.expect("send");
        }
        let http = honest.http;
        tokio::task::spawn_blocking(move || {
            wait_for(Duration::from_secs(30), "the liar to be banned", || {
                client(http)
                    .bans()
                    .ok()?
                    .iter()
                    .any(|b| b.target == liar_key && b.reason.contains("invalid block"))
                    .then_some(())
            });
        })
        .await
        .unwrap();
        endpoint.close().await;

        // A peer speaking garbage: an undecodable message (twice), then a frame over
        // the size limit.
        for (seed, payloads) in [(7u8, vec![vec![0xff; 9], vec![200, 1]]), (8u8, vec![vec![0u8; 3 << 20]])] {
            let (endpoint, key) = raw_peer(seed);
            let (mut tx, _rx) = endpoint.connect(honest.listen).await.expect("connect").split();
            for p in payloads {
                let _ = tx.send(Bytes::from(p)).await;
            }
            tokio::task::spawn_blocking(move || {
                wait_for(Duration::from_secs(20), "the garbage peer to be banned", || {
                    client(http).bans().ok()?.iter().any(|b| b.target == key).then_some(())
                });
            })
            .await
            .unwrap();
            endpoint.close().await;
        }
    });
    let m = ballot_localcluster::http_get(honest.http, "/metrics", Duration::from_secs(2)).unwrap().1;
    assert!(metric(&m, "ballot_chain_peers_banned_total") >= 3.0, "three bans counted");
    assert!(height(honest.http).is_some(), "the honest node still serves");
}

#[test]
fn a_partition_forks_the_network_and_the_heal_reorganises_the_minority() {
    let _serial = serial();
    let dir = test_dir(env!("CARGO_TARGET_TMPDIR"), "chain-partition").unwrap();
    let mut spec = ClusterSpec::new(Service::Chain, 3, dir, BIN);
    spec.extra_args =
        ["--block-interval", "1", "--retarget-interval", "5", "--pow-limit-bits", "16"].map(String::from).to_vec();
    let cluster = Cluster::start(spec).expect("start the network");
    let s = cluster.spec();
    let (n1, n2, n3) = (s.metrics(s.ids()[0]), s.metrics(s.ids()[1]), s.metrics(s.ids()[2]));
    let (l1, l2, l3) = (s.listen(s.ids()[0]), s.listen(s.ids()[1]), s.listen(s.ids()[2]));
    wait_for(Duration::from_secs(60), "all three connected and at height 3", || {
        [n1, n2, n3]
            .iter()
            .all(|&a| client(a).peers().is_ok_and(|p| p.len() == 2) && height(a) >= Some(3))
            .then_some(())
    });
    // Partition {1} | {2, 3}: each side bans the other's addresses (Bitcoin's setban).
    let cut = [(n1, l2), (n1, l3), (n2, l1), (n3, l1)];
    for (api, peer) in cut {
        client(api).ban(&peer.to_string(), 3600).expect("ban");
    }
    let start = (height(n1).unwrap(), height(n2).unwrap());
    wait_for(Duration::from_secs(90), "both sides to mine 3 blocks on different tips", || {
        let (h1, h2) = (height(n1)?, height(n2)?);
        (h1 >= start.0 + 3 && h2 >= start.1 + 3 && tip(n1) != tip(n2)).then_some(())
    });
    let reorgs_before: f64 =
        s.ids().iter().map(|&id| metric(&cluster.metrics_text(id).unwrap(), "ballot_chain_reorgs_total")).sum();
    for (api, peer) in cut {
        client(api).unban(&peer.to_string()).expect("unban");
    }
    wait_for(Duration::from_secs(90), "the network to agree on one tip again", || {
        let t = tip(n1)?;
        (tip(n2)? == t && tip(n3)? == t).then_some(())
    });
    let reorgs_after: f64 =
        s.ids().iter().map(|&id| metric(&cluster.metrics_text(id).unwrap(), "ballot_chain_reorgs_total")).sum();
    assert!(reorgs_after > reorgs_before, "the losing side reorganised ({reorgs_before} -> {reorgs_after})");
    for a in [n1, n2, n3] {
        assert!(client(a).verify().unwrap().problems.is_empty());
    }
}

/// A bare peer endpoint with the key made from `seed`, and that key as text.
fn raw_peer(seed: u8) -> (ballot_quic::open::OpenEndpoint, String) {
    let endpoint = ballot_quic::open::OpenEndpoint::bind(ballot_quic::open::OpenConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        [seed; 32],
        ballot_chain_node::protocol::ALPN,
    ))
    .unwrap();
    (endpoint, ballot_ledger::Keypair::from_seed(&[seed; 32]).unwrap().public().to_string())
}
