//! Bonded stake: bonding with an activation delay, unbonding with a delay during which
//! the stake can still be slashed, slashing and withdrawal. The validator set of an
//! epoch is read from here.

use std::collections::BTreeMap;

use ballot_ledger::PublicKey;
use serde::{Deserialize, Serialize};

use crate::{PosError, ValidatorSet};

/// The delays of bonding and unbonding, in epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BondParams {
    /// A bond made in epoch `e` counts from epoch `e + activation_delay` (at least 1):
    /// the validator set of an epoch, and so its proposers, are fixed before it starts.
    pub activation_delay: u64,
    /// Stake unbonded in epoch `e` stops counting from epoch `e + 1` and can be withdrawn
    /// from epoch `e + unbonding_delay`; until then evidence still burns it, so that a
    /// validator cannot leave before its offence is proven.
    pub unbonding_delay: u64,
}

/// One validator's stake, by state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Bond {
    /// (first epoch it counts, amount).
    activating: Vec<(u64, u64)>,
    active: u64,
    /// (first epoch it stops counting, withdrawable from epoch, amount).
    unbonding: Vec<(u64, u64, u64)>,
    slashed: bool,
}

/// Every validator's bonded stake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bonds {
    params: BondParams,
    bonds: BTreeMap<PublicKey, Bond>,
}

impl Bonds {
    /// No stake bonded yet.
    ///
    /// # Errors
    /// [`PosError::Stake`] if `activation_delay` is 0 or `unbonding_delay` is 0.
    pub fn new(params: BondParams) -> Result<Self, PosError> {
        if params.activation_delay == 0 || params.unbonding_delay == 0 {
            return Err(PosError::Stake("the activation and unbonding delays must be at least one epoch"));
        }
        Ok(Bonds { params, bonds: BTreeMap::new() })
    }

    /// The genesis validators: their stakes count from epoch 0.
    ///
    /// # Errors
    /// As [`Bonds::new`].
    pub fn genesis(params: BondParams, validators: &ValidatorSet) -> Result<Self, PosError> {
        let mut b = Self::new(params)?;
        for (key, stake) in validators.iter() {
            b.bonds.insert(*key, Bond { active: stake, ..Bond::default() });
        }
        Ok(b)
    }

    /// Bonds `amount` of `key`'s balance in `epoch`; it counts from
    /// `epoch + activation_delay`.
    ///
    /// # Errors
    /// [`PosError::Stake`] for a zero amount or a slashed validator.
    pub fn bond(&mut self, key: PublicKey, amount: u64, epoch: u64) -> Result<(), PosError> {
        if amount == 0 {
            return Err(PosError::Stake("a bond must be positive"));
        }
        let bond = self.bonds.entry(key).or_default();
        if bond.slashed {
            return Err(PosError::Stake("a slashed validator cannot bond again"));
        }
        bond.activating.push((epoch.saturating_add(self.params.activation_delay), amount));
        Ok(())
    }

    /// Unbonds `amount` of `key`'s stake counting in `epoch`: it stops counting from
    /// `epoch + 1` and is withdrawable from `epoch + unbonding_delay`. Returns that epoch.
    ///
    /// # Errors
    /// [`PosError::Stake`] for a zero amount, more than the counting stake, or a slashed
    /// validator.
    pub fn unbond(&mut self, key: PublicKey, amount: u64, epoch: u64) -> Result<u64, PosError> {
        let unbonding_delay = self.params.unbonding_delay;
        let bond = self.bonds.get_mut(&key).ok_or(PosError::UnknownValidator(key))?;
        if bond.slashed {
            return Err(PosError::Stake("a slashed validator has nothing to unbond"));
        }
        Self::activate(bond, epoch);
        if amount == 0 || amount > bond.active {
            return Err(PosError::Stake("the amount must be positive and at most the active stake"));
        }
        bond.active -= amount;
        let withdrawable = epoch.saturating_add(unbonding_delay);
        bond.unbonding.push((epoch.saturating_add(1), withdrawable, amount));
        Ok(withdrawable)
    }

    /// Releases `key`'s unbonded stake that is withdrawable in `epoch`; returns the
    /// amount, to credit to its balance.
    pub fn withdraw(&mut self, key: &PublicKey, epoch: u64) -> u64 {
        let Some(bond) = self.bonds.get_mut(key) else { return 0 };
        let mut released = 0u64;
        bond.unbonding.retain(|&(_, from, amount)| {
            let ready = from <= epoch;
            if ready {
                released = released.saturating_add(amount);
            }
            !ready
        });
        released
    }

