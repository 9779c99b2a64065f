//! Messages, certificates and the durable records of PBFT.

use ballot_core::{LogEntry, NodeId};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::crypto::{Digest, Enc, Signable, Signed, sha256};

/// One item of a batch: a client request, an ordered-read barrier, or the batch's
/// agreed time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Item {
    /// A client command, exactly as the client encoded and signed it.
    Request(Bytes),
    /// A read barrier of replica `replica`: ordered like a request, it changes nothing;
    /// once executed, that replica answers the ordered read `nonce` stands for.
    Barrier {
        /// The replica that asked.
        replica: NodeId,
        /// Its number for the read: unique over the replica's restarts (its start
        /// count in the high 32 bits), or a barrier of an earlier life, executed before
        /// the read began, could be taken for the new one.
        nonce: u64,
    },
    /// The primary's clock reading for the batch, in milliseconds since the Unix epoch
    /// (with [`Config::clock`](crate::Config::clock) on): only as a batch's first item,
    /// and accepted by a backup only within the bounds of its own clock. Covered by the
    /// batch digest, so a view change that carries the batch over keeps its time.
    Time(u64),
}

impl Item {
    /// The item's digest (of its canonical encoding).
    #[must_use]
    pub fn digest(&self) -> Digest {
        let mut e = Enc::new("pbft-item");
        self.encode_into(&mut e);
        e.finish()
    }

    fn encode_into(&self, e: &mut Enc) {
        match self {
            Item::Request(b) => e.u64(0).bytes(b),
            Item::Barrier { replica, nonce } => e.u64(1).u64(replica.0).u64(*nonce),
            Item::Time(ms) => e.u64(2).u64(*ms),
        };
    }

    /// Approximate size in bytes, for batching limits.
    #[must_use]
    pub fn size(&self) -> usize {
        match self {
            Item::Request(b) => b.len() + 8,
            Item::Barrier { .. } => 24,
            Item::Time(_) => 16,
        }
    }
}

/// The digest of a batch. The empty batch is the null request.
#[must_use]
pub fn batch_digest(batch: &[Item]) -> Digest {
    let mut e = Enc::new("pbft-batch");
    e.u64(batch.len() as u64);
    for item in batch {
        item.encode_into(&mut e);
    }
    e.finish()
}

/// The digest of the null request (the empty batch) that fills gaps after a view change.
#[must_use]
pub fn null_digest() -> Digest {
    batch_digest(&[])
}

/// PRE-PREPARE(v, n, d): the primary of view `view` assigns sequence number `seq` to
/// the batch with digest `digest`. Signed by the primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PrePrepare {
    /// The view.
    pub view: u64,
    /// The sequence number.
    pub seq: u64,
    /// The batch digest.
    pub digest: Digest,
}

impl Signable for PrePrepare {
    fn encode(&self) -> Enc {
        let mut e = Enc::new("pbft-pre-prepare");
        e.u64(self.view).u64(self.seq).digest(&self.digest);
        e
    }
}

/// PREPARE(v, n, d) of a backup (the signer). Signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Prepare {
    /// The view.
    pub view: u64,
    /// The sequence number.
    pub seq: u64,
    /// The batch digest.
    pub digest: Digest,
}

impl Signable for Prepare {
    fn encode(&self) -> Enc {
        let mut e = Enc::new("pbft-prepare");
        e.u64(self.view).u64(self.seq).digest(&self.digest);
        e
    }
}

/// CHECKPOINT(n, i, d): after executing sequence number `seq`, which brought the
/// service to log index `index`, the service state has digest `digest`. Signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The sequence number.
    pub seq: u64,
    /// The service log index after executing `seq`.
    pub index: u64,
    /// SHA-256 of the service state.
    pub digest: Digest,
}

impl Signable for Checkpoint {
    fn encode(&self) -> Enc {
        let mut e = Enc::new("pbft-checkpoint");
        e.u64(self.seq).u64(self.index).digest(&self.digest);
        e
    }
}

