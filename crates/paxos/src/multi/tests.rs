//! Unit tests: exact outputs of one replica for given inputs.

use std::time::Duration;

use ballot_core::{
    Apply, Event, Instant, Membership, NodeId, Output, Persist, PersistId, ProposalId, ProposeError, Protocol, ReadId,
    Recovered, Role, SeededRng, Snapshot, SnapshotMeta,
};
use bytes::Bytes;

use super::{Config, Message, MultiPaxos};
use crate::{Ballot, Entry, HardState, PaxosError, Value};

type Out = Output<Message, Entry, HardState>;

const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);

fn b(round: u64, node: u64) -> Ballot {
    Ballot::new(round, NodeId(node))
}

fn cfg(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.election.timeout_min = Duration::from_millis(100);
    c.election.timeout_max = Duration::from_millis(200);
    c.election.heartbeat_interval = Duration::from_millis(10);
    c.election.pre_vote = false;
    c
}

fn members() -> Membership {
    Membership::new([N1, N2, N3])
}

fn node_with(c: Config) -> MultiPaxos {
    MultiPaxos::new(c, members(), Recovered::default(), SeededRng::new(7), Instant::ZERO).expect("valid")
}

fn node(id: NodeId) -> MultiPaxos {
    node_with(cfg(id))
}

fn drain(p: &mut MultiPaxos) -> Vec<Out> {
    std::iter::from_fn(|| p.poll_output()).collect()
}

fn sends(outs: &[Out]) -> Vec<(NodeId, Message)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { to, message } => Some((*to, message.clone())),
            _ => None,
        })
        .collect()
}

fn persists(outs: &[Out]) -> Vec<Persist<Entry, HardState>> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Persist(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn applies(outs: &[Out]) -> Vec<Apply> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Apply(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

/// Acknowledges every write in `outs`, returning what that released.
fn ack(p: &mut MultiPaxos, now: Instant, outs: &[Out]) -> Vec<Out> {
    match persists(outs).last() {
        Some(last) => {
            p.persisted(now, last.id);
            drain(p)
        }
        None => Vec::new(),
    }
}

fn cmd(data: &'static str) -> Value {
    Value::Command { data: Bytes::from(data) }
}

fn entry(slot: u64, ballot: Ballot, value: Value) -> Entry {
    Entry { slot, ballot, value }
}

/// Runs `p`'s timers until it becomes a candidate; returns the time and outputs.
fn until_candidate(p: &mut MultiPaxos) -> (Instant, Vec<Out>) {
    let mut outs = Vec::new();
    loop {
        let now = p.poll_timeout().expect("timer armed");
        p.handle_timeout(now);
        outs.extend(drain(p));
        if p.role() == Role::Candidate {
            return (now, outs);
        }
    }
}

/// n1 elected at ballot b1.1 with n2's promise; its no-op in slot 1 is decided.
fn leader() -> (MultiPaxos, Instant) {
    leader_with(cfg(N1))
}

/// As [`leader`], with configuration `c` (for n1).
fn leader_with(c: Config) -> (MultiPaxos, Instant) {
    let mut p = node_with(c);
    let (now, outs) = until_candidate(&mut p);
    let mut outs = ack(&mut p, now, &outs);
    p.handle_message(
        now,
        N2,
        Message::Promise { ballot: b(1, 1), from_slot: 1, decided: 0, entries: vec![], more: None },
    );
    outs.extend(drain(&mut p));
    assert_eq!(p.role(), Role::Leader);
    ack(&mut p, now, &outs);
    p.handle_message(now, N2, Message::Accepted { ballot: b(1, 1), first_slot: 1, last_slot: 1, seq: 0 });
    drain(&mut p);
    assert_eq!(p.commit_index(), 1);
    (p, now)
}

#[test]
fn promise_is_sent_only_after_the_promise_is_durable() {
    let mut p = node(N2);
    let t = Instant::from_millis(500);
    p.handle_message(t, N1, Message::Prepare { ballot: b(1, 1), from_slot: 1 });
    let mut batch = Persist::new(PersistId(1));
    batch.hard_state = Some(HardState { promised: b(1, 1), decided: 0 });
    assert_eq!(drain(&mut p), vec![Output::Persist(batch)]);
    p.persisted(t, PersistId(1));
    let promise = Message::Promise { ballot: b(1, 1), from_slot: 1, decided: 0, entries: vec![], more: None };
    assert_eq!(drain(&mut p), vec![Output::Send { to: N1, message: promise }]);
}

#[test]
fn accepted_is_sent_only_after_the_values_are_durable() {
    let mut p = node(N2);
    let t = Instant::from_millis(1);
    let values = vec![cmd("a"), cmd("b")];
    p.handle_message(t, N1, Message::Accept { ballot: b(1, 1), first_slot: 1, values, commit: 0, seq: 4 });
    let outs = drain(&mut p);
    assert!(sends(&outs).is_empty(), "{outs:?}");
    let ps = persists(&outs);
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].entries, vec![entry(1, b(1, 1), cmd("a")), entry(2, b(1, 1), cmd("b"))]);
    assert_eq!(ps[0].hard_state, Some(HardState { promised: b(1, 1), decided: 0 }));
    assert!(outs.contains(&Output::Event(Event::LeaderChanged { leader: Some(N1), term: 1 })));
    let released = ack(&mut p, t, &outs);
    assert_eq!(
        sends(&released),
        vec![(N1, Message::Accepted { ballot: b(1, 1), first_slot: 1, last_slot: 2, seq: 4 })]
    );
}

#[test]
fn promise_carries_the_highest_accepted_value_per_slot() {
    let mut p = node(N2);
    let t = Instant::from_millis(1);
    let (a, bb, c, x) = (cmd("a"), cmd("b"), cmd("c"), cmd("x"));
    p.handle_message(
        t,
        N1,
        Message::Accept { ballot: b(1, 1), first_slot: 1, values: vec![a.clone(), bb, c.clone()], commit: 0, seq: 0 },
    );
    // A later leader overwrote slot 2 in a higher ballot.
    p.handle_message(
        t,
        N3,
        Message::Accept { ballot: b(2, 3), first_slot: 2, values: vec![x.clone()], commit: 0, seq: 0 },
    );
    let outs = drain(&mut p);
    ack(&mut p, t, &outs);
    // Long after the last leader contact, a new candidate prepares from slot 1.
    let t = Instant::from_millis(1000);
    p.handle_message(t, N1, Message::Prepare { ballot: b(3, 1), from_slot: 1 });
    let outs = drain(&mut p);
    let released = ack(&mut p, t, &outs);
    let entries = vec![entry(1, b(1, 1), a), entry(2, b(2, 3), x), entry(3, b(1, 1), c)];
    assert_eq!(
        sends(&released),
        vec![(N1, Message::Promise { ballot: b(3, 1), from_slot: 1, decided: 0, entries, more: None })]
    );
}

