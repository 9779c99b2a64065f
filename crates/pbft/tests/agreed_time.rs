//! Agreed time ([`Config::clock`]): the primary puts its clock reading first in every
//! batch and orders time alone when a service deadline is due; backups accept it only within their own
//! clock's bounds, so a primary whose clock runs ahead (or lies) is replaced and cannot
//! move the agreed time more than `max_skew` past a correct clock.

mod common;

use std::time::Duration;

use ballot_core::{Instant, NodeId, Protocol};
use ballot_pbft::{AgreedClock, Config, Item, Message};
use common::{Cluster, test_config};

const SEC: Duration = Duration::from_secs(1);
/// The Unix time (ms) of every correct replica at the cluster's `Instant::ZERO`.
const EPOCH_MS: u64 = 1_800_000_000_000;

fn clocked(id: NodeId, offset_ms: i64) -> Config {
    let mut c = test_config(id);
    let at_zero = EPOCH_MS.checked_add_signed(offset_ms).expect("in range");
    c.clock = Some(AgreedClock { max_skew: Duration::from_millis(200), ..AgreedClock::new(at_zero) });
    c
}

/// The true time at `now`, in ms since the epoch.
fn true_ms(now: Instant) -> u64 {
    EPOCH_MS + now.as_nanos() / 1_000_000
}

fn times(c: &Cluster, id: u64) -> Vec<(u64, u64)> {
    c.nodes[id as usize - 1].service.times.clone()
}

#[test]
fn every_batch_carries_the_primary_time_and_a_due_deadline_is_ordered_alone() {
    let mut c = Cluster::with_config(4, |id| clocked(id, 0));
    let cmd = c.request("x");
    c.submit(&cmd);
    c.await_all(std::slice::from_ref(&cmd), 2 * SEC, "the request");
    // The request's batch starts with a time: index 1 is a time, index 2 the request.
    for id in 1..=4 {
        let t = times(&c, id);
        assert_eq!(t.first().map(|(i, _)| *i), Some(1), "n{id}: {t:?}");
        assert!(c.executed_at(id, &cmd));
    }
    // Idle, with no deadline wanted: no time is ordered.
    c.run_for(2 * SEC);
    assert_eq!(times(&c, 1).len(), 1, "nothing ordered while nothing is due");
    // The service wants time 1 s from now: the primary orders it once its clock is there.
    let deadline = true_ms(c.now) + 1_000;
    let now = c.now;
    for id in 1..=4 {
        c.node_mut(id).time_wanted(now, Some(deadline));
    }
    c.run_until(2 * SEC, "the deadline's time everywhere", |c| {
        (1..=4).all(|id| times(c, id).last().is_some_and(|(_, t)| *t >= deadline))
    });
    assert!(true_ms(c.now) - deadline < 300, "ordered within a status period or so of the deadline");
    let now = c.now;
    for id in 1..=4 {
        c.node_mut(id).time_wanted(now, None);
    }
    let ordered = times(&c, 1).len();
    c.run_for(2 * SEC);
    assert_eq!(times(&c, 1).len(), ordered, "once nothing is due, no more time alone");
    let t = times(&c, 1);
    assert!(t.windows(2).all(|w| w[0].1 <= w[1].1), "time never goes back: {t:?}");
    c.check_agreement();
}

#[test]
fn a_primary_whose_clock_runs_ahead_is_refused_and_replaced() {
    // n1 (primary of view 0) is 5 s ahead; max_skew is 200 ms.
    let mut c = Cluster::with_config(4, |id| clocked(id, if id == NodeId(1) { 5_000 } else { 0 }));
    let cmd = c.request("y");
    c.submit(&cmd);
    c.await_all(std::slice::from_ref(&cmd), 10 * SEC, "the request, under the next primary");
    assert!(c.node(2).view() >= 1, "the primary with the fast clock was replaced");
    assert!(
        c.node(2).rejections().contains_key("pre-prepare time ahead of this replica's clock by more than max_skew")
    );
    for id in 2..=4 {
        for (index, t) in times(&c, id) {
            assert!(t <= true_ms(c.now) + 200, "n{id} applied time {t} at {index}, ahead of every correct clock");
        }
    }
}

