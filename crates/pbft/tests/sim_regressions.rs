//! Regressions found by `ballot-sim --algo pbft` (the simulator running PBFT behind the
//! real replica host with Byzantine replicas).

mod common;

use std::time::Duration;

use ballot_core::{NodeId, ProposalId, Protocol};
use ballot_pbft::Message;
use common::Cluster;

/// A client's retry that reached a replica again while the request waited there used to
/// leave the second proposal unresolved for ever (the host waited on it).
#[test]
fn a_request_proposed_twice_at_one_replica_resolves_both_proposals() {
    let mut c = Cluster::new(4);
    let cmd = c.request("twice");
    c.submit(&cmd);
    c.submit(&cmd);
    c.await_all(std::slice::from_ref(&cmd), Duration::from_secs(5), "executed");
    c.run_for(Duration::from_millis(100));
    for n in &c.nodes {
        assert_eq!(n.resolved.len(), 2, "{}: {:?}", n.id, n.resolved);
    }
}

/// A retry of a request that already executed was accepted, relayed, and dropped by the
/// primary (it remembers executed requests): the proposal never resolved and the
/// backup's request timer forced view changes. It is now refused at once.
#[test]
fn a_retry_of_an_executed_request_is_refused_not_left_pending() {
    let mut c = Cluster::new(4);
    let cmd = c.request("once");
    c.submit(&cmd);
    c.await_all(std::slice::from_ref(&cmd), Duration::from_secs(5), "executed");
    let now = c.now;
    let r = c.node_mut(2).propose(now, ProposalId(999), cmd.clone());
    assert!(r.is_err(), "{r:?}");
    assert_eq!(c.node(2).pending_requests(), 0);
    let view = c.node(2).view();
    c.run_for(Duration::from_secs(3));
    assert_eq!(c.node(2).view(), view, "no view change for a request that executed");
}

/// A primary that installed a view, crashed and restarted lost its NEW-VIEW, so replicas
/// that missed it waited for ever. The NEW-VIEW is now part of the hard state.
#[test]
fn a_restarted_primary_still_hands_out_its_new_view() {
    let mut c = Cluster::new(4);
    let cmd = c.request("before");
    c.submit(&cmd);
    c.await_all(std::slice::from_ref(&cmd), Duration::from_secs(5), "executed");
    // n1 (primary of view 0) goes away; n2 becomes primary of view 1, but n4 never hears
    // n2's NEW-VIEW.
    c.crash(1);
    c.filter =
        Some(Box::new(|_, from, to, m| from == NodeId(2) && to == NodeId(4) && matches!(m, Message::NewView(_))));
    let cmd2 = c.request("after");
    c.submit_to(&cmd2, &[2, 3, 4]);
    c.run_until(Duration::from_secs(10), "n2 installs view 1", |c| c.node(2).view() == 1 && c.node(2).is_active());
    assert!(!c.node(4).is_active());
    c.restart(2);
    assert!(c.node(2).is_active() && c.node(2).view() == 1, "the view survived the restart");
    // Only the restarted n2 may hand n4 the NEW-VIEW now.
    c.filter =
        Some(Box::new(|_, from, to, m| from == NodeId(3) && to == NodeId(4) && matches!(m, Message::NewView(_))));
    c.run_until(Duration::from_secs(10), "n4 installs view 1", |c| c.node(4).is_active());
    assert_eq!(c.node(4).view(), 1);
}

/// VIEW-CHANGE messages sent so far (recorded).
fn view_changes_sent(c: &Cluster) -> usize {
    c.sent.iter().filter(|(_, _, m)| matches!(m, Message::ViewChange(_))).count()
}