/// A stable checkpoint and its proof: 2f+1 matching signed CHECKPOINTs from distinct
/// replicas. Sequence number 0 (the empty initial state) needs no proof.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StableCheckpoint {
    /// The sequence number.
    pub seq: u64,
    /// The service log index at `seq`.
    pub index: u64,
    /// SHA-256 of the service state.
    pub digest: Digest,
    /// The signed CHECKPOINTs.
    pub proof: Vec<Signed<Checkpoint>>,
}

impl StableCheckpoint {
    fn encode_into(&self, e: &mut Enc) {
        e.u64(self.seq).u64(self.index).digest(&self.digest).u64(self.proof.len() as u64);
        for p in &self.proof {
            e.digest(&p.digest());
        }
    }
}

/// A prepared certificate: a signed PRE-PREPARE and 2f matching signed PREPAREs from
/// distinct backups of its view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedCert {
    /// The primary's PRE-PREPARE.
    pub pre_prepare: Signed<PrePrepare>,
    /// The backups' PREPAREs.
    pub prepares: Vec<Signed<Prepare>>,
}

impl PreparedCert {
    /// The sequence number it certifies.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.pre_prepare.body.seq
    }
    /// The view it was prepared in.
    #[must_use]
    pub fn view(&self) -> u64 {
        self.pre_prepare.body.view
    }
    /// The digest it certifies.
    #[must_use]
    pub fn digest(&self) -> Digest {
        self.pre_prepare.body.digest
    }
}

/// VIEW-CHANGE(v+1, n, C, P, i): the signer's stable checkpoint with its proof, and a
/// prepared certificate for every sequence number above it that prepared at the signer
/// (the one of the highest view). Signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// The view to move to.
    pub view: u64,
    /// The signer's stable checkpoint.
    pub stable: StableCheckpoint,
    /// Prepared certificates above it, in sequence order.
    pub prepared: Vec<PreparedCert>,
}

impl Signable for ViewChange {
    fn encode(&self) -> Enc {
        let mut e = Enc::new("pbft-view-change");
        e.u64(self.view);
        self.stable.encode_into(&mut e);
        e.u64(self.prepared.len() as u64);
        for c in &self.prepared {
            e.digest(&c.pre_prepare.digest()).u64(c.prepares.len() as u64);
            for p in &c.prepares {
                e.digest(&p.digest());
            }
        }
        e
    }
}

/// NEW-VIEW(v+1, V, O): the new primary's 2f+1 VIEW-CHANGEs and the PRE-PREPAREs it
/// derived from them (null requests fill gaps). Every backup recomputes O from V.
/// Signed, so that any replica can relay it to one that missed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewView {
    /// The new view.
    pub view: u64,
    /// V: the VIEW-CHANGEs.
    pub view_changes: Vec<Signed<ViewChange>>,
    /// O: the PRE-PREPAREs of the new view for the sequence numbers V carries over.
    pub pre_prepares: Vec<Signed<PrePrepare>>,
}

impl Signable for NewView {
    fn encode(&self) -> Enc {
        let mut e = Enc::new("pbft-new-view");
        e.u64(self.view).u64(self.view_changes.len() as u64);
        for v in &self.view_changes {
            e.digest(&v.digest());
        }
        e.u64(self.pre_prepares.len() as u64);
        for p in &self.pre_prepares {
            e.digest(&p.digest());
        }
        e
    }
}

