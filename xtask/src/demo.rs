//! `cargo xtask demo`: a local cluster doing real work, step by step, checking every
//! claim it prints. Exits non-zero if any step fails.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::cluster::{Cli, Teardown, build_bins, target_dir};

fn step(title: &str) {
    println!("\n==> {title}");
}

/// Starts a cluster of `service` in `dir` and waits until every node knows the leader.
fn up(cli: &mut Cli, clusters: &mut Teardown, service: &str, base_port: u16, dir: &Path) -> Result<()> {
    if dir.exists() {
        let _ = std::process::Command::new(&cli.binary).args(["cluster", "down", "--dir"]).arg(dir).output();
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let base = base_port.to_string();
    let dir_s = dir.to_string_lossy().into_owned();
    cli.show(&[
        "cluster",
        "up",
        "--service",
        service,
        "--nodes",
        "3",
        "--base-port",
        &base,
        "--dir",
        &dir_s,
        "--election-timeout-ms",
        "500",
        "--heartbeat-ms",
        "50",
    ])?;
    clusters.cluster_dirs.push(dir.to_owned());
    cli.endpoints = (1..=3).map(|i| format!("127.0.0.1:{}", base_port + i)).collect::<Vec<_>>().join(",");
    cli.cert_dir = dir.join("certs");
    wait_leader(cli, 3, Duration::from_secs(60), None)?;
    Ok(())
}

/// Waits until `count` nodes answer and agree on a leader other than `not` (a node just
/// killed, which the survivors still name until their election timeout); returns it.
fn wait_leader(cli: &Cli, count: usize, timeout: Duration, not: Option<u64>) -> Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let rows = cli.status_rows();
        let leaders: Vec<Option<u64>> =
            rows.iter().filter(|r| r.get("error").is_none()).map(|r| r["leader"].as_u64()).collect();
        if leaders.len() >= count && leaders.iter().all(|l| l.is_some() && *l == leaders[0] && *l != not) {
            return Ok(leaders[0].expect("checked"));
        }
        if Instant::now() >= deadline {
            let other = not.map(|n| format!(" other than n{n}")).unwrap_or_default();
            bail!("no leader{other} agreed by {count} nodes within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn leader_of(cli: &Cli) -> Result<u64> {
    wait_leader(cli, 2, Duration::from_secs(30), None)
}

/// Lines of a child's stdout, as they come.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The ports the demo's clusters use above `base`: each listens on `b+1..=b+3` and
/// serves metrics on `b+101..=b+103`, for `b` = `base`, `base+200`, `base+400`.
pub fn ports(base: u16) -> impl Iterator<Item = u16> {
    [0, 200, 400].into_iter().flat_map(move |c| (1..=3).flat_map(move |i| [base + c + i, base + c + 100 + i]))
}

/// Runs the demo with its clusters on the ports above `base` (see [`ports`]).
pub fn demo(base: u16) -> Result<()> {
    let started = Instant::now();
    step("building the binaries (the first build, RocksDB included: about 25 minutes on two cores)");
    let bin_dir = build_bins()?;
    let root = target_dir()?.join("ballot-demo");
    let mut cli = Cli::new(&bin_dir);
    let mut clusters = Teardown::new(&cli.binary);

    // 1. The database.
    step("starting a 3-node database cluster (ballot-kvd on Raft, QUIC with mutual TLS, RocksDB)");
    let kv_dir = root.join("kv");
    up(&mut cli, &mut clusters, "kv", base, &kv_dir)?;
    cli.show(&["status"])?;

    step("writing and reading through the CLI");
    cli.show(&["kv", "put", "greeting", "hello, ballot"])?;
    let got = cli.show(&["kv", "get", "greeting"])?;
    ensure!(got.contains("hello, ballot"), "the value read back is not the value written");

    step("a writer runs while the leader is killed with SIGKILL");
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
        let cmd_cli = cli.clone();
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let (key, value) = (format!("demo/{i:05}"), format!("value-{i}"));
                if cmd_cli.output(&["kv", "put", &key, &value, "--timeout", "10s"]).is_ok_and(|o| o.status.success()) {
                    acked.lock().expect("not poisoned").insert(key, value);
                }
                i += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let old = leader_of(&cli)?;
    let before = acked.lock().expect("not poisoned").len();
    println!("{before} writes acknowledged so far; killing the leader n{old} with SIGKILL");
    let dir_s = kv_dir.to_string_lossy().into_owned();
    let killed = Instant::now();
    cli.show(&["cluster", "kill", &old.to_string(), "--dir", &dir_s])?;
    let new = wait_leader(&cli, 2, Duration::from_secs(30), Some(old))?;
    let elected_after = killed.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    writer.join().map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    let acked = acked.lock().expect("not poisoned").clone();
    ensure!(acked.len() > before, "no write was acknowledged after the failover");

    step(&format!("the new leader is n{new}, seen {elected_after:.1?} after the kill"));
    let _ = cli.show(&["status"]);

    step(&format!("every acknowledged write is readable ({} writes)", acked.len()));
    let page = cli.json(&["kv", "range", "demo/", "--limit", "0"])?;
    let stored: BTreeMap<String, String> = page["kvs"]
        .as_array()
        .context("range output")?
        .iter()
        .map(|kv| {
            (kv["key"].as_str().unwrap_or_default().to_owned(), kv["value"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|(k, v)| stored.get(*k) != Some(v)).map(|(k, _)| k).collect();
    ensure!(missing.is_empty(), "acknowledged writes missing after the failover: {missing:?}");
    println!(
        "all {} acknowledged writes are there ({} keys stored: a write whose reply was lost may also have landed)",
        acked.len(),
        stored.len()
    );

    step(&format!("restarting n{old}: it recovers from RocksDB and catches up"));
    cli.show(&["cluster", "start", &old.to_string(), "--dir", &dir_s])?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = cli.status_rows();
        let applied: Vec<u64> = rows.iter().filter_map(|r| r["applied_index"].as_u64()).collect();
        if applied.len() == 3 && applied.iter().all(|a| *a == applied[0]) {
            break;
        }
        ensure!(Instant::now() < deadline, "n{old} did not catch up within 60 s");
        std::thread::sleep(Duration::from_millis(300));
    }
    cli.show(&["status"])?;
    println!("n{old} has applied as far as the others");
    let metrics_addr = |cluster: u16| format!("127.0.0.1:{}", base + cluster + 101);

    // 2. The configuration service: a watch across failover.
    step("configuration service: a watch survives the failover of the leader");
    let cfg_dir = root.join("config");
    up(&mut cli, &mut clusters, "config", base + 200, &cfg_dir)?;
    let start_rev =
        cli.json(&["config", "set", "app", "feature.flag", "off"])?["revision"].as_u64().context("revision")? + 1;
    let mut watch = cli
        .command([
            "--output",
            "json",
            "config",
            "watch",
            "app",
            "",
            "--prefix",
            "--from",
            &start_rev.to_string(),
            "--count",
            "20",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let events = lines(&mut watch);
    clusters.children.push(watch);
    for i in 0..10 {
        cli.json(&["config", "set", "app", &format!("setting{i:02}"), &i.to_string()])?;
    }
    let old = leader_of(&cli)?;
    let cfg_dir_s = cfg_dir.to_string_lossy().into_owned();
    println!("killing the config leader n{old} mid-stream");
    cli.show(&["cluster", "kill", &old.to_string(), "--dir", &cfg_dir_s])?;
    for i in 10..20 {
        cli.json(&["config", "set", "app", &format!("setting{i:02}"), &i.to_string(), "--timeout", "20s"])?;
    }
    let mut revisions = Vec::new();
    while revisions.len() < 20 {
        let line = events.recv_timeout(Duration::from_secs(30)).context("the watch stopped delivering events")?;
        let event: Value = serde_json::from_str(&line)?;
        println!("  watch: revision {} {} {}", event["revision"], event["kind"], event["key"]);
        revisions.push(event["revision"].as_u64().context("revision")?);
    }
    let expected: Vec<u64> = (start_rev..start_rev + 20).collect();
    ensure!(revisions == expected, "the watch saw {revisions:?}, expected {expected:?}");
    println!("the watch saw all 20 changes exactly once, in order, across the failover");

    // 3. The election service: fencing tokens.
    step("election service: a campaigner's process dies, the next is elected with a larger fencing token");
    let el_dir = root.join("election");
    up(&mut cli, &mut clusters, "election", base + 400, &el_dir)?;
    let spawn = |value: &str| {
        cli.command(["--output", "json", "election", "campaign", "jobs", value, "--ttl", "2s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
    };
    let mut alpha = spawn("alpha")?;
    let alpha_lines = lines(&mut alpha);
    let a: Value =
        serde_json::from_str(&alpha_lines.recv_timeout(Duration::from_secs(30)).context("alpha was not elected")?)?;
    println!("alpha elected with fencing token {}", a["token"]);
    let mut beta = spawn("beta")?;
    let beta_lines = lines(&mut beta);
    clusters.children.push(beta);
    std::thread::sleep(Duration::from_secs(1));
    println!("killing alpha's process with SIGKILL; its lease (TTL 2 s) must expire first");
    let killed = Instant::now();
    alpha.kill()?;
    alpha.wait()?;
    let b: Value =
        serde_json::from_str(&beta_lines.recv_timeout(Duration::from_secs(30)).context("beta was not elected")?)?;
    println!("beta elected {:.1?} later with fencing token {}", killed.elapsed(), b["token"]);
    ensure!(b["token"].as_u64() > a["token"].as_u64(), "fencing tokens must increase");
    cli.show(&["election", "leader", "jobs"])?;

    step("metrics (Prometheus text format)");
    let metrics = http_get(&metrics_addr(0), "/metrics").unwrap_or_default();
    for line in metrics.lines().filter(|l| l.starts_with("ballot_server_") && !l.contains("_bucket")).take(8) {
        println!("  {line}");
    }
    println!(
        "scrape: http://{}/metrics (kv), http://{}/metrics (config), http://{}/metrics (election)",
        metrics_addr(0),
        metrics_addr(200),
        metrics_addr(400)
    );

    step("tearing down");
    drop(clusters);
    println!("\ndemo finished in {:.0?}: every step checked", started.elapsed());
    Ok(())
}

fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    Ok(raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}
