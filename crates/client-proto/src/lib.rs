//! The client logic of ballot with no IO: which node to ask, when to retry, when to
//! give up, and what a failed call means for the request.
//!
//! `ballot-client` runs it over QUIC with tokio; the simulator (`ballot-sim`) runs the
//! very same logic over its virtual network, so the retry, redirect and session rules
//! users depend on meet the simulator's faults.
//!
//! - [`Endpoints`] is a client's view of the cluster, shared by its calls: the nodes,
//!   which ones it has a connection to, and the leader it last heard of.
//! - [`Call`] is one request's progress. The host polls it for the next [`Step`]
//!   (connect to a node, send to a node, wait, done) and feeds back what happened
//!   ([`Call::on_answer`], [`Call::on_lost`], [`Call::on_unsent`], and the connection
//!   events of [`Endpoints`]). Every input carries `now`.
//! - [`SessionPool`] hands out the exactly-once sessions calls are made in.
//! - [`QuorumCall`] is a request under a Byzantine protocol's rule
//!   ([`ClientRule::Matching`](ballot_core::ClientRule::Matching)): sent to every
//!   replica, settled by f+1 (writes) or 2f+1 (reads) matching replies.
//!
//! ```
//! use std::time::Duration;
//! use ballot_client_proto::{Answer, Call, Endpoints, Policy, Step};
//! use ballot_core::Instant;
//! use ballot_wire::ClientError;
//!
//! let policy = Policy::default();
//! let mut cluster = Endpoints::new(vec!["n1", "n2", "n3"]);
//! let now = Instant::ZERO;
//! let mut call = Call::new(now, &policy, true, 7);
//! // Nothing is connected yet: the call asks to connect to every node at once.
//! assert_eq!(call.poll(now, &mut cluster), Step::Connect("n1"));
//! assert_eq!(call.poll(now, &mut cluster), Step::Connect("n2"));
//! assert_eq!(call.poll(now, &mut cluster), Step::Connect("n3"));
//! assert!(matches!(call.poll(now, &mut cluster), Step::Wait(_)));
//! // n2 answers first; the request goes there and n2 redirects to the leader, n3.
//! cluster.connected("n2");
//! assert!(matches!(call.poll(now, &mut cluster), Step::Send { to: "n2", .. }));
//! let error = ClientError::NotLeader { leader: None, leader_addr: Some("n3".into()) };
//! call.on_answer(now, &mut cluster, "n2", Answer::Redirect { leader: Some("n3"), error });
//! cluster.connected("n3");
//! assert!(matches!(call.poll(now, &mut cluster), Step::Send { to: "n3", .. }));
//! call.on_answer(now, &mut cluster, "n3", Answer::Done);
//! assert_eq!(call.poll(now, &mut cluster), Step::Done(Ok(())));
//! assert_eq!(cluster.leader(), Some(&"n3"));
//! ```

mod call;
mod endpoints;
mod quorum;
mod sessions;

pub use call::{Answer, Call, CallError, Policy, Step};
pub use endpoints::{Endpoints, Link};
pub use quorum::{QuorumCall, Vote};
pub use sessions::SessionPool;
