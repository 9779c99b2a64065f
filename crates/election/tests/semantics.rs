//! The election service's semantics through the `StateMachine` interface.

use std::collections::BTreeMap;
use std::time::Duration;

use ballot_core::Instant;
use ballot_core::service::{Consistency, Header, Rejection, Route, StateMachine};
use ballot_election::{
    ElectionRequest, ElectionResponse, ElectionService, LeaderEvent, Leadership, LeaseId, MAX_CAMPAIGNS_PER_LEASE,
    MAX_LEASES, MAX_NAME_SIZE, MAX_TTL_MS, MAX_VALUE_SIZE, MIN_TTL_MS, REVOKE_RETRY,
};
use bytes::Bytes;
use proptest::prelude::*;

const TTL: u64 = 3_000;

fn ms(t: u64) -> Instant {
    Instant::from_millis(t)
}

fn campaign(election: &str, lease: u64) -> ElectionRequest {
    ElectionRequest::Campaign {
        election: election.into(),
        lease: LeaseId(lease),
        value: Bytes::from(format!("candidate-{lease}")),
    }
}

fn resign(election: &str, lease: u64) -> ElectionRequest {
    ElectionRequest::Resign { election: election.into(), lease: LeaseId(lease) }
}

fn revoke(lease: u64) -> ElectionRequest {
    ElectionRequest::Revoke { lease: LeaseId(lease) }
}

fn keep_alive(svc: &mut ElectionService, now: u64, lease: u64) -> ElectionResponse {
    svc.leader_request(ms(now), &ElectionRequest::KeepAlive { lease: LeaseId(lease) })
}

/// A service with leases 1..=n (granted at log indexes 1..=n with TTL [`TTL`]).
fn with_leases(n: u64) -> ElectionService {
    let mut svc = ElectionService::new();
    for i in 1..=n {
        let (reply, _) = svc.apply(i, ElectionRequest::Grant { ttl_ms: TTL });
        assert_eq!(reply, ElectionResponse::Granted { header: Header { revision: i }, lease: LeaseId(i), ttl_ms: TTL });
    }
    svc
}

fn token(reply: &ElectionResponse) -> u64 {
    match reply {
        ElectionResponse::Elected { leader, .. } => leader.token,
        other => panic!("not elected: {other:?}"),
    }
}

fn leader_of(events: &[LeaderEvent]) -> Option<(u64, u64)> {
    assert_eq!(events.len(), 1, "{events:?}");
    events[0].leader.as_ref().map(|l| (l.lease.0, l.token))
}

#[test]
fn candidates_lead_in_campaign_order_with_growing_tokens() {
    let mut svc = with_leases(4);
    let (first, events) = svc.apply(5, campaign("e", 1));
    let t1 = token(&first);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].leader.as_ref().map(|l| l.lease), Some(LeaseId(1)));
    for (index, lease, ahead) in [(6, 3, 0), (7, 2, 1), (8, 4, 2)] {
        let (reply, events) = svc.apply(index, campaign("e", lease));
        assert!(matches!(reply, ElectionResponse::Queued { ahead: a, .. } if a == ahead), "{reply:?}");
        assert!(events.is_empty(), "queueing changes no leader");
    }
    assert_eq!(svc.queue("e"), [LeaseId(3), LeaseId(2), LeaseId(4)]);

    // Campaigning again changes nothing.
    let revision = svc.revision();
    assert_eq!(token(&svc.apply(9, campaign("e", 1)).0), t1);
    assert!(matches!(svc.apply(10, campaign("e", 2)).0, ElectionResponse::Queued { ahead: 1, .. }));
    assert_eq!(svc.revision(), revision);

    let (reply, events) = svc.apply(11, resign("e", 1));
    assert!(matches!(reply, ElectionResponse::Resigned { was_leader: true, .. }));
    let (lease, t3) = leader_of(&events).expect("3 is next");
    assert_eq!(lease, 3);
    assert!(t3 > t1);
    let (_, events) = svc.apply(12, revoke(3));
    let (lease, t2) = leader_of(&events).expect("2 is next");
    assert_eq!(lease, 2);
    assert!(t2 > t3);
    // A queued candidate that resigns leaves the queue without a leadership change.
    let (reply, events) = svc.apply(13, resign("e", 4));
    assert!(matches!(reply, ElectionResponse::Resigned { was_leader: false, .. }) && events.is_empty());
    let (_, events) = svc.apply(14, resign("e", 2));
    assert_eq!(leader_of(&events), None, "nobody left: the election is vacant");
    assert_eq!(svc.leader("e"), None);
    // Re-campaigning after a vacancy gets a fresh, larger token.
    assert!(token(&svc.apply(15, campaign("e", 4)).0) > t2);
}

