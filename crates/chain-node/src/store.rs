//! The node's RocksDB store (a ballot-storage [`StateStore`]): blocks, the block index,
//! the ledger's accounts and undo data, written in one atomic, synced batch per input.
//!
//! # Layout (keys in the store's state keyspace)
//!
//! | key | value |
//! |---|---|
//! | `m/chain` | digest of the chain parameters: a store of another chain is refused |
//! | `m/tip` | hash of the active tip |
//! | `m/ledger` | `(height, supply)` of the ledger at the tip |
//! | `b/<hash>` | a block with data (active or side branch) |
//! | `i/<hash>` | its [`IndexEntry`] (header, height, work, status) |
//! | `a/<key>` | an account at the tip |
//! | `u/<hash>` | undo data of an active block |
//!
//! # Crash safety
//!
//! Everything one input to the chain (a block, a batch of headers) changed — blocks
//! connected and disconnected by a reorganisation, their account deltas, undo data,
//! index entries and the new tip — goes into one RocksDB write batch, synced before the
//! node announces anything. RocksDB applies a batch whole or not at all, so after a
//! SIGKILL at any moment the store holds the state after some complete input. On start
//! the node replays the stored blocks (parents first) through [`Chain::restore`], which
//! validates each again: the restored tip is valid by construction, whatever was stored.

use std::path::Path;
use std::time::Instant as StdInstant;

use ballot_ledger::{Account, Ledger, MempoolConfig, PublicKey};
use ballot_pow::{Block, BlockHash, Chain, ChainOutput, ChainParams, IndexEntry, Status};
use ballot_storage::{StateBatch, StateStore};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Error;

const CHAIN_KEY: &[u8] = b"m/chain";
const TIP_KEY: &[u8] = b"m/tip";
const LEDGER_KEY: &[u8] = b"m/ledger";
const PARAMS_KEY: &[u8] = b"m/params";

fn key(prefix: &[u8], id: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 32);
    k.extend_from_slice(prefix);
    k.extend_from_slice(id);
    k
}

fn encode(value: &impl Serialize) -> Vec<u8> {
    // Stored values are blocks, entries, accounts and undo data: all bounded and
    // encodable; the unlimited codec cannot refuse them.
    ballot_wire::Codec::new(ballot_wire::MAX_SIZE_LIMIT).encode(value).map(|b| b.to_vec()).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, Error> {
    ballot_wire::Codec::new(ballot_wire::MAX_SIZE_LIMIT)
        .decode(bytes)
        .map_err(|e| Error::Corrupt { what: what.to_owned(), detail: e.to_string() })
}

/// The chain's durable state.
#[derive(Clone, Debug)]
pub struct ChainStore {
    state: StateStore,
}

/// What a full re-validation of a chain found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Blocks replayed (every stored block with data, genesis included).
    pub blocks: u64,
    /// Transfers validated in them.
    pub transactions: u64,
    /// Height of the tip the replay reached.
    pub height: u64,
    /// Its hash.
    pub tip: String,
    /// Seconds the replay took.
    pub seconds: f64,
    /// Everything that did not agree; empty when the chain verified.
    pub problems: Vec<String>,
}

impl ChainStore {
    /// Opens (or creates) the store of the chain with `params` in `dir`.
    ///
    /// # Errors
    /// ballot-storage's refusals; [`Error::ForeignStore`] for a store of another chain
    /// or another service.
    pub fn open(dir: &Path, params: &ChainParams) -> Result<Self, Error> {
        let state = StateStore::open(dir)?;
        let digest = crate::params::digest(params);
        match state.get(CHAIN_KEY)? {
            Some(found) if found == digest.0 => {}
            Some(_) => {
                return Err(Error::ForeignStore {
                    dir: dir.to_path_buf(),
                    detail: "the store of another chain (different chain parameters)".into(),
                });
            }
            None => {
                if state.scan_prefix(b"")?.next().is_some() || state.applied_index()? > 0 {
                    return Err(Error::ForeignStore {
                        dir: dir.to_path_buf(),
                        detail: "a ballot store that is not a chain's".into(),
                    });
                }
                let mut batch = state.batch();
                batch.put(CHAIN_KEY, &digest.0).put(PARAMS_KEY, &encode(params)).sync(true);
                state.commit(batch)?;
            }
        }
        Ok(ChainStore { state })
    }

