//! The account state, and applying and undoing blocks.

use std::collections::{BTreeMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::keys::PublicKey;
use crate::tx::{Coinbase, SignedTransfer, Transaction};
use crate::{LedgerError, LedgerParams};

/// One account: its balance (mature and maturing coinbase units alike) and its nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Account {
    /// Units held, including coinbase units that are not spendable yet.
    pub balance: u64,
    /// Transfers sent so far: the nonce the next transfer must carry.
    pub nonce: u64,
}

/// A coinbase credit that is still maturing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoinbaseCredit {
    /// Height of the block that paid it.
    pub height: u64,
    /// The account paid.
    pub to: PublicKey,
    /// Units paid.
    pub amount: u64,
}

/// What [`Ledger::undo_block`] needs to take a block back out exactly.
///
/// Store it with the block: a node disconnects blocks during a reorganisation with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockUndo {
    /// Height of the block.
    pub height: u64,
    /// Every account the block touched, with its value before the block (`None`: it did
    /// not exist).
    pub accounts: Vec<(PublicKey, Option<Account>)>,
    /// Coinbase credits that finished maturing at this height.
    pub matured: Vec<CoinbaseCredit>,
    /// Supply before the block.
    pub supply: u64,
    /// Fees the block's transfers paid.
    pub fees: u64,
}

/// The state after a block, for a store that keeps accounts as keys: write these
/// together with the block and its [`BlockUndo`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDelta {
    /// Height of the ledger's tip after the change (`None`: empty ledger).
    pub height: Option<u64>,
    /// Total supply after the change.
    pub supply: u64,
    /// New value of every account the change touched (`None`: delete it).
    pub accounts: Vec<(PublicKey, Option<Account>)>,
}

/// The ledger: accounts, supply, and the coinbase credits still maturing.
///
/// Blocks are applied in height order with [`Ledger::apply_block`], which validates
/// every transaction and returns [`BlockUndo`]; [`Ledger::undo_block`] takes the last
/// block back out. Both are all-or-nothing. The type is `Serialize`, so a node may also
/// keep snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    params: LedgerParams,
    accounts: BTreeMap<PublicKey, Account>,
    tip: Option<u64>,
    supply: u64,
    /// Coinbase credits of the last `coinbase_maturity` blocks, oldest first.
    maturing: VecDeque<CoinbaseCredit>,
}

impl Ledger {
    /// An empty ledger, before its genesis block.
    #[must_use]
    pub fn new(params: LedgerParams) -> Self {
        Ledger { params, accounts: BTreeMap::new(), tip: None, supply: 0, maturing: VecDeque::new() }
    }

    /// The rules in force.
    #[must_use]
    pub fn params(&self) -> &LedgerParams {
        &self.params
    }

    /// Height of the last applied block, `None` before genesis.
    #[must_use]
    pub fn tip_height(&self) -> Option<u64> {
        self.tip
    }

    /// Height the next block must have.
    #[must_use]
    pub fn next_height(&self) -> u64 {
        self.tip.map_or(0, |h| h.saturating_add(1))
    }

    /// Units in existence.
    #[must_use]
    pub fn supply(&self) -> u64 {
        self.supply
    }

    /// The account, if it ever received anything.
    #[must_use]
    pub fn account(&self, key: &PublicKey) -> Option<Account> {
        self.accounts.get(key).copied()
    }

    /// All accounts, ordered by key.
    pub fn accounts(&self) -> impl Iterator<Item = (&PublicKey, &Account)> {
        self.accounts.iter()
    }

    /// Coinbase units of `key` that a block at `height` may not spend yet.
    #[must_use]
    pub fn locked(&self, key: &PublicKey, height: u64) -> u64 {
        let maturity = self.params.coinbase_maturity;
        self.maturing
            .iter()
            .filter(|c| c.to == *key && c.height.saturating_add(maturity) > height)
            .fold(0u64, |sum, c| sum.saturating_add(c.amount))
    }

    /// What `key` may spend in a block at `height`.
    #[must_use]
    pub fn spendable(&self, key: &PublicKey, height: u64) -> u64 {
        self.account(key).map_or(0, |a| a.balance.saturating_sub(self.locked(key, height)))
    }

