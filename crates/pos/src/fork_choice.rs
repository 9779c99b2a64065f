//! LMD-GHOST: the head is found by descending, from the latest justified checkpoint,
//! into the child whose subtree holds the most stake among validators' latest votes.

use std::collections::HashMap;

use ballot_ledger::{Hash, PublicKey};

use crate::{PosError, ValidatorSet};

/// The block tree and each validator's latest vote.
#[derive(Clone, Debug)]
pub struct ForkChoice {
    /// Block -> (parent, slot).
    blocks: HashMap<Hash, (Hash, u64)>,
    children: HashMap<Hash, Vec<Hash>>,
    /// Validator -> (slot, head) of its latest vote.
    latest: HashMap<PublicKey, (u64, Hash)>,
}

impl ForkChoice {
    /// A tree holding only `genesis`.
    #[must_use]
    pub fn new(genesis: Hash) -> Self {
        ForkChoice {
            blocks: HashMap::from([(genesis, (genesis, 0))]),
            children: HashMap::new(),
            latest: HashMap::new(),
        }
    }

    /// Adds `block` of `slot` under `parent`.
    ///
    /// # Errors
    /// [`PosError::BadBlock`] for a known block, an unknown parent, or a slot not after
    /// the parent's.
    pub fn add_block(&mut self, block: Hash, parent: Hash, slot: u64) -> Result<(), PosError> {
        let bad = |reason| Err(PosError::BadBlock { block, reason });
        if self.blocks.contains_key(&block) {
            return bad("already known");
        }
        let Some(&(_, parent_slot)) = self.blocks.get(&parent) else {
            return bad("unknown parent");
        };
        if slot <= parent_slot {
            return bad("slot not after its parent's");
        }
        self.blocks.insert(block, (parent, slot));
        self.children.entry(parent).or_default().push(block);
        Ok(())
    }

    /// Whether `block` is known.
    #[must_use]
    pub fn contains(&self, block: &Hash) -> bool {
        self.blocks.contains_key(block)
    }

    /// The slot of `block`, if known.
    #[must_use]
    pub fn slot(&self, block: &Hash) -> Option<u64> {
        self.blocks.get(block).map(|&(_, slot)| slot)
    }

    /// `from` and its ancestors down to genesis, newest first, with their slots (nothing
    /// if `from` is unknown).
    pub fn ancestors(&self, from: Hash) -> impl Iterator<Item = (Hash, u64)> + '_ {
        let mut next = self.blocks.get(&from).map(|&(parent, slot)| (from, parent, slot));
        std::iter::from_fn(move || {
            let (at, parent, slot) = next?;
            next = if parent == at { None } else { self.blocks.get(&parent).map(|&(p, s)| (parent, p, s)) };
            Some((at, slot))
        })
    }

    /// Whether `descendant` is `ancestor` (known or not) or below it.
    #[must_use]
    pub fn descends(&self, ancestor: &Hash, descendant: &Hash) -> bool {
        ancestor == descendant || self.ancestors(*descendant).any(|(at, _)| at == *ancestor)
    }

    /// Records `validator`'s vote for `head` in `slot`, if it is newer than the one held
    /// (latest message driven: only each validator's newest vote counts).
    pub fn on_vote(&mut self, validator: PublicKey, slot: u64, head: Hash) {
        let newer = self.latest.get(&validator).is_none_or(|&(s, _)| slot > s);
        if newer {
            self.latest.insert(validator, (slot, head));
        }
    }

    /// The head of the chain from `justified` (the latest justified checkpoint's block):
    /// at each block, the child whose subtree holds the most stake of `validators`'
    /// latest votes, ties going to the higher hash. Votes for blocks not yet known, and
    /// of validators no longer in the set (slashed or unbonded), weigh nothing.
    #[must_use]
    pub fn head(&self, justified: Hash, validators: &ValidatorSet) -> Hash {
        let mut weight: HashMap<Hash, u64> = HashMap::new();
        for (validator, (_, head)) in &self.latest {
            let stake = validators.stake(validator);
            if stake == 0 || !self.blocks.contains_key(head) {
                continue;
            }
            let mut at = *head;
            loop {
                let w = weight.entry(at).or_insert(0);
                *w = w.saturating_add(stake);
                match self.blocks.get(&at) {
                    Some(&(parent, _)) if parent != at && at != justified => at = parent,
                    _ => break,
                }
            }
        }
        let mut head = justified;
        while let Some(kids) = self.children.get(&head) {
            let Some(best) = kids.iter().max_by_key(|k| (weight.get(*k).copied().unwrap_or(0), **k)) else {
                break;
            };
            head = *best;
        }
        head
    }
}

