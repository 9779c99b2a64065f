//! The acceptor's slot log: a dense window indexed by slot (holes are `None`), plus a
//! sparse overflow for the rare slots far beyond it, so a far-ahead slot costs one
//! entry instead of a window full of holes.

use std::collections::{BTreeMap, VecDeque};

use crate::Entry;

/// Slots more than this far past the dense window go to the sparse overflow.
const MAX_GAP: u64 = 1 << 16;

#[derive(Debug)]
pub(super) struct SlotLog {
    /// The slot of `dense[0]`.
    first: u64,
    dense: VecDeque<Option<Entry>>,
    /// Entries at slots `>= first + dense.len()` that were too far to extend the window to.
    far: BTreeMap<u64, Entry>,
}

impl SlotLog {
    /// An empty log whose first slot is `first`.
    pub(super) fn new(first: u64) -> Self {
        SlotLog { first, dense: VecDeque::new(), far: BTreeMap::new() }
    }

    fn end(&self) -> u64 {
        self.first + self.dense.len() as u64
    }

    pub(super) fn get(&self, slot: u64) -> Option<&Entry> {
        if slot < self.first {
            None
        } else if slot < self.end() {
            self.dense[(slot - self.first) as usize].as_ref()
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
        if slot < end {
            self.dense[(slot - self.first) as usize] = Some(e);
            return;
        }
        if slot - end > MAX_GAP {
            self.far.insert(slot, e);
            return;
        }
        while self.end() < slot {
            let s = self.end();
            let moved = self.far.remove(&s);
            self.dense.push_back(moved);
        }
        self.far.remove(&slot);
        self.dense.push_back(Some(e));
        self.absorb_far();
    }

    /// Moves overflow entries that now continue the window into it, keeping the
    /// overflow strictly beyond the window.
    fn absorb_far(&mut self) {
        while !self.far.is_empty() {
            let end = self.end();
            match self.far.remove(&end) {
                Some(e) => self.dense.push_back(Some(e)),
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
        self.dense.iter().rposition(Option::is_some).map(|i| self.first + i as u64)
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
        dense.flatten().chain(far.into_iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ballot, Value};

    fn e(slot: u64) -> Entry {
        Entry { slot, ballot: Ballot::ZERO, value: Value::Noop }
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
