//! Lying replicas: wrong digests, forged senders and signatures, replays from old
//! views, a NEW-VIEW with a wrong O set, wrong checkpoint digests. f = 1 of 4 (and f = 2
//! of 7): correct replicas never execute different batches at one sequence number, and
//! requests complete.

mod common;

use std::time::Duration;

use ballot_core::{Instant, NodeId, Protocol};
use ballot_pbft::{
    Checkpoint, Digest, Message, PrePrepare, Prepare, PreparedCert, StableCheckpoint, ViewChange, sha256,
};
use common::Cluster;

const SEC: Duration = Duration::from_secs(1);

fn bogus() -> Digest {
    sha256(b"not what anyone executed")
}

fn workload(c: &mut Cluster, n: usize, tag: &str) -> Vec<bytes::Bytes> {
    let cmds: Vec<_> = (0..n).map(|i| c.request(&format!("{tag}{i}"))).collect();
    for cmd in &cmds {
        c.submit(cmd);
        c.run_for(Duration::from_millis(3));
    }
    cmds
}

#[test]
fn backup_with_wrong_digests_is_outvoted() {
    let mut c = Cluster::new(4);
    // n4 prepares and commits digests of batches that do not exist.
    c.lie(
        4,
        Box::new(|forge, to, m| match m {
            Message::Prepare(p) => vec![(to, forge.prepare(p.body.view, p.body.seq, bogus()))],
            Message::Commit { view, seq, .. } => {
                vec![(to, ballot_pbft::byzantine::Forge::commit(view, seq, bogus()))]
            }
            other => vec![(to, other)],
        }),
    );
    let cmds = workload(&mut c, 12, "d");
    c.await_all(&cmds, 10 * SEC, "commands despite wrong digests");
    assert_eq!(c.node(1).view(), 0, "no view change was needed");
}

#[test]
fn prepares_and_commits_for_requests_that_do_not_exist_change_nothing() {
    let mut c = Cluster::new(4);
    let cmds = workload(&mut c, 3, "p");
    c.await_all(&cmds, 5 * SEC, "commands");
    let forge = c.nodes[3].forge.clone();
    let now = c.now;
    // n4 alone votes for a batch at the next sequence numbers: one vote is never a quorum.
    for seq in 4..=6 {
        for to in 1..=3 {
            c.node_mut(to).handle_message(now, NodeId(4), forge.prepare(0, seq, bogus()));
            c.node_mut(to).handle_message(now, NodeId(4), ballot_pbft::byzantine::Forge::commit(0, seq, bogus()));
        }
    }
    c.run_for(Duration::from_millis(200));
    for id in 1..=3 {
        assert_eq!(c.node(id).executed_seq(), 3);
        assert!(c.node(id).committed_digest(4).is_none());
    }
    let more = workload(&mut c, 3, "q");
    c.await_all(&more, 5 * SEC, "more commands");
}

#[test]
fn forged_senders_and_signatures_are_rejected() {
    let mut c = Cluster::new(4);
    let cmds = workload(&mut c, 4, "f");
    c.await_all(&cmds, 5 * SEC, "commands");
    let liar = c.nodes[3].forge.clone();
    let now = c.now;
    let view = c.node(1).view();
    for to in 1..=3u64 {
        let p = c.node_mut(to);
        let before = p.rejected();
        // A PREPARE that names n2 as its signer, signed with n4's key, over n4's channel.
        p.handle_message(
            now,
            NodeId(4),
            Message::Prepare(liar.impersonate(NodeId(2), Prepare { view, seq: 5, digest: bogus() })),
        );
        // A PRE-PREPARE "from the primary" sent by n4.
        p.handle_message(now, NodeId(4), liar.pre_prepare(view, 5, Vec::new()));
        // VIEW-CHANGEs for view 7 in the names of the three others: if believed, f+1 of
        // them would drag every replica into a view change.
        for claimed in [1, 2, 3] {
            let vc = ViewChange { view: 7, stable: StableCheckpoint::default(), prepared: Vec::new() };
            p.handle_message(now, NodeId(4), Message::ViewChange(liar.impersonate(NodeId(claimed), vc)));
        }
        // CHECKPOINTs with a bogus state digest in the names of the others.
        for claimed in [1, 2, 3] {
            let cp = Checkpoint { seq: 8, index: 8, digest: bogus() };
            p.handle_message(now, NodeId(4), Message::Checkpoint(liar.impersonate(NodeId(claimed), cp)));
        }
        assert!(p.rejected() >= before + 8, "n{to} rejected only {} forgeries", p.rejected() - before);
        // The host's metrics see the same counts, by reason.
        let refusals = ballot_core::Protocol::refusals(&*p);
        assert_eq!(refusals.iter().map(|(_, n)| n).sum::<u64>(), p.rejected());
        assert!(refusals.iter().any(|(reason, n)| reason.contains("not from the primary") && *n >= 1), "{refusals:?}");
    }
    // n4's own VIEW-CHANGE with a prepared certificate whose PREPAREs are forged.
    let pp = liar.impersonate(NodeId(1), PrePrepare { view: 0, seq: 5, digest: bogus() });
    let prepares = [2, 3].map(|i| liar.impersonate(NodeId(i), Prepare { view: 0, seq: 5, digest: bogus() })).to_vec();
    let cert = PreparedCert { pre_prepare: pp, prepares };
    let vc = liar.view_change(1, StableCheckpoint::default(), vec![cert]);
    c.node_mut(2).handle_message(now, NodeId(4), vc);
    assert!(format!("{:?}", c.node(2).last_error()).contains("invalid view change"));
    c.run_for(Duration::from_millis(300));
    for id in 1..=3 {
        assert_eq!(c.node(id).view(), 0, "forged view changes moved n{id}");
        assert!(c.node(id).stable_checkpoint().digest != bogus());
    }
    let more = workload(&mut c, 6, "g");
    c.await_all(&more, 5 * SEC, "progress after the forgeries");
    for id in 1..=3 {
        let s = c.node(id).stable_checkpoint();
        assert!(s.seq >= 4 && s.digest != bogus());
    }
}

