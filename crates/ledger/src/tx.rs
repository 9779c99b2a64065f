//! Transactions, their canonical encoding, ids and signatures.

use serde::{Deserialize, Serialize};

use crate::hash::{TxId, sha256d};
use crate::keys::{Keypair, PublicKey, Signature};
use crate::{LedgerError, LedgerParams};

/// Domain separation for transfer signatures: a signature over a transfer can never be
/// replayed as a signature over anything else ballot signs.
const TRANSFER_DOMAIN: &[u8] = b"ballot/transfer/v1\0";

const TAG_COINBASE: u8 = 0;
const TAG_TRANSFER: u8 = 1;

/// Encoded size of a transfer without its memo: tag, chain id, from, to, amount, fee,
/// nonce, memo length, signature.
pub const TRANSFER_BASE_SIZE: usize = 1 + 4 + 32 + 32 + 8 + 8 + 8 + 4 + 64;
/// Encoded size of a coinbase: tag, height, recipient, amount.
pub const COINBASE_SIZE: usize = 1 + 8 + 32 + 8;

/// An unsigned transfer of `amount` from `from` to `to`, paying `fee` to the miner.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Transfer {
    /// The chain this transfer is meant for; it is signed, so a transfer cannot be
    /// replayed on another chain.
    pub chain_id: u32,
    /// The paying account.
    pub from: PublicKey,
    /// The receiving account (created if it does not exist).
    pub to: PublicKey,
    /// Units moved; must be positive.
    pub amount: u64,
    /// Units paid to the block's miner.
    pub fee: u64,
    /// The sender's transaction count before this one: the first transfer of an account
    /// has nonce 0, the next 1, and so on. This is the replay protection.
    pub nonce: u64,
    /// Free-form bytes (a reference, an invoice number); they count towards the size.
    pub memo: Vec<u8>,
}

impl Transfer {
    /// The bytes the sender signs: a domain tag, then the canonical body.
    #[must_use]
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TRANSFER_DOMAIN.len() + TRANSFER_BASE_SIZE + self.memo.len());
        out.extend_from_slice(TRANSFER_DOMAIN);
        self.encode_body(&mut out);
        out
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.chain_id.to_le_bytes());
        out.extend_from_slice(&self.from.0);
        out.extend_from_slice(&self.to.0);
        out.extend_from_slice(&self.amount.to_le_bytes());
        out.extend_from_slice(&self.fee.to_le_bytes());
        out.extend_from_slice(&self.nonce.to_le_bytes());
        // A memo can never reach 4 GiB in memory; saturating keeps this total anyway.
        out.extend_from_slice(&u32::try_from(self.memo.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&self.memo);
    }

    /// Signs the transfer with `key`.
    ///
    /// # Errors
    /// [`LedgerError::KeyMismatch`] if `key` is not the key of `from`.
    pub fn sign(self, key: &Keypair) -> Result<SignedTransfer, LedgerError> {
        if key.public() != self.from {
            return Err(LedgerError::KeyMismatch);
        }
        let signature = key.sign(&self.signing_bytes());
        Ok(SignedTransfer { transfer: self, signature })
    }

    /// `amount + fee`, the units leaving the sender.
    ///
    /// # Errors
    /// [`LedgerError::AmountOverflow`] if the sum does not fit in 64 bits.
    pub fn total(&self) -> Result<u64, LedgerError> {
        self.amount.checked_add(self.fee).ok_or(LedgerError::AmountOverflow)
    }
}

/// A transfer with its sender's signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignedTransfer {
    /// What was signed.
    pub transfer: Transfer,
    /// Ed25519 signature by `transfer.from` over [`Transfer::signing_bytes`].
    pub signature: Signature,
}

impl SignedTransfer {
    /// Size of the canonical encoding in bytes (what fees per byte and block limits count).
    #[must_use]
    pub fn size(&self) -> usize {
        TRANSFER_BASE_SIZE + self.transfer.memo.len()
    }

    /// The transaction id (same as [`Transaction::id`] of the wrapped transfer).
    #[must_use]
    pub fn id(&self) -> TxId {
        let mut buf = Vec::with_capacity(self.size());
        self.encode_into(&mut buf);
        sha256d(&buf)
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(TAG_TRANSFER);
        self.transfer.encode_body(out);
        out.extend_from_slice(&self.signature.0);
    }

    /// The checks that need no ledger state: chain id, size, amounts, signature.
    ///
    /// # Errors
    /// [`LedgerError::WrongChainId`], [`LedgerError::TxTooLarge`],
    /// [`LedgerError::ZeroAmount`], [`LedgerError::AmountOverflow`] or
    /// [`LedgerError::BadSignature`].
    pub fn check(&self, params: &LedgerParams) -> Result<(), LedgerError> {
        let t = &self.transfer;
        if t.chain_id != params.chain_id {
            return Err(LedgerError::WrongChainId { expected: params.chain_id, got: t.chain_id });
        }
        let size = self.size();
        if size > params.max_tx_size {
            return Err(LedgerError::TxTooLarge { size, max: params.max_tx_size });
        }
        if t.amount == 0 {
            return Err(LedgerError::ZeroAmount);
        }
        t.total()?;
        if !t.from.verify(&t.signing_bytes(), &self.signature) {
            return Err(LedgerError::BadSignature);
        }
        Ok(())
    }
}

