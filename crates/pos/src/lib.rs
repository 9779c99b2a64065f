//! Sans-IO Proof of Stake, after Ethereum's Gasper: Casper FFG finality with an
//! LMD-GHOST fork choice, over the keys and hashes of `ballot-ledger`.
//!
//! This crate holds the consensus rules a Proof-of-Stake chain node needs, as pure
//! functions and state machines (no clock, IO or threads; every refusal a typed
//! [`PosError`]):
//!
//! * [`ValidatorSet`]: validators and their stakes; the 2/3-of-stake rule
//!   ([`ValidatorSet::is_supermajority`]) and the proposer of a slot, drawn in proportion
//!   to stake from a seed ([`ValidatorSet::proposer`]).
//! * [`Randao`]: the seed. Each block's proposer reveals its Ed25519 signature of the
//!   epoch, which is mixed into the running value; a validator cannot choose its reveal
//!   (Ed25519 signatures are deterministic), so the only bias left is the last proposer's
//!   choice to withhold its block: one bit per slot it controls at the end of an epoch.
//! * [`Vote`], [`SignedVote`]: an attestation, signed over a domain tag and the chain id:
//!   the head of the chain as the validator sees it (for the fork choice) and the
//!   source → target link between epoch checkpoints (for finality).
//! * [`Finality`]: Casper FFG. A checkpoint is justified when a link from a justified
//!   source to it carries at least 2/3 of the stake; the source is finalised when its
//!   target is the checkpoint of the very next epoch. A finalised checkpoint is never
//!   reverted: votes below it are ignored.
//! * [`ForkChoice`]: LMD-GHOST. From the latest justified checkpoint, descend to the
//!   child whose subtree carries the most stake among the validators' latest votes.
//! * [`offence`] and [`Evidence`]: the two slashing conditions (a double vote: two
//!   different votes for one target epoch; a surround vote: one link inside another) and
//!   the proof anyone can submit: two votes signed by one validator. With less than 1/3
//!   of the stake slashable no two conflicting checkpoints can be finalised; with more,
//!   any conflicting finalisation leaves evidence against at least 1/3 of the stake
//!   (accountable safety, tested in `tests/accountable_safety.rs`).
//!
//! * [`Bonds`]: bonded stake. A bond counts after an activation delay (so an epoch's
//!   validators and proposers are fixed before it starts); unbonded stake stops counting
//!   at once but can be withdrawn only after the unbonding delay, and until then a
//!   proven offence burns it with the rest.
//! * [`BlockHeader`], [`SignedHeader`], [`ProposerEvidence`]: the header a proposer
//!   signs for its slot, and the proof that it signed two.
//!
//! * [`PosNode`]: one node, sans-IO. Slots from `now`; it proposes in its slots (votes
//!   and evidence it saw go into its block), attests once per epoch halfway through the
//!   first slot it is awake for, validates blocks (signature, proposer of the slot under
//!   the parent chain's seed, RANDAO reveal, body digest, every vote and piece of
//!   evidence inside), asks peers for missing parents, runs the fork choice and the
//!   finality gadget, and turns two conflicting votes or headers of one validator into
//!   evidence, which it gossips and includes. The host carries out [`PosOutput`]s.
//!
//! `ballot-sim --algo pos` runs these nodes under faults with Byzantine validators. Not
//! built yet: bond, unbond and evidence as ledger transactions (the node weighs the
//! genesis stakes, less the validators it has seen slashed) and `ballot-chaind
//! --consensus pos`; `docs/pos.md` in the repository says what is.
//!
//! # Example
//!
//! Three equal validators justify and finalise a chain of checkpoints; one of them then
//! votes for a conflicting target, which is evidence against it.
//!
//! ```
//! use ballot_ledger::{Hash, Keypair};
//! use ballot_pos::{Checkpoint, Evidence, Finality, Offence, ValidatorSet, Vote};
//!
//! let keys: Vec<Keypair> = (1..=3).map(Keypair::for_testing).collect();
//! let validators = ValidatorSet::new(keys.iter().map(|k| (k.public(), 32)));
//! let cp = |epoch, root| Checkpoint { epoch, root: Hash([root; 32]) };
//! let on_one_chain = |_: &Checkpoint, _: &Checkpoint| true; // every block descends from the earlier ones
//!
//! let mut finality = Finality::new(cp(0, 0));
//! let mut signed = Vec::new();
//! for (source, target) in [(cp(0, 0), cp(1, 1)), (cp(1, 1), cp(2, 2))] {
//!     for key in &keys[..2] {
//!         let vote = Vote { slot: target.epoch * 32, head: target.root, source, target }.sign(7, key)?;
//!         vote.verify(7)?;
//!         finality.add_vote(vote.validator, &vote.vote, &validators, on_one_chain);
//!         signed.push(vote);
//!     }
//! }
//! assert_eq!(finality.finalized(), cp(1, 1)); // 2 of 3 is 2/3 of the stake
//!
//! let other = Vote { slot: 64, head: Hash([9; 32]), source: cp(1, 1), target: cp(2, 9) }.sign(7, &keys[0])?;
//! let evidence = Evidence { a: signed[2], b: other };
//! assert_eq!(evidence.verify(7)?, Offence::DoubleVote);
//! # Ok::<(), ballot_pos::PosError>(())
//! ```

mod bonds;
mod error;
mod finality;
mod fork_choice;
mod header;
mod node;
mod randao;
mod slashing;
mod stake;
mod vote;

pub use bonds::{BondParams, Bonds};
pub use error::PosError;
pub use finality::{Finality, Justification};
pub use fork_choice::ForkChoice;
pub use header::{BlockHeader, ProposerEvidence, SignedHeader};
pub use node::{AttestRecord, Block, PeerId, PosMessage, PosNode, PosOutput, PosParams};
pub use randao::Randao;
pub use slashing::{Evidence, Offence, offence};
pub use stake::ValidatorSet;
pub use vote::{Checkpoint, SignedVote, Vote};