#[test]
fn a_lying_primary_cannot_push_time_ahead_or_hold_it_back() {
    for (lie_ms, what) in [(60_000i64, "ahead"), (-60_000, "behind")] {
        let mut c = Cluster::with_config(4, |id| clocked(id, 0));
        // n1 rewrites the time of every batch it pre-prepares and signs again.
        c.lie(
            1,
            Box::new(move |forge, to, m| match m {
                Message::PrePrepare { pre_prepare, mut batch } => {
                    if let Some(Item::Time(t)) = batch.first_mut() {
                        *t = t.checked_add_signed(lie_ms).expect("in range");
                    }
                    vec![(to, forge.resign(&Message::PrePrepare { pre_prepare, batch }))]
                }
                other => vec![(to, other)],
            }),
        );
        let cmd = c.request(what);
        c.submit(&cmd);
        c.await_all(std::slice::from_ref(&cmd), 10 * SEC, what);
        assert!(c.node(2).view() >= 1, "a primary lying {what} was replaced");
        for id in 2..=4 {
            for (_, t) in times(&c, id) {
                let truth = true_ms(c.now);
                assert!(t <= truth + 200 && t + 60_000 > truth, "n{id} applied a lied time {t} ({what})");
            }
        }
    }
}

#[test]
fn malformed_times_are_refused() {
    let mut c = Cluster::with_config(4, |id| clocked(id, 0));
    let forge = c.nodes[0].forge.clone();
    let now = c.now;
    let request = c.request("z");
    let t = true_ms(now);
    let cases: [(Vec<Item>, &str); 3] = [
        (vec![Item::Request(request.clone())], "pre-prepare without the agreed time"),
        (
            vec![Item::Request(request.clone()), Item::Time(t)],
            "pre-prepare carries a request without a valid client signature",
        ),
        (vec![Item::Time(t), Item::Time(t)], "pre-prepare carries a request without a valid client signature"),
    ];
    for (seq, (batch, why)) in (1..).zip(cases) {
        let before = c.node(2).rejections().get(why).copied().unwrap_or(0);
        c.node_mut(2).handle_message(now, NodeId(1), forge.pre_prepare(0, seq, batch));
        assert_eq!(c.node(2).rejections().get(why), Some(&(before + 1)), "{why}");
        assert!(c.node(2).pre_prepared(seq).is_none());
    }
    // A time relayed as a request is never queued.
    c.node_mut(1).handle_message(now, NodeId(2), Message::Request(Item::Time(t)));
    assert_eq!(c.node(1).rejections().get("relayed request without a valid client signature"), Some(&1));
    // A cluster without a clock refuses any time.
    let mut plain = Cluster::new(4);
    let forge = plain.nodes[0].forge.clone();
    plain.node_mut(2).handle_message(now, NodeId(1), forge.pre_prepare(0, 1, vec![Item::Time(t)]));
    assert_eq!(plain.node(2).rejections().get("pre-prepare carries a time, and this cluster orders none"), Some(&1));
}

#[test]
fn a_late_pre_prepare_is_accepted_once_f_plus_1_backups_prepared_it() {
    let mut c = Cluster::with_config(4, |id| clocked(id, 0));
    // n2 is 10 s past a PRE-PREPARE timed at the start (a retransmission after a partition).
    c.run_for(10 * SEC);
    let request = c.request("late");
    let batch = vec![Item::Time(EPOCH_MS), Item::Request(request)];
    let pp = c.nodes[0].forge.pre_prepare(0, 1, batch);
    let Message::PrePrepare { pre_prepare, .. } = &pp else { unreachable!() };
    let digest = pre_prepare.body.digest;
    let now = c.now;
    c.node_mut(2).handle_message(now, NodeId(1), pp.clone());
    assert!(c.node(2).pre_prepared(1).is_none(), "too old on its own");
    // One PREPARE (f of them) does not vouch for it; f+1 do.
    let prepare = |c: &Cluster, by: u64| c.nodes[by as usize - 1].forge.prepare(0, 1, digest);
    let p3 = prepare(&c, 3);
    c.node_mut(2).handle_message(now, NodeId(3), p3);
    c.node_mut(2).handle_message(now, NodeId(1), pp.clone());
    assert!(c.node(2).pre_prepared(1).is_none(), "f PREPAREs are not enough");
    let p4 = prepare(&c, 4);
    c.node_mut(2).handle_message(now, NodeId(4), p4);
    c.node_mut(2).handle_message(now, NodeId(1), pp);
    assert!(c.node(2).pre_prepared(1).is_some(), "vouched for by f+1 backups, one of them correct");
}
