//! Whole-cluster behaviour on the test network.

mod common;

use std::time::Duration;

use ballot_core::Role;
use common::*;

#[test]
fn three_nodes_elect_a_leader_and_commit() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.advance(Duration::from_secs(3));
    let leader = c.leader().expect("a leader within 3 s");
    for id in [1, 2, 3] {
        assert_eq!(c.raft(id).leader(), Some(n(leader)));
    }
    c.propose(leader, "a").unwrap();
    c.propose(leader, "b").unwrap();
    c.advance(Duration::from_millis(300));
    for id in [1, 2, 3] {
        assert_eq!(c.node(id).commands(), vec!["a", "b"], "n{id}");
        assert_eq!(c.raft(id).commit_index(), 3);
    }
    assert_eq!(c.node(leader).answered().len(), 2);
    assert_eq!(c.raft(leader).role(), Role::Leader);
    c.check_safety();
}
