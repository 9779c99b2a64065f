//! Conformance suites every [`LogStore`] and [`Transport`] implementation must pass.
//!
//! Enabled by the `testkit` feature. An implementation's tests call
//! [`storage_conformance`] with a function that (re)opens its store, and
//! [`transport_conformance`] with a [`TransportHarness`]. Each check panics with a
//! message naming the property it found broken.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt as _;
use serde::{Deserialize, Serialize};

use crate::{
    Incoming, LogEntry, LogStore, Membership, NodeId, Persist, PersistId, Recovered, SendError, Snapshot, SnapshotMeta,
    Transport,
};

/// A log entry type for conformance tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestEntry {
    /// Index.
    pub index: u64,
    /// Term.
    pub term: u64,
    /// Payload.
    pub data: Bytes,
}

impl LogEntry for TestEntry {
    fn index(&self) -> u64 {
        self.index
    }
}

/// A hard-state type for conformance tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestHardState {
    /// Term.
    pub term: u64,
    /// Vote.
    pub vote: Option<NodeId>,
}

/// `TestEntry { index, term, data: "e{index}t{term}" }`.
#[must_use]
pub fn entry(index: u64, term: u64) -> TestEntry {
    TestEntry { index, term, data: Bytes::from(format!("e{index}t{term}")) }
}

fn batch(id: u64) -> Persist<TestEntry, TestHardState> {
    Persist::new(PersistId(id))
}

fn indexes(r: &Recovered<TestEntry, TestHardState>) -> Vec<(u64, u64)> {
    r.entries.iter().map(|e| (e.index, e.term)).collect()
}

/// Runs the storage conformance suite. `open` must return a store over the *same*
/// durable state each time it is called (the previous store is dropped first), which is
/// how the suite checks recovery after restart. It starts from an empty store and
/// creates a fresh one per check by calling `fresh`.
///
/// # Panics
/// When the store breaks a property of [`LogStore`].
pub fn storage_conformance<S, Fresh, Open>(mut fresh: Fresh)
where
    S: LogStore<TestEntry, TestHardState>,
    Fresh: FnMut() -> Open,
    Open: FnMut() -> S,
{
    empty_store_recovers_nothing(fresh());
    appends_survive_reopen(fresh());
    truncation_drops_suffix_then_appends(fresh());
    compaction_keeps_snapshot_and_suffix(fresh());
    batches_apply_in_order(fresh());
    hard_state_is_replaced(fresh());
    large_entries_and_snapshot_round_trip(fresh());
}

fn empty_store_recovers_nothing<S: LogStore<TestEntry, TestHardState>>(mut open: impl FnMut() -> S) {
    let r = open().recover().expect("recover empty store");
    assert_eq!(r, Recovered::default(), "an empty store must recover nothing");
}

fn appends_survive_reopen<S: LogStore<TestEntry, TestHardState>>(mut open: impl FnMut() -> S) {
    {
        let mut s = open();
        let mut b = batch(1);
        b.entries = (1..=100).map(|i| entry(i, 1)).collect();
        b.hard_state = Some(TestHardState { term: 1, vote: Some(NodeId(2)) });
        s.write(&[b]).expect("write");
    }
    let r = open().recover().expect("recover");
    assert_eq!(r.entries.len(), 100, "every appended entry must survive reopening");
    assert_eq!(r.entries[41], entry(42, 1), "entries come back intact and in index order");
    assert_eq!(r.hard_state, Some(TestHardState { term: 1, vote: Some(NodeId(2)) }));
}

fn truncation_drops_suffix_then_appends<S: LogStore<TestEntry, TestHardState>>(mut open: impl FnMut() -> S) {
    {
        let mut s = open();
        let mut b = batch(1);
        b.entries = (1..=10).map(|i| entry(i, 1)).collect();
        s.write(&[b]).expect("write");
        let mut b = batch(2);
        b.truncate_from = Some(6);
        b.entries = vec![entry(6, 2), entry(7, 2)];
        s.write(&[b]).expect("write");
    }
    let r = open().recover().expect("recover");
    let want: Vec<(u64, u64)> = (1..=5).map(|i| (i, 1)).chain([(6, 2), (7, 2)]).collect();
    assert_eq!(indexes(&r), want, "truncate_from must delete the conflicting suffix before the new entries");
}

