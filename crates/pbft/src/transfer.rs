//! Catching up: periodic status and retransmission, fetching batches, committed
//! sequence numbers (believed with f+1 matching claims) and checkpoint state (checked
//! against a digest certified by 2f+1 checkpoints).

use ballot_core::{Apply, NodeId, Output, ProposeError, Snapshot, SnapshotMeta};
use bytes::Bytes;

use crate::crypto::Digest;
use crate::message::{Item, Message, StableCheckpoint, batch_digest, state_digest};
use crate::pbft::Pbft;

/// Most sequence numbers asked or answered in one `FetchCommitted`.
const FETCH_SPAN: u64 = 64;

impl Pbft {
    /// Periodic work: status to peers, retransmission of what may have been lost,
    /// catch-up when f+1 peers are ahead.
    pub(crate) fn tick(&mut self) {
        let status = Message::Status {
            view: self.view,
            changing: !self.active,
            stable: self.stable.seq,
            executed: self.exec_seq,
        };
        self.broadcast(&status, false);
        self.help_laggards();
        self.check_stuck_view_change();
        if !self.active {
            if let Some(vc) = self.view_changes.get(&self.view).and_then(|m| m.get(&self.id_())).cloned() {
                self.broadcast(&Message::ViewChange(vc), true);
            }
            // The COMMITs of the view it left, for replicas still in that view that
            // missed them (true statements: it prepared these before leaving).
            let commits: Vec<Message> = self
                .slots
                .range(self.exec_seq + 1..)
                .filter_map(|(&seq, s)| s.cert.as_ref().map(|c| (seq, c)))
                .filter(|(_, c)| c.view() + 1 == self.view)
                .map(|(seq, c)| Message::Commit { view: c.view(), seq, digest: c.digest() })
                .collect();
            for m in commits {
                self.broadcast(&m, false);
            }
        } else {
            self.retransmit();
        }
        // Own checkpoint votes that are not stable yet.
        let votes: Vec<_> = self
            .checkpoint_votes
            .values()
            .filter_map(|v| v.get(&self.id_()).cloned())
            .map(Message::Checkpoint)
            .collect();
        for v in votes {
            self.broadcast(&v, false);
        }
        self.catch_up();
        let missing: Vec<Digest> = self.missing_batches().collect();
        for digest in missing {
            self.broadcast(&Message::FetchBatch { digest }, false);
        }
        self.exec_at_tick = self.exec_seq;
    }

    /// Re-sends this replica's part for every sequence number of the view that has
    /// waited a full status interval without committing.
    fn retransmit(&mut self) {
        let before = self.now.as_nanos().saturating_sub(self.cfg.status_interval.as_nanos() as u64);
        let mut msgs = Vec::new();
        for (&seq, slot) in self.slots.range(self.exec_seq + 1..) {
            if slot.since.as_nanos() <= before {
                msgs.extend(self.part(seq, slot.committed.is_none()));
            }
        }
        for m in msgs {
            self.broadcast(&m, true);
        }
    }

    /// This replica's messages for `seq` in its view: the PRE-PREPARE and batch (the
    /// primary) or its PREPARE (a backup) if `proposal`, and its COMMIT once prepared.
    fn part(&self, seq: u64, proposal: bool) -> Vec<Message> {
        let view = self.view;
        let Some(slot) = self.slots.get(&seq) else { return Vec::new() };
        let Some(pp) = slot.pre_prepare.as_ref().filter(|p| p.body.view == view) else { return Vec::new() };
        let digest = pp.body.digest;
        let mut msgs = Vec::new();
        if proposal {
            if self.is_primary() {
                if let Some(batch) = self.batches.get(&digest) {
                    msgs.push(Message::PrePrepare { pre_prepare: pp.clone(), batch: batch.clone() });
                }
            } else if let Some(p) = slot.prepares.get(&self.id_()) {
                msgs.push(Message::Prepare(p.clone()));
            }
        }
        if slot.prepared {
            msgs.push(Message::Commit { view, seq, digest });
        }
        msgs
    }

    /// A peer in this view executed only up to `executed`: it gets this replica's part
    /// for the sequence numbers of the view after that which executed here. Its own
    /// retransmissions cannot bring back the COMMITs of replicas that already executed
    /// (Castro's status-driven retransmission).
    fn resend_votes(&mut self, peer: NodeId, executed: u64) {
        let seqs: Vec<u64> = self.slots.range(executed + 1..=self.exec_seq).map(|(s, _)| *s).collect();
        for seq in seqs {
            for m in self.part(seq, true) {
                self.out.send_durable(peer, m);
            }
        }
    }

