//! The acceptor's slot log: a dense window indexed by slot, plus a sparse overflow for
//! the rare slots far beyond it, so a far-ahead slot costs one entry instead of a window
//! full of holes.
//!
//! Holes in the window are entries with slot 0 (no slot is 0), so that the window stores
//! bare entries — every accepted value passes through it, and an `Option` around each
//! would cost a tag word per slot.

use std::collections::{BTreeMap, VecDeque};

use crate::{Ballot, Entry, Value};

/// Slots more than this far past the dense window go to the sparse overflow.
const MAX_GAP: u64 = 1 << 16;

/// A hole in the dense window.
const HOLE: Entry = Entry { slot: 0, ballot: Ballot::ZERO, value: Value::Noop };

#[derive(Debug)]
pub(super) struct SlotLog {
    /// The slot of `dense[0]`.
    first: u64,
    /// `dense[i]` holds slot `first + i`, or is a hole (slot 0).
    dense: VecDeque<Entry>,
    /// Entries at slots `>= first + dense.len()` that were too far to extend the window to.
    far: BTreeMap<u64, Entry>,
}

impl SlotLog {
    /// An empty log whose first slot is `first`.
    pub(super) fn new(first: u64) -> Self {
        SlotLog { first, dense: VecDeque::new(), far: BTreeMap::new() }
    }

    /// One past the dense window.
    pub(super) fn end(&self) -> u64 {
        self.first + self.dense.len() as u64
    }

    /// Whether every slot from `slot` on is free: beyond the window, nothing far.
    pub(super) fn is_free_from(&self, slot: u64) -> bool {
        slot >= self.end() && self.far.is_empty()
    }

    pub(super) fn get(&self, slot: u64) -> Option<&Entry> {
        if slot < self.first {
            None
        } else if slot < self.end() {
            let e = &self.dense[(slot - self.first) as usize];
            (e.slot != 0).then_some(e)
        } else {
            self.far.get(&slot)
        }
    }

    pub(super) fn contains(&self, slot: u64) -> bool {
        self.get(slot).is_some()
    }

    /// Inserts or overwrites; slots below the first are ignored.
    pub(super) fn insert(&mut self, e: Entry) {
        let slot = e.slot;
        if slot < self.first {
            return;
        }
        let end = self.end();
        if slot == end && self.far.is_empty() {
            // Appending: the common case.
            self.dense.push_back(e);
            return;
        }
        if slot < end {
            self.dense[(slot - self.first) as usize] = e;
            return;
        }
        if slot - end > MAX_GAP {
            self.far.insert(slot, e);
            return;
        }
        while self.end() < slot {
            let s = self.end();
            let moved = self.far.remove(&s).unwrap_or(HOLE);
            self.dense.push_back(moved);
        }
        self.far.remove(&slot);
        self.dense.push_back(e);
        self.absorb_far();
    }

    /// Appends entries for consecutive slots from [`end`](Self::end) on, which must be
    /// free (see [`is_free_from`](Self::is_free_from)).
    pub(super) fn append(&mut self, entries: impl IntoIterator<Item = Entry>) {
        debug_assert!(self.far.is_empty());
        self.dense.extend(entries);
        debug_assert!(self.dense.back().is_none_or(|e| e.slot + 1 == self.end()));
    }

    /// Moves overflow entries that now continue the window into it, keeping the
    /// overflow strictly beyond the window.
    fn absorb_far(&mut self) {
        while !self.far.is_empty() {
            let end = self.end();
            match self.far.remove(&end) {
                Some(e) => self.dense.push_back(e),
                None => break,
            }
        }
    }

    /// Drops every slot `<= upto`; the log then starts at `upto + 1`.
    pub(super) fn compact(&mut self, upto: u64) {
        if upto < self.first {
            return;
        }
        let drop = (upto + 1 - self.first).min(self.dense.len() as u64) as usize;
        self.dense.drain(..drop);
        self.first = upto + 1;
        if self.dense.is_empty() {
            self.far = self.far.split_off(&self.first);
            self.absorb_far();
        }
    }

    /// The highest slot held, if any.
    pub(super) fn last_slot(&self) -> Option<u64> {
        if let Some((&s, _)) = self.far.last_key_value() {
            return Some(s);
        }
        self.dense.iter().rposition(|e| e.slot != 0).map(|i| self.first + i as u64)
    }

