//! The in-memory Raft log: the entries after the latest snapshot, indexed by offset, with
//! the configurations they carry and how much of them is durable.

use std::collections::VecDeque;

use ballot_core::{Membership, PersistId, SnapshotMeta};

use crate::{Entry, EntryPayload};

/// The log after the snapshot. `entries[k].index == snapshot_index + 1 + k`; terms never
/// decrease along it.
#[derive(Debug)]
pub(crate) struct RaftLog {
    snapshot_index: u64,
    snapshot_term: u64,
    /// The configuration in force at `snapshot_index` (the initial one for a fresh log).
    snapshot_membership: Membership,
    entries: VecDeque<Entry>,
    /// Indexes of the membership entries in `entries`, ascending.
    configs: Vec<u64>,
    /// Every entry up to here is durable with its current content.
    stable: u64,
    /// Writes not yet acknowledged: the batch and the last index the log had once that
    /// batch was filled (clamped when a later truncation cut below it).
    writes: VecDeque<(PersistId, u64)>,
}

fn membership_of(e: &Entry) -> Option<&Membership> {
    match &e.payload {
        EntryPayload::Membership(m) => Some(m),
        _ => None,
    }
}

impl RaftLog {
    /// A log starting after `meta`, with nothing durable beyond it.
    pub(crate) fn new(meta: SnapshotMeta) -> Self {
        RaftLog {
            snapshot_index: meta.index,
            snapshot_term: meta.term,
            snapshot_membership: meta.membership,
            entries: VecDeque::new(),
            configs: Vec::new(),
            stable: meta.index,
            writes: VecDeque::new(),
        }
    }

    pub(crate) fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }

    pub(crate) fn first_index(&self) -> u64 {
        self.snapshot_index + 1
    }

    pub(crate) fn last_index(&self) -> u64 {
        self.snapshot_index + self.entries.len() as u64
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.entries.back().map_or(self.snapshot_term, |e| e.term)
    }

    fn offset(&self, index: u64) -> Option<usize> {
        let off = usize::try_from(index.checked_sub(self.snapshot_index + 1)?).ok()?;
        (off < self.entries.len()).then_some(off)
    }

    pub(crate) fn entry(&self, index: u64) -> Option<&Entry> {
        self.offset(index).map(|o| &self.entries[o])
    }

    /// The term at `index`: known for the snapshot's last index and every entry after it.
    pub(crate) fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.snapshot_index { Some(self.snapshot_term) } else { self.entry(index).map(|e| e.term) }
    }

    /// The configuration in force: that of the last membership entry, else the snapshot's.
    pub(crate) fn membership(&self) -> &Membership {
        self.configs.last().and_then(|&i| self.entry(i)).and_then(membership_of).unwrap_or(&self.snapshot_membership)
    }

    /// The index of the entry that set the configuration in force (the snapshot index if
    /// it comes from the snapshot).
    pub(crate) fn membership_index(&self) -> u64 {
        self.configs.last().copied().unwrap_or(self.snapshot_index)
    }

    /// The configuration in force at `index`.
    pub(crate) fn membership_at(&self, index: u64) -> &Membership {
        let pos = self.configs.partition_point(|&i| i <= index);
        pos.checked_sub(1)
            .and_then(|p| self.entry(self.configs[p]))
            .and_then(membership_of)
            .unwrap_or(&self.snapshot_membership)
    }

    /// Appends `entry`, which must be at `last_index() + 1`. Returns whether it carries a
    /// configuration.
    pub(crate) fn append(&mut self, entry: Entry) -> bool {
        debug_assert_eq!(entry.index, self.last_index() + 1, "log append out of order");
        let is_config = matches!(entry.payload, EntryPayload::Membership(_));
        if is_config {
            self.configs.push(entry.index);
        }
        self.entries.push_back(entry);
        is_config
    }

    /// Removes every entry from `from` on (`from > snapshot_index`). Returns the removed
    /// entries and whether a configuration was among them.
    pub(crate) fn truncate_from(&mut self, from: u64) -> (Vec<Entry>, bool) {
        let Some(off) = self.offset(from) else { return (Vec::new(), false) };
        let removed: Vec<Entry> = self.entries.drain(off..).collect();
        let before = self.configs.len();
        self.configs.retain(|&i| i < from);
        self.clamp_durable(from - 1);
        (removed, self.configs.len() != before)
    }

    /// Drops the entries up to `index` (`snapshot_index < index <= last_index`), which a
    /// snapshot now covers.
    pub(crate) fn compact_to(&mut self, index: u64) {
        let (Some(off), Some(term)) = (self.offset(index), self.term_at(index)) else { return };
        self.snapshot_membership = self.membership_at(index).clone();
        self.snapshot_term = term;
        self.entries.drain(..=off);
        self.configs.retain(|&i| i > index);
        self.snapshot_index = index;
    }

    /// Replaces the whole log with a snapshot. Entries up to `keep_durable` (the commit
    /// index, which the snapshot covers) stay counted as durable. Returns the removed entries.
    pub(crate) fn restore(&mut self, meta: &SnapshotMeta, keep_durable: u64) -> Vec<Entry> {
        let removed = self.entries.drain(..).collect();
        self.configs.clear();
        self.snapshot_index = meta.index;
        self.snapshot_term = meta.term;
        self.snapshot_membership = meta.membership.clone();
        self.clamp_durable(keep_durable);
        removed
    }

    fn clamp_durable(&mut self, upto: u64) {
        self.stable = self.stable.min(upto);
        for w in &mut self.writes {
            w.1 = w.1.min(upto);
        }
    }

    /// Clones entries from `from`: at most `max_entries`, and at most `max_bytes` unless the
    /// first entry alone is larger. Returns them and their size.
    pub(crate) fn slice(&self, from: u64, max_entries: usize, max_bytes: usize) -> (Vec<Entry>, usize) {
        let Some(start) = self.offset(from) else { return (Vec::new(), 0) };
        let n = (self.entries.len() - start).min(max_entries);
        let mut out = Vec::with_capacity(n);
        let mut bytes = 0;
        for e in self.entries.range(start..start + n) {
            let size = e.size();
            if !out.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            out.push(e.clone());
        }
        (out, bytes)
    }

    /// Raft's election restriction: is a log ending at (`last_index`, `last_term`) at
    /// least as up to date as this one?
    pub(crate) fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        let my_term = self.last_term();
        last_term > my_term || (last_term == my_term && last_index >= self.last_index())
    }

    /// The first index of the run of entries that share the term at `index` (which must
    /// be known), not looking before the snapshot. Binary search: terms never decrease.
    pub(crate) fn first_index_of_term(&self, index: u64) -> u64 {
        let Some(term) = self.term_at(index) else { return index };
        if index == self.snapshot_index {
            return index;
        }
        let first = self.entries.partition_point(|e| e.term < term);
        self.snapshot_index + 1 + first as u64
    }

    /// The last index whose term is at most `term` (the snapshot index if none after it is).
    pub(crate) fn last_index_with_term_at_most(&self, term: u64) -> u64 {
        self.snapshot_index + self.entries.partition_point(|e| e.term <= term) as u64
    }

    pub(crate) fn stable(&self) -> u64 {
        self.stable
    }

    /// Declares everything in the log durable (after recovery).
    pub(crate) fn mark_all_stable(&mut self) {
        self.stable = self.last_index();
        self.writes.clear();
    }

    /// Notes that batch `id` holds the log's entries up to the current last index.
    pub(crate) fn record_write(&mut self, id: PersistId) {
        let last = self.last_index();
        match self.writes.back_mut() {
            Some(w) if w.0 == id => w.1 = last,
            _ => self.writes.push_back((id, last)),
        }
    }

    /// Every batch up to `id` is durable.
    pub(crate) fn acknowledge(&mut self, id: PersistId) {
        while let Some(&(pid, last)) = self.writes.front() {
            if pid > id {
                break;
            }
            self.writes.pop_front();
            self.stable = self.stable.max(last);
        }
        self.stable = self.stable.min(self.last_index());
    }
}