    /// f+1 peers report a stable checkpoint above what this replica executed: fetch its
    /// state. f+1 peers executed further and this replica made no progress: fetch the
    /// committed batches.
    fn catch_up(&mut self) {
        let k = self.f + 1;
        let mut stables: Vec<u64> = self.peers.values().map(|p| p.0).collect();
        let mut execs: Vec<u64> = self.peers.values().map(|p| p.1).collect();
        if stables.len() < k {
            return;
        }
        stables.sort_unstable_by(|a, b| b.cmp(a));
        execs.sort_unstable_by(|a, b| b.cmp(a));
        let stable_ahead = stables[k - 1];
        let exec_ahead = execs[k - 1];
        let stalled = self.exec_seq == self.exec_at_tick;
        let known = self.known_stable.as_ref().map_or(0, |s| s.seq);
        if (stable_ahead > self.exec_seq || known > self.exec_seq) && stalled {
            let seq = self.exec_seq + 1;
            self.broadcast(&Message::FetchState { seq }, false);
        } else if exec_ahead > self.exec_seq && stalled {
            let from = self.exec_seq + 1;
            let to = exec_ahead.min(from + FETCH_SPAN - 1);
            self.broadcast(&Message::FetchCommitted { from, to }, false);
        }
    }

    pub(crate) fn on_status(&mut self, from: NodeId, view: u64, changing: bool, stable: u64, executed: u64) {
        self.peers.insert(from, (stable, executed));
        if stable < self.stable.seq {
            self.behind.entry(from).or_default().stable = Some(stable);
        }
        if self.active && view == self.view && !changing && executed < self.exec_seq {
            self.behind.entry(from).or_default().executed = Some(executed);
        }
        self.note_behind(from, view, changing);
    }

    /// `peer` reported being in `view` (`changing` to it): if that is behind this
    /// replica's view, it gets the NEW-VIEW on the next tick.
    pub(crate) fn note_behind(&mut self, peer: NodeId, view: u64, changing: bool) {
        if view < self.view || (view == self.view && changing) {
            self.behind.entry(peer).or_default().view = Some((view, changing));
        }
    }

    /// Once per tick, each peer that reported lagging since the last one gets what it
    /// misses: the stable checkpoint's proof (signed, so relayable: it makes the
    /// checkpoint stable there too, or the target of a state transfer), the NEW-VIEW of
    /// this replica's view, and this replica's part of the view's sequence numbers it
    /// has not executed.
    fn help_laggards(&mut self) {
        for (peer, behind) in std::mem::take(&mut self.behind) {
            if let Some(executed) = behind.executed {
                self.resend_votes(peer, executed);
            }
            if behind.stable.is_some_and(|s| s < self.stable.seq) {
                for c in self.stable.proof.clone() {
                    self.send(peer, Message::Checkpoint(c));
                }
            }
            if self.active
                && behind.view.is_some_and(|(v, changing)| v < self.view || (v == self.view && changing))
                && let Some(nv) = self.new_view.clone()
            {
                self.send(peer, Message::NewView(nv));
            }
        }
    }

    pub(crate) fn on_fetch_batch(&mut self, from: NodeId, digest: Digest) {
        if let Some(batch) = self.batches.get(&digest).cloned() {
            self.send(from, Message::Batch { batch });
        }
    }

    pub(crate) fn on_batch(&mut self, from: NodeId, batch: Vec<Item>) {
        let Some(digest) = self.store_batch(batch) else {
            return self.reject(from, "unrequested or invalid batch");
        };
        if self.active && self.is_primary() {
            // Carried over by a NEW-VIEW: its requests are ordered already.
            let items: Vec<_> =
                self.batches.get(&digest).map(|b| b.iter().map(Item::digest).collect()).unwrap_or_default();
            self.assigned.extend(items);
        }
        let slots: Vec<u64> = self.slots.keys().copied().collect();
        for seq in slots {
            self.persist_slot_if_batch(seq);
        }
        self.execute_committed();
    }

    fn persist_slot_if_batch(&mut self, seq: u64) {
        // Committed slots whose batch just arrived are rewritten with it.
        if self.slots.get(&seq).and_then(|s| s.committed).is_some_and(|d| self.batches.contains_key(&d))
            && seq > self.exec_seq
        {
            self.persist_slot(seq);
        }
    }

    pub(crate) fn on_fetch_committed(&mut self, from: NodeId, lo: u64, to: u64) {
        let to = to.min(lo.saturating_add(FETCH_SPAN - 1));
        if lo > to {
            return self.reject(from, "empty fetch range");
        }
        let mut replies = Vec::new();
        for (&seq, slot) in self.slots.range(lo..=to) {
            if seq > self.exec_seq {
                break;
            }
            if let Some(batch) = slot.committed.and_then(|d| self.batches.get(&d)) {
                replies.push(Message::Committed { seq, batch: batch.clone() });
            }
        }
        for r in replies {
            self.send(from, r);
        }
    }

