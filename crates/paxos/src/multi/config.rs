//! Settings of a Multi-Paxos replica. Field names and defaults match `ballot-raft`'s
//! `Config` wherever the meaning is the same, so a driver configures either alike.

use std::time::Duration;

use ballot_core::{ConsensusSettings, NodeId};

use crate::PaxosError;

/// Settings of a [`MultiPaxos`](crate::MultiPaxos) replica. Start from
/// [`Config::new`] and adjust fields; the constructor calls [`Config::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This replica's id (non-zero).
    pub id: NodeId,
    /// Lower bound of the randomized election timeout: a follower that hears nothing
    /// from a leader for a random time in `[min, max)` runs for leadership. Also how long
    /// an acceptor that heard from a leader refuses other proposers (leader stickiness),
    /// the CheckQuorum period, and the basis of the read lease.
    pub election_timeout_min: Duration,
    /// Upper bound (exclusive) of the randomized election timeout.
    pub election_timeout_max: Duration,
    /// Period of the leader's heartbeats, of retransmissions and of catch-up checks.
    pub heartbeat_interval: Duration,
    /// Probe with `PrePrepare` (no durable change) before preparing a higher ballot, so
    /// a node coming back from a partition cannot disturb a working leader (Raft's
    /// PreVote).
    pub pre_vote: bool,
    /// The leader steps down when it has not heard from a quorum within
    /// `election_timeout_min`.
    pub check_quorum: bool,
    /// Serve linearizable reads under a leader lease instead of a quorum round per read.
    /// The lease lasts 90 % of `election_timeout_min` from the sending of a heartbeat
    /// round a quorum acknowledged, so it assumes clocks that drift by less than 10 % over
    /// an election timeout. Requires `check_quorum`.
    pub lease_reads: bool,
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
            election_timeout_min: Duration::from_millis(1000),
            election_timeout_max: Duration::from_millis(2000),
            heartbeat_interval: Duration::from_millis(100),
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
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
        let mut config = Self::new(id);
        config.election_timeout_min = settings.election_timeout;
        config.election_timeout_max = settings.election_timeout * 2;
        config.heartbeat_interval = settings.heartbeat;
        config.max_command_size = settings.max_command_size;
        config
    }

    /// How long a lease lasts after the round that grants it is sent.
    pub(crate) fn lease(&self) -> Option<Duration> {
        self.lease_reads.then(|| self.election_timeout_min - self.election_timeout_min / 10)
    }

    /// Checks that the values can work together.
    ///
    /// # Errors
    /// [`PaxosError::InvalidConfig`] naming the first offending field.
    pub fn validate(&self) -> Result<(), PaxosError> {
        let bad = |field, reason| Err(PaxosError::InvalidConfig { field, reason });
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
            ("max_accept_slots", self.max_accept_slots),
            ("max_accept_bytes", self.max_accept_bytes),
            ("max_inflight_accepts", self.max_inflight_accepts),
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
            Err(PaxosError::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        };
        assert_eq!(field(Config { id: NodeId(0), ..ok.clone() }), "id");
        assert_eq!(field(Config { heartbeat_interval: Duration::ZERO, ..ok.clone() }), "heartbeat_interval");
        let short = Duration::from_millis(100);
        assert_eq!(field(Config { election_timeout_min: short, ..ok.clone() }), "election_timeout_min");
        let max = Duration::from_millis(1000);
        assert_eq!(field(Config { election_timeout_max: max, ..ok.clone() }), "election_timeout_max");
        assert_eq!(field(Config { max_inflight_bytes: 0, ..ok.clone() }), "max_inflight_bytes");
        assert_eq!(field(Config { lease_reads: true, check_quorum: false, ..ok.clone() }), "lease_reads");
        let leased = Config { lease_reads: true, ..ok };
        assert_eq!(leased.validate(), Ok(()));
        assert_eq!(leased.lease(), Some(Duration::from_millis(900)));
    }
}