    /// Opens an existing chain store (of a stopped node) with the parameters it was
    /// created with, for offline checks.
    ///
    /// # Errors
    /// [`Error::ForeignStore`] when `dir` holds no chain store; ballot-storage's
    /// refusals (a running node holds the store's lock).
    pub fn open_existing(dir: &Path) -> Result<Self, Error> {
        if !dir.join("CURRENT").exists() {
            return Err(Error::ForeignStore { dir: dir.to_path_buf(), detail: "no chain store".into() });
        }
        let state = StateStore::open(dir)?;
        let store = ChainStore { state };
        let params = store.params()?;
        if store.state.get(CHAIN_KEY)?.as_deref() != Some(&crate::params::digest(&params).0[..]) {
            return Err(Error::Corrupt {
                what: "chain parameters".into(),
                detail: "they do not match their digest".into(),
            });
        }
        Ok(store)
    }

    /// The chain parameters the store was created with.
    ///
    /// # Errors
    /// [`Error::ForeignStore`] when it holds none.
    pub fn params(&self) -> Result<ChainParams, Error> {
        self.get("chain parameters", PARAMS_KEY)?.ok_or_else(|| Error::ForeignStore {
            dir: self.state.dir().to_path_buf(),
            detail: "a store without chain parameters".into(),
        })
    }

    /// [`verify`](Self::verify) with the stored parameters.
    ///
    /// # Errors
    /// As [`verify`](Self::verify) and [`params`](Self::params).
    pub fn verify_stored(&self) -> Result<VerifyReport, Error> {
        self.verify(self.params()?)
    }

    /// Writes everything `outputs` (the outputs of one chain input) change, as one
    /// synced atomic batch.
    ///
    /// # Errors
    /// RocksDB's: the node must stop, it can no longer promise durability.
    pub fn write(&self, outputs: &[ChainOutput]) -> Result<(), Error> {
        let mut batch = self.state.batch();
        for out in outputs {
            stage(&mut batch, out);
        }
        if batch.is_empty() {
            return Ok(());
        }
        batch.sync(true);
        Ok(self.state.commit(batch)?)
    }

    fn get<T: DeserializeOwned>(&self, what: &str, key: &[u8]) -> Result<Option<T>, Error> {
        self.state.get(key)?.map(|v| decode(what, &v)).transpose()
    }

    /// The stored active tip.
    ///
    /// # Errors
    /// RocksDB's, or a corrupt record.
    pub fn tip(&self) -> Result<Option<BlockHash>, Error> {
        self.get("tip", TIP_KEY)
    }

    /// A stored block.
    ///
    /// # Errors
    /// RocksDB's, or a corrupt record.
    pub fn block(&self, hash: &BlockHash) -> Result<Option<Block>, Error> {
        self.get("block", &key(b"b/", &hash.0))
    }

    /// Every index entry.
    ///
    /// # Errors
    /// RocksDB's, or a corrupt record.
    pub fn index(&self) -> Result<Vec<IndexEntry>, Error> {
        self.state.scan_prefix(b"i/")?.map(|kv| decode("index entry", &kv?.1)).collect()
    }

    /// Every stored account.
    ///
    /// # Errors
    /// RocksDB's, or a corrupt record.
    pub fn accounts(&self) -> Result<Vec<(PublicKey, Account)>, Error> {
        self.state
            .scan_prefix(b"a/")?
            .map(|kv| {
                let (k, v) = kv?;
                let key: [u8; 32] = k.get(2..).and_then(|k| k.try_into().ok()).ok_or_else(|| Error::Corrupt {
                    what: "account key".into(),
                    detail: format!("{} bytes", k.len()),
                })?;
                Ok((PublicKey(key), decode("account", &v)?))
            })
            .collect()
    }

    /// The stored blocks with data that are not known invalid, parents before
    /// children (by height).
    ///
    /// # Errors
    /// RocksDB's, or a corrupt record.
    pub fn blocks_by_height(&self) -> Result<Vec<Block>, Error> {
        let mut entries: Vec<IndexEntry> =
            self.index()?.into_iter().filter(|e| matches!(e.status, Status::Data | Status::Valid)).collect();
        entries.sort_by_key(|e| e.height);
        let mut blocks = Vec::with_capacity(entries.len());
        for e in entries {
            if let Some(block) = self.block(&e.hash)? {
                blocks.push(block);
            }
        }
        Ok(blocks)
    }

