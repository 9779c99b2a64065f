//! `cargo xtask demo --chain`: a 5-node Proof-of-Work network on loopback, checking
//! every claim it prints: transfers confirmed, a partition that forks the network, and
//! the heal that reorganises the minority onto the most-work chain.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::cluster::{Cli, Teardown, build_bins, built_bins, target_dir};

const BASE_PORT: u16 = 7400;
const NODES: u16 = 5;

fn step(title: &str) {
    println!("\n==> {title}");
}

fn api(i: u16) -> String {
    format!("127.0.0.1:{}", BASE_PORT + 100 + i)
}

fn peer(i: u16) -> String {
    format!("127.0.0.1:{}", BASE_PORT + i)
}

/// `ballot chain ARGS --node API --output json`.
fn chain(cli: &Cli, node: u16, args: &[&str]) -> Result<Value> {
    let node = api(node);
    let mut all = vec!["chain", "--node", node.as_str()];
    all.extend_from_slice(args);
    cli.json(&all)
}

fn tip(cli: &Cli, node: u16) -> Option<(u64, String)> {
    let t = chain(cli, node, &["tip"]).ok()?;
    Some((t["height"].as_u64()?, t["hash"].as_str()?.to_owned()))
}

fn wait<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The node's `ballot_chain_reorgs_total` (0 if it does not answer).
fn reorgs(node: u16) -> f64 {
    use std::io::{Read as _, Write as _};
    let text = (|| {
        let mut s = std::net::TcpStream::connect(api(node)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(s, "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", api(node)).ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        Some(text)
    })()
    .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("ballot_chain_reorgs_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

pub fn demo(no_build: bool) -> Result<()> {
    let started = Instant::now();
    let bin_dir = if no_build {
        built_bins()?
    } else {
        step("building the binaries (the first build, RocksDB included: about 25 minutes on two cores)");
        build_bins()?
    };
    let dir = target_dir()?.join("ballot-demo").join("chain");
    let cli = Cli::new(&bin_dir);
    let mut teardown = Teardown::new(&cli.binary);
    if dir.exists() {
        let _ = std::process::Command::new(&cli.binary).args(["cluster", "down", "--dir"]).arg(&dir).output();
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let dir_s = dir.to_string_lossy().into_owned();

    step("starting 5 mining ballot-chaind nodes (each knows one seed; QUIC identities are node keys; RocksDB)");
    let nodes = NODES.to_string();
    let base = BASE_PORT.to_string();
    cli.show(&["cluster", "up", "--service", "chain", "--nodes", &nodes, "--base-port", &base, "--dir", &dir_s])?;
    teardown.cluster_dirs.push(dir.clone());
    wait("every node to find the other four by address gossip", Duration::from_secs(60), || {
        (1..=NODES)
            .all(|i| chain(&cli, i, &["peers"]).ok().and_then(|p| p.as_array().map(Vec::len)).unwrap_or(0) >= 4)
            .then_some(())
    })?;
    cli.show(&["chain", "--node", &api(1), "peers"])?;

    step("waiting for a mining reward to mature (5 blocks)");
    let (rich, key_file) = wait("a node key with spendable coins", Duration::from_secs(120), || {
        (1..=NODES).find_map(|i| {
            let file = dir.join(format!("n{i}")).join("node.key");
            let file = file.to_string_lossy().into_owned();
            let b = chain(&cli, 1, &["balance", &file]).ok()?;
            (b["spendable"].as_u64()? > 10_000_000).then_some((i, file))
        })
    })?;
    cli.show(&["chain", "--node", &api(1), "balance", &key_file])?;

    step(&format!("sending coins from node {rich}'s key to a new key, and waiting for 2 confirmations"));
    let alice = root_file(&dir, "alice.key");
    cli.show(&["chain", "keygen", "--out", &alice])?;
    let sent = cli.show(&[
        "chain",
        "--node",
        &api(2),
        "send",
        "--key",
        &key_file,
        "--to",
        &alice,
        "--amount",
        "1234567",
        "--wait",
        "2",
        "--timeout",
        "120s",
    ])?;
    ensure!(sent.contains("confirmed"), "the transfer was not confirmed");
    let balance = chain(&cli, 3, &["balance", &alice])?;
    ensure!(balance["balance"].as_u64() == Some(1_234_567), "alice's balance on node 3 is {balance}");
    cli.show(&["chain", "--node", &api(3), "balance", &alice])?;
    println!("(node {rich} signed it, node 2 relayed it, a miner confirmed it, node 3 sees it)");

    step("partition: nodes 1-2 | nodes 3-5 (each side bans the other's addresses, like Bitcoin's setban)");
    let (minority, majority) = ([1u16, 2], [3u16, 4, 5]);
    let mut cuts = Vec::new();
    for &a in &minority {
        for &b in &majority {
            cuts.push((a, b));
            cuts.push((b, a));
        }
    }
    for &(at, banned) in &cuts {
        chain(&cli, at, &["ban", &peer(banned), "--seconds", "3600"])?;
    }
    let before = (tip(&cli, 1).context("tip")?.0, tip(&cli, 3).context("tip")?.0);
    let reorgs_before: f64 = (1..=NODES).map(reorgs).sum();
    wait("both sides to mine 2 blocks on different tips", Duration::from_secs(180), || {
        let (a, b) = (tip(&cli, 1)?, tip(&cli, 3)?);
        (a.0 >= before.0 + 2 && b.0 >= before.1 + 2 && a.1 != b.1).then_some(())
    })?;
    for i in 1..=NODES {
        let (h, hash) = tip(&cli, i).context("tip")?;
        println!("  n{i}: height {h} tip {hash}");
    }
    println!("the network has forked");

    step("healing the partition: the side with less work reorganises onto the most-work chain");
    for &(at, banned) in &cuts {
        chain(&cli, at, &["unban", &peer(banned)])?;
    }
    let agreed = wait("all five nodes on one tip", Duration::from_secs(180), || {
        let first = tip(&cli, 1)?;
        (2..=NODES).all(|i| tip(&cli, i).is_some_and(|t| t.1 == first.1)).then_some(first)
    })?;
    let reorgs_after: f64 = (1..=NODES).map(reorgs).sum();
    ensure!(reorgs_after > reorgs_before, "no node reorganised");
    println!(
        "all five nodes at height {} tip {}; reorganisations: {reorgs_before} -> {reorgs_after}",
        agreed.0, agreed.1
    );
    let balance = chain(&cli, 1, &["balance", &alice])?;
    println!("alice's balance after the heal: {}", balance["balance"]);

    step("re-validating the whole chain through node 1");
    cli.show(&["chain", "--node", &api(1), "verify", "--timeout", "60s"])?;

    step("stopping the network");
    drop(teardown);
    println!("\nchain demo finished in {:.0?}", started.elapsed());
    Ok(())
}

fn root_file(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}
