//! Multi-node Multi-Paxos runs on the in-memory harness.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use ballot_core::{Apply, Membership, NodeId, ProposalId, ProposeError, Protocol, Role};
use ballot_paxos::{Config, Message, MultiPaxos, Value};
use common::{Cluster, Fate};

fn config(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.election.timeout_min = Duration::from_millis(200);
    c.election.timeout_max = Duration::from_millis(400);
    c.election.heartbeat_interval = Duration::from_millis(20);
    c.max_accept_slots = 32;
    c
}

fn cluster_with(n: u64, seed: u64, tweak: impl Fn(&mut Config) + 'static) -> Cluster<MultiPaxos> {
    let ids: Vec<u64> = (1..=n).collect();
    let members = Membership::new(ids.iter().map(|&i| NodeId(i)));
    Cluster::new(&ids, seed, move |id, rec, rng, now| {
        let mut c = config(id);
        tweak(&mut c);
        MultiPaxos::new(c, members.clone(), rec, rng, now).expect("valid state")
    })
}

fn cluster(n: u64, seed: u64) -> Cluster<MultiPaxos> {
    cluster_with(n, seed, |_| {})
}

/// The unique live leader whose ballot is the highest, once one exists.
fn leader(c: &Cluster<MultiPaxos>) -> Option<u64> {
    let leaders: Vec<(u64, _)> =
        c.live().filter(|(_, p)| p.role() == Role::Leader).map(|(id, p)| (id.0, p.ballot())).collect();
    leaders.iter().max_by_key(|(_, b)| *b).map(|(id, _)| *id)
}

fn elect(c: &mut Cluster<MultiPaxos>) -> u64 {
    assert!(c.run_until(Duration::from_secs(10), |c| leader(c).is_some()), "no leader elected");
    leader(c).expect("leader")
}

/// Every pair of live replicas agrees on every slot both know decided.
fn check_agreement(c: &Cluster<MultiPaxos>) {
    check_agreement_with(c, &mut BTreeMap::new());
}

/// Same, also against `seen`: every value decided earlier in the run (by replicas that
/// may have crashed since).
fn check_agreement_with(c: &Cluster<MultiPaxos>, seen: &mut BTreeMap<u64, (u64, Value)>) {
    for (id, p) in c.live() {
        for slot in p.first_index()..=p.commit_index() {
            let v = p.decided(slot).unwrap_or_else(|| panic!("{id} misses decided slot {slot}")).clone();
            if let Some((other, w)) = seen.get(&slot) {
                assert_eq!(&v, w, "slot {slot}: {id} and n{other} disagree");
            } else {
                seen.insert(slot, (id.0, v));
            }
        }
    }
}

fn committed_everywhere(c: &Cluster<MultiPaxos>, upto: u64) -> bool {
    c.live().all(|(_, p)| p.commit_index() >= upto && p.applied_index() >= upto)
}

fn propose_n(c: &mut Cluster<MultiPaxos>, leader: u64, from: u64, n: u64) {
    for i in from..from + n {
        c.propose(leader, i, format!("cmd-{i}")).expect("leader accepts");
    }
}

#[test]
fn three_nodes_commit_commands_in_the_same_order() {
    let mut c = cluster(3, 1);
    let l = elect(&mut c);
    let writes_before = c.node(l).persists;
    // Ten drains of ten proposals each.
    for batch in 0..10u64 {
        c.with(l, |p, now| {
            for i in 1..=10 {
                let n = batch * 10 + i;
                p.propose(now, ProposalId(n), format!("cmd-{n}").into()).expect("leader accepts");
            }
        });
    }
    let last = c.p(l).last_index();
    assert!(c.run_until(Duration::from_secs(5), |c| committed_everywhere(c, last)));
    check_agreement(&c);
    let reference = c.node(l).commands();
    assert_eq!(reference.len(), 100);
    for id in 1..=3 {
        assert_eq!(c.node(id).commands(), reference, "n{id} applied a different sequence");
    }
    // Only the proposer sees its proposal ids, each exactly once, in order.
    let mine: Vec<u64> = c
        .node(l)
        .applied
        .iter()
        .filter_map(|a| match a {
            Apply::Command { proposal: Some(p), .. } => Some(p.0),
            _ => None,
        })
        .collect();
    assert_eq!(mine, (1..=100).collect::<Vec<_>>());
    for id in (1..=3).filter(|&i| i != l) {
        assert!(c.node(id).applied.iter().all(|a| !matches!(a, Apply::Command { proposal: Some(_), .. })));
    }
    // Proposals made between two drains share one write on the leader and one on each
    // follower (one Accept of ten values each).
    assert_eq!(c.node(l).persists - writes_before, 10, "leader writes");
    for id in (1..=3).filter(|&i| i != l) {
        assert!(c.node(id).persists <= 10 + 2, "n{id} wrote {} batches", c.node(id).persists);
    }
}

