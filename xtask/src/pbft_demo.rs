//! `cargo xtask demo --pbft`: a 4-replica PBFT database whose first primary lies, keeping
//! every write its clients were told succeeded. Checks every claim it prints; exits
//! non-zero if any step fails.
//!
//! A replica can lie only in a build with the server's test-only `byzantine` feature: the
//! demo builds `ballot-kvd` that way (the build the lying-replica end-to-end test uses),
//! keeps that binary apart, and puts the default binaries back. All four replicas run the
//! test build; only replica 1 is started with `--byzantine`, the others are honest.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::cluster::{Cli, Teardown, build_bins, metrics_text, samples, target_dir};
use crate::{cargo, run};

/// What replica 1 does (see `ballot_server::byzantine::Lie`).
const LIES: &str = "alter-requests,wrong-digests";

/// Keys written while the liar is primary.
const WRITES: usize = 20;

fn step(title: &str) {
    println!("\n==> {title}");
}

/// The ports the demo's cluster uses above `base`: `base+1..=base+4` and their metrics
/// 100 above.
pub fn ports(base: u16) -> impl Iterator<Item = u16> {
    (1..=4).flat_map(move |i| [base + i, base + 100 + i])
}

/// Waits until the replicas `ids` name one primary; returns it and the view.
fn wait_primary(cli: &Cli, ids: &[u64], timeout: Duration) -> Result<(u64, u64)> {
    let deadline = Instant::now() + timeout;
    loop {
        let rows = cli.status_rows();
        let seen: Vec<(u64, Option<u64>, Option<u64>)> = rows
            .iter()
            .filter(|r| r.get("error").is_none())
            .map(|r| (r["id"].as_u64().unwrap_or(0), r["leader"].as_u64(), r["term"].as_u64()))
            .collect();
        let of_ids: Vec<_> = seen.iter().filter(|(id, ..)| ids.contains(id)).collect();
        if of_ids.len() == ids.len()
            && let Some(&&(_, Some(primary), Some(view))) = of_ids.first()
            && of_ids.iter().all(|(_, l, v)| *l == Some(primary) && *v == Some(view))
        {
            return Ok((primary, view));
        }
        if Instant::now() >= deadline {
            bail!("replicas {ids:?} did not agree on a primary within {timeout:?}; they said {seen:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Builds `ballot-kvd` with the `byzantine` feature and copies it to `dir`, then builds
/// the default binaries; returns their directory.
fn build(dir: &Path) -> Result<std::path::PathBuf> {
    step("building ballot-kvd with the test-only `byzantine` feature (the lying-replica test's build)");
    // Before the first cargo build, as `build_bins` does: on a fresh machine RocksDB's
    // build needs libclang and a C++ compiler (installed as root, else the command).
    crate::prereqs::ensure(&[crate::prereqs::Need::Build])?;
    let mut c = cargo();
    // Exactly the build of `cargo xtask test`'s lying-replica step, so that cargo reuses
    // it (and RocksDB's build) rather than compiling anything twice.
    c.args(["test", "--workspace", "--locked", "--features", "ballot-kvd/byzantine", "--test", "e2e", "--no-run"]);
    run(c)?;
    std::fs::create_dir_all(dir)?;
    let built = target_dir()?.join("debug").join("ballot-kvd");
    std::fs::copy(&built, dir.join("ballot-kvd")).with_context(|| format!("copying {}", built.display()))?;
    step("building the default binaries again (they cannot lie)");
    build_bins()
}

/// Runs the demo with its cluster on the ports above `base` (see [`ports`]).
/// With `no_build`, uses the binaries already there.
pub fn demo(base: u16, no_build: bool) -> Result<()> {
    let started = Instant::now();
    let root = target_dir()?.join("ballot-demo").join("pbft");
    let liar_bins = root.join("test-build");
    let bin_dir = if no_build {
        ensure!(
            liar_bins.join("ballot-kvd").is_file(),
            "no test build in {}: run `cargo xtask demo --pbft` once without --no-build",
            liar_bins.display()
        );
        target_dir()?.join("debug")
    } else {
        build(&liar_bins)?
    };
    let mut cli = Cli::new(&bin_dir);
    let mut clusters = Teardown::new(&cli.binary);
    let dir = root.join("cluster");
    if dir.exists() {
        let _ = std::process::Command::new(&cli.binary).args(["cluster", "down", "--dir"]).arg(&dir).output();
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }

    step(&format!(
        "starting 4 PBFT replicas (f = 1); replica 1, the first primary, lies ({LIES}): it alters one byte of \
         every client request it orders, keeping the client's signature, and its PREPAREs, COMMITs and \
         CHECKPOINTs name wrong digests"
    ));
    let (base_s, dir_s, bins_s) =
        (base.to_string(), dir.to_string_lossy().into_owned(), liar_bins.to_string_lossy().into_owned());
    let liar = format!("1=--byzantine {LIES}");
    cli.show(&[
        "--consensus",
        "pbft",
        "cluster",
        "up",
        "--service",
        "kv",
        "--nodes",
        "4",
        "--base-port",
        &base_s,
        "--dir",
        &dir_s,
        "--bin-dir",
        &bins_s,
        "--node-args",
        &liar,
    ])?;
    clusters.cluster_dirs.push(dir.clone());
    cli.endpoints = (1..=4).map(|i| format!("127.0.0.1:{}", base + i)).collect::<Vec<_>>().join(",");
    cli.cert_dir = dir.join("certs");
    cli.consensus = Some("pbft");
    let log = std::fs::read_to_string(dir.join("n1.log")).unwrap_or_default();
    ensure!(log.contains("LIES"), "replica 1 did not start as a liar; see {}", dir.join("n1.log").display());
    let (primary, view) = wait_primary(&cli, &[1, 2, 3, 4], Duration::from_secs(60))?;
    println!("the replicas agree: view {view}, primary n{primary}");

    step(&format!(
        "writing {WRITES} keys: every client signs its request and sends it to all four replicas; a write \
         succeeds with f+1 = 2 matching answers"
    ));
    let first = Instant::now();
    let mut first_took = Duration::ZERO;
    let mut written = BTreeMap::new();
    for i in 0..WRITES {
        let (key, value) = (format!("ledger/{i:02}"), format!("amount-{}", 100 + i));
        let args = ["kv", "put", &key, &value, "--timeout", "20s"];
        if i == 0 {
            cli.show(&args)?;
        } else {
            let out = cli.output(&args)?;
            ensure!(out.status.success(), "`ballot kv put {key}` failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        if i == 0 {
            first_took = first.elapsed();
        }
        written.insert(key, value);
    }
    println!(
        "{WRITES} writes acknowledged in {:.1?}; the first took {first_took:.1?}: it waited for the correct replicas \
         to time the liar out",
        first.elapsed()
    );

    step("the correct replicas refused the liar's PRE-PREPAREs and replaced it (a view change)");
    cli.show(&["status"])?;
    let (primary, view) = wait_primary(&cli, &[2, 3, 4], Duration::from_secs(30))?;
    ensure!(primary != 1, "the correct replicas still follow the liar n1 (view {view})");
    println!("n2, n3 and n4 agree on view {view} with primary n{primary}; n1 no longer leads");

    step("what n2 refused, from its metrics (ballot_server_refused_peer_messages_total)");
    let text = metrics_text(base + 102).context("reading n2's metrics")?;
    let refused: Vec<(&str, f64)> =
        samples(&text, "ballot_server_refused_peer_messages_total").filter(|(_, n)| *n > 0.0).collect();
    for (labels, n) in &refused {
        println!("  {n:>5.0}  {labels}");
    }
    ensure!(
        refused.iter().any(|(labels, _)| labels.contains("without a valid client signature")),
        "n2 refused no PRE-PREPARE with an altered request: {refused:?}"
    );

    step("reading every key back: a read needs 2f+1 = 3 matching answers from distinct replicas");
    for (key, value) in &written {
        let got = cli.json(&["kv", "get", key])?;
        let stored = got["kvs"][0]["value"].as_str().unwrap_or_default();
        ensure!(stored == value, "{key}: read {got}, wrote {value}: the liar corrupted a write");
    }
    println!("all {WRITES} keys read back exactly as written: nothing the liar altered was executed");
    cli.show(&["kv", "get", "ledger/00"])?;

    drop(clusters);
    step(&format!("done in {:.1?}; the cluster is stopped", started.elapsed()));
    Ok(())
}
