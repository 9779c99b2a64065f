//! The slashing conditions of Casper FFG and the evidence that proves them.

use serde::{Deserialize, Serialize};

use crate::{PosError, SignedVote, Vote};

/// What a validator did that forfeits its stake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Offence {
    /// Two different votes for the same target epoch.
    DoubleVote,
    /// One vote's link strictly inside the other's: `s1 < s2` and `t2 < t1`.
    SurroundVote,
}

/// The offence two votes by one validator commit together, if any (the order of `a`
/// and `b` does not matter).
#[must_use]
pub fn offence(a: &Vote, b: &Vote) -> Option<Offence> {
    if a == b {
        return None;
    }
    if a.target.epoch == b.target.epoch {
        return Some(Offence::DoubleVote);
    }
    let surrounds = |x: &Vote, y: &Vote| x.source.epoch < y.source.epoch && y.target.epoch < x.target.epoch;
    (surrounds(a, b) || surrounds(b, a)).then_some(Offence::SurroundVote)
}

/// Two signed votes by one validator that together commit an offence: what anyone may
/// submit to have the validator's stake burnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// One vote.
    pub a: SignedVote,
    /// The other.
    pub b: SignedVote,
}

impl Evidence {
    /// Checks the evidence for chain `chain_id`: one validator, two valid signatures,
    /// and an offence. Returns the offence.
    ///
    /// # Errors
    /// [`PosError::NotEvidence`] or the signature's [`PosError`].
    pub fn verify(&self, chain_id: u32) -> Result<Offence, PosError> {
        if self.a.validator != self.b.validator {
            return Err(PosError::NotEvidence("the votes are by different validators"));
        }
        self.a.verify(chain_id)?;
        self.b.verify(chain_id)?;
        offence(&self.a.vote, &self.b.vote).ok_or(PosError::NotEvidence("the votes are compatible"))
    }
}

#[cfg(test)]
mod tests {
    use ballot_ledger::{Hash, Keypair};

    use super::*;
    use crate::Checkpoint;

    fn vote(source: u64, target: u64, root: u8) -> Vote {
        Vote {
            slot: target * 8,
            head: Hash([root; 32]),
            source: Checkpoint { epoch: source, root: Hash([0; 32]) },
            target: Checkpoint { epoch: target, root: Hash([root; 32]) },
        }
    }

    #[test]
    fn double_and_surround_votes_are_offences_and_compatible_votes_are_not() {
        assert_eq!(offence(&vote(0, 2, 1), &vote(0, 2, 2)), Some(Offence::DoubleVote));
        assert_eq!(offence(&vote(1, 2, 1), &vote(0, 2, 1)), Some(Offence::DoubleVote), "another source");
        assert_eq!(offence(&vote(0, 5, 1), &vote(1, 4, 1)), Some(Offence::SurroundVote));
        assert_eq!(offence(&vote(1, 4, 1), &vote(0, 5, 1)), Some(Offence::SurroundVote), "either order");
        assert_eq!(offence(&vote(0, 2, 1), &vote(0, 2, 1)), None, "the same vote twice");
        assert_eq!(offence(&vote(0, 1, 1), &vote(1, 2, 1)), None, "a chain of links");
        assert_eq!(offence(&vote(0, 3, 1), &vote(0, 4, 1)), None, "a shared source");
        assert_eq!(offence(&vote(0, 3, 1), &vote(2, 5, 1)), None, "overlapping, not surrounding");
    }

    #[test]
    fn evidence_needs_one_validator_two_signatures_and_an_offence() {
        let (k1, k2) = (Keypair::for_testing(1), Keypair::for_testing(2));
        let sign = |v: Vote, k: &Keypair| v.sign(7, k).expect("sign");
        let double = Evidence { a: sign(vote(0, 2, 1), &k1), b: sign(vote(0, 2, 2), &k1) };
        assert_eq!(double.verify(7), Ok(Offence::DoubleVote));
        assert!(double.verify(8).is_err(), "signed for another chain");
        let two = Evidence { a: sign(vote(0, 2, 1), &k1), b: sign(vote(0, 2, 2), &k2) };
        assert_eq!(two.verify(7), Err(PosError::NotEvidence("the votes are by different validators")));
        let fine = Evidence { a: sign(vote(0, 1, 1), &k1), b: sign(vote(1, 2, 1), &k1) };
        assert_eq!(fine.verify(7), Err(PosError::NotEvidence("the votes are compatible")));
        let mut forged = double;
        forged.b.vote.target.root = Hash([5; 32]);
        assert_eq!(forged.verify(7), Err(PosError::BadSignature(k1.public())));
    }
}