#[test]
fn long_promises_come_in_pages() {
    let mut c = cfg(N2);
    c.max_accept_slots = 2;
    let mut p = node_with(c);
    let t = Instant::from_millis(1);
    let values: Vec<Value> = (1..=5).map(|_| cmd("v")).collect();
    p.handle_message(t, N1, Message::Accept { ballot: b(1, 1), first_slot: 1, values, commit: 0, seq: 0 });
    let outs = drain(&mut p);
    ack(&mut p, t, &outs);
    let t = Instant::from_millis(1000);
    p.handle_message(t, N3, Message::Prepare { ballot: b(2, 3), from_slot: 2 });
    let outs = drain(&mut p);
    let page = sends(&ack(&mut p, t, &outs));
    let e = |s| entry(s, b(1, 1), cmd("v"));
    assert_eq!(
        page,
        vec![(
            N3,
            Message::Promise { ballot: b(2, 3), from_slot: 2, decided: 0, entries: vec![e(2), e(3)], more: Some(4) }
        )]
    );
    p.handle_message(t, N3, Message::Prepare { ballot: b(2, 3), from_slot: 4 });
    assert_eq!(
        sends(&drain(&mut p)),
        vec![(
            N3,
            Message::Promise { ballot: b(2, 3), from_slot: 4, decided: 0, entries: vec![e(4), e(5)], more: None }
        )]
    );
}

#[test]
fn lower_ballots_are_refused_with_the_promise() {
    let mut p = node(N2);
    let t = Instant::from_millis(1000);
    p.handle_message(t, N3, Message::Prepare { ballot: b(3, 3), from_slot: 1 });
    let outs = drain(&mut p);
    ack(&mut p, t, &outs);
    let nack = |ballot| Message::Nack { ballot, promised: b(3, 3), leader: None };
    p.handle_message(
        t,
        N1,
        Message::Accept { ballot: b(2, 1), first_slot: 1, values: vec![Value::Noop], commit: 0, seq: 0 },
    );
    p.handle_message(t, N1, Message::Prepare { ballot: b(2, 1), from_slot: 1 });
    p.handle_message(t, N1, Message::Heartbeat { ballot: b(2, 1), commit: 0, seq: 1 });
    assert_eq!(
        drain(&mut p),
        vec![
            Output::Send { to: N1, message: nack(b(2, 1)) },
            Output::Send { to: N1, message: nack(b(2, 1)) },
            Output::Send { to: N1, message: nack(b(2, 1)) },
        ]
    );
    assert_eq!(p.accepted(1), None);
    assert_eq!(p.promised(), b(3, 3));
}

#[test]
fn a_live_leader_keeps_acceptors_from_promising_others() {
    let mut p = node(N2);
    let t = Instant::from_millis(1);
    p.handle_message(t, N1, Message::Heartbeat { ballot: b(1, 1), commit: 0, seq: 1 });
    drain(&mut p);
    // Within the election timeout of the heartbeat: no pre-vote, no promise.
    let t2 = t + Duration::from_millis(50);
    p.handle_message(t2, N3, Message::PrePrepare { ballot: b(2, 3) });
    p.handle_message(t2, N3, Message::Prepare { ballot: b(2, 3), from_slot: 1 });
    assert_eq!(
        drain(&mut p),
        vec![
            Output::Send {
                to: N3,
                message: Message::PrePromise { ballot: b(2, 3), granted: false, promised: Ballot::ZERO }
            },
            Output::Send {
                to: N3,
                message: Message::Nack { ballot: b(2, 3), promised: Ballot::ZERO, leader: Some(N1) }
            },
        ]
    );
    // Later, the leader silent, both are granted (the pre-vote changes nothing durable).
    let t3 = t + Duration::from_millis(150);
    p.handle_message(t3, N3, Message::PrePrepare { ballot: b(2, 3) });
    assert_eq!(
        drain(&mut p),
        vec![Output::Send {
            to: N3,
            message: Message::PrePromise { ballot: b(2, 3), granted: true, promised: Ballot::ZERO }
        }]
    );
    assert_eq!(p.promised(), Ballot::ZERO);
    p.handle_message(t3, N3, Message::Prepare { ballot: b(2, 3), from_slot: 1 });
    let outs = drain(&mut p);
    assert_eq!(persists(&outs).len(), 1);
    assert_eq!(p.promised(), b(2, 3));
}

#[test]
fn new_leader_reproposes_the_highest_accepted_values_and_fills_holes_with_noops() {
    let mut p = node(N1);
    // Learn of round 5 first, so the candidate's ballot is b6.1.
    p.handle_message(Instant::ZERO, N2, Message::Heartbeat { ballot: b(5, 2), commit: 0, seq: 1 });
    drain(&mut p);
    let (now, outs) = until_candidate(&mut p);
    assert_eq!(p.ballot(), b(6, 1));
    let prepare = Message::Prepare { ballot: b(6, 1), from_slot: 1 };
    assert_eq!(sends(&outs), vec![(N2, prepare.clone()), (N3, prepare)]);
    // n1's own promise is not durable yet; n2 and n3 answer.
    let (a, cc, x) = (cmd("a"), cmd("c"), cmd("x"));
    p.handle_message(
        now,
        N2,
        Message::Promise {
            ballot: b(6, 1),
            from_slot: 1,
            decided: 0,
            entries: vec![entry(1, b(3, 2), a), entry(3, b(3, 2), cc.clone()), entry(5, b(2, 2), cmd("e"))],
            more: None,
        },
    );
    assert_eq!(p.role(), Role::Candidate);
    p.handle_message(
        now,
        N3,
        Message::Promise {
            ballot: b(6, 1),
            from_slot: 1,
            decided: 0,
            entries: vec![entry(1, b(4, 3), x.clone()), entry(5, b(5, 3), cmd("y"))],
            more: None,
        },
    );
    // A quorum, but n1's own promise is not durable: a crash now would forget ballot
    // b6.1, and a restarted n1 could lead in it again with other values. It waits.
    assert_eq!(p.role(), Role::Candidate);
    let outs = ack(&mut p, now, &outs);
    assert_eq!(p.role(), Role::Leader);
    let values = vec![x, Value::Noop, cc, Value::Noop, cmd("y")];
    let entries: Vec<Entry> = (1..).zip(values.clone()).map(|(s, v)| entry(s, b(6, 1), v)).collect();
    let ps = persists(&outs);
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].entries, entries);
    assert!(outs.contains(&Output::Event(Event::RoleChanged(Role::Leader))));
    assert!(outs.contains(&Output::Event(Event::LeaderChanged { leader: Some(N1), term: 6 })));
    let accept = Message::Accept { ballot: b(6, 1), first_slot: 1, values, commit: 0, seq: 0 };
    assert_eq!(sends(&outs), vec![(N2, accept.clone()), (N3, accept)]);
}

