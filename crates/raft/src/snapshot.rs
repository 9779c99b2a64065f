//! Snapshots: local compaction, chunked InstallSnapshot from leader to follower, and
//! installation.

use ballot_core::{Instant, NodeId, Output, Snapshot, SnapshotMeta};
use bytes::Bytes;

use crate::progress::{SnapshotSend, State};
use crate::raft::IncomingSnapshot;
use crate::{Message, Raft};

impl Raft {
    pub(crate) fn compact_log(&mut self, index: u64, data: Bytes) {
        if index <= self.log.snapshot_index() || index > self.applied {
            return;
        }
        let Some(term) = self.log.term_at(index) else { return };
        let membership = self.log.membership_at(index).clone();
        let snapshot = Snapshot { meta: SnapshotMeta { index, term, membership }, data };
        self.log.compact_to(index);
        let b = self.batch();
        b.snapshot = Some(Box::new(snapshot.clone()));
        b.compact_to = Some(b.compact_to.map_or(index, |c| c.max(index)));
        self.snapshot = Some(snapshot);
    }

    /// Peer `i` needs entries this leader compacted: send it the latest snapshot.
    pub(crate) fn start_snapshot(&mut self, i: usize) {
        let Some(snapshot) = self.snapshot.clone() else { return };
        let p = &mut self.peers[i];
        p.state = State::Snapshot(Box::new(SnapshotSend { snapshot, offset: 0, sent_at: None, sent_end: 0 }));
        p.inflights.clear();
        p.inflight_bytes = 0;
        self.send_snapshot_chunk(i);
    }

    /// Sends the next chunk to peer `i` unless one is in flight.
    pub(crate) fn send_snapshot_chunk(&mut self, i: usize) {
        let (chunk, term, now) = (self.cfg.max_snapshot_chunk, self.term, self.now);
        let p = &mut self.peers[i];
        let State::Snapshot(s) = &mut p.state else { return };
        if s.sent_at.is_some() {
            return;
        }
        let data = &s.snapshot.data;
        let total = data.len();
        let start = usize::try_from(s.offset).unwrap_or(usize::MAX).min(total);
        let end = start.saturating_add(chunk).min(total);
        let message = Message::InstallSnapshot {
            term,
            meta: s.snapshot.meta.clone(),
            offset: start as u64,
            total: total as u64,
            data: data.slice(start..end),
        };
        s.sent_at = Some(now);
        s.sent_end = end as u64;
        let to = p.id;
        self.out.push(Output::Send { to, message });
    }

    pub(crate) fn on_snapshot_response(&mut self, now: Instant, from: NodeId, index: u64, received: u64, done: bool) {
        let Some(i) = self.peer_pos(from) else { return };
        if index > self.log.last_index() {
            return;
        }
        let p = &mut self.peers[i];
        p.recent_active = true;
        if done {
            if index > p.matched {
                p.matched = index;
                p.progressed = true;
            }
            if matches!(p.state, State::Snapshot(_)) {
                p.become_probe(p.matched + 1);
            }
            self.need_broadcast = true;
            self.maybe_commit(now);
            self.maybe_send_timeout_now(from);
        } else if let State::Snapshot(s) = &mut p.state
            && s.snapshot.meta.index == index
        {
            // Only the answer to the chunk in flight sends the next one at once. Any other
            // answer (a duplicate, a late one, a follower asking to resume elsewhere) only
            // moves where the next chunk starts, which goes when nothing is in flight or
            // at the retransmission: every answer sending a chunk would let duplicated
            // messages multiply the transfer without bound.
            s.offset = received;
            if s.sent_at.is_none() || received == s.sent_end {
                s.sent_at = None;
                self.need_broadcast = true;
            }
        }
    }

    pub(crate) fn on_install_snapshot(
        &mut self,
        now: Instant,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        total: u64,
        data: Bytes,
    ) {
        if !self.accept_leader(now, from) {
            return;
        }
        let (term, index) = (self.term, meta.index);
        let reply = |received, done| Message::InstallSnapshotResponse { term, index, received, done };
        if index <= self.commit {
            // Already hold it: acknowledge (once what we hold is durable).
            self.incoming = None;
            self.send_durable(from, reply(total, true));
            return;
        }
        let Some(end) = offset.checked_add(data.len() as u64).filter(|&e| e <= total) else { return };
        let same = self.incoming.as_ref().is_some_and(|inc| inc.meta == meta && inc.total == total);
        if !same {
            if offset != 0 {
                // A chunk of a transfer we know nothing of (we restarted, or lost chunk 0).
                self.incoming = None;
                self.send(from, reply(0, false));
                return;
            }
            self.incoming = Some(IncomingSnapshot { meta, total, data: Vec::new() });
        }
        let Some(inc) = self.incoming.as_mut() else { return };
        let have = inc.data.len() as u64;
        if offset != have {
            // A duplicate or a gap: tell the leader where to resume.
            self.send(from, reply(have, false));
            return;
        }
        inc.data.extend_from_slice(&data);
        if end < total {
            self.send(from, reply(end, false));
            return;
        }
        let Some(inc) = self.incoming.take() else { return };
        self.install_snapshot(Snapshot { meta: inc.meta, data: Bytes::from(inc.data) });
        self.send_durable(from, reply(total, true));
    }

    /// Replaces the log with a complete snapshot from the leader; the service gets it as
    /// `Apply::Restore` once it is durable.
    fn install_snapshot(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        if self.log.term_at(index) == Some(snapshot.meta.term) {
            // Our log already holds the snapshot's last entry: it is committed.
            self.commit = self.commit.max(index);
            self.apply_ready();
            return;
        }
        let old_membership = self.log.membership().clone();
        let removed = self.log.restore(&snapshot.meta, self.commit);
        self.fail_proposals(&removed);
        self.commit = index;
        let b = self.batch();
        b.entries.clear();
        b.snapshot = Some(Box::new(snapshot.clone()));
        b.truncate_from = Some(b.truncate_from.map_or(index + 1, |t| t.min(index + 1)));
        b.compact_to = Some(b.compact_to.map_or(index, |c| c.max(index)));
        let id = b.id;
        self.log.record_write(id);
        self.pending_restore = Some((id, snapshot.clone()));
        self.snapshot = Some(snapshot);
        if *self.log.membership() != old_membership {
            self.on_membership_changed();
        }
    }
}
