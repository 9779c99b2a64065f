//! Unconfirmed transfers waiting for a block.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use crate::hash::TxId;
use crate::keys::PublicKey;
use crate::state::Ledger;
use crate::tx::{SignedTransfer, Transaction};
use crate::{LedgerError, MempoolError};

/// A fee per byte, compared exactly (as the fraction `fee / size`).
#[derive(Clone, Copy, Debug)]
pub struct FeeRate {
    /// Fee in units.
    pub fee: u64,
    /// Size in bytes (at least 1).
    pub size: u64,
}

impl FeeRate {
    /// The fee rate of `fee` units for `size` bytes (a size of zero counts as one byte).
    #[must_use]
    pub fn new(fee: u64, size: usize) -> Self {
        FeeRate { fee, size: u64::try_from(size).unwrap_or(u64::MAX).max(1) }
    }
}

impl PartialEq for FeeRate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for FeeRate {}
impl PartialOrd for FeeRate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for FeeRate {
    fn cmp(&self, other: &Self) -> Ordering {
        (u128::from(self.fee) * u128::from(other.size)).cmp(&(u128::from(other.fee) * u128::from(self.size)))
    }
}

/// Limits and policy of a [`Mempool`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Total encoded bytes kept; past it the lowest fee rates are evicted.
    pub max_bytes: usize,
    /// Transfers kept per sender; a nonce at or beyond `account nonce + max_per_sender`
    /// is refused.
    pub max_per_sender: u64,
    /// Smallest fee accepted, in units per 1,000 bytes.
    pub min_fee_per_kb: u64,
    /// A replacement (same sender and nonce) must pay a higher fee and a fee rate at
    /// least this many percent above the one it replaces.
    pub replace_bump_percent: u64,
}

impl Default for MempoolConfig {
    /// 64 MiB, 64 per sender, no minimum fee, replacements 10 % higher.
    fn default() -> Self {
        MempoolConfig { max_bytes: 64 << 20, max_per_sender: 64, min_fee_per_kb: 0, replace_bump_percent: 10 }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    tx: SignedTransfer,
    size: usize,
    rate: FeeRate,
    seq: u64,
}

/// Transfers waiting for a block, ordered by fee rate.
///
/// Admission checks a transfer against the ledger at its tip (signature, chain id,
/// account, funds including every pending transfer of the same sender, nonce not yet
/// used). Transfers of one sender may arrive out of nonce order; [`Mempool::select`]
/// takes them in nonce order only. A transfer with the nonce of a pending one replaces
/// it if it pays enough more (replace-by-fee); otherwise it is refused as a double
/// spend. When the pool exceeds its size bound, the lowest fee rate is evicted together
/// with the same sender's later nonces, which could no longer be mined.
#[derive(Clone, Debug)]
pub struct Mempool {
    config: MempoolConfig,
    entries: HashMap<TxId, Entry>,
    by_sender: HashMap<PublicKey, BTreeMap<u64, TxId>>,
    /// Lowest fee rate first; among equal rates, the newest first (it is evicted first).
    by_rate: BTreeSet<(FeeRate, Reverse<u64>, TxId)>,
    bytes: usize,
    next_seq: u64,
}

impl Mempool {
    /// An empty pool.
    #[must_use]
    pub fn new(config: MempoolConfig) -> Self {
        Mempool {
            config,
            entries: HashMap::new(),
            by_sender: HashMap::new(),
            by_rate: BTreeSet::new(),
            bytes: 0,
            next_seq: 0,
        }
    }

    /// The policy in force.
    #[must_use]
    pub fn config(&self) -> &MempoolConfig {
        &self.config
    }

    /// Number of transfers held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the pool is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encoded bytes held.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the transfer `id` is held.
    #[must_use]
    pub fn contains(&self, id: &TxId) -> bool {
        self.entries.contains_key(id)
    }

    /// The transfer `id`, if held.
    #[must_use]
    pub fn get(&self, id: &TxId) -> Option<&SignedTransfer> {
        self.entries.get(id).map(|e| &e.tx)
    }

    /// Every transfer held, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&TxId, &SignedTransfer)> {
        self.entries.iter().map(|(id, e)| (id, &e.tx))
    }