    /// A peer claims `batch` committed at `seq`: with f+1 matching claims from distinct
    /// replicas one is correct, so the batch committed.
    pub(crate) fn on_committed(&mut self, from: NodeId, seq: u64, batch: Vec<Item>) {
        if seq <= self.exec_seq || seq > self.exec_seq + self.cfg.log_window {
            return;
        }
        if self.slots.get(&seq).is_some_and(|s| s.committed.is_some()) {
            return;
        }
        if self.batch_valid(&batch).is_err() {
            return self.reject(from, "committed claim with an invalid batch");
        }
        let digest = batch_digest(&batch);
        // One claim per replica and sequence number (a liar cannot fill memory).
        if self.claims.get(&seq).is_some_and(|c| c.values().any(|(who, _)| who.contains(&from))) {
            return;
        }
        let entry = self.claims.entry(seq).or_default();
        let (who, stored) = entry.entry(digest).or_insert_with(|| (Default::default(), batch));
        who.insert(from);
        if who.len() <= self.f {
            return;
        }
        let batch = std::mem::take(stored);
        self.claims.remove(&seq);
        self.batches.insert(digest, batch);
        self.slots.entry(seq).or_default().committed = Some(digest);
        self.persist_slot(seq);
        self.execute_committed();
    }

    pub(crate) fn on_fetch_state(&mut self, from: NodeId, seq: u64) {
        if self.stable.seq >= seq
            && let Some(state) = self.stable_state.clone()
        {
            self.send(from, Message::State { checkpoint: self.stable.clone(), state });
        }
    }

    /// A checkpoint's state from a peer: installed if its proof holds, its digest
    /// matches and it is ahead of this replica.
    pub(crate) fn on_state(&mut self, from: NodeId, checkpoint: StableCheckpoint, state: Bytes) {
        let behind = checkpoint.seq > self.exec_seq
            || self.known_stable.as_ref().is_some_and(|k| k.seq == checkpoint.seq && k.seq > self.stable.seq);
        if !behind || checkpoint.seq <= self.stable.seq {
            return;
        }
        if !self.valid_stable(&checkpoint) {
            return self.reject(from, "state with an invalid checkpoint proof");
        }
        if state_digest(&state) != checkpoint.digest {
            return self.reject(from, "state does not match its certified digest");
        }
        let snapshot = Snapshot {
            meta: SnapshotMeta { index: checkpoint.index, term: self.view, membership: self.membership.clone() },
            data: state.clone(),
        };
        self.out.push(Output::Apply(Apply::Restore(Box::new(snapshot))));
        // Batches this replica saw decided (committed, or pre-prepared in this view) at
        // sequence numbers the state covers executed inside it.
        let view = self.view;
        let from_seq = (self.exec_seq + 1).min(checkpoint.seq);
        let covered: Vec<Digest> = self
            .slots
            .range(from_seq..=checkpoint.seq)
            .filter_map(|(_, s)| {
                s.committed.or(s.pre_prepare.as_ref().filter(|p| p.body.view == view).map(|p| p.body.digest))
            })
            .filter_map(|d| self.batches.get(&d))
            .flat_map(|b| b.iter().map(Item::digest))
            .collect();
        for d in covered {
            self.remember_executed(d);
        }
        self.exec_seq = checkpoint.seq;
        self.exec_index = checkpoint.index;
        self.checkpoint_at.clear();
        // A primary must not order what waited in its queue: most of it executed inside
        // the state. Ordered again at new sequence numbers, it kept those requests
        // waiting here for ever as a backup later, and its request timer drove this
        // replica into a view of its own (ballot-sim, seed 76, 4 nodes).
        self.queue.clear();
        self.set_stable(checkpoint, state);
        // Requests still in the log above the state stay where they are; the others that
        // waited were most likely executed inside the transferred state: clients retry
        // those (their sessions make a retry safe).
        self.recompute_assigned();
        let assigned = std::mem::take(&mut self.assigned);
        let dropped: Vec<Digest> = self.pending.keys().filter(|d| !assigned.contains(d)).copied().collect();
        for d in dropped {
            self.remove_pending(&d);
            // The host must not wait for them for ever: fail their proposals (the client
            // retries within its session, which makes the retry safe).
            for id in self.proposals.remove(&d).unwrap_or_default() {
                let error = ProposeError::Unavailable(
                    "state transfer replaced the state; the request most likely executed inside it, retry".into(),
                );
                self.out.push(Output::ProposalFailed { id, error });
            }
        }
        self.assigned = assigned;
        if !self.is_primary() {
            self.assigned.clear();
        }
        self.arm_request_timer();
        // Ordered reads whose barriers may be inside the state: the client retries.
        self.fail_reads("state transfer replaced the state this read waited on");
        self.execute_committed();
    }
}
