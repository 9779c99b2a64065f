//! Accountable safety of the finality gadget: two nodes that finalise conflicting
//! checkpoints can only do so if validators holding at least 1/3 of the stake signed
//! votes that are slashable, and the evidence against them verifies.
//!
//! The block tree has two branches from genesis, `A` and `B`, with a checkpoint per epoch
//! on each. Honest validators vote links along one branch; Byzantine ones vote along both.
//! Node 1 sees the votes for `A` (and noise), node 2 those for `B`.

use ballot_ledger::{Hash, Keypair, PublicKey};
use ballot_pos::{Checkpoint, Evidence, Finality, SignedVote, ValidatorSet, Vote, offence};
use proptest::prelude::*;

const CHAIN: u32 = 7;
const EPOCHS: u64 = 4;

fn cp(branch: u8, epoch: u64) -> Checkpoint {
    if epoch == 0 { Checkpoint { epoch: 0, root: Hash::ZERO } } else { Checkpoint { epoch, root: Hash([branch; 32]) } }
}

/// Genesis is everyone's ancestor; otherwise a checkpoint descends only from earlier
/// ones of its own branch.
fn descends(a: &Checkpoint, b: &Checkpoint) -> bool {
    a.epoch == 0 || (a.root == b.root && a.epoch <= b.epoch)
}

fn conflicting(a: &Checkpoint, b: &Checkpoint) -> bool {
    !descends(a, b) && !descends(b, a)
}

/// The links `e-1 → e` of a branch, signed by `key`.
fn branch_votes(key: &Keypair, branch: u8) -> Vec<SignedVote> {
    (1..=EPOCHS)
        .map(|e| {
            let vote = Vote { slot: e * 8, head: cp(branch, e).root, source: cp(branch, e - 1), target: cp(branch, e) };
            vote.sign(CHAIN, key).expect("sign")
        })
        .collect()
}

fn node(votes: &[SignedVote], validators: &ValidatorSet) -> Finality {
    let mut f = Finality::new(cp(0, 0));
    for v in votes {
        v.verify(CHAIN).expect("valid vote");
        f.add_vote(v.validator, &v.vote, validators, descends);
    }
    f
}

/// The validators with two votes that commit an offence, and the evidence for each.
fn slashable(votes: &[SignedVote]) -> Vec<(PublicKey, Evidence)> {
    let mut found: Vec<(PublicKey, Evidence)> = Vec::new();
    for (i, a) in votes.iter().enumerate() {
        for b in &votes[i + 1..] {
            if a.validator == b.validator
                && offence(&a.vote, &b.vote).is_some()
                && !found.iter().any(|(k, _)| *k == a.validator)
            {
                found.push((a.validator, Evidence { a: *a, b: *b }));
            }
        }
    }
    found
}

struct Run {
    validators: ValidatorSet,
    seen_by_1: Vec<SignedVote>,
    seen_by_2: Vec<SignedVote>,
    all: Vec<SignedVote>,
}

/// `stakes[i]` with `byzantine[i]`; honest validator `i` votes for branch `A` if
/// `leans_a[i]`, else `B`.
fn run(stakes: &[u64], byzantine: &[bool], leans_a: &[bool]) -> Run {
    let keys: Vec<Keypair> = (0..stakes.len()).map(|i| Keypair::for_testing(i as u64 + 1)).collect();
    let validators = ValidatorSet::new(keys.iter().zip(stakes).map(|(k, s)| (k.public(), *s)));
    let (mut seen_by_1, mut seen_by_2, mut all) = (Vec::new(), Vec::new(), Vec::new());
    for (i, key) in keys.iter().enumerate() {
        let (a, b) = (branch_votes(key, 1), branch_votes(key, 2));
        if byzantine[i] {
            seen_by_1.extend(&a);
            seen_by_2.extend(&b);
            all.extend(a.iter().chain(&b));
        } else if leans_a[i] {
            seen_by_1.extend(&a);
            all.extend(&a);
        } else {
            seen_by_2.extend(&b);
            all.extend(&b);
        }
    }
    Run { validators, seen_by_1, seen_by_2, all }
}

fn check(r: &Run) -> Result<bool, TestCaseError> {
    let (n1, n2) = (node(&r.seen_by_1, &r.validators), node(&r.seen_by_2, &r.validators));
    let (f1, f2) = (n1.finalized(), n2.finalized());
    if !conflicting(&f1, &f2) {
        return Ok(false);
    }
    let evidence = slashable(&r.all);
    for (_, e) in &evidence {
        prop_assert!(e.verify(CHAIN).is_ok(), "evidence verifies: {e:?}");
    }
    let slashed = r.validators.weight(evidence.iter().map(|(k, _)| k));
    prop_assert!(
        u128::from(slashed) * 3 >= u128::from(r.validators.total()),
        "conflicting finality ({f1:?} and {f2:?}) with only {slashed} of {} stake slashable",
        r.validators.total()
    );
    Ok(true)
}

#[test]
fn conflicting_finality_needs_a_third_of_the_stake_and_leaves_evidence_against_it() {
    // Four equal validators. Two liars (half the stake) with one honest on each side
    // finalise A at node 1 and B at node 2, and both liars are caught.
    let r = run(&[25; 4], &[true, true, false, false], &[false, false, true, false]);
    assert!(check(&r).expect("accountable"), "two liars of four make the nodes disagree");
    assert_eq!(slashable(&r.all).len(), 2);
    // One liar (a quarter): each side has at most half, and nothing conflicting is final.
    let r = run(&[25; 4], &[true, false, false, false], &[false, true, false, true]);
    assert!(!check(&r).expect("accountable"), "a quarter of the stake cannot split finality");
}

proptest! {
    #[test]
    fn any_conflicting_finality_is_accountable(
        validators in proptest::collection::vec((1u64..100, any::<bool>(), any::<bool>()), 3..9),
    ) {
        let stakes: Vec<u64> = validators.iter().map(|v| v.0).collect();
        let byzantine: Vec<bool> = validators.iter().map(|v| v.1).collect();
        let leans_a: Vec<bool> = validators.iter().map(|v| v.2).collect();
        let r = run(&stakes, &byzantine, &leans_a);
        check(&r)?;
        // Without liars nobody votes for both branches: nothing is slashable, and the
        // nodes never finalise conflicting checkpoints.
        let honest = run(&stakes, &vec![false; stakes.len()], &leans_a);
        prop_assert!(!check(&honest)?);
        prop_assert!(slashable(&honest.all).is_empty());
    }
}
