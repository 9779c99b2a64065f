//! A node's simulated disk: what survives a crash, and bit rot that recovery must catch.
//!
//! Every record (log entry, hard state, snapshot) is checksummed when written, as
//! RocksDB checksums its blocks, and verified when a node recovers; a corrupted record
//! makes recovery fail with an error naming it, and the node refuses to start (it never
//! runs on state it cannot trust). At a crash, batches that were written but not yet
//! acknowledged as durable may or may not have reached the disk: the simulator keeps a
//! random prefix of them (each batch whole, as RocksDB's write batches are atomic).

use std::collections::BTreeMap;

use ballot_core::{LogEntry, LogStore, MemStore, Payload, Persist, Recovered, SeededRng, StorageError};

/// One record on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Record {
    HardState,
    Snapshot,
    Entry(u64),
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Record::HardState => f.write_str("the hard state"),
            Record::Snapshot => f.write_str("the snapshot"),
            Record::Entry(i) => write!(f, "log entry {i}"),
        }
    }
}

/// A simulated disk holding a protocol's durable state.
#[derive(Clone, Debug)]
pub(crate) struct SimDisk<E, H> {
    store: MemStore<E, H>,
    sums: BTreeMap<Record, u64>,
}

fn checksum<T: serde::Serialize>(value: &T) -> u64 {
    // FNV-1a over the record's encoding.
    let bytes = postcard::to_allocvec(value).unwrap_or_default();
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl<E: LogEntry, H: Payload + Default + PartialEq> SimDisk<E, H> {
    pub(crate) fn new() -> Self {
        SimDisk { store: MemStore::new(), sums: BTreeMap::new() }
    }

    /// Writes `batches` durably, each atomically, in order.
    pub(crate) fn write(&mut self, batches: &[Persist<E, H>]) -> Result<(), StorageError> {
        self.store.write(batches)?;
        for b in batches {
            if let Some(s) = &b.snapshot {
                self.sums.insert(Record::Snapshot, checksum(s.as_ref()));
            }
            if let Some(t) = b.truncate_from {
                self.sums.retain(|r, _| !matches!(r, Record::Entry(i) if *i >= t));
            }
            for e in &b.entries {
                self.sums.insert(Record::Entry(e.index()), checksum(e));
            }
            if let Some(c) = b.compact_to {
                self.sums.retain(|r, _| !matches!(r, Record::Entry(i) if *i <= c));
            }
            if let Some(hs) = &b.hard_state {
                self.sums.insert(Record::HardState, checksum(hs));
            }
        }
        Ok(())
    }

    /// What a restarting node reads back, every record verified against its checksum.
    pub(crate) fn recover(&self) -> Result<Recovered<E, H>, String> {
        let recovered = self.store.clone().recover().map_err(|e| e.to_string())?;
        let verify = |record: Record, sum: u64| match self.sums.get(&record) {
            Some(&stored) if stored != sum => {
                Err(format!("checksum mismatch in {record}: the disk returned data other than what was written"))
            }
            _ => Ok(()),
        };
        if let Some(hs) = &recovered.hard_state {
            verify(Record::HardState, checksum(hs))?;
        }
        if let Some(s) = &recovered.snapshot {
            verify(Record::Snapshot, checksum(s))?;
        }
        for e in &recovered.entries {
            verify(Record::Entry(e.index()), checksum(e))?;
        }
        Ok(recovered)
    }

    /// Bit rot: one record no longer reads back as written. Returns which, if the disk
    /// holds any.
    pub(crate) fn corrupt(&mut self, rng: &mut SeededRng) -> Option<String> {
        let n = self.sums.len() as u64;
        if n == 0 {
            return None;
        }
        let i = usize::try_from(rng.gen_range(0..n)).unwrap_or(0);
        let (record, sum) = self.sums.iter_mut().nth(i)?;
        *sum ^= 1 << rng.gen_range(0..64);
        Some(record.to_string())
    }
}

#[cfg(test)]
mod tests {
    use ballot_core::PersistId;
    use ballot_core::testkit::{TestEntry, TestHardState, entry};

    use super::*;

    #[test]
    fn bit_rot_is_caught_at_recovery_and_named() {
        let mut disk: SimDisk<TestEntry, TestHardState> = SimDisk::new();
        let mut b = Persist::new(PersistId(1));
        b.entries = vec![entry(1, 1), entry(2, 1)];
        b.hard_state = Some(TestHardState { term: 1, vote: None });
        disk.write(&[b]).expect("write");
        assert_eq!(disk.recover().expect("clean").entries.len(), 2);
        let what = disk.corrupt(&mut SeededRng::new(3)).expect("a record");
        let err = disk.recover().expect_err("corruption is detected");
        assert!(err.contains(&what) && err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn truncated_and_compacted_records_are_forgotten() {
        let mut disk: SimDisk<TestEntry, TestHardState> = SimDisk::new();
        let mut b = Persist::new(PersistId(1));
        b.entries = vec![entry(1, 1), entry(2, 1), entry(3, 1)];
        let mut c = Persist::new(PersistId(2));
        c.truncate_from = Some(2);
        c.entries = vec![entry(2, 2)];
        disk.write(&[b, c]).expect("write");
        assert_eq!(disk.sums.len(), 2);
        assert_eq!(disk.recover().expect("clean").entries, vec![entry(1, 1), entry(2, 2)]);
    }
}
