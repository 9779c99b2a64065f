//! Signed block headers, and the evidence of a proposer that signed two for one slot.

use ballot_ledger::{Hash, Keypair, PublicKey, Signature, sha256d};
use serde::{Deserialize, Serialize};

use crate::PosError;

/// The domain tag in front of every signed header.
const DOMAIN: &[u8] = b"ballot-pos/header/v1";

/// What a proposer signs for its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// The slot.
    pub slot: u64,
    /// The proposer (the slot's proposer in the validator set of its epoch).
    pub proposer: PublicKey,
    /// The parent block.
    pub parent: Hash,
    /// A digest of the block's contents (transactions, attestations, evidence).
    pub body: Hash,
    /// The proposer's RANDAO reveal for the slot's epoch.
    pub reveal: Signature,
}

impl BlockHeader {
    /// The bytes the proposer signs: the domain tag, the chain id and the fields.
    #[must_use]
    pub fn signing_bytes(&self, chain_id: u32) -> Vec<u8> {
        let mut b = Vec::with_capacity(DOMAIN.len() + 4 + 8 + 32 * 3 + 64);
        b.extend_from_slice(DOMAIN);
        b.extend_from_slice(&chain_id.to_le_bytes());
        b.extend_from_slice(&self.slot.to_le_bytes());
        b.extend_from_slice(&self.proposer.0);
        b.extend_from_slice(self.parent.as_bytes());
        b.extend_from_slice(self.body.as_bytes());
        b.extend_from_slice(&self.reveal.0);
        b
    }

    /// The block's hash: SHA-256d of the signing bytes.
    #[must_use]
    pub fn hash(&self, chain_id: u32) -> Hash {
        sha256d(&self.signing_bytes(chain_id))
    }

    /// Signs the header with `key`, which must be its proposer's.
    ///
    /// # Errors
    /// [`PosError::BadSignature`] if `key` is not the proposer's.
    pub fn sign(self, chain_id: u32, key: &Keypair) -> Result<SignedHeader, PosError> {
        if key.public() != self.proposer {
            return Err(PosError::BadSignature(key.public()));
        }
        Ok(SignedHeader { signature: key.sign(&self.signing_bytes(chain_id)), header: self })
    }
}

/// A header with its proposer's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHeader {
    /// The header.
    pub header: BlockHeader,
    /// The proposer's signature of [`BlockHeader::signing_bytes`].
    pub signature: Signature,
}

impl SignedHeader {
    /// Checks the proposer's signature for chain `chain_id`.
    ///
    /// # Errors
    /// [`PosError::BadSignature`].
    pub fn verify(&self, chain_id: u32) -> Result<(), PosError> {
        let h = &self.header;
        if h.proposer.verify(&h.signing_bytes(chain_id), &self.signature) {
            Ok(())
        } else {
            Err(PosError::BadSignature(h.proposer))
        }
    }
}

/// Two different headers one proposer signed for one slot: slashable like a double vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposerEvidence {
    /// One header.
    pub a: SignedHeader,
    /// The other.
    pub b: SignedHeader,
}

impl ProposerEvidence {
    /// Checks the evidence for chain `chain_id` and returns the offender.
    ///
    /// # Errors
    /// [`PosError::NotEvidence`] or the signature's [`PosError`].
    pub fn verify(&self, chain_id: u32) -> Result<PublicKey, PosError> {
        let (a, b) = (&self.a.header, &self.b.header);
        if a.proposer != b.proposer {
            return Err(PosError::NotEvidence("the headers are by different proposers"));
        }
        if a.slot != b.slot {
            return Err(PosError::NotEvidence("the headers are for different slots"));
        }
        if a == b {
            return Err(PosError::NotEvidence("the headers are the same"));
        }
        self.a.verify(chain_id)?;
        self.b.verify(chain_id)?;
        Ok(a.proposer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Randao;

    fn header(key: &Keypair, slot: u64, body: u8) -> BlockHeader {
        BlockHeader {
            slot,
            proposer: key.public(),
            parent: Hash([1; 32]),
            body: Hash([body; 32]),
            reveal: Randao::reveal(key, 7, slot / 8),
        }
    }

    #[test]
    fn two_headers_for_one_slot_prove_an_equivocating_proposer() {
        let (k, other) = (Keypair::for_testing(1), Keypair::for_testing(2));
        let sign = |h: BlockHeader, k: &Keypair| h.sign(7, k).expect("sign");
        let e = ProposerEvidence { a: sign(header(&k, 9, 1), &k), b: sign(header(&k, 9, 2), &k) };
        assert_eq!(e.verify(7), Ok(k.public()));
        assert!(e.verify(8).is_err(), "another chain");
        let same = ProposerEvidence { a: e.a, b: e.a };
        assert_eq!(same.verify(7), Err(PosError::NotEvidence("the headers are the same")));
        let slots = ProposerEvidence { a: e.a, b: sign(header(&k, 10, 2), &k) };
        assert_eq!(slots.verify(7), Err(PosError::NotEvidence("the headers are for different slots")));
        let two = ProposerEvidence { a: e.a, b: sign(header(&other, 9, 2), &other) };
        assert_eq!(two.verify(7), Err(PosError::NotEvidence("the headers are by different proposers")));
        let mut forged = e;
        forged.b.header.body = Hash([3; 32]);
        assert_eq!(forged.verify(7), Err(PosError::BadSignature(k.public())));
        assert_eq!(header(&k, 9, 1).sign(7, &other), Err(PosError::BadSignature(other.public())), "not the proposer");
        assert_ne!(header(&k, 9, 1).hash(7), header(&k, 9, 2).hash(7));
    }
}
