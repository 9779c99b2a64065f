//! The one async driver of ballot: runs any consensus [`Protocol`](ballot_core::Protocol)
//! against a [`LogStore`](ballot_core::LogStore), a [`Transport`](ballot_core::Transport)
//! and a service [`StateMachine`](ballot_core::service::StateMachine) on tokio.
//!
//! Use it to embed a replica in your own process (the service binaries do exactly that),
//! or through [`NodeHandle`] to follow the cluster's leader from Rust.
//!
//! One task owns the protocol and loops: wait for the earliest of a peer frame, a client
//! call, a storage acknowledgement or a timer; feed it in; then carry out every output:
//! messages go to the transport, `Persist` batches to a storage thread that group-commits
//! whatever queued up during the previous sync, committed entries to the service (answering
//! the client that proposed them), read barriers to the reads waiting on them.

mod driver;
pub mod metrics;
mod node;
mod status;

pub use driver::{DriverConfig, DriverError, WatchItem};
pub use node::{Node, NodeHandle, NodeParts};
pub use status::NodeStatus;
