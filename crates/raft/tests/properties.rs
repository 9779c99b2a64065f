//! Property tests: membership-change arithmetic and wire round-trips.

use std::collections::BTreeSet;

use ballot_core::{Membership, NodeId, ProposalId, ProposeError, SnapshotMeta};
use ballot_raft::{Conflict, Entry, EntryPayload, HardState, MembershipChange, Message, RaftError};
use bytes::Bytes;
use proptest::prelude::*;

fn ids() -> impl Strategy<Value = BTreeSet<NodeId>> {
    proptest::collection::btree_set((1..8u64).prop_map(NodeId), 0..5)
}

fn membership() -> impl Strategy<Value = Membership> {
    (ids(), ids()).prop_map(|(voters, learners)| {
        let learners = learners.difference(&voters).copied().collect();
        Membership { voters, outgoing: BTreeSet::new(), learners }
    })
}

proptest! {
    #[test]
    fn membership_change_target_does_what_it_says(
        current in membership(),
        add_voters in ids(),
        add_learners in ids(),
        remove in ids(),
    ) {
        let change = MembershipChange { add_voters: add_voters.clone(), add_learners: add_learners.clone(), remove: remove.clone() };
        let overlap = !add_voters.is_disjoint(&add_learners) || !add_voters.is_disjoint(&remove) || !add_learners.is_disjoint(&remove);
        match change.target(&current) {
            Ok(t) => {
                prop_assert!(!overlap);
                prop_assert!(!t.voters.is_empty());
                prop_assert!(t.outgoing.is_empty());
                prop_assert!(t.voters.is_disjoint(&t.learners), "a node is a voter or a learner, not both");
                prop_assert!(add_voters.is_subset(&t.voters));
                prop_assert!(add_learners.is_subset(&t.learners));
                prop_assert!(remove.iter().all(|n| !t.members().contains(n)));
                for n in current.members() {
                    if !add_voters.contains(&n) && !add_learners.contains(&n) && !remove.contains(&n) {
                        prop_assert_eq!(t.voters.contains(&n), current.voters.contains(&n), "untouched nodes keep their role");
                        prop_assert_eq!(t.learners.contains(&n), current.learners.contains(&n));
                    }
                }
            }
            Err(RaftError::InvalidMembershipChange(_)) => {
                let voters: BTreeSet<NodeId> = current
                    .voters
                    .iter()
                    .filter(|n| !remove.contains(n) && !add_learners.contains(n))
                    .chain(&add_voters)
                    .copied()
                    .collect();
                prop_assert!(overlap || voters.is_empty());
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn messages_round_trip_through_a_binary_codec(
        term in any::<u64>(),
        index in any::<u64>(),
        data in proptest::collection::vec(any::<u8>(), 0..64),
        flag in any::<bool>(),
        m in membership(),
    ) {
        let entries = vec![
            Entry { index, term, payload: EntryPayload::Noop },
            Entry { index, term, payload: EntryPayload::Command { origin: Some((NodeId(3), ProposalId(index))), data: Bytes::from(data.clone()) } },
            Entry { index, term, payload: EntryPayload::Membership(m.clone()) },
        ];
        let messages = vec![
            Message::RequestVote { term, pre_vote: flag, last_log_index: index, last_log_term: term, transfer: !flag },
            Message::RequestVoteResponse { term, pre_vote: flag, granted: !flag },
            Message::AppendEntries { term, prev_log_index: index, prev_log_term: term, entries, leader_commit: index },
            Message::AppendEntriesResponse { term, index, reject: flag.then_some(Conflict { term: Some(term), first_index: index }) },
            Message::Heartbeat { term, commit: index, seq: index },
            Message::HeartbeatResponse { term, seq: index },
            Message::InstallSnapshot { term, meta: SnapshotMeta { index, term, membership: m }, offset: index, total: index, data: Bytes::from(data) },
            Message::InstallSnapshotResponse { term, index, received: index, done: flag },
            Message::TimeoutNow { term },
            Message::ReadIndex { term, request: index },
            Message::ReadIndexResponse { term, request: index, result: if flag { Ok(index) } else { Err(ProposeError::NotLeader { leader: Some(NodeId(2)) }) } },
        ];
        for msg in messages {
            let bytes = postcard::to_allocvec(&msg).expect("encode");
            let back: Message = postcard::from_bytes(&bytes).expect("decode");
            prop_assert_eq!(back, msg);
        }
        let hs = HardState { term, vote: flag.then_some(NodeId(index)), commit: index };
        let back: HardState = postcard::from_bytes(&postcard::to_allocvec(&hs).expect("encode")).expect("decode");
        prop_assert_eq!(back, hs);
    }

    #[test]
    fn garbage_never_decodes_into_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        // Decoding arbitrary bytes either fails or yields some message; it never panics,
        // and whatever it yields is handled by a replica without panicking.
        if let Ok(msg) = postcard::from_bytes::<Message>(&bytes) {
            let mut r = ballot_raft::Raft::new(
                ballot_raft::Config::new(NodeId(1)),
                Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
                Default::default(),
                ballot_core::SeededRng::new(1),
                ballot_core::Instant::ZERO,
            ).expect("valid");
            use ballot_core::Protocol;
            r.handle_message(ballot_core::Instant::from_millis(5), NodeId(2), msg);
            while r.poll_output().is_some() {}
        }
    }
}

mod common;

fn any_message() -> impl Strategy<Value = Message> {
    let num = prop_oneof![0..6u64, Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()];
    let small = 0..6u64;
    let entry = (small.clone(), small.clone(), 0..3u8).prop_map(|(index, term, kind)| Entry {
        index,
        term,
        payload: match kind {
            0 => EntryPayload::Noop,
            1 => EntryPayload::Command { origin: Some((NodeId(1), ProposalId(index))), data: Bytes::from_static(b"x") },
            _ => EntryPayload::Membership(Membership::new([NodeId(1), NodeId(2)])),
        },
    });
    let entries = proptest::collection::vec(entry, 0..4);
    (0..11u8, num.clone(), num.clone(), num, small, any::<bool>(), entries).prop_map(
        |(kind, a, b, c, d, flag, entries)| match kind {
            0 => Message::RequestVote { term: d, pre_vote: flag, last_log_index: a, last_log_term: b, transfer: !flag },
            1 => Message::RequestVoteResponse { term: d, pre_vote: flag, granted: !flag },
            2 => Message::AppendEntries {
                term: d,
                prev_log_index: a % 8,
                prev_log_term: b % 8,
                entries,
                leader_commit: c,
            },
            3 => Message::AppendEntriesResponse {
                term: d,
                index: a,
                reject: flag.then_some(Conflict { term: Some(b), first_index: c }),
            },
            4 => Message::Heartbeat { term: d, commit: a, seq: b },
            5 => Message::HeartbeatResponse { term: d, seq: a },
            6 => Message::InstallSnapshot {
                term: d,
                meta: SnapshotMeta { index: a % 10, term: b % 4, membership: Membership::new([NodeId(1)]) },
                offset: c % 16,
                total: b % 16,
                data: Bytes::from_static(b"0123"),
            },
            7 => Message::InstallSnapshotResponse { term: d, index: a, received: b, done: flag },
            8 => Message::TimeoutNow { term: d },
            9 => Message::ReadIndex { term: d, request: a },
            _ => Message::ReadIndexResponse { term: d, request: a, result: Ok(b) },
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Hostile or corrupt messages, at a leader and at followers, interleaved with
    /// timeouts and bogus acknowledgements: no panic, no runaway output.
    #[test]
    fn arbitrary_input_never_panics(
        steps in proptest::collection::vec((0..4u64, 1..5u64, any_message(), 0..3u8), 1..40),
    ) {
        use ballot_core::Protocol;
        let mut c = common::Cluster::new(&[1, 2, 3]);
        c.elect(1);
        c.propose(1, "x").expect("leader");
        for (to, from, msg, extra) in steps {
            let to = (to % 3) + 1;
            let now = c.now + std::time::Duration::from_millis(37);
            c.now = now;
            let r = c.raft_mut(to);
            match extra {
                0 => r.handle_timeout(now),
                1 => r.persisted(now, ballot_core::PersistId(u64::MAX)),
                _ => {}
            }
            r.handle_message(now, NodeId(from), msg);
            let out = common::drain(r);
            prop_assert!(out.len() < 10_000);
            c.drain_all();
        }
    }
}
