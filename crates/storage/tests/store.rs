//! RocksStore: conformance, refusal rules, truncation, compaction, snapshots, service
//! state, metrics.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ballot_core::testkit::{TestEntry, TestHardState, entry, storage_conformance};
use ballot_core::{LogStore, Membership, NodeId, Persist, PersistId, Snapshot, SnapshotMeta, StorageError};
use ballot_storage::{Error, FORMAT_VERSION, RocksStore, SNAPSHOT_CHUNK_SIZE, StoreOptions};
use bytes::Bytes;

type Store = RocksStore<TestEntry, TestHardState>;

fn open(dir: &Path) -> Store {
    Store::open(dir).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

fn batch(id: u64) -> Persist<TestEntry, TestHardState> {
    Persist::new(PersistId(id))
}

fn append(store: &mut Store, id: u64, range: std::ops::RangeInclusive<u64>, term: u64) {
    let mut b = batch(id);
    b.entries = range.map(|i| entry(i, term)).collect();
    store.write(&[b]).expect("write");
}

fn index_terms(store: &mut Store) -> Vec<(u64, u64)> {
    store.recover().expect("recover").entries.iter().map(|e| (e.index, e.term)).collect()
}

/// Opens the store's RocksDB directly, bypassing ballot-storage, to damage it.
fn raw_db(dir: &Path) -> rocksdb::DB {
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir).expect("list column families");
    rocksdb::DB::open_cf(&rocksdb::Options::default(), dir, names).expect("open raw")
}

fn raw_put(dir: &Path, cf: &str, key: &[u8], value: &[u8]) {
    let db = raw_db(dir);
    db.put_cf(db.cf_handle(cf).expect("cf"), key, value).expect("raw put");
}

#[test]
fn rocks_store_conforms() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut n = 0;
    storage_conformance(|| {
        n += 1;
        let dir = root.path().join(format!("store-{n}"));
        move || open(&dir)
    });
}

#[test]
fn a_missing_directory_is_created_and_an_empty_one_used() {
    let root = tempfile::tempdir().expect("tempdir");
    let nested = root.path().join("a/b/data");
    open(&nested);
    assert!(nested.join("CURRENT").exists(), "the store must be created in the missing directory");
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let mut s = open(&empty);
    assert_eq!(s.recover().expect("recover").entries, vec![]);
}

#[test]
fn a_directory_with_other_files_is_refused_untouched() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("notes.txt"), b"precious").expect("write");
    let err = Store::open(root.path()).expect_err("a foreign directory must be refused");
    assert!(matches!(err, Error::NotAStore { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&root.path().display().to_string()) && msg.contains("notes.txt"), "{msg}");
    let names: Vec<_> = std::fs::read_dir(root.path()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("notes.txt")], "nothing may be written to a refused directory");

    // A plain file, and a RocksDB database that is not a ballot store.
    let file = root.path().join("notes.txt");
    assert!(matches!(Store::open(&file), Err(Error::NotAStore { .. })));
    let other = root.path().join("other-db");
    {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        let db = rocksdb::DB::open(&o, &other).expect("create foreign db");
        db.put(b"k", b"v").expect("put");
    }
    let err = Store::open(&other).expect_err("a foreign RocksDB must be refused");
    assert!(matches!(err, Error::NotAStore { .. }), "{err}");
}

