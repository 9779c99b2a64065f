//! The acceptor's slot log: the values of a dense window of slots, the ballots they were
//! accepted in as runs, and a sparse overflow for the rare slots far beyond the window (a
//! far-ahead slot costs one entry instead of a window full of holes).
//!
//! Every accepted value passes through the window, so it stores bare values — 32 bytes
//! for a command, its `Bytes`. A leader's slots are accepted in long runs of one ballot,
//! so the ballot is kept once per run instead of once per slot (which more than doubled
//! the window's memory, and the cache misses of walking it); holes are runs of
//! [`Ballot::ZERO`], which no proposer uses.

use std::collections::{BTreeMap, VecDeque};

use crate::{Ballot, Entry, Value};

/// Slots more than this far past the dense window go to the sparse overflow.
const MAX_GAP: u64 = 1 << 16;

/// Most values [`SlotLog::values_into`] reserves room for up front.
const MAX_RESERVE: usize = 4096;

#[derive(Debug)]
pub(super) struct SlotLog {
    /// The slot of `values[0]`.
    first: u64,
    /// `values[i]` is the value of slot `first + i` (a `Noop` in a hole).
    values: VecDeque<Value>,
    /// `(from, ballot)`: the slots from `from` up to the next run's `from` (or the end of
    /// the window) were accepted in `ballot`, or are holes if it is `Ballot::ZERO`.
    /// Sorted; neighbours differ in ballot; the first starts at `first` unless the
    /// window is empty (then there are none).
    runs: VecDeque<(u64, Ballot)>,
    /// Entries at slots `> first + values.len()` that were too far to extend the window to.
    far: BTreeMap<u64, Entry>,
}

impl SlotLog {
    /// An empty log whose first slot is `first`.
    pub(super) fn new(first: u64) -> Self {
        SlotLog { first, values: VecDeque::new(), runs: VecDeque::new(), far: BTreeMap::new() }
    }

    /// One past the dense window.
    pub(super) fn end(&self) -> u64 {
        self.first + self.values.len() as u64
    }

    /// Whether every slot from `slot` on is free: beyond the window, nothing far.
    pub(super) fn is_free_from(&self, slot: u64) -> bool {
        slot >= self.end() && self.far.is_empty()
    }

    /// The run holding `slot`, which must be in the window.
    #[inline]
    fn run_of(&self, slot: u64) -> usize {
        debug_assert!(slot >= self.first && slot < self.end());
        match self.runs.back() {
            Some(&(from, _)) if from <= slot => self.runs.len() - 1,
            _ => self.runs.partition_point(|&(from, _)| from <= slot) - 1,
        }
    }

    /// One past the last slot of run `i`.
    fn run_end(&self, i: usize) -> u64 {
        self.runs.get(i + 1).map_or_else(|| self.end(), |&(from, _)| from)
    }

    /// The ballot and value accepted for `slot`, if any.
    #[inline]
    pub(super) fn get(&self, slot: u64) -> Option<(Ballot, &Value)> {
        if slot < self.first {
            None
        } else if slot < self.end() {
            let ballot = self.runs[self.run_of(slot)].1;
            (ballot != Ballot::ZERO).then(|| (ballot, &self.values[(slot - self.first) as usize]))
        } else {
            self.far.get(&slot).map(|e| (e.ballot, &e.value))
        }
    }

    pub(super) fn contains(&self, slot: u64) -> bool {
        self.get(slot).is_some()
    }

    /// Inserts or overwrites; slots below the first, and entries in `Ballot::ZERO`
    /// (which no proposer uses), are ignored.
    pub(super) fn insert(&mut self, e: Entry) {
        let slot = e.slot;
        if slot < self.first || e.ballot == Ballot::ZERO {
            return;
        }
        let end = self.end();
        if slot < end {
            self.values[(slot - self.first) as usize] = e.value;
            self.set_ballot(slot, e.ballot);
            return;
        }
        if slot == end && self.far.is_empty() {
            // Appending: the common case.
            self.push(e.ballot, e.value);
            return;
        }
        if slot - end > MAX_GAP {
            self.far.insert(slot, e);
            return;
        }
        while self.end() < slot {
            match self.far.remove(&self.end()) {
                Some(f) => self.push(f.ballot, f.value),
                None => self.push(Ballot::ZERO, Value::Noop),
            }
        }
        self.far.remove(&slot);
        self.push(e.ballot, e.value);
        self.absorb_far();
    }