#[test]
fn leader_counts_its_own_accept_only_once_durable() {
    let (mut p, now) = leader();
    p.propose(now, ProposalId(9), Bytes::from("set")).expect("leader");
    let outs = drain(&mut p);
    assert_eq!(persists(&outs).len(), 1);
    // n2 accepts, but n1's own write is not durable: no quorum yet.
    p.handle_message(now, N2, Message::Accepted { ballot: b(1, 1), first_slot: 2, last_slot: 2, seq: 0 });
    assert!(applies(&drain(&mut p)).is_empty());
    assert_eq!(p.commit_index(), 1);
    let released = ack(&mut p, now, &outs);
    assert_eq!(
        applies(&released),
        vec![Apply::Command { index: 2, command: Bytes::from("set"), proposal: Some(ProposalId(9)) }]
    );
    assert_eq!(p.commit_index(), 2);
}

#[test]
fn proposals_between_drains_form_one_batch_and_one_accept_per_peer() {
    let (mut p, now) = leader();
    for i in 0..5 {
        p.propose(now, ProposalId(i), Bytes::from(vec![b'x'; 3])).expect("leader");
    }
    let outs = drain(&mut p);
    let ps = persists(&outs);
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].entries.iter().map(|e| e.slot).collect::<Vec<_>>(), vec![2, 3, 4, 5, 6]);
    let accepts: Vec<_> = sends(&outs).into_iter().filter(|(_, m)| matches!(m, Message::Accept { .. })).collect();
    assert_eq!(accepts.len(), 2);
    for (_, m) in accepts {
        assert!(matches!(m, Message::Accept { first_slot: 2, ref values, commit: 1, .. } if values.len() == 5));
    }
}

#[test]
fn accepts_are_pipelined_within_the_inflight_window() {
    let mut c = cfg(N1);
    c.max_accept_slots = 2;
    c.max_inflight_accepts = 2;
    let mut p = node_with(c);
    let (now, outs) = until_candidate(&mut p);
    ack(&mut p, now, &outs);
    p.handle_message(
        now,
        N2,
        Message::Promise { ballot: b(1, 1), from_slot: 1, decided: 0, entries: vec![], more: None },
    );
    let outs = drain(&mut p);
    ack(&mut p, now, &outs);
    for i in 0..7 {
        p.propose(now, ProposalId(i), Bytes::from("v")).expect("leader");
    }
    let to_n2 = |outs: &[Out]| -> Vec<(u64, usize)> {
        sends(outs)
            .into_iter()
            .filter_map(|(to, m)| match m {
                Message::Accept { first_slot, values, .. } if to == N2 => Some((first_slot, values.len())),
                _ => None,
            })
            .collect()
    };
    // Slot 1 (no-op) is in flight; one more Accept of two slots fits the window.
    assert_eq!(to_n2(&drain(&mut p)), vec![(2, 2)]);
    p.handle_message(now, N2, Message::Accepted { ballot: b(1, 1), first_slot: 1, last_slot: 1, seq: 0 });
    assert_eq!(to_n2(&drain(&mut p)), vec![(4, 2)]);
    // A lost Accept shows as a gap: the leader resends from the first missing slot.
    p.handle_message(now, N2, Message::Accepted { ballot: b(1, 1), first_slot: 4, last_slot: 5, seq: 0 });
    assert_eq!(to_n2(&drain(&mut p)), vec![(2, 2), (4, 2)]);
}

#[test]
fn followers_apply_on_commit_notification() {
    let mut p = node(N2);
    let t = Instant::from_millis(1);
    let values = vec![Value::Noop, cmd("a")];
    p.handle_message(t, N1, Message::Accept { ballot: b(1, 1), first_slot: 1, values, commit: 0, seq: 0 });
    let outs = drain(&mut p);
    assert!(applies(&outs).is_empty());
    ack(&mut p, t, &outs);
    p.handle_message(t, N1, Message::Commit { ballot: b(1, 1), commit: 2 });
    assert_eq!(
        applies(&drain(&mut p)),
        vec![Apply::Internal { index: 1 }, Apply::Command { index: 2, command: Bytes::from("a"), proposal: None }]
    );
    assert_eq!(p.commit_index(), 2);
    assert_eq!(p.decided(2), Some(&cmd("a")));
}

#[test]
fn lagging_follower_catches_up_slots_it_accepted_in_another_ballot() {
    let mut p = node(N2);
    let t = Instant::from_millis(1);
    // Accepted in ballot b1.1 (values later replaced by the new leader).
    p.handle_message(
        t,
        N1,
        Message::Accept { ballot: b(1, 1), first_slot: 1, values: vec![cmd("old")], commit: 0, seq: 0 },
    );
    let outs = drain(&mut p);
    ack(&mut p, t, &outs);
    // Leader b2.3 says slots 1..=2 are decided; slot 1's entry here is from b1.1.
    p.handle_message(t, N3, Message::Heartbeat { ballot: b(2, 3), commit: 2, seq: 1 });
    let outs = drain(&mut p);
    assert_eq!(sends(&outs), vec![(N3, Message::HeartbeatAck { ballot: b(2, 3), seq: 1, commit: 0 })]);
    assert_eq!(p.commit_index(), 0);
    // At its next ticks without progress it asks the leader.
    let mut asked = Vec::new();
    let mut now = t;
    while asked.is_empty() {
        now = p.poll_timeout().expect("timer");
        p.handle_timeout(now);
        asked = sends(&drain(&mut p)).into_iter().filter(|(_, m)| matches!(m, Message::CatchUp { .. })).collect();
    }
    assert_eq!(asked, vec![(N3, Message::CatchUp { from_slot: 1, to_slot: 2 })]);
    let decided = vec![entry(1, b(2, 3), cmd("new")), entry(2, b(2, 3), Value::Noop)];
    p.handle_message(now, N3, Message::CatchUpReply { entries: decided, commit: 2 });
    let outs = drain(&mut p);
    assert_eq!(
        applies(&outs),
        vec![Apply::Command { index: 1, command: Bytes::from("new"), proposal: None }, Apply::Internal { index: 2 }]
    );
    // The decided prefix is written with the entries, atomically (a heartbeat does not
    // raise the promise: only a Prepare or an Accept does).
    let ps = persists(&outs);
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].entries.len(), 2);
    assert_eq!(ps[0].hard_state, Some(HardState { promised: b(1, 1), decided: 2 }));
}

