//! View changes: VIEW-CHANGE with the stable checkpoint and prepared certificates,
//! NEW-VIEW with V and O, which every backup recomputes.

use std::collections::{BTreeMap, BTreeSet};

use ballot_core::NodeId;

use crate::crypto::{Digest, Signed};
use crate::message::{
    Item, Message, NewView, PrePrepare, PreparedCert, StableCheckpoint, ViewChange, batch_digest, null_digest,
};
use crate::pbft::Pbft;

/// VIEW-CHANGEs for views more than this far above the current one are refused.
const MAX_VIEWS_AHEAD: u64 = 64;

impl Pbft {
    /// Leaves the current view for `target`: durable view, then VIEW-CHANGE to all.
    pub(crate) fn start_view_change(&mut self, target: u64) {
        if target <= self.view && !(target == self.view && self.active && target > 0) {
            return;
        }
        if target == self.view && !self.active {
            return;
        }
        if self.changed_since_exec {
            self.backoff = (self.backoff + 1).min(self.cfg.max_backoff);
        }
        self.changed_since_exec = true;
        self.view = target;
        self.active = false;
        self.new_view = None;
        self.queue.clear();
        self.assigned.clear();
        for slot in self.slots.values_mut() {
            slot.prepares.clear();
            slot.commits.clear();
            slot.prepared = false;
        }
        self.stop_request_timer();
        self.changing_since = self.now;
        self.send_view_change();
        self.report_role();
        self.check_new_view_quorum(target);
    }

    /// A replica changing to a view for which 2f+1 VIEW-CHANGEs never arrive (the ones
    /// it missed were sent by replicas that have since moved on to a higher view, or
    /// restarted and forgot them) would wait for ever: after a view-change timeout it
    /// joins the lowest higher view another replica asks for. Without this, two correct
    /// replicas waiting in view v and a third in v+1 (a faulty primary of v staying
    /// silent) never reach a quorum in either view (found by ballot-sim).
    pub(crate) fn check_stuck_view_change(&mut self) {
        if self.active || self.vc_deadline.is_some() || self.now < self.changing_since + self.timer() {
            return;
        }
        let me = self.id_();
        let higher =
            self.view_changes.range(self.view + 1..).find(|(_, m)| m.keys().any(|s| *s != me)).map(|(v, _)| *v);
        if let Some(v) = higher {
            self.start_view_change(v);
        }
    }

    /// Builds, records and sends this replica's VIEW-CHANGE for the current view.
    pub(crate) fn send_view_change(&mut self) {
        let target = self.view;
        let prepared: Vec<PreparedCert> = self
            .slots
            .range(self.stable.seq + 1..)
            .filter_map(|(_, s)| s.cert.clone())
            .filter(|c| c.view() < target)
            .collect();
        let vc = self.sign(ViewChange { view: target, stable: self.stable.clone(), prepared });
        self.persist_hard_state();
        self.broadcast(&Message::ViewChange(vc.clone()), true);
        self.keep_view_change(vc);
    }

    /// Records `vc` as its signer's only VIEW-CHANGE (replacing one for a lower view).
    fn keep_view_change(&mut self, vc: Signed<ViewChange>) {
        let signer = vc.signer;
        self.view_changes.retain(|_, m| {
            m.remove(&signer);
            !m.is_empty()
        });
        self.view_changes.entry(vc.body.view).or_default().insert(signer, vc);
    }

    /// A checkpoint proof: 2f+1 valid, matching CHECKPOINTs from distinct replicas (none
    /// for sequence number 0).
    pub(crate) fn valid_stable(&self, s: &StableCheckpoint) -> bool {
        if s.seq == 0 {
            return s.index == 0;
        }
        let mut signers = BTreeSet::new();
        for c in &s.proof {
            if c.body.seq != s.seq || c.body.index != s.index || c.body.digest != s.digest {
                return false;
            }
            if !self.is_replica(c.signer) || !signers.insert(c.signer) {
                return false;
            }
            if !c.verify(self.crypto.verifier.as_ref()) {
                return false;
            }
        }
        signers.len() >= self.quorum
    }

