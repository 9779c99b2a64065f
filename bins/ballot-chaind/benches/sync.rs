//! Initial sync throughput between two local `ballot-chaind` processes: blocks and
//! transfers per second that a fresh node downloads, validates (proof of work, Merkle
//! root, Ed25519 signatures, balances) and stores, from one peer over QUIC.
//!
//! `cargo bench -p ballot-chaind --bench sync [-- BLOCKS TRANSFERS_PER_BLOCK]`
//! (default 200 blocks of 500 transfers). Builds the source chain with the library,
//! starts a node on it and a second, empty node seeded with the first, and times the
//! second from its first answer until its tip equals the first's.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ballot_chain_node::{ChainClient, ChainSpec, ChainStore};
use ballot_core::Instant as ChainInstant;
use ballot_ledger::{Coinbase, Keypair, MempoolConfig, Transaction, Transfer};
use ballot_pow::{Block, Chain, ChainOutput};

const BIN: &str = env!("CARGO_BIN_EXE_ballot-chaind");
const CHAIN_FLAGS: [&str; 6] = ["--block-interval", "1", "--retarget-interval", "100000", "--pow-limit-bits", "8"];

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path, port: u16, seeds: Option<SocketAddr>) -> Killed {
    let mut c = Command::new(BIN);
    c.arg("--data-dir")
        .arg(dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{}", port + 100))
        .args(CHAIN_FLAGS)
        .arg("--log")
        .arg("warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(s) = seeds {
        c.arg("--seeds").arg(s.to_string());
    }
    Killed(c.spawn().expect("start ballot-chaind"))
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let blocks = args.first().copied().unwrap_or(200);
    let per_block = args.get(1).copied().unwrap_or(500);
    let dir = tempfile::tempdir().expect("temporary directory");
    let spec = ChainSpec { chain_id: 1, block_interval_secs: 1, retarget_interval: 100_000, pow_limit_bits: 8 };
    let params = spec.params();
    let maturity = params.ledger.coinbase_maturity;

    // The source chain: coinbases to `rich` until they mature, then blocks of transfers.
    let made = Instant::now();
    let store = ChainStore::open(&dir.path().join("a/db"), &params).expect("store");
    let mut chain = Chain::new(params.clone(), MempoolConfig::default()).expect("chain");
    let rich = Keypair::for_testing(1);
    let mut nonce = 0;
    let mut time = u64::from(ballot_chain_node::params::GENESIS_TIME);
    let mut transfers = 0u64;
    for height in 1..=blocks + maturity {
        time += 1;
        let now = ChainInstant::from_millis(time * 1000);
        let tip = chain.tip().clone();
        let mut txs = Vec::new();
        let mut fees = 0;
        if height > maturity {
            for i in 0..per_block {
                let to = Keypair::for_testing(1000 + i % 50).public();
                let t = Transfer { chain_id: 1, from: rich.public(), to, amount: 1, fee: 200, nonce, memo: vec![] }
                    .sign(&rich)
                    .expect("sign");
                nonce += 1;
                fees += 200;
                txs.push(Transaction::Transfer(t));
            }
            transfers += per_block;
        }
        let coinbase = Coinbase { height, to: rich.public(), amount: params.ledger.subsidy(height) + fees };
        txs.insert(0, coinbase.into());
        let mut block = Block::new(tip.hash, time as u32, chain.next_bits(&tip), txs);
        assert!(ballot_pow::mine(&mut block.header).expect("mine"));
        chain.accept_block(now, block).expect("accept");
        let outs: Vec<ChainOutput> = std::iter::from_fn(|| chain.poll_output()).collect();
        store.write(&outs).expect("write");
    }
    let target = chain.height();
    drop(store);
    eprintln!("built a chain of {target} blocks, {transfers} transfers in {:.1?}", made.elapsed());

    let base = ballot_localcluster_free_port();
    let _a = start(&dir.path().join("a"), base + 1, None);
    let a_api = ChainClient::new(format!("127.0.0.1:{}", base + 101), Duration::from_secs(2));
    wait(Duration::from_secs(120), || a_api.tip().is_ok_and(|t| t.height == target));
    let _b = start(&dir.path().join("b"), base + 2, Some(SocketAddr::from(([127, 0, 0, 1], base + 1))));
    let b_api = ChainClient::new(format!("127.0.0.1:{}", base + 102), Duration::from_secs(2));
    wait(Duration::from_secs(60), || b_api.tip().is_ok());
    let started = Instant::now();
    wait(Duration::from_secs(600), || b_api.tip().is_ok_and(|t| t.height == target));
    let secs = started.elapsed().as_secs_f64();
    println!(
        "initial sync of {target} blocks ({transfers} transfers, {per_block} per block) between two local processes: \
         {secs:.2} s, {:.1} blocks/s, {:.0} transfers/s",
        target as f64 / secs,
        transfers as f64 / secs
    );
}

fn wait(timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ballot_localcluster_free_port() -> u16 {
    ballot_localcluster::free_port_base(2)
}
