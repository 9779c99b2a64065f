//! RANDAO: the randomness beacon that seeds proposer selection.

use ballot_ledger::{Hash, Keypair, PublicKey, Signature, sha256};
use serde::{Deserialize, Serialize};

use crate::PosError;

/// The domain tag of a reveal, so that it can never pass for a vote or a transaction.
const DOMAIN: &[u8] = b"ballot-pos/randao/v1";

/// The running random value: every block mixes in its proposer's reveal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Randao {
    mix: Hash,
}

impl Randao {
    /// Starts from `genesis` (a value fixed in the genesis file).
    #[must_use]
    pub fn new(genesis: Hash) -> Self {
        Randao { mix: genesis }
    }

    /// The current value: the seed of the next epoch's proposers.
    #[must_use]
    pub fn mix(&self) -> Hash {
        self.mix
    }

    /// What a proposer signs to reveal for `epoch` of chain `chain_id`.
    #[must_use]
    pub fn reveal_message(chain_id: u32, epoch: u64) -> Vec<u8> {
        let mut m = Vec::with_capacity(DOMAIN.len() + 12);
        m.extend_from_slice(DOMAIN);
        m.extend_from_slice(&chain_id.to_le_bytes());
        m.extend_from_slice(&epoch.to_le_bytes());
        m
    }

    /// `key`'s reveal for `epoch`: its signature of [`Randao::reveal_message`]. Ed25519
    /// signatures are deterministic, so a validator has exactly one reveal per epoch and
    /// cannot grind it.
    #[must_use]
    pub fn reveal(key: &Keypair, chain_id: u32, epoch: u64) -> Signature {
        key.sign(&Self::reveal_message(chain_id, epoch))
    }

    /// Mixes in `proposer`'s `reveal` for `epoch` after checking it.
    ///
    /// # Errors
    /// [`PosError::BadSignature`]; the value is then unchanged.
    pub fn mix_in(
        &mut self,
        chain_id: u32,
        epoch: u64,
        proposer: &PublicKey,
        reveal: &Signature,
    ) -> Result<(), PosError> {
        if !proposer.verify(&Self::reveal_message(chain_id, epoch), reveal) {
            return Err(PosError::BadSignature(*proposer));
        }
        let mut input = [0u8; 64];
        input[..32].copy_from_slice(self.mix.as_bytes());
        input[32..].copy_from_slice(&sha256(&reveal.0));
        self.mix = Hash(sha256(&input));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reveals_are_unique_checked_and_change_the_mix() {
        let key = Keypair::for_testing(1);
        assert_eq!(Randao::reveal(&key, 7, 3), Randao::reveal(&key, 7, 3), "one reveal per epoch");
        let mut r = Randao::new(Hash([1; 32]));
        let before = r.mix();
        let other = Keypair::for_testing(2).public();
        assert_eq!(r.mix_in(7, 3, &other, &Randao::reveal(&key, 7, 3)), Err(PosError::BadSignature(other)));
        assert_eq!(
            r.mix_in(7, 4, &key.public(), &Randao::reveal(&key, 7, 3)),
            Err(PosError::BadSignature(key.public()))
        );
        assert_eq!(r.mix(), before, "a refused reveal changes nothing");
        r.mix_in(7, 3, &key.public(), &Randao::reveal(&key, 7, 3)).expect("valid reveal");
        assert_ne!(r.mix(), before);
        let mut again = Randao::new(Hash([1; 32]));
        again.mix_in(7, 3, &key.public(), &Randao::reveal(&key, 7, 3)).expect("valid reveal");
        assert_eq!(again, r, "deterministic");
    }
}
