//! View changes: VIEW-CHANGE with the stable checkpoint and prepared certificates,
//! NEW-VIEW with V and O, which every backup recomputes.

use std::collections::{BTreeMap, BTreeSet};

use ballot_core::NodeId;

use crate::crypto::{Digest, Signed};
use crate::message::{
    Item, Message, NewView, PrePrepare, PreparedCert, StableCheckpoint, ViewChange, batch_digest, null_digest,
};
use crate::pbft::Pbft;

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
            self.backoff = self.backoff.saturating_add(1);
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
        self.vc_deadline = None;
        self.send_view_change();
        self.report_role();
        self.check_new_view_quorum(target);
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
        let me = self.id_();
        self.view_changes.entry(target).or_default().insert(me, vc);
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
            // A replica behind: help it with the NEW-VIEW that started this view.
            if self.active
                && target <= self.view
                && let Some(nv) = self.new_view.clone()
            {
                self.send(from, Message::NewView(nv));
            }
            return;
        }
        if self.view_changes.get(&target).is_some_and(|m| m.contains_key(&vc.signer)) {
            return;
        }
        // Bound memory: views far ahead are not believable yet.
        if target > self.view + 64 {
            return self.reject(from, "view change too far ahead");
        }
        if !self.valid_view_change(&vc) {
            return self.reject(from, "invalid view change");
        }
        self.view_changes.entry(target).or_default().insert(vc.signer, vc);
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
            let factor = 1u32.checked_shl(self.backoff.min(16)).unwrap_or(1 << 16);
            self.vc_deadline = Some(self.now + self.request_timeout().saturating_mul(factor));
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
        self.vc_deadline = None;
        self.persist_hard_state();
        self.adopt_stable(stable);
        let null = null_digest();
        let mut max_s = self.stable.seq;
        for pp in nv.body.pre_prepares.clone() {
            let seq = pp.body.seq;
            max_s = max_s.max(seq);
            if seq <= self.stable.seq || self.slots.get(&seq).is_some_and(|s| s.committed.is_some()) {
                // Already decided here; still counts for the sequence numbering.
                if seq > self.stable.seq && !self.is_primary() {
                    self.send_prepare_for(pp);
                }
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
            self.queue = self.pending.keys().filter(|d| !self.assigned.contains(*d)).copied().collect();
        } else {
            let primary = self.primary_of(view);
            let items: Vec<Item> = self.pending.values().map(|p| p.item.clone()).collect();
            for item in items {
                self.send(primary, Message::Request(item));
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

    /// A backup re-sends PREPARE for an O-set entry it already committed, so the others
    /// can still prepare it in the new view.
    fn send_prepare_for(&mut self, pp: Signed<PrePrepare>) {
        let PrePrepare { view, seq, digest } = pp.body;
        if self.slots.get(&seq).and_then(|s| s.committed) != Some(digest) {
            return;
        }
        let prepare = self.sign(crate::message::Prepare { view, seq, digest });
        self.broadcast(&Message::Prepare(prepare), false);
    }

    /// Checks a batch received for a digest this replica needs.
    pub(crate) fn store_batch(&mut self, batch: Vec<Item>) -> Option<Digest> {
        let digest = batch_digest(&batch);
        let needed = self
            .slots
            .values()
            .any(|s| s.committed == Some(digest) || s.pre_prepare.as_ref().is_some_and(|p| p.body.digest == digest));
        if !needed || self.batches.contains_key(&digest) || batch.len() > self.cfg.max_batch {
            return None;
        }
        if !batch.iter().all(|i| self.item_authentic(i)) {
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
