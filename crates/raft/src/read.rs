//! Linearizable reads without a log write: ReadIndex (confirmed by a heartbeat round),
//! lease reads, and forwarding from followers.

use std::collections::VecDeque;

use ballot_core::{Instant, NodeId, Output, ProposeError, ReadId, Role};

use crate::{Message, Raft};

/// Who asked for a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadTarget {
    /// The driver of this replica.
    Local(ReadId),
    /// A follower that forwarded its client's read.
    Remote { from: NodeId, request: u64 },
}

#[derive(Debug)]
pub(crate) struct PendingRead {
    target: ReadTarget,
    /// The commit index when the read was registered.
    index: u64,
    /// The first heartbeat round sent after the read arrived; a quorum acknowledging it
    /// confirms that this replica was still the leader.
    seq: u64,
    deadline: Instant,
}

/// A read this follower forwarded to its leader.
#[derive(Debug)]
pub(crate) struct Forwarded {
    id: ReadId,
    request: u64,
    deadline: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Reads {
    /// Leader: reads that arrived before the leader committed an entry of its term.
    waiting: VecDeque<PendingRead>,
    /// Leader: reads waiting for their heartbeat round to be acknowledged.
    pending: VecDeque<PendingRead>,
    /// Follower: reads sent to the leader.
    forwarded: VecDeque<Forwarded>,
    /// A heartbeat round must go out for newly registered reads.
    pub(crate) need_round: bool,
    next_request: u64,
}

impl Raft {
    pub(crate) fn read_index(&mut self, now: Instant, id: ReadId) -> Result<(), ProposeError> {
        if self.role == Role::Leader {
            return self.leader_read(now, ReadTarget::Local(id));
        }
        let Some(leader) = self.leader.filter(|&l| l != self.cfg.id) else {
            return Err(ProposeError::NotLeader { leader: None });
        };
        if self.reads.forwarded.len() >= self.cfg.max_pending_proposals {
            return Err(ProposeError::Busy);
        }
        self.reads.next_request += 1;
        let request = self.reads.next_request;
        let deadline = now + self.cfg.election.timeout_max;
        self.reads.forwarded.push_back(Forwarded { id, request, deadline });
        let term = self.term;
        self.send(leader, Message::ReadIndex { term, request });
        Ok(())
    }

    fn leader_read(&mut self, now: Instant, target: ReadTarget) -> Result<(), ProposeError> {
        if self.reads.waiting.len() + self.reads.pending.len() >= self.cfg.max_pending_proposals {
            return Err(ProposeError::Busy);
        }
        let deadline = now + self.cfg.election.timeout_max;
        if !self.committed_in_term() {
            // Until its no-op commits, a new leader's commit index may be behind entries an
            // earlier leader committed.
            self.reads.waiting.push_back(PendingRead { target, index: 0, seq: 0, deadline });
        } else if self.lease_valid(now) {
            self.complete_read(target, self.commit);
        } else {
            let (index, seq) = (self.commit, self.hb_seq + 1);
            self.reads.pending.push_back(PendingRead { target, index, seq, deadline });
            self.reads.need_round = true;
        }
        Ok(())
    }

    pub(crate) fn on_read_index(&mut self, now: Instant, from: NodeId, request: u64) {
        let result = if self.role == Role::Leader {
            self.leader_read(now, ReadTarget::Remote { from, request })
        } else {
            Err(ProposeError::NotLeader { leader: self.leader })
        };
        if let Err(error) = result {
            self.fail_read(ReadTarget::Remote { from, request }, error);
        }
    }

    pub(crate) fn on_read_index_response(&mut self, request: u64, result: Result<u64, ProposeError>) {
        let Some(pos) = self.reads.forwarded.iter().position(|f| f.request == request) else { return };
        let Some(f) = self.reads.forwarded.remove(pos) else { return };
        self.out.push(match result {
            Ok(index) => Output::ReadReady { id: f.id, index },
            Err(error) => Output::ReadFailed { id: f.id, error },
        });
    }

    fn complete_read(&mut self, target: ReadTarget, index: u64) {
        match target {
            ReadTarget::Local(id) => self.out.push(Output::ReadReady { id, index }),
            ReadTarget::Remote { from, request } => {
                let term = self.term;
                self.send(from, Message::ReadIndexResponse { term, request, result: Ok(index) });
            }
        }
    }

