//! The record of client operations a run produced: what each client asked, when, and
//! what it was told.

use ballot_core::Instant;

use crate::kv::{Key, KvInput, KvOutput};

/// Identifies one client operation within a run (its position in the [`History`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still waiting for an answer.
    Pending,
    /// The client got `output` at `at`.
    Ok {
        /// When the client received the answer.
        at: Instant,
        /// The answer.
        output: KvOutput,
    },
    /// The client learned that the operation did not take effect (every attempt was
    /// rejected).
    Failed,
    /// The client gave up (timeout, leadership lost mid-flight): the operation may or may
    /// not have taken effect, at any time after its invocation.
    Indeterminate,
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Its id.
    pub id: OpId,
    /// The client that issued it.
    pub client: usize,
    /// The key it touches.
    pub key: Key,
    /// What it asked.
    pub input: KvInput,
    /// When the client issued it.
    pub invoke: Instant,
    /// How it ended.
    pub outcome: Outcome,
}

impl Operation {
    /// Whether it is a read (reads never change state, so an unanswered one can be
    /// dropped from the history).
    #[must_use]
    pub fn is_read(&self) -> bool {
        matches!(self.input, KvInput::Get)
    }
}

/// Every operation of a run, in invocation order.
#[derive(Clone, Debug, Default)]
pub struct History {
    ops: Vec<Operation>,
}

impl History {
    /// An empty history.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the invocation of a new operation.
    pub fn invoke(&mut self, client: usize, key: Key, input: KvInput, now: Instant) -> OpId {
        let id = OpId(self.ops.len() as u64);
        self.ops.push(Operation { id, client, key, input, invoke: now, outcome: Outcome::Pending });
        id
    }

    /// Records how a pending operation ended; later reports for the same operation are
    /// ignored (a client stops listening once it has an outcome).
    pub fn resolve(&mut self, id: OpId, outcome: Outcome) {
        if let Some(op) = self.ops.get_mut(usize::try_from(id.0).unwrap_or(usize::MAX))
            && op.outcome == Outcome::Pending
        {
            op.outcome = outcome;
        }
    }

    /// The operation `id`.
    #[must_use]
    pub fn get(&self, id: OpId) -> Option<&Operation> {
        self.ops.get(usize::try_from(id.0).ok()?)
    }

    /// Every operation.
    #[must_use]
    pub fn ops(&self) -> &[Operation] {
        &self.ops
    }

    /// How many operations were issued.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no operation was issued.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
