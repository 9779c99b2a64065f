//! Scripted single-decree Paxos scenarios on the simulator.

mod common;

use std::time::Duration;

use ballot_core::NodeId;
use ballot_paxos::SynodConfig;
use ballot_sim::paxos::SynodAlgorithm;
use ballot_sim::{Fault, KvInput, SimConfig, Simulation};
use common::{advance, fault, n};

fn sim(seed: u64) -> Simulation<SynodAlgorithm> {
    let mut cfg = SimConfig::calm(seed, 3, Duration::from_secs(60));
    cfg.clients.count = 0;
    cfg.disk.delay_min = Duration::from_millis(50);
    cfg.disk.delay_max = Duration::from_millis(50);
    let mut c = SynodConfig::new(NodeId(1));
    c.retry_timeout = Duration::from_millis(200);
    c.max_retry_timeout = Duration::from_secs(1);
    Simulation::new(SynodAlgorithm::fixed(c), cfg).expect("valid config")
}

/// A learner that told the others it decided, then crashed before its decision was
/// durable, must still learn the decision after it restarts.
#[test]
fn a_learner_that_crashes_before_its_decision_is_durable_learns_it_again() {
    let mut sim = sim(31);
    advance(&mut sim, Duration::from_millis(10));
    sim.submit(n(1), 1, KvInput::Put(0)).unwrap_or_else(|v| panic!("{v}")).expect("n1 proposes");
    // Step until n3 decides; its decision is written, not yet durable.
    let n3 = n(3);
    while !sim.replica(n3).is_some_and(|r| r.is_decided()) {
        assert!(sim.step().unwrap_or_else(|v| panic!("{v}")));
    }
    assert_eq!(sim.durable(n3).and_then(|d| d.hard_state).map(|h| h.decided), Some(0), "not durable yet");
    fault(&mut sim, Fault::Crash(n3));
    advance(&mut sim, Duration::from_millis(500));
    assert!(sim.replica(n(1)).is_some_and(|r| r.is_decided()) && sim.replica(n(2)).is_some_and(|r| r.is_decided()));
    fault(&mut sim, Fault::Restart(n3));
    assert!(!sim.replica(n3).is_some_and(|r| r.is_decided()), "the decision was lost with the crash");
    advance(&mut sim, Duration::from_secs(10));
    assert!(sim.replica(n3).is_some_and(|r| r.is_decided()), "n3 never learned the decision again");
    sim.finish().unwrap_or_else(|v| panic!("{v}"));
}