#[test]
fn catch_up_requests_are_served_from_the_decided_prefix() {
    let (mut p, now) = leader();
    p.propose(now, ProposalId(1), Bytes::from("a")).expect("leader");
    let outs = drain(&mut p);
    ack(&mut p, now, &outs);
    p.handle_message(now, N2, Message::Accepted { ballot: b(1, 1), first_slot: 2, last_slot: 2, seq: 0 });
    drain(&mut p);
    assert_eq!(p.commit_index(), 2);
    p.handle_message(now, N3, Message::CatchUp { from_slot: 1, to_slot: 9 });
    let entries = vec![entry(1, b(1, 1), Value::Noop), entry(2, b(1, 1), cmd("a"))];
    assert_eq!(sends(&drain(&mut p)), vec![(N3, Message::CatchUpReply { entries, commit: 2 })]);
}

/// N1 elected with N2's promise and slot 1 decided with N2's acceptance: a leader ready
/// to compact and send snapshots.
fn leader_with_slot_1_decided(config: Config) -> (MultiPaxos, Instant) {
    let mut p = node_with(config);
    let (now, outs) = until_candidate(&mut p);
    ack(&mut p, now, &outs);
    p.handle_message(
        now,
        N2,
        Message::Promise { ballot: b(1, 1), from_slot: 1, decided: 0, entries: vec![], more: None },
    );
    let outs = drain(&mut p);
    ack(&mut p, now, &outs);
    p.handle_message(now, N2, Message::Accepted { ballot: b(1, 1), first_slot: 1, last_slot: 1, seq: 0 });
    drain(&mut p);
    (p, now)
}

#[test]
fn snapshots_are_sent_in_chunks_and_survive_a_lost_chunk() {
    let mut sc = cfg(N1);
    sc.max_snapshot_chunk = 4;
    let (mut sender, now) = leader_with_slot_1_decided(sc);
    let data = Bytes::from_static(b"0123456789");
    sender.compact(now, 1, data.clone());
    let outs = drain(&mut sender);
    assert_eq!(persists(&outs)[0].compact_to, Some(1));
    assert_eq!(sender.first_index(), 2);

    let mut receiver = node(N3);
    sender.handle_message(now, N3, Message::CatchUp { from_slot: 1, to_slot: 1 });
    let chunks: Vec<Message> = sends(&drain(&mut sender)).into_iter().map(|(_, m)| m).collect();
    let offsets: Vec<u64> = chunks
        .iter()
        .filter_map(|m| if let Message::Snapshot { offset, .. } = m { Some(*offset) } else { None })
        .collect();
    assert_eq!(offsets, vec![0, 4, 8]);
    // The chunk at 4 is lost; the receiver acknowledges 4 twice.
    let mut acks = Vec::new();
    for m in [&chunks[0], &chunks[2]] {
        receiver.handle_message(now, N1, m.clone());
        acks.extend(sends(&drain(&mut receiver)));
    }
    let ack4 = Message::SnapshotAck { index: 1, offset: 4 };
    assert_eq!(acks, vec![(N1, ack4.clone()), (N1, ack4.clone())]);
    sender.handle_message(now, N3, ack4.clone());
    assert!(sends(&drain(&mut sender)).is_empty());
    sender.handle_message(now, N3, ack4);
    let resent: Vec<Message> = sends(&drain(&mut sender)).into_iter().map(|(_, m)| m).collect();
    assert_eq!(resent, vec![chunks[1].clone(), chunks[2].clone()]);
    receiver.handle_message(now, N1, resent[0].clone());
    drain(&mut receiver);
    receiver.handle_message(now, N1, resent[1].clone());
    let outs = drain(&mut receiver);
    let meta = SnapshotMeta { index: 1, term: 1, membership: members() };
    let snapshot = Snapshot { meta, data };
    assert_eq!(applies(&outs), vec![Apply::Restore(Box::new(snapshot.clone()))]);
    let ps = persists(&outs);
    assert_eq!(ps[0].snapshot.as_deref(), Some(&snapshot));
    assert_eq!(ps[0].compact_to, Some(1));
    assert_eq!(sends(&outs), vec![(N1, Message::SnapshotAck { index: 1, offset: 10 })]);
    assert_eq!((receiver.commit_index(), receiver.applied_index(), receiver.first_index()), (1, 1, 2));
}

/// A late or duplicated acknowledgement of an earlier offset, right after progress, does
/// not rewind the transfer (each rewind resends the window, and every resent chunk draws
/// acknowledgements of its own); a receiver that really lost its copy is served again
/// once the transfer made no progress for a heartbeat interval.
#[test]
fn stale_snapshot_acks_do_not_multiply_the_transfer() {
    let mut sc = cfg(N1);
    sc.max_snapshot_chunk = 4;
    let heartbeat = sc.election.heartbeat_interval;
    let (mut sender, now) = leader_with_slot_1_decided(sc);
    sender.compact(now, 1, Bytes::from_static(b"0123456789"));
    drain(&mut sender);
    sender.handle_message(now, N3, Message::CatchUp { from_slot: 1, to_slot: 1 });
    assert_eq!(sends(&drain(&mut sender)).len(), 3, "the whole window goes at once");
    sender.handle_message(now, N3, Message::SnapshotAck { index: 1, offset: 8 });
    assert!(sends(&drain(&mut sender)).is_empty());
    for _ in 0..5 {
        sender.handle_message(now, N3, Message::SnapshotAck { index: 1, offset: 4 });
        assert!(sends(&drain(&mut sender)).is_empty(), "a stale acknowledgement resends nothing");
    }
    let later = now + heartbeat;
    sender.handle_message(later, N3, Message::SnapshotAck { index: 1, offset: 0 });
    let resent: Vec<u64> = sends(&drain(&mut sender))
        .into_iter()
        .filter_map(|(_, m)| if let Message::Snapshot { offset, .. } = m { Some(offset) } else { None })
        .collect();
    assert_eq!(resent, vec![0, 4, 8], "a receiver that lost its copy gets it again");
}

