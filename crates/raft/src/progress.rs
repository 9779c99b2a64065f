//! The leader's view of each peer's replication.

use std::collections::VecDeque;

use ballot_core::{Instant, NodeId, Snapshot};

/// How the leader replicates to a peer (etcd's progress states).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplicationState {
    /// The leader does not know where the peer's log matches: one AppendEntries at a time
    /// until one succeeds.
    Probe,
    /// The peer's log matches: AppendEntries are pipelined, bounded by
    /// `max_inflight_appends` and `max_inflight_bytes`.
    Replicate,
    /// The peer needs entries the leader has compacted: a snapshot is being sent in chunks.
    Snapshot,
}

/// A leader's view of one peer, for status pages, metrics and tests
/// ([`Raft::progress`](crate::Raft::progress)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerProgress {
    /// The highest index known replicated (durably) on the peer.
    pub match_index: u64,
    /// The next index to send.
    pub next_index: u64,
    /// The replication state.
    pub state: ReplicationState,
    /// AppendEntries messages in flight.
    pub inflight: usize,
    /// Whether the peer answered since the last CheckQuorum round.
    pub recent_active: bool,
}

/// A snapshot transfer in progress: stop-and-wait, one chunk in flight.
#[derive(Debug)]
pub(crate) struct SnapshotSend {
    pub(crate) snapshot: Snapshot,
    /// The offset of the next chunk to send (what the peer said it holds).
    pub(crate) offset: u64,
    /// When the chunk in flight was sent; `None` when the next one may go.
    pub(crate) sent_at: Option<Instant>,
    /// Where the chunk in flight ends: the answer that acknowledges it says so.
    pub(crate) sent_end: u64,
}

#[derive(Debug)]
pub(crate) enum State {
    /// `sent`: a probe is in flight; wait for its answer (or the next heartbeat).
    Probe {
        sent: bool,
    },
    Replicate,
    Snapshot(Box<SnapshotSend>),
}

#[derive(Debug)]
pub(crate) struct Progress {
    pub(crate) id: NodeId,
    pub(crate) matched: u64,
    pub(crate) next: u64,
    pub(crate) state: State,
    /// AppendEntries in flight in replicate mode: (last index, bytes).
    pub(crate) inflights: VecDeque<(u64, usize)>,
    pub(crate) inflight_bytes: usize,
    pub(crate) recent_active: bool,
    /// `matched` advanced since the last periodic heartbeat.
    pub(crate) progressed: bool,
    /// Consecutive heartbeat intervals with messages in flight and no acknowledgement.
    pub(crate) stalled_ticks: u32,
    /// An empty probe went out for a stall in this heartbeat interval.
    pub(crate) stall_probed: bool,
    /// The highest heartbeat round the peer acknowledged in this term.
    pub(crate) hb_acked: u64,
    /// The commit index last sent to the peer.
    pub(crate) sent_commit: u64,
}

impl Progress {
    pub(crate) fn new(id: NodeId, next: u64) -> Self {
        Progress {
            id,
            matched: 0,
            next,
            state: State::Probe { sent: false },
            inflights: VecDeque::new(),
            inflight_bytes: 0,
            recent_active: false,
            progressed: false,
            stalled_ticks: 0,
            stall_probed: false,
            hb_acked: 0,
            sent_commit: 0,
        }
    }

    pub(crate) fn inflight_full(&self, max_count: usize, max_bytes: usize) -> bool {
        self.inflights.len() >= max_count || self.inflight_bytes >= max_bytes
    }

    /// Forgets the in-flight messages acknowledged by a success up to `index`.
    pub(crate) fn free_inflights(&mut self, index: u64) {
        while let Some(&(last, bytes)) = self.inflights.front() {
            if last > index {
                break;
            }
            self.inflights.pop_front();
            self.inflight_bytes -= bytes;
        }
    }

    /// Back to probing from `next`.
    pub(crate) fn become_probe(&mut self, next: u64) {
        self.state = State::Probe { sent: false };
        self.next = next.max(self.matched + 1);
        self.inflights.clear();
        self.inflight_bytes = 0;
    }

    pub(crate) fn view(&self) -> PeerProgress {
        PeerProgress {
            match_index: self.matched,
            next_index: self.next,
            state: match self.state {
                State::Probe { .. } => ReplicationState::Probe,
                State::Replicate => ReplicationState::Replicate,
                State::Snapshot(_) => ReplicationState::Snapshot,
            },
            inflight: self.inflights.len(),
            recent_active: self.recent_active,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflights_fill_by_count_or_bytes_and_free_in_order() {
        let mut p = Progress::new(NodeId(2), 1);
        for (last, bytes) in [(10, 100), (20, 100), (30, 100)] {
            p.inflights.push_back((last, bytes));
            p.inflight_bytes += bytes;
        }
        assert!(p.inflight_full(3, usize::MAX));
        assert!(p.inflight_full(10, 300));
        assert!(!p.inflight_full(10, 301));
        p.free_inflights(25);
        assert_eq!((p.inflights.len(), p.inflight_bytes), (1, 100));
        p.matched = 25;
        p.become_probe(5);
        assert_eq!((p.next, p.inflights.len(), p.inflight_bytes), (26, 0, 0), "never probe at or below match");
    }
}
