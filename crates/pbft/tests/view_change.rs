//! View changes: crashed, silent and equivocating primaries are replaced; back-off.

mod common;

use std::time::Duration;

use ballot_core::{NodeId, Protocol, Role};
use ballot_pbft::{Item, Message};
use common::Cluster;

const SEC: Duration = Duration::from_secs(1);

#[test]
fn primary_crash_leads_to_a_new_view() {
    let mut c = Cluster::new(4);
    let first = c.request("before");
    c.submit(&first);
    c.await_all(&[first], 5 * SEC, "first command");
    c.crash(1);
    let cmds: Vec<_> = (0..5).map(|i| c.request(&format!("after{i}"))).collect();
    for cmd in &cmds {
        c.submit(cmd);
    }
    c.await_all(&cmds, 10 * SEC, "commands after the primary crashed");
    for id in 2..=4 {
        assert_eq!(c.node(id).view(), 1, "{}", c.describe());
        assert!(c.node(id).is_active());
    }
    assert_eq!(c.node(2).status().role, Role::Leader);
    assert_eq!(c.node(3).status().leader, Some(NodeId(2)));
}

#[test]
fn silent_primary_is_replaced() {
    let mut c = Cluster::new(4);
    c.lie(1, Box::new(|_, _, _| Vec::new()));
    let cmds: Vec<_> = (0..3).map(|i| c.request(&format!("s{i}"))).collect();
    for cmd in &cmds {
        c.submit(cmd);
    }
    c.await_all(&cmds, 10 * SEC, "commands despite a silent primary");
    assert!(c.node(2).view() >= 1);
}

#[test]
fn slow_primary_is_replaced() {
    // The primary holds every pre-prepare back past the request timeout.
    let mut c = Cluster::new(4);
    c.filter = Some(Box::new(|now, from, _, m| {
        from == NodeId(1) && matches!(m, Message::PrePrepare { .. }) && now < ballot_core::Instant::from_millis(5_000)
    }));
    let cmd = c.request("slow");
    c.submit(&cmd);
    c.await_all(&[cmd], 4 * SEC, "the command under a slow primary");
    assert!(c.node(3).view() >= 1);
}

#[test]
fn equivocating_primary_cannot_split_replicas_and_is_replaced() {
    let mut c = Cluster::new(4);
    // n1 sends a different batch to each backup for the same (view, seq).
    c.lie(
        1,
        Box::new(|forge, to, m| match m {
            Message::PrePrepare { pre_prepare, mut batch } => {
                let mut extra = batch.clone();
                match to.0 {
                    2 => {}
                    3 => batch.reverse(),
                    _ => {
                        extra.truncate(1);
                        batch = extra;
                        batch.push(Item::Barrier { replica: NodeId(1), nonce: 99 });
                    }
                }
                let fake = Message::PrePrepare { pre_prepare, batch };
                vec![(to, forge.resign(&fake))]
            }
            other => vec![(to, other)],
        }),
    );
    let cmds: Vec<_> = (0..4).map(|i| c.request(&format!("e{i}"))).collect();
    for cmd in &cmds {
        c.submit(cmd);
    }
    c.await_all(&cmds, 20 * SEC, "commands despite an equivocating primary");
    for id in 2..=4 {
        assert!(c.node(id).view() >= 1, "{}", c.describe());
    }
    assert_ne!(c.node(2).status().leader, Some(NodeId(1)), "the equivocating primary was replaced");
}

#[test]
fn equivocation_to_one_backup_still_commits_safely() {
    // Two backups get the same batch and commit it; the third catches up.
    let mut c = Cluster::new(4);
    c.lie(
        1,
        Box::new(|forge, to, m| match m {
            Message::PrePrepare { pre_prepare, batch } if to == NodeId(4) => {
                let mut other = batch.clone();
                other.push(Item::Barrier { replica: NodeId(1), nonce: 7 });
                vec![(to, forge.resign(&Message::PrePrepare { pre_prepare, batch: other }))]
            }
            other => vec![(to, other)],
        }),
    );
    let cmds: Vec<_> = (0..3).map(|i| c.request(&format!("q{i}"))).collect();
    for cmd in &cmds {
        c.submit(cmd);
        c.run_for(Duration::from_millis(20));
    }
    c.await_all(&cmds, 20 * SEC, "commands with one misled backup");
}

