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

/// Most values [`SlotLog::values_into`] reserves room for up front.
const MAX_RESERVE: usize = 4096;

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
    /// `(ballot, from, to)`: every slot from `from` to `to` holds a value accepted in
    /// `ballot` (none when `to < from`). Kept by appends and trimmed by overwrites, so
    /// that [`ballot_run`](Self::ballot_run) — asked on every commit notification — need
    /// not read the entries a follower just appended again.
    run: (Ballot, u64, u64),
}

impl SlotLog {
    /// An empty log whose first slot is `first`.
    pub(super) fn new(first: u64) -> Self {
        SlotLog { first, dense: VecDeque::new(), far: BTreeMap::new(), run: (Ballot::ZERO, 1, 0) }
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
            self.extend_run(e.ballot, slot, slot);
            self.dense.push_back(e);
            return;
        }
        let (ballot, from, to) = self.run;
        if (from..=to).contains(&slot) && e.ballot != ballot {
            // Overwritten in another ballot: the run ends before it.
            self.run.2 = slot - 1;
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

    /// Appends `values`, accepted in `ballot`, at consecutive slots from
    /// [`end`](Self::end) on, which must be free (see [`is_free_from`](Self::is_free_from)),
    /// and pushes a copy of each new entry onto `copies` (the pending write) in the same
    /// pass: one walk over the values instead of two, and plain pushes after one
    /// reservation (`extend` with a mapping iterator cost about 200 instructions for the
    /// one-value batches of a lightly loaded leader).
    pub(super) fn append_copying(
        &mut self,
        ballot: Ballot,
        values: impl ExactSizeIterator<Item = Value>,
        copies: &mut Vec<Entry>,
    ) {
        debug_assert!(self.far.is_empty());
        let start = self.end();
        if values.len() == 0 {
            return;
        }
        self.dense.reserve(values.len());
        copies.reserve(values.len());
        let mut slot = start;
        for value in values {
            copies.push(Entry { slot, ballot, value: value.clone() });
            self.dense.push_back(Entry { slot, ballot, value });
            slot += 1;
        }
        self.extend_run(ballot, start, slot - 1);
    }

    /// The last slot of the unbroken sequence of held slots from `from` on, stopping at
    /// `to` (`from - 1` if `from` is not held).
    pub(super) fn held_through(&self, from: u64, to: u64) -> u64 {
        let (_, run_from, run_to) = self.run;
        let mut last = from - 1;
        if run_from <= from && from >= self.first && run_to >= from {
            // Held without looking: the appended run.
            last = run_to.min(to);
        }
        while last < to && self.contains(last + 1) {
            last += 1;
        }
        last
    }

    /// Slots `from..=to`, just appended in `ballot`, continue the run or start a new one.
    fn extend_run(&mut self, ballot: Ballot, from: u64, to: u64) {
        let (b, _, last) = self.run;
        if b == ballot && last.checked_add(1) == Some(from) {
            self.run.2 = to;
        } else {
            self.run = (ballot, from, to);
        }
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
        if self.dense.len() <= drop {
            // Move what is left to the start of the buffer (costing no more than the drop
            // did), so that the window keeps reusing the same, recently touched memory
            // instead of circling through the whole capacity: a log compacted every n
            // slots then touches about n entries' worth of memory, not twice that.
            self.dense = VecDeque::from(Vec::from(std::mem::take(&mut self.dense)));
        }
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
        let mut out = [Vec::new()];
        let bytes = self.values_into(from, max_count, max_bytes, &mut out);
        let [values] = out;
        (values, bytes)
    }

    /// [`values_from`](Self::values_from) for several receivers at once: fills every
    /// (empty) vector of `outs` with its own clones of the same values, reading each
    /// entry once — a leader sending one batch to n followers walks its log once, not n
    /// times. Returns the values' size.
    pub(super) fn values_into(&self, from: u64, max_count: u64, max_bytes: usize, outs: &mut [Vec<Value>]) -> usize {
        let mut bytes = 0;
        if max_count == 0 {
            return bytes;
        }
        let (a, b) = self.dense_run(from, max_count);
        if a.is_empty() {
            // Not in the window: the sparse overflow (rare).
            for (n, e) in (0..).zip(self.range(from, from.saturating_add(max_count - 1))) {
                if e.slot != from + n || bytes >= max_bytes {
                    break;
                }
                bytes += e.value.size();
                for out in outs.iter_mut() {
                    out.push(e.value.clone());
                }
            }
            return bytes;
        }
        // One pass: room for the whole run (up to a bound; more grows), stopping at the
        // first hole or once the size limit is reached.
        let room = (a.len() + b.len()).min(MAX_RESERVE);
        for out in outs.iter_mut() {
            if out.capacity() == 0 {
                *out = Vec::with_capacity(room); // a plain allocation, no growth path
            } else {
                out.reserve(room);
            }
        }
        for e in a.iter().chain(b) {
            if e.slot == 0 || bytes >= max_bytes {
                break;
            }
            bytes += e.value.size();
            for out in outs.iter_mut() {
                out.push(e.value.clone());
            }
        }
        bytes
    }

    /// How many consecutive slots from `from` on (at most `max`) hold a value accepted
    /// in `ballot`.
    pub(super) fn ballot_run(&self, from: u64, max: u64, ballot: Ballot) -> u64 {
        let (b, run_from, run_to) = self.run;
        if b == ballot && run_from <= from && from <= run_to && from >= self.first {
            // Known without reading the entries; read on only past the run.
            let known = (run_to - from + 1).min(max);
            return if known == max { known } else { known + self.ballot_run_read(from + known, max - known, ballot) };
        }
        self.ballot_run_read(from, max, ballot)
    }

    /// [`ballot_run`](Self::ballot_run) by reading the entries.
    fn ballot_run_read(&self, from: u64, max: u64, ballot: Ballot) -> u64 {
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

    fn append(l: &mut SlotLog, ballot: Ballot, values: std::vec::IntoIter<Value>) {
        l.append_copying(ballot, values, &mut Vec::new());
    }

    fn vals(values: impl Iterator<Item = Value>) -> std::vec::IntoIter<Value> {
        values.collect::<Vec<_>>().into_iter()
    }

    fn data(values: &[Value]) -> Vec<&str> {
        values.iter().map(|v| v.command().map_or("-", |b| std::str::from_utf8(b).expect("utf-8"))).collect()
    }

    #[test]
    fn runs_of_values_and_ballots_across_the_ring_boundary() {
        // A window that starts near the end of its ring buffer wraps around: runs span both
        // halves.
        let mut l = SlotLog::new(7);
        l.dense.reserve_exact(8);
        for _ in 0..l.dense.capacity() - 2 {
            l.dense.push_back(HOLE);
            l.dense.pop_front();
        }
        append(
            &mut l,
            Ballot::new(1, NodeId(1)),
            vals((7..=9).map(|s| cmd(s, 1, ["a", "b", "c"][s as usize - 7]).value)),
        );
        append(
            &mut l,
            Ballot::new(2, NodeId(1)),
            vals((10..=12).map(|s| cmd(s, 2, ["d", "e", "f"][s as usize - 10]).value)),
        );
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
        assert_eq!(l.ballot_run(7, 100, Ballot::new(1, NodeId(1))), 3);
        assert_eq!(l.ballot_run_read(10, 100, Ballot::new(2, NodeId(1))), 3, "read across the boundary");
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

    #[test]
    fn the_appended_run_answers_ballot_runs_and_overwrites_trim_it() {
        let (b1, b2) = (Ballot::new(1, NodeId(1)), Ballot::new(2, NodeId(1)));
        let mut l = SlotLog::new(1);
        append(&mut l, b1, vals((1..=4).map(|s| cmd(s, 1, "x").value)));
        l.insert(cmd(5, 1, "y")); // an append in the same ballot continues the run
        let mut copies = Vec::new();
        l.append_copying(b1, vals((6..=8).map(|s| cmd(s, 1, "z").value)), &mut copies);
        assert_eq!(copies, (6..=8).map(|s| cmd(s, 1, "z")).collect::<Vec<_>>());
        assert_eq!(l.range(6, 8).cloned().collect::<Vec<_>>(), copies);
        assert_eq!(l.run, (b1, 1, 8));
        assert_eq!(l.held_through(3, 100), 8);
        assert_eq!(l.held_through(3, 5), 5);
        assert_eq!(l.held_through(9, 100), 8, "not held");
        assert_eq!(l.ballot_run(3, 100, b1), 6);
        assert_eq!(l.ballot_run(3, 2, b1), 2);
        assert_eq!(l.ballot_run(3, 100, b2), 0);
        // Overwriting slot 6 in another ballot ends the run before it; reading agrees.
        l.insert(cmd(6, 2, "w"));
        assert_eq!(l.run, (b1, 1, 5));
        assert_eq!(l.ballot_run(2, 100, b1), 4);
        assert_eq!(l.ballot_run(6, 100, b2), 1);
        assert_eq!(l.ballot_run(7, 100, b1), 2, "past the run, by reading");
        // A new ballot's append starts a new run; compaction keeps runs below the log out.
        append(&mut l, b2, vals((9..=10).map(|s| cmd(s, 2, "v").value)));
        assert_eq!(l.run, (b2, 9, 10));
        l.compact(9);
        assert_eq!(l.ballot_run(10, 100, b2), 1);
        assert_eq!(l.ballot_run(9, 100, b2), 0, "compacted");
        l.insert(cmd(9, 2, "below"));
        assert_eq!(l.get(9), None);
        assert_eq!(l.held_through(9, 100), 8, "compacted: the run does not count");
        assert_eq!(l.held_through(10, 100), 10);
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
