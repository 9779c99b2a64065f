//! Replica configuration.

use ballot_core::{ConsensusSettings, ElectionConfig, InvalidField, NodeId, require_positive};

use crate::RaftError;

/// Tuning and feature switches of one Raft replica.
///
/// Start from [`Config::new`], which picks the defaults etcd and raft-rs users expect, and
/// change what you need; [`Raft::new`](crate::Raft::new) calls [`Config::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This replica's id (non-zero).
    pub id: NodeId,
    /// Election timeouts, heartbeats, PreVote, CheckQuorum and lease reads (the settings
    /// Multi-Paxos shares). Lease reads assume clocks that drift by less than 10 % over an
    /// election timeout.
    pub election: ElectionConfig,
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
            election: ElectionConfig::default(),
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
        Config {
            election: ElectionConfig::from_settings(settings),
            max_command_size: settings.max_command_size,
            ..Self::new(id)
        }
    }

    /// Checks that the values can work together.
    ///
    /// # Errors
    /// [`RaftError::InvalidConfig`] naming the first offending field.
    pub fn validate(&self) -> Result<(), RaftError> {
        let invalid = |e: InvalidField| RaftError::InvalidConfig { field: e.field, reason: e.reason.to_owned() };
        if self.id.get() == 0 {
            return Err(invalid(InvalidField { field: "id", reason: "must be non-zero" }));
        }
        self.election.validate().map_err(invalid)?;
        require_positive(&[
            ("max_append_entries", self.max_append_entries),
            ("max_append_bytes", self.max_append_bytes),
            ("max_inflight_appends", self.max_inflight_appends),
            ("max_inflight_bytes", self.max_inflight_bytes),
            ("max_snapshot_chunk", self.max_snapshot_chunk),
            ("max_command_size", self.max_command_size),
            ("max_pending_proposals", self.max_pending_proposals),
        ])
        .map_err(invalid)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        let mut slow_heartbeat = ok.clone();
        slow_heartbeat.election.heartbeat_interval = Duration::from_secs(5);
        assert_eq!(field(slow_heartbeat), "election.timeout_min");
        assert_eq!(field(Config { max_inflight_bytes: 0, ..ok.clone() }), "max_inflight_bytes");
        let mut leased = ok;
        leased.election.lease_reads = true;
        assert_eq!(leased.validate(), Ok(()));
    }
}