#[test]
fn another_format_version_is_refused_with_the_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    append(&mut open(dir.path()), 1, 1..=3, 1);
    raw_put(dir.path(), "meta", b"format_version", &(FORMAT_VERSION + 1).to_be_bytes());
    let err = Store::open(dir.path()).expect_err("a newer format must be refused");
    match &err {
        Error::IncompatibleVersion { found, supported, .. } => {
            assert_eq!((*found, *supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
        }
        other => panic!("expected IncompatibleVersion, got {other}"),
    }
    assert!(err.to_string().contains(&dir.path().display().to_string()), "{err}");
    assert!(matches!(StorageError::from(err), StorageError::IncompatibleVersion { .. }));
    // The data was not touched: restoring the version makes it readable again.
    raw_put(dir.path(), "meta", b"format_version", &FORMAT_VERSION.to_be_bytes());
    assert_eq!(index_terms(&mut open(dir.path())), vec![(1, 1), (2, 1), (3, 1)]);
}

#[test]
fn a_store_with_data_but_no_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    append(&mut open(dir.path()), 1, 1..=3, 1);
    {
        let db = raw_db(dir.path());
        db.delete_cf(db.cf_handle("meta").expect("cf"), b"format_version").expect("delete");
    }
    let err = Store::open(dir.path()).expect_err("must be refused");
    assert!(matches!(&err, Error::Corrupt { what, .. } if what == "format version"), "{err}");
}

#[test]
fn an_undecodable_log_record_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    append(&mut open(dir.path()), 1, 1..=5, 1);
    raw_put(dir.path(), "log", &3u64.to_be_bytes(), &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    let err = Store::open(dir.path()).expect_err("garbage in the log must be refused");
    let msg = err.to_string();
    assert!(matches!(&err, Error::Corrupt { what, .. } if what == "log entry 3"), "{msg}");
    assert!(msg.contains(&dir.path().display().to_string()), "the error must name the directory: {msg}");
    assert!(matches!(StorageError::from(err), StorageError::Corrupt { .. }));
}

#[test]
fn a_log_record_with_trailing_garbage_or_the_wrong_index_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    append(&mut open(dir.path()), 1, 1..=5, 1);
    let db = raw_db(dir.path());
    let log = db.cf_handle("log").expect("cf");
    let good = db.get_cf(log, 2u64.to_be_bytes()).expect("get").expect("entry 2");
    let mut padded = good.clone();
    padded.extend_from_slice(b"junk");
    db.put_cf(log, 2u64.to_be_bytes(), &padded).expect("put");
    drop(db);
    let err = Store::open(dir.path()).expect_err("trailing bytes must be refused");
    assert!(
        matches!(&err, Error::Corrupt { what, detail, .. } if what == "log entry 2" && detail.contains("after the value"))
    );

    // Entry 2's record stored under key 4.
    raw_put(dir.path(), "log", &2u64.to_be_bytes(), &good);
    raw_put(dir.path(), "log", &4u64.to_be_bytes(), &good);
    let err = Store::open(dir.path()).expect_err("a record under the wrong key must be refused");
    assert!(matches!(&err, Error::Corrupt { what, detail, .. } if what == "log entry 4" && detail.contains("index 2")));
}

#[test]
fn a_gap_in_the_log_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    append(&mut open(dir.path()), 1, 1..=5, 1);
    {
        let db = raw_db(dir.path());
        db.delete_cf(db.cf_handle("log").expect("cf"), 3u64.to_be_bytes()).expect("delete");
    }
    let err = Store::open(dir.path()).expect_err("a gap must be refused");
    assert!(
        matches!(&err, Error::Corrupt { what, detail, .. } if what == "log" && detail.contains("2 and 4")),
        "{err}"
    );
    // A slot log (Multi-Paxos) may have holes.
    let mut s = Store::open_with(dir.path(), StoreOptions::new().allow_log_gaps(true)).expect("gaps allowed");
    assert_eq!(index_terms(&mut s), vec![(1, 1), (2, 1), (4, 1), (5, 1)]);
    append(&mut s, 2, 9..=9, 2);
    assert_eq!(s.last_index(), Some(9));
}

#[test]
fn a_write_that_would_leave_a_gap_is_refused_before_touching_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    append(&mut s, 1, 1..=3, 1);
    let mut b = batch(2);
    b.entries = vec![entry(4, 1), entry(6, 1)];
    let err = s.write_batches(&[b]).expect_err("gap");
    // Entry 4 would have extended the log; 6 would not follow it.
    assert!(matches!(err, Error::LogGap { index: 6, first: 1, last: 4 }), "{err}");
    assert_eq!(index_terms(&mut s), vec![(1, 1), (2, 1), (3, 1)], "a refused batch writes nothing");
    assert_eq!(s.last_index(), Some(3));
}