    /// Admits `tx` if it is valid against `ledger` and the pool's policy, evicting lower
    /// fee rates if the pool is full. Returns the id.
    ///
    /// # Errors
    /// [`MempoolError::Invalid`] with the ledger's reason (bad signature, wrong chain
    /// id, unknown account, used nonce, insufficient or immature funds counting the
    /// sender's pending transfers…), or a policy refusal.
    pub fn insert(&mut self, tx: SignedTransfer, ledger: &Ledger) -> Result<TxId, MempoolError> {
        let id = tx.id();
        if self.entries.contains_key(&id) {
            return Err(MempoolError::AlreadyKnown(id));
        }
        tx.check(ledger.params())?;
        let t = &tx.transfer;
        let account = ledger.sender(&tx)?;
        if t.nonce < account.nonce {
            return Err(LedgerError::WrongNonce { account: t.from, expected: account.nonce, got: t.nonce }.into());
        }
        if t.nonce - account.nonce >= self.config.max_per_sender {
            return Err(MempoolError::TooManyPending { account: t.from, max: self.config.max_per_sender });
        }
        let size = tx.size();
        let rate = FeeRate::new(t.fee, size);
        if u128::from(t.fee) * 1000 < u128::from(self.config.min_fee_per_kb) * size as u128 {
            return Err(MempoolError::FeeTooLow { fee: t.fee, size, min_fee_per_kb: self.config.min_fee_per_kb });
        }
        let replaced = self.by_sender.get(&t.from).and_then(|m| m.get(&t.nonce)).copied();
        if let Some(old_id) = replaced {
            let old = &self.entries[&old_id];
            let bump = u128::from(100 + self.config.replace_bump_percent.min(1_000_000));
            let enough = t.fee > old.tx.transfer.fee
                && u128::from(t.fee) * u128::from(old.rate.size) * 100
                    >= u128::from(old.tx.transfer.fee) * u128::from(rate.size) * bump;
            if !enough {
                return Err(MempoolError::ReplacementUnderpriced { account: t.from, nonce: t.nonce, old: old_id });
            }
        }
        // Funds: this transfer plus every other pending one of the sender.
        let pending: u128 = self
            .by_sender
            .get(&t.from)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|other| Some(**other) != replaced)
            .map(|other| {
                let o = &self.entries[other].tx.transfer;
                u128::from(o.amount) + u128::from(o.fee)
            })
            .sum();
        let needed = u64::try_from(pending + u128::from(t.total()?)).map_err(|_| LedgerError::AmountOverflow)?;
        ledger.check_funds(&t.from, account.balance, needed, ledger.next_height())?;
        if self.bytes.saturating_add(size) > self.config.max_bytes {
            let beats_lowest = self.by_rate.first().is_some_and(|(lowest, _, _)| rate > *lowest);
            if !beats_lowest || size > self.config.max_bytes {
                return Err(MempoolError::Full { max_bytes: self.config.max_bytes });
            }
        }
        if let Some(old_id) = replaced {
            self.remove(&old_id);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_sender.entry(t.from).or_default().insert(t.nonce, id);
        self.by_rate.insert((rate, Reverse(seq), id));
        self.bytes += size;
        self.entries.insert(id, Entry { tx, size, rate, seq });
        while self.bytes > self.config.max_bytes {
            let Some(&(_, _, lowest)) = self.by_rate.first() else { break };
            self.evict_with_descendants(&lowest);
        }
        if self.entries.contains_key(&id) {
            Ok(id)
        } else {
            Err(MempoolError::Full { max_bytes: self.config.max_bytes })
        }
    }

    /// Removes `id`, returning it.
    pub fn remove(&mut self, id: &TxId) -> Option<SignedTransfer> {
        let entry = self.entries.remove(id)?;
        let t = &entry.tx.transfer;
        if let Some(m) = self.by_sender.get_mut(&t.from) {
            m.remove(&t.nonce);
            if m.is_empty() {
                self.by_sender.remove(&t.from);
            }
        }
        self.by_rate.remove(&(entry.rate, Reverse(entry.seq), *id));
        self.bytes -= entry.size;
        Some(entry.tx)
    }