/// Replicas past a view answered a peer's own VIEW-CHANGE for it with the VIEW-CHANGEs
/// they held, their own among them, which the peer answered in turn: two replicas
/// changing past a view relayed to each other for ever, and duplicates multiplied the
/// exchanges until memory ran out (ballot-sim, seed 126, 7 nodes). VIEW-CHANGEs now
/// leave only when a view change starts and on the retransmission timer.
#[test]
fn view_changes_leave_only_on_a_view_change_or_the_retransmission_timer() {
    let mut c = Cluster::new(4);
    c.crash(1);
    // Every view change fails: the replicas keep changing views past one another.
    c.filter = Some(Box::new(|_, _, _, m| matches!(m, Message::NewView(_))));
    c.record = true;
    let cmd = c.request("stuck");
    c.submit_to(&cmd, &[2, 3, 4]);
    let end = c.now + Duration::from_secs(10);
    // Three live replicas, each to its three peers: once per view change and per
    // status interval (50 ms) at most.
    let views = |c: &Cluster| (2..=4).map(|i| c.node(i).view()).sum::<u64>() as usize;
    while c.now < end {
        c.step();
        let ticks = (c.now.as_nanos() / 50_000_000) as usize;
        let bound = 3 * 3 * (views(&c) + ticks + 1);
        assert!(view_changes_sent(&c) <= bound, "{} VIEW-CHANGEs by {:?}", view_changes_sent(&c), c.now);
    }
    // A peer's own VIEW-CHANGE for a view this replica left gets no answer.
    let (view, old) = c
        .sent
        .iter()
        .rev()
        .find_map(|(from, _, m)| match m {
            Message::ViewChange(vc) if *from == NodeId(3) && vc.body.view < c.node(2).view() => {
                Some((vc.body.view, m.clone()))
            }
            _ => None,
        })
        .expect("an old VIEW-CHANGE of n3");
    assert!(view < c.node(2).view());
    let now = c.now;
    c.drain();
    c.node_mut(2).handle_message(now, NodeId(3), old);
    let mut answers = Vec::new();
    while let Some(out) = c.node_mut(2).poll_output() {
        if let ballot_core::Output::Send { message, .. } = out {
            answers.push(message);
        }
    }
    assert!(answers.is_empty(), "answered an old VIEW-CHANGE with {answers:?}");
}

/// A replica keeps one VIEW-CHANGE per sender, for its highest view: a liar sending one
/// for every view it may cannot grow another replica's memory.
#[test]
fn a_replica_keeps_one_view_change_per_sender() {
    let mut c = Cluster::new(4);
    let now = c.now;
    let stable = c.node(2).stable_checkpoint().clone();
    for view in 1..=40 {
        let m = c.nodes[3].forge.view_change(view, stable.clone(), Vec::new());
        c.node_mut(2).handle_message(now, NodeId(4), m);
    }
    let kept: Vec<u64> = (0..=64).filter(|&v| !c.node(2).view_changes_for(v).is_empty()).collect();
    assert_eq!(kept, vec![40], "one VIEW-CHANGE of n4 kept, for its highest view");
    // Older ones are not taken back.
    let m = c.nodes[3].forge.view_change(7, stable.clone(), Vec::new());
    c.node_mut(2).handle_message(now, NodeId(4), m);
    assert!(c.node(2).view_changes_for(7).is_empty());
    // Views far ahead are refused.
    let m = c.nodes[3].forge.view_change(1_000, stable, Vec::new());
    c.node_mut(2).handle_message(now, NodeId(4), m);
    assert!(c.node(2).view_changes_for(1_000).is_empty());
    assert_eq!(c.node(2).view(), 0, "one replica asking does not move another");
}

/// With f+1 matching replies for a write, a write could be accepted having executed at
/// one correct replica only; 2f+1 matching fast reads (f+1 correct replicas behind, f
/// liars) would then miss it (ballot-sim, seed 308, 4 nodes: a stale read). Writes need
/// 2f+1 too: any two such sets share a correct replica.
#[test]
fn accepted_writes_and_fast_reads_share_a_correct_replica() {
    for n in [4u64, 7, 10] {
        let c = Cluster::new(n);
        let f = c.node(1).faults();
        let ballot_core::ClientRule::Matching { writes, reads } = c.node(1).client_rule() else {
            panic!("PBFT clients need matching replies")
        };
        let n = n as usize;
        // Correct repliers: at least writes - f and reads - f, among n - f correct replicas.
        assert!((writes - f) + (reads - f) > n - f, "n {n}: writes {writes}, reads {reads}");
    }
}

