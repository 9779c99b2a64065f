//! Consensus cores side by side, in memory: ballot-raft, raft-rs, ballot-paxos,
//! omnipaxos and ballot-pbft under one harness (see the `ballot_consensus_bench` crate docs for the
//! rules). Prints a Markdown table of medians and the ratios the issues ask for; each run
//! is also logged to stderr.
//!
//! ```sh
//! cargo bench -p ballot-consensus-bench --bench cores
//! cargo bench -p ballot-consensus-bench --bench cores -- --nodes 3 --windows 1024 --reps 5
//! ```
//!
//! Options (lists are comma-separated):
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `--systems` | all five | `ballot-raft,raft-rs,ballot-paxos,omnipaxos,ballot-pbft` |
//! | `--nodes` | `3,5` | replicas |
//! | `--sizes` | `64,1024` | command bytes |
//! | `--windows` | `1,64,1024` | commands outstanding at the leader |
//! | `--entries` | 1 000 000 | measured commands per run with a window above 1 |
//! | `--latency-entries` | 50 000 | measured commands per run with window 1 |
//! | `--warmup` | 65 536 | commands before measuring (window 1: one compaction cycle) |
//! | `--reps` | 5 | runs per system and configuration, interleaved; the median by CPU rate is reported |
//! | `--durability` | `group` | `group` or `instant` acknowledgement of ballot's writes |
//! | `--ballot-store` | `vec` | `vec` (`VecLog`) or `memstore` (`ballot_core::MemStore`) |
//! | `--raft-rs-batch-append` | `true` | raft-rs's `batch_append` |
//! | `--compact-every` | 16 384 | compaction period in commands |
//! | `--seed` | 1 | seed of the ballot protocols' RNGs |

use std::collections::HashMap;
use std::str::FromStr;

use ballot_consensus_bench::{BallotStore, Durability, Report, Settings, SystemKind, run};

struct Options {
    systems: Vec<SystemKind>,
    nodes: Vec<usize>,
    sizes: Vec<usize>,
    windows: Vec<u64>,
    entries: u64,
    latency_entries: u64,
    warmup: u64,
    reps: usize,
    durability: Durability,
    ballot_store: BallotStore,
    raft_rs_batch_append: bool,
    compact_every: u64,
    seed: u64,
}

fn list<T: FromStr>(flag: &str, value: &str) -> Vec<T>
where
    T::Err: std::fmt::Display,
{
    value.split(',').map(|v| v.trim().parse().unwrap_or_else(|e| panic!("bad value {v:?} for {flag}: {e}"))).collect()
}

