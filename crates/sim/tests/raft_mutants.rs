//! The checkers catch real bugs in the real Raft: each test wraps `ballot_raft::Raft` in
//! a mutant that breaks one durability rule, runs seeds until a checker fires, and
//! asserts which invariant broke. (The unmutated Raft passes the same seeds: see
//! `raft_seeds.rs`.)

mod common;

use ballot_core::{Recovered, Role};
use ballot_raft::{Entry, HardState, Raft};
use ballot_sim::raft::{RaftAlgorithm, RaftView, raft_checkers};
use common::mutant::{Mutant, MutantAlgorithm, Mutation, detection_rates, first_violation};

impl RaftView for Mutant<Raft> {
    fn term(&self) -> u64 {
        self.inner.term()
    }
    fn role(&self) -> Role {
        self.inner.role()
    }
    fn commit_index(&self) -> u64 {
        self.inner.commit_index()
    }
    fn snapshot_index(&self) -> u64 {
        self.inner.snapshot_index()
    }
    fn last_index(&self) -> u64 {
        self.inner.last_index()
    }
    fn term_at(&self, index: u64) -> Option<u64> {
        self.inner.term_at(index)
    }
    fn entry(&self, index: u64) -> Option<&Entry> {
        self.inner.entry(index)
    }
}

/// Raft under `mutation`; on restart, a replica forgets its vote (a restarted node may
/// vote twice in one term).
fn mutant(mutation: Mutation) -> MutantAlgorithm<RaftAlgorithm> {
    fn forget_vote(recovered: &mut Recovered<Entry, HardState>) {
        if let Some(hs) = recovered.hard_state.as_mut() {
            hs.vote = None;
        }
    }
    MutantAlgorithm {
        inner: RaftAlgorithm::default(),
        mutation,
        damage: forget_vote,
        checkers: raft_checkers,
        name: "raft-mutant",
    }
}

/// The checkers of protocol invariants (as opposed to the simulator's own guards).
const INVARIANTS: [&str; 10] = [
    "ElectionSafety",
    "LeaderAppendOnly",
    "LogMatching",
    "LeaderCompleteness",
    "StateMachineSafety",
    "Integrity",
    "Linearizability",
    "Liveness",
    "Convergence",
    "LogConvergence",
];

#[test]
fn a_disk_that_lies_about_durability_is_caught() {
    let (seed, v) = first_violation(|| mutant(Mutation::AckBeforeDurable), 300);
    eprintln!("AckBeforeDurable caught at seed {seed}:\n{v}");
    // Lost acknowledged writes show up as lost committed entries (safety), or as a
    // replica that can no longer catch up (liveness, convergence).
    assert!(INVARIANTS.contains(&v.checker.as_str()), "expected an invariant checker: {v}");
    assert_eq!(v.replay, format!("cargo xtask sim --algo raft-mutant --seed {seed} --nodes 3"));
}

#[test]
fn voting_twice_after_a_restart_is_caught() {
    // The current ballot-raft first shows it at seed 572 (ElectionSafety).
    let (seed, v) = first_violation(|| mutant(Mutation::OnRestart), 800);
    eprintln!("ForgetVoteOnRestart caught at seed {seed}:\n{v}");
    let safety = ["ElectionSafety", "LogMatching", "LeaderCompleteness", "StateMachineSafety", "Linearizability"];
    assert!(safety.contains(&v.checker.as_str()), "expected a safety checker: {v}");
}

/// How sensitive the fault model and checkers are: the share of seeds that expose each
/// mutant, and which checkers fire. Informational; `cargo test -- --ignored` runs it.
#[test]
#[ignore = "informational, about a minute"]
fn mutant_detection_rates() {
    for mutation in [Mutation::AckBeforeDurable, Mutation::OnRestart] {
        let seeds = 100;
        let by_checker = detection_rates(|| mutant(mutation), seeds);
        let caught: u64 = by_checker.values().sum();
        eprintln!("{mutation:?}: caught in {caught} of {} runs: {by_checker:?}", 2 * seeds);
        assert!(caught > 0);
    }
}
