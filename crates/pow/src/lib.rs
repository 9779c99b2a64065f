//! Sans-IO Nakamoto consensus (Proof of Work), anchored on Bitcoin Core's rules, over
//! the accounts ledger of `ballot-ledger`.
//!
//! Use this crate to run a Proof-of-Work chain inside your own driver (ballot's is
//! `ballot-chaind`), to simulate one deterministically, or to reuse Bitcoin-compatible
//! pieces: 80-byte headers hashed with SHA-256d, compact targets (`nBits`), chain work,
//! retargeting, the Merkle root with its CVE-2012-2459 mutation check, and a midstate
//! nonce scanner for miners. Nothing here reads a clock, does IO or spawns threads:
//! `now` is an input, outputs are polled.
//!
//! * [`BlockHeader`], [`CompactTarget`], [`U256`], [`block_work`],
//!   [`check_proof_of_work`], [`next_target`], [`merkle_root`]: the primitives.
//! * [`Block`] and [`ChainParams`]: blocks and the rules of a chain
//!   ([`ChainParams::bitcoin_like`] and fast [`ChainParams::testing`] settings).
//! * [`Chain`]: block index, fork choice by most cumulative work, reorganisations with
//!   undo data, orphan pool, mempool and block templates; see its docs for how to
//!   drive it.
//! * [`NonceScanner`]: two SHA-256 compressions per nonce; run it on as many threads
//!   as you like.
//!
//! The rules as built are listed in `docs/pow.md` in the repository.
//!
//! # Example
//!
//! Mine one block on a test chain and submit it.
//!
//! ```
//! use ballot_core::Instant;
//! use ballot_ledger::{Keypair, MempoolConfig};
//! use ballot_pow::{Chain, ChainOutput, ChainParams, NonceScanner, unix_seconds};
//!
//! let genesis_time = 1_700_000_000;
//! let params = ChainParams::testing(7, Keypair::for_testing(0).public(), genesis_time);
//! let mut chain = Chain::new(params, MempoolConfig::default())?;
//! while chain.poll_output().is_some() {} // a fresh store would write genesis here
//!
//! let now = Instant::from_millis((u64::from(genesis_time) + 10) * 1000);
//! let miner = Keypair::for_testing(1).public();
//! let mut block = chain.block_template(now, miner).block;
//! let scanner = NonceScanner::new(&block.header)?;
//! let found = scanner.scan(0..=u32::MAX).expect("an easy target");
//! block.header.nonce = found.nonce;
//!
//! chain.accept_block(now, block)?;
//! assert_eq!(chain.height(), 1);
//! assert_eq!(chain.tip().hash, found.hash);
//! assert!(matches!(chain.poll_output(), Some(ChainOutput::Connected(_))));
//! assert!(matches!(chain.poll_output(), Some(ChainOutput::NewTip { height: 1, .. })));
//! # let _ = unix_seconds(now);
//! # Ok::<(), ballot_pow::PowError>(())
//! ```

mod block;
mod chain;
mod compact;
mod error;
mod header;
mod merkle;
mod mining;
mod orphan;
mod u256;

pub use block::{Block, ChainParams};
pub use chain::{Accepted, BlockTemplate, Chain, ChainOutput, Connected, IndexEntry, Status, unix_seconds};
pub use compact::{CompactTarget, block_work, check_proof_of_work, next_target, pow_target};
pub use error::{CompactError, PowError};
pub use header::{BlockHash, BlockHeader, HEADER_SIZE};
pub use merkle::merkle_root;
pub use mining::{Found, NonceScanner, mine};
pub use u256::U256;
