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