#[test]
fn leader_reads_and_observations() {
    let mut svc = with_leases(2);
    let leader = ElectionRequest::Leader { election: "e".into() };
    assert_eq!(ElectionService::route(&leader), Route::Read(Consistency::Linearizable));
    assert_eq!(
        svc.query(&leader),
        ElectionResponse::Leader { header: Header { revision: 2 }, election: "e".into(), leader: None }
    );
    svc.apply(3, campaign("e", 2));
    let expected = Leadership { lease: LeaseId(2), value: Bytes::from("candidate-2"), token: 1, revision: 3 };
    assert_eq!(
        svc.query(&leader),
        ElectionResponse::Leader {
            header: Header { revision: 3 },
            election: "e".into(),
            leader: Some(expected.clone())
        }
    );

    let observe = ElectionRequest::Observe { election: "e".into() };
    assert_eq!(ElectionService::route(&observe), Route::Watch);
    assert_eq!(
        svc.watch_start(&observe),
        Ok(vec![LeaderEvent { election: "e".into(), revision: 3, leader: Some(expected) }])
    );
    let (_, events) = svc.apply(4, campaign("other", 1));
    assert!(!svc.watch_matches(&observe, &events[0]), "another election's change");
    let (_, events) = svc.apply(5, revoke(2));
    assert!(svc.watch_matches(&observe, &events[0]));
    assert_eq!(events[0], LeaderEvent { election: "e".into(), revision: 5, leader: None });
}

#[test]
fn a_revoked_lease_leaves_every_election_in_name_order() {
    let mut svc = with_leases(3);
    for (i, e) in ["b", "a", "c"].iter().enumerate() {
        svc.apply(4 + i as u64, campaign(e, 1));
        svc.apply(7 + i as u64, campaign(e, 2));
    }
    svc.apply(10, campaign("d", 3));
    svc.apply(11, campaign("d", 1));
    let (reply, events) = svc.apply(12, revoke(1));
    assert_eq!(reply, ElectionResponse::Revoked { header: Header { revision: 12 }, lease: LeaseId(1) });
    let summary: Vec<(&str, u64, u64, u64)> = events
        .iter()
        .map(|e| {
            let l = e.leader.as_ref().expect("2 takes over");
            (e.election.as_str(), l.lease.0, l.token, e.revision)
        })
        .collect();
    assert_eq!(summary, [("a", 2, 5, 12), ("b", 2, 6, 12), ("c", 2, 7, 12)], "d's queue just shrinks");
    assert_eq!(svc.queue("d"), Vec::<LeaseId>::new());
    assert_eq!(svc.leader("d").map(|l| l.lease), Some(LeaseId(3)));
    for req in [campaign("a", 1), resign("a", 1), revoke(1)] {
        assert_eq!(svc.apply(13, req).0, ElectionResponse::LeaseNotFound { lease: LeaseId(1) });
    }
    assert_eq!(
        svc.apply(14, resign("a", 3)).0,
        ElectionResponse::NotCandidate { election: "a".into(), lease: LeaseId(3) }
    );
}