    /// Checks a transfer as the next block would: stateless checks, then account,
    /// nonce and funds. Changes nothing.
    ///
    /// # Errors
    /// The [`LedgerError`] that [`Ledger::apply_block`] would report for it.
    pub fn check_transfer(&self, tx: &SignedTransfer) -> Result<(), LedgerError> {
        tx.check(&self.params)?;
        let sender = self.sender(tx)?;
        if tx.transfer.nonce != sender.nonce {
            return Err(LedgerError::WrongNonce {
                account: tx.transfer.from,
                expected: sender.nonce,
                got: tx.transfer.nonce,
            });
        }
        self.check_funds(&tx.transfer.from, sender.balance, tx.transfer.total()?, self.next_height())
    }

    pub(crate) fn sender(&self, tx: &SignedTransfer) -> Result<Account, LedgerError> {
        self.account(&tx.transfer.from).ok_or(LedgerError::UnknownAccount(tx.transfer.from))
    }

    /// Whether `needed` units may leave `key` (whose balance is `balance`) at `height`.
    pub(crate) fn check_funds(
        &self,
        key: &PublicKey,
        balance: u64,
        needed: u64,
        height: u64,
    ) -> Result<(), LedgerError> {
        let locked = self.locked(key, height);
        let spendable = balance.saturating_sub(locked);
        if needed <= spendable {
            Ok(())
        } else if needed <= balance {
            Err(LedgerError::ImmatureCoinbase { account: *key, needed, spendable, locked })
        } else {
            Err(LedgerError::InsufficientFunds { account: *key, needed, available: spendable })
        }
    }

    /// Validates and applies the transactions of the block at `height` (a coinbase
    /// first, then transfers), returning the data that undoes it.
    ///
    /// All or nothing: on error the ledger is unchanged.
    ///
    /// # Errors
    /// A [`LedgerError`] naming the first rule the block breaks.
    pub fn apply_block(&mut self, height: u64, txs: &[Transaction]) -> Result<BlockUndo, LedgerError> {
        let expected = self.next_height();
        if height != expected {
            return Err(LedgerError::WrongHeight { expected, got: height });
        }
        let Some((Transaction::Coinbase(coinbase), transfers)) = txs.split_first() else {
            return Err(LedgerError::MissingCoinbase);
        };
        if coinbase.height != height {
            return Err(LedgerError::WrongCoinbaseHeight { expected: height, got: coinbase.height });
        }
        // Stateless checks (signatures above all) before touching anything.
        for tx in transfers {
            match tx {
                Transaction::Coinbase(_) => return Err(LedgerError::ExtraCoinbase),
                Transaction::Transfer(t) => t.check(&self.params)?,
            }
        }
        let mut undo = BlockUndo { height, accounts: Vec::new(), matured: Vec::new(), supply: self.supply, fees: 0 };
        match self.apply_checked(height, coinbase, transfers, &mut undo) {
            Ok(()) => Ok(undo),
            Err(e) => {
                self.restore(&undo);
                Err(e)
            }
        }
    }

    /// The stateful part of [`Ledger::apply_block`]; on error the caller restores
    /// from the partial `undo`.
    fn apply_checked(
        &mut self,
        height: u64,
        coinbase: &Coinbase,
        transfers: &[Transaction],
        undo: &mut BlockUndo,
    ) -> Result<(), LedgerError> {
        let maturity = self.params.coinbase_maturity;
        while self.maturing.front().is_some_and(|c| c.height.saturating_add(maturity) <= height) {
            undo.matured.extend(self.maturing.pop_front());
        }
        let mut touched = HashSet::new();
        let mut fees: u64 = 0;
        for t in transfers.iter().filter_map(Transaction::as_transfer) {
            self.apply_transfer(height, t, undo, &mut touched)?;
            fees = fees.checked_add(t.transfer.fee).ok_or(LedgerError::AmountOverflow)?;
        }
        undo.fees = fees;
        let allowed = self.params.subsidy(height).checked_add(fees).ok_or(LedgerError::AmountOverflow)?;
        if coinbase.amount > allowed {
            return Err(LedgerError::CoinbaseOverspend { claimed: coinbase.amount, allowed });
        }
        // Fees move existing units; only the coinbase creates new ones.
        let supply = self.supply.checked_sub(fees).and_then(|s| s.checked_add(coinbase.amount));
        let max = self.params.max_supply_through(height);
        let supply = match supply {
            Some(s) if s <= max => s,
            other => return Err(LedgerError::SupplyExceeded { supply: other.unwrap_or(u64::MAX), max }),
        };
        self.record(coinbase.to, undo, &mut touched);
        let miner = self.accounts.entry(coinbase.to).or_default();
        miner.balance = miner.balance.checked_add(coinbase.amount).ok_or(LedgerError::AmountOverflow)?;
        if maturity > 0 && coinbase.amount > 0 {
            self.maturing.push_back(CoinbaseCredit { height, to: coinbase.to, amount: coinbase.amount });
        }
        self.supply = supply;
        self.tip = Some(height);
        Ok(())
    }

