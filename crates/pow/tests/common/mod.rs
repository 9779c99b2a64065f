//! Helpers shared by the chain tests: fast parameters, block building and mining.

#![allow(dead_code)]

use ballot_core::Instant;
use ballot_ledger::{Coinbase, Keypair, MempoolConfig, PublicKey, SignedTransfer, Transaction, Transfer};
use ballot_pow::{Block, BlockHash, Chain, ChainOutput, ChainParams, mine};

pub const CHAIN_ID: u32 = 7;
/// Genesis time.
pub const T0: u32 = 1_700_000_000;

pub fn key(n: u64) -> Keypair {
    Keypair::for_testing(n)
}

/// Test parameters; genesis pays key 0.
pub fn params() -> ChainParams {
    ChainParams::testing(CHAIN_ID, key(0).public(), T0)
}

/// A clock far enough ahead of every test block.
pub fn late() -> Instant {
    at(T0 + 1_000_000)
}

/// `Instant` for Unix second `t`.
pub fn at(t: u32) -> Instant {
    Instant::from_millis(u64::from(t) * 1000)
}

pub fn new_chain(params: ChainParams) -> Chain {
    let mut c = Chain::new(params, MempoolConfig::default()).unwrap();
    drain(&mut c);
    c
}

pub fn drain(c: &mut Chain) -> Vec<ChainOutput> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

pub fn pay(from: &Keypair, to: PublicKey, amount: u64, fee: u64, nonce: u64) -> SignedTransfer {
    Transfer { chain_id: CHAIN_ID, from: from.public(), to, amount, fee, nonce, memo: vec![] }.sign(from).unwrap()
}

/// What a test block looks like.
pub struct Spec {
    /// Seconds after the parent's time.
    pub dt: i64,
    /// Key number the coinbase pays.
    pub miner: u64,
    pub transfers: Vec<SignedTransfer>,
    /// Units claimed beyond subsidy + fees.
    pub extra_claim: u64,
}

impl Default for Spec {
    fn default() -> Self {
        Spec { dt: 10, miner: 9, transfers: vec![], extra_claim: 0 }
    }
}

/// The unmined child of `parent` (known to `chain`) described by `spec`.
pub fn unmined(chain: &Chain, parent: BlockHash, spec: Spec) -> Block {
    let entry = chain.entry(&parent).expect("parent known");
    let height = entry.height + 1;
    let fees: u64 = spec.transfers.iter().map(|t| t.transfer.fee).sum();
    let amount = chain.params().ledger.subsidy(height) + fees + spec.extra_claim;
    let mut txs = vec![Transaction::Coinbase(Coinbase { height, to: key(spec.miner).public(), amount })];
    txs.extend(spec.transfers.into_iter().map(Transaction::Transfer));
    let time = u32::try_from(i64::from(entry.header.time) + spec.dt).unwrap();
    Block::new(parent, time, chain.next_bits(entry), txs)
}

/// The mined child of `parent` described by `spec`.
pub fn block(chain: &Chain, parent: BlockHash, spec: Spec) -> Block {
    let mut b = unmined(chain, parent, spec);
    assert!(mine(&mut b.header).unwrap());
    b
}

/// Mines `n` empty blocks on `parent` in `producer` (accepting them there), `dt`
/// seconds apart, paying `miner`. Returns them in order.
pub fn extend(producer: &mut Chain, parent: BlockHash, n: usize, dt: i64, miner: u64) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    let mut tip = parent;
    for _ in 0..n {
        let b = block(producer, tip, Spec { dt, miner, ..Spec::default() });
        producer.accept_block(late(), b.clone()).unwrap();
        tip = b.hash();
        out.push(b);
    }
    drain(producer);
    out
}

pub fn feed(chain: &mut Chain, blocks: &[Block]) {
    for b in blocks {
        chain.accept_block(late(), b.clone()).unwrap();
    }
}