#[cfg(test)]
mod tests {
    use ballot_core::NodeId;
    use bytes::Bytes;

    use super::*;

    fn cmd(index: u64, term: u64) -> Entry {
        Entry { index, term, payload: EntryPayload::Command { origin: None, data: Bytes::from_static(b"x") } }
    }

    fn log_with_terms(snapshot: (u64, u64), terms: &[u64]) -> RaftLog {
        let mut log =
            RaftLog::new(SnapshotMeta { index: snapshot.0, term: snapshot.1, membership: Membership::default() });
        for (k, &t) in terms.iter().enumerate() {
            log.append(cmd(snapshot.0 + 1 + k as u64, t));
        }
        log
    }

    #[test]
    fn indexes_terms_and_bounds() {
        let log = log_with_terms((10, 2), &[2, 3, 3, 5]);
        assert_eq!((log.first_index(), log.last_index(), log.last_term()), (11, 14, 5));
        assert_eq!(log.term_at(10), Some(2));
        assert_eq!(log.term_at(9), None);
        assert_eq!(log.term_at(13), Some(3));
        assert_eq!(log.term_at(15), None);
        assert!(log.entry(10).is_none());
        assert_eq!(log.entry(14).map(|e| e.term), Some(5));
    }

    #[test]
    fn term_searches_use_the_monotone_terms() {
        let log = log_with_terms((10, 2), &[2, 3, 3, 3, 5, 5]);
        assert_eq!(log.first_index_of_term(14), 12);
        assert_eq!(log.first_index_of_term(16), 15);
        assert_eq!(log.first_index_of_term(11), 11);
        assert_eq!(log.last_index_with_term_at_most(3), 14);
        assert_eq!(log.last_index_with_term_at_most(4), 14);
        assert_eq!(log.last_index_with_term_at_most(1), 10);
        assert_eq!(log.last_index_with_term_at_most(9), 16);
    }

