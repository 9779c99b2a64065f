//! Messages exchanged between Raft replicas.

use ballot_core::{ProposeError, SnapshotMeta};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::Entry;

/// Why a follower rejected an AppendEntries; lets the leader skip back a whole term at a
/// time instead of one entry per round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The follower's term at the rejected `prev_log_index`, or `None` if its log is
    /// shorter than that.
    pub term: Option<u64>,
    /// The first index of `term` in the follower's log; its last index + 1 when `term`
    /// is `None`.
    pub first_index: u64,
}

/// A Raft message. Every message carries its sender's term.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A (pre-)candidate asks for a vote.
    RequestVote {
        /// The candidate's term; for a pre-vote, the term it would campaign in.
        term: u64,
        /// A PreVote probe: granting it changes nothing on the voter.
        pre_vote: bool,
        /// Index of the candidate's last entry.
        last_log_index: u64,
        /// Term of the candidate's last entry.
        last_log_term: u64,
        /// The campaign follows a leadership transfer: voters ignore leader stickiness.
        transfer: bool,
    },
    /// The answer to [`Message::RequestVote`].
    RequestVoteResponse {
        /// The voter's term (a granted pre-vote echoes the requested term).
        term: u64,
        /// Answers a pre-vote.
        pre_vote: bool,
        /// Whether the vote was granted.
        granted: bool,
    },
    /// The leader replicates entries (none: a probe, or a commit-index update).
    AppendEntries {
        /// The leader's term.
        term: u64,
        /// Index of the entry just before `entries`.
        prev_log_index: u64,
        /// Term of that entry.
        prev_log_term: u64,
        /// Consecutive entries from `prev_log_index + 1`.
        entries: Vec<Entry>,
        /// The leader's commit index.
        leader_commit: u64,
    },
    /// The answer to [`Message::AppendEntries`], sent only once the entries are durable.
    AppendEntriesResponse {
        /// The follower's term.
        term: u64,
        /// On success the last index known to match the leader's log; on rejection the
        /// rejected `prev_log_index`.
        index: u64,
        /// `None` on success; the follower's hint on rejection.
        reject: Option<Conflict>,
    },
    /// Leader liveness, commit propagation and read confirmation.
    Heartbeat {
        /// The leader's term.
        term: u64,
        /// The leader's commit index, capped at what it knows the follower holds.
        commit: u64,
        /// Round number, echoed back; confirms reads registered up to this round.
        seq: u64,
    },
    /// The answer to [`Message::Heartbeat`] (also sent to a sender with a stale term).
    HeartbeatResponse {
        /// The follower's term.
        term: u64,
        /// The round answered.
        seq: u64,
    },
    /// One chunk of a snapshot for a follower that is behind the leader's compacted log.
    InstallSnapshot {
        /// The leader's term.
        term: u64,
        /// Which snapshot.
        meta: SnapshotMeta,
        /// Byte offset of `data` in the snapshot.
        offset: u64,
        /// Size of the whole snapshot data.
        total: u64,
        /// At most `max_snapshot_chunk` bytes.
        data: Bytes,
    },
    /// Acknowledges a snapshot chunk, or (with `done`) a snapshot installed durably.
    InstallSnapshotResponse {
        /// The follower's term.
        term: u64,
        /// The snapshot's last included index.
        index: u64,
        /// Bytes the follower holds so far: where the leader resumes.
        received: u64,
        /// The follower holds everything up to `index` durably.
        done: bool,
    },
    /// Leadership transfer: the target campaigns at once, skipping PreVote.
    TimeoutNow {
        /// The leader's term.
        term: u64,
    },
    /// A follower forwards a linearizable read to its leader.
    ReadIndex {
        /// The follower's term.
        term: u64,
        /// Chosen by the follower to match the answer.
        request: u64,
    },
    /// The leader's answer to [`Message::ReadIndex`]: the index the follower must apply
    /// before serving the read, or why it cannot be served.
    ReadIndexResponse {
        /// The leader's term.
        term: u64,
        /// Echoed from the request.
        request: u64,
        /// The read index, or the error.
        result: Result<u64, ProposeError>,
    },
}

impl Message {
    /// The sender's term.
    #[must_use]
    pub fn term(&self) -> u64 {
        match self {
            Message::RequestVote { term, .. }
            | Message::RequestVoteResponse { term, .. }
            | Message::AppendEntries { term, .. }
            | Message::AppendEntriesResponse { term, .. }
            | Message::Heartbeat { term, .. }
            | Message::HeartbeatResponse { term, .. }
            | Message::InstallSnapshot { term, .. }
            | Message::InstallSnapshotResponse { term, .. }
            | Message::TimeoutNow { term }
            | Message::ReadIndex { term, .. }
            | Message::ReadIndexResponse { term, .. } => *term,
        }
    }
}
