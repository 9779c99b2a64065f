//! Casper FFG: justification by 2/3 of the stake on a link, finalisation of a source
//! whose direct child checkpoint is justified.

use std::collections::{BTreeMap, BTreeSet};

use ballot_ledger::PublicKey;

use crate::{Checkpoint, ValidatorSet, Vote};

/// What a vote changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Justification {
    /// Checkpoints justified by this vote (and by votes it made count), oldest first.
    pub justified: Vec<Checkpoint>,
    /// The checkpoint finalised by it, if any.
    pub finalized: Option<Checkpoint>,
}

/// The finality gadget of one node: which checkpoints are justified and which one is
/// finalised, from the votes it has seen.
///
/// A link `source → target` counts the stake of the distinct validators that voted for
/// it. It justifies `target` once its stake is a supermajority, `source` is justified,
/// `target` is later than `source` and descends from it. A justified `target` of epoch
/// `source.epoch + 1` finalises `source`. Votes count whatever their arrival order: a
/// link whose source becomes justified later counts then. Only targets above the
/// finalised epoch that descend from the finalised checkpoint can be justified, so a
/// finalised checkpoint is never reverted. (Two nodes that saw different votes can still
/// finalise conflicting checkpoints, but only if validators with at least 1/3 of the
/// stake signed slashable votes: accountable safety.)
#[derive(Clone, Debug)]
pub struct Finality {
    justified: BTreeSet<Checkpoint>,
    latest_justified: Checkpoint,
    finalized: Checkpoint,
    links: BTreeMap<(Checkpoint, Checkpoint), BTreeSet<PublicKey>>,
}

impl Finality {
    /// Starts from `genesis`, justified and finalised.
    #[must_use]
    pub fn new(genesis: Checkpoint) -> Self {
        Finality {
            justified: BTreeSet::from([genesis]),
            latest_justified: genesis,
            finalized: genesis,
            links: BTreeMap::new(),
        }
    }

    /// The finalised checkpoint.
    #[must_use]
    pub fn finalized(&self) -> Checkpoint {
        self.finalized
    }

    /// The justified checkpoint of the highest epoch (the fork choice starts there).
    #[must_use]
    pub fn latest_justified(&self) -> Checkpoint {
        self.latest_justified
    }

    /// Whether `c` is justified.
    #[must_use]
    pub fn is_justified(&self, c: &Checkpoint) -> bool {
        self.justified.contains(c)
    }

    /// The stake behind the link `source → target` so far.
    #[must_use]
    pub fn link_stake(&self, source: &Checkpoint, target: &Checkpoint, validators: &ValidatorSet) -> u64 {
        self.links.get(&(*source, *target)).map_or(0, |voters| validators.weight(voters))
    }

