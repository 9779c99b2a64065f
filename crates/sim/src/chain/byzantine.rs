//! The Byzantine miner of the chaos runs: blocks that break one rule each, and valid
//! blocks withheld and released later.

use std::sync::Arc;

use ballot_ledger::{Coinbase, Keypair, SignedTransfer, Transaction, Transfer, sha256d};
use ballot_pow::{Block, BlockHash, CompactTarget, unix_seconds};

use super::config::{ByzantineProfile, CHAIN_ID, test_key};
use super::mining::{exponential, grind, unground};
use super::node::Role;
use super::sim::{ChainSim, Event, Msg};

/// The Byzantine node's state.
pub(crate) struct Byzantine {
    pub(crate) profile: ByzantineProfile,
    /// While set, it neither relays nor answers nor announces.
    pub(crate) withholding: bool,
    pub(crate) withheld: Vec<Arc<Block>>,
    release_gen: u64,
    /// The last block it published that honest nodes file as invalid: hash, height, time, bits.
    last_invalid: Option<(BlockHash, u64, u32, CompactTarget)>,
}

impl Byzantine {
    pub(crate) fn new(profile: ByzantineProfile) -> Self {
        Byzantine { profile, withholding: false, withheld: Vec::new(), release_gen: 0, last_invalid: None }
    }
}

/// The rule a bad block breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Break {
    NoWork,
    BadMerkle,
    Mutated,
    WrongBits,
    AboveLimit,
    TimeTooOld,
    TimeTooNew,
    Overclaim,
    WrongCoinbaseHeight,
    MissingCoinbase,
    ExtraCoinbase,
    DoubleSpend,
    Replay,
    Overspend,
    Immature,
    BadSignature,
    WrongChainId,
    ChildOfInvalid,
}

const ALL: [Break; 18] = [
    Break::NoWork,
    Break::BadMerkle,
    Break::Mutated,
    Break::WrongBits,
    Break::AboveLimit,
    Break::TimeTooOld,
    Break::TimeTooNew,
    Break::Overclaim,
    Break::WrongCoinbaseHeight,
    Break::MissingCoinbase,
    Break::ExtraCoinbase,
    Break::DoubleSpend,
    Break::Replay,
    Break::Overspend,
    Break::Immature,
    Break::BadSignature,
    Break::WrongChainId,
    Break::ChildOfInvalid,
];

fn pay(key: &Keypair, to: u64, amount: u64, nonce: u64, chain_id: u32) -> Option<SignedTransfer> {
    let to = test_key(30_000 + to).public();
    Transfer { chain_id, from: key.public(), to, amount, fee: 0, nonce, memo: Vec::new() }.sign(key).ok()
}

fn coinbase(txs: &mut [Transaction]) -> Option<&mut Coinbase> {
    match txs.first_mut() {
        Some(Transaction::Coinbase(c)) => Some(c),
        _ => None,
    }
}

impl ChainSim {
    pub(crate) fn mine_byzantine(&mut self, i: usize) {
        let Role::Byzantine(b) = &self.nodes[i].role else { return };
        let (profile, withholding) = (b.profile, b.withholding);
        if self.rng.gen_bool(profile.invalid) {
            let kind = ALL[usize::try_from(self.rng.gen_range(0..ALL.len() as u64)).unwrap_or(0)];
            let pick = self.rng.next_u64();
            let Some((block, height, filed_invalid)) = self.bad_block(i, kind, pick) else { return };
            let (time, bits) = (block.header.time, block.header.bits);
            let block = self.record(i, block, false);
            if filed_invalid && let Role::Byzantine(b) = &mut self.nodes[i].role {
                b.last_invalid = Some((block.hash(), height, time, bits));
            }
            for p in 0..self.nodes.len() {
                if p != i {
                    self.send(i, p, Msg::Block(block.clone()));
                }
            }
            return;
        }
        let Some(block) = self.new_block(i) else { return };
        let withhold = withholding || self.rng.gen_bool(profile.withhold);
        if withhold && !withholding {
            let mean = self.cfg.block_interval().as_secs_f64() * 3.0;
            let delay = exponential(&mut self.rng, 1.0 / mean).unwrap_or_default();
            if let Role::Byzantine(b) = &mut self.nodes[i].role {
                b.withholding = true;
                b.release_gen += 1;
                let generation = b.release_gen;
                self.queue.push(self.now + delay, Event::Release { node: i, generation });
            }
        }
        let block = self.record(i, block, true);
        if withhold {
            self.stats.byz_withheld += 1;
            if let Role::Byzantine(b) = &mut self.nodes[i].role {
                b.withheld.push(block.clone());
            }
        }
        self.accept(i, None, block);
    }

    /// Ends a withholding period: every withheld block goes to every peer.
    pub(crate) fn byz_release(&mut self, i: usize, generation: u64) {
        if !self.nodes[i].up() {
            return;
        }
        let Role::Byzantine(b) = &mut self.nodes[i].role else { return };
        if b.release_gen != generation || !b.withholding {
            return;
        }
        b.withholding = false;
        let blocks = std::mem::take(&mut b.withheld);
        for block in blocks {
            for p in 0..self.nodes.len() {
                if p != i {
                    self.send(i, p, Msg::Block(block.clone()));
                }
            }
        }
    }