/// Runs `c` for `d`, submitting a fresh request to every replica every 100 ms (so that
/// the primary always has other work to execute).
fn run_with_traffic(c: &mut Cluster, d: Duration, until: impl Fn(&Cluster) -> bool) -> bool {
    let end = c.now + d;
    let mut next = c.now;
    while c.now < end {
        if until(c) {
            return true;
        }
        if c.now >= next {
            let r = c.request("traffic");
            c.submit(&r);
            next = c.now + Duration::from_millis(100);
        }
        c.step();
    }
    until(c)
}

/// Drops every copy of `cmd` on its way to a replica in `censors`.
fn hide_from(cmd: &bytes::Bytes, censors: &'static [u64]) -> common::Filter {
    let cmd = cmd.clone();
    Box::new(move |_, _, to, m| {
        censors.contains(&to.0) && matches!(m, Message::Request(ballot_pbft::Item::Request(b)) if *b == cmd)
    })
}

/// The request timer restarted whenever any request executed: a primary that orders
/// every request but one kept its view for ever (ballot-sim, seed 140, 4 nodes). The
/// timer now waits for one request and restarts only once that one executed.
#[test]
fn a_request_the_primary_never_orders_changes_the_view_while_others_execute() {
    let mut c = Cluster::new(4);
    let hidden = c.request("hidden from n1");
    c.filter = Some(hide_from(&hidden, &[1]));
    c.submit_to(&hidden, &[2, 3, 4]);
    let done = run_with_traffic(&mut c, Duration::from_secs(5), |c| c.executed_everywhere(&hidden));
    assert!(done, "never executed\n{}", c.describe());
    assert!(c.node(2).view() >= 1);
    c.check_safety();
}

/// A new primary took the waiting requests in digest order, so in short views one with
/// a high digest could be overtaken for ever (ballot-sim, seed 459): oldest first now.
#[test]
fn a_new_primary_orders_the_waiting_requests_oldest_first() {
    let mut c = Cluster::new(4);
    c.crash(1);
    let cmds: Vec<_> = (0..6).map(|i| c.request(&format!("waiting {i}"))).collect();
    for cmd in &cmds {
        c.submit_to(cmd, &[2, 3, 4]);
        c.run_for(Duration::from_millis(1));
    }
    c.await_all(&cmds, Duration::from_secs(10), "the requests under the new primary");
    let order: Vec<usize> = c.nodes[1]
        .service
        .log
        .iter()
        .filter_map(|(_, e)| cmds.iter().position(|x| e.as_deref() == Some(x.as_ref())))
        .collect();
    assert_eq!(order, (0..6).collect::<Vec<_>>());
}

/// The timers' back-off ended at any execution, so a view change that did not get the
/// waited-for request executed brought the base timer back: with more waiting than a
/// primary commits in one period, a view change after every batch, for ever (ballot-sim,
/// seed 75, 4 nodes). The back-off now holds until that request executes.
#[test]
fn the_timer_backs_off_until_the_request_it_waits_for_executes() {
    use std::cell::Cell;
    let mut c = Cluster::new(7);
    // Hidden from the primaries of views 0, 1 and 2; n4 (view 3) orders it.
    let hidden = c.request("hidden from n1, n2 and n3");
    c.filter = Some(hide_from(&hidden, &[1, 2, 3]));
    c.submit_to(&hidden, &[4, 5, 6, 7]);
    let (installed, left) = (Cell::new(None), Cell::new(None));
    let done = run_with_traffic(&mut c, Duration::from_secs(10), |c| {
        let n5 = c.node(5);
        if n5.view() == 2 && n5.is_active() && installed.get().is_none() {
            installed.set(Some(c.now));
        }
        if n5.view() == 3 && left.get().is_none() {
            left.set(Some(c.now));
        }
        c.executed_everywhere(&hidden)
    });
    assert!(done, "never executed\n{}", c.describe());
    let (Some(installed), Some(left)) = (installed.get(), left.get()) else { panic!("n5 skipped view 2") };
    // View 1 also failed to execute it: view 2 waits twice the request timeout (500 ms),
    // although the primary of view 2 executes other requests all along.
    assert!(left - installed >= Duration::from_millis(950), "view 2 lasted {:?}", left - installed);
    c.check_safety();
}