    /// Removes `id` and the same sender's transfers with higher nonces.
    fn evict_with_descendants(&mut self, id: &TxId) {
        let Some(entry) = self.entries.get(id) else { return };
        let (from, nonce) = (entry.tx.transfer.from, entry.tx.transfer.nonce);
        let doomed: Vec<TxId> =
            self.by_sender.get(&from).map(|m| m.range(nonce..).map(|(_, id)| *id).collect()).unwrap_or_default();
        for id in doomed {
            self.remove(&id);
        }
    }

    /// After a block was connected (`ledger` is the state after it): removes the
    /// block's transfers and every pending transfer its nonces made stale (conflicting
    /// double spends). Returns how many were removed.
    pub fn remove_confirmed(&mut self, txs: &[Transaction], ledger: &Ledger) -> usize {
        let before = self.entries.len();
        let mut senders = Vec::new();
        for t in txs.iter().filter_map(Transaction::as_transfer) {
            self.remove(&t.id());
            senders.push(t.transfer.from);
        }
        for sender in senders {
            self.prune_sender(&sender, ledger);
        }
        before - self.entries.len()
    }

    /// Drops, for every sender, the transfers whose nonce `ledger` has already used.
    /// Returns how many were removed.
    pub fn prune_stale(&mut self, ledger: &Ledger) -> usize {
        let before = self.entries.len();
        let senders: Vec<PublicKey> = self.by_sender.keys().copied().collect();
        for sender in senders {
            self.prune_sender(&sender, ledger);
        }
        before - self.entries.len()
    }

    fn prune_sender(&mut self, sender: &PublicKey, ledger: &Ledger) {
        let next = ledger.account(sender).map_or(0, |a| a.nonce);
        let stale: Vec<TxId> =
            self.by_sender.get(sender).map(|m| m.range(..next).map(|(_, id)| *id).collect()).unwrap_or_default();
        for id in stale {
            self.remove(&id);
        }
    }

    /// Offers transfers of disconnected blocks again (after a reorganisation; `ledger`
    /// is the state at the new tip). Each sender's transfers are tried in nonce order;
    /// those no longer valid are dropped. Returns how many were admitted.
    pub fn readmit(&mut self, txs: impl IntoIterator<Item = SignedTransfer>, ledger: &Ledger) -> usize {
        let mut txs: Vec<SignedTransfer> = txs.into_iter().collect();
        txs.sort_by_key(|t| (t.transfer.from, t.transfer.nonce));
        txs.into_iter().filter(|t| self.insert(t.clone(), ledger).is_ok()).count()
    }

    /// Transfers for a block template on top of `ledger`: highest fee rate first, each
    /// sender's in nonce order without gaps, affordable, and at most `max_bytes` in all.
    #[must_use]
    pub fn select(&self, ledger: &Ledger, max_bytes: usize) -> Vec<SignedTransfer> {
        struct Sender {
            next: u64,
            funds: u64,
        }
        let height = ledger.next_height();
        let mut senders: HashMap<PublicKey, Sender> = HashMap::new();
        let mut heap = BinaryHeap::new();
        for (from, txs) in &self.by_sender {
            let Some(account) = ledger.account(from) else { continue };
            let sender = Sender { next: account.nonce, funds: ledger.spendable(from, height) };
            if let Some(id) = txs.get(&sender.next) {
                let e = &self.entries[id];
                heap.push((e.rate, Reverse(e.seq), *id));
            }
            senders.insert(*from, sender);
        }
        let mut room = max_bytes;
        let mut out = Vec::new();
        while let Some((_, _, id)) = heap.pop() {
            let e = &self.entries[&id];
            let t = &e.tx.transfer;
            let Some(sender) = senders.get_mut(&t.from) else { continue };
            let Ok(total) = t.total() else { continue };
            if e.size > room || total > sender.funds {
                continue; // the sender's later nonces cannot go in without this one
            }
            room -= e.size;
            sender.funds -= total;
            sender.next += 1;
            out.push(e.tx.clone());
            if let Some(next) = self.by_sender.get(&t.from).and_then(|m| m.get(&sender.next)) {
                let n = &self.entries[next];
                heap.push((n.rate, Reverse(n.seq), *next));
            }
        }
        out
    }
}
