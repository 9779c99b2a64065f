//! Scripted Multi-Paxos scenarios on the simulator: node failure and recovery, a
//! minority partition `[n1, n2] | [n3, n4, n5]` that cannot decide while the majority
//! goes on, and heal-and-converge. Every generic and Paxos checker runs throughout, and
//! each history is checked for linearizability at the end.

mod common;

use std::time::Duration;

use ballot_core::{NodeId, Role};
use ballot_paxos::Config;
use ballot_sim::paxos::MultiPaxosAlgorithm;
use ballot_sim::{Fault, KvInput, OpId, Outcome, SimConfig, Simulation};
use common::{advance, applied, commit_index, fault, n, role, wait_for_leader, wait_for_leader_among, wait_until};

type Sim = Simulation<MultiPaxosAlgorithm>;

fn multipaxos() -> MultiPaxosAlgorithm {
    MultiPaxosAlgorithm::fixed(Config { election: common::scenario_election(), ..Config::new(NodeId(1)) })
}

fn sim(seed: u64, nodes: usize, compaction: Option<(u64, u64)>) -> Sim {
    let mut cfg = SimConfig::calm(seed, nodes, Duration::from_secs(60));
    cfg.compaction = compaction;
    Simulation::new(multipaxos(), cfg).expect("valid config")
}

#[test]
fn node_failure_and_recovery() {
    // Aggressive compaction, so that a node down for long must be caught up by snapshot.
    common::node_failure_and_recovery(sim(21, 5, Some((5, 10))));
}

#[test]
fn a_minority_partition_cannot_decide_while_the_majority_continues() {
    let mut sim = sim(22, 5, Some((50, 200)));
    let minority = [n(1), n(2)];
    let majority = [n(3), n(4), n(5)];

    // Make n1 the leader, so that the minority holds the old leader (the interesting
    // case): cut n2..n5 off from each other, so that only n1 can gather a quorum.
    let others = [n(2), n(3), n(4), n(5)];
    fault(&mut sim, Fault::CutOneWay { from: others.to_vec(), to: others.to_vec() });
    wait_until(&mut sim, Duration::from_secs(10), "n1 leads", |s| role(s, n(1)) == Some(Role::Leader));
    fault(&mut sim, Fault::HealNetwork);
    wait_until(&mut sim, Duration::from_secs(5), "everyone follows n1", |s| s.stable_leader() == Some(n(1)));
    advance(&mut sim, Duration::from_millis(500));

    // [n1, n2] | [n3, n4, n5]
    fault(&mut sim, Fault::Partition(vec![minority.to_vec(), majority.to_vec()]));
    let committed_before = sim.stats().commands_committed;
    // The old leader still believes it leads for a moment and accepts proposals.
    let mut minority_ops: Vec<OpId> = Vec::new();
    for key in 0..4 {
        match sim.submit(n(1), key, KvInput::Put(0)).unwrap_or_else(|v| panic!("{v}")) {
            Ok(op) => minority_ops.push(op),
            Err(e) => panic!("n1 should still accept right after the cut: {e}"),
        }
    }
    // What the minority can know decided: at most what was decided at the cut.
    let decided_at_cut = minority.iter().filter_map(|&id| commit_index(&sim, id)).max().unwrap_or(0);

    // The majority elects a leader among itself (phase 1 needs a quorum, which it has)
    // and decides new slots.
    let new_leader = wait_for_leader_among(&mut sim, &majority, Duration::from_secs(5));
    advance(&mut sim, Duration::from_secs(5));
    assert!(sim.stats().commands_committed > committed_before + 50, "the majority keeps deciding");
    for &id in &majority {
        assert!(applied(&sim, id) > decided_at_cut + 50, "{id} applied the majority's commands");
    }

    // Nothing proposed in the minority was decided, anywhere, while partitioned; and the
    // minority applied nothing new (phase 2 needs a quorum of acceptors).
    for &op in &minority_ops {
        assert_eq!(sim.committed_at(op), None, "op {op:?} proposed in the minority must not be decided");
        assert!(!matches!(sim.history().get(op).map(|o| o.outcome), Some(Outcome::Ok { .. })));
    }
    for &id in &minority {
        assert!(applied(&sim, id) <= decided_at_cut, "{id} applied only what was decided before the cut");
    }
    // n1 (CheckQuorum) noticed it lost its quorum and stepped down.
    assert_ne!(role(&sim, n(1)), Some(Role::Leader));

    // Heal: the majority decided other values in the minority's slots; the minority's
    // proposals are reported failed with an unknown outcome.
    fault(&mut sim, Fault::HealAll);
    wait_until(&mut sim, Duration::from_secs(5), "minority proposals resolve", |s| {
        minority_ops.iter().all(|&op| s.history().get(op).is_some_and(|o| o.outcome != Outcome::Pending))
    });
    for &op in &minority_ops {
        assert_eq!(sim.committed_at(op), None, "op {op:?} was never decided");
        assert_eq!(sim.history().get(op).map(|o| o.outcome), Some(Outcome::Indeterminate));
    }
    // (The minority's requests may have timed out at their node before the heal.)
    let leader = wait_for_leader(&mut sim, Duration::from_secs(5));
    assert!(majority.contains(&leader) || leader == new_leader, "{leader}");
    sim.stop_clients();
    advance(&mut sim, Duration::from_secs(3));
    sim.finish().unwrap_or_else(|v| panic!("{v}"));
}

