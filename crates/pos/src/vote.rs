//! Attestations: a head vote for the fork choice and a source → target link for finality.

use ballot_ledger::{Hash, Keypair, PublicKey, Signature};
use serde::{Deserialize, Serialize};

use crate::PosError;

/// The block at the start of an epoch (or the latest block before it) as a validator
/// sees it: the unit Casper FFG justifies and finalises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The epoch.
    pub epoch: u64,
    /// The block.
    pub root: Hash,
}

/// What a validator attests to in `slot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Vote {
    /// The slot of the attestation.
    pub slot: u64,
    /// The head of the chain in the validator's view (LMD-GHOST's latest message).
    pub head: Hash,
    /// The latest justified checkpoint in the validator's view.
    pub source: Checkpoint,
    /// The checkpoint of the current epoch.
    pub target: Checkpoint,
}

/// The domain tag in front of every signed vote, so that a vote's signature can never
/// pass for a transaction's or a reveal's.
const DOMAIN: &[u8] = b"ballot-pos/vote/v1";

impl Vote {
    /// The bytes a validator signs: the domain tag, the chain id and the fields in a
    /// fixed layout.
    #[must_use]
    pub fn signing_bytes(&self, chain_id: u32) -> Vec<u8> {
        let mut b = Vec::with_capacity(DOMAIN.len() + 4 + 8 * 3 + 32 * 3);
        b.extend_from_slice(DOMAIN);
        b.extend_from_slice(&chain_id.to_le_bytes());
        b.extend_from_slice(&self.slot.to_le_bytes());
        b.extend_from_slice(self.head.as_bytes());
        for c in [self.source, self.target] {
            b.extend_from_slice(&c.epoch.to_le_bytes());
            b.extend_from_slice(c.root.as_bytes());
        }
        b
    }

    /// Signs the vote as `key` for chain `chain_id`.
    ///
    /// # Errors
    /// [`PosError::TargetNotAfterSource`] for a link that goes nowhere.
    pub fn sign(self, chain_id: u32, key: &Keypair) -> Result<SignedVote, PosError> {
        self.check()?;
        Ok(SignedVote { validator: key.public(), signature: key.sign(&self.signing_bytes(chain_id)), vote: self })
    }

    /// The rule every vote obeys: its target comes after its source.
    ///
    /// # Errors
    /// [`PosError::TargetNotAfterSource`].
    pub fn check(&self) -> Result<(), PosError> {
        if self.target.epoch <= self.source.epoch {
            return Err(PosError::TargetNotAfterSource {
                source_epoch: self.source.epoch,
                target_epoch: self.target.epoch,
            });
        }
        Ok(())
    }
}

/// A vote with its validator's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedVote {
    /// The validator.
    pub validator: PublicKey,
    /// What it voted for.
    pub vote: Vote,
    /// Its signature of [`Vote::signing_bytes`].
    pub signature: Signature,
}

impl SignedVote {
    /// Checks the vote's shape and its signature for chain `chain_id`.
    ///
    /// # Errors
    /// [`PosError::TargetNotAfterSource`] or [`PosError::BadSignature`].
    pub fn verify(&self, chain_id: u32) -> Result<(), PosError> {
        self.vote.check()?;
        if self.validator.verify(&self.vote.signing_bytes(chain_id), &self.signature) {
            Ok(())
        } else {
            Err(PosError::BadSignature(self.validator))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote() -> Vote {
        Vote {
            slot: 9,
            head: Hash([3; 32]),
            source: Checkpoint { epoch: 1, root: Hash([1; 32]) },
            target: Checkpoint { epoch: 2, root: Hash([2; 32]) },
        }
    }

    #[test]
    fn a_signed_vote_verifies_only_unchanged_and_on_its_chain() {
        let key = Keypair::for_testing(1);
        let signed = vote().sign(7, &key).expect("sign");
        assert_eq!(signed.verify(7), Ok(()));
        assert_eq!(signed.verify(8), Err(PosError::BadSignature(key.public())), "another chain");
        let mut moved = signed;
        moved.vote.target.root = Hash([9; 32]);
        assert_eq!(moved.verify(7), Err(PosError::BadSignature(key.public())), "another target");
        let mut stolen = signed;
        stolen.validator = Keypair::for_testing(2).public();
        assert!(stolen.verify(7).is_err(), "another validator's name");
    }

    #[test]
    fn a_link_must_go_forward() {
        let mut v = vote();
        v.target.epoch = v.source.epoch;
        assert_eq!(
            v.sign(7, &Keypair::for_testing(1)),
            Err(PosError::TargetNotAfterSource { source_epoch: 1, target_epoch: 1 })
        );
    }
}