    /// Rebuilds the chain from the stored blocks (each validated again).
    ///
    /// # Errors
    /// RocksDB's, a corrupt record, or parameters the chain refuses.
    pub fn restore(&self, params: ChainParams, mempool: MempoolConfig) -> Result<Chain, Error> {
        let blocks = self.blocks_by_height()?;
        let count = blocks.len();
        let chain = Chain::restore(params, mempool, blocks)?;
        let stored = self.tip()?;
        if stored.is_some_and(|t| t != chain.tip().hash) {
            // Only a tie between equal-work tips can resolve differently on replay.
            tracing::warn!(stored = ?stored, restored = %chain.tip().hash, "restored tip differs from the stored one");
        }
        tracing::info!(blocks = count, height = chain.height(), tip = %chain.tip().hash, "restored the chain");
        Ok(chain)
    }

    /// Replays every stored block through a fresh chain, checking each again (proof of
    /// work, Merkle root, timestamps, difficulty, signatures, balances), and compares
    /// the result with the stored tip and accounts.
    ///
    /// # Errors
    /// RocksDB's or a corrupt record (which are also problems, but stop the check).
    pub fn verify(&self, params: ChainParams) -> Result<VerifyReport, Error> {
        let blocks = self.blocks_by_height()?;
        // A store that has connected nothing yet records no tip: it is at genesis.
        let genesis = params.genesis.hash();
        let (mut report, chain) = replay(params, blocks.into_iter())?;
        report.problems.extend(self.compare_accounts(chain.ledger())?);
        let stored_tip = self.tip()?.unwrap_or(genesis);
        if stored_tip.to_string() != report.tip {
            report.problems.push(format!("the stored tip is {stored_tip}, the replay ends at {}", report.tip));
        }
        Ok(report)
    }

    /// Compares the stored accounts with `ledger`'s.
    ///
    /// # Errors
    /// RocksDB's, or a corrupt record.
    pub fn compare_accounts(&self, ledger: &Ledger) -> Result<Vec<String>, Error> {
        let stored = self.accounts()?;
        let live: Vec<(PublicKey, Account)> = ledger.accounts().map(|(k, a)| (*k, *a)).collect();
        let mut problems = Vec::new();
        if stored != live {
            let differ = live.iter().filter(|a| !stored.contains(a)).count()
                + stored.iter().filter(|a| !live.contains(a)).count();
            problems.push(format!(
                "stored accounts differ from the replayed ledger ({} stored, {} replayed, {differ} differing)",
                stored.len(),
                live.len()
            ));
        }
        Ok(problems)
    }
}

/// Replays `blocks` (parents first) through a fresh chain; a refused block is a problem.
/// Returns the report and the chain the replay built.
///
/// # Errors
/// Parameters the chain refuses.
pub fn replay(params: ChainParams, blocks: impl Iterator<Item = Block>) -> Result<(VerifyReport, Chain), Error> {
    let started = StdInstant::now();
    let genesis = params.genesis.hash();
    let mut chain = Chain::new(params, MempoolConfig::default())?;
    let mut report = VerifyReport { blocks: 1, ..VerifyReport::default() };
    for block in blocks {
        let hash = block.hash();
        if hash == genesis {
            continue;
        }
        let transfers = block.txs.len().saturating_sub(1) as u64;
        match chain.accept_block(ballot_core::Instant::MAX, block) {
            Ok(ballot_pow::Accepted::New) => {
                report.blocks += 1;
                report.transactions += transfers;
            }
            Ok(other) => report.problems.push(format!("block {hash}: {other:?}")),
            Err(e) => report.problems.push(format!("block {hash}: {e}")),
        }
        while let Some(out) = chain.poll_output() {
            if let ChainOutput::Invalid { hash, reason } = out {
                report.problems.push(format!("block {hash} is invalid: {reason}"));
            }
        }
    }
    report.height = chain.height();
    report.tip = chain.tip().hash.to_string();
    report.seconds = started.elapsed().as_secs_f64();
    Ok((report, chain))
}