#[test]
fn truncation_replaces_a_conflicting_suffix() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut s = open(dir.path());
        append(&mut s, 1, 1..=10, 1);
        let mut b = batch(2);
        b.truncate_from = Some(4);
        b.entries = (4..=6).map(|i| entry(i, 2)).collect();
        s.write(&[b]).expect("truncate and append");
        assert_eq!((s.first_index(), s.last_index()), (Some(1), Some(6)));
        // Truncating past the end changes nothing; truncating everything empties the log.
        let mut b = batch(3);
        b.truncate_from = Some(50);
        s.write(&[b]).expect("no-op truncation");
        assert_eq!(s.last_index(), Some(6));
    }
    let mut s = open(dir.path());
    let want: Vec<(u64, u64)> = (1..=3).map(|i| (i, 1)).chain((4..=6).map(|i| (i, 2))).collect();
    assert_eq!(index_terms(&mut s), want);
    let mut b = batch(1);
    b.truncate_from = Some(1);
    s.write(&[b]).expect("truncate all");
    assert_eq!(s.last_index(), None);
    drop(s);
    assert_eq!(index_terms(&mut open(dir.path())), vec![]);
}

fn snapshot_at(index: u64, data: &'static [u8]) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta { index, term: 2, membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]) },
        data: Bytes::from_static(data),
    }
}

#[test]
fn compaction_drops_the_prefix_and_keeps_the_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut s = open(dir.path());
        append(&mut s, 1, 1..=100, 2);
        let mut b = batch(2);
        b.snapshot = Some(Box::new(snapshot_at(60, b"state@60")));
        b.compact_to = Some(60);
        s.write(&[b]).expect("compact");
        assert_eq!((s.first_index(), s.last_index()), (Some(61), Some(100)));
        // Appending after compaction continues the log.
        append(&mut s, 3, 101..=105, 2);
        // An entry before the compacted start would leave a gap.
        let mut b = batch(4);
        b.entries = vec![entry(10, 2)];
        assert!(matches!(s.write_batches(&[b]), Err(Error::LogGap { .. })));
    }
    let mut s = open(dir.path());
    let r = s.recover().expect("recover");
    assert_eq!(r.entries.first().map(|e| e.index), Some(61));
    assert_eq!(r.entries.last().map(|e| e.index), Some(105));
    assert_eq!(r.snapshot, Some(snapshot_at(60, b"state@60")));
    // A second snapshot replaces the first, and its chunks replace the old ones.
    let mut b = batch(1);
    b.snapshot = Some(Box::new(snapshot_at(104, b"state@104")));
    b.compact_to = Some(104);
    s.write(&[b]).expect("compact again");
    drop(s);
    let r = open(dir.path()).recover().expect("recover");
    assert_eq!(r.entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![105]);
    assert_eq!(r.snapshot.map(|s| s.data), Some(Bytes::from_static(b"state@104")));
    let db = raw_db(dir.path());
    let chunk_keys = db
        .iterator_cf(db.cf_handle("snapshot").expect("cf"), rocksdb::IteratorMode::Start)
        .filter(|kv| kv.as_ref().is_ok_and(|(k, _)| k.first() == Some(&b'c')))
        .count();
    assert_eq!(chunk_keys, 1, "the replaced snapshot's chunks must be deleted");
}

#[test]
fn a_snapshot_in_a_persist_batch_is_stored_in_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = Bytes::from((0..(2 * SNAPSHOT_CHUNK_SIZE + 10)).map(|i| (i % 249) as u8).collect::<Vec<u8>>());
    let mut s = open(dir.path());
    let mut b = batch(1);
    b.snapshot =
        Some(Box::new(Snapshot { meta: SnapshotMeta { index: 7, ..SnapshotMeta::default() }, data: data.clone() }));
    s.write(&[b]).expect("write");
    let reader = s.snapshots().reader().expect("reader").expect("a snapshot");
    assert_eq!((reader.chunk_count(), reader.len(), reader.meta().index), (3, data.len() as u64, 7));
    let chunks: Vec<Bytes> = reader.collect::<Result<_, _>>().expect("read");
    assert_eq!(chunks.iter().map(Bytes::len).collect::<Vec<_>>(), vec![SNAPSHOT_CHUNK_SIZE, SNAPSHOT_CHUNK_SIZE, 10]);
    assert_eq!(chunks.concat(), data.to_vec());
}