    /// Counts `validator`'s `vote` (already verified by the caller: its signature, and
    /// that `validator` is in `validators`). `descends(a, b)` tells whether checkpoint
    /// `b`'s block is `a`'s block or a descendant of it.
    pub fn add_vote(
        &mut self,
        validator: PublicKey,
        vote: &Vote,
        validators: &ValidatorSet,
        descends: impl Fn(&Checkpoint, &Checkpoint) -> bool,
    ) -> Justification {
        let (source, target) = (vote.source, vote.target);
        if target.epoch <= source.epoch || target.epoch <= self.finalized.epoch || !validators.contains(&validator) {
            return Justification::default();
        }
        self.links.entry((source, target)).or_default().insert(validator);
        let mut changed = Justification::default();
        // A newly justified checkpoint can make other links count: repeat until none does.
        loop {
            let next = self.links.iter().find_map(|((s, t), voters)| {
                (self.justified.contains(s)
                    && !self.justified.contains(t)
                    && t.epoch > self.finalized.epoch
                    && validators.is_supermajority(validators.weight(voters))
                    && descends(s, t)
                    && descends(&self.finalized, t))
                .then_some((*s, *t))
            });
            let Some((s, t)) = next else { break };
            self.justified.insert(t);
            changed.justified.push(t);
            if t.epoch > self.latest_justified.epoch {
                self.latest_justified = t;
            }
            if t.epoch == s.epoch + 1 && s.epoch > self.finalized.epoch && descends(&self.finalized, &s) {
                self.finalized = s;
                changed.finalized = Some(s);
                let floor = s.epoch;
                self.links.retain(|(_, t), _| t.epoch > floor);
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use ballot_ledger::{Hash, Keypair};

    use super::*;

    fn key(n: u64) -> PublicKey {
        Keypair::for_testing(n).public()
    }

    fn cp(epoch: u64, root: u8) -> Checkpoint {
        Checkpoint { epoch, root: Hash([root; 32]) }
    }

    fn link(source: Checkpoint, target: Checkpoint) -> Vote {
        Vote { slot: target.epoch * 8, head: target.root, source, target }
    }

    /// A chain: every checkpoint descends from every earlier one.
    fn chain(_: &Checkpoint, _: &Checkpoint) -> bool {
        true
    }

    fn four() -> ValidatorSet {
        ValidatorSet::new((1..=4).map(|i| (key(i), 25)))
    }

    #[test]
    fn two_thirds_justify_and_the_next_epoch_finalizes() {
        let set = four();
        let mut f = Finality::new(cp(0, 0));
        let (g, c1, c2) = (cp(0, 0), cp(1, 1), cp(2, 2));
        assert_eq!(f.add_vote(key(1), &link(g, c1), &set, chain), Justification::default());
        assert_eq!(f.add_vote(key(2), &link(g, c1), &set, chain), Justification::default(), "1/2 is not enough");
        let j = f.add_vote(key(3), &link(g, c1), &set, chain);
        assert_eq!(j.justified, vec![c1]);
        assert_eq!(j.finalized, None, "genesis was final already");
        assert_eq!(f.latest_justified(), c1);
        for i in 1..=3 {
            let j = f.add_vote(key(i), &link(c1, c2), &set, chain);
            if i == 3 {
                assert_eq!(j, Justification { justified: vec![c2], finalized: Some(c1) });
            }
        }
        assert_eq!(f.finalized(), c1);
    }

    #[test]
    fn a_link_from_an_unjustified_source_counts_once_the_source_is_justified() {
        let set = four();
        let mut f = Finality::new(cp(0, 0));
        let (g, c1, c2) = (cp(0, 0), cp(1, 1), cp(2, 2));
        for i in 1..=3 {
            f.add_vote(key(i), &link(c1, c2), &set, chain);
        }
        assert!(!f.is_justified(&c2));
        let mut last = Justification::default();
        for i in 1..=3 {
            last = f.add_vote(key(i), &link(g, c1), &set, chain);
        }
        assert_eq!(last, Justification { justified: vec![c1, c2], finalized: Some(c1) });
    }

    #[test]
    fn skipping_an_epoch_justifies_without_finalizing() {
        let set = four();
        let mut f = Finality::new(cp(0, 0));
        let (g, c2) = (cp(0, 0), cp(2, 2));
        for i in 1..=3 {
            f.add_vote(key(i), &link(g, c2), &set, chain);
        }
        assert!(f.is_justified(&c2));
        assert_eq!(f.finalized(), g);
    }

    #[test]
    fn a_target_off_the_sources_branch_is_not_justified() {
        let set = four();
        let mut f = Finality::new(cp(0, 0));
        for i in 1..=4 {
            f.add_vote(key(i), &link(cp(0, 0), cp(1, 1)), &set, |_, _| false);
        }
        assert!(!f.is_justified(&cp(1, 1)));
    }

    #[test]
    fn repeated_votes_and_strangers_do_not_add_stake() {
        let set = four();
        let mut f = Finality::new(cp(0, 0));
        let v = link(cp(0, 0), cp(1, 1));
        for _ in 0..5 {
            f.add_vote(key(1), &v, &set, chain);
            f.add_vote(key(9), &v, &set, chain);
        }
        assert_eq!(f.link_stake(&cp(0, 0), &cp(1, 1), &set), 25);
        assert!(!f.is_justified(&cp(1, 1)));
    }

    #[test]
    fn nothing_at_or_below_the_finalized_epoch_changes() {
        let set = four();
        let mut f = Finality::new(cp(0, 0));
        let (g, c1, c2) = (cp(0, 0), cp(1, 1), cp(2, 2));
        for i in 1..=3 {
            f.add_vote(key(i), &link(g, c1), &set, chain);
            f.add_vote(key(i), &link(c1, c2), &set, chain);
        }
        assert_eq!(f.finalized(), c1);
        // A conflicting checkpoint of epoch 1 gets every vote: it stays unjustified.
        let other = cp(1, 7);
        for i in 1..=4 {
            assert_eq!(f.add_vote(key(i), &link(g, other), &set, chain), Justification::default());
        }
        assert!(!f.is_justified(&other));
        assert_eq!(f.finalized(), c1);
    }
}
