//! The configuration service's semantics through the `StateMachine` interface.

use ballot_config::{
    ConfigEntry, ConfigEvent, ConfigRequest, ConfigResponse, ConfigService, EventKind, HistoryLimit, MAX_KEY_SIZE,
    MAX_LIST_LIMIT, MAX_NAMESPACE_SIZE, MAX_VALUE_SIZE,
};
use ballot_core::service::{Consistency, Header, Rejection, Route, StateMachine};
use bytes::Bytes;
use proptest::prelude::*;

fn set(ns: &str, key: &str, value: &str) -> ConfigRequest {
    ConfigRequest::Set { namespace: ns.into(), key: key.into(), value: Bytes::copy_from_slice(value.as_bytes()) }
}

fn del(ns: &str, key: &str) -> ConfigRequest {
    ConfigRequest::Delete { namespace: ns.into(), key: key.into() }
}

fn watch(ns: &str, key_or_prefix: &str, prefix: bool, start_revision: u64) -> ConfigRequest {
    ConfigRequest::Watch { namespace: ns.into(), key_or_prefix: key_or_prefix.into(), prefix, start_revision }
}

fn get(svc: &ConfigService, ns: &str, key: &str) -> Option<ConfigEntry> {
    let request = ConfigRequest::Get { namespace: ns.into(), key: key.into(), consistency: Consistency::Linearizable };
    match svc.query(&request) {
        ConfigResponse::Get { entry, .. } => entry,
        other => panic!("unexpected {other:?}"),
    }
}