#[test]
fn leases_expire_only_through_the_leaders_tick() {
    let mut follower = with_leases(1);
    assert!(follower.tick(ms(0), false).is_empty());
    assert!(follower.tick(ms(1_000_000), false).is_empty(), "followers keep no deadlines");

    let mut leader = with_leases(2);
    assert!(leader.tick(ms(1_000), true).is_empty(), "becoming leader starts every TTL");
    assert_eq!(keep_alive(&mut leader, 3_000, 2), ElectionResponse::KeptAlive { lease: LeaseId(2), ttl_ms: TTL });
    assert!(leader.tick(ms(3_999), true).is_empty());
    assert_eq!(leader.tick(ms(4_000), true), [revoke(1)], "lease 1 was never kept alive");
    assert_eq!(
        keep_alive(&mut leader, 4_001, 1),
        ElectionResponse::LeaseNotFound { lease: LeaseId(1) },
        "an expired lease cannot be revived while its revocation is in flight"
    );
    assert!(leader.tick(ms(4_100), true).is_empty(), "no duplicate proposal right away");
    let retry = 4_000 + u64::try_from(REVOKE_RETRY.as_millis()).expect("small");
    assert_eq!(leader.tick(ms(retry), true), [revoke(1)], "re-proposed in case the first was lost");
    leader.apply(3, revoke(1));
    assert!(leader.tick(ms(5_999), true).is_empty());
    assert_eq!(leader.tick(ms(6_000), true), [revoke(2)]);
}

#[test]
fn a_new_leader_restarts_every_ttl() {
    // Replica A leads; the client of lease 1 keeps alive until t=2s, then A fails.
    let mut a = with_leases(1);
    let mut b = with_leases(1);
    a.tick(ms(0), true);
    b.tick(ms(0), false);
    assert!(matches!(keep_alive(&mut a, 2_000, 1), ElectionResponse::KeptAlive { .. }));
    // B takes over at t=7s, long after A's deadline (5s): the lease gets a full TTL from then.
    b.tick(ms(6_900), false);
    assert!(b.tick(ms(7_000), true).is_empty());
    assert!(b.tick(ms(9_999), true).is_empty());
    assert!(matches!(keep_alive(&mut b, 9_000, 1), ElectionResponse::KeptAlive { .. }));
    assert!(b.tick(ms(11_999), true).is_empty());
    assert_eq!(b.tick(ms(12_000), true), [revoke(1)]);

    // Losing leadership drops the deadlines; regaining it restarts them.
    b.tick(ms(12_100), false);
    assert!(b.tick(ms(12_200), true).is_empty());
    assert_eq!(b.tick(ms(15_200), true), [revoke(1)]);

    // A leader request on a replica that never ticked as leader also starts from a full TTL.
    let mut c = with_leases(1);
    assert_eq!(
        c.leader_request(ms(50_000), &ElectionRequest::TimeToLive { lease: LeaseId(1) }),
        ElectionResponse::TimeToLive { lease: LeaseId(1), ttl_ms: TTL, remaining_ms: TTL }
    );
    assert_eq!(
        c.leader_request(ms(51_000), &ElectionRequest::TimeToLive { lease: LeaseId(1) }),
        ElectionResponse::TimeToLive { lease: LeaseId(1), ttl_ms: TTL, remaining_ms: TTL - 1_000 }
    );
}

#[test]
fn a_lagging_leader_does_not_disown_fresh_leases() {
    let mut svc = with_leases(1);
    svc.apply_internal(2);
    assert_eq!(keep_alive(&mut svc, 0, 3), ElectionResponse::LeaseNotYetApplied { lease: LeaseId(3) });
    assert_eq!(keep_alive(&mut svc, 0, 2), ElectionResponse::LeaseNotFound { lease: LeaseId(2) });
    svc.apply(3, ElectionRequest::Grant { ttl_ms: TTL });
    assert!(matches!(keep_alive(&mut svc, 0, 3), ElectionResponse::KeptAlive { .. }));
}

