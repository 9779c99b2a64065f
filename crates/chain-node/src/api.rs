//! The JSON the node's HTTP API serves and `ballot chain` reads.

use serde::{Deserialize, Serialize};

pub use crate::store::VerifyReport;

/// `GET /v1/tip`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TipInfo {
    /// The node's identity key.
    pub node: String,
    /// The chain id transfers must be signed with.
    pub chain_id: u32,
    /// Active height.
    pub height: u64,
    /// Tip hash.
    pub hash: String,
    /// Cumulative work of the active chain, as a decimal-free hex number.
    pub chain_work: String,
    /// The tip's timestamp (Unix seconds).
    pub time: u32,
    /// Target of the next block, compact form.
    pub bits: String,
    /// Connected peers.
    pub peers: usize,
    /// Transfers in the mempool.
    pub mempool: usize,
    /// Blocks wanted or in flight (initial sync).
    pub syncing_blocks: usize,
    /// Hashes per second of this node's miner (0 when not mining).
    pub hashrate: f64,
}

/// One transaction of a block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TxSummary {
    /// Transaction id.
    pub id: String,
    /// `coinbase` or `transfer`.
    pub kind: String,
    /// Sender (transfers).
    pub from: Option<String>,
    /// Recipient.
    pub to: String,
    /// Units moved.
    pub amount: u64,
    /// Fee (transfers).
    pub fee: u64,
    /// Sender's nonce (transfers).
    pub nonce: Option<u64>,
}

/// `GET /v1/block/{hash or height}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// Block hash.
    pub hash: String,
    /// Height.
    pub height: u64,
    /// Parent hash.
    pub prev: String,
    /// Merkle root.
    pub merkle_root: String,
    /// Timestamp (Unix seconds).
    pub time: u32,
    /// Target, compact form.
    pub bits: String,
    /// Nonce.
    pub nonce: u32,
    /// `valid` (connected at some point), `data`, `header`, `invalid`.
    pub status: String,
    /// Whether it is on the active chain.
    pub active: bool,
    /// Blocks on top of it, itself included (0 off the active chain).
    pub confirmations: u64,
    /// Encoded size in bytes.
    pub size: usize,
    /// Its transactions.
    pub txs: Vec<TxSummary>,
}

/// `GET /v1/tx/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TxInfo {
    /// The transaction.
    pub tx: TxSummary,
    /// `mempool` or `confirmed`.
    pub status: String,
    /// The block holding it, if confirmed.
    pub block: Option<String>,
    /// That block's height.
    pub height: Option<u64>,
    /// Blocks on top, that block included (0 in the mempool).
    pub confirmations: u64,
}

/// `GET /v1/account/{key}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// The key.
    pub key: String,
    /// Balance at the tip.
    pub balance: u64,
    /// Of which spendable in the next block (mature).
    pub spendable: u64,
    /// Nonce the next transfer must carry, counting pending mempool transfers.
    pub next_nonce: u64,
    /// Nonce at the tip (transfers confirmed).
    pub nonce: u64,
    /// Height the balance is at.
    pub height: u64,
}

/// `POST /v1/tx` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitTx {
    /// The signed transfer, postcard-encoded, in hex.
    pub tx: String,
}

/// `POST /v1/tx` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// The transaction id.
    pub id: String,
}

/// `GET /v1/peers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Identity key.
    pub key: String,
    /// Remote UDP address.
    pub addr: String,
    /// Its listening address, from its handshake.
    pub listen: Option<String>,
    /// `outbound` (dialled) or `inbound`.
    pub direction: String,
    /// Height it announced or we learnt.
    pub height: u64,
    /// Blocks requested from it and not received yet.
    pub in_flight: usize,
    /// Misbehaviour points (banned at 100).
    pub misbehaviour: u32,
    /// Seconds connected.
    pub connected_secs: u64,
}

/// `GET /v1/bans`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanInfo {
    /// A key or an address.
    pub target: String,
    /// Seconds left.
    pub remaining_secs: u64,
    /// Why.
    pub reason: String,
}

/// `POST /v1/ban` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRequest {
    /// A peer's key (64 hex digits) or listening address (`host:port`).
    pub target: String,
    /// For how long.
    pub seconds: u64,
}

/// An error answer: `{"error": {"kind", "message"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The error.
    pub error: ApiErrorBody,
}

/// The body of an [`ApiError`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// `invalid` (400), `not_found` (404), `unavailable` (503).
    pub kind: String,
    /// What was wrong.
    pub message: String,
}