fn one<T: FromStr>(flag: &str, value: &str) -> T
where
    T::Err: std::fmt::Display,
{
    value.trim().parse().unwrap_or_else(|e| panic!("bad value {value:?} for {flag}: {e}"))
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --benches` runs bench targets with `--test`: keep that to a smoke run.
    let quick = args.iter().any(|a| a == "--test" || a == "--list");
    let mut o = Options {
        systems: SystemKind::ALL.to_vec(),
        nodes: vec![3, 5],
        sizes: vec![64, 1024],
        windows: vec![1, 64, 1024],
        entries: if quick { 2_000 } else { 1_000_000 },
        latency_entries: if quick { 200 } else { 50_000 },
        warmup: if quick { 100 } else { 1 << 16 },
        reps: if quick { 1 } else { 5 },
        durability: Durability::Group,
        ballot_store: BallotStore::Vec,
        raft_rs_batch_append: true,
        compact_every: 1 << 14,
        seed: 1,
    };
    if quick {
        o.nodes = vec![3];
        o.sizes = vec![64];
    }
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value")).as_str();
        match flag.as_str() {
            "--systems" => o.systems = list(flag, value()),
            "--nodes" => o.nodes = list(flag, value()),
            "--sizes" => o.sizes = list(flag, value()),
            "--windows" => o.windows = list(flag, value()),
            "--entries" => o.entries = one(flag, value()),
            "--latency-entries" => o.latency_entries = one(flag, value()),
            "--warmup" => o.warmup = one(flag, value()),
            "--reps" => o.reps = one::<usize>(flag, value()).max(1),
            "--durability" => o.durability = one(flag, value()),
            "--ballot-store" => o.ballot_store = one(flag, value()),
            "--raft-rs-batch-append" => o.raft_rs_batch_append = one(flag, value()),
            "--compact-every" => o.compact_every = one(flag, value()),
            "--seed" => o.seed = one(flag, value()),
            _ => {} // `--bench`, `--test` and other flags cargo passes
        }
    }
    o
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn rate(r: f64) -> String {
    let r = r.round() as u64;
    let digits = r.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Per-entry figures: four decimals below 0.1 (batched runs), two above.
fn per_entry(x: f64) -> String {
    if x < 0.1 { format!("{x:.4}") } else { format!("{x:.2}") }
}

type Key = (usize, usize, u64);

fn main() {
    let o = options();
    let mut configs: Vec<Key> = Vec::new();
    for &n in &o.nodes {
        for &s in &o.sizes {
            for &w in &o.windows {
                configs.push((n, s, w));
            }
        }
    }
    eprintln!(
        "{} configurations x {} systems x {} reps, durability {}, ballot store {}, load average {}",
        configs.len(),
        o.systems.len(),
        o.reps,
        o.durability,
        o.ballot_store,
        load_average()
    );
    let mut results: HashMap<(Key, SystemKind), Vec<Report>> = HashMap::new();
    let mut bytes: HashMap<(Key, SystemKind), f64> = HashMap::new();
    for &(nodes, size, window) in &configs {
        let settings = Settings {
            entries: if window == 1 { o.latency_entries } else { o.entries },
            // With one command outstanding, one compaction cycle is warm-up enough.
            warmup: if window == 1 { o.warmup.min(o.compact_every + 1_000) } else { o.warmup },
            durability: o.durability,
            ballot_store: o.ballot_store,
            raft_rs_batch_append: o.raft_rs_batch_append,
            compact_every: o.compact_every,
            seed: o.seed,
            ..Settings::new(nodes, size, window)
        };
        for rep in 0..o.reps {
            // Rotate the order so that no system always runs first (or last) in a rep.
            for k in 0..o.systems.len() {
                let system = o.systems[(k + rep) % o.systems.len()];
                let r = run(system, &settings);
                eprintln!(
                    "n={nodes} size={size} window={window} rep={rep} {system:<13} {:>11} entries/s cpu {:>11} wall \
                     {} msgs/entry {} writes/entry {} rounds/entry",
                    rate(r.cpu_rate()),
                    rate(r.wall_rate()),
                    per_entry(r.messages_per_entry()),
                    per_entry(r.writes_per_entry()),
                    per_entry(r.rounds_per_entry())
                );
                results.entry(((nodes, size, window), system)).or_default().push(r);
            }
        }
        // Bytes in a pass of their own (measuring sizes walks every message, which would
        // slow the timed runs): at most 20 000 entries, ballot's systems only.
        for &system in &o.systems {
            let counted = Settings { count_bytes: true, entries: settings.entries.min(20_000), ..settings.clone() };
            if let Some(b) = run(system, &counted).bytes_per_entry() {
                eprintln!("n={nodes} size={size} window={window} {system:<13} {b:.0} bytes/entry");
                bytes.insert(((nodes, size, window), system), b);
            }
        }
    }
    let median = |key: Key, system: SystemKind| -> Option<&Report> {
        let mut runs: Vec<&Report> = results.get(&(key, system))?.iter().collect();
        runs.sort_by(|a, b| a.cpu_rate().total_cmp(&b.cpu_rate()));
        runs.get(runs.len() / 2).copied()
    };

    println!(
        "\nMedians of {} interleaved runs (durability {}, ballot store {}; load average at end: {})\n",
        o.reps,
        o.durability,
        o.ballot_store,
        load_average()
    );
    println!(
        "| nodes | command | window | system | entries/s (CPU) | entries/s (wall) | messages/entry | bytes/entry | writes/entry | rounds/entry |"
    );
    println!("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    for &key in &configs {
        for &system in &o.systems {
            if let Some(r) = median(key, system) {
                println!(
                    "| {} | {} B | {} | {} | {} | {} | {} | {} | {} | {} |",
                    key.0,
                    key.1,
                    key.2,
                    system,
                    rate(r.cpu_rate()),
                    rate(r.wall_rate()),
                    per_entry(r.messages_per_entry()),
                    bytes.get(&(key, system)).map_or("–".into(), |b| format!("{b:.0}")),
                    per_entry(r.writes_per_entry()),
                    per_entry(r.rounds_per_entry())
                );
            }
        }
    }
    let pairs = [
        (SystemKind::BallotRaft, SystemKind::RaftRs),
        (SystemKind::BallotPaxos, SystemKind::OmniPaxos),
        (SystemKind::BallotPaxos, SystemKind::BallotRaft),
        (SystemKind::BallotPbft, SystemKind::BallotRaft),
    ];
    println!("\nThroughput ratios (CPU-time rates; wall-clock ratios in parentheses)\n");
    let header: Vec<String> = pairs.iter().map(|(a, b)| format!("{a} / {b}")).collect();
    println!("| nodes | command | window | {} |", header.join(" | "));
    println!("|---:|---:|---:|{}", "---:|".repeat(pairs.len()));
    for &key in &configs {
        let cells: Vec<String> = pairs
            .iter()
            .map(|&(a, b)| match (median(key, a), median(key, b)) {
                (Some(x), Some(y)) => {
                    format!("{:.2} ({:.2})", x.cpu_rate() / y.cpu_rate(), x.wall_rate() / y.wall_rate())
                }
                _ => "–".into(),
            })
            .collect();
        println!("| {} | {} B | {} | {} |", key.0, key.1, key.2, cells.join(" | "));
    }
}
