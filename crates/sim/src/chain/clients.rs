//! Wallets: signed transfers to random nodes, with deliberate double spends, replays,
//! overspends and forgeries.

use std::sync::Arc;
use std::time::Duration;

use ballot_ledger::{Account, Keypair, SignedTransfer, Transfer, TxId};

use super::config::{CHAIN_ID, faucet_key, miner_key, wallet_key};
use super::mining::exponential;
use super::sim::{ChainSim, Event};

/// What the wallets do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClientConfig {
    /// Mean time between wallet actions (exponential).
    pub gap: Duration,
    /// Probability that an action is a double spend: two transfers with the same sender
    /// and nonce to different recipients, sent to two different nodes at once.
    pub double_spend: f64,
    /// Probability that an action is a transfer the ledger must refuse (a replay, an
    /// overspend, a forged signature, another chain's id, a zero amount).
    pub invalid: f64,
    /// Plain wallets besides the faucet (paid by genesis) and the miners' accounts.
    pub wallets: usize,
}

/// The wallets' keys and what they sent.
pub(crate) struct Wallets {
    cfg: ClientConfig,
    keys: Vec<Arc<Keypair>>,
    /// Transfers meant to be valid.
    pub(crate) submitted: Vec<TxId>,
    /// Double-spend pairs.
    pub(crate) pairs: Vec<(TxId, TxId)>,
    /// Recent transfers, to replay.
    recent: Vec<SignedTransfer>,
}

impl Wallets {
    pub(crate) fn new(cfg: ClientConfig, miners: usize) -> Self {
        let mut keys = vec![faucet_key()];
        keys.extend((0..miners).map(miner_key));
        keys.extend((0..cfg.wallets).map(wallet_key));
        Wallets { cfg, keys, submitted: Vec::new(), pairs: Vec::new(), recent: Vec::new() }
    }
}

impl ChainSim {
    pub(crate) fn wallet_tick(&mut self) {
        let Some(mut w) = self.wallets.take() else { return };
        if let Some(dt) = exponential(&mut self.rng, 1.0 / w.cfg.gap.as_secs_f64().max(1e-3)) {
            self.queue.push(self.now + dt, Event::WalletTick);
        }
        self.wallet_act(&mut w);
        self.wallets = Some(w);
    }

    pub(crate) fn tx_arrives(&mut self, i: usize, tx: SignedTransfer) {
        if self.nodes[i].up() {
            self.on_tx(i, None, tx);
        } else {
            self.stats.tx_lost += 1;
        }
    }

    fn pick(&mut self, n: usize) -> usize {
        usize::try_from(self.rng.gen_range(0..n as u64)).unwrap_or(0)
    }

    /// Sends `tx` to node `i` from a wallet (it arrives after a client delay).
    fn submit(&mut self, i: usize, tx: SignedTransfer) {
        let d = self.net.client_delay(&mut self.rng);
        self.stats.tx_submitted += 1;
        self.queue.push(self.now + d, Event::TxArrives { node: i, tx });
    }

    fn wallet_act(&mut self, w: &mut Wallets) {
        let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].up()).collect();
        if up.is_empty() {
            return;
        }
        let entry = up[self.pick(up.len())];
        let other = up[self.pick(up.len())];
        // What the entry node tells each wallet: account, pending transfers, spendable.
        let info: Vec<(Account, u64, u64)> = {
            let Some(chain) = self.nodes[entry].chain.as_ref() else { return };
            let (ledger, height) = (chain.ledger(), chain.height() + 1);
            w.keys
                .iter()
                .map(|k| {
                    let p = k.public();
                    let pending = chain.mempool().iter().filter(|(_, t)| t.transfer.from == p).count() as u64;
                    (ledger.account(&p).unwrap_or_default(), pending, ledger.spendable(&p, height))
                })
                .collect()
        };
        let funded: Vec<usize> = (0..info.len()).filter(|&k| info[k].2 >= 2).collect();
        let roll = self.rng.gen_range(0..1_000) as f64 / 1_000.0;
        let sender = if funded.is_empty() { 0 } else { funded[self.pick(funded.len())] };
        let from = w.keys[sender].public();
        let (account, pending, spendable) = info[sender];
        let mut to = self.pick(w.keys.len() - 1);
        if to >= sender {
            to += 1;
        }
        let transfer = Transfer {
            chain_id: CHAIN_ID,
            from,
            to: w.keys[to].public(),
            amount: 1 + self.rng.gen_range(0..spendable / 4 + 1),
            fee: self.rng.gen_range(0..20),
            nonce: account.nonce + pending,
            memo: Vec::new(),
        };
        if roll < w.cfg.invalid {
            let bad = match self.rng.gen_range(0..5) {
                0 if !w.recent.is_empty() => Ok(w.recent[self.pick(w.recent.len())].clone()),
                1 => Transfer { amount: account.balance.saturating_add(1), ..transfer }.sign(&w.keys[sender]),
                2 => transfer.sign(&w.keys[sender]).map(|mut t| {
                    t.signature.0[7] ^= 0x40;
                    t
                }),
                3 => Transfer { chain_id: CHAIN_ID + 1, ..transfer }.sign(&w.keys[sender]),
                _ => Transfer { amount: 0, ..transfer }.sign(&w.keys[sender]),
            };
            if let Ok(tx) = bad {
                let node = up[self.pick(up.len())];
                self.submit(node, tx);
            }
            return;
        }
        if funded.is_empty() {
            return;
        }
        let fee2 = self.rng.gen_range(0..40);
        let Ok(first) = transfer.clone().sign(&w.keys[sender]) else { return };
        w.submitted.push(first.id());
        if roll < w.cfg.invalid + w.cfg.double_spend {
            // Same sender and nonce, another recipient, sent elsewhere at the same time.
            let others: Vec<usize> = (0..w.keys.len()).filter(|&k| k != sender && k != to).collect();
            let Some(&alt) = others.get(self.pick(others.len().max(1))) else { return };
            let Ok(second) = Transfer { to: w.keys[alt].public(), fee: fee2, ..transfer }.sign(&w.keys[sender]) else {
                return;
            };
            w.submitted.push(second.id());
            w.pairs.push((first.id(), second.id()));
            self.stats.ds_attempts += 1;
            let elsewhere = if other == entry && up.len() > 1 {
                up[(up.iter().position(|&x| x == entry).unwrap_or(0) + 1) % up.len()]
            } else {
                other
            };
            self.submit(elsewhere, second);
        }
        if w.recent.len() >= 64 {
            w.recent.remove(0);
        }
        w.recent.push(first.clone());
        self.submit(entry, first);
    }
}
