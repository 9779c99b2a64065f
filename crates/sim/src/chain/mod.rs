//! The Proof-of-Work chain simulator: N nodes running the real `ballot_pow::Chain` on the
//! simulated network of this crate, under a seeded fault schedule, with invariant
//! checkers after every step, and the attack measurements reported in `docs/pow.md`.
//!
//! # What it models
//!
//! * **Mining** is a Poisson process per miner: the time to a miner's next block is
//!   exponential with rate `share × hash rate / work(bits)`, where `work(bits)` is the
//!   expected number of hashes for the target the next block must meet
//!   (`ballot_pow::block_work`). The hash rate is calibrated so that at the proof-of-work
//!   limit the whole network finds `hash_factor` blocks per target spacing; retargeting
//!   then moves the difficulty (and with it the rate) as it would on a real chain. When a
//!   miner's tip changes its clock is redrawn (exponential waiting times are
//!   memoryless, so this is exact). When the event fires, the miner takes a real
//!   `Chain::block_template` and grinds a real nonce with `NonceScanner` at the easy
//!   test limit (about 256 hashes), so every block passes the real validation rules.
//! * **Network**: a full mesh on [`Network`](crate::Network) (delay, loss, duplication,
//!   reordering, partitions and one-way cuts). Nodes push their new tip block to every
//!   peer, relay admitted transfers, announce their tip every sync interval, and fetch
//!   missing blocks with a locator (`GetBlocks`, up to 64 blocks per reply), as
//!   Bitcoin's `getblocks` does.
//! * **Disk and crashes**: every block a node stores becomes durable after a random
//!   delay; a crash loses the node's volatile state (index, mempool, orphans) and the
//!   writes not yet durable; a restart rebuilds the node with `Chain::restore` from what
//!   was durable and resynchronises from its peers.
//! * **Wallets** submit signed transfers to random nodes, with deliberate double-spend
//!   pairs (same sender and nonce, different recipients, sent to two different nodes),
//!   replays, overspends and forgeries.
//! * **A Byzantine miner** (on about half the seeds) mines blocks that break one rule
//!   each (no proof of work, bad Merkle root, mutated transaction list, wrong bits,
//!   timestamps too old or too new, over-claimed coinbase, double spends, replays,
//!   overspends, immature spends, bad signatures, children of invalid blocks…), and
//!   withholds valid blocks to release them later, forcing reorganisations.
//!
//! # Checkers
//!
//! One struct per invariant ([`ChainChecker`]): [`ValidChain`], [`NoDoubleSpend`],
//! [`SupplySchedule`], [`TipConvergence`] and [`HonestBlocksAccepted`]. Each is shown to
//! fire on a planted bad history in its unit tests.
//!
//! # Attacks
//!
//! [`attacks`] measures double-spend success, selfish-mining revenue and the stale-block
//! rate in this simulator and sets them next to the published analyses.
//!
//! ```
//! use std::time::Duration;
//! use ballot_sim::chain::{ChainRunSpec, run_chain_spec};
//!
//! // Seed 3 on four nodes: 120 virtual seconds of faults, then healing and convergence.
//! let spec = ChainRunSpec { duration: Duration::from_secs(180), ..ChainRunSpec::new(3, 4) };
//! let stats = run_chain_spec(&spec)?;
//! assert!(stats.main_chain > 0);
//! assert_eq!(spec.replay_command(), "cargo xtask sim --algo pow --seed 3 --nodes 4 --duration 180");
//! # Ok::<(), ballot_sim::chain::ChainSimError>(())
//! ```

pub mod attacks;
mod byzantine;
mod checkers;
pub mod cli;
mod clients;
mod config;
mod faults;
mod mining;
mod node;
mod runner;
mod sim;
mod stats;

pub use checkers::{
    ChainChecker, HonestBlocksAccepted, NoDoubleSpend, RefusedView, StepView, SupplySchedule, TipConvergence, TipView,
    ValidChain, all_checkers,
};
pub use clients::ClientConfig;
pub use config::{ByzantineProfile, CHAIN_ID, ChainSimConfig, GENESIS_TIME};
pub use faults::{ChainFault, random_plan};
pub use runner::{ChainRunSpec, ChainSummary, DEFAULT_POW_DURATION, run_chain_many, run_chain_spec};
pub use sim::{ChainSim, ChainSimError, ChainViolation};
pub use stats::ChainStats;