/// Byte `i` of the streamed test snapshot.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

#[test]
fn a_large_snapshot_streams_in_and_out_in_chunks() {
    const TOTAL: u64 = 70 << 20; // over 64 MiB
    const PIECE: u64 = 300_007; // arrives in odd sizes, re-chunked by the writer
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = SnapshotMeta { index: 5_000, term: 4, membership: Membership::new([NodeId(1)]) };
    {
        let s = open(dir.path());
        let snaps = s.snapshots();
        let mut w = snaps.writer(meta.clone());
        let mut off = 0u64;
        while off < TOTAL {
            let n = PIECE.min(TOTAL - off);
            let piece: Vec<u8> = (off..off + n).map(pattern).collect();
            w.write(&piece).expect("write chunk");
            off += n;
        }
        assert!(w.max_chunk_len() <= SNAPSHOT_CHUNK_SIZE, "chunks must not exceed the chunk size");
        assert_eq!(w.written(), TOTAL);
        assert_eq!(w.finish().expect("finish"), meta);
    }
    let s = open(dir.path());
    let reader = s.snapshots().reader().expect("reader").expect("a snapshot");
    assert_eq!(reader.meta(), &meta);
    assert_eq!(reader.len(), TOTAL);
    assert_eq!(reader.chunk_count(), TOTAL.div_ceil(SNAPSHOT_CHUNK_SIZE as u64));
    let (mut off, mut peak) = (0u64, 0usize);
    for chunk in reader {
        let chunk = chunk.expect("read chunk");
        peak = peak.max(chunk.len());
        assert!(chunk.iter().enumerate().all(|(j, b)| *b == pattern(off + j as u64)), "chunk at {off} differs");
        off += chunk.len() as u64;
    }
    assert_eq!(off, TOTAL);
    assert_eq!(peak, SNAPSHOT_CHUNK_SIZE, "the snapshot must come back in chunks of at most 1 MiB");
}

#[test]
fn an_abandoned_or_interrupted_install_leaves_the_old_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chunk_count = |dir: &Path| {
        let db = raw_db(dir);
        db.iterator_cf(db.cf_handle("snapshot").expect("cf"), rocksdb::IteratorMode::Start)
            .filter(|kv| kv.as_ref().is_ok_and(|(k, _)| k.first() == Some(&b'c')))
            .count()
    };
    {
        let s = open(dir.path());
        let snaps = s.snapshots();
        let big = vec![7u8; SNAPSHOT_CHUNK_SIZE * 2 + 1];
        snaps.install(SnapshotMeta { index: 10, ..SnapshotMeta::default() }, [Ok(&big[..])]).expect("install");
        // Abandoned: dropped before finish.
        let mut w = snaps.writer(SnapshotMeta { index: 20, ..SnapshotMeta::default() });
        w.write(&big).expect("write");
        drop(w);
        // A failing source abandons the install.
        let failing = [Ok(vec![1u8; 10]), Err(Error::SnapshotReplaced)];
        assert!(snaps.install(SnapshotMeta { index: 40, ..SnapshotMeta::default() }, failing).is_err());
    }
    assert_eq!(chunk_count(dir.path()), 3, "an abandoned install removes its chunks");
    // Interrupted: the process died while streaming chunks of generation 999 in.
    for n in 0..2u64 {
        let mut key = vec![b'c'];
        key.extend_from_slice(&999u64.to_be_bytes());
        key.extend_from_slice(&n.to_be_bytes());
        raw_put(dir.path(), "snapshot", &key, &[9u8; 100]);
    }
    assert_eq!(chunk_count(dir.path()), 3 + 2);
    let r = open(dir.path()).recover().expect("recover");
    assert_eq!(chunk_count(dir.path()), 3, "opening removes chunks of interrupted installs");
    let snap = r.snapshot.expect("the installed snapshot survives");
    assert_eq!((snap.meta.index, snap.data.len()), (10, SNAPSHOT_CHUNK_SIZE * 2 + 1));
    assert!(snap.data.iter().all(|b| *b == 7));
}