/// The first transaction of every block: new units for the block's producer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Coinbase {
    /// Height of the block it belongs to; makes every coinbase id unique (as BIP 34 does).
    pub height: u64,
    /// The producer's account.
    pub to: PublicKey,
    /// Units claimed: at most the block subsidy plus the block's fees.
    pub amount: u64,
}

/// A ledger transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Transaction {
    /// The block producer's reward; first in a block, exactly once.
    Coinbase(Coinbase),
    /// A signed payment between accounts.
    Transfer(SignedTransfer),
}

impl Transaction {
    /// The canonical encoding: a tag byte, then the fields little-endian in declaration
    /// order (a memo is prefixed by its 32-bit length), then a transfer's signature.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size());
        match self {
            Transaction::Coinbase(c) => {
                out.push(TAG_COINBASE);
                out.extend_from_slice(&c.height.to_le_bytes());
                out.extend_from_slice(&c.to.0);
                out.extend_from_slice(&c.amount.to_le_bytes());
            }
            Transaction::Transfer(t) => t.encode_into(&mut out),
        }
        out
    }

    /// Size of the canonical encoding in bytes.
    #[must_use]
    pub fn size(&self) -> usize {
        match self {
            Transaction::Coinbase(_) => COINBASE_SIZE,
            Transaction::Transfer(t) => t.size(),
        }
    }

    /// The transaction id: SHA-256d of [`Transaction::encode`].
    #[must_use]
    pub fn id(&self) -> TxId {
        sha256d(&self.encode())
    }

    /// The transfer inside, if this is one.
    #[must_use]
    pub fn as_transfer(&self) -> Option<&SignedTransfer> {
        match self {
            Transaction::Transfer(t) => Some(t),
            Transaction::Coinbase(_) => None,
        }
    }
}

impl From<SignedTransfer> for Transaction {
    fn from(t: SignedTransfer) -> Self {
        Transaction::Transfer(t)
    }
}

impl From<Coinbase> for Transaction {
    fn from(c: Coinbase) -> Self {
        Transaction::Coinbase(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> LedgerParams {
        LedgerParams::testing(7)
    }

    fn transfer(key: &Keypair) -> Transfer {
        Transfer {
            chain_id: 7,
            from: key.public(),
            to: Keypair::for_testing(99).public(),
            amount: 10,
            fee: 1,
            nonce: 0,
            memo: b"hi".to_vec(),
        }
    }

    #[test]
    fn sizes_match_encodings() {
        let k = Keypair::for_testing(1);
        let t = transfer(&k).sign(&k).unwrap();
        assert_eq!(Transaction::from(t.clone()).encode().len(), t.size());
        let c = Transaction::Coinbase(Coinbase { height: 1, to: k.public(), amount: 5 });
        assert_eq!(c.encode().len(), c.size());
        assert_eq!(Transaction::from(t.clone()).id(), t.id());
        assert_ne!(c.id(), t.id());
    }

    #[test]
    fn every_field_changes_the_id_and_breaks_the_signature() {
        let k = Keypair::for_testing(1);
        let good = transfer(&k).sign(&k).unwrap();
        assert_eq!(good.check(&params()), Ok(()));
        let mutations: Vec<fn(&mut Transfer)> = vec![
            |t| t.to = Keypair::for_testing(5).public(),
            |t| t.amount += 1,
            |t| t.fee += 1,
            |t| t.nonce += 1,
            |t| t.memo.push(0),
        ];
        for m in mutations {
            let mut bad = good.clone();
            m(&mut bad.transfer);
            assert_ne!(bad.id(), good.id());
            assert_eq!(bad.check(&params()), Err(LedgerError::BadSignature));
        }
    }

    #[test]
    fn stateless_refusals() {
        let k = Keypair::for_testing(1);
        let other = Keypair::for_testing(2);
        assert_eq!(transfer(&k).sign(&other), Err(LedgerError::KeyMismatch));

        let mut t = transfer(&k);
        t.chain_id = 8;
        assert_eq!(t.sign(&k).unwrap().check(&params()), Err(LedgerError::WrongChainId { expected: 7, got: 8 }));

        let mut t = transfer(&k);
        t.amount = 0;
        assert_eq!(t.sign(&k).unwrap().check(&params()), Err(LedgerError::ZeroAmount));

        let mut t = transfer(&k);
        t.amount = u64::MAX;
        assert_eq!(t.sign(&k).unwrap().check(&params()), Err(LedgerError::AmountOverflow));

        let mut t = transfer(&k);
        t.memo = vec![0; params().max_tx_size];
        let size = TRANSFER_BASE_SIZE + params().max_tx_size;
        assert_eq!(
            t.sign(&k).unwrap().check(&params()),
            Err(LedgerError::TxTooLarge { size, max: params().max_tx_size })
        );

        let mut forged = transfer(&k).sign(&k).unwrap();
        forged.transfer.from = other.public();
        assert_eq!(forged.check(&params()), Err(LedgerError::BadSignature));
        let unsigned = SignedTransfer { transfer: transfer(&k), signature: Signature([0; 64]) };
        assert_eq!(unsigned.check(&params()), Err(LedgerError::BadSignature));
    }

    #[test]
    fn serde_round_trips() {
        let k = Keypair::for_testing(1);
        let tx = Transaction::from(transfer(&k).sign(&k).unwrap());
        let bytes = postcard::to_allocvec(&tx).unwrap();
        assert_eq!(postcard::from_bytes::<Transaction>(&bytes).unwrap(), tx);
    }
}