/// Decided slots are handed out lazily (built from the log when polled). A snapshot
/// installed before they were polled must not lose them: they come out first, in order.
#[test]
fn decided_slots_not_yet_polled_come_out_before_a_snapshot_installed_after_them() {
    let mut p = node(N2);
    let now = Instant::ZERO;
    let values = vec![cmd("a"), cmd("b"), cmd("c")];
    p.handle_message(now, N1, Message::Accept { ballot: b(1, 1), first_slot: 1, values, commit: 2, seq: 0 });
    assert_eq!((p.commit_index(), p.applied_index()), (2, 0), "decided, not yet handed out");
    let meta = SnapshotMeta { index: 5, term: 1, membership: members() };
    let data = Bytes::from_static(b"s");
    p.handle_message(
        now,
        N1,
        Message::Snapshot { meta: Box::new(meta.clone()), total: 1, offset: 0, data: data.clone() },
    );
    let outs = drain(&mut p);
    assert_eq!(
        applies(&outs),
        vec![
            Apply::Command { index: 1, command: Bytes::from("a"), proposal: None },
            Apply::Command { index: 2, command: Bytes::from("b"), proposal: None },
            Apply::Restore(Box::new(Snapshot { meta, data })),
        ]
    );
    assert_eq!((p.commit_index(), p.applied_index(), p.first_index()), (5, 5, 6));
    assert!(drain(&mut p).is_empty());
}

#[test]
fn read_index_waits_for_a_quorum_round() {
    let (mut p, now) = leader();
    p.read(now, ReadId(5)).expect("leader");
    let outs = drain(&mut p);
    assert!(!outs.iter().any(|o| matches!(o, Output::ReadReady { .. })));
    let hb: Vec<_> = sends(&outs).into_iter().filter(|(_, m)| matches!(m, Message::Heartbeat { .. })).collect();
    let Some((_, Message::Heartbeat { seq, commit: 1, .. })) = hb.first().cloned() else { panic!("{outs:?}") };
    assert_eq!(hb.len(), 2);
    // An ack of an older round does not confirm it.
    p.handle_message(now, N3, Message::HeartbeatAck { ballot: b(1, 1), seq: seq - 1, commit: 1 });
    assert!(drain(&mut p).is_empty());
    p.handle_message(now, N3, Message::HeartbeatAck { ballot: b(1, 1), seq, commit: 1 });
    assert_eq!(drain(&mut p), vec![Output::ReadReady { id: ReadId(5), index: 1 }]);
    // Followers refuse, naming the leader.
    let mut f = node(N2);
    f.handle_message(now, N1, Message::Heartbeat { ballot: b(1, 1), commit: 1, seq: 1 });
    assert_eq!(f.read(now, ReadId(1)), Err(ProposeError::NotLeader { leader: Some(N1) }));
}

#[test]
fn reads_wait_for_the_first_slot_of_the_ballot() {
    let mut p = node(N1);
    let (now, outs) = until_candidate(&mut p);
    ack(&mut p, now, &outs);
    p.handle_message(
        now,
        N2,
        Message::Promise { ballot: b(1, 1), from_slot: 1, decided: 0, entries: vec![], more: None },
    );
    let outs = drain(&mut p);
    p.read(now, ReadId(1)).expect("leader");
    assert!(drain(&mut p).iter().all(|o| !matches!(o, Output::Send { message: Message::Heartbeat { .. }, .. })));
    ack(&mut p, now, &outs);
    p.handle_message(now, N2, Message::Accepted { ballot: b(1, 1), first_slot: 1, last_slot: 1, seq: 0 });
    let outs = drain(&mut p);
    // Now the read joins a round (the Accepted above carried an older one).
    let Some((_, Message::Heartbeat { seq, .. })) =
        sends(&outs).into_iter().find(|(_, m)| matches!(m, Message::Heartbeat { .. }))
    else {
        panic!("{outs:?}")
    };
    p.handle_message(now, N2, Message::HeartbeatAck { ballot: b(1, 1), seq, commit: 1 });
    assert_eq!(drain(&mut p), vec![Output::ReadReady { id: ReadId(1), index: 1 }]);
}

#[test]
fn lease_reads_are_answered_without_a_round_until_the_lease_ends() {
    let mut c = cfg(N1);
    c.election.lease_reads = true; // 90 ms
    let mut p = node_with(c);
    let (now, outs) = until_candidate(&mut p);
    ack(&mut p, now, &outs);
    p.handle_message(
        now,
        N2,
        Message::Promise { ballot: b(1, 1), from_slot: 1, decided: 0, entries: vec![], more: None },
    );
    let outs = drain(&mut p);
    ack(&mut p, now, &outs);
    p.handle_message(now, N2, Message::Accepted { ballot: b(1, 1), first_slot: 1, last_slot: 1, seq: 0 });
    drain(&mut p);
    assert!(!p.has_lease());
    // A heartbeat round sent at `t` and acknowledged grants the lease until t + 90 ms.
    let t = now + Duration::from_millis(10);
    p.handle_timeout(t);
    let outs = drain(&mut p);
    let Some((_, Message::Heartbeat { seq, .. })) = sends(&outs).into_iter().next() else { panic!("{outs:?}") };
    let later = t + Duration::from_millis(5);
    p.handle_message(later, N2, Message::HeartbeatAck { ballot: b(1, 1), seq, commit: 1 });
    drain(&mut p);
    assert!(p.has_lease());
    p.read(later, ReadId(1)).expect("leader");
    assert_eq!(drain(&mut p), vec![Output::ReadReady { id: ReadId(1), index: 1 }]);
    // After the lease ran out, a read needs a round again.
    let expired = t + Duration::from_millis(91);
    p.read(expired, ReadId(2)).expect("leader");
    let outs = drain(&mut p);
    assert!(!outs.iter().any(|o| matches!(o, Output::ReadReady { .. })));
    assert!(sends(&outs).iter().any(|(_, m)| matches!(m, Message::Heartbeat { .. })));
}

#[test]
fn leader_without_a_quorum_steps_down_and_fails_its_reads() {
    let (mut p, now) = leader();
    p.read(now, ReadId(1)).expect("leader");
    drain(&mut p);
    let mut t = now;
    while p.role() == Role::Leader {
        t = p.poll_timeout().expect("timer");
        p.handle_timeout(t);
        let outs = drain(&mut p);
        if p.role() != Role::Leader {
            assert!(outs.contains(&Output::ReadFailed { id: ReadId(1), error: ProposeError::LeadershipLost }));
            assert!(outs.contains(&Output::Event(Event::RoleChanged(Role::Follower))));
        }
    }
    assert!(t.saturating_duration_since(now) >= Duration::from_millis(100));
    assert_eq!(p.propose(t, ProposalId(1), Bytes::from("x")), Err(ProposeError::NotLeader { leader: None }));
}

