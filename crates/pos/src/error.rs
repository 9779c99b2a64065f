//! Typed refusals.

use ballot_ledger::{Hash, PublicKey};

/// Why a vote, reveal, block or piece of evidence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PosError {
    /// The signer is not in the validator set.
    #[error("{0} is not a validator")]
    UnknownValidator(PublicKey),
    /// A signature does not verify.
    #[error("bad signature by {0}")]
    BadSignature(PublicKey),
    /// A vote whose target is not after its source.
    #[error("the target epoch {target_epoch} is not after the source epoch {source_epoch}")]
    TargetNotAfterSource {
        /// The source epoch.
        source_epoch: u64,
        /// The target epoch.
        target_epoch: u64,
    },
    /// A block the fork choice already knows, or whose parent it does not know.
    #[error("block {block:?}: {reason}")]
    BadBlock {
        /// The block.
        block: Hash,
        /// What is wrong.
        reason: &'static str,
    },
    /// A bond, unbond or withdrawal the stake rules refuse.
    #[error("stake: {0}")]
    Stake(&'static str),
    /// Evidence that does not prove an offence.
    #[error("not evidence of an offence: {0}")]
    NotEvidence(&'static str),
}
