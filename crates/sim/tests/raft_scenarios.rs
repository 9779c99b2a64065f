//! Scripted Raft scenarios on the simulator: node failure and recovery, a minority
//! partition that cannot commit while the majority goes on, and heal-and-converge.
//! Every generic and Raft checker runs throughout, and each history is checked for
//! linearizability at the end.

mod common;

use std::time::Duration;

use ballot_core::{NodeId, Role};
use ballot_raft::Config;
use ballot_sim::raft::RaftAlgorithm;
use ballot_sim::{AdminAction, Fault, KvInput, OpId, Outcome, SimConfig, Simulation};
use common::{advance, applied, fault, n, wait_for_leader, wait_for_leader_among, wait_until};

type Sim = Simulation<RaftAlgorithm>;

fn raft() -> RaftAlgorithm {
    RaftAlgorithm::fixed(Config { election: common::scenario_election(), ..Config::new(NodeId(1)) })
}

fn sim(seed: u64, nodes: usize, compaction: Option<(u64, u64)>) -> Sim {
    let mut cfg = SimConfig::calm(seed, nodes, Duration::from_secs(60));
    cfg.compaction = compaction;
    Simulation::new(raft(), cfg).expect("valid config")
}

#[test]
fn node_failure_and_recovery() {
    // Aggressive compaction, so that a node down for long must be caught up by snapshot.
    common::node_failure_and_recovery(sim(11, 5, Some((5, 10))));
}

#[test]
fn a_minority_partition_cannot_commit_while_the_majority_continues() {
    let mut sim = sim(12, 5, Some((50, 200)));
    let (n1, n2) = (n(1), n(2));
    let minority = [n1, n2];
    let majority = [n(3), n(4), n(5)];

    // Make n1 the leader, so that the minority holds the old leader: the interesting case.
    wait_for_leader(&mut sim, Duration::from_secs(5));
    fault(&mut sim, Fault::Admin(AdminAction::TransferLeadership { to: n1 }));
    wait_until(&mut sim, Duration::from_secs(5), "n1 leads", |s| s.stable_leader() == Some(n1));
    advance(&mut sim, Duration::from_millis(500));

    // [n1, n2] | [n3, n4, n5]
    fault(&mut sim, Fault::Partition(vec![minority.to_vec(), majority.to_vec()]));
    let committed_before = sim.stats().commands_committed;
    // The old leader still believes it leads for a moment and accepts proposals.
    let mut minority_ops: Vec<OpId> = Vec::new();
    for key in 0..4 {
        match sim.submit(n1, key, KvInput::Put(0)).unwrap_or_else(|v| panic!("{v}")) {
            Ok(op) => minority_ops.push(op),
            Err(e) => panic!("n1 should still accept right after the cut: {e}"),
        }
    }
    // What the minority can know committed: at most what was committed at the cut.
    let commit_at_cut = minority.iter().filter_map(|&id| sim.replica(id)).map(|r| r.commit_index()).max().unwrap_or(0);

    // The majority elects a leader among itself and commits.
    let new_leader = wait_for_leader_among(&mut sim, &majority, Duration::from_secs(5));
    advance(&mut sim, Duration::from_secs(5));
    assert!(sim.stats().commands_committed > committed_before + 50, "the majority keeps committing");
    for &id in &majority {
        assert!(applied(&sim, id) > commit_at_cut + 50, "{id} applied the majority's commands");
    }

    // Nothing proposed in the minority committed, anywhere, while partitioned; and the
    // minority applied nothing new (it can learn of no commit).
    for &op in &minority_ops {
        assert_eq!(sim.committed_at(op), None, "op {op:?} proposed in the minority must not commit");
        assert!(!matches!(sim.history().get(op).map(|o| o.outcome), Some(Outcome::Ok { .. })));
    }
    for &id in &minority {
        assert!(applied(&sim, id) <= commit_at_cut, "{id} applied only what was committed before the cut");
    }
    // n1 (CheckQuorum) noticed it lost its quorum and stepped down.
    assert_ne!(sim.replica(n1).map(|r| r.role()), Some(Role::Leader));

    // Heal: the minority's uncommitted proposals are overwritten and reported failed.
    fault(&mut sim, Fault::HealAll);
    wait_until(&mut sim, Duration::from_secs(5), "minority proposals resolve", |s| {
        minority_ops.iter().all(|&op| s.history().get(op).is_some_and(|o| o.outcome != Outcome::Pending))
    });
    for &op in &minority_ops {
        assert_eq!(sim.committed_at(op), None, "op {op:?} was never committed");
        assert_eq!(sim.history().get(op).map(|o| o.outcome), Some(Outcome::Indeterminate));
    }
    // Whoever leads after the heal holds the majority's log: it is one of the majority.
    wait_until(&mut sim, Duration::from_secs(10), "a stable leader after the heal", |s| s.stable_leader().is_some());
    assert!(sim.stable_leader().is_some_and(|l| majority.contains(&l) || l == new_leader));
    sim.stop_clients();
    advance(&mut sim, Duration::from_secs(3));
    sim.finish().unwrap_or_else(|v| panic!("{v}"));
}

