//! The generic simulator machinery, exercised with a tiny test-only protocol
//! (`tests/toy`) that is correct unless one of its deliberate bugs is switched on.

mod toy;

use std::time::Duration;

use ballot_core::{Instant, NodeId};
use ballot_sim::{
    Fault, FaultKind, FaultPlan, KvInput, Outcome, RunSpec, SimConfig, SimError, Simulation, run_many, run_spec,
};
use toy::{Bug, ToyAlgorithm};

fn spec(seed: u64, nodes: usize) -> RunSpec {
    RunSpec { duration: Duration::from_secs(20), ..RunSpec::new(seed, nodes) }
}

fn calm(seed: u64) -> SimConfig {
    let mut cfg = SimConfig::calm(seed, 3, Duration::from_secs(20));
    cfg.compaction = None;
    cfg
}

fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

#[test]
fn a_correct_protocol_passes_every_check_under_random_faults() {
    let specs: Vec<RunSpec> = (1..=25).flat_map(|s| [spec(s, 3), spec(s, 5)]).collect();
    let summary = run_many(|| ToyAlgorithm(Bug::None), &specs, 2, &|_, _| {});
    assert!(summary.passed(), "{:?}\n{:?}", summary.violations.first().map(ToString::to_string), summary.errors);
    let s = &summary.stats;
    assert_eq!(s.runs, 50);
    assert!(s.commands_committed > 1_000, "{s}");
    assert!(s.ops_ok > 1_000 && s.reads_ok > 100, "{s}");
    assert!(s.ops_indeterminate > 0 && s.ops_failed > 0, "faults must leave some operations in doubt: {s}");
    assert!(s.lin_ops > 1_000, "{s}");
    let n = &s.net;
    assert!(n.dropped > 0 && n.duplicated > 0 && n.reordered > 0 && n.cut > 0 && n.to_down > 0, "{s}");
    for kind in [FaultKind::Partition, FaultKind::OneWayCut, FaultKind::Crash, FaultKind::Restart, FaultKind::Weather] {
        assert!(s.faults.get(&kind).is_some_and(|&c| c > 0), "no {kind} in {s}");
    }
    assert!(!s.faults.contains_key(&FaultKind::MembershipChange), "the toy supports no admin actions");
}

#[test]
fn runs_are_reproducible_and_seeds_differ() {
    let a = run_spec(ToyAlgorithm(Bug::None), &spec(42, 3)).expect("seed 42");
    let b = run_spec(ToyAlgorithm(Bug::None), &spec(42, 3)).expect("seed 42 again");
    assert_eq!(a, b);
    let c = run_spec(ToyAlgorithm(Bug::None), &spec(43, 3)).expect("seed 43");
    assert_ne!(a.events, c.events);
    // The thread count does not change the merged figures.
    let specs: Vec<RunSpec> = (1..=6).map(|s| spec(s, 3)).collect();
    let one = run_many(|| ToyAlgorithm(Bug::None), &specs, 1, &|_, _| {});
    let two = run_many(|| ToyAlgorithm(Bug::None), &specs, 2, &|_, _| {});
    assert_eq!(one.stats, two.stats);
}

#[test]
fn stale_reads_are_caught_by_the_linearizability_checker() {
    let mut found = None;
    for seed in 1..=20 {
        if let Err(SimError::Violation(v)) = run_spec(ToyAlgorithm(Bug::StaleFollowerReads), &spec(seed, 3)) {
            found = Some((seed, v));
            break;
        }
    }
    let (seed, v) = found.expect("some seed must expose stale follower reads");
    assert_eq!(v.checker, "Linearizability", "{v}");
    assert!(v.details.starts_with("key ") && v.details.contains("cannot be placed"), "{v}");
    assert_eq!(v.replay, format!("cargo xtask sim --algo toy --seed {seed} --nodes 3 --duration 20"));
    assert!(v.to_string().contains("replay: cargo xtask sim"), "{v}");
}

#[test]
fn reusing_log_indexes_after_a_restart_breaks_state_machine_safety() {
    let mut sim = Simulation::new(ToyAlgorithm(Bug::ForgetLogOnRestart), calm(1)).expect("sim");
    sim.run_until(ms(2_000)).expect("healthy so far");
    assert!(sim.stats().commands_committed > 10);
    sim.apply_fault(Fault::Crash(NodeId(1))).expect("crash");
    sim.apply_fault(Fault::Restart(NodeId(1))).expect("restart");
    let v = sim.run_until(ms(6_000)).expect_err("the leader reuses committed indexes");
    assert_eq!(v.checker, "StateMachineSafety", "{v}");
    assert!(v.details.contains("at index"), "{v}");
}

#[test]
fn forgotten_proposals_are_caught_by_the_liveness_checker() {
    let sim = Simulation::new(ToyAlgorithm(Bug::ForgetProposals), calm(2)).expect("sim");
    let v = sim.run().expect_err("proposals never resolve");
    assert_eq!(v.checker, "Liveness", "{v}");
    assert!(v.details.contains("neither applied nor failed"), "{v}");
    assert!(v.at > ms(10_000) && v.at < ms(11_000), "fires one bound after acceptance: {v}");
}

#[test]
fn the_serialization_round_trip_catches_unserializable_messages() {
    let mut s = spec(3, 3);
    run_spec(ToyAlgorithm(Bug::Unserializable), &s).expect("without the round trip nothing notices");
    s.serialize = true;
    let err = run_spec(ToyAlgorithm(Bug::Unserializable), &s).expect_err("with it, the poison is found");
    let SimError::Violation(v) = err else { panic!("{err}") };
    assert_eq!(v.checker, "Serialization", "{v}");
    assert!(v.details.contains("could not serialize a message"), "{v}");
    assert!(v.replay.ends_with("--serialize"), "{v}");
    run_spec(ToyAlgorithm(Bug::None), &s).expect("a correct protocol round-trips fine");
}