fn put_accounts(batch: &mut StateBatch, accounts: &[(PublicKey, Option<Account>)]) {
    for (k, a) in accounts {
        match a {
            Some(a) => batch.put(&key(b"a/", &k.0), &encode(a)),
            None => batch.delete(&key(b"a/", &k.0)),
        };
    }
}

#[derive(Serialize, Deserialize)]
struct LedgerMeta {
    height: Option<u64>,
    supply: u64,
}

fn stage(batch: &mut StateBatch, out: &ChainOutput) {
    match out {
        ChainOutput::Connected(c) => {
            let hash = c.entry.hash.0;
            batch.put(&key(b"b/", &hash), &encode(&*c.block));
            batch.put(&key(b"i/", &hash), &encode(&c.entry));
            batch.put(&key(b"u/", &hash), &encode(&c.undo));
            put_accounts(batch, &c.delta.accounts);
            batch.put(LEDGER_KEY, &encode(&LedgerMeta { height: c.delta.height, supply: c.delta.supply }));
        }
        ChainOutput::Disconnected { entry, delta } => {
            batch.put(&key(b"i/", &entry.hash.0), &encode(entry));
            batch.delete(&key(b"u/", &entry.hash.0));
            put_accounts(batch, &delta.accounts);
            batch.put(LEDGER_KEY, &encode(&LedgerMeta { height: delta.height, supply: delta.supply }));
        }
        ChainOutput::StoreBlock { entry, block } => {
            batch.put(&key(b"b/", &entry.hash.0), &encode(&**block));
            batch.put(&key(b"i/", &entry.hash.0), &encode(entry));
        }
        ChainOutput::StoreIndex(entry) => {
            batch.put(&key(b"i/", &entry.hash.0), &encode(entry));
            if entry.status == Status::Invalid {
                batch.delete(&key(b"b/", &entry.hash.0));
                batch.delete(&key(b"u/", &entry.hash.0));
            }
        }
        ChainOutput::NewTip { hash, .. } => {
            batch.put(TIP_KEY, &encode(hash));
        }
        ChainOutput::Reorg { .. } | ChainOutput::Invalid { .. } | ChainOutput::RequestBlock(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChainSpec;
    use ballot_core::Instant;
    use ballot_ledger::Keypair;

    fn mine_on(chain: &mut Chain, time: u64, miner: u64) -> Block {
        let now = Instant::from_millis(time * 1000);
        let mut block = chain.block_template(now, Keypair::for_testing(miner).public()).block;
        assert!(ballot_pow::mine(&mut block.header).unwrap());
        block
    }

    /// A block on `parent` (not necessarily the tip) paying `miner`.
    fn mine_at(chain: &Chain, parent: BlockHash, time: u32, miner: u64) -> Block {
        let entry = chain.entry(&parent).unwrap().clone();
        let height = entry.height + 1;
        let amount = chain.params().ledger.subsidy(height);
        let coinbase = ballot_ledger::Coinbase { height, to: Keypair::for_testing(miner).public(), amount };
        let mut block = Block::new(parent, time, chain.next_bits(&entry), vec![coinbase.into()]);
        assert!(ballot_pow::mine(&mut block.header).unwrap());
        block
    }

    /// A crash may come between any two inputs: the batches of the first k inputs
    /// (a reorganisation among them) must restore, for every k, to the chain as it was
    /// after input k, with the stored accounts equal to the replayed ledger.
    #[test]
    fn a_store_cut_after_any_input_restores_to_that_input() {
        let spec = ChainSpec { pow_limit_bits: 4, ..ChainSpec::default() };
        let params = spec.params();
        let mut chain = Chain::new(params.clone(), MempoolConfig::default()).unwrap();
        let mut batches: Vec<Vec<ChainOutput>> = vec![std::iter::from_fn(|| chain.poll_output()).collect()];
        let mut tips = vec![chain.tip().hash];
        let t0 = crate::params::GENESIS_TIME;
        let now = Instant::from_millis((u64::from(t0) + 1_000) * 1000);
        let genesis = chain.tip().hash;
        // Branch A: 3 blocks. Branch B from genesis: 4 blocks, the 4th reorganises.
        let mut parent = genesis;
        for i in 0..3 {
            let b = mine_at(&chain, parent, t0 + 10 + i, 1);
            parent = b.hash();
            chain.accept_block(now, b).unwrap();
            batches.push(std::iter::from_fn(|| chain.poll_output()).collect());
            tips.push(chain.tip().hash);
        }
        let a_tip = parent;
        let mut parent = genesis;
        for i in 0..4 {
            let b = mine_at(&chain, parent, t0 + 20 + i, 2);
            parent = b.hash();
            chain.accept_block(now, b).unwrap();
            batches.push(std::iter::from_fn(|| chain.poll_output()).collect());
            tips.push(chain.tip().hash);
        }
        assert_eq!(tips[3], a_tip);
        assert_eq!(chain.tip().hash, parent, "branch B won");
        assert!(batches.last().unwrap().iter().any(|o| matches!(o, ChainOutput::Reorg { .. })));
        for cut in 1..=batches.len() {
            let dir = tempfile::tempdir().unwrap();
            let store = ChainStore::open(dir.path(), &params).unwrap();
            for outs in &batches[..cut] {
                store.write(outs).unwrap();
            }
            drop(store);
            let store = ChainStore::open(dir.path(), &params).unwrap();
            // Genesis alone records no tip (a fresh store starts from genesis anyway).
            assert_eq!(store.tip().unwrap().unwrap_or(genesis), tips[cut - 1], "cut {cut}: stored tip");
            let restored = store.restore(params.clone(), MempoolConfig::default()).unwrap();
            assert_eq!(restored.tip().hash, tips[cut - 1], "cut {cut}: restored tip");
            assert!(store.compare_accounts(restored.ledger()).unwrap().is_empty(), "cut {cut}: accounts");
            let report = store.verify(params.clone()).unwrap();
            assert!(report.problems.is_empty(), "cut {cut}: {:?}", report.problems);
        }
        // The reorganisation's batch alone moved the accounts from A's miner to B's.
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(dir.path(), &params).unwrap();
        for outs in &batches {
            store.write(outs).unwrap();
        }
        let accounts = store.accounts().unwrap();
        assert!(accounts.iter().all(|(k, _)| *k != Keypair::for_testing(1).public()), "A's rewards undone");
        assert!(accounts.iter().any(|(k, a)| *k == Keypair::for_testing(2).public() && a.balance > 0));
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_a_panic() {
        let spec = ChainSpec { pow_limit_bits: 4, ..ChainSpec::default() };
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(dir.path(), &spec.params()).unwrap();
        let mut batch = store.state.batch();
        batch.put(TIP_KEY, b"\xff\xff").put(&key(b"i/", &[7; 32]), b"garbage");
        store.state.commit(batch).unwrap();
        assert!(matches!(store.tip(), Err(Error::Corrupt { .. })));
        assert!(matches!(store.index(), Err(Error::Corrupt { .. })));
        assert!(matches!(store.restore(spec.params(), MempoolConfig::default()), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn a_restored_chain_matches_and_a_foreign_chain_is_refused() {
        let spec = ChainSpec { pow_limit_bits: 4, ..ChainSpec::default() };
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(dir.path(), &spec.params()).unwrap();
        let mut chain = Chain::new(spec.params(), MempoolConfig::default()).unwrap();
        let mut outs: Vec<ChainOutput> = std::iter::from_fn(|| chain.poll_output()).collect();
        store.write(&outs).unwrap();
        for i in 0..12 {
            let b = mine_on(&mut chain, u64::from(crate::params::GENESIS_TIME) + 10 + i, i);
            chain
                .accept_block(Instant::from_millis((u64::from(crate::params::GENESIS_TIME) + 20 + i) * 1000), b)
                .unwrap();
            outs = std::iter::from_fn(|| chain.poll_output()).collect();
            store.write(&outs).unwrap();
        }
        let restored = store.restore(spec.params(), MempoolConfig::default()).unwrap();
        assert_eq!(restored.tip(), chain.tip());
        assert_eq!(restored.ledger(), chain.ledger());
        assert!(store.compare_accounts(chain.ledger()).unwrap().is_empty());
        let report = store.verify(spec.params()).unwrap();
        assert_eq!((report.blocks, report.height), (13, 12));
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        drop(store);
        let other = ChainSpec { chain_id: 9, ..spec };
        assert!(matches!(ChainStore::open(dir.path(), &other.params()), Err(Error::ForeignStore { .. })));
    }
}