    fn fail_read(&mut self, target: ReadTarget, error: ProposeError) {
        match target {
            ReadTarget::Local(id) => self.out.push(Output::ReadFailed { id, error }),
            ReadTarget::Remote { from, request } => {
                let term = self.term;
                self.send(from, Message::ReadIndexResponse { term, request, result: Err(error) });
            }
        }
    }

    /// The leader committed its first entry of the term: reads that waited for it get the
    /// commit index and a heartbeat round.
    pub(crate) fn activate_waiting_reads(&mut self) {
        if self.reads.waiting.is_empty() {
            return;
        }
        let (index, seq) = (self.commit, self.hb_seq + 1);
        while let Some(mut r) = self.reads.waiting.pop_front() {
            r.index = index;
            r.seq = seq;
            self.reads.pending.push_back(r);
        }
        self.reads.need_round = true;
    }

    /// The highest heartbeat round a quorum (this leader included) acknowledged.
    fn quorum_hb_seq(&self) -> u64 {
        let (id, hb, peers) = (self.cfg.id, self.hb_seq, &self.peers);
        self.log
            .membership()
            .quorum_min(|n| if n == id { hb } else { peers.iter().find(|p| p.id == n).map_or(0, |p| p.hb_acked) })
    }

    /// Answers the reads whose heartbeat round a quorum acknowledged.
    pub(crate) fn advance_reads(&mut self) {
        if self.reads.pending.is_empty() {
            return;
        }
        let acked = self.quorum_hb_seq();
        while self.reads.pending.front().is_some_and(|r| r.seq <= acked) {
            if let Some(r) = self.reads.pending.pop_front() {
                self.complete_read(r.target, r.index);
            }
        }
    }

    /// Extends the lease from the send time of the latest round a quorum acknowledged.
    /// Followers that answered it will not vote for another candidate until
    /// `election.timeout_min` after they received it; the lease ends a 10 % drift margin
    /// earlier.
    pub(crate) fn update_lease(&mut self) {
        let Some(duration) = self.cfg.election.lease() else {
            return;
        };
        let acked = self.quorum_hb_seq();
        while let Some(&(seq, sent)) = self.hb_sent.front() {
            if seq > acked {
                break;
            }
            self.hb_sent.pop_front();
            if seq == acked {
                let until = sent + duration;
                self.lease_until = Some(self.lease_until.map_or(until, |u| u.max(until)));
            }
        }
    }

    pub(crate) fn lease_valid(&self, now: Instant) -> bool {
        self.cfg.election.lease_reads
            && self.cfg.election.check_quorum
            && self.role == Role::Leader
            && self.transfer.is_none()
            && now >= self.lease_blocked_until
            && self.lease_until.is_some_and(|t| now < t)
            && self.committed_in_term()
    }

    /// The leader stepped down: its reads can no longer be confirmed.
    pub(crate) fn fail_leader_reads(&mut self) {
        let mut all = std::mem::take(&mut self.reads.waiting);
        all.append(&mut self.reads.pending);
        self.reads.need_round = false;
        for r in all {
            self.fail_read(r.target, ProposeError::LeadershipLost);
        }
    }

    /// The leader changed: reads forwarded to the old one fail (the client retries).
    pub(crate) fn fail_forwarded_reads(&mut self) {
        while let Some(f) = self.reads.forwarded.pop_front() {
            self.out.push(Output::ReadFailed { id: f.id, error: ProposeError::LeadershipLost });
        }
    }

    pub(crate) fn expire_reads(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for queue in [&mut self.reads.waiting, &mut self.reads.pending] {
            while queue.front().is_some_and(|r| r.deadline <= now) {
                expired.extend(queue.pop_front().map(|r| r.target));
            }
        }
        for target in expired {
            self.fail_read(target, ProposeError::LeadershipLost);
        }
        while self.reads.forwarded.front().is_some_and(|f| f.deadline <= now) {
            if let Some(f) = self.reads.forwarded.pop_front() {
                self.out.push(Output::ReadFailed { id: f.id, error: ProposeError::LeadershipLost });
            }
        }
    }

    pub(crate) fn reads_deadline(&self) -> Option<Instant> {
        let r = &self.reads;
        [
            r.waiting.front().map(|x| x.deadline),
            r.pending.front().map(|x| x.deadline),
            r.forwarded.front().map(|x| x.deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