#[test]
fn heal_and_converge() {
    let mut sim = sim(23, 5, Some((20, 60)));
    wait_for_leader(&mut sim, Duration::from_secs(5));
    // A stretch of mixed faults: a partition, a one-way cut, a crash, lossy weather.
    fault(&mut sim, Fault::Partition(vec![vec![n(1), n(2)], vec![n(3), n(4), n(5)]]));
    advance(&mut sim, Duration::from_secs(2));
    fault(&mut sim, Fault::CutOneWay { from: vec![n(3)], to: vec![n(4), n(5)] });
    fault(&mut sim, Fault::Crash(n(5)));
    advance(&mut sim, Duration::from_secs(2));
    fault(&mut sim, Fault::HealNetwork);
    fault(&mut sim, Fault::Partition(vec![vec![n(1), n(3), n(4)], vec![n(2)]]));
    let mut stormy = sim.network().config();
    stormy.drop = 0.2;
    stormy.duplicate = 0.1;
    stormy.reorder = 0.2;
    stormy.reorder_delay = Duration::from_millis(200);
    fault(&mut sim, Fault::Weather(stormy));
    advance(&mut sim, Duration::from_secs(3));

    // Heal everything, let clients finish, and let the cluster settle.
    fault(&mut sim, Fault::HealAll);
    wait_for_leader(&mut sim, Duration::from_secs(10));
    advance(&mut sim, Duration::from_secs(2));
    sim.stop_clients();
    advance(&mut sim, Duration::from_secs(3));

    // Every replica has the same decided prefix, the same decided values wherever their
    // logs overlap, and the same KV state.
    let ids = sim.ids().to_vec();
    let r0 = sim.replica(ids[0]).expect("up");
    assert!(sim.applied(ids[0]) > 100, "work was done");
    for &id in &ids[1..] {
        let r = sim.replica(id).expect("every node is up");
        assert_eq!(r.commit_index(), r0.commit_index(), "{id}: decided prefix");
        assert_eq!(r.applied_index(), r0.applied_index(), "{id}: applied");
        for slot in r.first_index().max(r0.first_index())..=r.commit_index() {
            assert_eq!(r.decided(slot), r0.decided(slot), "{id}: slot {slot}");
            assert!(r.decided(slot).is_some(), "{id} holds decided slot {slot}");
        }
        assert_eq!(sim.applied(id), sim.applied(ids[0]), "{id}: applied");
        assert_eq!(sim.digest(id), sim.digest(ids[0]), "{id}: replicated state");
        assert_eq!(sim.service(id), sim.service(ids[0]), "{id}: KV state");
    }
    let stats = sim.finish().unwrap_or_else(|v| panic!("{v}"));
    assert!(stats.ops_indeterminate + stats.ops_failed > 0, "faults left some operations in doubt: {stats}");
}
