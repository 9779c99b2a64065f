//! Multi-node single-decree Paxos runs on the in-memory harness.

mod common;

use std::time::Duration;

use ballot_core::{Apply, Membership, NodeId, ProposalId, ProposeError, Protocol, SeededRng};
use ballot_paxos::{Synod, SynodConfig, SynodMessage};
use bytes::Bytes;
use common::{Cluster, Fate};

fn cluster(n: u64, seed: u64) -> Cluster<Synod> {
    let ids: Vec<u64> = (1..=n).collect();
    let members = Membership::new(ids.iter().map(|&i| NodeId(i)));
    Cluster::new(&ids, seed, move |id, rec, rng, now| {
        let mut cfg = SynodConfig::new(id);
        cfg.retry_timeout = Duration::from_millis(10);
        cfg.max_retry_timeout = Duration::from_millis(200);
        Synod::new(cfg, members.clone(), rec, rng, now).expect("valid state")
    })
}

fn chosen(c: &Cluster<Synod>, id: u64) -> Option<Bytes> {
    c.p(id).chosen().and_then(|v| v.command()).cloned()
}

fn all_decided(c: &Cluster<Synod>) -> bool {
    c.live().all(|(_, p)| p.is_decided())
}

/// Agreement: every learner that decided, decided the same value; validity: it was
/// proposed.
fn check(c: &Cluster<Synod>, proposed: &[&str]) -> Option<Bytes> {
    let mut value: Option<Bytes> = None;
    for (id, p) in c.live() {
        if let Some(v) = p.chosen().and_then(|v| v.command()) {
            assert!(proposed.iter().any(|x| x.as_bytes() == v.as_ref()), "{id} chose an unproposed value");
            if let Some(w) = &value {
                assert_eq!(v, w, "{id} disagrees");
            }
            value = Some(v.clone());
        }
    }
    value
}

#[test]
fn one_proposer_decides_and_everyone_learns() {
    let mut c = cluster(3, 1);
    c.propose(2, 7, "v").expect("proposed");
    assert!(c.run_until(Duration::from_secs(1), all_decided));
    for id in 1..=3 {
        assert_eq!(chosen(&c, id).as_deref(), Some(&b"v"[..]));
        assert_eq!(c.p(id).status().commit_index, 1);
    }
    assert_eq!(
        c.node(2).applied,
        vec![Apply::Command { index: 1, command: "v".into(), proposal: Some(ProposalId(7)) }]
    );
    assert_eq!(c.node(1).applied, vec![Apply::Command { index: 1, command: "v".into(), proposal: None }]);
    // One-shot: later proposals are refused, reads are answered at slot 1.
    assert_eq!(c.propose(1, 8, "w"), Err(ProposeError::Stopped));
    c.read(3, 1).expect("read");
    assert_eq!(c.node(3).reads, vec![(ballot_core::ReadId(1), 1)]);
}

#[test]
fn duelling_proposers_agree_and_terminate() {
    let mut winner_knew = 0;
    for seed in 0..200 {
        let n = if seed % 2 == 0 { 3 } else { 5 };
        let mut c = cluster(n, seed);
        c.lossy(0.1, seed);
        let mut rng = SeededRng::new(seed);
        c.filter(move |_, _, _| {
            if rng.gen_bool(0.3) { Fate::Delay(Duration::from_millis(rng.gen_range(0..20))) } else { Fate::Deliver }
        });
        if seed % 3 == 0 {
            c.disk_latency = Some(Duration::from_millis(2));
        }
        let proposers = [1, 2, 3];
        let values = ["a", "b", "c"];
        for (&p, v) in proposers.iter().zip(values) {
            c.propose(p, p, v).expect("proposed");
        }
        assert!(c.run_until(Duration::from_secs(30), all_decided), "seed {seed}: not all decided");
        let v = check(&c, &values).expect("decided");
        // Each loser learns its proposal failed. The winner learns it applied when the
        // value was decided in a ballot it proposed it in; when another proposer adopted
        // and decided it, the winner cannot tell its command from equal bytes (values
        // name no proposer) and reports the outcome unknown.
        for (&p, w) in proposers.iter().zip(values) {
            let node = c.node(p);
            let unknown = vec![(ProposalId(p), ProposeError::LeadershipLost)];
            if v == w.as_bytes() && node.failed.is_empty() {
                assert_eq!(
                    node.applied,
                    vec![Apply::Command { index: 1, command: v.clone(), proposal: Some(ProposalId(p)) }]
                );
                winner_knew += 1;
            } else {
                assert_eq!(node.failed, unknown, "seed {seed}");
                assert_eq!(node.applied, vec![Apply::Command { index: 1, command: v.clone(), proposal: None }]);
            }
        }
    }
    // Usually the proposer that gets its value decided does so in its own ballot.
    println!("the winner knew its outcome in {winner_knew} of 200 runs");
    assert!(winner_knew >= 150, "the winner knew its outcome in only {winner_knew} of 200 runs");
}