#[test]
fn replays_from_old_views_are_ignored() {
    let mut c = Cluster::new(4);
    c.record = true;
    let cmds = workload(&mut c, 3, "r");
    c.await_all(&cmds, 5 * SEC, "commands in view 0");
    let old: Vec<_> = c.sent.clone();
    c.record = false;
    // Move to view 1 by crashing the primary.
    c.crash(1);
    let more = workload(&mut c, 3, "s");
    c.await_all(&more, 10 * SEC, "commands in view 1");
    assert!(c.node(2).view() >= 1);
    // n1 comes back and a Byzantine network replays everything view 0 carried.
    c.restart(1);
    let now = c.now;
    let before: Vec<u64> = (2..=4).map(|i| c.node(i).executed_seq()).collect();
    for (from, to, m) in old {
        if to != NodeId(1) && from != to {
            c.node_mut(to.0).handle_message(now, from, m);
        }
    }
    c.drain();
    let after: Vec<u64> = (2..=4).map(|i| c.node(i).executed_seq()).collect();
    assert_eq!(before, after, "replayed messages executed something");
    assert!(c.node(2).rejected() > 0);
    c.check_safety();
    let last = workload(&mut c, 3, "t");
    c.await_all(&last, 10 * SEC, "commands after the replay");
}

#[test]
fn new_view_with_a_wrong_o_set_is_rejected_and_its_primary_replaced() {
    let mut c = Cluster::new(4);
    // n2, primary of view 1, adds a sequence number with a bogus digest to O.
    c.lie(
        2,
        Box::new(|forge, to, m| match m {
            Message::NewView(nv) => {
                let mut o = ballot_pbft::byzantine::Forge::honest_o(&nv.body.view_changes);
                let next = o.last().map_or(nv.body.view_changes[0].body.stable.seq, |x| x.0) + 1;
                o.push((next, bogus()));
                vec![(to, forge.new_view(nv.body.view, nv.body.view_changes, &o))]
            }
            other => vec![(to, other)],
        }),
    );
    let cmds = workload(&mut c, 3, "o");
    c.await_all(&cmds, 5 * SEC, "commands in view 0");
    // Cut the honest primary n1 off for a while (a network fault): the backups change
    // view, and n2's NEW-VIEW is wrong.
    c.filter =
        Some(Box::new(|now, from, to, _| (from == NodeId(1) || to == NodeId(1)) && now < Instant::from_millis(8_000)));
    let more = workload(&mut c, 3, "v");
    c.await_all(&more, 30 * SEC, "commands after the bad NEW-VIEW");
    for id in [3, 4] {
        assert!(c.node(id).view() >= 2, "{}", c.describe());
        assert_ne!(c.node(id).status().leader, Some(NodeId(2)));
    }
    for id in [3, 4] {
        assert!(
            c.node(id).rejections().contains_key("new-view with a wrong V or O set"),
            "n{id}: {:?}",
            c.node(id).rejections()
        );
    }
}

#[test]
fn wrong_checkpoint_digests_do_not_become_stable() {
    let mut c = Cluster::new(4);
    c.lie(
        4,
        Box::new(|forge, to, m| match m {
            Message::Checkpoint(cp) => vec![(to, forge.checkpoint(cp.body.seq, cp.body.index, bogus()))],
            other => vec![(to, other)],
        }),
    );
    let cmds = workload(&mut c, 20, "k");
    c.await_all(&cmds, 10 * SEC, "commands");
    c.run_for(Duration::from_millis(200));
    for id in 1..=3 {
        let s = c.node(id).stable_checkpoint();
        assert!(s.seq >= 4, "{}", c.describe());
        assert_ne!(s.digest, bogus());
        assert!(s.proof.iter().all(|p| p.signer != NodeId(4)));
        assert!(c.node(id).log_len() <= 8);
    }
}