#[test]
fn five_nodes_commit_under_message_loss_and_delay() {
    let mut c = cluster(5, 2);
    let l = elect(&mut c);
    c.lossy(0.1, 99);
    let mut rng = ballot_core::SeededRng::new(5);
    c.filter(move |_, _, _| if rng.gen_bool(0.2) { Fate::Delay(Duration::from_millis(15)) } else { Fate::Deliver });
    let mut next = 1;
    let mut leader_now = l;
    while next <= 300 {
        if let Some(l) = leader(&c) {
            leader_now = l;
        }
        match c.propose(leader_now, next, format!("c{next}")) {
            Ok(()) => next += 1,
            Err(ProposeError::NotLeader { .. } | ProposeError::Busy) => {}
            Err(e) => panic!("{e}"),
        }
        c.run_for(Duration::from_millis(1));
    }
    c.clear_filters();
    let l = elect(&mut c);
    let last = c.p(l).last_index();
    assert!(c.run_until(Duration::from_secs(10), |c| committed_everywhere(c, last)), "not all caught up");
    check_agreement(&c);
    let reference = c.node(1).commands();
    for id in 2..=5 {
        assert_eq!(c.node(id).commands(), reference);
    }
    // Lost messages forced retransmissions, but each command was applied at most once.
    let mut cmds: Vec<_> = reference.iter().map(|(_, b)| b.clone()).collect();
    let before = cmds.len();
    cmds.sort();
    cmds.dedup();
    assert_eq!(cmds.len(), before, "a command was decided twice");
    assert!(c.dropped > 0);
}

#[test]
fn leader_crash_elects_a_new_leader_without_changing_decided_slots() {
    let mut c = cluster(3, 3);
    let old = elect(&mut c);
    propose_n(&mut c, old, 1, 50);
    let last = c.p(old).last_index();
    assert!(c.run_until(Duration::from_secs(5), |c| committed_everywhere(c, last)));
    let decided_before: Vec<Value> = (1..=last).map(|s| c.p(old).decided(s).cloned().expect("decided")).collect();

    // Some commands reach only the leader's disk before it crashes.
    c.isolate(NodeId(old));
    propose_n(&mut c, old, 51, 5);
    c.run_for(Duration::from_millis(5));
    c.crash(old);
    c.clear_filters();

    let new = elect(&mut c);
    assert_ne!(new, old);
    propose_n(&mut c, new, 100, 10);
    let last2 = c.p(new).last_index();
    assert!(c.run_until(Duration::from_secs(5), |c| c.live().all(|(_, p)| p.commit_index() >= last2)));
    for (id, p) in c.live() {
        for (i, v) in decided_before.iter().enumerate() {
            assert_eq!(p.decided(i as u64 + 1), Some(v), "{id} changed decided slot {}", i + 1);
        }
    }
    // The old leader comes back, follows, and catches up without changing anything.
    c.restart(old);
    assert!(c.run_until(Duration::from_secs(5), |c| c.p(old).commit_index() >= last2));
    check_agreement(&c);
    assert_eq!(c.p(old).leader(), Some(NodeId(new)));
    for (i, v) in decided_before.iter().enumerate() {
        assert_eq!(c.p(old).decided(i as u64 + 1), Some(v));
    }
    // The isolated proposals were never replicated: lost for good, or decided once.
    let cmds = c.node(new).commands();
    for i in 51..56 {
        let n = cmds.iter().filter(|(_, b)| b == &format!("cmd-{i}")).count();
        assert!(n <= 1, "cmd-{i} decided {n} times");
    }
}