    /// A prepared certificate: the primary's signed PRE-PREPARE and 2f matching signed
    /// PREPAREs of distinct backups.
    pub(crate) fn valid_cert(&self, c: &PreparedCert) -> bool {
        let pp = &c.pre_prepare;
        let primary = self.primary_of(pp.body.view);
        if pp.signer != primary || !pp.verify(self.crypto.verifier.as_ref()) {
            return false;
        }
        let mut signers = BTreeSet::new();
        for p in &c.prepares {
            if p.body.view != pp.body.view || p.body.seq != pp.body.seq || p.body.digest != pp.body.digest {
                return false;
            }
            if p.signer == primary || !self.is_replica(p.signer) || !signers.insert(p.signer) {
                return false;
            }
            if !p.verify(self.crypto.verifier.as_ref()) {
                return false;
            }
        }
        signers.len() + 1 >= self.quorum
    }

    pub(crate) fn valid_view_change(&self, vc: &Signed<ViewChange>) -> bool {
        let body = &vc.body;
        if !self.is_replica(vc.signer) || body.prepared.len() as u64 > self.cfg.log_window {
            return false;
        }
        if !vc.verify(self.crypto.verifier.as_ref()) || !self.valid_stable(&body.stable) {
            return false;
        }
        let mut last = body.stable.seq;
        for c in &body.prepared {
            let seq = c.seq();
            if seq <= last || seq > body.stable.seq + self.cfg.log_window || c.view() >= body.view {
                return false;
            }
            last = seq;
            if !self.valid_cert(c) {
                return false;
            }
        }
        true
    }

    pub(crate) fn on_view_change(&mut self, from: NodeId, vc: Signed<ViewChange>) {
        let target = vc.body.view;
        if target < self.view || (target == self.view && self.active) {
            // A replica behind: it gets the NEW-VIEW on this replica's next tick. Never
            // an answer per message: answers to relayed, replayed or duplicated
            // VIEW-CHANGEs multiplied without bound (ballot-sim, seed 126, 7 nodes).
            if vc.signer == from {
                self.note_behind(from, target, true);
            }
            return;
        }
        // One VIEW-CHANGE kept per replica, for its highest view: a correct replica only
        // moves up, and n messages bound the memory whatever a liar sends.
        if self.view_changes.values().any(|m| m.get(&vc.signer).is_some_and(|old| old.body.view >= target)) {
            return;
        }
        // Views far ahead are not believable yet (nor joinable: a liar could push a
        // stuck replica towards the end of the view numbers).
        if target > self.view.saturating_add(MAX_VIEWS_AHEAD) {
            return self.reject(from, "view change too far ahead");
        }
        if !self.valid_view_change(&vc) {
            return self.reject(from, "invalid view change");
        }
        self.keep_view_change(vc);
        // Join: f+1 replicas ask for views above ours (one of them is correct).
        let mut askers: BTreeMap<NodeId, u64> = BTreeMap::new();
        for (v, m) in self.view_changes.range(self.view + 1..) {
            for signer in m.keys() {
                askers.entry(*signer).or_insert(*v);
            }
        }
        if askers.len() > self.f
            && let Some(lowest) = askers.values().min().copied()
            && (lowest > self.view || (lowest == self.view && self.active))
        {
            self.start_view_change(lowest);
        }
        self.check_new_view_quorum(target);
    }

    /// With 2f+1 VIEW-CHANGEs for the view being changed to: the new primary sends
    /// NEW-VIEW; the others start the NEW-VIEW timer.
    pub(crate) fn check_new_view_quorum(&mut self, target: u64) {
        if target != self.view || self.active {
            return;
        }
        let count = self.view_changes.get(&target).map_or(0, BTreeMap::len);
        if count < self.quorum {
            return;
        }
        if self.primary_of(target) == self.id_() {
            self.send_new_view(target);
        } else if self.vc_deadline.is_none() {
            self.vc_deadline = Some(self.now + self.timer());
        }
    }

    /// O from V: for each sequence number between the highest stable checkpoint in V and
    /// the highest prepared one, the digest of the highest-view certificate, or the null
    /// request.
    pub(crate) fn compute_o(vcs: &[Signed<ViewChange>]) -> (StableCheckpoint, Vec<(u64, Digest)>) {
        compute_o(vcs)
    }