#[test]
fn primary_inventing_a_request_is_refused_and_replaced() {
    let mut c = Cluster::new(4);
    // n1 adds a request no client signed to every batch.
    c.lie(
        1,
        Box::new(|forge, to, m| match m {
            Message::PrePrepare { pre_prepare, mut batch } => {
                batch.push(ballot_pbft::byzantine::Forge::bogus_request(b"transfer all to mallory"));
                vec![(to, forge.resign(&Message::PrePrepare { pre_prepare, batch }))]
            }
            other => vec![(to, other)],
        }),
    );
    let cmd = c.request("honest");
    c.submit(&cmd);
    c.await_all(&[cmd], 20 * SEC, "the honest command in a later view");
    for id in 2..=4 {
        assert!(
            c.nodes[id - 1].service.log.iter().all(|(_, x)| x.as_deref() != Some(&b"transfer all to mallory"[..])),
            "an unsigned request executed"
        );
    }
    assert!(format!("{:?}", c.node(2).last_error()).len() > 4);
}

#[test]
fn view_change_timeouts_back_off() {
    // n1 is down and every NEW-VIEW is lost until t = 20 s: each view change fails, and
    // the timer of each successive one doubles.
    let mut c = Cluster::new(4);
    c.crash(1);
    c.filter = Some(Box::new(|now, _, _, m| {
        matches!(m, Message::NewView(_)) && now < ballot_core::Instant::from_millis(20_000)
    }));
    let cmd = c.request("stuck");
    c.submit(&cmd);
    let mut changes = Vec::new();
    let mut last = c.node(3).view();
    while c.now < ballot_core::Instant::from_millis(20_000) {
        c.step();
        let v = c.node(3).view();
        if v != last {
            changes.push(c.now);
            last = v;
        }
    }
    assert!(changes.len() >= 3, "{changes:?}");
    let gaps: Vec<Duration> = changes.windows(2).map(|w| w[1] - w[0]).collect();
    // Doubling up to the cap: request_timeout (500 ms) * 2^max_backoff (3).
    let cap = Duration::from_millis(4_000);
    for g in gaps.windows(2) {
        assert!(g[1] >= (g[0] * 2).min(cap) - Duration::from_millis(60), "no back-off: {gaps:?}");
        assert!(g[1] <= cap + Duration::from_millis(60), "past the cap: {gaps:?}");
    }
    assert!(!c.executed_at(3, &cmd));
    c.await_all(&[cmd], 300 * SEC, "the command once NEW-VIEWs get through");
}

#[test]
fn replicas_join_a_view_change_asked_by_f_plus_one() {
    let mut c = Cluster::new(4);
    let cmd = c.request("j");
    c.submit(&cmd);
    c.await_all(&[cmd], 5 * SEC, "a command");
    // n3 and n4 (f+1) ask for view 1; n1 and n2 have no reason of their own to.
    let now = c.now;
    for id in [3, 4] {
        let p = c.node_mut(id);
        let _ = p.propose(now, ballot_core::ProposalId(1), ballot_pbft::insecure::signed_request(99, b"only here"));
    }
    // Drop the relays so only n3 and n4 time out.
    c.filter = Some(Box::new(|_, _, to, m| to == NodeId(1) && matches!(m, Message::Request(_))));
    c.run_until(5 * SEC, "n2 joins view 1", |c| c.node(2).view() >= 1);
    c.filter = None;
    c.run_until(5 * SEC, "view 1 active", |c| (1..=4).all(|i| c.node(i).view() >= 1 && c.node(i).is_active()));
    c.check_safety();
}