#[test]
fn partitioned_leader_steps_down_and_rejoins_without_disruption() {
    let mut c = cluster(3, 4);
    let old = elect(&mut c);
    propose_n(&mut c, old, 1, 10);
    c.run_for(Duration::from_millis(50));
    c.isolate(NodeId(old));
    // Check-quorum makes the isolated leader step down; the others elect a new one.
    assert!(c.run_until(Duration::from_secs(5), |c| c.p(old).role() != Role::Leader));
    assert!(c.run_until(Duration::from_secs(5), |c| leader(c).is_some_and(|l| l != old)));
    let new = leader(&c).expect("leader");
    let ballot = c.p(new).ballot();
    // While isolated, the old leader keeps probing with pre-votes, which raise no ballot.
    c.run_for(Duration::from_secs(2));
    assert!(c.p(old).promised() <= ballot, "pre-vote must not raise the isolated node's promise");
    c.clear_filters();
    propose_n(&mut c, new, 100, 5);
    let last = c.p(new).last_index();
    assert!(c.run_until(Duration::from_secs(5), |c| committed_everywhere(c, last)));
    assert_eq!(c.p(new).ballot(), ballot, "the rejoining node disturbed the leader");
    assert_eq!(c.p(new).role(), Role::Leader);
    check_agreement(&c);
}

#[test]
fn failed_proposals_are_reported_when_their_slot_decides_otherwise() {
    let mut c = cluster(3, 5);
    let old = elect(&mut c);
    c.run_for(Duration::from_millis(50));
    // The leader accepts commands but none reach a follower.
    c.isolate(NodeId(old));
    propose_n(&mut c, old, 1, 3);
    assert!(c.run_until(Duration::from_secs(5), |c| leader(c).is_some_and(|l| l != old)));
    let new = leader(&c).expect("leader");
    propose_n(&mut c, new, 10, 3);
    c.clear_filters();
    let last = c.p(new).last_index();
    assert!(c.run_until(Duration::from_secs(5), |c| committed_everywhere(c, last)));
    check_agreement(&c);
    // The new leader filled those slots with its own commands: the old leader reports
    // its proposals failed, each once.
    let mut failed: Vec<u64> = c.node(old).failed.iter().map(|(id, _)| id.0).collect();
    failed.sort_unstable();
    assert_eq!(failed, vec![1, 2, 3]);
    assert!(c.node(old).failed.iter().all(|(_, e)| *e == ProposeError::LeadershipLost));
}

#[test]
fn read_index_is_linearizable_with_writes() {
    let mut c = cluster(3, 6);
    let l = elect(&mut c);
    propose_n(&mut c, l, 1, 5);
    let last = c.p(l).last_index();
    assert!(c.run_until(Duration::from_secs(5), |c| c.p(l).commit_index() >= last));
    c.read(l, 1).expect("leader reads");
    assert!(c.run_until(Duration::from_secs(1), |c| !c.node(l).reads.is_empty()));
    assert_eq!(c.node(l).reads, vec![(ballot_core::ReadId(1), last)]);
    let follower = (1..=3).find(|&i| i != l).expect("follower");
    assert_eq!(c.read(follower, 2), Err(ProposeError::NotLeader { leader: Some(NodeId(l)) }));

    // A leader cut off from the others cannot confirm reads; they fail when it steps down.
    c.isolate(NodeId(l));
    c.read(l, 3).expect("still believes it leads");
    assert!(c.run_until(Duration::from_secs(5), |c| !c.node(l).read_failed.is_empty()));
    assert_eq!(c.node(l).reads.len(), 1);
    assert_eq!(c.node(l).read_failed, vec![(ballot_core::ReadId(3), ProposeError::LeadershipLost)]);
}