    fn send_new_view(&mut self, target: u64) {
        let vcs: Vec<Signed<ViewChange>> =
            self.view_changes.get(&target).map(|m| m.values().take(self.quorum).cloned().collect()).unwrap_or_default();
        let (_, o) = Self::compute_o(&vcs);
        let pre_prepares: Vec<Signed<PrePrepare>> =
            o.iter().map(|&(seq, digest)| self.sign(PrePrepare { view: target, seq, digest })).collect();
        let nv = self.sign(NewView { view: target, view_changes: vcs, pre_prepares });
        self.install_new_view(nv.clone());
        // Durable first: the view and the O set's PRE-PREPAREs (install_new_view wrote them).
        self.broadcast(&Message::NewView(nv), true);
    }

    pub(crate) fn on_new_view(&mut self, from: NodeId, nv: Signed<NewView>) {
        let view = nv.body.view;
        if view < self.view || (view == self.view && self.active) {
            return;
        }
        if nv.signer != self.primary_of(view) || nv.signer == self.id_() {
            return self.reject(from, "new-view not signed by the view's primary");
        }
        if !nv.verify(self.crypto.verifier.as_ref()) {
            return self.reject(from, "new-view signature invalid");
        }
        if !self.valid_new_view(&nv.body) {
            // Signed by the primary of the view this replica is changing to, and wrong:
            // that primary is faulty. Move on at once. (A wrong NEW-VIEW for another view
            // is only dropped, so that a liar cannot push replicas to views of its choice.)
            self.reject(from, "new-view with a wrong V or O set");
            if view == self.view && !self.active {
                self.start_view_change(view.saturating_add(1));
            }
            return;
        }
        self.install_new_view(nv);
    }

    /// V holds 2f+1 valid VIEW-CHANGEs for the view from distinct replicas, and O is
    /// exactly what they imply, each PRE-PREPARE signed by the new primary.
    fn valid_new_view(&self, nv: &NewView) -> bool {
        let mut signers = BTreeSet::new();
        for vc in &nv.view_changes {
            if vc.body.view != nv.view || !signers.insert(vc.signer) || !self.valid_view_change(vc) {
                return false;
            }
        }
        if signers.len() < self.quorum {
            return false;
        }
        let (_, o) = Self::compute_o(&nv.view_changes);
        let primary = self.primary_of(nv.view);
        o.len() == nv.pre_prepares.len()
            && o.iter().zip(&nv.pre_prepares).all(|(&(seq, digest), pp)| {
                pp.body == PrePrepare { view: nv.view, seq, digest }
                    && pp.signer == primary
                    && pp.verify(self.crypto.verifier.as_ref())
            })
    }

