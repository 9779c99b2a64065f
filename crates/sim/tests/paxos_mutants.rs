//! The checkers catch real bugs in the real Multi-Paxos and Synod: each test wraps the
//! replicas in a mutant that breaks one durability rule, runs seeds until a checker
//! fires, and asserts which invariant broke. (The unmutated algorithms pass the same
//! seeds: see `multipaxos_seeds.rs` and `synod_seeds.rs`.)

mod common;

use ballot_core::Recovered;
use ballot_paxos::{Ballot, Entry, HardState, MultiPaxos, Synod, Value};
use ballot_sim::paxos::{MultiPaxosAlgorithm, PaxosView, SynodAlgorithm, paxos_checkers};
use common::mutant::{Mutant, MutantAlgorithm, Mutation, detection_rates, first_violation};

impl<P: PaxosView> PaxosView for Mutant<P> {
    fn promised(&self) -> Ballot {
        self.inner.promised()
    }
    fn commit_index(&self) -> u64 {
        self.inner.commit_index()
    }
    fn first_index(&self) -> u64 {
        self.inner.first_index()
    }
    fn last_index(&self) -> u64 {
        self.inner.last_index()
    }
    fn decided(&self, slot: u64) -> Option<&Value> {
        self.inner.decided(slot)
    }
    fn accepted(&self, slot: u64) -> Option<(Ballot, &Value)> {
        self.inner.accepted(slot)
    }
}

/// On restart, an acceptor forgets its promise and every value it accepted but had not
/// learned decided: it may now accept what it promised to refuse, and phase 1 misses
/// what it accepted.
fn forget_acceptor_state(recovered: &mut Recovered<Entry, HardState>) {
    if let Some(hs) = recovered.hard_state.as_mut() {
        hs.promised = Ballot::ZERO;
        let decided = hs.decided;
        recovered.entries.retain(|e| e.slot <= decided);
    } else {
        recovered.entries.clear();
    }
}

fn multipaxos(mutation: Mutation) -> MutantAlgorithm<MultiPaxosAlgorithm> {
    MutantAlgorithm {
        inner: MultiPaxosAlgorithm::default(),
        mutation,
        damage: forget_acceptor_state,
        checkers: paxos_checkers::<Mutant<MultiPaxos>>,
        name: "multipaxos-mutant",
    }
}

fn synod(mutation: Mutation) -> MutantAlgorithm<SynodAlgorithm> {
    MutantAlgorithm {
        inner: SynodAlgorithm::default(),
        mutation,
        damage: forget_acceptor_state,
        checkers: paxos_checkers::<Mutant<Synod>>,
        name: "synod-mutant",
    }
}

/// Safety checkers (as opposed to liveness and the simulator's own guards).
const SAFETY: [&str; 7] = [
    "StateMachineSafety",
    "Validity",
    "Linearizability",
    "PromiseMonotonic",
    "DecisionStability",
    "OneValuePerBallot",
    "Integrity",
];

#[test]
fn multipaxos_forgetting_its_promise_on_restart_is_caught() {
    let (seed, v) = first_violation(|| multipaxos(Mutation::OnRestart), 100);
    eprintln!("multipaxos forgetting its promise caught at seed {seed}:\n{v}");
    assert_eq!(v.checker, "PromiseMonotonic", "{v}");
    assert_eq!(v.replay, format!("cargo xtask sim --algo multipaxos-mutant --seed {seed} --nodes 3"));
}

#[test]
fn multipaxos_on_a_disk_that_lies_about_durability_is_caught() {
    let (seed, v) = first_violation(|| multipaxos(Mutation::AckBeforeDurable), 300);
    eprintln!("multipaxos on a lying disk caught at seed {seed}:\n{v}");
    assert!(SAFETY.contains(&v.checker.as_str()) || v.checker == "Liveness", "{v}");
}

#[test]
fn a_synod_acceptor_forgetting_its_promise_on_restart_is_caught() {
    let (seed, v) = first_violation(|| synod(Mutation::OnRestart), 100);
    eprintln!("synod forgetting its promise caught at seed {seed}:\n{v}");
    assert!(SAFETY.contains(&v.checker.as_str()), "{v}");
}

/// How sensitive the fault model and checkers are: the share of seeds that expose each
/// mutant, and which checkers fire. Informational; `cargo test -- --ignored` runs it.
#[test]
#[ignore = "informational, about a minute"]
fn mutant_detection_rates() {
    for mutation in [Mutation::AckBeforeDurable, Mutation::OnRestart] {
        let seeds = 100;
        let mp = detection_rates(|| multipaxos(mutation), seeds);
        eprintln!("multipaxos {mutation:?}: caught in {} of {} runs: {mp:?}", mp.values().sum::<u64>(), 2 * seeds);
        let sy = detection_rates(|| synod(mutation), seeds);
        eprintln!("synod {mutation:?}: caught in {} of {} runs: {sy:?}", sy.values().sum::<u64>(), 2 * seeds);
        assert!(mp.values().sum::<u64>() > 0);
    }
}