#[test]
fn a_higher_ballot_preempts_the_leader() {
    let (mut p, now) = leader();
    p.handle_message(now, N2, Message::Nack { ballot: b(1, 1), promised: b(4, 3), leader: None });
    let outs = drain(&mut p);
    assert!(outs.contains(&Output::Event(Event::RoleChanged(Role::Follower))));
    assert_eq!(p.role(), Role::Follower);
    // Its next ballot is above the one that pre-empted it.
    let (_, outs) = until_candidate(&mut p);
    assert_eq!(p.ballot(), b(5, 1));
    assert!(sends(&outs).iter().any(|(_, m)| *m == Message::Prepare { ballot: b(5, 1), from_slot: 2 }));
}

#[test]
fn proposals_outside_the_limits_are_refused() {
    let mut c = cfg(N1);
    c.max_command_size = 4;
    c.max_pending_proposals = 2;
    let mut p = node_with(c);
    assert_eq!(
        p.propose(Instant::ZERO, ProposalId(1), Bytes::from("x")),
        Err(ProposeError::NotLeader { leader: None })
    );
    let (now, outs) = until_candidate(&mut p);
    ack(&mut p, now, &outs);
    p.handle_message(
        now,
        N2,
        Message::Promise { ballot: b(1, 1), from_slot: 1, decided: 0, entries: vec![], more: None },
    );
    drain(&mut p);
    assert_eq!(p.propose(now, ProposalId(1), Bytes::from("12345")), Err(ProposeError::TooLarge { size: 5, max: 4 }));
    // The no-op is the first undecided slot; one more fits, then the window is full.
    assert_eq!(p.propose(now, ProposalId(2), Bytes::from("a")), Ok(()));
    assert_eq!(p.propose(now, ProposalId(3), Bytes::from("b")), Err(ProposeError::Busy));
}

#[test]
fn restart_reapplies_the_decided_prefix_and_keeps_the_promise() {
    let snapshot = Snapshot { meta: SnapshotMeta { index: 2, term: 1, membership: members() }, data: Bytes::from("s") };
    let recovered = Recovered {
        hard_state: Some(HardState { promised: b(3, 2), decided: 4 }),
        snapshot: Some(snapshot.clone()),
        entries: vec![
            entry(3, b(1, 1), cmd("c")),
            entry(4, b(3, 2), Value::Noop),
            entry(5, b(3, 2), cmd("e")),
            entry(7, b(2, 3), cmd("g")),
        ],
    };
    let mut p = MultiPaxos::new(cfg(N1), Membership::default(), recovered, SeededRng::new(1), Instant::ZERO)
        .expect("consistent");
    assert_eq!(
        applies(&drain(&mut p)),
        vec![
            Apply::Restore(Box::new(snapshot)),
            Apply::Command { index: 3, command: Bytes::from("c"), proposal: None },
            Apply::Internal { index: 4 },
        ]
    );
    assert_eq!((p.commit_index(), p.first_index(), p.last_index()), (4, 3, 7));
    assert_eq!(p.promised(), b(3, 2));
    assert_eq!(p.membership(), &members());
    assert_eq!(p.decided(5), None);
    assert_eq!(p.accepted(5).map(|(b, _)| b), Some(b(3, 2)));
    // The promise survives: a lower ballot is refused.
    let t = Instant::from_millis(1000);
    p.handle_message(t, N2, Message::Prepare { ballot: b(2, 2), from_slot: 5 });
    assert!(matches!(&sends(&drain(&mut p))[..], [(_, Message::Nack { promised, .. })] if *promised == b(3, 2)));

    // Decided slots missing from the log are refused.
    let broken = Recovered {
        hard_state: Some(HardState { promised: b(1, 1), decided: 3 }),
        snapshot: None,
        entries: vec![entry(1, b(1, 1), Value::Noop), entry(3, b(1, 1), Value::Noop)],
    };
    let err = MultiPaxos::new(cfg(N1), members(), broken, SeededRng::new(1), Instant::ZERO).expect_err("corrupt");
    assert!(matches!(err, PaxosError::CorruptRecovery(_)), "{err}");
}

#[test]
fn malformed_messages_are_dropped_with_an_error() {
    let mut p = node(N2);
    let t = Instant::from_millis(1);
    // A ballot that names another node than the sender.
    p.handle_message(
        t,
        N1,
        Message::Accept { ballot: b(1, 3), first_slot: 1, values: vec![Value::Noop], commit: 0, seq: 0 },
    );
    // A slot range that overflows.
    p.handle_message(
        t,
        N1,
        Message::Accept { ballot: b(1, 1), first_slot: u64::MAX, values: vec![Value::Noop; 2], commit: 0, seq: 0 },
    );
    p.handle_message(
        t,
        N1,
        Message::Accept { ballot: b(1, 1), first_slot: 0, values: vec![Value::Noop], commit: 0, seq: 0 },
    );
    p.handle_message(t, N1, Message::CatchUp { from_slot: 5, to_slot: 2 });
    // A snapshot larger than allowed, and a chunk beyond its own size.
    let meta = SnapshotMeta { index: 9, term: 1, membership: members() };
    p.handle_message(
        t,
        N1,
        Message::Snapshot { meta: Box::new(meta.clone()), total: u64::MAX, offset: 0, data: Bytes::new() },
    );
    p.handle_message(t, N1, Message::Snapshot { meta: Box::new(meta), total: 2, offset: 1, data: Bytes::from("ab") });
    assert_eq!(p.invalid_messages(), 6);
    assert!(matches!(p.last_error(), Some(PaxosError::InvalidMessage { from: N1, .. })));
    assert!(drain(&mut p).is_empty());
    assert_eq!(p.accepted(1), None);
    assert_eq!(p.promised(), Ballot::ZERO);
}

#[test]
fn invalid_configurations_are_refused() {
    let mut c = cfg(N1);
    c.election.lease_reads = true;
    c.election.check_quorum = false;
    let err = MultiPaxos::new(c, members(), Recovered::default(), SeededRng::new(1), Instant::ZERO).expect_err("lease");
    assert_eq!(
        err,
        PaxosError::InvalidConfig {
            field: "election.lease_reads",
            reason: "requires check_quorum (a leader must step down before its lease can be wrong)"
        }
    );
    let mut c = cfg(N1);
    c.max_accept_slots = 0;
    assert!(matches!(c.validate(), Err(PaxosError::InvalidConfig { field: "max_accept_slots", .. })));
}