    #[test]
    fn slice_respects_count_and_bytes_but_sends_one_large_entry() {
        let log = log_with_terms((0, 0), &[1; 10]);
        let size = cmd(1, 1).size();
        assert_eq!(log.slice(3, 4, usize::MAX).0.len(), 4);
        assert_eq!(log.slice(3, 100, 2 * size + 1).0.len(), 2);
        let (one, bytes) = log.slice(3, 100, 1);
        assert_eq!((one.len(), bytes), (1, size));
        assert!(log.slice(11, 100, 100).0.is_empty());
        assert!(log.slice(0, 100, 100).0.is_empty());
    }

    #[test]
    fn durability_tracks_writes_and_truncations() {
        let mut log = log_with_terms((0, 0), &[]);
        for i in 1..=10 {
            log.append(cmd(i, 1));
        }
        log.record_write(PersistId(1));
        let (removed, _) = log.truncate_from(6);
        assert_eq!(removed.len(), 5);
        log.append(cmd(6, 2));
        log.record_write(PersistId(2));
        assert_eq!(log.stable(), 0);
        log.acknowledge(PersistId(1));
        assert_eq!(log.stable(), 5, "entries 6..10 of batch 1 were truncated");
        log.acknowledge(PersistId(2));
        assert_eq!(log.stable(), 6);
    }

    #[test]
    fn configs_follow_appends_truncation_and_compaction() {
        let m = |v: &[u64]| Membership::new(v.iter().map(|&n| NodeId(n)));
        let mut log = RaftLog::new(SnapshotMeta { index: 0, term: 0, membership: m(&[1]) });
        log.append(cmd(1, 1));
        assert!(log.append(Entry { index: 2, term: 1, payload: EntryPayload::Membership(m(&[1, 2])) }));
        log.append(cmd(3, 1));
        assert!(log.append(Entry { index: 4, term: 1, payload: EntryPayload::Membership(m(&[1, 2, 3])) }));
        assert_eq!(log.membership(), &m(&[1, 2, 3]));
        assert_eq!(log.membership_at(3), &m(&[1, 2]));
        assert_eq!(log.membership_at(1), &m(&[1]));
        let (_, changed) = log.truncate_from(4);
        assert!(changed);
        assert_eq!((log.membership(), log.membership_index()), (&m(&[1, 2]), 2));
        log.compact_to(3);
        assert_eq!((log.membership(), log.membership_index(), log.snapshot_index()), (&m(&[1, 2]), 3, 3));
    }

    /// Model-based check of the durability bookkeeping: an entry is durable iff the batch
    /// that last wrote it is acknowledged; `stable` is the end of the durable prefix.
    mod model {
        use proptest::prelude::*;

        use super::*;

        #[derive(Clone, Debug)]
        enum Op {
            Append { term_step: u64, count: u64 },
            Truncate { back: u64 },
            Seal,
            Ack { behind: u64 },
            Compact { back: u64 },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0..2u64, 1..4u64).prop_map(|(term_step, count)| Op::Append { term_step, count }),
                1 => (0..6u64).prop_map(|back| Op::Truncate { back }),
                2 => Just(Op::Seal),
                2 => (0..3u64).prop_map(|behind| Op::Ack { behind }),
                1 => (0..4u64).prop_map(|back| Op::Compact { back }),
            ]
        }

        proptest! {
            #[test]
            fn stable_is_the_acknowledged_prefix(ops in proptest::collection::vec(op(), 1..60)) {
                let mut log = RaftLog::new(SnapshotMeta::default());
                // Model: (term, batch that wrote it) per index after the snapshot.
                let mut model: Vec<(u64, u64)> = Vec::new();
                let mut base = 0u64; // model snapshot index
                let (mut batch, mut acked) = (1u64, 0u64);
                for op in ops {
                    match op {
                        Op::Append { term_step, count } => {
                            let term = model.last().map_or(1, |e| e.0) + term_step;
                            for _ in 0..count {
                                let index = base + model.len() as u64 + 1;
                                log.append(cmd(index, term));
                                model.push((term, batch));
                            }
                            log.record_write(PersistId(batch));
                        }
                        Op::Truncate { back } => {
                            let keep = (model.len() as u64).saturating_sub(back);
                            if keep < model.len() as u64 {
                                log.truncate_from(base + keep + 1);
                                model.truncate(keep as usize);
                            }
                        }
                        Op::Seal => batch += 1,
                        Op::Ack { behind } => {
                            acked = acked.max(batch.saturating_sub(behind + 1));
                            log.acknowledge(PersistId(acked));
                        }
                        Op::Compact { back } => {
                            // Only durable entries are ever compacted (index <= applied <= stable).
                            let to = log.stable().saturating_sub(back);
                            if to > base {
                                log.compact_to(to);
                                model.drain(..(to - base) as usize);
                                base = to;
                            }
                        }
                    }
                    let durable = model.iter().take_while(|e| e.1 <= acked).count() as u64;
                    prop_assert_eq!(log.stable(), base + durable);
                    prop_assert_eq!(log.last_index(), base + model.len() as u64);
                    prop_assert_eq!(log.snapshot_index(), base);
                    for (k, e) in model.iter().enumerate() {
                        prop_assert_eq!(log.term_at(base + 1 + k as u64), Some(e.0));
                    }
                }
            }
        }
    }
}
