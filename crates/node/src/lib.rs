//! The one async driver of ballot: runs any consensus [`Protocol`](ballot_core::Protocol)
//! against a [`LogStore`](ballot_core::LogStore), a [`Transport`](ballot_core::Transport)
//! and a service [`StateMachine`](ballot_core::service::StateMachine) on tokio.
//!
//! Use it to embed a replica in your own process (the service binaries do exactly that),
//! or through [`NodeHandle`] to follow the cluster's leader from Rust.
//!
//! One task owns a [`Replica`](ballot_replica::Replica) (the sans-IO host of the
//! protocol and the service, which the simulator drives too) and loops: wait for the
//! earliest of a peer frame, a client call, a storage acknowledgement or a timer; feed it
//! in; then carry out every output: messages go to the transport, `Persist` batches to a
//! storage thread that group-commits whatever queued up during the previous sync,
//! replies to the clients waiting for them, watch events to their streams.

mod driver;
pub mod metrics;
mod node;
mod status;

pub use ballot_replica::ReplicaConfig;
pub use driver::{DriverConfig, DriverError, WatchItem};
pub use node::{Node, NodeHandle, NodeParts};
pub use status::NodeStatus;