#[test]
fn requests_are_routed_and_validated() {
    let svc = ElectionService::new();
    let grant = |ttl_ms| ElectionRequest::Grant { ttl_ms };
    assert_eq!(ElectionService::route(&grant(MIN_TTL_MS)), Route::Write);
    assert_eq!(ElectionService::route(&ElectionRequest::KeepAlive { lease: LeaseId(1) }), Route::Leader);
    assert_eq!(svc.validate(&grant(MIN_TTL_MS)), Ok(()));
    assert_eq!(svc.validate(&grant(MAX_TTL_MS)), Ok(()));
    assert!(matches!(svc.validate(&grant(MIN_TTL_MS - 1)), Err(Rejection::Invalid(_))));
    assert!(matches!(svc.validate(&grant(MAX_TTL_MS + 1)), Err(Rejection::Invalid(_))));
    assert!(matches!(svc.validate(&campaign("", 1)), Err(Rejection::Invalid(_))));
    assert!(matches!(svc.validate(&campaign("a\u{7}", 1)), Err(Rejection::Invalid(_))));
    assert!(matches!(svc.validate(&campaign(&"e".repeat(MAX_NAME_SIZE + 1), 1)), Err(Rejection::TooLarge { .. })));
    let big = ElectionRequest::Campaign {
        election: "e".into(),
        lease: LeaseId(1),
        value: Bytes::from(vec![0; MAX_VALUE_SIZE + 1]),
    };
    assert!(matches!(svc.validate(&big), Err(Rejection::TooLarge { .. })));
    assert!(matches!(svc.validate(&ElectionRequest::Observe { election: String::new() }), Err(Rejection::Invalid(_))));
    assert!(matches!(svc.query(&campaign("e", 1)), ElectionResponse::Rejected(_)), "a write is not a read");
    let mut svc = svc;
    let (reply, _) = svc.apply(1, grant(1));
    assert!(matches!(reply, ElectionResponse::Rejected(_)));
    assert_eq!((svc.revision(), svc.lease_count()), (0, 0));
}

#[test]
fn lease_and_campaign_counts_are_bounded() {
    let mut svc = with_leases(MAX_LEASES as u64);
    let next = MAX_LEASES as u64 + 1;
    let (reply, _) = svc.apply(next, ElectionRequest::Grant { ttl_ms: TTL });
    assert!(matches!(reply, ElectionResponse::Rejected(Rejection::Invalid(_))), "{reply:?}");
    assert_eq!(svc.lease_count(), MAX_LEASES);
    svc.apply(next + 1, revoke(1));
    assert!(matches!(svc.apply(next + 2, ElectionRequest::Grant { ttl_ms: TTL }).0, ElectionResponse::Granted { .. }));

    let mut index = next + 3;
    for i in 0..MAX_CAMPAIGNS_PER_LEASE {
        assert!(matches!(svc.apply(index, campaign(&format!("e{i}"), 2)).0, ElectionResponse::Elected { .. }));
        index += 1;
    }
    let (reply, _) = svc.apply(index, campaign("one-too-many", 2));
    assert!(matches!(reply, ElectionResponse::Rejected(Rejection::Invalid(_))), "{reply:?}");
    assert_eq!(svc.leader("one-too-many"), None);
    // Campaigning again where it already runs is still answered.
    assert!(matches!(svc.apply(index + 1, campaign("e0", 2)).0, ElectionResponse::Elected { .. }));
}

#[test]
fn snapshot_restores_state_but_not_deadlines() {
    let mut svc = with_leases(3);
    svc.apply(4, campaign("e", 1));
    svc.apply(5, campaign("e", 2));
    svc.apply(6, campaign("f", 2));
    svc.tick(ms(0), true);
    let mut restored = ElectionService::new();
    restored.restore(&svc.snapshot()).expect("restores");
    assert_eq!(restored.snapshot(), svc.snapshot());
    // The restored replica keeps no deadlines until it leads, then starts full TTLs.
    assert!(restored.tick(ms(5_000), true).is_empty());
    assert_eq!(svc.tick(ms(5_000), true).len(), 3);
    // Both continue identically, token counter included.
    for r in [revoke(1), campaign("g", 3), resign("f", 2)] {
        assert_eq!(svc.apply(10, r.clone()), restored.apply(10, r));
    }
    assert_eq!(svc.leader("e").map(|l| l.token), Some(3), "tokens 1 and 2 went to e and f");
    assert_eq!(svc.leader("g").map(|l| l.token), Some(4));

    let before = restored.snapshot();
    for garbage in [&b""[..], &[7][..], &before[..before.len() - 1]] {
        assert!(restored.restore(garbage).is_err());
    }
    assert_eq!(restored.snapshot(), before, "a failed restore leaves the state alone");
}

