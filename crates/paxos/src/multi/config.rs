//! Settings of a Multi-Paxos replica. Field names and defaults match `ballot-raft`'s
//! `Config` wherever the meaning is the same, so a driver configures either alike.

use ballot_core::{ConsensusSettings, ElectionConfig, InvalidField, NodeId, require_positive};

use crate::PaxosError;

/// Settings of a [`MultiPaxos`](crate::MultiPaxos) replica. Start from
/// [`Config::new`] and adjust fields; the constructor calls [`Config::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This replica's id (non-zero).
    pub id: NodeId,
    /// Election timeouts, heartbeats (also the period of retransmissions and catch-up
    /// checks), pre-vote (a `PrePrepare` probe that changes no durable state),
    /// CheckQuorum and lease reads: the settings Raft shares.
    pub election: ElectionConfig,
    /// Most slots in one Accept (also one Promise page or catch-up reply).
    pub max_accept_slots: usize,
    /// Most value bytes in one Accept (also one Promise page or catch-up reply); a single
    /// larger value is still sent alone.
    pub max_accept_bytes: usize,
    /// Most Accept messages in flight to one peer.
    pub max_inflight_accepts: usize,
    /// Most value bytes in flight to one peer (Accepts, and snapshot chunks).
    pub max_inflight_bytes: usize,
    /// Most snapshot bytes in one chunk.
    pub max_snapshot_chunk: usize,
    /// Largest snapshot accepted from a peer.
    pub max_snapshot_bytes: u64,
    /// Largest command [`propose`](ballot_core::Protocol::propose) accepts.
    pub max_command_size: usize,
    /// Most undecided slots on the leader, and most reads waiting; beyond it, proposals
    /// and reads fail with [`ProposeError::Busy`](ballot_core::ProposeError::Busy).
    pub max_pending_proposals: usize,
}

impl Config {
    /// Defaults for replica `id`, as for Raft: election timeout 1–2 s, heartbeats every
    /// 100 ms, pre-vote and check-quorum on, lease reads off, Accepts of up to 4096 slots
    /// or 1 MiB, 256 Accepts or 32 MiB in flight per peer, 1 MiB snapshot chunks and
    /// commands, 4 GiB snapshots, 10 000 pending proposals.
    #[must_use]
    pub fn new(id: NodeId) -> Self {
        Config {
            id,
            election: ElectionConfig::default(),
            max_accept_slots: 4096,
            max_accept_bytes: 1 << 20,
            max_inflight_accepts: 256,
            max_inflight_bytes: 32 << 20,
            max_snapshot_chunk: 1 << 20,
            max_snapshot_bytes: 4 << 30,
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
    /// [`PaxosError::InvalidConfig`] naming the first offending field.
    pub fn validate(&self) -> Result<(), PaxosError> {
        let invalid = |e: InvalidField| PaxosError::InvalidConfig { field: e.field, reason: e.reason };
        if self.id.get() == 0 {
            return Err(invalid(InvalidField { field: "id", reason: "must be non-zero" }));
        }
        self.election.validate().map_err(invalid)?;
        require_positive(&[
            ("max_accept_slots", self.max_accept_slots),
            ("max_accept_bytes", self.max_accept_bytes),
            ("max_inflight_accepts", self.max_inflight_accepts),
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
            Err(PaxosError::InvalidConfig { field, .. }) => field,
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