#[test]
fn new_view_o_set_takes_the_highest_view_certificate_and_fills_gaps_with_null_requests() {
    use ballot_pbft::byzantine::Forge;
    use ballot_pbft::{PrePrepare, Prepare, PreparedCert, StableCheckpoint, ViewChange, null_digest, sha256};
    let mut c = Cluster::new(4);
    let forges: Vec<Forge> = c.nodes.iter().map(|n| n.forge.clone()).collect();
    let f = |i: usize| forges[i - 1].clone();
    let cert = |view: u64, seq: u64, digest| {
        let primary = [1usize, 2, 3, 4][(view % 4) as usize];
        let prepares = (1..=4).filter(|&i| i != primary).take(2).map(|i| f(i).sign(Prepare { view, seq, digest }));
        PreparedCert { pre_prepare: f(primary).sign(PrePrepare { view, seq, digest }), prepares: prepares.collect() }
    };
    let (old, new) = (sha256(b"old"), sha256(b"new"));
    let vc = |i: usize, prepared| f(i).sign(ViewChange { view: 2, stable: StableCheckpoint::default(), prepared });
    let vcs = vec![vc(1, vec![cert(0, 3, old)]), vc(2, vec![cert(1, 3, new)]), vc(3, Vec::new())];
    let o = Forge::honest_o(&vcs);
    assert_eq!(o, vec![(1, null_digest()), (2, null_digest()), (3, new)]);
    // Backups accept exactly this O from the primary of view 2 (n3) and nothing else.
    let now = c.now;
    let bad = f(3).new_view(2, vcs.clone(), &[(1, null_digest()), (2, null_digest()), (3, old)]);
    // Out of the blue, a wrong NEW-VIEW is only dropped: a liar does not choose views.
    c.node_mut(4).handle_message(now, NodeId(3), bad.clone());
    assert!(c.node(4).rejections().contains_key("new-view with a wrong V or O set"));
    assert_eq!((c.node(4).view(), c.node(4).is_active()), (0, true));
    // n4 joins the change to view 2 (f+1 ask), then gets the wrong NEW-VIEW: its primary
    // is faulty, and n4 moves on to view 3 at once.
    for (i, vc) in vcs.iter().take(2).enumerate() {
        c.node_mut(4).handle_message(now, NodeId(i as u64 + 1), ballot_pbft::Message::ViewChange(vc.clone()));
    }
    assert_eq!((c.node(4).view(), c.node(4).is_active()), (2, false), "{:?}", c.node(4).rejections());
    c.node_mut(4).handle_message(now, NodeId(3), bad);
    assert_eq!(c.node(4).view(), 3, "a provably wrong NEW-VIEW moves the backup to the next view");
    let mut c2 = Cluster::new(4);
    let good = f(3).new_view(2, vcs, &o);
    c2.node_mut(4).handle_message(now, NodeId(3), good);
    assert_eq!((c2.node(4).view(), c2.node(4).is_active()), (2, true), "{:?}", c2.node(4).rejections());
    assert_eq!(c2.node(4).pre_prepared(3).map(|p| p.body.digest), Some(new));
    assert_eq!(c2.node(4).pre_prepared(1).map(|p| p.body.digest), Some(null_digest()));
}

#[test]
fn a_backup_forwards_the_request_it_waits_for_to_every_replica_before_changing_view() {
    // The client reaches n3 only, and n3's relay to the primary is lost. Halfway through
    // its request timer n3 sends the request to every replica: the primary orders it in
    // view 0, and nobody changes view.
    let mut c = Cluster::new(4);
    c.record = true;
    let mut relay_lost = false;
    c.filter = Some(Box::new(move |_, from, to, m| {
        let lose = !relay_lost && from == NodeId(3) && to == NodeId(1) && matches!(m, Message::Request(_));
        relay_lost |= lose;
        lose
    }));
    let cmd = c.request("relay lost");
    c.submit_to(&cmd, &[3]);
    c.await_all(&[cmd], 2 * SEC, "the request whose relay was lost");
    for id in 1..=4 {
        assert_eq!(c.node(id).view(), 0, "n{id} changed view: {}", c.describe());
    }
    let forwarded: Vec<NodeId> = c
        .sent
        .iter()
        .filter(|(from, _, m)| *from == NodeId(3) && matches!(m, Message::Request(_)))
        .map(|(_, to, _)| *to)
        .collect();
    for to in [1, 2, 4] {
        assert!(forwarded.contains(&NodeId(to)), "n3 sent the request to n{to}: {forwarded:?}");
    }
}