    /// Enters the view of a valid NEW-VIEW: the stable checkpoint it carries, its
    /// PRE-PREPAREs (with PREPAREs from backups), then normal operation.
    fn install_new_view(&mut self, nv: Signed<NewView>) {
        let view = nv.body.view;
        let (stable, _) = Self::compute_o(&nv.body.view_changes);
        if view > self.view || !self.active {
            for slot in self.slots.values_mut() {
                slot.prepares.clear();
                slot.commits.clear();
                slot.prepared = false;
            }
        }
        self.view = view;
        self.active = true;
        self.view_changes = self.view_changes.split_off(&(view + 1));
        self.stop_request_timer();
        // Written with the view, so that a restarted replica can still relay it.
        self.new_view = Some(nv.clone());
        self.persist_hard_state();
        self.adopt_stable(stable);
        let null = null_digest();
        let mut max_s = self.stable.seq;
        for pp in nv.body.pre_prepares.clone() {
            let seq = pp.body.seq;
            max_s = max_s.max(seq);
            // Decided here already: the protocol runs again all the same (it is not executed
            // again) while a peer may still lack it, or replicas that missed the COMMITs
            // of the earlier view could not commit it without this replica (ballot-sim,
            // seed 938, 4 nodes).
            let committed = self.slots.get(&seq).and_then(|s| s.committed);
            let everyone_executed =
                self.replicas.iter().all(|r| *r == self.cfg.id || self.peers.get(r).is_some_and(|p| p.1 >= seq));
            if seq <= self.stable.seq || committed.is_some_and(|d| d != pp.body.digest || everyone_executed) {
                continue;
            }
            if pp.body.digest == null {
                self.batches.entry(null).or_default();
            }
            if self.is_primary() {
                let now = self.now;
                let slot = self.slots.entry(seq).or_default();
                slot.pre_prepare = Some(pp);
                slot.since = now;
                self.persist_slot(seq);
                if !self.batches.contains_key(&pp_digest(self, seq)) {
                    let digest = pp_digest(self, seq);
                    self.broadcast(&Message::FetchBatch { digest }, false);
                }
            } else {
                self.accept_pre_prepare(pp);
            }
        }
        self.new_view = Some(nv);
        self.report_role();
        if self.is_primary() {
            self.next_seq = max_s.max(self.exec_seq) + 1;
            self.recompute_assigned();
            // Oldest first: in digest order, a request with a high digest could be
            // overtaken in every short view by newer ones for ever.
            let waiting = self.pending_oldest_first();
            self.queue = waiting.into_iter().map(|(d, _)| d).filter(|d| !self.assigned.contains(d)).collect();
        } else {
            // Left over from a view this replica led (a NEW-VIEW can take it there
            // straight from any view).
            self.queue.clear();
            self.assigned.clear();
            for (_, item) in self.pending_oldest_first() {
                self.relay_to_primary(item);
            }
            self.arm_request_timer();
        }
        let seqs: Vec<u64> = self.slots.keys().copied().collect();
        for seq in seqs {
            self.check_prepared(seq);
        }
        self.execute_committed();
    }

    /// Requests already decided, or pre-prepared in this view (carried over by O, or
    /// before a restart), are not ordered again.
    pub(crate) fn recompute_assigned(&mut self) {
        let view = self.view;
        self.assigned = self
            .slots
            .range(self.exec_seq + 1..)
            .filter_map(|(_, s)| {
                s.committed.or(s.pre_prepare.as_ref().filter(|pp| pp.body.view == view).map(|pp| pp.body.digest))
            })
            .filter_map(|d| self.batches.get(&d))
            .flat_map(|b| b.iter().map(Item::digest))
            .collect();
    }

    /// Checks a batch received for a digest this replica needs.
    pub(crate) fn store_batch(&mut self, batch: Vec<Item>) -> Option<Digest> {
        let digest = batch_digest(&batch);
        let needed = self
            .slots
            .values()
            .any(|s| s.committed == Some(digest) || s.pre_prepare.as_ref().is_some_and(|p| p.body.digest == digest));
        if !needed || self.batches.contains_key(&digest) || self.batch_valid(&batch).is_err() {
            return None;
        }
        self.batches.insert(digest, batch);
        Some(digest)
    }
}

fn pp_digest(p: &Pbft, seq: u64) -> Digest {
    p.slots.get(&seq).and_then(|s| s.pre_prepare.as_ref()).map(|pp| pp.body.digest).unwrap_or_default()
}

/// O from V: for each sequence number between the highest stable checkpoint in V and
/// the highest prepared one, the digest of the highest-view certificate, or the null
/// request.
pub(crate) fn compute_o(vcs: &[Signed<ViewChange>]) -> (StableCheckpoint, Vec<(u64, Digest)>) {
    let stable = vcs.iter().map(|v| &v.body.stable).max_by_key(|s| s.seq).cloned().unwrap_or_default();
    let mut best: BTreeMap<u64, (u64, Digest)> = BTreeMap::new();
    for vc in vcs {
        for c in &vc.body.prepared {
            if c.seq() <= stable.seq {
                continue;
            }
            let e = best.entry(c.seq()).or_insert((c.view(), c.digest()));
            if (c.view(), c.digest()) > *e {
                *e = (c.view(), c.digest());
            }
        }
    }
    let max_s = best.keys().next_back().copied().unwrap_or(stable.seq);
    let o = (stable.seq + 1..=max_s).map(|n| (n, best.get(&n).map_or_else(null_digest, |b| b.1))).collect();
    (stable, o)
}