#[test]
fn a_crash_loses_writes_that_were_not_yet_durable() {
    let mut cfg = calm(4);
    cfg.disk.delay_min = Duration::from_millis(50);
    cfg.disk.delay_max = Duration::from_millis(60);
    cfg.clients.count = 0;
    let mut sim = Simulation::new(ToyAlgorithm(Bug::None), cfg).expect("sim");
    let n1 = NodeId(1);
    sim.run_until(ms(100)).expect("start");
    let first = sim.submit(n1, 7, KvInput::Put(0)).expect("no violation").expect("leader accepts");
    sim.run_until(ms(400)).expect("durable and committed");
    assert!(matches!(sim.history().get(first).map(|o| o.outcome), Some(Outcome::Ok { .. })));
    assert_eq!(sim.durable(n1).expect("n1").entries.len(), 1);

    let second = sim.submit(n1, 7, KvInput::Put(0)).expect("no violation").expect("leader accepts");
    sim.run_until(ms(410)).expect("not yet durable");
    sim.apply_fault(Fault::Crash(n1)).expect("crash");
    assert!(sim.replica(n1).is_none());
    assert_eq!(sim.durable(n1).expect("n1").entries.len(), 1, "the unsynced write is gone");
    assert_eq!(sim.applied(n1), 0, "the service state was volatile");
    sim.apply_fault(Fault::Restart(n1)).expect("restart");
    sim.run_until(ms(1_000)).expect("recovers");
    assert_eq!(sim.applied(n1), 1, "re-applied what was durable and committed");
    assert_eq!(sim.committed_at(second), None, "the lost write never committed");
    assert_eq!(sim.committed_at(first), Some(1));
    sim.finish().expect("the lost write counts as indeterminate");
}

#[test]
fn partitions_and_one_way_cuts_stop_commits_until_healed() {
    let mut cfg = calm(5);
    cfg.clients.count = 0;
    let mut sim = Simulation::new(ToyAlgorithm(Bug::None), cfg).expect("sim");
    let (n1, n2, n3) = (NodeId(1), NodeId(2), NodeId(3));
    sim.run_until(ms(100)).expect("start");
    for (fault, name) in [
        (Fault::Partition(vec![vec![n1], vec![n2, n3]]), "symmetric"),
        (Fault::CutOneWay { from: vec![n1], to: vec![n2, n3] }, "one-way"),
    ] {
        sim.apply_fault(fault).expect("cut");
        let op = sim.submit(n1, 1, KvInput::Put(0)).expect("no violation").expect("the leader accepts");
        let t = sim.now();
        sim.run_until(t + Duration::from_secs(2)).expect("cut off");
        assert_eq!(sim.committed_at(op), None, "{name}: nothing commits without a majority");
        sim.apply_fault(Fault::HealNetwork).expect("heal");
        sim.run_until(t + Duration::from_secs(3)).expect("healed");
        assert!(sim.committed_at(op).is_some(), "{name}: commits once healed");
    }
    // A cut in the other direction only (followers cannot answer) also stops commits.
    sim.apply_fault(Fault::CutOneWay { from: vec![n2, n3], to: vec![n1] }).expect("cut");
    let op = sim.submit(n1, 1, KvInput::Put(0)).expect("no violation").expect("accepted");
    let t = sim.now();
    sim.run_until(t + Duration::from_secs(1)).expect("cut off");
    assert_eq!(sim.committed_at(op), None);
    sim.apply_fault(Fault::HealAll).expect("heal");
    sim.run_until(t + Duration::from_secs(2)).expect("healed");
    assert!(sim.committed_at(op).is_some());
    sim.finish().expect("clean");
}

#[test]
fn bad_configs_are_typed_errors_and_runaway_runs_stop() {
    let mut cfg = calm(6);
    cfg.nodes = 0;
    assert!(matches!(Simulation::new(ToyAlgorithm(Bug::None), cfg).err(), Some(SimError::InvalidConfig(_))));
    let mut cfg = calm(6);
    cfg.faults = FaultPlan { actions: vec![(ms(5), Fault::Crash(NodeId(9)))] };
    assert_eq!(Simulation::new(ToyAlgorithm(Bug::None), cfg).err(), Some(SimError::UnknownNode(NodeId(9))));
    let mut cfg = calm(6);
    cfg.network.drop = 2.0;
    assert!(matches!(Simulation::new(ToyAlgorithm(Bug::None), cfg).err(), Some(SimError::InvalidConfig(_))));

    for bad in [
        |c: &mut SimConfig| c.disk.delay_max = Duration::MAX,
        |c: &mut SimConfig| c.compaction = Some((1, u64::MAX)),
        |c: &mut SimConfig| c.clients.keys = 0,
        |c: &mut SimConfig| c.network.delay_min = Duration::from_secs(9),
    ] {
        let mut cfg = calm(6);
        bad(&mut cfg);
        assert!(matches!(Simulation::new(ToyAlgorithm(Bug::None), cfg).err(), Some(SimError::InvalidConfig(_))));
    }

    let mut cfg = calm(6);
    cfg.max_events = 1_000;
    let v = Simulation::new(ToyAlgorithm(Bug::None), cfg).expect("sim").run().expect_err("budget");
    assert_eq!(v.checker, "Progress", "{v}");
}
