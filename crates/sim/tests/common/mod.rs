//! Shared by the seed sweeps and the scripted scenarios of every algorithm: which seeds
//! to run and the failure report (each violation with its replay command), and the
//! small steps scenarios are written in. Not every test binary uses every helper.
#![allow(dead_code)]

pub mod mutant;

use std::time::Duration;

use ballot_core::{ElectionConfig, NodeId, Protocol, Role};
use ballot_sim::{Algorithm, Fault, RunSpec, RunStats, Service, Simulation, run_many};

/// How many seeds a sweep runs: `BALLOT_SIM_SEEDS`, or `default`.
pub fn seed_count(default: u64) -> u64 {
    std::env::var("BALLOT_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Seeds `1..=seeds` on each cluster size; every tenth seed also round-trips messages
/// and durable state through serde.
pub fn specs(seeds: u64, sizes: &[usize]) -> Vec<RunSpec> {
    (1..=seeds)
        .flat_map(|seed| {
            sizes.iter().map(move |&nodes| RunSpec { serialize: seed.is_multiple_of(10), ..RunSpec::new(seed, nodes) })
        })
        .collect()
}

/// [`specs`] with the nodes hosting `service`.
pub fn service_specs(seeds: u64, sizes: &[usize], service: Service) -> Vec<RunSpec> {
    specs(seeds, sizes).into_iter().map(|s| RunSpec { service, ..s }).collect()
}

/// Runs every spec on all CPUs; panics with every violation and its replay command if
/// any run fails. Returns the merged figures.
pub fn run_all<A, F>(make: F, specs: &[RunSpec]) -> RunStats
where
    A: Algorithm,
    F: Fn() -> A + Sync,
{
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let summary = run_many(make, specs, threads, &|_, _| {});
    eprintln!("{}\nwall time: {:.1} s", summary.stats, summary.wall.as_secs_f64());
    if !summary.passed() {
        let mut report =
            format!("{} of {} runs failed:\n", summary.violations.len() + summary.errors.len(), specs.len());
        for v in &summary.violations {
            report.push_str(&format!("\n{v}\n"));
        }
        for (spec, e) in &summary.errors {
            report.push_str(&format!("\nseed {} ({} nodes) could not run: {e}\n", spec.seed, spec.nodes));
        }
        panic!("{report}");
    }
    assert_eq!(summary.stats.runs, specs.len() as u64);
    summary.stats
}

/// Node `i`.
pub fn n(i: u64) -> NodeId {
    NodeId(i)
}

/// Runs the simulation for `d` of virtual time; panics on a violation.
pub fn advance<A: Algorithm>(sim: &mut Simulation<A>, d: Duration) {
    let until = sim.now() + d;
    sim.run_until(until).unwrap_or_else(|v| panic!("{v}"));
}

/// Applies `f` now; panics on a violation.
pub fn fault<A: Algorithm>(sim: &mut Simulation<A>, f: Fault) {
    sim.apply_fault(f).unwrap_or_else(|v| panic!("{v}"));
}

/// Runs until a leader is recognized by every live voter; returns it.
pub fn wait_for_leader<A: Algorithm>(sim: &mut Simulation<A>, within: Duration) -> NodeId {
    let deadline = sim.now() + within;
    while sim.now() < deadline {
        if let Some(l) = sim.stable_leader() {
            return l;
        }
        advance(sim, Duration::from_millis(20));
    }
    panic!("no leader within {within:?}");
}

/// Runs until a node of `group` leads and every member of `group` follows it; returns it.
pub fn wait_for_leader_among<A: Algorithm>(sim: &mut Simulation<A>, group: &[NodeId], within: Duration) -> NodeId {
    let deadline = sim.now() + within;
    loop {
        let info = |id: NodeId| sim.replica(id).map(|r| sim.algorithm().info(r));
        let leader = group.iter().copied().find(|&id| {
            info(id).is_some_and(|i| i.role == Role::Leader)
                && group.iter().all(|&g| info(g).is_some_and(|i| i.leader == Some(id)))
        });
        if let Some(l) = leader {
            return l;
        }
        assert!(sim.now() < deadline, "no leader among {group:?} within {within:?}");
        advance(sim, Duration::from_millis(20));
    }
}

/// Runs until `pred` holds, for at most `within`.
pub fn wait_until<A: Algorithm>(
    sim: &mut Simulation<A>,
    within: Duration,
    what: &str,
    mut pred: impl FnMut(&Simulation<A>) -> bool,
) {
    let deadline = sim.now() + within;
    while !pred(sim) {
        assert!(sim.now() < deadline, "{what}: not within {within:?}");
        advance(sim, Duration::from_millis(20));
    }
}

/// The index node `id`'s service has applied.
pub fn applied<A: Algorithm>(sim: &Simulation<A>, id: NodeId) -> u64 {
    sim.applied(id)
}

/// The role node `id` plays, or `None` while it is down.
pub fn role<A: Algorithm>(sim: &Simulation<A>, id: NodeId) -> Option<Role> {
    sim.replica(id).map(|r| sim.algorithm().info(r).role)
}

/// The commit index node `id` knows, or `None` while it is down.
pub fn commit_index<A: Algorithm>(sim: &Simulation<A>, id: NodeId) -> Option<u64> {
    sim.replica(id).map(|r| sim.algorithm().info(r).commit_index)
}

/// The election settings of the scripted scenarios: 300–600 ms timeouts, 50 ms
/// heartbeats, pre-vote and CheckQuorum on.
pub fn scenario_election() -> ElectionConfig {
    ElectionConfig {
        timeout_min: Duration::from_millis(300),
        timeout_max: Duration::from_millis(600),
        heartbeat_interval: Duration::from_millis(50),
        pre_vote: true,
        check_quorum: true,
        lease_reads: false,
    }
}

/// The scenario every leader-based algorithm passes: its leader fails, the others elect
/// a successor and keep committing; the old leader restarts from its durable state and
/// catches up by snapshot (`sim` must compact aggressively), then follows the
/// successor; a follower fails and recovers too; at the end every replica has applied
/// the same and the history is linearizable.
pub fn node_failure_and_recovery<A: Algorithm>(mut sim: Simulation<A>) {
    let leader = wait_for_leader(&mut sim, Duration::from_secs(5));
    advance(&mut sim, Duration::from_secs(2));
    let before = sim.stats().commands_committed;
    assert!(before > 20, "clients commit in a healthy cluster ({before})");

    fault(&mut sim, Fault::Crash(leader));
    assert!(sim.replica(leader).is_none());
    let successor = wait_for_leader(&mut sim, Duration::from_secs(5));
    assert_ne!(successor, leader);
    let at_failover = sim.stats().commands_committed;
    advance(&mut sim, Duration::from_secs(3));
    assert!(sim.stats().commands_committed > at_failover + 20, "progress with one node down");

    let restores = sim.stats().restores;
    fault(&mut sim, Fault::Restart(leader));
    wait_until(&mut sim, Duration::from_secs(5), "the recovered node catches up", |s| {
        applied(s, leader) >= applied(s, successor).saturating_sub(5) && applied(s, leader) > 0
    });
    assert!(sim.stats().restores > restores, "caught up through a snapshot restore");
    let status = sim.replica(leader).map(Protocol::status).expect("the old leader is up");
    assert_eq!((status.role, status.leader), (Role::Follower, Some(successor)), "the old leader follows");
    assert!(status.snapshot_index > 0, "the old leader holds a snapshot");

    let follower = sim.ids().iter().copied().find(|&i| i != successor && i != leader).expect("follower");
    fault(&mut sim, Fault::Crash(follower));
    advance(&mut sim, Duration::from_secs(2));
    fault(&mut sim, Fault::Restart(follower));
    fault(&mut sim, Fault::HealAll);
    sim.stop_clients();
    advance(&mut sim, Duration::from_secs(3));
    let target = applied(&sim, successor);
    for &id in sim.ids() {
        assert_eq!(applied(&sim, id), target, "{id} caught up");
    }
    let stats = sim.finish().unwrap_or_else(|v| panic!("{v}"));
    assert!(stats.lin_ops > 100 && stats.ops_ok > 100, "{stats}");
}