/// A message between replicas.
///
/// Signed messages (`PrePrepare`, `Prepare`, `Checkpoint`, `ViewChange`, `NewView`) are
/// checked against their embedded signature and may be relayed; the others are trusted
/// to come from the `from` the host's authenticated channel names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A client request (or read barrier) relayed to the primary by a backup.
    Request(Item),
    /// The primary orders a batch.
    PrePrepare {
        /// The signed PRE-PREPARE.
        pre_prepare: Signed<PrePrepare>,
        /// The batch, whose digest the PRE-PREPARE names.
        batch: Vec<Item>,
    },
    /// A backup accepted a PRE-PREPARE.
    Prepare(Signed<Prepare>),
    /// COMMIT(v, n, d): the sender prepared (channel-authenticated).
    Commit {
        /// The view.
        view: u64,
        /// The sequence number.
        seq: u64,
        /// The batch digest.
        digest: Digest,
    },
    /// A checkpoint vote (may be relayed).
    Checkpoint(Signed<Checkpoint>),
    /// A view change vote (may be relayed).
    ViewChange(Signed<ViewChange>),
    /// The new primary starts its view (may be relayed).
    NewView(Signed<NewView>),
    /// Periodic progress report: peers answer with what the sender is missing.
    Status {
        /// The sender's view.
        view: u64,
        /// Whether it is between views.
        changing: bool,
        /// Its stable checkpoint's sequence number.
        stable: u64,
        /// The last sequence number it executed.
        executed: u64,
    },
    /// Asks for the batch with this digest.
    FetchBatch {
        /// The digest.
        digest: Digest,
    },
    /// A batch (checked against the digest it was asked for).
    Batch {
        /// The batch.
        batch: Vec<Item>,
    },
    /// Asks which batches committed at `from..=to`.
    FetchCommitted {
        /// First sequence number.
        from: u64,
        /// Last sequence number.
        to: u64,
    },
    /// The sender committed `batch` at `seq` (believed with f+1 matching claims).
    Committed {
        /// The sequence number.
        seq: u64,
        /// The batch.
        batch: Vec<Item>,
    },
    /// Asks for a stable checkpoint's state at `seq` or later.
    FetchState {
        /// The lowest acceptable sequence number.
        seq: u64,
    },
    /// A stable checkpoint's state, checked against the certified digest.
    State {
        /// The certified checkpoint.
        checkpoint: StableCheckpoint,
        /// The service state (SHA-256 equals `checkpoint.digest`).
        state: Bytes,
    },
}

impl Message {
    /// The message's name, for logs and test filters.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Request(_) => "request",
            Message::PrePrepare { .. } => "pre-prepare",
            Message::Prepare(_) => "prepare",
            Message::Commit { .. } => "commit",
            Message::Checkpoint(_) => "checkpoint",
            Message::ViewChange(_) => "view-change",
            Message::NewView(_) => "new-view",
            Message::Status { .. } => "status",
            Message::FetchBatch { .. } => "fetch-batch",
            Message::Batch { .. } => "batch",
            Message::FetchCommitted { .. } => "fetch-committed",
            Message::Committed { .. } => "committed",
            Message::FetchState { .. } => "fetch-state",
            Message::State { .. } => "state",
        }
    }
}

/// A durable record of one sequence number: what this replica pre-prepared (the
/// PRE-PREPARE it accepted, with the batch), the prepared certificate of the highest
/// view, and whether it committed. Rewritten whenever one of these changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The sequence number (the storage key).
    pub seq: u64,
    /// The PRE-PREPARE accepted for `seq` in the latest view that sent one.
    pub pre_prepare: Option<Signed<PrePrepare>>,
    /// The batch, once known.
    pub batch: Option<Vec<Item>>,
    /// The prepared certificate of the highest view.
    pub cert: Option<PreparedCert>,
    /// The digest committed at `seq`, once committed (the batch is then its batch).
    pub committed: Option<Digest>,
}

impl LogEntry for Entry {
    fn index(&self) -> u64 {
        self.seq
    }
}

/// The small durable state: the view, whether a view change is under way, and the
/// stable checkpoint (whose state is the stored snapshot).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The view this replica is in or changing to.
    pub view: u64,
    /// Between views: sent VIEW-CHANGE for `view`, no valid NEW-VIEW yet.
    pub changing: bool,
    /// The stable checkpoint.
    pub stable: StableCheckpoint,
    /// The NEW-VIEW of `view` this replica installed (none in view 0 or while
    /// changing): after a restart it can still hand it to replicas that missed it,
    /// which otherwise could wait for ever for a view its peers already run.
    #[serde(default)]
    pub new_view: Option<Signed<NewView>>,
    /// How many times this replica started: each start takes the next number, which
    /// read barrier nonces carry.
    #[serde(default)]
    pub starts: u64,
}

/// SHA-256 of a service state, as certified by checkpoints.
#[must_use]
pub fn state_digest(state: &[u8]) -> Digest {
    sha256(state)
}
