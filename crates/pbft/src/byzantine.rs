//! Tools to build lying replicas, for simulators and tests.
//!
//! A Byzantine replica holds only its own key: [`Forge`] builds any message a faulty
//! replica could send — equivocating PRE-PREPAREs, PREPAREs and COMMITs with wrong
//! digests, wrong CHECKPOINTs, NEW-VIEWs with a wrong O set — signed with that key. A
//! simulator runs an honest [`Pbft`](crate::Pbft) for the liar and rewrites or adds to
//! its outputs with these. Messages that claim another replica can be built with
//! [`Forge::impersonate`]: they carry the liar's signature under another name, which
//! every correct replica must reject.

use std::sync::Arc;

use ballot_core::NodeId;
use bytes::Bytes;

use crate::crypto::{Digest, Signable, Signed, Signer};
use crate::message::{
    Checkpoint, Item, Message, NewView, PrePrepare, Prepare, PreparedCert, StableCheckpoint, ViewChange, batch_digest,
};
use crate::view_change::compute_o;

/// Builds messages of replica `id`, signed with its key.
#[derive(Clone)]
pub struct Forge {
    /// The replica.
    pub id: NodeId,
    signer: Arc<dyn Signer>,
}

impl std::fmt::Debug for Forge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forge").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Forge {
    /// A forge for replica `id` with its signer.
    #[must_use]
    pub fn new(id: NodeId, signer: Arc<dyn Signer>) -> Self {
        Forge { id, signer }
    }

    /// Signs `body` as this replica.
    #[must_use]
    pub fn sign<T: Signable>(&self, body: T) -> Signed<T> {
        Signed::sign(body, self.id, self.signer.as_ref())
    }

    /// Signs `body` with this replica's key but names `claimed` as the signer: a forgery
    /// that correct replicas reject.
    #[must_use]
    pub fn impersonate<T: Signable>(&self, claimed: NodeId, body: T) -> Signed<T> {
        let mut s = self.sign(body);
        s.signer = claimed;
        s
    }

    /// PRE-PREPARE of `batch` at (`view`, `seq`).
    #[must_use]
    pub fn pre_prepare(&self, view: u64, seq: u64, batch: Vec<Item>) -> Message {
        let digest = batch_digest(&batch);
        Message::PrePrepare { pre_prepare: self.sign(PrePrepare { view, seq, digest }), batch }
    }

    /// PREPARE of any digest.
    #[must_use]
    pub fn prepare(&self, view: u64, seq: u64, digest: Digest) -> Message {
        Message::Prepare(self.sign(Prepare { view, seq, digest }))
    }

    /// COMMIT of any digest.
    #[must_use]
    pub fn commit(view: u64, seq: u64, digest: Digest) -> Message {
        Message::Commit { view, seq, digest }
    }

    /// CHECKPOINT with any digest.
    #[must_use]
    pub fn checkpoint(&self, seq: u64, index: u64, digest: Digest) -> Message {
        Message::Checkpoint(self.sign(Checkpoint { seq, index, digest }))
    }

    /// VIEW-CHANGE with any content.
    #[must_use]
    pub fn view_change(&self, view: u64, stable: StableCheckpoint, prepared: Vec<PreparedCert>) -> Message {
        Message::ViewChange(self.sign(ViewChange { view, stable, prepared }))
    }

    /// NEW-VIEW from `view_changes` with the O set `o` (sequence number, digest) chosen
    /// by the caller — right or wrong.
    #[must_use]
    pub fn new_view(&self, view: u64, view_changes: Vec<Signed<ViewChange>>, o: &[(u64, Digest)]) -> Message {
        let pre_prepares = o.iter().map(|&(seq, digest)| self.sign(PrePrepare { view, seq, digest })).collect();
        Message::NewView(self.sign(NewView { view, view_changes, pre_prepares }))
    }

    /// The O set an honest primary derives from `view_changes`, to tamper with.
    #[must_use]
    pub fn honest_o(view_changes: &[Signed<ViewChange>]) -> Vec<(u64, Digest)> {
        compute_o(view_changes).1
    }

    /// A copy of `m` signed again by this replica after `edit` changed it (for example a
    /// PRE-PREPARE with another batch): the liar's own signature stays valid.
    #[must_use]
    pub fn resign(&self, m: &Message) -> Message {
        match m.clone() {
            Message::PrePrepare { pre_prepare, batch } => {
                let mut body = pre_prepare.body;
                body.digest = batch_digest(&batch);
                Message::PrePrepare { pre_prepare: self.sign(body), batch }
            }
            Message::Prepare(p) => Message::Prepare(self.sign(p.body)),
            Message::Checkpoint(c) => Message::Checkpoint(self.sign(c.body)),
            Message::ViewChange(v) => Message::ViewChange(self.sign(v.body)),
            Message::NewView(v) => Message::NewView(self.sign(v.body)),
            other => other,
        }
    }

    /// A request item with arbitrary bytes (no valid client signature).
    #[must_use]
    pub fn bogus_request(bytes: &'static [u8]) -> Item {
        Item::Request(Bytes::from_static(bytes))
    }
}
