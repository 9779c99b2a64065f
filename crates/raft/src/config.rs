//! Replica configuration.

use std::time::Duration;

use ballot_core::{ConsensusSettings, NodeId};

use crate::RaftError;

/// Tuning and feature switches of one Raft replica.
///
/// Start from [`Config::new`], which picks the defaults etcd and raft-rs users expect, and
/// change what you need; [`Raft::new`](crate::Raft::new) calls [`Config::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This replica's id (non-zero).
    pub id: NodeId,
    /// Lower bound of the randomized election timeout. Also the CheckQuorum period, how
    /// long a follower stays loyal to a leader it heard from ("leader stickiness"), and
    /// the basis of the read lease.
    pub election_timeout_min: Duration,
    /// Upper bound (exclusive) of the randomized election timeout; must exceed the minimum.
    pub election_timeout_max: Duration,
    /// How often a leader sends heartbeats; must be below `election_timeout_min`.
    pub heartbeat_interval: Duration,
    /// Run a PreVote round before bumping the term, so a node that cannot win (a
    /// partitioned one, say) never disrupts the cluster.
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a quorum for `election_timeout_min`,
    /// and followers that heard from a leader within that time ignore vote requests.
    pub check_quorum: bool,
    /// Serve linearizable reads from the leader's lease without a heartbeat round.
    /// Requires `check_quorum`, and assumes clocks that drift by less than 10 % over an
    /// election timeout.
    pub lease_reads: bool,
    /// Most entries in one AppendEntries message.
    pub max_append_entries: usize,
    /// Most entry bytes in one AppendEntries message (a single larger entry is still sent alone).
    pub max_append_bytes: usize,
    /// Most AppendEntries messages in flight to one follower in replicate mode.
    pub max_inflight_appends: usize,
    /// Most entry bytes in flight to one follower in replicate mode.
    pub max_inflight_bytes: usize,
    /// Most snapshot bytes in one InstallSnapshot chunk.
    pub max_snapshot_chunk: usize,
    /// Largest command [`propose`](ballot_core::Protocol::propose) accepts.
    pub max_command_size: usize,
    /// Most uncommitted entries on the leader (and most pending reads); beyond it,
    /// proposals and reads fail with `Busy`.
    pub max_pending_proposals: usize,
}

impl Config {
    /// Defaults for node `id`: election timeout 1–2 s, heartbeat 100 ms (etcd's
    /// defaults), PreVote and CheckQuorum on, lease reads off, AppendEntries of up to
    /// 4096 entries or 1 MiB, 256 messages or 32 MiB in flight per follower, 1 MiB
    /// snapshot chunks and commands, 10 000 pending proposals.
    #[must_use]
    pub fn new(id: NodeId) -> Self {
        Config {
            id,
            election_timeout_min: Duration::from_millis(1000),
            election_timeout_max: Duration::from_millis(2000),
            heartbeat_interval: Duration::from_millis(100),
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
            max_append_entries: 4096,
            max_append_bytes: 1 << 20,
            max_inflight_appends: 256,
            max_inflight_bytes: 32 << 20,
            max_snapshot_chunk: 1 << 20,
            max_command_size: 1 << 20,
            max_pending_proposals: 10_000,
        }
    }

    /// The factory every algorithm exports: defaults for replica `id` with the timing
    /// and size limits a server sets for any algorithm ([`ConsensusSettings`]).
    #[must_use]
    pub fn from_settings(id: NodeId, settings: &ConsensusSettings) -> Self {
        let mut config = Self::new(id);
        config.election_timeout_min = settings.election_timeout;
        config.election_timeout_max = settings.election_timeout * 2;
        config.heartbeat_interval = settings.heartbeat;
        config.max_command_size = settings.max_command_size;
        config
    }

    /// Checks that the values can work together.
    ///
    /// # Errors
    /// [`RaftError::InvalidConfig`] naming the first offending field.
    pub fn validate(&self) -> Result<(), RaftError> {
        let bad =
            |field: &'static str, reason: &str| Err(RaftError::InvalidConfig { field, reason: reason.to_owned() });
        if self.id.get() == 0 {
            return bad("id", "must be non-zero");
        }
        if self.heartbeat_interval.is_zero() {
            return bad("heartbeat_interval", "must be positive");
        }
        if self.election_timeout_min <= self.heartbeat_interval {
            return bad("election_timeout_min", "must exceed heartbeat_interval");
        }
        if self.election_timeout_max <= self.election_timeout_min {
            return bad("election_timeout_max", "must exceed election_timeout_min so that timeouts can be randomized");
        }
        for (field, value) in [
            ("max_append_entries", self.max_append_entries),
            ("max_append_bytes", self.max_append_bytes),
            ("max_inflight_appends", self.max_inflight_appends),
            ("max_inflight_bytes", self.max_inflight_bytes),
            ("max_snapshot_chunk", self.max_snapshot_chunk),
            ("max_command_size", self.max_command_size),
            ("max_pending_proposals", self.max_pending_proposals),
        ] {
            if value == 0 {
                return bad(field, "must be at least 1");
            }
        }
        if self.lease_reads && !self.check_quorum {
            return bad("lease_reads", "requires check_quorum (a leader must step down before its lease can be wrong)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_rule_is_checked() {
        let ok = Config::new(NodeId(1));
        assert_eq!(ok.validate(), Ok(()));
        let field = |c: Config| match c.validate() {
            Err(RaftError::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        };
        assert_eq!(field(Config { id: NodeId(0), ..ok.clone() }), "id");
        assert_eq!(field(Config { heartbeat_interval: Duration::ZERO, ..ok.clone() }), "heartbeat_interval");
        assert_eq!(
            field(Config { election_timeout_min: Duration::from_millis(100), ..ok.clone() }),
            "election_timeout_min"
        );
        assert_eq!(
            field(Config { election_timeout_max: Duration::from_millis(1000), ..ok.clone() }),
            "election_timeout_max"
        );
        assert_eq!(field(Config { max_inflight_bytes: 0, ..ok.clone() }), "max_inflight_bytes");
        assert_eq!(field(Config { lease_reads: true, check_quorum: false, ..ok.clone() }), "lease_reads");
        assert_eq!(Config { lease_reads: true, ..ok }.validate(), Ok(()));
    }
}