    /// Appends slot [`end`](Self::end).
    fn push(&mut self, ballot: Ballot, value: Value) {
        self.run_from_end(ballot);
        self.values.push_back(value);
    }

    /// Slots appended from [`end`](Self::end) on are accepted in `ballot`: continues the
    /// last run, or starts one.
    fn run_from_end(&mut self, ballot: Ballot) {
        if self.runs.back().is_none_or(|&(_, b)| b != ballot) {
            self.runs.push_back((self.end(), ballot));
        }
    }

    /// Records that `slot`, in the window, was accepted in `ballot`: splits its run and
    /// merges it with equal neighbours.
    fn set_ballot(&mut self, slot: u64, ballot: Ballot) {
        let i = self.run_of(slot);
        let (from, old) = self.runs[i];
        if old == ballot {
            return;
        }
        if slot + 1 < self.run_end(i) {
            self.runs.insert(i + 1, (slot + 1, old));
        }
        let j = if slot == from {
            self.runs[i].1 = ballot;
            i
        } else {
            self.runs.insert(i + 1, (slot, ballot));
            i + 1
        };
        if self.runs.get(j + 1).is_some_and(|&(_, b)| b == ballot) {
            self.runs.remove(j + 1);
        }
        if j > 0 && self.runs[j - 1].1 == ballot {
            self.runs.remove(j);
        }
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
        debug_assert!(self.far.is_empty() && ballot != Ballot::ZERO);
        let start = self.end();
        if values.len() == 0 {
            return;
        }
        self.run_from_end(ballot);
        self.values.reserve(values.len());
        copies.reserve(values.len());
        for (slot, value) in (start..).zip(values) {
            copies.push(Entry { slot, ballot, value: value.clone() });
            self.values.push_back(value);
        }
    }

    /// The last slot of the unbroken sequence of held slots from `from` on, stopping at
    /// `to` (`from - 1` if `from` is not held).
    pub(super) fn held_through(&self, from: u64, to: u64) -> u64 {
        let mut last = from - 1;
        if from >= self.first && from < self.end() {
            // Runs of real ballots, up to the first hole.
            let mut i = self.run_of(from);
            while i < self.runs.len() && self.runs[i].1 != Ballot::ZERO && last < to {
                last = self.run_end(i) - 1;
                i += 1;
            }
        }
        while last < to && self.contains(last + 1) {
            last += 1;
        }
        last.min(to)
    }

    /// Moves overflow entries that now continue the window into it, keeping the
    /// overflow strictly beyond the window.
    fn absorb_far(&mut self) {
        while let Some(e) = self.far.remove(&self.end()) {
            self.push(e.ballot, e.value);
        }
    }

    /// Drops every slot `<= upto`; the log then starts at `upto + 1`.
    pub(super) fn compact(&mut self, upto: u64) {
        if upto < self.first {
            return;
        }
        let drop = (upto + 1 - self.first).min(self.values.len() as u64) as usize;
        self.values.drain(..drop);
        if self.values.len() <= drop {
            // Move what is left to the start of the buffer (costing no more than the drop
            // did), so that the window keeps reusing the same, recently touched memory
            // instead of circling through the whole capacity: a log compacted every n
            // slots then touches about n entries' worth of memory, not twice that.
            self.values = VecDeque::from(Vec::from(std::mem::take(&mut self.values)));
        }
        self.first = upto + 1;
        if self.values.is_empty() {
            self.runs.clear();
            self.far = self.far.split_off(&self.first);
            self.absorb_far();
        } else {
            while self.runs.get(1).is_some_and(|&(from, _)| from <= self.first) {
                self.runs.pop_front();
            }
            self.runs[0].0 = self.first;
        }
    }

    /// The highest slot held, if any.
    pub(super) fn last_slot(&self) -> Option<u64> {
        if let Some((&s, _)) = self.far.last_key_value() {
            return Some(s);
        }
        let i = self.runs.iter().rposition(|&(_, b)| b != Ballot::ZERO)?;
        Some(self.run_end(i) - 1)
    }