#[test]
fn pending_proposals_fail_when_their_slot_decides_another_value() {
    let (mut p, now) = leader();
    p.propose(now, ProposalId(1), Bytes::from("mine")).expect("leader");
    drain(&mut p);
    // Deposed; the new leader b2.2 decides slot 2 with a no-op.
    p.handle_message(
        now,
        N2,
        Message::Accept { ballot: b(2, 2), first_slot: 2, values: vec![Value::Noop], commit: 2, seq: 1 },
    );
    let outs = drain(&mut p);
    assert!(outs.contains(&Output::ProposalFailed { id: ProposalId(1), error: ProposeError::LeadershipLost }));
    assert_eq!(applies(&outs), vec![Apply::Internal { index: 2 }]);
    assert_eq!(p.leader(), Some(N2));
}

#[test]
fn reads_wait_until_every_reproposed_slot_is_decided_again() {
    let mut p = node(N1);
    let (now, outs) = until_candidate(&mut p);
    ack(&mut p, now, &outs);
    // n2 reports slots 1..=3 accepted under an earlier leader (slot 3 may be decided).
    let old = b(0, 2);
    let entries = (1..=3).map(|s| entry(s, old, cmd("v"))).collect();
    p.handle_message(now, N2, Message::Promise { ballot: b(1, 1), from_slot: 1, decided: 0, entries, more: None });
    let outs = drain(&mut p);
    ack(&mut p, now, &outs);
    p.read(now, ReadId(1)).expect("leader");
    // Slots 1 and 2 are decided again in b1.1, slot 3 not yet: committing slots of its
    // own ballot is not enough, the read must wait for slot 3.
    p.handle_message(now, N2, Message::Accepted { ballot: b(1, 1), first_slot: 1, last_slot: 2, seq: 0 });
    let outs = drain(&mut p);
    assert_eq!(p.commit_index(), 2);
    assert!(!sends(&outs).iter().any(|(_, m)| matches!(m, Message::Heartbeat { .. })));
    p.handle_message(now, N2, Message::Accepted { ballot: b(1, 1), first_slot: 3, last_slot: 3, seq: 0 });
    let outs = drain(&mut p);
    let Some((_, Message::Heartbeat { seq, commit: 3, .. })) =
        sends(&outs).into_iter().find(|(_, m)| matches!(m, Message::Heartbeat { .. }))
    else {
        panic!("{outs:?}")
    };
    p.handle_message(now, N2, Message::HeartbeatAck { ballot: b(1, 1), seq, commit: 3 });
    assert_eq!(drain(&mut p), vec![Output::ReadReady { id: ReadId(1), index: 3 }]);
}

#[test]
fn inflight_bytes_limit_accepts_per_peer() {
    let mut c = cfg(N1);
    c.max_accept_bytes = 100;
    c.max_inflight_bytes = 150;
    let mut p = node_with(c);
    let (now, outs) = until_candidate(&mut p);
    ack(&mut p, now, &outs);
    p.handle_message(
        now,
        N2,
        Message::Promise { ballot: b(1, 1), from_slot: 1, decided: 0, entries: vec![], more: None },
    );
    let outs = drain(&mut p);
    ack(&mut p, now, &outs);
    p.handle_message(now, N2, Message::Accepted { ballot: b(1, 1), first_slot: 1, last_slot: 1, seq: 0 });
    drain(&mut p);
    for i in 0..6 {
        p.propose(now, ProposalId(i), Bytes::from(vec![0u8; 92])).expect("leader"); // 100 bytes each
    }
    let firsts = |outs: &[Out]| -> Vec<u64> {
        sends(outs)
            .into_iter()
            .filter_map(|(to, m)| match m {
                Message::Accept { first_slot, values, .. } if to == N2 => {
                    assert_eq!(values.len(), 1);
                    Some(first_slot)
                }
                _ => None,
            })
            .collect()
    };
    // 100 bytes per Accept, 150 in flight: two Accepts, then wait.
    assert_eq!(firsts(&drain(&mut p)), vec![2, 3]);
    p.handle_message(now, N2, Message::Accepted { ballot: b(1, 1), first_slot: 2, last_slot: 2, seq: 0 });
    assert_eq!(firsts(&drain(&mut p)), vec![4]);
}

/// Found by ballot-sim (`cargo xtask sim --algo multipaxos --seed 121 --nodes 5`, and
/// seed 280): phase 1 takes at least a disk sync on every acceptor, and with slow disks
/// that is longer than the spread of election timeouts. Followers that had promised a
/// candidate kept their old election deadlines, ran against it before it finished, and
/// candidates pre-empted each other for ever (no leader 10 s after healing). Like a Raft
/// vote grant, a promise to another candidate now restarts the election timer.
#[test]
fn a_promise_to_another_candidate_restarts_the_election_timer() {
    let mut p = node(N2);
    // At the earliest possible election deadline (and the end of the stickiness a
    // replica grants its own start).
    let t = Instant::from_millis(100);
    p.handle_message(t, N3, Message::Prepare { ballot: b(1, 3), from_slot: 1 });
    let outs = drain(&mut p);
    let promise = ack(&mut p, t, &outs);
    assert!(matches!(sends(&promise)[..], [(N3, Message::Promise { .. })]), "{promise:?}");
    // A full election timeout passes from the promise without a campaign.
    loop {
        let next = p.poll_timeout().expect("timer armed");
        if next >= t + Duration::from_millis(100) {
            break;
        }
        p.handle_timeout(next);
        drain(&mut p);
        assert_eq!(p.role(), Role::Follower, "ran against the candidate it promised at {next:?}");
    }
    // Then, with no leader heard from, it runs itself, above the ballot it promised.
    let (at, outs) = until_candidate(&mut p);
    assert!(at >= t + Duration::from_millis(100), "{at:?}");
    assert!(sends(&outs).iter().any(|(_, m)| matches!(m, Message::Prepare { ballot, .. } if *ballot > b(1, 3))));
}

/// Found by ballot-sim (`cargo xtask sim --algo multipaxos --seed 461 --nodes 3`): a
/// leader installed a snapshot past what one peer had acknowledged, the other peer
/// crashed, and every acknowledgement from the first peer then looked like a gap after
/// a lost Accept (it started above the peer's acknowledged prefix, and the slots in
/// between were gone from the leader's log), so nothing was decided any more. Slots the
/// leader knows decided now count as acknowledged by everyone.
#[test]
fn acknowledgements_above_a_compacted_prefix_still_count() {
    let (mut p, now) = leader();
    for i in 0..3 {
        p.propose(now, ProposalId(i), Bytes::from("v")).expect("leader");
    }
    let outs = drain(&mut p);
    ack(&mut p, now, &outs);
    p.handle_message(now, N2, Message::Accepted { ballot: b(1, 1), first_slot: 2, last_slot: 4, seq: 0 });
    drain(&mut p);
    assert_eq!(p.commit_index(), 4);
    // n3 acknowledged nothing, and now slots 1..=4 are compacted away.
    p.compact(now, 4, Bytes::from("state"));
    let outs = drain(&mut p);
    ack(&mut p, now, &outs);
    // n2 goes quiet: the next command needs n3's acceptance.
    p.propose(now, ProposalId(9), Bytes::from("w")).expect("leader");
    let outs = drain(&mut p);
    let to_n3 = sends(&outs).into_iter().filter(|(to, _)| *to == N3).collect::<Vec<_>>();
    assert!(matches!(&to_n3[..], [(_, Message::Accept { first_slot: 5, .. })]), "{to_n3:?}");
    ack(&mut p, now, &outs);
    p.handle_message(now, N3, Message::Accepted { ballot: b(1, 1), first_slot: 5, last_slot: 5, seq: 0 });
    let outs = drain(&mut p);
    assert_eq!(p.commit_index(), 5);
    assert_eq!(
        applies(&outs),
        vec![Apply::Command { index: 5, command: Bytes::from("w"), proposal: Some(ProposalId(9)) }]
    );
}