#[test]
fn heal_and_converge() {
    let mut sim = sim(13, 5, Some((20, 60)));
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

    // All logs equal (where not compacted), all commit indexes equal, all KV states equal.
    let ids = sim.ids().to_vec();
    let r0 = sim.replica(ids[0]).expect("up");
    assert!(sim.applied(ids[0]) > 100, "work was done");
    for &id in &ids[1..] {
        let r = sim.replica(id).expect("every node is up");
        assert_eq!((r.commit_index(), r.last_index()), (r0.commit_index(), r0.last_index()), "{id}");
        for index in r.snapshot_index().max(r0.snapshot_index())..=r.last_index() {
            assert_eq!(r.term_at(index), r0.term_at(index), "{id}: term at {index}");
            if index > r.snapshot_index().max(r0.snapshot_index()) {
                assert_eq!(r.entry(index), r0.entry(index), "{id}: entry {index}");
            }
        }
        assert_eq!(sim.applied(id), sim.applied(ids[0]), "{id}: applied");
        assert_eq!(sim.digest(id), sim.digest(ids[0]), "{id}: replicated state");
        assert_eq!(sim.service(id), sim.service(ids[0]), "{id}: KV state");
    }
    let stats = sim.finish().unwrap_or_else(|v| panic!("{v}"));
    assert!(stats.ops_indeterminate + stats.ops_failed > 0, "faults left some operations in doubt: {stats}");
}

/// Finding F1 (crates/sim/FINDINGS.md): a leader that removes itself keeps accepting
/// proposals until the final configuration commits; those appended after its removal
/// are never resolved on it (no `Apply`, no `ProposalFailed`), because once it steps
/// down nobody replicates to it any more. Ignored until ballot-raft resolves them.
#[test]
#[ignore = "known ballot-raft issue F1, see crates/sim/FINDINGS.md"]
fn a_leader_that_removes_itself_resolves_every_proposal_it_accepted() {
    let mut cfg = SimConfig::calm(14, 3, Duration::from_secs(60));
    cfg.clients.count = 0;
    let mut sim = Simulation::new(raft(), cfg).expect("valid config");
    let leader = wait_for_leader(&mut sim, Duration::from_secs(5));
    advance(&mut sim, Duration::from_millis(500));
    fault(&mut sim, Fault::Admin(AdminAction::RemoveVoter(leader)));
    let mut accepted = Vec::new();
    for _ in 0..500 {
        match sim.submit(leader, 1, KvInput::Put(0)).unwrap_or_else(|v| panic!("{v}")) {
            Ok(op) => accepted.push(op),
            Err(_) => break,
        }
        advance(&mut sim, Duration::from_millis(1));
    }
    assert!(!accepted.is_empty());
    advance(&mut sim, Duration::from_secs(10));
    let unresolved: Vec<OpId> = accepted
        .iter()
        .copied()
        .filter(|&op| sim.history().get(op).is_some_and(|o| o.outcome == Outcome::Pending))
        .collect();
    assert!(
        unresolved.is_empty(),
        "{} of {} proposals {leader} accepted are still unresolved 10 s later (committed: {:?})",
        unresolved.len(),
        accepted.len(),
        unresolved.iter().map(|&op| sim.committed_at(op)).collect::<Vec<_>>()
    );
}
