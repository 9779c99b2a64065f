//! The output queue every protocol emits through, with the durability hold-back that
//! keeps it safe: the most safety-critical code of a consensus implementation, written
//! once.
//!
//! Writes accumulate in one pending [`Persist`] batch that is emitted on
//! [`flush_persist`](Outbox::flush_persist). A message sent with
//! [`send_durable`](Outbox::send_durable) — a vote, an append acknowledgement, a Paxos
//! promise — waits until every write made before it is acknowledged by
//! [`persisted`](Outbox::persisted); messages to the local node are queued for the
//! protocol to handle itself (a proposer counts its own promise or accept only once
//! durable, through the very same path as a peer's).

use std::collections::VecDeque;

use crate::{NodeId, Output, Persist, PersistId};

/// A queue of outputs.
pub type Queue<M, E, H> = VecDeque<Output<M, E, H>>;

/// A protocol's outputs: messages, write batches with their ids, and messages held
/// until the writes before them are durable. See the [module docs](self).
///
/// ```
/// use ballot_core::{NodeId, Outbox, Output, PersistId};
///
/// let mut out: Outbox<&str, u64, u64> = Outbox::new(NodeId(1));
/// out.batch().hard_state = Some(7); // say, a new term and vote
/// out.send_durable(NodeId(2), "vote"); // may not leave before the vote is on disk
/// out.flush_persist();
/// assert!(matches!(out.pop(), Some(Output::Persist(p)) if p.id == PersistId(1)));
/// assert!(out.pop().is_none(), "the vote waits");
/// out.persisted(PersistId(1));
/// assert!(matches!(out.pop(), Some(Output::Send { message: "vote", .. })));
/// ```
pub struct Outbox<M, E, H> {
    id: NodeId,
    outputs: Queue<M, E, H>,
    /// Outputs ever queued and ever taken: positions in the queue, for `applies`.
    queued: u64,
    taken: u64,
    /// Place holders for the `Apply` items of decided slots, which the protocol builds
    /// only when they are polled (so that every committed entry is not built into an
    /// [`Output`], queued and copied out again): `(position, slot)` stands for the items
    /// of the slots up to `slot` not out yet, due before the output queued at `position`.
    applies: VecDeque<(u64, u64)>,
    /// The batch being built; it gets id `next_id` when flushed.
    batch: Persist<E, H>,
    next_id: u64,
    /// Highest id emitted.
    issued: u64,
    /// Highest id acknowledged.
    durable: u64,
    /// Messages waiting for `durable >= needs`: (needs, to, message).
    held: VecDeque<(u64, NodeId, M)>,
    /// Messages to the local node, handled by the protocol after the current input.
    local: VecDeque<M>,
    /// Entries in the last batch that had any: the capacity a new batch's `entries`
    /// starts with, instead of growing one push at a time.
    entries_hint: usize,
}