    fn apply_transfer(
        &mut self,
        height: u64,
        tx: &SignedTransfer,
        undo: &mut BlockUndo,
        touched: &mut HashSet<PublicKey>,
    ) -> Result<(), LedgerError> {
        let t = &tx.transfer;
        let mut sender = self.sender(tx)?;
        if t.nonce != sender.nonce {
            return Err(LedgerError::WrongNonce { account: t.from, expected: sender.nonce, got: t.nonce });
        }
        let total = t.total()?;
        self.check_funds(&t.from, sender.balance, total, height)?;
        sender.nonce = sender.nonce.checked_add(1).ok_or(LedgerError::AmountOverflow)?;
        if t.to == t.from {
            // Only the fee leaves a self-transfer; `total <= balance` was checked above.
            sender.balance -= t.fee;
            self.record(t.from, undo, touched);
            self.accounts.insert(t.from, sender);
        } else {
            let mut receiver = self.account(&t.to).unwrap_or_default();
            receiver.balance = receiver.balance.checked_add(t.amount).ok_or(LedgerError::AmountOverflow)?;
            sender.balance -= total; // checked above
            self.record(t.from, undo, touched);
            self.record(t.to, undo, touched);
            self.accounts.insert(t.from, sender);
            self.accounts.insert(t.to, receiver);
        }
        Ok(())
    }

    /// Notes the value of `key` before its first change in this block.
    fn record(&self, key: PublicKey, undo: &mut BlockUndo, touched: &mut HashSet<PublicKey>) {
        if touched.insert(key) {
            undo.accounts.push((key, self.account(&key)));
        }
    }

    /// Puts back the accounts and matured credits of `undo`.
    fn restore(&mut self, undo: &BlockUndo) {
        for (key, prior) in undo.accounts.iter().rev() {
            match prior {
                Some(account) => self.accounts.insert(*key, *account),
                None => self.accounts.remove(key),
            };
        }
        for credit in undo.matured.iter().rev() {
            self.maturing.push_front(credit.clone());
        }
    }

    /// Takes the last applied block back out with the undo data its
    /// [`Ledger::apply_block`] returned.
    ///
    /// # Errors
    /// [`LedgerError::UndoMismatch`] if `undo` is not for the ledger's tip; the ledger is
    /// then unchanged.
    pub fn undo_block(&mut self, undo: &BlockUndo) -> Result<(), LedgerError> {
        if self.tip != Some(undo.height) {
            return Err(LedgerError::UndoMismatch { tip: self.tip, got: undo.height });
        }
        if self.maturing.back().is_some_and(|c| c.height == undo.height) {
            self.maturing.pop_back();
        }
        self.restore(undo);
        self.supply = undo.supply;
        self.tip = undo.height.checked_sub(1);
        Ok(())
    }

    /// The current values of the accounts `undo` names: after [`Ledger::apply_block`]
    /// this is what the block changed to; after [`Ledger::undo_block`], what it changed
    /// back to.
    #[must_use]
    pub fn delta(&self, undo: &BlockUndo) -> StateDelta {
        StateDelta {
            height: self.tip,
            supply: self.supply,
            accounts: undo.accounts.iter().map(|(k, _)| (*k, self.account(k))).collect(),
        }
    }
}
