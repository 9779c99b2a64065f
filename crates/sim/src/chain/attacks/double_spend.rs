//! The double-spend race, measured: an attacker pays a merchant, mines a conflicting
//! branch in private, and publishes it if it overtakes the honest chain after the
//! merchant accepted the payment.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use ballot_core::Instant;
use ballot_ledger::{SignedTransfer, Transfer, TxId};
use ballot_pow::Chain;

use ballot_ledger::PublicKey;
use ballot_pow::{Block, BlockHash, ChainParams, CompactTarget};

use super::super::config::{CHAIN_ID, ChainSimConfig, GENESIS_TIME, base_params, miner_key, test_key};
use super::super::node::Role;
use super::super::sim::{ChainSim, ChainSimError, Event, Msg};
use crate::net::NetConfig;

/// Target block interval of the measurements (Bitcoin's).
pub(crate) const INTERVAL: u64 = 600;

/// The attacker's state.
pub(crate) struct DoubleSpender {
    /// Waiting for a pre-mined block before paying.
    premining: bool,
    pay: SignedTransfer,
    pay_id: TxId,
    steal: TxId,
    /// Height of the last block the attacker's branch shares with the honest chain.
    fork: u64,
    /// When the attacker published his branch.
    published: Option<Instant>,
    /// The merchant's and the attacker's tips when last looked at.
    seen: Option<(BlockHash, BlockHash)>,
}

/// One double-spend experiment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DoubleSpendSetup {
    /// The attacker's hash-rate share.
    pub q: f64,
    /// Confirmations the merchant waits for (0: accepts the unconfirmed payment).
    pub z: u64,
    /// Whether the attacker pre-mines one block before paying (Rosenfeld's setting).
    pub premine: bool,
    /// The attacker gives up when the honest chain is more than this many blocks ahead
    /// of his branch.
    pub give_up: u64,
    /// Honest miners (sharing `1 − q` equally).
    pub honest: usize,
}

/// What one trial did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trial {
    /// The attacker's branch replaced the payment in the merchant's best chain.
    pub success: bool,
    /// Blocks mined in the trial.
    pub blocks: u64,
}

/// Bitcoin's regtest limit: every other hash meets it, so grinding costs nothing.
const REGTEST_BITS: CompactTarget = CompactTarget(0x207f_ffff);

/// The rules of the measurements: `ChainParams::testing` with T = 600 s, no
/// retargeting (every block is worth the same work, as the analyses assume), the regtest
/// proof-of-work limit, and genesis paying `genesis_to`.
pub(crate) fn measurement_params(genesis_to: PublicKey, coinbase_maturity: u64) -> ChainParams {
    let mut params = base_params(genesis_to);
    params.retarget_interval = 0;
    params.target_spacing = INTERVAL;
    params.ledger.coinbase_maturity = coinbase_maturity;
    params.pow_limit = REGTEST_BITS.to_target().unwrap_or(params.pow_limit);
    params.genesis = Block::genesis(&params.ledger, genesis_to, GENESIS_TIME, REGTEST_BITS);
    params
}

/// A network of fixed-delay links that lose nothing.
pub(crate) fn lossless(delay: Duration) -> NetConfig {
    NetConfig {
        delay_min: delay,
        delay_max: delay,
        drop: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        reorder_delay: Duration::ZERO,
    }
}

fn confirmations(chain: &Chain, fork: u64, id: &TxId) -> u64 {
    let tip = chain.height();
    for h in fork + 1..=tip {
        let has = chain.hash_at(h).and_then(|x| chain.block(&x)).is_some_and(|b| b.txs.iter().any(|t| t.id() == *id));
        if has {
            return tip - h + 1;
        }
    }
    0
}

thread_local! {
    /// The payment and the theft of the attacker with a given node index (the same in
    /// every trial: signing them once per thread saves two signatures per trial).
    static SIGNED: RefCell<HashMap<usize, (SignedTransfer, SignedTransfer)>> = RefCell::new(HashMap::new());
}

/// The attacker's payment to the merchant and his conflicting transfer to himself:
/// the genesis coins, same nonce.
fn attack_transfers(attacker: usize) -> Result<(SignedTransfer, SignedTransfer), ChainSimError> {
    if let Some(t) = SIGNED.with(|s| s.borrow().get(&attacker).cloned()) {
        return Ok(t);
    }
    let key = miner_key(attacker);
    let transfer = |to: u64| {
        Transfer {
            chain_id: CHAIN_ID,
            from: key.public(),
            to: test_key(to).public(),
            amount: 1_000,
            fee: 10,
            nonce: 0,
            memo: Vec::new(),
        }
        .sign(&key)
    };
    let (Ok(pay), Ok(steal)) = (transfer(40_000), transfer(40_001)) else {
        return Err(ChainSimError::InvalidConfig("could not sign the attack's transfers".to_owned()));
    };
    SIGNED.with(|s| s.borrow_mut().insert(attacker, (pay.clone(), steal.clone())));
    Ok((pay, steal))
}