impl<M, E, H> std::fmt::Debug for Outbox<M, E, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("outputs", &self.outputs.len())
            .field("issued", &self.issued)
            .field("durable", &self.durable)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl<M, E, H> Outbox<M, E, H> {
    /// An empty outbox of node `id`; the first batch gets id 1.
    #[must_use]
    pub fn new(id: NodeId) -> Self {
        Outbox {
            id,
            outputs: VecDeque::new(),
            queued: 0,
            taken: 0,
            applies: VecDeque::new(),
            batch: Persist::new(PersistId(1)),
            next_id: 1,
            issued: 0,
            durable: 0,
            held: VecDeque::new(),
            local: VecDeque::new(),
            entries_hint: 0,
        }
    }

    /// Sends now (or queues for local handling).
    pub fn send(&mut self, to: NodeId, message: M) {
        if to == self.id {
            self.local.push_back(message);
        } else {
            self.push(Output::Send { to, message });
        }
    }

    /// Sends once every write made so far is durable.
    pub fn send_durable(&mut self, to: NodeId, message: M) {
        let needs = if self.batch.is_empty() { self.issued } else { self.next_id };
        if needs <= self.durable && self.held.is_empty() {
            self.send(to, message);
        } else {
            self.held.push_back((needs, to, message));
        }
    }

    /// The batch being built, to add writes to.
    pub fn batch(&mut self) -> &mut Persist<E, H> {
        &mut self.batch
    }

    /// Adds an entry to the batch being built; a fresh batch starts with room for as
    /// many entries as the previous one held.
    pub fn push_entry(&mut self, entry: E) {
        let entries = &mut self.batch.entries;
        if entries.capacity() == 0 {
            entries.reserve(self.entries_hint.max(1));
        }
        entries.push(entry);
    }

    /// The entries of the batch being built, with room for `additional` more.
    pub fn entries_for(&mut self, additional: usize) -> &mut Vec<E> {
        self.reserve_entries(additional);
        &mut self.batch.entries
    }

    /// Makes room for `additional` more entries in the batch being built.
    pub fn reserve_entries(&mut self, additional: usize) {
        let entries = &mut self.batch.entries;
        if entries.capacity() == 0 {
            entries.reserve(additional.max(self.entries_hint));
        } else {
            entries.reserve(additional);
        }
    }

    /// Emits the pending batch, if it writes anything.
    pub fn flush_persist(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.issued = id;
        if !self.batch.entries.is_empty() {
            self.entries_hint = self.batch.entries.len();
        }
        let batch = std::mem::replace(&mut self.batch, Persist::new(PersistId(self.next_id)));
        self.push(Output::Persist(batch));
    }

    /// The id the batch being built will have.
    #[must_use]
    pub fn batch_id(&self) -> PersistId {
        self.batch.id
    }

    /// The highest batch id acknowledged durable.
    #[must_use]
    pub fn durable(&self) -> PersistId {
        PersistId(self.durable)
    }

    /// Whether every batch emitted so far is durable and nothing is being built.
    #[must_use]
    pub fn all_durable(&self) -> bool {
        self.durable == self.issued && self.batch.is_empty()
    }

    /// Records that batches up to `id` are durable and releases the messages waiting for
    /// them, in the order they were sent. Returns the new durable id if it advanced
    /// (acknowledgements of ids never issued are clamped to the last one issued).
    pub fn persisted(&mut self, id: PersistId) -> Option<PersistId> {
        // Ids never issued cannot be durable: ignore acknowledgements from the future.
        let before = self.durable;
        self.durable = self.durable.max(id.0.min(self.issued));
        while self.held.front().is_some_and(|(needs, _, _)| *needs <= self.durable) {
            if let Some((_, to, message)) = self.held.pop_front() {
                self.send(to, message);
            }
        }
        (self.durable > before).then_some(PersistId(self.durable))
    }

    /// Queues any other output (an event, an `Apply`, a read result).
    pub fn push(&mut self, output: Output<M, E, H>) {
        self.outputs.push_back(output);
        self.queued += 1;
    }

    /// Queues the `Apply` items of the slots up to `slot` (after those queued before),
    /// to be built when polled.
    pub fn push_apply_up_to(&mut self, slot: u64) {
        match self.applies.back_mut() {
            Some((at, upto)) if *at == self.queued => *upto = slot,
            _ => self.applies.push_back((self.queued, slot)),
        }
    }

    /// The next output, unless the queue is empty or `Apply` items are due first (see
    /// [`front_apply_up_to`](Self::front_apply_up_to)).
    pub fn pop(&mut self) -> Option<Output<M, E, H>> {
        if self.front_apply_up_to().is_some() {
            return None;
        }
        let o = self.outputs.pop_front()?;
        self.taken += 1;
        Some(o)
    }

    /// The next output; the caller checked that no `Apply` items are due first.
    pub fn pop_unchecked(&mut self) -> Option<Output<M, E, H>> {
        let o = self.outputs.pop_front()?;
        self.taken += 1;
        Some(o)
    }

    /// The slot up to which `Apply` items are due next, if they come before any output.
    pub fn front_apply_up_to(&self) -> Option<u64> {
        self.applies.front().filter(|(at, _)| *at == self.taken).map(|&(_, upto)| upto)
    }

    /// Drops the place holder due next (its items were all built).
    pub fn pop_apply_up_to(&mut self) {
        self.applies.pop_front();
    }

    /// Whether any place holder is queued.
    pub fn has_applies(&self) -> bool {
        !self.applies.is_empty()
    }

    /// Takes the queue apart to replace its place holders by the items they stand for:
    /// the outputs, and for each place holder its slot and how many of the outputs come
    /// before it. [`put_built`](Self::put_built) puts the result back.
    pub fn take_for_build(&mut self) -> (Queue<M, E, H>, Vec<(usize, u64)>) {
        let taken = self.taken;
        let applies = std::mem::take(&mut self.applies)
            .into_iter()
            .map(|(at, upto)| (usize::try_from(at - taken).unwrap_or(usize::MAX), upto))
            .collect();
        (std::mem::take(&mut self.outputs), applies)
    }

    /// Puts back a queue taken with [`take_for_build`](Self::take_for_build), its place
    /// holders replaced.
    pub fn put_built(&mut self, outputs: Queue<M, E, H>) {
        debug_assert!(self.outputs.is_empty() && self.applies.is_empty());
        self.taken = 0;
        self.queued = outputs.len() as u64;
        self.outputs = outputs;
    }

    /// The next message this node sent itself, for the protocol to handle.
    pub fn pop_local(&mut self) -> Option<M> {
        self.local.pop_front()
    }

    /// How many messages wait for durability.
    #[must_use]
    pub fn held_len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Box_ = Outbox<&'static str, u64, u64>;

    fn sends(o: &mut Box_) -> Vec<(NodeId, &'static str)> {
        let mut v = Vec::new();
        while let Some(out) = o.pop() {
            if let Output::Send { to, message } = out {
                v.push((to, message));
            }
        }
        v
    }

    #[test]
    fn durable_sends_wait_for_the_batch_they_follow() {
        let mut o: Box_ = Outbox::new(NodeId(1));
        o.send_durable(NodeId(2), "free");
        assert_eq!(sends(&mut o), vec![(NodeId(2), "free")]);
        o.batch().hard_state = Some(7);
        o.send_durable(NodeId(2), "after-1");
        o.flush_persist();
        assert!(matches!(o.pop(), Some(Output::Persist(p)) if p.id == PersistId(1)));
        assert!(o.pop().is_none());
        // A message sent with nothing pending still waits for the unacknowledged batch 1.
        o.send_durable(NodeId(3), "after-1-too");
        o.persisted(PersistId(9)); // clamps to issued
        assert_eq!(sends(&mut o), vec![(NodeId(2), "after-1"), (NodeId(3), "after-1-too")]);
        o.batch().hard_state = Some(8);
        o.flush_persist();
        o.send_durable(NodeId(1), "local");
        assert!(o.pop_local().is_none());
        o.persisted(PersistId(2));
        assert_eq!(o.pop_local(), Some("local"));
        assert_eq!(o.held_len(), 0);
    }
}
