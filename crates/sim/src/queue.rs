//! The event queue: items ordered by virtual time, ties broken by insertion order, so
//! that a run is a pure function of its seed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use ballot_core::Instant;

struct Scheduled<T> {
    at: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Scheduled<T> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl<T> Eq for Scheduled<T> {}
impl<T> PartialOrd for Scheduled<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Scheduled<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // `BinaryHeap` is a max-heap: reverse so the earliest (time, seq) pops first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A deterministic priority queue of timed events.
pub(crate) struct EventQueue<T> {
    heap: BinaryHeap<Scheduled<T>>,
    seq: u64,
}

impl<T> EventQueue<T> {
    pub(crate) fn new() -> Self {
        EventQueue { heap: BinaryHeap::new(), seq: 0 }
    }

    /// Schedules `item` at `at`; items at the same instant pop in insertion order.
    pub(crate) fn push(&mut self, at: Instant, item: T) {
        self.seq += 1;
        self.heap.push(Scheduled { at, seq: self.seq, item });
    }

    /// The time of the earliest item.
    pub(crate) fn peek_time(&self) -> Option<Instant> {
        self.heap.peek().map(|s| s.at)
    }

    /// Removes the earliest item.
    pub(crate) fn pop(&mut self) -> Option<(Instant, T)> {
        self.heap.pop().map(|s| (s.at, s.item))
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_insertion_order() {
        let mut q = EventQueue::new();
        q.push(Instant::from_millis(5), "c");
        q.push(Instant::from_millis(1), "a");
        q.push(Instant::from_millis(5), "d");
        q.push(Instant::from_millis(1), "b");
        assert_eq!(q.len(), 4);
        assert_eq!(q.peek_time(), Some(Instant::from_millis(1)));
        let order: Vec<_> = std::iter::from_fn(|| q.pop().map(|(_, x)| x)).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
    }
}
