//! The ledger that ballot's chains order: accounts, Ed25519-signed transfers with fees,
//! a coinbase with a halving subsidy, undo data for reorganisations, and a mempool.
//!
//! Use this crate as the state machine behind a blockchain (ballot's Proof-of-Work
//! crate `ballot-pow` is built on it, and a Proof-of-Stake chain can be) or behind any
//! algorithm that orders batches of transactions. It is pure: no IO, no clock, no
//! threads, and no panics on bad input — every refusal is a typed [`LedgerError`] or
//! [`MempoolError`], and all arithmetic is checked.
//!
//! # Accounts, not UTXOs
//!
//! The state is a map from public keys to `(balance, nonce)`. A transfer names its
//! sender's next nonce, so a replay or a double spend is simply a wrong nonce; a
//! reorganisation's undo data is the old value of each touched account; balances are
//! what a Proof-of-Stake chain bonds. Bitcoin's UTXO set would allow parallel
//! validation and better privacy, but needs an input/output script model that ballot
//! does not otherwise need. Coinbase maturity, which Bitcoin attaches to outputs, is
//! kept here as a short list of maturing credits: a coinbase of height `c` counts in its
//! account's balance at once, but is spendable only in blocks of height `c + maturity`
//! and above.
//!
//! # Rules
//!
//! * A [`Transfer`] is signed (Ed25519, through `ring`) over a domain tag and its
//!   canonical encoding, which includes the chain id; its [`TxId`] is the SHA-256d of
//!   the canonical encoding with the signature ([`Transaction::encode`]).
//! * Amounts are positive; `amount + fee` must fit in 64 bits and in the sender's
//!   spendable balance; the encoding must not exceed [`LedgerParams::max_tx_size`].
//! * A block's transactions are a [`Coinbase`] for its height, then transfers. The
//!   coinbase may claim at most the subsidy plus the fees; the subsidy halves every
//!   [`LedgerParams::halving_interval`] blocks, and after each block the supply is
//!   checked against the sum of subsidies so far.
//! * [`Ledger::apply_block`] is all-or-nothing and returns [`BlockUndo`];
//!   [`Ledger::undo_block`] restores the exact previous state.
//!
//! # Example
//!
//! ```
//! use ballot_ledger::{Coinbase, Ledger, LedgerError, LedgerParams, Keypair, Transaction, Transfer};
//!
//! let params = LedgerParams::testing(7); // coinbase maturity 2
//! let (miner, alice) = (Keypair::for_testing(1), Keypair::for_testing(2));
//! let mut ledger = Ledger::new(params.clone());
//! let coinbase = |height, amount| Transaction::Coinbase(Coinbase { height, to: miner.public(), amount });
//! ledger.apply_block(0, &[coinbase(0, params.subsidy(0))])?;
//! ledger.apply_block(1, &[coinbase(1, params.subsidy(1))])?;
//!
//! let pay = Transfer { chain_id: 7, from: miner.public(), to: alice.public(), amount: 500, fee: 10, nonce: 0, memo: vec![] }
//!     .sign(&miner)?;
//! // Block 2 may spend block 0's coinbase and pays the fee to its own coinbase.
//! let block = [coinbase(2, params.subsidy(2) + 10), pay.clone().into()];
//! let undo = ledger.apply_block(2, &block)?;
//! assert_eq!(ledger.account(&alice.public()).unwrap().balance, 500);
//!
//! // The same transfer again is a replay: its nonce is used.
//! assert!(matches!(ledger.apply_block(3, &[coinbase(3, 0), pay.into()]), Err(LedgerError::WrongNonce { .. })));
//!
//! ledger.undo_block(&undo)?;
//! assert_eq!(ledger.account(&alice.public()), None);
//! # Ok::<(), LedgerError>(())
//! ```

mod error;
mod hash;
mod keys;
mod mempool;
mod params;
mod state;
mod tx;

pub use error::{LedgerError, MempoolError};
pub use hash::{Hash, ParseHashError, TxId, sha256, sha256d};
pub use keys::{Keypair, ParseKeyError, PublicKey, Signature};
pub use mempool::{FeeRate, Mempool, MempoolConfig};
pub use params::{COIN, LedgerParams};
pub use state::{Account, BlockUndo, CoinbaseCredit, Ledger, StateDelta};
pub use tx::{COINBASE_SIZE, Coinbase, SignedTransfer, TRANSFER_BASE_SIZE, Transaction, Transfer};