/// Every replica reads in order (a barrier per read round).
fn ordered_reads(id: NodeId) -> ballot_pbft::Config {
    let mut cfg = common::test_config(id);
    cfg.read_mode = ballot_pbft::ReadMode::Ordered;
    cfg
}

/// Read barriers were numbered from 1 at every start: after a restart a replica's new
/// barrier was the very one it had ordered before, which the primary refused as
/// executed, so the read never completed and the request timer drove the replica into
/// a view of its own (ballot-sim, seed 75, 4 nodes). Barrier numbers now carry the
/// start count, durable before any barrier leaves.
#[test]
fn a_restarted_replica_numbers_its_read_barriers_afresh() {
    let mut c = Cluster::with_config(4, ordered_reads);
    let now = c.now;
    c.node_mut(2).read(now, ballot_core::ReadId(1)).unwrap();
    c.run_until(Duration::from_secs(5), "the first ordered read", |c| !c.nodes[1].reads.is_empty());
    c.restart(2);
    let now = c.now;
    c.node_mut(2).read(now, ballot_core::ReadId(2)).unwrap();
    c.run_until(Duration::from_secs(3), "the ordered read after the restart", |c| c.nodes[1].reads.len() == 2);
    assert!((1..=4).all(|i| c.node(i).view() == 0), "no view change\n{}", c.describe());
}

/// One barrier per ordered read: retried and abandoned reads piled up barriers faster
/// than a primary ordered them (ballot-sim, seed 75, 4 nodes). Reads that arrive while
/// a barrier is in flight share the next one.
#[test]
fn ordered_reads_share_read_barriers() {
    let mut c = Cluster::with_config(4, ordered_reads);
    // Nothing is ordered for 400 ms (less than the request timeout).
    c.filter = Some(Box::new(|now, _, _, m| {
        matches!(m, Message::PrePrepare { .. }) && now < ballot_core::Instant::from_millis(400)
    }));
    c.record = true;
    let now = c.now;
    for id in 1..=50 {
        c.node_mut(2).read(now, ballot_core::ReadId(id)).unwrap();
    }
    c.run_until(Duration::from_secs(5), "50 ordered reads", |c| c.nodes[1].reads.len() == 50);
    let barriers: std::collections::BTreeSet<u64> = c
        .sent
        .iter()
        .filter_map(|(from, _, m)| match m {
            Message::Request(ballot_pbft::Item::Barrier { replica, nonce })
                if *from == NodeId(2) && *replica == NodeId(2) =>
            {
                Some(*nonce)
            }
            _ => None,
        })
        .collect();
    assert_eq!(barriers.len(), 2, "the first read's barrier, then one for the 49 that came meanwhile");
    let indexes: std::collections::BTreeSet<u64> = c.nodes[1].reads.iter().map(|(_, i)| *i).collect();
    assert_eq!(indexes.len(), 2, "{indexes:?}");
}