#[test]
fn a_reader_notices_a_replaced_snapshot_and_missing_chunks_are_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = vec![1u8; SNAPSHOT_CHUNK_SIZE * 3];
    {
        let s = open(dir.path());
        let snaps = s.snapshots();
        snaps.install(SnapshotMeta { index: 1, ..SnapshotMeta::default() }, [Ok(&big[..])]).expect("install");
        let mut reader = snaps.reader().expect("reader").expect("snapshot");
        reader.next().expect("first chunk").expect("ok");
        snaps.install(SnapshotMeta { index: 2, ..SnapshotMeta::default() }, [Ok(&big[..10])]).expect("replace");
        assert!(matches!(reader.next(), Some(Err(Error::SnapshotReplaced))));
        assert!(reader.next().is_none(), "a failed reader stops");
        snaps.install(SnapshotMeta { index: 3, ..SnapshotMeta::default() }, [Ok(&big[..])]).expect("replace");
    }
    // Lose the middle chunk of the live snapshot (generation 3).
    {
        let db = raw_db(dir.path());
        let cf = db.cf_handle("snapshot").expect("cf");
        let key = db
            .iterator_cf(cf, rocksdb::IteratorMode::Start)
            .map(|kv| kv.expect("kv").0)
            .filter(|k| k.first() == Some(&b'c'))
            .nth(1)
            .expect("middle chunk");
        db.delete_cf(cf, key).expect("delete");
    }
    let mut s = open(dir.path());
    let err = s.recover_state().expect_err("a missing chunk is corruption");
    assert!(matches!(&err, Error::Corrupt { what, .. } if what == "snapshot chunks"), "{err}");
    drop(s);
    // Losing the last chunk is caught at open.
    {
        let db = raw_db(dir.path());
        let cf = db.cf_handle("snapshot").expect("cf");
        let last = db
            .iterator_cf(cf, rocksdb::IteratorMode::Start)
            .map(|kv| kv.expect("kv").0)
            .filter(|k| k.first() == Some(&b'c'))
            .last()
            .expect("last chunk");
        db.delete_cf(cf, last).expect("delete");
    }
    let err = Store::open(dir.path()).expect_err("a truncated snapshot must be refused");
    assert!(matches!(&err, Error::Corrupt { what, .. } if what == "snapshot chunks"), "{err}");
}