/// Found by the in-memory core benchmark (`docs/benchmarks.md`): the slower acceptor's
/// acknowledgements arrive after the leader and the faster acceptor decided those slots.
/// Raising its acknowledged prefix to the decided one (P3, above) must not keep its
/// acknowledgements from freeing its window of Accepts in flight: they did not, so after
/// `max_inflight_accepts` Accepts the leader sent it nothing more, and it waited for
/// catch-up. The window still limits what is in flight to a peer that does not answer.
#[test]
fn a_slower_acceptors_acknowledgements_free_its_window_after_the_quorum_decided() {
    let mut c = cfg(N1);
    c.max_inflight_accepts = 2;
    let (mut p, now) = leader_with(c);
    let accepts_to = |outs: &[Out], to: NodeId| -> Vec<u64> {
        sends(outs)
            .into_iter()
            .filter_map(|(t, m)| match m {
                Message::Accept { first_slot, .. } if t == to => Some(first_slot),
                _ => None,
            })
            .collect()
    };
    // n3 acknowledges the no-op of slot 1 only now, after n2 decided it.
    p.handle_message(now, N3, Message::Accepted { ballot: b(1, 1), first_slot: 1, last_slot: 1, seq: 0 });
    drain(&mut p);
    for slot in 2..=8 {
        p.propose(now, ProposalId(slot), Bytes::from("v")).expect("leader");
        let outs = drain(&mut p);
        assert_eq!(accepts_to(&outs, N3), vec![slot], "slot {slot}: n3 gets its Accept");
        ack(&mut p, now, &outs);
        // n2 first: the slot is decided; then n3.
        p.handle_message(now, N2, Message::Accepted { ballot: b(1, 1), first_slot: slot, last_slot: slot, seq: 0 });
        drain(&mut p);
        assert_eq!(p.commit_index(), slot);
        p.handle_message(now, N3, Message::Accepted { ballot: b(1, 1), first_slot: slot, last_slot: slot, seq: 0 });
        drain(&mut p);
    }
    // n3 stops answering: two more Accepts fill its window, then it gets none, while n2
    // still gets every one.
    let mut to_n3 = Vec::new();
    for slot in 9..=12 {
        p.propose(now, ProposalId(slot), Bytes::from("v")).expect("leader");
        let outs = drain(&mut p);
        assert_eq!(accepts_to(&outs, N2), vec![slot]);
        to_n3.extend(accepts_to(&outs, N3));
        ack(&mut p, now, &outs);
        p.handle_message(now, N2, Message::Accepted { ballot: b(1, 1), first_slot: slot, last_slot: slot, seq: 0 });
        drain(&mut p);
    }
    assert_eq!(to_n3, vec![9, 10]);
    assert_eq!(p.commit_index(), 12);
    // Its acknowledgement of both (late, after they were decided) opens the window again:
    // the rest goes out at once.
    p.handle_message(now, N3, Message::Accepted { ballot: b(1, 1), first_slot: 9, last_slot: 10, seq: 0 });
    let outs = drain(&mut p);
    assert_eq!(accepts_to(&outs, N3), vec![11]);
    let sent: Vec<_> = sends(&outs)
        .into_iter()
        .filter_map(|(t, m)| match m {
            Message::Accept { first_slot, values, .. } if t == N3 => Some((first_slot, values.len())),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![(11, 2)], "slots 11 and 12 in one Accept");
}

/// Found by ballot-sim (`cargo xtask sim --algo multipaxos --seed 459 --nodes 3`, and
/// seeds 308, 528, 693 and 1806 of a 2000-seed sweep): with a disk slower than the
/// leader's retransmission period, every retransmitted Accept was written again, so the
/// acceptor's write queue grew faster than it synced and its acknowledgements fell
/// further and further behind (nothing decided for 10 s after healing). An acceptor
/// that already holds the same value in the same ballot writes nothing; its Accepted
/// still waits for the write that holds the value.
#[test]
fn a_retransmitted_accept_is_not_written_again() {
    let mut p = node(N2);
    let now = Instant::ZERO;
    let accept =
        Message::Accept { ballot: b(1, 1), first_slot: 1, values: vec![cmd("a"), cmd("b")], commit: 0, seq: 0 };
    p.handle_message(now, N1, accept.clone());
    let first = drain(&mut p);
    assert_eq!(persists(&first).iter().map(|w| w.entries.len()).collect::<Vec<_>>(), vec![2]);
    // The leader retransmits before the write is durable: no second write, and no
    // acknowledgement before the first write is durable.
    p.handle_message(now, N1, accept.clone());
    let second = drain(&mut p);
    assert!(persists(&second).is_empty() && sends(&second).is_empty(), "{second:?}");
    let released = ack(&mut p, now, &first);
    let acked = |outs: &[Out]| {
        sends(outs)
            .into_iter()
            .filter(|(to, m)| *to == N1 && matches!(m, Message::Accepted { first_slot: 1, last_slot: 2, .. }))
            .count()
    };
    assert_eq!(acked(&released), 2);
    // Once durable, a retransmission is acknowledged at once, still without a write.
    p.handle_message(now, N1, accept);
    let third = drain(&mut p);
    assert!(persists(&third).is_empty(), "{third:?}");
    assert_eq!(acked(&third), 1);
    // A different value for the slot (a higher ballot's) is written as usual.
    let newer = Message::Accept { ballot: b(2, 3), first_slot: 2, values: vec![Value::Noop], commit: 0, seq: 0 };
    p.handle_message(now, N3, newer);
    assert_eq!(persists(&drain(&mut p)).iter().map(|w| w.entries.len()).collect::<Vec<_>>(), vec![1]);
}