#[test]
fn seven_replicas_tolerate_two_liars() {
    let mut c = Cluster::new(7);
    // n1 (the primary) is silent; n7 votes for bogus digests and checkpoints.
    c.lie(1, Box::new(|_, _, _| Vec::new()));
    c.lie(
        7,
        Box::new(|forge, to, m| match m {
            Message::Prepare(p) => vec![(to, forge.prepare(p.body.view, p.body.seq, bogus()))],
            Message::Checkpoint(cp) => vec![(to, forge.checkpoint(cp.body.seq, cp.body.index, bogus()))],
            Message::ViewChange(v) => vec![(to, forge.view_change(v.body.view + 3, v.body.stable, Vec::new()))],
            other => vec![(to, other)],
        }),
    );
    let cmds = workload(&mut c, 10, "s");
    c.await_all(&cmds, 30 * SEC, "commands with two liars of seven");
    assert!(c.node(2).view() >= 1);
}

#[test]
fn malformed_requests_for_data_do_not_crash_a_replica() {
    let mut c = Cluster::new(4);
    let cmds = workload(&mut c, 3, "m");
    c.await_all(&cmds, 5 * SEC, "commands");
    let now = c.now;
    for m in [
        Message::FetchCommitted { from: 10, to: 5 },
        Message::FetchCommitted { from: u64::MAX, to: u64::MAX },
        Message::FetchCommitted { from: 0, to: u64::MAX },
        Message::FetchState { seq: u64::MAX },
        Message::FetchBatch { digest: bogus() },
        Message::Batch { batch: Vec::new() },
        Message::Committed { seq: u64::MAX, batch: Vec::new() },
        Message::Status { view: u64::MAX, changing: true, stable: u64::MAX, executed: u64::MAX },
        Message::Commit { view: 0, seq: u64::MAX, digest: bogus() },
    ] {
        c.node_mut(1).handle_message(now, NodeId(4), m);
    }
    let more = workload(&mut c, 3, "n");
    c.await_all(&more, 5 * SEC, "progress after malformed messages");
}

/// A liar that sends random well-typed garbage: random views, sequence numbers,
/// digests, batches, certificates and names.
fn garbage(rng: &mut ballot_core::SeededRng, forge: &ballot_pbft::byzantine::Forge) -> Message {
    use ballot_pbft::byzantine::Forge;
    use ballot_pbft::{Item, NewView};
    let small = |r: &mut ballot_core::SeededRng| match r.gen_range(0..4) {
        0 => 0,
        1 => r.gen_range(0..20),
        2 => u64::MAX - r.gen_range(0..3),
        _ => r.next_u64(),
    };
    let v = small(rng);
    let n = small(rng);
    let d = if rng.gen_bool(0.5) { bogus() } else { sha256(&rng.next_u64().to_be_bytes()) };
    let who = NodeId(rng.gen_range(0..6));
    let batch = vec![Item::Barrier { replica: who, nonce: n }];
    let stable = StableCheckpoint {
        seq: n,
        index: small(rng),
        digest: d,
        proof: vec![forge.impersonate(who, Checkpoint { seq: n, index: 1, digest: d })],
    };
    let cert = PreparedCert {
        pre_prepare: forge.impersonate(who, PrePrepare { view: v, seq: n, digest: d }),
        prepares: vec![forge.sign(Prepare { view: v, seq: n, digest: d })],
    };
    match rng.gen_range(0..14) {
        0 => forge.pre_prepare(v, n, batch),
        1 => forge.prepare(v, n, d),
        2 => Forge::commit(v, n, d),
        3 => forge.checkpoint(n, small(rng), d),
        4 => forge.view_change(v, stable, vec![cert]),
        5 => {
            let vc = forge.sign(ViewChange { view: v, stable: StableCheckpoint::default(), prepared: Vec::new() });
            Message::NewView(forge.sign(NewView { view: v, view_changes: vec![vc], pre_prepares: Vec::new() }))
        }
        6 => Message::Status { view: v, changing: rng.gen_bool(0.5), stable: n, executed: small(rng) },
        7 => Message::FetchCommitted { from: n, to: small(rng) },
        8 => Message::Committed { seq: n, batch },
        9 => Message::FetchState { seq: n },
        10 => Message::State { checkpoint: stable, state: bytes::Bytes::from_static(b"junk") },
        11 => Message::Batch { batch },
        12 => Message::FetchBatch { digest: d },
        _ => Message::Request(Item::Barrier { replica: who, nonce: n }),
    }
}

#[test]
fn random_garbage_from_a_liar_breaks_nothing() {
    for seed in 0..20 {
        let mut c = Cluster::new(4);
        let mut rng = ballot_core::SeededRng::new(seed);
        let forge = c.nodes[3].forge.clone();
        let mut cmds = Vec::new();
        for round in 0..40 {
            if round % 3 == 0 {
                let cmd = c.request(&format!("z{seed}-{round}"));
                c.submit(&cmd);
                cmds.push(cmd);
            }
            let now = c.now;
            for _ in 0..20 {
                let to = rng.gen_range(1..4);
                let m = garbage(&mut rng, &forge);
                c.node_mut(to).handle_message(now, NodeId(4), m);
            }
            c.run_for(Duration::from_millis(20));
            c.check_safety();
        }
        c.await_all(&cmds, 60 * SEC, "commands despite garbage");
    }
}