    /// A block on node `i`'s tip that breaks `kind` (or a fallback rule when the node
    /// lacks what `kind` needs), its height, and whether honest nodes file it as
    /// invalid in their index (so that a child of it is refused as such).
    fn bad_block(&self, i: usize, kind: Break, pick: u64) -> Option<(Block, u64, bool)> {
        let now = self.node_now(i);
        let node = &self.nodes[i];
        let chain = node.chain.as_ref()?;
        let params = &self.cfg.params;
        let key = &node.key;
        let tpl = chain.block_template(now, node.public);
        let tip = chain.tip();
        let mut height = tpl.height;
        let mut txs = tpl.block.txs.clone();
        let (mut prev, mut time, mut bits) = (tip.hash, tpl.block.header.time, tpl.block.header.bits);
        let ledger = chain.ledger();
        let account = ledger.account(&node.public);
        let spendable = ledger.spendable(&node.public, height);
        let nonce = account.map_or(0, |a| a.nonce);
        let limit_bits = CompactTarget::from_target(params.pow_limit);

        // Fall back along a chain of kinds until one applies.
        let mut kind = kind;
        let kind = loop {
            kind = match kind {
                Break::DoubleSpend if spendable < 2 => Break::BadSignature,
                Break::Immature if ledger.locked(&node.public, height) == 0 || account.is_none() => Break::Overspend,
                Break::ChildOfInvalid if node_last_invalid(node).is_none() => Break::Overclaim,
                Break::Replay if replayable(chain).is_none() => Break::WrongChainId,
                k => break k,
            };
        };
        let mut filed_invalid = true;
        match kind {
            Break::NoWork | Break::BadMerkle | Break::AboveLimit | Break::TimeTooNew | Break::MissingCoinbase => {
                filed_invalid = false
            }
            Break::Mutated | Break::ExtraCoinbase => filed_invalid = false,
            Break::WrongBits => {
                bits = if bits == limit_bits { CompactTarget::from_target(params.pow_limit >> 1) } else { limit_bits }
            }
            Break::TimeTooOld => time = chain.median_time_past(&tip.hash),
            Break::Overclaim => coinbase(&mut txs)?.amount += 1,
            Break::WrongCoinbaseHeight => coinbase(&mut txs)?.height += 1,
            Break::DoubleSpend => {
                txs.push(pay(key, pick % 7, 1, nonce, CHAIN_ID)?.into());
                txs.push(pay(key, pick % 7 + 1, 1, nonce, CHAIN_ID)?.into());
            }
            Break::Replay => txs.push(replayable(chain)?.into()),
            Break::Overspend => {
                let amount = account.map_or(1, |a| a.balance.saturating_add(1));
                txs.push(pay(key, pick % 7, amount, nonce, CHAIN_ID)?.into());
            }
            Break::Immature => txs.push(pay(key, pick % 7, spendable + 1, nonce, CHAIN_ID)?.into()),
            Break::BadSignature => {
                let mut t = pay(key, pick % 7, 1, nonce, CHAIN_ID)?;
                t.signature.0[(pick % 64) as usize] ^= 0x10;
                txs.push(t.into());
            }
            Break::WrongChainId => txs.push(pay(key, pick % 7, 1, nonce, CHAIN_ID + 1)?.into()),
            Break::ChildOfInvalid => {
                let (parent, h, t, b) = node_last_invalid(node)?;
                prev = parent;
                height = h + 1;
                time = time.max(t + 1);
                bits = b;
                txs = vec![Transaction::Coinbase(Coinbase {
                    height,
                    to: node.public,
                    amount: params.ledger.subsidy(height),
                })];
            }
        }
        match kind {
            Break::AboveLimit => bits = CompactTarget(0x2100_ffff),
            Break::TimeTooNew => {
                let max = unix_seconds(now).saturating_add(params.max_future_drift + 3_600);
                time = u32::try_from(max).unwrap_or(u32::MAX);
            }
            Break::MissingCoinbase => {
                txs.remove(0);
            }
            Break::ExtraCoinbase => txs.push(Transaction::Coinbase(Coinbase { height, to: node.public, amount: 0 })),
            _ => {}
        }
        let mut block = if kind == Break::Mutated {
            // [coinbase, a, b] and [coinbase, a, b, b] share a Merkle root (CVE-2012-2459).
            let a = pay(key, pick % 7, 1, nonce, CHAIN_ID)?;
            let b = pay(key, pick % 7 + 1, 1, nonce + 1, CHAIN_ID)?;
            let mut block = Block::new(prev, time, bits, vec![txs[0].clone(), a.into(), b.clone().into()]);
            block.txs.push(b.into());
            block
        } else {
            Block::new(prev, time, bits, txs)
        };
        if kind == Break::BadMerkle {
            block.header.merkle_root = sha256d(b"not the root of these transactions");
        }
        if kind == Break::NoWork {
            unground(&mut block);
        } else if !grind(&mut block) {
            return None;
        }
        Some((block, height, filed_invalid))
    }
}

fn node_last_invalid(node: &super::node::Node) -> Option<(BlockHash, u64, u32, CompactTarget)> {
    match &node.role {
        Role::Byzantine(b) => b.last_invalid,
        _ => None,
    }
}

/// A transfer already in the node's best chain (among its last 20 blocks).
fn replayable(chain: &ballot_pow::Chain) -> Option<SignedTransfer> {
    let h = chain.height();
    (h.saturating_sub(20)..=h)
        .rev()
        .filter_map(|x| chain.hash_at(x).and_then(|hash| chain.block(&hash)))
        .find_map(|b| b.txs.iter().find_map(Transaction::as_transfer).cloned())
}