fn list(svc: &ConfigService, ns: &str, prefix: &str, after: Option<&str>, limit: u32) -> (Vec<String>, bool, u64) {
    let request = ConfigRequest::List {
        namespace: ns.into(),
        prefix: prefix.into(),
        after: after.map(Into::into),
        limit,
        consistency: Consistency::Serializable,
    };
    svc.validate(&request).expect("valid list");
    match svc.query(&request) {
        ConfigResponse::List { entries, more, count, .. } => {
            assert!(entries.iter().all(|e| e.namespace == ns));
            (entries.into_iter().map(|e| e.key).collect(), more, count)
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Applies `requests` after what `svc` has, returning every event.
fn run(svc: &mut ConfigService, requests: &[ConfigRequest]) -> Vec<ConfigEvent> {
    let mut events = Vec::new();
    for r in requests {
        let index = svc.revision() + 100;
        events.extend(svc.apply(index, r.clone()).1);
    }
    events
}

fn revisions(events: &[ConfigEvent]) -> Vec<u64> {
    events.iter().map(|e| e.revision).collect()
}

#[test]
fn keys_are_namespaced_and_versioned() {
    let mut svc = ConfigService::new();
    let (reply, events) = svc.apply(1, set("app", "db/url", "a"));
    assert_eq!(reply, ConfigResponse::Set { header: Header { revision: 1 }, version: 1 });
    assert_eq!(
        events,
        [ConfigEvent {
            revision: 1,
            kind: EventKind::Put,
            namespace: "app".into(),
            key: "db/url".into(),
            value: Bytes::from("a")
        }]
    );
    run(&mut svc, &[set("ap", "x", "other namespace"), set("app", "db/url", "b"), set("app", "db/pool", "8")]);
    let e = get(&svc, "app", "db/url").expect("set");
    assert_eq!((&e.value[..], e.create_revision, e.mod_revision, e.version), (&b"b"[..], 1, 3, 2));
    assert_eq!(get(&svc, "other", "db/url"), None);
    assert_eq!(list(&svc, "app", "", None, 0), (vec!["db/pool".into(), "db/url".into()], false, 2));
    assert_eq!(list(&svc, "ap", "", None, 0), (vec!["x".into()], false, 1), "namespace `ap` is not a prefix of `app`");
    assert_eq!(list(&svc, "app", "db/", None, 1), (vec!["db/pool".into()], true, 2));
    assert_eq!(list(&svc, "app", "db/", Some("db/pool"), 1), (vec!["db/url".into()], false, 2));

    let (reply, events) = svc.apply(5, del("app", "db/url"));
    assert_eq!(reply, ConfigResponse::Delete { header: Header { revision: 5 }, deleted: true });
    assert_eq!((events[0].kind, events[0].revision, events[0].value.len()), (EventKind::Delete, 5, 0));
    let (reply, events) = svc.apply(6, del("app", "db/url"));
    assert_eq!(reply, ConfigResponse::Delete { header: Header { revision: 5 }, deleted: false });
    assert!(events.is_empty(), "deleting a missing key is not a change");
}

#[test]
fn watch_replays_from_a_revision_then_filters_live_events() {
    let mut svc = ConfigService::new();
    run(
        &mut svc,
        &[set("app", "a", "1"), set("app", "b/1", "1"), set("web", "a", "1"), set("app", "a", "2"), del("app", "b/1")],
    );

    let all = watch("app", "", true, 1);
    assert_eq!(revisions(&svc.watch_start(&all).expect("retained")), [1, 2, 4, 5]);
    assert_eq!(revisions(&svc.watch_start(&watch("app", "a", false, 2)).expect("retained")), [4]);
    assert_eq!(revisions(&svc.watch_start(&watch("app", "b/", true, 1)).expect("retained")), [2, 5]);
    assert_eq!(revisions(&svc.watch_start(&watch("app", "a", false, 5)).expect("retained")), Vec::<u64>::new());
    assert!(svc.watch_start(&watch("app", "", true, 0)).expect("live only").is_empty(), "0 means from now");
    assert!(svc.watch_start(&watch("app", "", true, 99)).expect("future").is_empty());

    let events = run(&mut svc, &[set("app", "a", "3"), set("app", "ab", "1"), set("web", "a", "2")]);
    let matching = |w: &ConfigRequest| -> Vec<u64> {
        events.iter().filter(|e| svc.watch_matches(w, e)).map(|e| e.revision).collect()
    };
    assert_eq!(matching(&watch("app", "a", false, 0)), [6], "exact key, not `ab`");
    assert_eq!(matching(&watch("app", "a", true, 0)), [6, 7]);
    assert_eq!(matching(&watch("web", "", true, 0)), [8]);
    assert_eq!(matching(&watch("app", "", true, 7)), [7], "a future start skips earlier live events");
    assert!(!svc.watch_matches(&set("app", "a", "1"), &events[0]), "only watches match");
    assert_eq!(ConfigService::route(&all), Route::Watch);
}

#[test]
fn compaction_is_explicit_or_bounded_and_reported() {
    let mut svc = ConfigService::with_history_limit(HistoryLimit { max_events: 3, max_bytes: usize::MAX });
    run(&mut svc, &(0..5).map(|i| set("ns", "k", &i.to_string())).collect::<Vec<_>>());
    assert_eq!((svc.compact_revision(), svc.history_len()), (3, 3), "revisions 3..=5 kept");
    assert_eq!(svc.watch_start(&watch("ns", "k", false, 2)), Err(Rejection::Compacted { compact_revision: 3 }));
    assert_eq!(revisions(&svc.watch_start(&watch("ns", "k", false, 3)).expect("kept")), [3, 4, 5]);

    let (reply, _) = svc.apply(10, ConfigRequest::Compact { revision: 5 });
    assert_eq!(reply, ConfigResponse::Compact { header: Header { revision: 5 }, compact_revision: 5 });
    assert_eq!(svc.watch_start(&watch("ns", "k", false, 4)), Err(Rejection::Compacted { compact_revision: 5 }));
    let (reply, _) = svc.apply(11, ConfigRequest::Compact { revision: 2 });
    assert_eq!(
        reply,
        ConfigResponse::Compact { header: Header { revision: 5 }, compact_revision: 5 },
        "compacting to an earlier revision changes nothing"
    );
    assert_eq!(get(&svc, "ns", "k").map(|e| e.version), Some(5), "compaction keeps keys");
    // Compacting everything still lets a watch resume right after the last change.
    svc.apply(12, ConfigRequest::Compact { revision: 6 });
    assert_eq!(svc.watch_start(&watch("ns", "k", false, 6)), Ok(vec![]));
    // A future revision is refused before logging and, should it be logged anyway, when applied.
    assert!(matches!(svc.validate(&ConfigRequest::Compact { revision: 7 }), Err(Rejection::Invalid(_))));
    assert!(matches!(svc.validate(&ConfigRequest::Compact { revision: 0 }), Err(Rejection::Invalid(_))));
    let (reply, _) = svc.apply(13, ConfigRequest::Compact { revision: 9 });
    assert!(matches!(reply, ConfigResponse::Rejected(Rejection::Invalid(_))));
    assert_eq!(svc.compact_revision(), 6);
}

#[test]
fn history_is_bounded_in_bytes() {
    let mut svc = ConfigService::with_history_limit(HistoryLimit { max_events: 1_000, max_bytes: 10_000 });
    let value = "v".repeat(3_000);
    run(&mut svc, &(0..10).map(|i| set("ns", &format!("k{i}"), &value)).collect::<Vec<_>>());
    assert_eq!(svc.history_len(), 3, "three 3 KB changes fit in 10 KB, four do not");
    assert_eq!(svc.compact_revision(), 8);
}

#[test]
fn limits_and_names_are_checked() {
    let svc = ConfigService::new();
    let ok = |r: &ConfigRequest| svc.validate(r);
    assert_eq!(ok(&set("ns", &"k".repeat(MAX_KEY_SIZE), "")), Ok(()));
    assert!(matches!(ok(&set("", "k", "v")), Err(Rejection::Invalid(_))));
    assert!(matches!(ok(&set("ns", "", "v")), Err(Rejection::Invalid(_))));
    assert!(matches!(ok(&set("n\0s", "k", "v")), Err(Rejection::Invalid(_))));
    assert!(matches!(ok(&set("ns", "k\n", "v")), Err(Rejection::Invalid(_))));
    assert!(matches!(ok(&set(&"n".repeat(MAX_NAMESPACE_SIZE + 1), "k", "v")), Err(Rejection::TooLarge { .. })));
    assert!(matches!(ok(&set("ns", &"k".repeat(MAX_KEY_SIZE + 1), "v")), Err(Rejection::TooLarge { .. })));
    let big =
        ConfigRequest::Set { namespace: "ns".into(), key: "k".into(), value: Bytes::from(vec![0; MAX_VALUE_SIZE + 1]) };
    assert_eq!(
        ok(&big),
        Err(Rejection::TooLarge { what: "value".into(), size: MAX_VALUE_SIZE + 1, max: MAX_VALUE_SIZE })
    );
    assert!(matches!(ok(&watch("ns", "", false, 1)), Err(Rejection::Invalid(_))), "an exact watch needs a key");
    assert_eq!(ok(&watch("ns", "", true, 1)), Ok(()));
    let list = ConfigRequest::List {
        namespace: "ns".into(),
        prefix: String::new(),
        after: None,
        limit: MAX_LIST_LIMIT + 1,
        consistency: Consistency::Linearizable,
    };
    assert!(matches!(ok(&list), Err(Rejection::Invalid(_))));
    let mut svc = svc;
    let (reply, events) = svc.apply(1, set("", "k", "v"));
    assert!(matches!(reply, ConfigResponse::Rejected(_)) && events.is_empty() && svc.revision() == 0);
}

#[test]
fn snapshot_keeps_keys_history_and_compaction_point() {
    let limit = HistoryLimit { max_events: 4, max_bytes: usize::MAX };
    let mut svc = ConfigService::with_history_limit(limit);
    run(&mut svc, &[set("a", "x", "1"), set("a", "y", "1"), del("a", "x"), set("b", "z", "1"), set("a", "y", "2")]);
    let mut restored = ConfigService::with_history_limit(limit);
    restored.restore(&svc.snapshot()).expect("restores");
    assert_eq!(restored, svc);
    assert_eq!(restored.compact_revision(), 2);
    assert_eq!(
        restored.watch_start(&watch("a", "", true, 2)),
        svc.watch_start(&watch("a", "", true, 2)),
        "the same history replays"
    );
    // A replica with a smaller limit trims the restored history to it.
    let mut small = ConfigService::with_history_limit(HistoryLimit { max_events: 1, max_bytes: usize::MAX });
    small.restore(&svc.snapshot()).expect("restores");
    assert_eq!((small.compact_revision(), small.history_len(), small.revision()), (5, 1, 5));

    let before = restored.snapshot();
    assert!(restored.restore(b"").is_err());
    assert!(restored.restore(&[2]).is_err());
    let mut truncated = before.clone();
    truncated.pop();
    assert!(restored.restore(&truncated).is_err());
    assert_eq!(restored.snapshot(), before, "a failed restore leaves the state alone");
}

// ---------------------------------------------------------------------------------------
// Properties.

fn request() -> impl Strategy<Value = ConfigRequest> {
    let ns = prop::sample::select(vec!["a", "b"]);
    let key = prop::sample::select(vec!["x", "x/1", "x/2", "y"]);
    prop_oneof![
        6 => (ns.clone(), key.clone(), "[a-c]{0,2}").prop_map(|(n, k, v)| set(n, k, &v)),
        3 => (ns, key).prop_map(|(n, k)| del(n, k)),
        1 => (0u64..8).prop_map(|r| ConfigRequest::Compact { revision: r.max(1) }),
    ]
}

fn a_watch() -> impl Strategy<Value = (&'static str, &'static str, bool)> {
    (prop::sample::select(vec!["a", "b"]), prop::sample::select(vec!["", "x", "x/", "x/1", "y"]), any::<bool>())
        .prop_filter("exact watches need a key", |(_, k, p)| *p || !k.is_empty())
}

/// Applies the log to `svc`, ignoring replies (compactions of future revisions are refused alike everywhere).
fn apply_all(svc: &mut ConfigService, log: &[ConfigRequest], from: usize) -> Vec<ConfigEvent> {
    let mut events = Vec::new();
    for (i, r) in log.iter().enumerate().skip(from) {
        events.extend(svc.apply(i as u64 + 1, r.clone()).1);
    }
    events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A watcher that follows one replica, disconnects after any event and resumes at
    /// another replica (ahead or behind the first) from the last revision it saw plus one
    /// receives every matching change exactly once, in order.
    #[test]
    fn resumed_watches_miss_nothing_and_repeat_nothing(
        log in prop::collection::vec(request(), 0..40),
        (ns, key, prefix) in a_watch(),
        drop_after in 0usize..40,
        other_applied in any::<prop::sample::Index>(),
    ) {
        let request = |start| watch(ns, key, prefix, start);
        let mut a = ConfigService::new();
        let everything = apply_all(&mut ConfigService::new(), &log, 0);
        let expected: Vec<ConfigEvent> =
            everything.iter().filter(|e| a.watch_matches(&request(1), e)).cloned().collect();

        // Follow replica `a` from revision 1 until `drop_after` events arrived.
        let mut seen = a.watch_start(&request(1)).expect("nothing compacted yet");
        let mut applied = 0;
        while applied < log.len() && seen.len() < drop_after {
            let events = a.apply(applied as u64 + 1, log[applied].clone()).1;
            seen.extend(events.into_iter().filter(|e| a.watch_matches(&request(1), e)));
            applied += 1;
        }
        // Resume on replica `b`, which has applied some other prefix of the log.
        let start = seen.last().map_or(1, |e| e.revision + 1);
        let mut b = ConfigService::new();
        let b_applied = other_applied.index(log.len() + 1);
        apply_all(&mut b, &log[..b_applied], 0);
        match b.watch_start(&request(start)) {
            Ok(replay) => seen.extend(replay),
            Err(Rejection::Compacted { compact_revision }) => {
                // Only an explicit compaction past the resume point can refuse it.
                prop_assert!(start < compact_revision);
                let compacted = log[..b_applied].iter().any(|r| matches!(r, ConfigRequest::Compact { revision } if *revision > start));
                prop_assert!(compacted, "compacted without an explicit compaction past {}", start);
                return Ok(());
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
        for (i, r) in log.iter().enumerate().skip(b_applied) {
            let events = b.apply(i as u64 + 1, r.clone()).1;
            seen.extend(events.into_iter().filter(|e| b.watch_matches(&request(start), e)));
        }
        prop_assert_eq!(seen, expected);
    }

    /// Replicas applying the same log agree on everything, including history; a replica
    /// restored from a snapshot taken anywhere continues exactly like one that never stopped.
    #[test]
    fn replay_and_snapshot_are_deterministic(
        log in prop::collection::vec(request(), 0..40),
        cut in any::<prop::sample::Index>(),
        max_events in 1usize..8,
    ) {
        let limit = HistoryLimit { max_events, max_bytes: usize::MAX };
        let cut = cut.index(log.len() + 1);
        let (mut a, mut b) = (ConfigService::with_history_limit(limit), ConfigService::with_history_limit(limit));
        let events_a = apply_all(&mut a, &log[..cut], 0);
        let events_b = apply_all(&mut b, &log[..cut], 0);
        prop_assert_eq!(events_a, events_b);
        let mut c = ConfigService::with_history_limit(limit);
        c.restore(&a.snapshot()).expect("restores");
        prop_assert_eq!(&c, &a);
        for (i, r) in log.iter().enumerate().skip(cut) {
            let ra = a.apply(i as u64 + 1, r.clone());
            let rc = c.apply(i as u64 + 1, r.clone());
            prop_assert_eq!(ra, rc);
        }
        prop_assert_eq!(a.snapshot(), c.snapshot());
        for start in 0..=a.revision() + 1 {
            let w = watch("a", "", true, start);
            prop_assert_eq!(a.watch_start(&w), c.watch_start(&w));
        }
    }

    /// Arbitrary bytes never panic a restore, and never half-restore.
    #[test]
    fn restore_never_panics(data in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut svc = ConfigService::new();
        svc.apply(1, set("a", "x", "1"));
        let before = svc.clone();
        if svc.restore(&data).is_err() {
            prop_assert_eq!(svc, before);
        }
    }
}
