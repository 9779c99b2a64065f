//! Output queue with durability hold-back, shared by Synod and Multi-Paxos.
//!
//! Writes accumulate in one pending [`Persist`] batch that is emitted on
//! [`flush_persist`](Outbox::flush_persist). A message sent with
//! [`send_durable`](Outbox::send_durable) waits until every write made before it is
//! acknowledged by [`persisted`](Outbox::persisted); messages to the local node are
//! queued for the protocol to handle itself (a proposer counts its own promise or
//! accept only once durable, through the very same path as a peer's).

use std::collections::VecDeque;

use ballot_core::{NodeId, Output, Persist, PersistId};

pub(crate) struct Outbox<M, E, H> {
    id: NodeId,
    outputs: VecDeque<Output<M, E, H>>,
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
    pub(crate) fn new(id: NodeId) -> Self {
        Outbox {
            id,
            outputs: VecDeque::new(),
            batch: Persist::new(PersistId(1)),
            next_id: 1,
            issued: 0,
            durable: 0,
            held: VecDeque::new(),
            local: VecDeque::new(),
        }
    }

    /// Sends now (or queues for local handling).
    pub(crate) fn send(&mut self, to: NodeId, message: M) {
        if to == self.id {
            self.local.push_back(message);
        } else {
            self.outputs.push_back(Output::Send { to, message });
        }
    }

    /// Sends once every write made so far is durable.
    pub(crate) fn send_durable(&mut self, to: NodeId, message: M) {
        let needs = if self.batch.is_empty() { self.issued } else { self.next_id };
        if needs <= self.durable && self.held.is_empty() {
            self.send(to, message);
        } else {
            self.held.push_back((needs, to, message));
        }
    }

    /// The batch being built, to add writes to.
    pub(crate) fn batch(&mut self) -> &mut Persist<E, H> {
        &mut self.batch
    }

    /// Emits the pending batch, if it writes anything.
    pub(crate) fn flush_persist(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.issued = id;
        let batch = std::mem::replace(&mut self.batch, Persist::new(PersistId(self.next_id)));
        self.outputs.push_back(Output::Persist(batch));
    }

    /// Records that batches up to `id` are durable and releases the messages waiting for
    /// them, in the order they were sent.
    pub(crate) fn persisted(&mut self, id: PersistId) {
        // Ids never issued cannot be durable: ignore acknowledgements from the future.
        self.durable = self.durable.max(id.0.min(self.issued));
        while self.held.front().is_some_and(|(needs, _, _)| *needs <= self.durable) {
            if let Some((_, to, message)) = self.held.pop_front() {
                self.send(to, message);
            }
        }
    }

    pub(crate) fn push(&mut self, output: Output<M, E, H>) {
        self.outputs.push_back(output);
    }

    pub(crate) fn pop(&mut self) -> Option<Output<M, E, H>> {
        self.outputs.pop_front()
    }

    pub(crate) fn pop_local(&mut self) -> Option<M> {
        self.local.pop_front()
    }

    /// How many messages wait for durability.
    #[cfg(test)]
    pub(crate) fn held_len(&self) -> usize {
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