#[cfg(test)]
mod tests {
    use ballot_ledger::Keypair;

    use super::*;

    fn h(n: u8) -> Hash {
        Hash([n; 32])
    }

    fn key(n: u64) -> PublicKey {
        Keypair::for_testing(n).public()
    }

    /// genesis 0 -> 1 -> {2 -> 4, 3}
    fn tree() -> ForkChoice {
        let mut f = ForkChoice::new(h(0));
        f.add_block(h(1), h(0), 1).unwrap();
        f.add_block(h(2), h(1), 2).unwrap();
        f.add_block(h(3), h(1), 2).unwrap();
        f.add_block(h(4), h(2), 3).unwrap();
        f
    }

    #[test]
    fn the_heaviest_subtree_wins_not_the_longest_branch() {
        let mut f = tree();
        let set = ValidatorSet::new([(key(1), 10), (key(2), 10), (key(3), 30)]);
        f.on_vote(key(1), 3, h(4));
        f.on_vote(key(2), 3, h(4));
        assert_eq!(f.head(h(0), &set), h(4));
        f.on_vote(key(3), 3, h(3));
        assert_eq!(f.head(h(0), &set), h(3), "30 on the short branch beats 20 on the long one");
    }

    #[test]
    fn only_the_latest_vote_counts_and_removed_validators_weigh_nothing() {
        let mut f = tree();
        let set = ValidatorSet::new([(key(1), 10), (key(2), 20)]);
        f.on_vote(key(1), 3, h(4));
        f.on_vote(key(2), 3, h(3));
        assert_eq!(f.head(h(0), &set), h(3));
        f.on_vote(key(2), 4, h(4));
        assert_eq!(f.head(h(0), &set), h(4), "key 2 moved");
        f.on_vote(key(2), 2, h(3));
        assert_eq!(f.head(h(0), &set), h(4), "an older vote is ignored");
        f.on_vote(key(1), 5, h(3));
        let without_2 = ValidatorSet::new([(key(1), 10)]);
        assert_eq!(f.head(h(0), &without_2), h(3), "key 2 was slashed");
    }

    #[test]
    fn the_head_descends_from_the_justified_block_and_ties_go_to_the_higher_hash() {
        let mut f = tree();
        let set = ValidatorSet::new([(key(1), 10), (key(2), 10)]);
        assert_eq!(f.head(h(1), &set), h(3), "no votes: the higher hash at each step");
        f.on_vote(key(1), 3, h(4));
        f.on_vote(key(2), 3, h(3));
        assert_eq!(f.head(h(1), &set), h(3), "a tie");
        assert_eq!(f.head(h(2), &set), h(4), "the justified block bounds the head");
    }

    #[test]
    fn bad_blocks_are_refused_and_ancestry_is_known() {
        let mut f = tree();
        assert!(matches!(f.add_block(h(4), h(2), 9), Err(PosError::BadBlock { reason: "already known", .. })));
        assert!(matches!(f.add_block(h(5), h(9), 9), Err(PosError::BadBlock { reason: "unknown parent", .. })));
        assert!(matches!(
            f.add_block(h(5), h(2), 2),
            Err(PosError::BadBlock { reason: "slot not after its parent's", .. })
        ));
        assert!(f.descends(&h(1), &h(4)) && f.descends(&h(4), &h(4)) && f.descends(&h(0), &h(3)));
        assert!(!f.descends(&h(2), &h(3)) && !f.descends(&h(4), &h(1)) && !f.descends(&h(1), &h(9)));
    }
}