    /// The slots `from..=to` that hold a value, in slot order, with their ballots.
    pub(super) fn range(&self, from: u64, to: u64) -> impl Iterator<Item = (u64, Ballot, &Value)> {
        let from = from.max(self.first);
        let end = self.end();
        let dense_hi = to.saturating_add(1).min(end);
        let dense = (from..dense_hi.max(from)).filter_map(|s| self.get(s).map(|(b, v)| (s, b, v)));
        let far = if to >= end { Some(self.far.range(from.max(end)..=to)) } else { None };
        dense.chain(far.into_iter().flatten().map(|(&s, e)| (s, e.ballot, &e.value)))
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
    /// value once — a leader sending one batch to n followers walks its log once, not n
    /// times. Returns the values' size.
    pub(super) fn values_into(&self, from: u64, max_count: u64, max_bytes: usize, outs: &mut [Vec<Value>]) -> usize {
        let mut bytes = 0;
        if max_count == 0 {
            return bytes;
        }
        let last = self.held_through(from, from.saturating_add(max_count - 1));
        if last < from {
            return bytes;
        }
        if from < self.first || last >= self.end() {
            // Not in the window: the sparse overflow (rare).
            for (_, _, value) in self.range(from, last) {
                if bytes >= max_bytes {
                    break;
                }
                bytes += value.size();
                for out in outs.iter_mut() {
                    out.push(value.clone());
                }
            }
            return bytes;
        }
        let (a, b) = self.window(from, last - from + 1);
        // One pass: room for the whole run (up to a bound; more grows), stopping once the
        // size limit is reached.
        let room = (a.len() + b.len()).min(MAX_RESERVE);
        for out in outs.iter_mut() {
            if out.capacity() == 0 {
                *out = Vec::with_capacity(room); // a plain allocation, no growth path
            } else {
                out.reserve(room);
            }
        }
        for value in a.iter().chain(b) {
            if bytes >= max_bytes {
                break;
            }
            bytes += value.size();
            for out in outs.iter_mut() {
                out.push(value.clone());
            }
        }
        bytes
    }

    /// How many consecutive slots from `from` on (at most `max`) hold a value accepted
    /// in `ballot`.
    pub(super) fn ballot_run(&self, from: u64, max: u64, ballot: Ballot) -> u64 {
        if ballot == Ballot::ZERO || from < self.first {
            return 0;
        }
        let mut n = 0;
        if from < self.end() {
            // Neighbouring runs differ in ballot: one run answers.
            let i = self.run_of(from);
            if self.runs[i].1 != ballot {
                return 0;
            }
            n = self.run_end(i) - from;
            if n >= max || self.run_end(i) < self.end() {
                return n.min(max);
            }
        }
        while n < max && self.far.get(&(from + n)).is_some_and(|e| e.ballot == ballot) {
            n += 1;
        }
        n
    }

    /// The values of the window at slots `from..from + n` (clamped to the window), as two
    /// slices in slot order; holes included.
    fn window(&self, from: u64, n: u64) -> (&[Value], &[Value]) {
        if from < self.first || from >= self.end() {
            return (&[], &[]);
        }
        let start = (from - self.first) as usize;
        let stop = start + n.min(self.end() - from) as usize;
        let (a, b) = self.values.as_slices();
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
    use ballot_core::NodeId;
    use bytes::Bytes;

    use super::*;

    fn e(slot: u64) -> Entry {
        Entry { slot, ballot: Ballot::new(1, NodeId(1)), value: Value::Noop }
    }

    fn cmd(slot: u64, round: u64, data: &'static str) -> Entry {
        Entry { slot, ballot: Ballot::new(round, NodeId(1)), value: Value::Command { data: Bytes::from(data) } }
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
        l.values.reserve_exact(8);
        for _ in 0..l.values.capacity() - 2 {
            l.values.push_back(Value::Noop);
            l.values.pop_front();
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
        let (a, b) = l.values.as_slices();
        assert!(!a.is_empty() && !b.is_empty(), "the window wraps around");
        assert!(l.is_free_from(13) && !l.is_free_from(12));
        let (values, bytes) = l.values_from(7, 10, usize::MAX);
        assert_eq!(data(&values), vec!["a", "b", "c", "d", "e", "f"]);
        assert_eq!(bytes, 6 * 9);
        // At most `max_count`; no more once `max_bytes` is reached (the last may pass it).
        assert_eq!(data(&l.values_from(8, 2, usize::MAX).0), vec!["b", "c"]);
        assert_eq!(data(&l.values_from(7, 10, 10).0), vec!["a", "b"]);
        assert_eq!(l.values_from(7, 0, usize::MAX).0, vec![]);
        assert_eq!(l.values_from(4, 3, usize::MAX).0, vec![], "compacted");
        assert_eq!(l.values_from(13, 3, usize::MAX).0, vec![], "beyond the log");
        assert_eq!(l.ballot_run(7, 100, Ballot::new(1, NodeId(1))), 3);
        assert_eq!(l.ballot_run(9, 100, Ballot::new(2, NodeId(1))), 0);
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
        let range: Vec<Entry> =
            l.range(6, 8).map(|(slot, ballot, v)| Entry { slot, ballot, value: v.clone() }).collect();
        assert_eq!(range, copies);
        assert_eq!(l.runs, [(1, b1)]);
        assert_eq!(l.held_through(3, 100), 8);
        assert_eq!(l.held_through(3, 5), 5);
        assert_eq!(l.held_through(9, 100), 8, "not held");
        assert_eq!(l.ballot_run(3, 100, b1), 6);
        assert_eq!(l.ballot_run(3, 2, b1), 2);
        assert_eq!(l.ballot_run(3, 100, b2), 0);
        // Overwriting slot 6 in another ballot splits the run around it.
        l.insert(cmd(6, 2, "w"));
        assert_eq!(l.runs, [(1, b1), (6, b2), (7, b1)]);
        assert_eq!(l.ballot_run(2, 100, b1), 4);
        assert_eq!(l.ballot_run(6, 100, b2), 1);
        assert_eq!(l.ballot_run(7, 100, b1), 2, "after the overwritten slot");
        // A new ballot's append starts a new run; compaction keeps runs below the log out.
        append(&mut l, b2, vals((9..=10).map(|s| cmd(s, 2, "v").value)));
        assert_eq!(l.runs, [(1, b1), (6, b2), (7, b1), (9, b2)]);
        l.compact(9);
        assert_eq!(l.ballot_run(10, 100, b2), 1);
        assert_eq!(l.ballot_run(9, 100, b2), 0, "compacted");
        l.insert(cmd(9, 2, "below"));
        assert_eq!(l.get(9), None);
        assert_eq!(l.held_through(9, 100), 8, "compacted: the run does not count");
        assert_eq!(l.held_through(10, 100), 10);
    }

    fn slots(l: &SlotLog, from: u64, to: u64) -> Vec<u64> {
        l.range(from, to).map(|(slot, _, _)| slot).collect()
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
        assert_eq!(l.values.len(), 3);
        assert_eq!(l.last_slot(), Some(1_000_000));
        assert_eq!(slots(&l, 2, u64::MAX), vec![3, 1_000_000]);
        assert_eq!(slots(&l, 2, 999_999), vec![3]);
        // Filling up to just before a far slot pulls it into the window.
        l.insert(e(5));
        l.insert(e(6 + MAX_GAP));
        l.insert(e(7 + MAX_GAP));
        assert!(l.far.contains_key(&1_000_000));
        assert!(l.contains(7 + MAX_GAP));
        l.compact(3);
        assert_eq!(slots(&l, 0, 10), vec![5]);
        assert_eq!(l.get(3), None);
        l.compact(500_000);
        assert_eq!(slots(&l, 0, u64::MAX), vec![1_000_000]);
        assert_eq!(l.last_slot(), Some(1_000_000));
        l.compact(999_999);
        assert_eq!(l.values.len(), 1);
        assert!(l.far.is_empty());
        assert!(l.contains(1_000_000));
        l.compact(2_000_000);
        assert_eq!(l.last_slot(), None);
    }

    /// The runs' invariants: sorted, neighbours differ, the first starts at `first`.
    fn check_runs(l: &SlotLog) {
        if l.values.is_empty() {
            assert!(l.runs.is_empty(), "{:?}", l.runs);
            return;
        }
        assert_eq!(l.runs.front().map(|r| r.0), Some(l.first), "{:?}", l.runs);
        for (a, b) in l.runs.iter().zip(l.runs.iter().skip(1)) {
            assert!(a.0 < b.0 && b.0 < l.end() && a.1 != b.1, "{:?}", l.runs);
        }
    }

    /// Random inserts, appends and compactions against a map of slot to (ballot, value):
    /// every query agrees with the map, and the runs keep their invariants.
    #[test]
    fn agrees_with_a_map_under_random_operations() {
        use std::collections::BTreeMap;

        use ballot_core::SeededRng;
        for seed in 0..300 {
            let mut rng = SeededRng::new(seed);
            let mut l = SlotLog::new(1);
            let mut model: BTreeMap<u64, (Ballot, Value)> = BTreeMap::new();
            let mut first: u64 = 1;
            for step in 0..200 {
                let ballot = Ballot::new(rng.gen_range(1..4), NodeId(rng.gen_range(1..3)));
                let value = Value::Command { data: Bytes::from(format!("{seed}.{step}")) };
                let end = l.end();
                match rng.gen_range(0..10) {
                    0..=3 => {
                        // Anywhere near the window, sometimes far beyond it.
                        let slot = if rng.gen_bool(0.05) {
                            end + MAX_GAP + rng.gen_range(1..5)
                        } else {
                            first.saturating_sub(2) + rng.gen_range(0..(end - first + 8))
                        };
                        l.insert(Entry { slot, ballot, value: value.clone() });
                        if slot >= first {
                            model.insert(slot, (ballot, value));
                        }
                    }
                    4..=7 => {
                        if l.is_free_from(end) {
                            let n = rng.gen_range(0..5);
                            let values: Vec<Value> = (0..n).map(|i| cmd(end + i, 1, "x").value).collect();
                            let mut copies = Vec::new();
                            l.append_copying(ballot, values.clone().into_iter(), &mut copies);
                            assert_eq!(copies.len() as u64, n);
                            for (slot, v) in (end..).zip(values) {
                                model.insert(slot, (ballot, v));
                            }
                        }
                    }
                    8 => {
                        let upto = first + rng.gen_range(0..(end - first + 3));
                        l.compact(upto);
                        first = first.max(upto + 1);
                        model = model.split_off(&first);
                    }
                    _ => {
                        // Ballot zero is never stored.
                        l.insert(Entry { slot: end, ballot: Ballot::ZERO, value });
                    }
                }
                check_runs(&l);
                let hi = model.keys().next_back().copied().unwrap_or(first) + 3;
                assert_eq!(l.get(first - 1), None, "compacted");
                for slot in first..=hi.min(first + 300) {
                    let want = model.get(&slot).map(|(b, v)| (*b, v));
                    assert_eq!(l.get(slot), want, "seed {seed} step {step} slot {slot}");
                    let held = (slot..).take_while(|s| model.contains_key(s)).count() as u64;
                    assert_eq!(l.held_through(slot, slot + 9), slot - 1 + held.min(10), "seed {seed} step {step}");
                    if let Some(&(b, _)) = model.get(&slot) {
                        let run = (slot..).take_while(|s| model.get(s).is_some_and(|(x, _)| *x == b)).count() as u64;
                        assert_eq!(l.ballot_run(slot, 7, b), run.min(7), "seed {seed} step {step} run {slot}");
                        let (values, _) = l.values_from(slot, 6, usize::MAX);
                        let want: Vec<Value> = (slot..slot + held.min(6)).map(|s| model[&s].1.clone()).collect();
                        assert_eq!(values, want, "seed {seed} step {step} values {slot}");
                    }
                }
                let got: Vec<(u64, Ballot, Value)> = l.range(0, u64::MAX).map(|(s, b, v)| (s, b, v.clone())).collect();
                let want: Vec<(u64, Ballot, Value)> = model.iter().map(|(s, (b, v))| (*s, *b, v.clone())).collect();
                assert_eq!(got, want, "seed {seed} step {step}");
                assert_eq!(l.last_slot(), model.keys().next_back().copied(), "seed {seed} step {step}");
            }
        }
    }
}