    /// The entries at slots `from..=to`, in slot order.
    pub(super) fn range(&self, from: u64, to: u64) -> impl Iterator<Item = &Entry> {
        let from = from.max(self.first);
        let end = self.end();
        let dense_hi = to.saturating_add(1).min(end);
        let dense = if from < dense_hi {
            self.dense.range((from - self.first) as usize..(dense_hi - self.first) as usize)
        } else {
            self.dense.range(0..0)
        };
        let far = if to >= end { Some(self.far.range(from.max(end)..=to).map(|(_, e)| e)) } else { None };
        dense.filter(|e| e.slot != 0).chain(far.into_iter().flatten())
    }

    /// Clones the values of the consecutive slots from `from` on — at most `max_count`,
    /// and no more once they reach `max_bytes` (by [`Value::size`]) — stopping at the
    /// first slot not held. Returns them and their size.
    pub(super) fn values_from(&self, from: u64, max_count: u64, max_bytes: usize) -> (Vec<Value>, usize) {
        let mut bytes = 0;
        if max_count == 0 {
            return (Vec::new(), bytes);
        }
        let (a, b) = self.dense_run(from, max_count);
        if a.is_empty() {
            // Not in the window: the sparse overflow (rare).
            let mut values = Vec::new();
            for e in self.range(from, from.saturating_add(max_count - 1)) {
                if e.slot != from + values.len() as u64 || bytes >= max_bytes {
                    break;
                }
                bytes += e.value.size();
                values.push(e.value.clone());
            }
            return (values, bytes);
        }
        // Count first, then clone in one pass into a vector of the right size.
        let mut n = 0;
        for e in a.iter().chain(b) {
            if e.slot == 0 || bytes >= max_bytes {
                break;
            }
            bytes += e.value.size();
            n += 1;
        }
        let mut values = Vec::with_capacity(n);
        let na = n.min(a.len());
        values.extend(a[..na].iter().map(|e| e.value.clone()));
        values.extend(b[..n - na].iter().map(|e| e.value.clone()));
        (values, bytes)
    }

    /// How many consecutive slots from `from` on (at most `max`) hold a value accepted
    /// in `ballot`.
    pub(super) fn ballot_run(&self, from: u64, max: u64, ballot: Ballot) -> u64 {
        let (a, b) = self.dense_run(from, max);
        let in_window = a.iter().chain(b).take_while(|e| e.slot != 0 && e.ballot == ballot).count() as u64;
        if in_window == a.len() as u64 + b.len() as u64 && in_window < max {
            // The window ended: the sparse overflow never continues it, but check.
            let mut n = in_window;
            while n < max && self.get(from + n).is_some_and(|e| e.ballot == ballot) {
                n += 1;
            }
            return n;
        }
        in_window
    }

    /// The entries of the dense window at slots `from..from + n` (clamped to the window),
    /// as two slices in slot order; holes included.
    fn dense_run(&self, from: u64, n: u64) -> (&[Entry], &[Entry]) {
        if from < self.first || from >= self.end() {
            return (&[], &[]);
        }
        let start = (from - self.first) as usize;
        let stop = start + n.min(self.end() - from) as usize;
        let (a, b) = self.dense.as_slices();
        if stop <= a.len() {
            (&a[start..stop], &[])
        } else if start >= a.len() {
            (&b[start - a.len()..stop - a.len()], &[])
        } else {
            (&a[start..], &b[..stop - a.len()])
        }
    }
}

#[cfg(test)]
mod tests {
    use ballot_core::{NodeId, ProposalId};
    use bytes::Bytes;

    use super::*;
    use crate::Origin;

    fn e(slot: u64) -> Entry {
        Entry { slot, ballot: Ballot::ZERO, value: Value::Noop }
    }

    fn cmd(slot: u64, round: u64, data: &'static str) -> Entry {
        let origin = Origin { node: NodeId(1), incarnation: 1, proposal: ProposalId(slot) };
        Entry { slot, ballot: Ballot::new(round, NodeId(1)), value: Value::Command { origin, data: Bytes::from(data) } }
    }

    fn data(values: &[Value]) -> Vec<&str> {
        values.iter().map(|v| v.command().map_or("-", |b| std::str::from_utf8(b).expect("utf-8"))).collect()
    }