#[test]
fn a_proposer_left_alone_finishes() {
    let mut c = cluster(3, 11);
    // Messages are slower than the proposers' first retry, so their attempts overlap and
    // pre-empt each other.
    c.latency = Duration::from_millis(15);
    c.propose(1, 1, "one").expect("proposed");
    c.propose(2, 2, "two").expect("proposed");
    c.run_for(Duration::from_millis(40));
    assert!(c.live().all(|(_, p)| !p.is_decided()), "the duel should still be running");
    assert!(c.p(1).promised().round >= 2, "proposers should have retried with higher ballots");
    // Proposer 2 stops (crashes); proposer 1 must now finish alone.
    c.crash(2);
    let crashed_at = c.now;
    assert!(c.run_until(Duration::from_secs(10), |c| chosen(c, 1).is_some() && chosen(c, 3).is_some()));
    assert!(c.now.saturating_duration_since(crashed_at) < Duration::from_secs(3));
    let v = check(&c, &["one", "two"]).expect("decided");
    // The restarted proposer learns the same decision.
    c.restart(2);
    c.run_for(Duration::from_millis(1));
    if c.p(2).is_decided() {
        assert_eq!(chosen(&c, 2), Some(v.clone()));
    }
    assert_eq!(c.propose(2, 3, "late"), if c.p(2).is_decided() { Err(ProposeError::Stopped) } else { Ok(()) });
    assert!(c.run_until(Duration::from_secs(5), |c| chosen(c, 2).is_some()));
    assert_eq!(chosen(&c, 2), Some(v));
}

#[test]
fn agreement_survives_crashes_restarts_and_slow_disks() {
    for seed in 0..300 {
        let mut c = cluster(if seed % 2 == 0 { 3 } else { 5 }, 1000 + seed);
        let n = c.nodes.len() as u64;
        c.disk_latency = Some(Duration::from_millis(3));
        c.lossy(0.05, seed);
        let mut rng = SeededRng::new(seed);
        let mut first: Option<Bytes> = None;
        let names: Vec<String> = (1..=n).map(|i| format!("v{i}")).collect();
        let proposed: Vec<&str> = names.iter().map(String::as_str).collect();
        for step in 0..60 {
            let id = rng.gen_range(1..n + 1);
            match rng.gen_range(0..6) {
                0 if c.nodes[&NodeId(id)].proto.is_some() => {
                    let _ = c.propose(id, step, proposed[id as usize - 1].to_owned());
                }
                1 => c.crash(id),
                2 if c.nodes[&NodeId(id)].proto.is_none() => c.restart(id),
                _ => {}
            }
            c.run_for(Duration::from_millis(rng.gen_range(1..15)));
            if let Some(v) = check(&c, &proposed) {
                // Once anyone decided, the decision never changes, across crashes too.
                assert_eq!(first.get_or_insert(v.clone()), &v, "seed {seed}");
            }
        }
        for id in 1..=n {
            if c.nodes[&NodeId(id)].proto.is_none() {
                c.restart(id);
            }
        }
        c.clear_filters();
        if first.is_none() {
            let _ = c.propose(1, 999, "v1");
        }
        if !c.run_until(Duration::from_secs(30), all_decided) {
            for (id, p) in c.live() {
                println!("{id}: {p:?} timeout={:?}", p.poll_timeout());
            }
            panic!("seed {seed}: not all decided, first={first:?}");
        }
        let v = check(&c, &proposed).expect("decided");
        if let Some(f) = first {
            assert_eq!(f, v, "seed {seed}");
        }
    }
}

#[test]
fn nacks_carry_the_promise_so_proposers_back_off() {
    let mut c = cluster(3, 5);
    // Node 3 promises a high ballot to proposer 2 first; proposer 1's lower ballot is
    // refused with a Nack telling it the promise.
    let nacks = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let seen = nacks.clone();
    c.filter(move |from, to, m| {
        if let SynodMessage::Nack { ballot, promised } = m {
            seen.borrow_mut().push((from, to, *ballot, *promised));
        }
        Fate::Deliver
    });
    c.propose(2, 1, "x").expect("proposed");
    c.propose(2, 2, "y").expect_err("one proposal at a time");
    assert!(c.run_until(Duration::from_secs(1), all_decided));
    c.propose(1, 3, "z").expect_err("decided");
    assert!(nacks.borrow().iter().all(|(_, _, b, p)| p > b));
    assert_eq!(chosen(&c, 1).as_deref(), Some(&b"x"[..]));
}