/// Runs one trial: node 0 is the merchant (an honest miner), the last node the attacker,
/// whom the genesis block pays. The payment and the theft are signed transfers of the
/// attacker's coins with the same nonce; the merchant counts confirmations in its own
/// best chain.
///
/// # Errors
/// A violation of a checker (which run in these trials too).
pub fn double_spend_trial(setup: &DoubleSpendSetup, seed: u64) -> Result<Trial, ChainSimError> {
    let honest = setup.honest.max(1);
    let attacker = honest;
    let attacker_key = miner_key(attacker);
    let params = measurement_params(attacker_key.public(), 0);
    let mut shares = vec![(1.0 - setup.q) / honest as f64; honest];
    shares.push(setup.q);
    let mut cfg = ChainSimConfig::plain(seed, shares, params, lossless(Duration::from_millis(1)));
    cfg.replay = format!(
        "double-spend trial seed {seed} (q {}, z {}, pre-mine {}, give up {})",
        setup.q, setup.z, setup.premine, setup.give_up
    );
    let mut sim = ChainSim::new(cfg)?;
    let (pay, steal) = attack_transfers(attacker)?;
    let steal_id = steal.id();
    if let Some(chain) = sim.nodes[attacker].chain.as_mut() {
        chain.submit_transaction(steal).map_err(|e| ChainSimError::InvalidConfig(format!("theft refused: {e}")))?;
    }
    sim.nodes[attacker].role = Role::DoubleSpender(Box::new(DoubleSpender {
        premining: setup.premine,
        pay_id: pay.id(),
        pay,
        steal: steal_id,
        fork: 0,
        published: None,
        seen: None,
    }));
    if !setup.premine {
        sim.pay_merchant(attacker);
    }
    loop {
        if !sim.step()? {
            return Ok(Trial { success: false, blocks: sim.stats.blocks_mined });
        }
        if let Some(success) = sim.ds_progress(attacker, setup.z, setup.give_up) {
            return Ok(Trial { success, blocks: sim.stats.blocks_mined });
        }
    }
}

impl ChainSim {
    /// Whether the attacker ignores the honest chain (he does once he raced off).
    pub(crate) fn ds_ignores_blocks(&self, i: usize) -> bool {
        matches!(&self.nodes[i].role, Role::DoubleSpender(d) if !d.premining)
    }

    /// Broadcasts the payment to the honest nodes; the race starts at the attacker's tip.
    fn pay_merchant(&mut self, i: usize) {
        let Role::DoubleSpender(d) = &mut self.nodes[i].role else { return };
        let pay = d.pay.clone();
        for p in 0..self.nodes.len() {
            if p != i {
                self.send(i, p, Msg::Tx(pay.clone()));
            }
        }
    }

    pub(crate) fn mine_double_spender(&mut self, i: usize) {
        let Some(block) = self.new_block(i) else { return };
        let block = self.record(i, block, true);
        self.accept(i, None, block);
        let height = self.nodes[i].chain.as_ref().map_or(0, Chain::height);
        if let Role::DoubleSpender(d) = &mut self.nodes[i].role
            && d.premining
        {
            // The pre-mined block holds the theft; now pay, and race from its parent.
            d.premining = false;
            d.fork = height.saturating_sub(1);
            self.pay_merchant(i);
        }
    }

    /// After each step of a trial: `Some(success)` once the race is decided.
    fn ds_progress(&mut self, attacker: usize, z: u64, give_up: u64) -> Option<bool> {
        let Role::DoubleSpender(d) = &self.nodes[attacker].role else { return Some(false) };
        if d.premining {
            return None;
        }
        let merchant = self.nodes[0].chain.as_ref()?;
        if let Some(at) = d.published {
            if confirmations(merchant, d.fork, &d.steal) > 0 {
                return Some(true);
            }
            return (self.now >= at + Duration::from_secs(10)).then_some(false);
        }
        let own = self.nodes[attacker].chain.as_ref()?;
        // Nothing to decide until one of the two tips moves.
        let tips = (merchant.tip().hash, own.tip().hash);
        if d.seen == Some(tips) {
            return None;
        }
        let public = merchant.height() - d.fork;
        let private = own.height() - d.fork;
        let accepted = z == 0 || confirmations(merchant, d.fork, &d.pay_id) >= z;
        if accepted && private > public {
            let blocks: Vec<_> = (d.fork + 1..=own.height())
                .filter_map(|h| own.hash_at(h).and_then(|x| own.block(&x)).cloned())
                .collect();
            for b in blocks {
                for p in 0..attacker {
                    self.send(attacker, p, Msg::Block(b.clone()));
                }
            }
            if let Role::DoubleSpender(d) = &mut self.nodes[attacker].role {
                d.published = Some(self.now);
            }
            self.queue.push(self.now + Duration::from_secs(10), Event::Wake);
            return None;
        }
        if let Role::DoubleSpender(d) = &mut self.nodes[attacker].role {
            d.seen = Some(tips);
        }
        (public > private + give_up).then_some(false)
    }
}