fn compaction_keeps_snapshot_and_suffix<S: LogStore<TestEntry, TestHardState>>(mut open: impl FnMut() -> S) {
    let snap = Snapshot {
        meta: SnapshotMeta { index: 50, term: 3, membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]) },
        data: Bytes::from_static(b"service state at 50"),
    };
    {
        let mut s = open();
        let mut b = batch(1);
        b.entries = (1..=80).map(|i| entry(i, 3)).collect();
        s.write(&[b]).expect("write");
        let mut b = batch(2);
        b.snapshot = Some(Box::new(snap.clone()));
        b.compact_to = Some(50);
        s.write(&[b]).expect("write");
    }
    let r = open().recover().expect("recover");
    assert_eq!(r.snapshot.as_ref(), Some(&snap), "the snapshot must survive reopening");
    assert_eq!(r.entries.first().map(|e| e.index), Some(51), "entries up to compact_to must be gone");
    assert_eq!(r.entries.last().map(|e| e.index), Some(80), "entries after compact_to must stay");
    // Installing a snapshot beyond the log clears it entirely.
    {
        let mut s = open();
        let mut b = batch(1);
        b.snapshot =
            Some(Box::new(Snapshot { meta: SnapshotMeta { index: 200, ..snap.meta.clone() }, data: Bytes::new() }));
        b.truncate_from = Some(201);
        b.compact_to = Some(200);
        s.write(&[b]).expect("write");
    }
    let r = open().recover().expect("recover");
    assert!(r.entries.is_empty(), "a snapshot past the log's end leaves no entries");
    assert_eq!(r.snapshot.map(|s| s.meta.index), Some(200));
}

fn batches_apply_in_order<S: LogStore<TestEntry, TestHardState>>(mut open: impl FnMut() -> S) {
    {
        let mut s = open();
        let mut a = batch(1);
        a.entries = vec![entry(1, 1), entry(2, 1), entry(3, 1)];
        let mut b = batch(2);
        b.truncate_from = Some(2);
        b.entries = vec![entry(2, 2)];
        let mut c = batch(3);
        c.hard_state = Some(TestHardState { term: 2, vote: None });
        s.write(&[a, b, c]).expect("group write");
    }
    let r = open().recover().expect("recover");
    assert_eq!(indexes(&r), vec![(1, 1), (2, 2)], "batches in one write must apply in order");
    assert_eq!(r.hard_state.map(|h| h.term), Some(2));
}

fn hard_state_is_replaced<S: LogStore<TestEntry, TestHardState>>(mut open: impl FnMut() -> S) {
    {
        let mut s = open();
        for term in 1..=5 {
            let mut b = batch(term);
            b.hard_state = Some(TestHardState { term, vote: Some(NodeId(term)) });
            s.write(&[b]).expect("write");
        }
        // A batch without hard state leaves it unchanged.
        s.write(&[batch(6)]).expect("write empty batch");
    }
    let r = open().recover().expect("recover");
    assert_eq!(r.hard_state, Some(TestHardState { term: 5, vote: Some(NodeId(5)) }));
}