/// A primary that fell behind and caught up by state transfer ordered what had waited
/// in its queue again, though most of it had executed inside the state: as a backup in
/// a later view it then waited for those requests for ever and its timer drove it into
/// a view of its own (ballot-sim, seed 76, 4 nodes).
#[test]
fn a_primary_caught_up_by_state_transfer_does_not_order_its_old_queue_again() {
    let mut c = Cluster::new(4);
    // n1 (primary of view 0) is cut off; what it queues meanwhile the others order in
    // view 1, past a stable checkpoint (every 4).
    c.filter = Some(Box::new(|_, from, to, _| from == NodeId(1) || to == NodeId(1)));
    let first = c.request("first");
    c.submit(&first);
    c.run_until(Duration::from_secs(5), "view 1", |c| c.executed_at(2, &first));
    // One sequence number each, past the checkpoints at 4 and 8.
    for i in 0..10 {
        let cmd = c.request(&format!("q{i}"));
        c.submit(&cmd);
        c.run_until(Duration::from_secs(5), "the others execute it", |c| (2..=4).all(|i| c.executed_at(i, &cmd)));
    }
    assert!(c.node(1).pending_requests() > 0 && c.node(1).is_primary() && c.node(2).stable_checkpoint().seq >= 8);
    // Back, but without the NEW-VIEW at first: it catches up by state transfer while
    // still primary of view 0.
    c.filter = Some(Box::new(|_, _, to, m| to == NodeId(1) && matches!(m, Message::NewView(_))));
    c.run_until(Duration::from_secs(5), "n1 catches up", |c| c.nodes[0].restores > 0);
    c.run_for(Duration::from_millis(200));
    c.filter = None;
    let more = c.request("after");
    c.submit(&more);
    c.await_all(&[more], Duration::from_secs(10), "a request after n1 is back");
    c.run_for(Duration::from_secs(3));
    assert_eq!(c.node(1).pending_requests(), 0, "{}", c.describe());
    let view = c.node(2).view();
    assert!((1..=4).all(|i| c.node(i).view() == view && c.node(i).is_active()), "{}", c.describe());
}

/// A replica that had committed a sequence number took no part when a NEW-VIEW carried
/// it over, so when it alone had committed it (the others missed the COMMITs of the
/// earlier view, and f+1 matching catch-up claims did not exist) the others could never
/// commit it (ballot-sim, seed 938, 4 nodes). Every replica now runs the protocol for
/// the whole O set again (without executing twice), and a replica in the same view
/// that reports executing less gets this replica's part again.
#[test]
fn a_replica_that_committed_before_a_view_change_takes_part_in_the_new_view() {
    let mut c = Cluster::new(4);
    // Only n2 and n3 ever see the COMMITs of view 0; n3 then goes away.
    let view_0_commit_to_1_or_4 =
        |to: NodeId, m: &Message| matches!(m, Message::Commit { view: 0, .. }) && (to == NodeId(1) || to == NodeId(4));
    c.filter = Some(Box::new(move |_, _, to, m| view_0_commit_to_1_or_4(to, m)));
    let first = c.request("committed at n2 only");
    c.submit(&first);
    c.run_until(Duration::from_secs(5), "n2 executes it", |c| c.executed_at(2, &first));
    assert!(!c.executed_at(1, &first) && !c.executed_at(4, &first));
    c.crash(3);
    // n1's PRE-PREPAREs are lost: n2 and n4 wait for the next request and change views.
    c.filter = Some(Box::new(move |_, from, to, m| {
        view_0_commit_to_1_or_4(to, m) || (from == NodeId(1) && matches!(m, Message::PrePrepare { .. }))
    }));
    let second = c.request("ordered in view 1");
    c.submit(&second);
    c.run_until(Duration::from_secs(10), "view 1", |c| c.node(2).view() == 1 && c.node(2).is_active());
    c.await_all(&[first, second], Duration::from_secs(10), "both requests at n1, n2 and n4");
    for i in [1, 2, 4] {
        assert_eq!(c.node(i).view(), 1, "view 1 committed it\n{}", c.describe());
    }
}

/// Relayed requests are bounded like proposals: read barriers carry no client
/// signature, and a liar relaying them without end grew the waiting set without bound.
#[test]
fn relayed_requests_are_bounded_by_max_pending() {
    let mut c = Cluster::with_config(4, |id| ballot_pbft::Config { max_pending: 8, ..common::test_config(id) });
    let now = c.now;
    for nonce in 0..100 {
        let barrier = ballot_pbft::Item::Barrier { replica: NodeId(4), nonce };
        c.node_mut(1).handle_message(now, NodeId(4), Message::Request(barrier));
    }
    assert_eq!(c.node(1).pending_requests(), 8);
    assert!(c.node(1).rejections().get("relayed request beyond max_pending").is_some_and(|&n| n == 92));
}