    /// Slashes `key` (its offence was proven in `epoch`): all its stake — active,
    /// activating, and unbonding not yet withdrawn — is burnt and it leaves the set for
    /// good. Returns the amount burnt (0 if it was slashed already).
    pub fn slash(&mut self, key: &PublicKey) -> u64 {
        let Some(bond) = self.bonds.get_mut(key) else { return 0 };
        if bond.slashed {
            return 0;
        }
        let burnt = bond
            .activating
            .iter()
            .map(|a| a.1)
            .chain(bond.unbonding.iter().map(|u| u.2))
            .fold(bond.active, |t: u64, a| t.saturating_add(a));
        *bond = Bond { slashed: true, ..Bond::default() };
        burnt
    }

    /// Whether `key` was slashed.
    #[must_use]
    pub fn is_slashed(&self, key: &PublicKey) -> bool {
        self.bonds.get(key).is_some_and(|b| b.slashed)
    }

    /// The validators whose stake counts in `epoch`: active stake, bonds activated by
    /// then, and unbonded stake that had not yet stopped counting. History is not kept:
    /// ask for epochs at or after the latest one given to [`Bonds::unbond`] (a chain
    /// computes each epoch's set once, at the epoch's start, and keeps it).
    #[must_use]
    pub fn validators(&self, epoch: u64) -> ValidatorSet {
        ValidatorSet::new(self.bonds.iter().filter(|(_, b)| !b.slashed).map(|(key, b)| {
            let activated = b.activating.iter().filter(|a| a.0 <= epoch).map(|a| a.1);
            let leaving = b.unbonding.iter().filter(|u| u.0 > epoch).map(|u| u.2);
            (*key, activated.chain(leaving).fold(b.active, u64::saturating_add))
        }))
    }

    fn activate(bond: &mut Bond, epoch: u64) {
        bond.activating.retain(|&(from, amount)| {
            let ready = from <= epoch;
            if ready {
                bond.active = bond.active.saturating_add(amount);
            }
            !ready
        });
    }
}

#[cfg(test)]
mod tests {
    use ballot_ledger::Keypair;

    use super::*;

    fn key(n: u64) -> PublicKey {
        Keypair::for_testing(n).public()
    }

    fn params() -> BondParams {
        BondParams { activation_delay: 2, unbonding_delay: 4 }
    }

    #[test]
    fn a_bond_counts_only_after_the_activation_delay() {
        let mut b = Bonds::genesis(params(), &ValidatorSet::new([(key(1), 100)])).expect("params");
        b.bond(key(2), 50, 3).expect("bond");
        assert_eq!(b.validators(4).stake(&key(2)), 0);
        assert_eq!(b.validators(5).stake(&key(2)), 50);
        assert_eq!(b.validators(5).total(), 150);
        assert_eq!(b.bond(key(2), 0, 3), Err(PosError::Stake("a bond must be positive")));
    }

    #[test]
    fn unbonded_stake_stops_counting_at_once_but_stays_slashable_until_withdrawable() {
        let mut b = Bonds::genesis(params(), &ValidatorSet::new([(key(1), 100), (key(2), 100)])).expect("params");
        assert_eq!(b.unbond(key(1), 60, 10), Ok(14));
        assert_eq!(b.validators(10).stake(&key(1)), 100, "it counted in the epoch it unbonded");
        assert_eq!(b.validators(11).stake(&key(1)), 40);
        assert_eq!(b.withdraw(&key(1), 13), 0, "not before the delay");
        // Evidence of an offence arrives in epoch 13: the unbonding stake burns too.
        assert_eq!(b.slash(&key(1)), 100);
        assert_eq!(b.withdraw(&key(1), 14), 0, "nothing left to withdraw");
        assert!(!b.validators(11).contains(&key(1)));
        assert_eq!(b.slash(&key(1)), 0, "slashed once");
        assert!(b.bond(key(1), 10, 15).is_err() && b.unbond(key(1), 10, 15).is_err());
        // An honest validator gets its stake back after the delay.
        b.unbond(key(2), 100, 10).expect("unbond");
        assert_eq!(b.withdraw(&key(2), 14), 100);
        assert!(b.validators(14).is_empty());
    }

    #[test]
    fn unbonding_more_than_the_active_stake_is_refused() {
        let mut b = Bonds::genesis(params(), &ValidatorSet::new([(key(1), 100)])).expect("params");
        b.bond(key(1), 50, 1).expect("bond");
        assert!(b.unbond(key(1), 150, 2).is_err(), "the bond is not active until epoch 3");
        assert_eq!(b.unbond(key(1), 150, 3), Ok(7));
        assert_eq!(b.unbond(key(9), 1, 3), Err(PosError::UnknownValidator(key(9))));
        assert!(Bonds::new(BondParams { activation_delay: 0, unbonding_delay: 1 }).is_err());
    }
}