#[test]
fn lagging_follower_catches_up_by_snapshot_with_lost_chunks() {
    let mut c = cluster_with(3, 7, |cfg| {
        cfg.max_snapshot_chunk = 100;
        cfg.max_inflight_accepts = 4;
    });
    let l = elect(&mut c);
    let lag = (1..=3).find(|&i| i != l).expect("follower");
    c.isolate(NodeId(lag));
    propose_n(&mut c, l, 1, 40);
    let last = c.p(l).last_index();
    let other = (1..=3).find(|&i| i != l && i != lag).expect("other");
    assert!(
        c.run_until(Duration::from_secs(5), |c| c.p(l).applied_index() >= last && c.p(other).applied_index() >= last)
    );
    // Both up-to-date replicas compact their logs behind a 1000-byte snapshot.
    let data: bytes::Bytes = (0..1000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    for id in [l, other] {
        let d = data.clone();
        c.with(id, |p, now| p.compact(now, last, d));
        assert_eq!(c.p(id).first_index(), last + 1);
    }
    c.clear_filters();
    // Lose every third snapshot chunk on first sending.
    let mut count = 0u32;
    let mut lost = std::collections::BTreeSet::new();
    c.filter(move |_, _, m| {
        if let Message::Snapshot { offset, .. } = m {
            count += 1;
            if count.is_multiple_of(3) && lost.insert(*offset) {
                return Fate::Drop;
            }
        }
        Fate::Deliver
    });
    propose_n(&mut c, l, 100, 3);
    let last2 = c.p(l).last_index();
    assert!(c.run_until(Duration::from_secs(10), |c| committed_everywhere(c, last2)), "lagging node did not catch up");
    let restored: Vec<_> = c.node(lag).applied.iter().filter(|a| matches!(a, Apply::Restore(_))).collect();
    assert_eq!(restored.len(), 1);
    assert!(matches!(restored[0], Apply::Restore(s) if s.data == data && s.meta.index == last));
    assert_eq!(c.p(lag).snapshot_index(), last);
    assert!(c.dropped > 0);
    check_agreement(&c);
    // After the snapshot the lagging node applied exactly the later commands.
    assert_eq!(c.node(lag).commands(), c.node(l).commands().into_iter().filter(|(i, _)| *i > last).collect::<Vec<_>>());
}

#[test]
fn restarted_replicas_recover_their_log_and_decided_prefix() {
    let mut c = cluster(3, 8);
    let l = elect(&mut c);
    propose_n(&mut c, l, 1, 20);
    let last = c.p(l).last_index();
    assert!(c.run_until(Duration::from_secs(5), |c| committed_everywhere(c, last)));
    c.run_for(Duration::from_millis(100)); // lets the decided prefix reach the disk
    let before = c.node(l).commands();
    for id in 1..=3 {
        c.crash(id);
    }
    for id in 1..=3 {
        c.restart(id);
        // Decided slots are applied again straight from the disk, before any message.
        assert_eq!(c.node(id).commands(), before, "n{id} did not re-apply its decided prefix");
    }
    let l = elect(&mut c);
    propose_n(&mut c, l, 100, 5);
    let last2 = c.p(l).last_index();
    assert!(c.run_until(Duration::from_secs(5), |c| committed_everywhere(c, last2)));
    check_agreement(&c);
}

/// One seeded run: loss, delay, duplication, partitions, crashes and restarts while
/// clients propose; then the faults heal and every replica must converge on one log.
fn random_faults(seed: u64, rounds: u32) {
    let mut rng = ballot_core::SeededRng::new(seed);
    let n = if rng.gen_bool(0.5) { 3 } else { 5 };
    let pre_vote = rng.gen_bool(0.7);
    let lease = rng.gen_bool(0.3);
    let batch = rng.gen_range(1..8) as usize;
    let mut c = cluster_with(n, 100 + seed, move |cfg| {
        cfg.election.pre_vote = pre_vote;
        cfg.election.lease_reads = lease;
        cfg.max_accept_slots = batch;
        cfg.max_inflight_accepts = 3;
        cfg.max_snapshot_chunk = 7;
    });
    let loss = rng.gen_range(0..15) as f64 / 100.0;
    c.lossy(loss, seed);
    let mut fault_rng = ballot_core::SeededRng::new(seed + 1000);
    c.filter(move |_, _, _| {
        let x = fault_rng.gen_range(0..100);
        if x < 8 {
            Fate::Delay(Duration::from_millis(fault_rng.gen_range(1..80)))
        } else if x < 11 {
            Fate::Duplicate(Duration::from_millis(fault_rng.gen_range(0..50)))
        } else {
            Fate::Deliver
        }
    });
    let cut = std::rc::Rc::new(std::cell::RefCell::new(std::collections::BTreeSet::<(u64, u64)>::new()));
    let cut2 = cut.clone();
    c.filter(move |from, to, _| if cut2.borrow().contains(&(from.0, to.0)) { Fate::Drop } else { Fate::Deliver });
    if rng.gen_bool(0.5) {
        c.disk_latency = Some(Duration::from_millis(rng.gen_range(1..10)));
    }
    let mut decided_ever = BTreeMap::new();
    // Reads: id -> (node, highest slot any replica knew decided when it was issued).
    let mut reads: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut read_id = 0;
    let mut proposal = 0;
    let mut crashed: Vec<u64> = Vec::new();
    for _round in 0..rounds {
        if let Some(l) = leader(&c) {
            let k = rng.gen_range(0..6);
            c.with(l, |p, now| {
                for _ in 0..k {
                    proposal += 1;
                    let _ = p.propose(now, ProposalId(proposal), format!("s{seed}-{proposal}").into());
                }
            });
            if rng.gen_bool(0.3) {
                read_id += 1;
                let floor = c.live().map(|(_, p)| p.commit_index()).max().unwrap_or(0);
                if c.read(l, read_id).is_ok() {
                    reads.insert(read_id, (l, floor));
                    if std::env::var_os("PAXOS_VERBOSE").is_some() {
                        let info: Vec<_> = c
                            .live()
                            .map(|(id, p)| (id.0, p.role(), p.ballot(), p.commit_index(), p.has_lease()))
                            .collect();
                        println!("t={:?} read {read_id} on n{l} floor {floor}: {info:?}", c.now);
                        for (id, p) in c.live() {
                            let d = format!("{p:?}");
                            let lead = &d[d.find("lead:").unwrap_or(0)..];
                            println!(
                                "   {id}: e42={:?} e41={:?} {}",
                                p.accepted(42),
                                p.accepted(41).map(|(b, _)| b),
                                &lead[..lead.len().min(300)]
                            );
                        }
                    }
                }
            }
        }
        match rng.gen_range(0..20) {
            0 => {
                let id = rng.gen_range(1..n + 1);
                if !crashed.contains(&id) {
                    c.crash(id);
                    crashed.push(id);
                }
            }
            1 => {
                if let Some(id) = crashed.pop() {
                    c.restart(id);
                }
            }
            2 => {
                let (a, b) = (rng.gen_range(1..n + 1), rng.gen_range(1..n + 1));
                cut.borrow_mut().insert((a, b));
                cut.borrow_mut().insert((b, a));
            }
            3 => cut.borrow_mut().clear(),
            4 => {
                // A replica snapshots what it applied.
                let id = rng.gen_range(1..n + 1);
                if c.nodes[&NodeId(id)].proto.is_some() {
                    let upto = c.p(id).applied_index();
                    c.with(id, |p, now| p.compact(now, upto, format!("snap-{upto}").into()));
                }
            }
            _ => {}
        }
        c.run_for(Duration::from_millis(rng.gen_range(1..60)));
        check_agreement_with(&c, &mut decided_ever);
        // A read is linearizable if it reflects every write decided before it began.
        for (id, node) in &c.nodes {
            for (rid, index) in &node.reads {
                if let Some((issuer, floor)) = reads.get(&rid.0) {
                    assert_eq!(*issuer, id.0);
                    assert!(index >= floor, "seed {seed}: read {} at index {index} misses slot {floor}", rid.0);
                }
            }
        }
    }
    for id in crashed {
        c.restart(id);
    }
    c.clear_filters();
    // Like a client: propose through the current leader, retry if it was deposed.
    let applied_final = |c: &Cluster<MultiPaxos>| {
        c.live().find_map(|(_, p)| {
            (1..=p.commit_index())
                .find(|&s| matches!(p.decided(s), Some(Value::Command { data, .. }) if data == "final"))
        })
    };
    let mut l = 0;
    for attempt in 0.. {
        assert!(attempt < 10, "seed {seed}: final never decided");
        l = elect(&mut c);
        c.propose(l, 1_000_000 + attempt, "final").expect("leader");
        if c.run_until(Duration::from_secs(3), |c| applied_final(c).is_some()) {
            break;
        }
    }
    let last = applied_final(&c).expect("final");
    if !c.run_until(Duration::from_secs(30), |c| committed_everywhere(c, last)) {
        for (id, p) in c.live() {
            let dbg = format!("{p:?}");
            println!("{id}: {}", &dbg[dbg.find("snapshot:").unwrap_or(0)..]);
        }
    }
    assert!(
        c.run_until(Duration::from_secs(1), |c| committed_everywhere(c, last)),
        "seed {seed}: no convergence: {:?}",
        c.live().map(|(id, p)| (id.0, p.role(), p.commit_index(), p.applied_index())).collect::<Vec<_>>()
    );
    check_agreement_with(&c, &mut decided_ever);
    // Replicas that never restored a snapshot applied identical command sequences.
    let full: Vec<u64> =
        (1..=n).filter(|&id| !c.node(id).applied.iter().any(|a| matches!(a, Apply::Restore(_)))).collect();
    for w in full.windows(2) {
        let upto = |id| c.node(id).commands().into_iter().filter(|(i, _)| *i <= last).collect::<Vec<_>>();
        let (a, b) = (upto(w[0]), upto(w[1]));
        if a != b {
            let i = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
            panic!(
                "seed {seed}: n{} and n{} differ at {i}: {:?} vs {:?} (lengths {} {}), commits {} {}",
                w[0],
                w[1],
                a.get(i),
                b.get(i),
                a.len(),
                b.len(),
                c.p(w[0]).commit_index(),
                c.p(w[1]).commit_index()
            );
        }
    }
    if std::env::var_os("PAXOS_VERBOSE").is_some() {
        println!(
            "seed {seed}: n={n} proposals={proposal} decided={} leader ballot={:?} dropped={} delivered={}",
            c.p(l).commit_index(),
            c.p(l).ballot(),
            c.dropped,
            c.delivered
        );
    }
}

#[test]
fn random_faults_keep_agreement() {
    for seed in 0..200 {
        random_faults(seed, 60);
    }
}

/// The same with many more seeds: `cargo test -p ballot-paxos --release -- --ignored`.
#[test]
#[ignore = "long: thousands of seeded fault schedules"]
fn random_faults_many_seeds() {
    let seeds: u64 = std::env::var("PAXOS_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let first: u64 = std::env::var("PAXOS_SEED0").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    for seed in first..first + seeds {
        random_faults(seed, 150);
    }
}

#[test]
fn lease_reads_are_served_locally_while_the_lease_holds() {
    let mut c = cluster_with(3, 9, |cfg| cfg.election.lease_reads = true);
    let l = elect(&mut c);
    c.run_for(Duration::from_millis(60));
    assert!(c.p(l).has_lease());
    let sent_before = c.delivered;
    c.read(l, 1).expect("read");
    // Served at once, with no message exchanged.
    assert_eq!(c.node(l).reads, vec![(ballot_core::ReadId(1), c.p(l).commit_index())]);
    assert_eq!(c.delivered, sent_before);
    // Cut off, the leader's lease runs out before anyone else may lead.
    c.isolate(NodeId(l));
    let isolated_at = c.now;
    assert!(c.run_until(Duration::from_secs(5), |c| leader(c).is_some_and(|x| x != l)));
    let new_leader_at = c.now;
    assert!(!c.p(l).has_lease() || c.p(l).role() != Role::Leader);
    assert!(new_leader_at.saturating_duration_since(isolated_at) >= Duration::from_millis(180));
}

#[test]
fn proposals_outside_limits_are_refused() {
    let mut c = cluster_with(3, 10, |cfg| {
        cfg.max_command_size = 8;
        cfg.max_pending_proposals = 4;
    });
    let l = elect(&mut c);
    assert_eq!(c.propose(l, 1, "123456789"), Err(ProposeError::TooLarge { size: 9, max: 8 }));
    c.isolate(NodeId(l)); // nothing commits
    let mut ok = 0;
    for i in 0..10 {
        match c.propose(l, 10 + i, "x") {
            Ok(()) => ok += 1,
            Err(e) => assert_eq!(e, ProposeError::Busy),
        }
    }
    assert!(ok <= 4 && ok > 0, "{ok}");
    let f = (1..=3).find(|&i| i != l).expect("follower");
    assert!(matches!(c.propose(f, 99, "x"), Err(ProposeError::NotLeader { .. })));
    assert_eq!(c.p(f).status().role, Role::Follower);
    let _ = ProposalId(0);
}
