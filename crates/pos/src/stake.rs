//! Validators, stakes, the 2/3 rule and stake-weighted proposer selection.

use std::collections::BTreeMap;

use ballot_ledger::{Hash, PublicKey, sha256};
use serde::{Deserialize, Serialize};

/// The validators and their stakes (in the ledger's smallest unit).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorSet {
    stakes: BTreeMap<PublicKey, u64>,
    total: u64,
}

impl ValidatorSet {
    /// A set from `(key, stake)` pairs; validators with no stake are left out, and a key
    /// listed twice keeps the sum of its stakes (saturating).
    #[must_use]
    pub fn new(stakes: impl IntoIterator<Item = (PublicKey, u64)>) -> Self {
        let mut set = ValidatorSet::default();
        for (key, stake) in stakes {
            if stake > 0 {
                let s = set.stakes.entry(key).or_insert(0);
                *s = s.saturating_add(stake);
            }
        }
        set.total = set.stakes.values().fold(0u64, |t, s| t.saturating_add(*s));
        set
    }

    /// `key`'s stake (0 if it is not a validator).
    #[must_use]
    pub fn stake(&self, key: &PublicKey) -> u64 {
        self.stakes.get(key).copied().unwrap_or(0)
    }

    /// Whether `key` is a validator.
    #[must_use]
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.stakes.contains_key(key)
    }

    /// The sum of all stakes.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.total
    }

    /// How many validators there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.stakes.len()
    }

    /// Whether there is no validator.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.stakes.is_empty()
    }

    /// The validators in key order, with their stakes.
    pub fn iter(&self) -> impl Iterator<Item = (&PublicKey, u64)> {
        self.stakes.iter().map(|(k, s)| (k, *s))
    }

    /// The sum of the stakes of `keys` (each counted once; non-validators count 0).
    #[must_use]
    pub fn weight<'a>(&self, keys: impl IntoIterator<Item = &'a PublicKey>) -> u64 {
        let unique: std::collections::BTreeSet<&PublicKey> = keys.into_iter().collect();
        unique.into_iter().fold(0u64, |t, k| t.saturating_add(self.stake(k)))
    }

    /// Whether `weight` is at least 2/3 of the total stake (and the set is not empty).
    #[must_use]
    pub fn is_supermajority(&self, weight: u64) -> bool {
        self.total > 0 && u128::from(weight) * 3 >= u128::from(self.total) * 2
    }

    /// The proposer of `slot` given the epoch's `seed`: each validator with probability
    /// stake / total. The slot and seed are hashed to a number below the total stake
    /// (its modulo bias is below total / 2^64) and the validators, in key order, own
    /// consecutive ranges as wide as their stakes. `None` for an empty set.
    #[must_use]
    pub fn proposer(&self, slot: u64, seed: &Hash) -> Option<PublicKey> {
        if self.total == 0 {
            return None;
        }
        let mut input = Vec::with_capacity(19 + 32 + 8);
        input.extend_from_slice(b"ballot-pos/proposer");
        input.extend_from_slice(seed.as_bytes());
        input.extend_from_slice(&slot.to_le_bytes());
        let h = sha256(&input);
        let mut first = [0u8; 8];
        first.copy_from_slice(&h[..8]);
        let mut point = u64::from_le_bytes(first) % self.total;
        for (key, stake) in &self.stakes {
            if point < *stake {
                return Some(*key);
            }
            point -= stake;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use ballot_ledger::Keypair;

    use super::*;

    fn key(n: u64) -> PublicKey {
        Keypair::for_testing(n).public()
    }

    #[test]
    fn two_thirds_counts_and_one_unit_less_does_not() {
        let set = ValidatorSet::new([(key(1), 100), (key(2), 100), (key(3), 100)]);
        assert_eq!(set.total(), 300);
        assert!(set.is_supermajority(200));
        assert!(!set.is_supermajority(199));
        assert!(!ValidatorSet::default().is_supermajority(0));
        assert_eq!(set.weight([&key(1), &key(1), &key(2), &key(9)]), 200, "each validator counts once");
    }

    #[test]
    fn zero_stakes_are_left_out_and_repeats_add_up() {
        let set = ValidatorSet::new([(key(1), 0), (key(2), 5), (key(2), 7)]);
        assert!(!set.contains(&key(1)));
        assert_eq!((set.len(), set.stake(&key(2)), set.total()), (1, 12, 12));
    }

    #[test]
    fn proposers_are_drawn_in_proportion_to_stake() {
        let set = ValidatorSet::new([(key(1), 10), (key(2), 20), (key(3), 70)]);
        let seed = Hash([7; 32]);
        let slots = 100_000u64;
        let mut counts = BTreeMap::new();
        for slot in 0..slots {
            *counts.entry(set.proposer(slot, &seed).expect("a proposer")).or_insert(0u64) += 1;
        }
        for (k, share) in [(key(1), 0.10), (key(2), 0.20), (key(3), 0.70)] {
            let got = counts[&k] as f64 / slots as f64;
            assert!((got - share).abs() < 0.01, "{k}: {got} of the slots, stake share {share}");
        }
        assert_eq!(ValidatorSet::default().proposer(1, &seed), None);
    }

    #[test]
    fn the_seed_decides_the_proposer() {
        let set = ValidatorSet::new((1..=8).map(|i| (key(i), 1)));
        let a: Vec<_> = (0..32).map(|s| set.proposer(s, &Hash([1; 32]))).collect();
        let b: Vec<_> = (0..32).map(|s| set.proposer(s, &Hash([2; 32]))).collect();
        assert_eq!(a, (0..32).map(|s| set.proposer(s, &Hash([1; 32]))).collect::<Vec<_>>(), "deterministic");
        assert_ne!(a, b, "another seed, another schedule");
    }
}
