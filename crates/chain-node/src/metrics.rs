//! Metric names (etcd-style, `ballot_chain_` prefix) and their descriptions.

/// Active chain height.
pub const HEIGHT: &str = "ballot_chain_height";
/// Cumulative work of the active chain (expected hashes).
pub const CHAIN_WORK: &str = "ballot_chain_work";
/// This node's mining hashrate.
pub const HASHRATE: &str = "ballot_chain_hashrate_hashes_per_second";
/// Transfers in the mempool.
pub const MEMPOOL_TXS: &str = "ballot_chain_mempool_transactions";
/// Bytes of transfers in the mempool.
pub const MEMPOOL_BYTES: &str = "ballot_chain_mempool_bytes";
/// Connected peers, by direction.
pub const PEERS: &str = "ballot_chain_peers";
/// Reorganisations.
pub const REORGS: &str = "ballot_chain_reorgs_total";
/// Depth of the last reorganisation.
pub const LAST_REORG_DEPTH: &str = "ballot_chain_last_reorg_depth";
/// Blocks received whose parent was unknown.
pub const ORPHANS: &str = "ballot_chain_orphan_blocks_total";
/// Orphan blocks held now.
pub const ORPHAN_POOL: &str = "ballot_chain_orphan_pool_blocks";
/// Blocks connected to the active chain.
pub const BLOCKS_CONNECTED: &str = "ballot_chain_blocks_connected_total";
/// Transfers in connected blocks.
pub const TXS_CONNECTED: &str = "ballot_chain_transactions_connected_total";
/// Blocks this node mined (accepted by its own chain).
pub const BLOCKS_MINED: &str = "ballot_chain_blocks_mined_total";
/// Blocks found invalid.
pub const INVALID_BLOCKS: &str = "ballot_chain_invalid_blocks_total";
/// Peers banned for misbehaviour.
pub const PEERS_BANNED: &str = "ballot_chain_peers_banned_total";
/// Blocks known by header and not downloaded yet.
pub const BLOCKS_WANTED: &str = "ballot_chain_blocks_wanted";
/// Seconds from a block's first announcement (or arrival) to its connection here.
pub const PROPAGATION: &str = "ballot_chain_block_propagation_delay_seconds";

/// Registers the descriptions with the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(HEIGHT, "Height of the active chain.");
    describe_gauge!(CHAIN_WORK, "Cumulative work of the active chain (expected hashes).");
    describe_gauge!(HASHRATE, "Hashes per second this node's miner tries.");
    describe_gauge!(MEMPOOL_TXS, "Transfers waiting in the mempool.");
    describe_gauge!(MEMPOOL_BYTES, "Bytes of transfers waiting in the mempool.");
    describe_gauge!(PEERS, "Connected peers by direction.");
    describe_counter!(REORGS, "Reorganisations onto another branch.");
    describe_gauge!(LAST_REORG_DEPTH, "Blocks disconnected by the last reorganisation.");
    describe_counter!(ORPHANS, "Blocks received before their parent.");
    describe_gauge!(ORPHAN_POOL, "Orphan blocks held.");
    describe_counter!(BLOCKS_CONNECTED, "Blocks connected to the active chain.");
    describe_counter!(TXS_CONNECTED, "Transfers in blocks connected to the active chain.");
    describe_counter!(BLOCKS_MINED, "Blocks this node mined.");
    describe_counter!(INVALID_BLOCKS, "Blocks found invalid.");
    describe_counter!(PEERS_BANNED, "Peers banned for misbehaviour.");
    describe_gauge!(BLOCKS_WANTED, "Blocks known by header and not downloaded yet.");
    describe_histogram!(PROPAGATION, "Seconds from a block's first announcement to its connection on this node.");
}
