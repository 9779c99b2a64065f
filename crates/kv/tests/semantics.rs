//! The database's semantics through the `StateMachine` interface, as the driver uses it.

use std::collections::BTreeMap;

use ballot_core::service::{Consistency, Header, Rejection, Route, StateMachine};
use ballot_kv::{Compare, KeyValue, KvRequest, KvResponse, KvStore, MAX_KEY_SIZE, MAX_RANGE_LIMIT, MAX_VALUE_SIZE};
use bytes::Bytes;
use proptest::prelude::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn put(k: &str, v: &str) -> KvRequest {
    KvRequest::Put { key: b(k), value: b(v), prev_kv: false }
}

fn get(db: &KvStore, k: &str) -> Option<KeyValue> {
    match db.query(&KvRequest::Get { key: b(k), consistency: Consistency::Linearizable }) {
        KvResponse::Get { kv, .. } => kv,
        other => panic!("unexpected {other:?}"),
    }
}

/// Applies `requests` at indexes 1, 2, … and returns the replies.
fn run(db: &mut KvStore, requests: &[KvRequest]) -> Vec<KvResponse> {
    let first = db.revision() + 1;
    requests.iter().enumerate().map(|(i, r)| db.apply(first + i as u64, r.clone()).0).collect()
}

fn range(db: &KvStore, prefix: &str, after: Option<&str>, limit: u32) -> (Vec<String>, bool, u64) {
    let request =
        KvRequest::Range { prefix: b(prefix), after: after.map(b), limit, consistency: Consistency::Serializable };
    db.validate(&request).expect("valid range");
    match db.query(&request) {
        KvResponse::Range { kvs, more, count, .. } => {
            (kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect(), more, count)
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn writes_bump_the_revision_and_versions() {
    let mut db = KvStore::new();
    let replies = run(
        &mut db,
        &[
            put("a", "1"),
            put("b", "1"),
            KvRequest::Put { key: b("a"), value: b("2"), prev_kv: true },
            KvRequest::Delete { key: b("zz"), prev_kv: true },
            KvRequest::Delete { key: b("b"), prev_kv: true },
        ],
    );
    assert_eq!(replies[0], KvResponse::Put { header: Header { revision: 1 }, prev_kv: None });
    let KvResponse::Put { header, prev_kv: Some(prev) } = &replies[2] else { panic!("{:?}", replies[2]) };
    assert_eq!((header.revision, &prev.value[..], prev.version, prev.mod_revision), (3, &b"1"[..], 1, 1));
    assert_eq!(
        replies[3],
        KvResponse::Delete { header: Header { revision: 3 }, deleted: false, prev_kv: None },
        "a missing key's delete changes nothing"
    );
    let KvResponse::Delete { header, deleted: true, prev_kv: Some(prev) } = &replies[4] else { panic!() };
    assert_eq!((header.revision, &prev.key[..]), (4, &b"b"[..]));
    let a = get(&db, "a").expect("a exists");
    assert_eq!((a.create_revision, a.mod_revision, a.version), (1, 3, 2));
    assert_eq!(get(&db, "b"), None);
    // A put without prev_kv does not return it even when the key existed.
    let (reply, _) = db.apply(9, put("a", "3"));
    assert_eq!(reply, KvResponse::Put { header: Header { revision: 5 }, prev_kv: None });
}

#[test]
fn compare_and_swap_cases() {
    let mut db = KvStore::new();
    let cas = |k: &str, compare: Compare, v: &str| KvRequest::CompareAndSwap { key: b(k), compare, value: b(v) };
    let ok =
        |header: u64| KvResponse::CompareAndSwap { header: Header { revision: header }, succeeded: true, kv: None };

    // Create-if-absent: succeeds once.
    assert_eq!(db.apply(1, cas("k", Compare::Absent, "v1")).0, ok(1));
    let current = get(&db, "k");
    assert_eq!(
        db.apply(2, cas("k", Compare::Absent, "v2")).0,
        KvResponse::CompareAndSwap { header: Header { revision: 1 }, succeeded: false, kv: current.clone() },
        "fails, reports the current value and does not bump the revision"
    );
    // Value equality.
    assert!(matches!(
        db.apply(3, cas("k", Compare::Value(b("nope")), "x")).0,
        KvResponse::CompareAndSwap { succeeded: false, .. }
    ));
    assert_eq!(db.apply(4, cas("k", Compare::Value(b("v1")), "v2")).0, ok(2));
    // Mod revision: stale fails, current succeeds.
    assert!(matches!(
        db.apply(5, cas("k", Compare::ModRevision(1), "x")).0,
        KvResponse::CompareAndSwap { succeeded: false, .. }
    ));
    assert_eq!(db.apply(6, cas("k", Compare::ModRevision(2), "v3")).0, ok(3));
    // Version.
    assert!(matches!(
        db.apply(7, cas("k", Compare::Version(2), "x")).0,
        KvResponse::CompareAndSwap { succeeded: false, .. }
    ));
    assert_eq!(db.apply(8, cas("k", Compare::Version(3), "v4")).0, ok(4));
    // Version 0 and mod revision 0 mean absent; a missing key equals no value.
    assert_eq!(db.apply(9, cas("new", Compare::Version(0), "n")).0, ok(5));
    assert_eq!(db.apply(10, cas("new2", Compare::ModRevision(0), "n")).0, ok(6));
    assert_eq!(
        db.apply(11, cas("missing", Compare::Value(Bytes::new()), "n")).0,
        KvResponse::CompareAndSwap { header: Header { revision: 6 }, succeeded: false, kv: None }
    );
    let k = get(&db, "k").expect("exists");
    assert_eq!((&k.value[..], k.version, k.mod_revision, k.create_revision), (&b"v4"[..], 4, 4, 1));
}

#[test]
fn compare_and_delete_releases_only_what_it_owns() {
    let mut db = KvStore::new();
    db.apply(1, put("lock", "me"));
    let cad = |v: &str| KvRequest::CompareAndDelete { key: b("lock"), compare: Compare::Value(b(v)) };
    let (reply, _) = db.apply(2, cad("you"));
    assert!(matches!(reply, KvResponse::CompareAndDelete { succeeded: false, kv: Some(_), .. }));
    assert_eq!(db.revision(), 1);
    let (reply, _) = db.apply(3, cad("me"));
    assert_eq!(reply, KvResponse::CompareAndDelete { header: Header { revision: 2 }, succeeded: true, kv: None });
    assert_eq!(get(&db, "lock"), None);
}

#[test]
fn range_orders_pages_and_counts() {
    let mut db = KvStore::new();
    let keys = ["app/b", "app/a", "app/c", "apz", "ap", "other"];
    run(&mut db, &keys.iter().map(|k| put(k, "v")).collect::<Vec<_>>());
    assert_eq!(range(&db, "app/", None, 0), (vec!["app/a".into(), "app/b".into(), "app/c".into()], false, 3));
    assert_eq!(range(&db, "app/", None, 2), (vec!["app/a".into(), "app/b".into()], true, 3));
    assert_eq!(range(&db, "app/", Some("app/b"), 2), (vec!["app/c".into()], false, 3));
    assert_eq!(range(&db, "ap", None, 0).0, ["ap", "app/a", "app/b", "app/c", "apz"]);
    assert_eq!(range(&db, "", None, 0).2, 6, "an empty prefix ranges over everything");
    assert_eq!(range(&db, "zzz", None, 0), (vec![], false, 0));
    let too_many = KvRequest::Range {
        prefix: b(""),
        after: None,
        limit: MAX_RANGE_LIMIT + 1,
        consistency: Consistency::Linearizable,
    };
    assert!(matches!(db.validate(&too_many), Err(Rejection::Invalid(_))));
}

#[test]
fn a_zero_limit_means_the_maximum() {
    let mut db = KvStore::new();
    let n = MAX_RANGE_LIMIT as usize + 5;
    run(&mut db, &(0..n).map(|i| put(&format!("k{i:06}"), "")).collect::<Vec<_>>());
    let (keys, more, count) = range(&db, "k", None, 0);
    assert_eq!((keys.len(), more, count), (MAX_RANGE_LIMIT as usize, true, n as u64));
    let (rest, more, _) = range(&db, "k", keys.last().map(String::as_str), 0);
    assert_eq!((rest.len(), more), (5, false));
}

#[test]
fn delete_prefix_is_one_revision() {
    let mut db = KvStore::new();
    run(&mut db, &[put("x/1", "a"), put("x/2", "b"), put("y", "c")]);
    let (reply, _) = db.apply(4, KvRequest::DeletePrefix { prefix: b("x/") });
    assert_eq!(reply, KvResponse::DeletePrefix { header: Header { revision: 4 }, deleted: 2 });
    let (reply, _) = db.apply(5, KvRequest::DeletePrefix { prefix: b("x/") });
    assert_eq!(reply, KvResponse::DeletePrefix { header: Header { revision: 4 }, deleted: 0 });
    assert_eq!(range(&db, "", None, 0).0, ["y"]);
}

#[test]
fn limits_and_malformed_requests_are_rejected() {
    let db = KvStore::new();
    let big_key = Bytes::from(vec![b'k'; MAX_KEY_SIZE + 1]);
    let big_value = Bytes::from(vec![0; MAX_VALUE_SIZE + 1]);
    let ok_key = Bytes::from(vec![b'k'; MAX_KEY_SIZE]);
    let ok_value = Bytes::from(vec![0; MAX_VALUE_SIZE]);
    assert_eq!(db.validate(&KvRequest::Put { key: ok_key.clone(), value: ok_value, prev_kv: false }), Ok(()));
    assert_eq!(
        db.validate(&KvRequest::Put { key: big_key.clone(), value: b("v"), prev_kv: false }),
        Err(Rejection::TooLarge { what: "key".into(), size: MAX_KEY_SIZE + 1, max: MAX_KEY_SIZE })
    );
    assert_eq!(
        db.validate(&KvRequest::Put { key: ok_key, value: big_value.clone(), prev_kv: false }),
        Err(Rejection::TooLarge { what: "value".into(), size: MAX_VALUE_SIZE + 1, max: MAX_VALUE_SIZE })
    );
    assert!(matches!(db.validate(&put("", "v")), Err(Rejection::Invalid(_))));
    assert!(matches!(
        db.validate(&KvRequest::Get { key: Bytes::new(), consistency: Consistency::Linearizable }),
        Err(Rejection::Invalid(_))
    ));
    assert!(matches!(
        db.validate(&KvRequest::Delete { key: big_key.clone(), prev_kv: false }),
        Err(Rejection::TooLarge { .. })
    ));
    assert!(matches!(
        db.validate(&KvRequest::CompareAndSwap { key: b("k"), compare: Compare::Value(big_value), value: b("") }),
        Err(Rejection::TooLarge { .. })
    ));
    assert!(matches!(db.validate(&KvRequest::DeletePrefix { prefix: Bytes::new() }), Err(Rejection::Invalid(_))));
    assert!(matches!(
        db.validate(&KvRequest::Range {
            prefix: big_key,
            after: None,
            limit: 1,
            consistency: Consistency::Linearizable
        }),
        Err(Rejection::TooLarge { .. })
    ));
}

#[test]
fn invalid_writes_reaching_apply_change_nothing() {
    let mut db = KvStore::new();
    let (reply, events) = db.apply(1, put("", "v"));
    assert!(matches!(reply, KvResponse::Rejected(Rejection::Invalid(_))));
    assert!(events.is_empty());
    assert_eq!((db.revision(), db.len()), (0, 0));
}

#[test]
fn routes_reads_by_consistency() {
    let db = KvStore::new();
    let get = |consistency| KvRequest::Get { key: b("k"), consistency };
    assert_eq!(KvStore::route(&get(Consistency::default())), Route::Read(Consistency::Linearizable));
    assert_eq!(KvStore::route(&get(Consistency::Serializable)), Route::Read(Consistency::Serializable));
    assert_eq!(KvStore::route(&put("k", "v")), Route::Write);
    assert_eq!(KvStore::route(&KvRequest::DeletePrefix { prefix: b("k") }), Route::Write);
    assert!(matches!(db.query(&put("k", "v")), KvResponse::Rejected(Rejection::Invalid(_))));
    assert!(db.watch_start(&get(Consistency::Linearizable)).is_err(), "the database has no watches");
    assert_eq!(KvStore::operation(&put("k", "v")), "put");
}

#[test]
fn requests_and_responses_roundtrip_through_postcard() {
    let requests = [
        KvRequest::Put { key: b("k"), value: Bytes::from(vec![0, 255, 7]), prev_kv: true },
        KvRequest::Range { prefix: b("p"), after: Some(b("p1")), limit: 10, consistency: Consistency::Serializable },
        KvRequest::CompareAndSwap { key: b("k"), compare: Compare::ModRevision(9), value: b("v") },
    ];
    for r in requests {
        let bytes = postcard::to_stdvec(&r).expect("encodes");
        assert_eq!(postcard::from_bytes::<KvRequest>(&bytes).expect("decodes"), r);
    }
    let put = KvRequest::Put { key: b("key"), value: b("value"), prev_kv: false };
    // Tag, then length-prefixed raw bytes: no per-byte overhead.
    assert_eq!(postcard::to_stdvec(&put).expect("encodes").len(), 1 + 1 + 3 + 1 + 5 + 1);
    let mut db = KvStore::new();
    let (reply, _) = db.apply(1, put);
    let bytes = postcard::to_stdvec(&reply).expect("encodes");
    assert_eq!(postcard::from_bytes::<KvResponse>(&bytes).expect("decodes"), reply);
}

#[test]
fn restore_refuses_garbage() {
    let mut db = KvStore::new();
    db.apply(1, put("k", "v"));
    let before = db.snapshot();
    assert!(db.restore(b"").is_err());
    assert!(db.restore(&[1, 0xff, 0xff, 0xff]).is_err());
    assert_eq!(db.snapshot(), before, "a failed restore leaves the state alone");
}

// ---------------------------------------------------------------------------------------
// Properties.

/// A deliberately naive model of the store.
#[derive(Default)]
struct Model {
    revision: u64,
    keys: BTreeMap<Vec<u8>, KeyValue>,
}

impl Model {
    fn expect(&mut self, request: &KvRequest) -> KvResponse {
        let header = |m: &Model| Header { revision: m.revision };
        match request {
            KvRequest::Put { key, value, prev_kv } => {
                let prev = self.keys.get(&key[..]).cloned();
                self.set(key, value);
                KvResponse::Put { header: header(self), prev_kv: prev.filter(|_| *prev_kv) }
            }
            KvRequest::Delete { key, prev_kv } => {
                let prev = self.keys.remove(&key[..]);
                if prev.is_some() {
                    self.revision += 1;
                }
                KvResponse::Delete { header: header(self), deleted: prev.is_some(), prev_kv: prev.filter(|_| *prev_kv) }
            }
            KvRequest::CompareAndSwap { key, compare, value } => {
                if self.holds(key, compare) {
                    self.set(key, value);
                    KvResponse::CompareAndSwap { header: header(self), succeeded: true, kv: None }
                } else {
                    KvResponse::CompareAndSwap {
                        header: header(self),
                        succeeded: false,
                        kv: self.keys.get(&key[..]).cloned(),
                    }
                }
            }
            KvRequest::CompareAndDelete { key, compare } => {
                if self.holds(key, compare) {
                    if self.keys.remove(&key[..]).is_some() {
                        self.revision += 1;
                    }
                    KvResponse::CompareAndDelete { header: header(self), succeeded: true, kv: None }
                } else {
                    KvResponse::CompareAndDelete {
                        header: header(self),
                        succeeded: false,
                        kv: self.keys.get(&key[..]).cloned(),
                    }
                }
            }
            KvRequest::DeletePrefix { prefix } => {
                let before = self.keys.len();
                self.keys.retain(|k, _| !k.starts_with(prefix));
                let deleted = (before - self.keys.len()) as u64;
                if deleted > 0 {
                    self.revision += 1;
                }
                KvResponse::DeletePrefix { header: header(self), deleted }
            }
            KvRequest::Get { key, .. } => {
                KvResponse::Get { header: header(self), kv: self.keys.get(&key[..]).cloned() }
            }
            KvRequest::Range { prefix, after, limit, .. } => {
                let all: Vec<&KeyValue> = self.keys.values().filter(|kv| kv.key.starts_with(prefix)).collect();
                let rest: Vec<KeyValue> = all
                    .iter()
                    .filter(|kv| after.as_ref().is_none_or(|a| kv.key > *a))
                    .map(|kv| (*kv).clone())
                    .collect();
                let limit = if *limit == 0 { MAX_RANGE_LIMIT as usize } else { *limit as usize };
                let more = rest.len() > limit;
                let kvs = rest.into_iter().take(limit).collect();
                KvResponse::Range { header: header(self), kvs, more, count: all.len() as u64 }
            }
        }
    }

    fn set(&mut self, key: &Bytes, value: &Bytes) {
        self.revision += 1;
        let revision = self.revision;
        let old = self.keys.get(&key[..]);
        let kv = KeyValue {
            key: key.clone(),
            value: value.clone(),
            create_revision: old.map_or(revision, |o| o.create_revision),
            mod_revision: revision,
            version: old.map_or(1, |o| o.version + 1),
        };
        self.keys.insert(key.to_vec(), kv);
    }

    fn holds(&self, key: &Bytes, compare: &Compare) -> bool {
        let kv = self.keys.get(&key[..]);
        match compare {
            Compare::Value(v) => kv.is_some_and(|kv| kv.value == *v),
            Compare::ModRevision(r) => kv.map_or(0, |kv| kv.mod_revision) == *r,
            Compare::Version(v) => kv.map_or(0, |kv| kv.version) == *v,
            Compare::Absent => kv.is_none(),
        }
    }
}

fn key() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(prop::sample::select(vec![b'a', b'b', 0x00, 0xff]), 1..4).prop_map(Bytes::from)
}

fn prefix() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(prop::sample::select(vec![b'a', b'b', 0x00, 0xff]), 0..3).prop_map(Bytes::from)
}

fn value() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(prop::sample::select(vec![b'x', b'y']), 0..2).prop_map(Bytes::from)
}

