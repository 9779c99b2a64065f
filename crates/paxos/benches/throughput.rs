//! Committed commands per second of an in-memory Multi-Paxos cluster (no network, no
//! disk: the protocol's own cost). Run with `cargo bench -p ballot-paxos`; set
//! `BENCH_TOTAL` to change the number of commands.

mod driver;

use ballot_core::{Instant, Membership, NodeId, Recovered, SeededRng};
use ballot_paxos::{Config, MultiPaxos};

fn cluster(n: u64) -> Vec<MultiPaxos> {
    let members = Membership::new((1..=n).map(NodeId));
    (1..=n)
        .map(|i| {
            MultiPaxos::new(
                Config::new(NodeId(i)),
                members.clone(),
                Recovered::default(),
                SeededRng::new(i),
                Instant::ZERO,
            )
            .expect("valid config")
        })
        .collect()
}

fn main() {
    let total: u64 = std::env::var("BENCH_TOTAL").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    println!("{:<34} {:>12} {:>10} {:>12}", "multipaxos (in memory)", "commands/s", "msgs/cmd", "syncs/cmd");
    for (n, window, size) in [(3, 1000, 64), (3, 10_000, 64), (5, 1000, 64), (3, 1000, 1024), (3, 1, 64)] {
        let total = if window == 1 { total / 20 } else { total };
        let r = driver::run(cluster(n), total, window, size);
        println!(
            "{:<34} {:>12.0} {:>10.2} {:>12.3}",
            format!("n={n} window={window} size={size}B"),
            r.rate(),
            r.messages as f64 / r.committed as f64,
            r.syncs as f64 / r.committed as f64
        );
    }
}
