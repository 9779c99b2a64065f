//! The leader-election settings that Raft and Multi-Paxos share: randomized election
//! timeouts, heartbeats, pre-vote, CheckQuorum and read leases mean the same in both, so
//! they are one type, validated, defaulted and drawn (by the simulator) in one place.

use std::time::Duration;

use crate::{ConsensusSettings, SeededRng};

/// How a leader-based protocol detects a failed leader and elects the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionConfig {
    /// Lower bound of the randomized election timeout: a follower that hears nothing from
    /// a leader for a random time in `[timeout_min, timeout_max)` runs for leadership.
    /// Also the CheckQuorum period, how long a follower stays loyal to a leader it heard
    /// from (leader stickiness), and the basis of the read lease.
    pub timeout_min: Duration,
    /// Upper bound (exclusive) of the randomized election timeout; must exceed the minimum.
    pub timeout_max: Duration,
    /// How often a leader sends heartbeats; must be below `timeout_min`.
    pub heartbeat_interval: Duration,
    /// Probe with a round that changes no durable state before starting a real election
    /// (Raft's PreVote, Paxos's PrePrepare), so a node that cannot win (a partitioned one,
    /// say) never disrupts a working leader.
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a quorum for `timeout_min`, and
    /// followers that heard from a leader within that time refuse other candidates.
    pub check_quorum: bool,
    /// Serve linearizable reads from the leader's lease without a quorum round per read.
    /// The lease lasts 90 % of `timeout_min` from the sending of a round a quorum
    /// acknowledged, so it assumes clocks that drift by less than 10 % over an election
    /// timeout. Requires `check_quorum`.
    pub lease_reads: bool,
}

impl Default for ElectionConfig {
    /// etcd's defaults: election timeout 1–2 s, heartbeats every 100 ms, pre-vote and
    /// CheckQuorum on, lease reads off.
    fn default() -> Self {
        ElectionConfig {
            timeout_min: Duration::from_millis(1000),
            timeout_max: Duration::from_millis(2000),
            heartbeat_interval: Duration::from_millis(100),
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
        }
    }
}

impl ElectionConfig {
    /// The defaults with a server's timing: `settings.election_timeout` up to twice it,
    /// and `settings.heartbeat`.
    #[must_use]
    pub fn from_settings(settings: &ConsensusSettings) -> Self {
        ElectionConfig {
            timeout_min: settings.election_timeout,
            timeout_max: settings.election_timeout * 2,
            heartbeat_interval: settings.heartbeat,
            ..Self::default()
        }
    }

    /// A fresh random election timeout in `[timeout_min, timeout_max)`.
    pub fn random_timeout(&self, rng: &mut SeededRng) -> Duration {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.gen_range(nanos(self.timeout_min)..nanos(self.timeout_max)))
    }

    /// How long a read lease lasts after the round that grants it is sent (90 % of
    /// `timeout_min`), or `None` without lease reads.
    #[must_use]
    pub fn lease(&self) -> Option<Duration> {
        self.lease_reads.then(|| self.timeout_min - self.timeout_min / 10)
    }

    /// Checks that the values can work together.
    ///
    /// # Errors
    /// [`InvalidField`] naming the first offending field (as `election.<field>`).
    pub fn validate(&self) -> Result<(), InvalidField> {
        let bad = |field, reason| Err(InvalidField { field, reason });
        if self.heartbeat_interval.is_zero() {
            return bad("election.heartbeat_interval", "must be positive");
        }
        if self.timeout_min <= self.heartbeat_interval {
            return bad("election.timeout_min", "must exceed heartbeat_interval");
        }
        if self.timeout_max <= self.timeout_min {
            return bad("election.timeout_max", "must exceed timeout_min so that timeouts can be randomized");
        }
        if self.lease_reads && !self.check_quorum {
            return bad(
                "election.lease_reads",
                "requires check_quorum (a leader must step down before its lease can be wrong)",
            );
        }
        Ok(())
    }
}

impl std::fmt::Display for ElectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "election {:?}..{:?}, heartbeat {:?}, pre_vote {}, check_quorum {}, lease_reads {}",
            self.timeout_min,
            self.timeout_max,
            self.heartbeat_interval,
            self.pre_vote,
            self.check_quorum,
            self.lease_reads
        )
    }
}

/// A configuration field with a value the protocol cannot work with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {reason}")]
pub struct InvalidField {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks that each named limit is at least 1.
///
/// # Errors
/// [`InvalidField`] naming the first limit that is 0.
pub fn require_positive(limits: &[(&'static str, usize)]) -> Result<(), InvalidField> {
    match limits.iter().find(|(_, value)| *value == 0) {
        Some(&(field, _)) => Err(InvalidField { field, reason: "must be at least 1" }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_rule_is_checked() {
        let ok = ElectionConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let field = |c: ElectionConfig| c.validate().unwrap_err().field;
        assert_eq!(
            field(ElectionConfig { heartbeat_interval: Duration::ZERO, ..ok.clone() }),
            "election.heartbeat_interval"
        );
        assert_eq!(
            field(ElectionConfig { timeout_min: Duration::from_millis(100), ..ok.clone() }),
            "election.timeout_min"
        );
        assert_eq!(
            field(ElectionConfig { timeout_max: Duration::from_millis(1000), ..ok.clone() }),
            "election.timeout_max"
        );
        assert_eq!(
            field(ElectionConfig { lease_reads: true, check_quorum: false, ..ok.clone() }),
            "election.lease_reads"
        );
        let leased = ElectionConfig { lease_reads: true, ..ok.clone() };
        assert_eq!(leased.validate(), Ok(()));
        assert_eq!(leased.lease(), Some(Duration::from_millis(900)));
        assert_eq!(ok.lease(), None);
    }

    #[test]
    fn random_timeouts_stay_in_range_and_server_settings_apply() {
        let settings = ConsensusSettings {
            election_timeout: Duration::from_millis(300),
            heartbeat: Duration::from_millis(50),
            max_command_size: 1,
        };
        let c = ElectionConfig::from_settings(&settings);
        assert_eq!(
            (c.timeout_min, c.timeout_max, c.heartbeat_interval),
            (Duration::from_millis(300), Duration::from_millis(600), Duration::from_millis(50))
        );
        let mut rng = SeededRng::new(7);
        for _ in 0..1000 {
            let t = c.random_timeout(&mut rng);
            assert!(t >= c.timeout_min && t < c.timeout_max, "{t:?}");
        }
    }

    #[test]
    fn the_first_zero_limit_is_named() {
        assert_eq!(require_positive(&[("a", 1), ("b", 2)]), Ok(()));
        assert_eq!(require_positive(&[("a", 1), ("b", 0), ("c", 0)]).unwrap_err().field, "b");
    }
}