// ---------------------------------------------------------------------------------------
// Properties.

/// A naive model: per election, the leader followed by the queue.
#[derive(Default)]
struct Model {
    leases: Vec<u64>,
    elections: BTreeMap<String, Vec<u64>>,
    last_token: u64,
    /// The expected token of each election's current leader.
    tokens: BTreeMap<String, u64>,
}

impl Model {
    fn remove(&mut self, election: &str, lease: u64) {
        let Some(line) = self.elections.get_mut(election) else { return };
        let Some(at) = line.iter().position(|&l| l == lease) else { return };
        line.remove(at);
        if line.is_empty() {
            self.elections.remove(election);
            self.tokens.remove(election);
        } else if at == 0 {
            self.last_token += 1;
            self.tokens.insert(election.to_owned(), self.last_token);
        }
    }

    fn apply(&mut self, index: u64, request: &ElectionRequest) {
        match request {
            ElectionRequest::Grant { .. } => self.leases.push(index),
            ElectionRequest::Revoke { lease } => {
                if let Some(at) = self.leases.iter().position(|&l| l == lease.0) {
                    self.leases.remove(at);
                    let names: Vec<String> = self.elections.keys().cloned().collect();
                    for name in names {
                        self.remove(&name, lease.0);
                    }
                }
            }
            ElectionRequest::Campaign { election, lease, .. } if self.leases.contains(&lease.0) => {
                let line = self.elections.entry(election.clone()).or_default();
                if !line.contains(&lease.0) {
                    line.push(lease.0);
                    if line.len() == 1 {
                        self.last_token += 1;
                        self.tokens.insert(election.clone(), self.last_token);
                    }
                }
            }
            ElectionRequest::Resign { election, lease } => self.remove(election, lease.0),
            _ => {}
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    Write(ElectionRequest),
    /// The leader's clock advances this many ms (leases not kept alive may expire).
    Time(u64),
    KeepAlive(u64),
}

fn step() -> impl Strategy<Value = Step> {
    let election = prop::sample::select(vec!["a", "b", "c"]);
    let lease = 1u64..16;
    prop_oneof![
        3 => (1u64..4).prop_map(|s| Step::Write(ElectionRequest::Grant { ttl_ms: s * 1_000 })),
        5 => (election.clone(), lease.clone()).prop_map(|(e, l)| Step::Write(campaign(e, l))),
        2 => (election, lease.clone()).prop_map(|(e, l)| Step::Write(resign(e, l))),
        1 => lease.clone().prop_map(|l| Step::Write(revoke(l))),
        2 => (0u64..2_500).prop_map(Step::Time),
        3 => lease.prop_map(Step::KeepAlive),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Leaders and queues follow the model exactly (FIFO queues, promotion on resign,
    /// revoke and expiry), tokens grow strictly across the whole service, two replicas
    /// applying the same log agree, and a replica restored mid-way continues identically.
    #[test]
    fn follows_the_model_and_replicates(steps in prop::collection::vec(step(), 0..80), cut in any::<prop::sample::Index>()) {
        let mut leader = ElectionService::new();
        let mut follower = ElectionService::new();
        let mut model = Model::default();
        let mut log: Vec<ElectionRequest> = Vec::new();
        let mut now = 0u64;
        let mut last_token = 0u64;
        let cut = cut.index(steps.len() + 1);
        let mut restored: Option<ElectionService> = None;
        for (i, s) in steps.iter().enumerate() {
            if i == cut {
                let mut r = ElectionService::new();
                r.restore(&follower.snapshot()).expect("restores");
                restored = Some(r);
            }
            let writes = match s {
                Step::Write(r) => vec![r.clone()],
                Step::Time(dt) => {
                    now += dt;
                    leader.tick(ms(now), true)
                }
                Step::KeepAlive(l) => {
                    keep_alive(&mut leader, now, *l);
                    Vec::new()
                }
            };
            prop_assert!(follower.tick(ms(now), false).is_empty());
            for w in writes {
                log.push(w.clone());
                let index = log.len() as u64;
                model.apply(index, &w);
                let (reply, events) = leader.apply(index, w.clone());
                prop_assert_eq!(follower.apply(index, w.clone()), (reply.clone(), events.clone()));
                if let Some(r) = &mut restored {
                    prop_assert_eq!(r.apply(index, w.clone()), (reply.clone(), events.clone()));
                }
                let mut tokens: Vec<u64> = events.iter().filter_map(|e| e.leader.as_ref().map(|l| l.token)).collect();
                if let ElectionResponse::Elected { leader: l, .. } = &reply {
                    if events.is_empty() { prop_assert!(l.token <= last_token) } else { tokens = vec![l.token] }
                }
                for t in tokens {
                    prop_assert!(t > last_token, "token {} after {}", t, last_token);
                    last_token = t;
                }
            }
            for e in ["a", "b", "c"] {
                let line = model.elections.get(e).cloned().unwrap_or_default();
                prop_assert_eq!(leader.leader(e).map(|l| l.lease.0), line.first().copied(), "leader of {}", e);
                prop_assert_eq!(leader.leader(e).map(|l| l.token), model.tokens.get(e).copied());
                let queue: Vec<u64> = leader.queue(e).iter().map(|l| l.0).collect();
                prop_assert_eq!(&queue[..], line.get(1..).unwrap_or_default(), "queue of {}", e);
            }
            prop_assert_eq!(leader.lease_count(), model.leases.len());
        }
        prop_assert_eq!(leader.snapshot(), follower.snapshot());
        if let Some(r) = restored {
            prop_assert_eq!(r.snapshot(), follower.snapshot());
        }
    }

    /// Arbitrary bytes never panic a restore, and never half-restore.
    #[test]
    fn restore_never_panics(data in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut svc = with_leases(1);
        let before = svc.snapshot();
        if svc.restore(&data).is_err() {
            prop_assert_eq!(svc.snapshot(), before);
        }
    }
}

#[test]
fn expiry_from_a_leader_is_what_clients_see() {
    // A client that keeps alive every TTL/3 never loses its lease; one that stops does,
    // within a TTL plus one tick.
    let mut svc = with_leases(2);
    let tick = Duration::from_millis(100);
    let mut now = Instant::ZERO;
    let mut revoked_at = None;
    for step in 0..200u64 {
        if step % 10 == 0 {
            assert!(matches!(
                svc.leader_request(now, &ElectionRequest::KeepAlive { lease: LeaseId(1) }),
                ElectionResponse::KeptAlive { .. }
            ));
        }
        for r in svc.tick(now, true) {
            assert_eq!(r, revoke(2), "only the silent lease expires");
            svc.apply(100 + step, r);
            revoked_at.get_or_insert(now);
        }
        now += tick;
    }
    assert_eq!(revoked_at, Some(Instant::from_millis(TTL)));
    assert_eq!(svc.lease_count(), 1);
}

/// Agreed time (under PBFT): deadlines are replicated state, moved by grants, ordered
/// keep-alives and applied times, never by a replica's own clock.
#[test]
fn in_agreed_time_leases_expire_when_applied_time_passes_their_deadline() {
    assert!(ElectionService::wants_agreed_time());
    let mut svc = with_leases(2);
    assert_eq!(svc.agreed_time(), None);
    let (_, ev) = svc.apply(3, campaign("e", 1));
    assert_eq!(leader_of(&ev), Some((1, 1)));
    svc.apply(4, campaign("e", 2));
    // The first agreed time gives the two existing leases a full TTL from it.
    assert!(svc.apply_time(5, 10_000).is_empty());
    assert_eq!(svc.agreed_time(), Some(10_000));
    let ttl =
        |svc: &mut ElectionService, i, lease| svc.apply(i, ElectionRequest::TimeToLive { lease: LeaseId(lease) }).0;
    assert_eq!(ttl(&mut svc, 6, 1), ElectionResponse::TimeToLive { lease: LeaseId(1), ttl_ms: TTL, remaining_ms: TTL });
    // Lease 2 is kept alive at 12 s (ordered, applied as a write), lease 1 is not.
    assert!(svc.apply_time(7, 12_000).is_empty());
    let (reply, _) = svc.apply(8, ElectionRequest::KeepAlive { lease: LeaseId(2) });
    assert_eq!(reply, ElectionResponse::KeptAlive { lease: LeaseId(2), ttl_ms: TTL });
    assert_eq!(
        ttl(&mut svc, 9, 1),
        ElectionResponse::TimeToLive { lease: LeaseId(1), ttl_ms: TTL, remaining_ms: 1_000 }
    );
    // A time that goes back changes nothing; the agreed clock never moves backwards.
    assert!(svc.apply_time(10, 11_000).is_empty());
    assert_eq!(svc.agreed_time(), Some(12_000));
    // 13 s: lease 1 (deadline 13 s) expires on every replica alike; lease 2 leads.
    let events = svc.apply_time(11, 13_000);
    assert_eq!(leader_of(&events), Some((2, 2)));
    assert_eq!(svc.lease_count(), 1);
    assert_eq!(ttl(&mut svc, 12, 1), ElectionResponse::LeaseNotFound { lease: LeaseId(1) });
    let (reply, _) = svc.apply(13, ElectionRequest::KeepAlive { lease: LeaseId(1) });
    assert_eq!(reply, ElectionResponse::LeaseNotFound { lease: LeaseId(1) });
    // A grant in agreed time has its deadline a TTL after the agreed time.
    let (reply, _) = svc.apply(14, ElectionRequest::Grant { ttl_ms: MIN_TTL_MS });
    assert!(matches!(reply, ElectionResponse::Granted { lease: LeaseId(14), .. }), "{reply:?}");
    assert_eq!(
        ttl(&mut svc, 15, 14),
        ElectionResponse::TimeToLive { lease: LeaseId(14), ttl_ms: MIN_TTL_MS, remaining_ms: MIN_TTL_MS }
    );
    // The deadlines travel with snapshots (format 2); a replica restored from one
    // expires the same leases at the same agreed time.
    let mut restored = ElectionService::from_snapshot(&svc.to_snapshot()).expect("restore");
    assert_eq!(restored.agreed_time(), Some(13_000));
    let (a, b) = (svc.apply_time(16, 15_000), restored.apply_time(16, 15_000));
    assert_eq!(a, b);
    assert_eq!(svc.to_snapshot(), restored.to_snapshot());
    // The leader-local paths stay out of it: a tick proposes nothing.
    assert!(svc.tick(ms(1_000_000), false).is_empty());
}

#[test]
fn snapshots_of_format_1_still_restore_with_leader_local_deadlines() {
    let svc = with_leases(2);
    let v2 = svc.to_snapshot();
    assert_eq!(v2[0], 2);
    // Format 1 is format 2 without the trailing agreed-time field (`None` is one byte).
    let mut v1 = v2[..v2.len() - 1].to_vec();
    v1[0] = 1;
    let restored = ElectionService::from_snapshot(&v1).expect("format 1");
    assert_eq!(restored.lease_count(), 2);
    assert_eq!(restored.agreed_time(), None);
    // Deadlines that do not match the leases are refused.
    let mut svc = with_leases(2);
    svc.apply_time(3, 1_000);
    let mut bytes = svc.to_snapshot();
    let mut other = with_leases(3);
    other.apply_time(4, 1_000);
    let extra = other.to_snapshot();
    // Splice the agreed part of the three-lease service behind the two-lease state.
    let state_len = bytes.len() - (svc.to_snapshot().len() - with_leases(2).to_snapshot().len() + 1);
    bytes.truncate(state_len);
    let agreed_len = extra.len() - with_leases(3).to_snapshot().len() + 1;
    bytes.extend_from_slice(&extra[extra.len() - agreed_len..]);
    let err = ElectionService::from_snapshot(&bytes).expect_err("mismatched deadlines");
    assert!(err.to_string().contains("agreed-time deadlines do not match the leases"), "{err}");
}
