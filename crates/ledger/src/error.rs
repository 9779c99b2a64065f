//! The ledger's refusals.

use crate::keys::PublicKey;

/// Why the ledger refused a transaction or block. Every refusal leaves the state as it
/// was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The signature does not verify against the sender's key over the canonical
    /// encoding (an unsigned, forged or altered transfer).
    #[error("bad signature")]
    BadSignature,
    /// The transfer was made for another chain.
    #[error("wrong chain id: expected {expected}, got {got}")]
    WrongChainId {
        /// This ledger's chain id.
        expected: u32,
        /// The transfer's chain id.
        got: u32,
    },
    /// The sender has never received anything.
    #[error("unknown account {0}")]
    UnknownAccount(PublicKey),
    /// The sender's balance is below `amount + fee`.
    #[error("insufficient funds in {account}: needs {needed}, has {available}")]
    InsufficientFunds {
        /// The sender.
        account: PublicKey,
        /// `amount + fee`.
        needed: u64,
        /// The sender's spendable balance.
        available: u64,
    },
    /// The balance would suffice, but part of it is coinbase that is not mature yet.
    #[error("immature coinbase in {account}: needs {needed}, {spendable} spendable, {locked} not yet mature")]
    ImmatureCoinbase {
        /// The sender.
        account: PublicKey,
        /// `amount + fee`.
        needed: u64,
        /// The mature part of the balance.
        spendable: u64,
        /// Coinbase units still maturing.
        locked: u64,
    },
    /// The nonce is not the sender's next one: a replay, a double spend, or a gap.
    #[error("wrong nonce for {account}: expected {expected}, got {got}")]
    WrongNonce {
        /// The sender.
        account: PublicKey,
        /// The sender's next nonce.
        expected: u64,
        /// The transfer's nonce.
        got: u64,
    },
    /// The coinbase claims more than the block's subsidy plus its fees.
    #[error("coinbase claims {claimed}, but subsidy plus fees is {allowed}")]
    CoinbaseOverspend {
        /// The coinbase amount.
        claimed: u64,
        /// Subsidy plus fees.
        allowed: u64,
    },
    /// The coinbase names another height than its block's.
    #[error("coinbase for height {got} in block {expected}")]
    WrongCoinbaseHeight {
        /// The block's height.
        expected: u64,
        /// The coinbase's height.
        got: u64,
    },
    /// The block's first transaction is not a coinbase (or the block is empty).
    #[error("block does not start with a coinbase")]
    MissingCoinbase,
    /// A coinbase appears after the first transaction.
    #[error("more than one coinbase in the block")]
    ExtraCoinbase,
    /// The transaction's encoding exceeds the size limit.
    #[error("transaction of {size} bytes exceeds {max}")]
    TxTooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A transfer of zero units.
    #[error("zero amount")]
    ZeroAmount,
    /// `amount + fee`, a balance or the fees of a block overflow 64 bits.
    #[error("amount overflow")]
    AmountOverflow,
    /// A block applied out of order.
    #[error("block at height {got} applied to a ledger expecting {expected}")]
    WrongHeight {
        /// The next height of the ledger.
        expected: u64,
        /// The block's height.
        got: u64,
    },
    /// Undo data that does not belong to the ledger's last block.
    #[error("undo data for height {got}, but the tip is {tip:?}")]
    UndoMismatch {
        /// The ledger's tip height.
        tip: Option<u64>,
        /// The undo data's height.
        got: u64,
    },
    /// The supply would exceed the subsidy schedule (checked after each block).
    #[error("supply {supply} would exceed the schedule's {max}")]
    SupplyExceeded {
        /// The supply after the block.
        supply: u64,
        /// Sum of subsidies through the block's height.
        max: u64,
    },
    /// `ring` rejected a key seed.
    #[error("invalid key seed")]
    BadKey,
    /// A transfer signed with a key that is not the sender's.
    #[error("signing key is not the sender's")]
    KeyMismatch,
}

/// Why the [`Mempool`](crate::Mempool) refused a transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// The transfer is invalid against the ledger's tip (together with the sender's
    /// pending transfers, for funds).
    #[error(transparent)]
    Invalid(#[from] LedgerError),
    /// The pool holds this very transfer already.
    #[error("transfer {0} is already in the pool")]
    AlreadyKnown(crate::TxId),
    /// Another pending transfer has the same sender and nonce, and this one does not pay
    /// enough more to replace it: a double spend.
    #[error("nonce {nonce} of {account} is taken by {old}; a replacement must pay a higher fee and fee rate")]
    ReplacementUnderpriced {
        /// The sender.
        account: crate::PublicKey,
        /// The contested nonce.
        nonce: u64,
        /// The pending transfer holding it.
        old: crate::TxId,
    },
    /// The nonce is too far ahead of the sender's account nonce.
    #[error("{account} would have more than {max} pending transfers")]
    TooManyPending {
        /// The sender.
        account: crate::PublicKey,
        /// The per-sender limit.
        max: u64,
    },
    /// The fee is below the pool's minimum fee rate.
    #[error("fee {fee} for {size} bytes is below {min_fee_per_kb} per 1000 bytes")]
    FeeTooLow {
        /// The fee offered.
        fee: u64,
        /// The transfer's size.
        size: usize,
        /// The minimum, per 1,000 bytes.
        min_fee_per_kb: u64,
    },
    /// The pool is full and the transfer's fee rate does not beat the lowest held.
    #[error("mempool full ({max_bytes} bytes) and the fee rate is not above the lowest held")]
    Full {
        /// The pool's size bound.
        max_bytes: usize,
    },
}