fn large_entries_and_snapshot_round_trip<S: LogStore<TestEntry, TestHardState>>(mut open: impl FnMut() -> S) {
    let big = Bytes::from((0..3_000_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    {
        let mut s = open();
        let mut b = batch(1);
        b.entries = vec![TestEntry { index: 1, term: 1, data: big.slice(..1_000_000) }];
        b.snapshot = Some(Box::new(Snapshot { meta: SnapshotMeta::default(), data: big.clone() }));
        s.write(&[b]).expect("write");
    }
    let r = open().recover().expect("recover");
    assert_eq!(r.entries[0].data, big.slice(..1_000_000), "a 1 MB entry must round-trip");
    assert_eq!(r.snapshot.map(|s| s.data), Some(big), "a 3 MB snapshot must round-trip");
}

/// A boxed future, as harnesses return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the transport suite creates, restarts and waits on an implementation.
pub trait TransportHarness: Send {
    /// The transport under test.
    type T: Transport;
    /// The node ids the harness can start; at least three, all peers of each other.
    fn ids(&self) -> Vec<NodeId>;
    /// Starts (or restarts, replacing the previous incarnation) node `id`.
    fn start(&mut self, id: NodeId) -> BoxFuture<'_, Self::T>;
    /// Sleeps on the harness's runtime.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
}

async fn recv_within<H: TransportHarness>(h: &H, t: &H::T, d: Duration) -> Option<Incoming> {
    futures::select_biased! {
        r = t.recv().fuse() => r.ok(),
        () = h.sleep(d).fuse() => None,
    }
}

/// Sends, retrying while the queue is full or the peer is still connecting.
async fn send_retrying<H: TransportHarness>(h: &H, t: &H::T, to: NodeId, frame: Bytes) {
    for _ in 0..2_000 {
        match t.send(to, frame.clone()) {
            Ok(()) => return,
            Err(SendError::QueueFull(_)) => h.sleep(Duration::from_millis(1)).await,
            Err(e) => panic!("send to {to} failed: {e}"),
        }
    }
    panic!("send queue to {to} stayed full for 2 s");
}

/// Runs the transport conformance suite.
///
/// # Panics
/// When the transport breaks a property of [`Transport`].
pub async fn transport_conformance<H: TransportHarness>(mut h: H) {
    let ids = h.ids();
    assert!(ids.len() >= 3, "the harness must offer at least three nodes");
    let (a_id, b_id, c_id) = (ids[0], ids[1], ids[2]);
    let a = h.start(a_id).await;
    let mut b = h.start(b_id).await;
    let c = h.start(c_id).await;
    let wait = Duration::from_secs(10);

    // Delivery with the authenticated sender.
    send_retrying(&h, &a, b_id, Bytes::from_static(b"hello")).await;
    let got = recv_within(&h, &b, wait).await.expect("a frame sent to a live peer must arrive");
    assert_eq!((got.from, &got.frame[..]), (a_id, &b"hello"[..]), "sender id and payload must be preserved");

    // Per-sender order from two concurrent senders, no duplicates.
    let n = 500u32;
    let senders = async {
        for i in 0..n {
            send_retrying(&h, &a, b_id, Bytes::from(format!("a{i}"))).await;
            send_retrying(&h, &c, b_id, Bytes::from(format!("c{i}"))).await;
        }
    };
    let receiver = async {
        let (mut next_a, mut next_c) = (0u32, 0u32);
        while next_a < n || next_c < n {
            let got =
                recv_within(&h, &b, wait).await.unwrap_or_else(|| panic!("lost frames: a at {next_a}, c at {next_c}"));
            let s = String::from_utf8(got.frame.to_vec()).expect("frame intact");
            let (who, next) = if got.from == a_id { ("a", &mut next_a) } else { ("c", &mut next_c) };
            assert_eq!(s, format!("{who}{next}"), "frames from one sender must arrive in order, once");
            *next += 1;
        }
    };
    futures::join!(senders, receiver);

    // Both directions.
    send_retrying(&h, &b, a_id, Bytes::from_static(b"back")).await;
    let got = recv_within(&h, &a, wait).await.expect("reply must arrive");
    assert_eq!((got.from, &got.frame[..]), (b_id, &b"back"[..]));

    // Unknown peers and oversized frames are refused, not silently dropped.
    assert_eq!(a.send(NodeId(9_999), Bytes::new()), Err(SendError::UnknownPeer(NodeId(9_999))));
    let max = a.max_frame_size();
    assert!(
        matches!(a.send(b_id, Bytes::from(vec![0u8; max + 1])), Err(SendError::TooLarge { .. })),
        "a frame over max_frame_size must be refused"
    );
    let largest = Bytes::from((0..max).map(|i| (i % 253) as u8).collect::<Vec<u8>>());
    send_retrying(&h, &a, b_id, largest.clone()).await;
    let got = recv_within(&h, &b, wait).await.expect("a frame of exactly max_frame_size must arrive");
    assert_eq!(got.frame, largest, "large frames must arrive intact");

    // A restarted peer receives again.
    b.close().await;
    drop(b);
    b = h.start(b_id).await;
    let mut delivered = false;
    for i in 0..200 {
        let _ = a.send(b_id, Bytes::from(format!("after-restart-{i}")));
        if let Some(got) = recv_within(&h, &b, Duration::from_millis(100)).await {
            assert_eq!(got.from, a_id);
            delivered = true;
            break;
        }
    }
    assert!(delivered, "frames must reach a peer's new incarnation after it restarts");

    // Close ends recv.
    a.close().await;
    assert!(a.recv().await.is_err(), "recv after close must return Closed");
    c.close().await;
    b.close().await;
}