#[test]
fn service_state_commits_atomically_with_its_applied_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = open(dir.path());
        let st = s.state();
        assert_eq!(st.applied_index().expect("applied"), 0);
        let mut b = st.batch();
        b.put(b"a/1", b"one").put(b"a/2", b"two").put(b"b/1", b"bee").put(&[0xff, 0xff], b"edge");
        b.set_applied_index(7).sync(true);
        assert_eq!(b.len(), 4);
        assert_eq!(st.get(b"a/1").expect("get"), None, "staged changes are not visible before commit");
        st.commit(b).expect("commit");
        assert_eq!(st.get(b"a/1").expect("get"), Some(b"one".to_vec()));
        assert_eq!(st.applied_index().expect("applied"), 7);
        let a: Vec<_> = st.scan_prefix(b"a/").expect("scan").collect::<Result<_, _>>().expect("items");
        assert_eq!(a, vec![(b"a/1".to_vec(), b"one".to_vec()), (b"a/2".to_vec(), b"two".to_vec())]);
        let edge: Vec<_> = st.scan_prefix(&[0xff]).expect("scan").collect::<Result<_, _>>().expect("items");
        assert_eq!(edge, vec![(vec![0xff, 0xff], b"edge".to_vec())]);
        let mut b = st.batch();
        b.delete(b"a/1").delete_prefix(b"b/").put(b"b/2", b"new").set_applied_index(9);
        st.commit(b).expect("commit");
        // The log store is independent of the state.
        assert_eq!(s.last_index(), None);
    }
    let s = open(dir.path());
    let st = s.state();
    assert_eq!(st.applied_index().expect("applied"), 9, "the applied index survives reopening");
    let all: Vec<_> = st.scan_prefix(b"").expect("scan").collect::<Result<_, _>>().expect("items");
    let keys: Vec<&[u8]> = all.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, vec![&b"a/2"[..], &b"b/2"[..], &[0xff, 0xff][..]]);
    // Clearing everything (before restoring a snapshot) keeps the applied index consistent.
    let mut b = st.batch();
    b.delete_prefix(b"").put(b"restored", b"1").set_applied_index(100);
    st.commit(b).expect("commit");
    let all: Vec<_> = st.scan_prefix(b"").expect("scan").collect::<Result<_, _>>().expect("items");
    assert_eq!(all, vec![(b"restored".to_vec(), b"1".to_vec())]);
    assert_eq!(st.applied_index().expect("applied"), 100);
}

/// A recorder that keeps the names of recorded histograms and counter increments.
#[derive(Default, Clone)]
struct Recorded(Arc<Mutex<Vec<(String, f64)>>>);

struct Cell(String, Recorded);

impl metrics::HistogramFn for Cell {
    fn record(&self, value: f64) {
        self.1.0.lock().expect("lock").push((self.0.clone(), value));
    }
}

impl metrics::CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.1.0.lock().expect("lock").push((self.0.clone(), value as f64));
    }
    fn absolute(&self, _: u64) {}
}

impl metrics::Recorder for Recorded {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(Arc::new(Cell(key.name().to_owned(), self.clone())))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::from_arc(Arc::new(Cell(key.name().to_owned(), self.clone())))
    }
}

#[test]
fn commits_record_fsync_and_commit_latency() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    let rec = Recorded::default();
    metrics::with_local_recorder(&rec, || {
        let mut a = batch(1);
        a.entries = (1..=3).map(|i| entry(i, 1)).collect();
        let mut b = batch(2);
        b.entries = vec![entry(4, 1)];
        s.write(&[a, b]).expect("write");
    });
    let got = rec.0.lock().expect("lock").clone();
    let value = |name: &str| got.iter().filter(|(n, _)| n == name).map(|(_, v)| *v).collect::<Vec<f64>>();
    use ballot_storage::metrics as m;
    assert_eq!(value(m::WAL_FSYNC_DURATION).len(), 1, "one synced write for the two batches: {got:?}");
    assert!(value(m::WAL_FSYNC_DURATION)[0] > 0.0);
    let commit = value(m::BACKEND_COMMIT_DURATION);
    assert_eq!(commit.len(), 1);
    assert!(commit[0] >= value(m::WAL_FSYNC_DURATION)[0], "the commit includes the fsync");
    assert_eq!(value(m::PERSIST_BATCHES), vec![2.0]);
    assert_eq!(value(m::LOG_ENTRIES), vec![4.0]);
    assert_eq!(value(m::SYNCED_WRITES), vec![1.0]);
}

#[test]
fn a_store_is_locked_against_a_second_opener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = open(dir.path());
    let err = Store::open(dir.path()).expect_err("a second open must fail");
    assert!(matches!(err, Error::Db { .. }), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[test]
fn entries_reads_a_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    append(&mut s, 1, 1..=20, 1);
    let got: Vec<u64> = s.entries(5, 8).expect("entries").iter().map(|e| e.index).collect();
    assert_eq!(got, vec![5, 6, 7, 8]);
    assert_eq!(s.entries(18, 100).expect("entries").len(), 3);
    assert!(s.entries(9, 3).expect("entries").is_empty());
}
