//! GroupCommit: grouping, ordering, acknowledgement, fatal errors, shutdown.

use std::sync::mpsc;
use std::time::Duration;

use ballot_core::StorageError;
use ballot_core::testkit::{TestEntry, TestHardState, entry};
use ballot_core::{LogStore, Persist, PersistId};
use ballot_storage::{GroupCommit, GroupCommitOptions, RocksStore};

type Store = RocksStore<TestEntry, TestHardState>;

fn one_entry(id: u64) -> Persist<TestEntry, TestHardState> {
    let mut b = Persist::new(PersistId(id));
    b.entries = vec![entry(id, 1)];
    b
}

#[test]
fn batches_queued_during_a_sync_are_written_with_the_next_single_sync() {
    const N: u64 = 2_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let (acks_tx, acks) = mpsc::channel();
    let (go_tx, go) = mpsc::channel::<()>();
    let mut first = true;
    let opts = GroupCommitOptions::new().queue_capacity(N as usize).max_group(N as usize);
    let gc = GroupCommit::spawn_with(store, opts, move |ack| {
        acks_tx.send(ack).expect("ack channel");
        if std::mem::take(&mut first) {
            // Hold the writer until everything else is queued.
            go.recv_timeout(Duration::from_secs(30)).expect("producer finished");
        }
    })
    .expect("spawn");
    gc.submit(one_entry(1)).expect("submit");
    // The writer is now held in the first acknowledgement, as if its fsync were slow.
    let first_ack = acks.recv_timeout(Duration::from_secs(30)).expect("first ack").expect("ok");
    assert_eq!(first_ack, PersistId(1));
    for id in 2..=N {
        gc.submit(one_entry(id)).expect("submit");
    }
    go_tx.send(()).expect("release");
    let second_ack = acks.recv_timeout(Duration::from_secs(30)).expect("second ack").expect("ok");
    assert_eq!(second_ack, PersistId(N), "everything queued during the first sync must go in ONE next write");
    assert_eq!(gc.durable(), Some(PersistId(N)));
    let mut store = gc.shutdown().expect("shutdown");
    assert!(acks.try_recv().is_err(), "exactly two synced writes");
    let r = store.recover().expect("recover");
    assert_eq!(r.entries.len() as u64, N);
    assert!(r.entries.iter().zip(1..).all(|(e, i)| e.index == i), "batches must be applied in submission order");
}

#[test]
fn acknowledgements_increase_and_cover_every_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (gc, acks) = GroupCommit::with_channel(Store::open(dir.path()).expect("open")).expect("spawn");
    let producer = std::thread::scope(|s| {
        let h = s.spawn(|| {
            for id in 1..=500 {
                gc.submit(one_entry(id)).expect("submit");
            }
        });
        let mut last = PersistId(0);
        while last < PersistId(500) {
            let ack = acks.recv_timeout(Duration::from_secs(30)).expect("ack").expect("ok");
            assert!(ack > last, "acks must increase: {ack:?} after {last:?}");
            last = ack;
        }
        h.join()
    });
    producer.expect("producer");
    let store = gc.shutdown().expect("shutdown");
    assert_eq!(store.last_index(), Some(500));
}

#[test]
fn shutdown_writes_everything_queued() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let gc = GroupCommit::spawn(Store::open(dir.path()).expect("open"), |_| {}).expect("spawn");
        for id in 1..=300 {
            gc.submit(one_entry(id)).expect("submit");
        }
        let mut store = gc.shutdown().expect("shutdown");
        assert_eq!(store.recover().expect("recover").entries.len(), 300);
    }
    // Dropping the writer also drains it.
    {
        let gc = GroupCommit::spawn(Store::open(dir.path()).expect("open"), |_| {}).expect("spawn");
        for id in 301..=400 {
            gc.submit(one_entry(id)).expect("submit");
        }
    }
    let mut store = Store::open(dir.path()).expect("reopen");
    assert_eq!(store.recover().expect("recover").entries.len(), 400);
}

#[test]
fn a_failed_write_stops_the_writer_visibly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (gc, acks) = GroupCommit::with_channel(Store::open(dir.path()).expect("open")).expect("spawn");
    gc.submit(one_entry(1)).expect("submit");
    assert_eq!(acks.recv_timeout(Duration::from_secs(30)).expect("ack").expect("ok"), PersistId(1));
    // Index 5 after 1 leaves a gap: the write fails and the writer must stop.
    gc.submit(one_entry(5)).expect("submit");
    let err = acks.recv_timeout(Duration::from_secs(30)).expect("ack").expect_err("the failure must be reported");
    assert!(matches!(&err, StorageError::Io(m) if m.contains("gap")), "{err}");
    // Later submissions fail with the cause (once the writer has exited).
    let mut refused = None;
    for id in 6..1_000 {
        if let Err(e) = gc.submit(one_entry(id)) {
            refused = Some(e);
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let refused = refused.expect("submit must fail after the writer stopped");
    assert!(matches!(&refused, StorageError::Io(m) if m.contains("gap")), "{refused}");
    assert_eq!(gc.durable(), Some(PersistId(1)));
    let err = gc.shutdown().expect_err("shutdown reports the failure");
    assert!(matches!(&err, StorageError::Io(m) if m.contains("gap")), "{err}");
    let mut store = Store::open(dir.path()).expect("reopen");
    assert_eq!(store.recover().expect("recover").entries, vec![entry(1, 1)], "the failed batch wrote nothing");
}