fn compare() -> impl Strategy<Value = Compare> {
    prop_oneof![
        value().prop_map(Compare::Value),
        (0u64..6).prop_map(Compare::ModRevision),
        (0u64..4).prop_map(Compare::Version),
        Just(Compare::Absent),
    ]
}

fn request() -> impl Strategy<Value = KvRequest> {
    let consistency = prop_oneof![Just(Consistency::Linearizable), Just(Consistency::Serializable)];
    prop_oneof![
        4 => (key(), value(), any::<bool>()).prop_map(|(key, value, prev_kv)| KvRequest::Put { key, value, prev_kv }),
        2 => (key(), any::<bool>()).prop_map(|(key, prev_kv)| KvRequest::Delete { key, prev_kv }),
        2 => (key(), compare(), value()).prop_map(|(key, compare, value)| KvRequest::CompareAndSwap { key, compare, value }),
        1 => (key(), compare()).prop_map(|(key, compare)| KvRequest::CompareAndDelete { key, compare }),
        1 => key().prop_map(|prefix| KvRequest::DeletePrefix { prefix }),
        1 => (key(), consistency.clone()).prop_map(|(key, consistency)| KvRequest::Get { key, consistency }),
        2 => (prefix(), prop::option::of(prefix()), 0u32..4, consistency)
            .prop_map(|(prefix, after, limit, consistency)| KvRequest::Range { prefix, after, limit, consistency }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every reply equals what the naive model predicts.
    #[test]
    fn matches_the_model(requests in prop::collection::vec(request(), 0..60)) {
        let mut db = KvStore::new();
        let mut model = Model::default();
        for (i, r) in requests.iter().enumerate() {
            prop_assert_eq!(db.validate(r), Ok(()));
            let expected = model.expect(r);
            let got = match KvStore::route(r) {
                Route::Write => db.apply(i as u64 + 1, r.clone()).0,
                _ => db.query(r),
            };
            prop_assert_eq!(got, expected, "request {} {:?}", i, r);
            prop_assert_eq!(db.revision(), model.revision);
        }
    }

    /// Two replicas applying the same log agree; a replica restored from a snapshot taken
    /// anywhere in the log continues exactly like one that never stopped.
    #[test]
    fn replay_and_snapshot_are_deterministic(
        requests in prop::collection::vec(request(), 0..60),
        cut in any::<prop::sample::Index>(),
    ) {
        let cut = cut.index(requests.len() + 1);
        let (mut a, mut b) = (KvStore::new(), KvStore::new());
        let mut replies_a = Vec::new();
        let mut restored = None;
        for (i, r) in requests.iter().enumerate() {
            if i == cut {
                let mut c = KvStore::new();
                c.restore(&a.snapshot()).expect("restores");
                restored = Some(c);
            }
            replies_a.push(a.apply(i as u64 + 1, r.clone()).0);
            prop_assert_eq!(&b.apply(i as u64 + 1, r.clone()).0, replies_a.last().expect("pushed"));
        }
        let mut c = restored.unwrap_or_else(|| {
            let mut c = KvStore::new();
            c.restore(&a.snapshot()).expect("restores");
            c
        });
        for (i, r) in requests.iter().enumerate().skip(cut) {
            prop_assert_eq!(&c.apply(i as u64 + 1, r.clone()).0, &replies_a[i]);
        }
        prop_assert_eq!(a.snapshot(), b.snapshot());
        prop_assert_eq!(a.snapshot(), c.snapshot());
    }

    /// Paging with `after` visits every matching key once, in order.
    #[test]
    fn pages_cover_the_prefix(keys in prop::collection::btree_set(key(), 0..40), p in prefix(), limit in 1u32..5) {
        let mut db = KvStore::new();
        for (i, k) in keys.iter().enumerate() {
            db.apply(i as u64 + 1, KvRequest::Put { key: k.clone(), value: Bytes::new(), prev_kv: false });
        }
        let expected: Vec<Bytes> = keys.iter().filter(|k| k.starts_with(&p)).cloned().collect();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let r = KvRequest::Range { prefix: p.clone(), after: after.clone(), limit, consistency: Consistency::Linearizable };
            let KvResponse::Range { kvs, more, count, .. } = db.query(&r) else { panic!("not a range reply") };
            prop_assert_eq!(count, expected.len() as u64);
            prop_assert!(kvs.len() <= limit as usize);
            seen.extend(kvs.iter().map(|kv| kv.key.clone()));
            after = kvs.last().map(|kv| kv.key.clone());
            if !more { break; }
            prop_assert!(!kvs.is_empty(), "a page with more keys makes progress");
        }
        prop_assert_eq!(seen, expected);
    }

    /// Arbitrary bytes never panic a restore, and never half-restore.
    #[test]
    fn restore_never_panics(data in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut db = KvStore::new();
        db.apply(1, put("k", "v"));
        let before = db.snapshot();
        if db.restore(&data).is_err() {
            prop_assert_eq!(db.snapshot(), before);
        }
    }
}