    #[test]
    fn runs_of_values_and_ballots_across_the_ring_boundary() {
        let mut l = SlotLog::new(1);
        l.dense.reserve_exact(8);
        l.append((1..=6).map(|s| cmd(s, 1, "x")));
        // Compacting and appending wraps the ring buffer around: runs span both halves.
        l.compact(4);
        l.append((7..=12).map(|s| cmd(s, if s < 10 { 1 } else { 2 }, ["a", "b", "c", "d", "e", "f"][s as usize - 7])));
        let (a, b) = l.dense.as_slices();
        assert!(!a.is_empty() && !b.is_empty(), "the window wraps around");
        assert!(l.is_free_from(13) && !l.is_free_from(12));
        let (values, bytes) = l.values_from(7, 10, usize::MAX);
        assert_eq!(data(&values), vec!["a", "b", "c", "d", "e", "f"]);
        assert_eq!(bytes, 6 * 25);
        // At most `max_count`; no more once `max_bytes` is reached (the last may pass it).
        assert_eq!(data(&l.values_from(8, 2, usize::MAX).0), vec!["b", "c"]);
        assert_eq!(data(&l.values_from(7, 10, 26).0), vec!["a", "b"]);
        assert_eq!(l.values_from(7, 0, usize::MAX).0, vec![]);
        assert_eq!(l.values_from(4, 3, usize::MAX).0, vec![], "compacted");
        assert_eq!(l.values_from(13, 3, usize::MAX).0, vec![], "beyond the log");
        assert_eq!(l.ballot_run(5, 100, Ballot::new(1, NodeId(1))), 5);
        assert_eq!(l.ballot_run(7, 2, Ballot::new(1, NodeId(1))), 2);
        assert_eq!(l.ballot_run(10, 100, Ballot::new(2, NodeId(1))), 3);
        assert_eq!(l.ballot_run(10, 100, Ballot::new(1, NodeId(1))), 0);
        // A hole ends a run; far slots are found by both.
        l.insert(cmd(15, 2, "h"));
        l.insert(cmd(14 + 2 * MAX_GAP, 2, "far"));
        assert_eq!(data(&l.values_from(10, 100, usize::MAX).0), vec!["d", "e", "f"]);
        assert_eq!(l.ballot_run(10, 100, Ballot::new(2, NodeId(1))), 3);
        assert_eq!(data(&l.values_from(15, 100, usize::MAX).0), vec!["h"]);
        assert_eq!(data(&l.values_from(14 + 2 * MAX_GAP, 5, usize::MAX).0), vec!["far"]);
        assert_eq!(l.ballot_run(14 + 2 * MAX_GAP, 5, Ballot::new(2, NodeId(1))), 1);
        assert_eq!(l.get(13), None);
        assert_eq!(l.last_slot(), Some(14 + 2 * MAX_GAP));
    }

    fn slots(l: &SlotLog, from: u64, to: u64) -> Vec<u64> {
        l.range(from, to).map(|e| e.slot).collect()
    }

    #[test]
    fn holes_far_slots_and_compaction() {
        let mut l = SlotLog::new(1);
        l.insert(e(1));
        l.insert(e(3));
        l.insert(e(0)); // below the log: ignored
        assert_eq!(slots(&l, 0, u64::MAX), vec![1, 3]);
        assert!(!l.contains(2) && l.contains(3));
        // Far beyond the window: kept sparsely, no hole allocation.
        l.insert(e(1_000_000));
        assert_eq!(l.dense.len(), 3);
        assert_eq!(l.last_slot(), Some(1_000_000));
        assert_eq!(slots(&l, 2, u64::MAX), vec![3, 1_000_000]);
        assert_eq!(slots(&l, 2, 999_999), vec![3]);
        // Filling up to just before a far slot pulls it into the window.
        l.insert(e(5));
        l.insert(e(6 + MAX_GAP));
        l.insert(e(7 + MAX_GAP));
        assert!(l.far.contains_key(&1_000_000));
        assert_eq!(l.get(7 + MAX_GAP).map(|x| x.slot), Some(7 + MAX_GAP));
        l.compact(3);
        assert_eq!(slots(&l, 0, 10), vec![5]);
        assert_eq!(l.get(3), None);
        l.compact(500_000);
        assert_eq!(slots(&l, 0, u64::MAX), vec![1_000_000]);
        assert_eq!(l.last_slot(), Some(1_000_000));
        l.compact(999_999);
        assert_eq!(l.dense.len(), 1);
        assert!(l.far.is_empty());
        assert_eq!(l.get(1_000_000).map(|x| x.slot), Some(1_000_000));
        l.compact(2_000_000);
        assert_eq!(l.last_slot(), None);
    }
}
