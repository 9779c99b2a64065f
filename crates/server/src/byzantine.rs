//! A lying PBFT replica, for end-to-end tests of Byzantine fault tolerance in real
//! processes. Compiled only with the `byzantine` feature, which no default build
//! enables; a node lies only when started with `--byzantine LIE,...`.
//!
//! The liar runs an honest [`Pbft`] and rewrites what it sends with its own key
//! ([`Forge`]), as the simulator's Byzantine replicas do: it cannot forge another
//! replica's or a client's signature.

use ballot_core::{Instant, NodeId, Output, PersistId, ProposalId, ProposeError, Protocol, ReadId, Status};
use ballot_pbft::byzantine::Forge;
use ballot_pbft::{Checkpoint, Entry, HardState, Item, Message, Pbft, PbftOutput, Prepare, sha256};
use bytes::Bytes;

/// One kind of lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lie {
    /// As primary: every request in its PRE-PREPAREs is altered (one byte of the
    /// client's command changed, the client's signature kept), the PRE-PREPARE signed
    /// anew.
    AlterRequests,
    /// PREPAREs, COMMITs and CHECKPOINTs name wrong digests.
    WrongDigests,
}

/// An honest [`Pbft`] whose messages are rewritten by `lies`.
pub struct Liar {
    inner: Pbft,
    forge: Forge,
    lies: Vec<Lie>,
}

impl Liar {
    /// Lies `lies` (none: an honest replica) with the replica `inner` and its own
    /// signer (in `forge`).
    #[must_use]
    pub fn new(inner: Pbft, forge: Forge, lies: Vec<Lie>) -> Self {
        if !lies.is_empty() {
            tracing::warn!(?lies, "this replica LIES (a Byzantine test build)");
        }
        Liar { inner, forge, lies }
    }

    fn lie(&self, message: Message) -> Message {
        let wrong = |d: &ballot_pbft::Digest| sha256(&d.0);
        match message {
            Message::PrePrepare { pre_prepare, batch } if self.lies.contains(&Lie::AlterRequests) => {
                let batch = batch
                    .into_iter()
                    .map(|item| match item {
                        Item::Request(bytes) => {
                            let mut altered = bytes.to_vec();
                            if let Some(last) = altered.last_mut() {
                                *last ^= 1;
                            }
                            Item::Request(Bytes::from(altered))
                        }
                        other => other,
                    })
                    .collect();
                self.forge.resign(&Message::PrePrepare { pre_prepare, batch })
            }
            Message::Prepare(p) if self.lies.contains(&Lie::WrongDigests) => {
                let Prepare { view, seq, digest } = p.body;
                self.forge.prepare(view, seq, wrong(&digest))
            }
            Message::Commit { view, seq, digest } if self.lies.contains(&Lie::WrongDigests) => {
                Forge::commit(view, seq, wrong(&digest))
            }
            Message::Checkpoint(c) if self.lies.contains(&Lie::WrongDigests) => {
                let Checkpoint { seq, index, digest } = c.body;
                self.forge.checkpoint(seq, index, wrong(&digest))
            }
            other => other,
        }
    }
}

impl Protocol for Liar {
    type Message = Message;
    type Entry = Entry;
    type HardState = HardState;

    fn id(&self) -> NodeId {
        self.inner.id()
    }

    fn handle_message(&mut self, now: Instant, from: NodeId, message: Message) {
        self.inner.handle_message(now, from, message);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn propose(&mut self, now: Instant, id: ProposalId, command: Bytes) -> Result<(), ProposeError> {
        self.inner.propose(now, id, command)
    }

    fn read(&mut self, now: Instant, id: ReadId) -> Result<(), ProposeError> {
        self.inner.read(now, id)
    }

    fn persisted(&mut self, now: Instant, id: PersistId) {
        self.inner.persisted(now, id);
    }

    fn compact(&mut self, now: Instant, index: u64, data: Bytes) {
        self.inner.compact(now, index, data);
    }

    fn checkpoint(&mut self, now: Instant, index: u64, digest: [u8; 32], state: Bytes) {
        self.inner.checkpoint(now, index, digest, state);
    }

    fn client_rule(&self) -> ballot_core::ClientRule {
        self.inner.client_rule()
    }

    fn request_body(&self, command: &Bytes) -> Result<Bytes, String> {
        self.inner.request_body(command)
    }

    fn poll_output(&mut self) -> Option<PbftOutput> {
        Some(match self.inner.poll_output()? {
            Output::Send { to, message } => Output::Send { to, message: self.lie(message) },
            other => other,
        })
    }

    fn refusals(&self) -> Vec<(&'static str, u64)> {
        self.inner.refusals()
    }

    fn time_wanted(&mut self, now: Instant, unix_ms: Option<u64>) {
        self.inner.time_wanted(now, unix_ms);
    }

    fn status(&self) -> Status {
        self.inner.status()
    }
}
