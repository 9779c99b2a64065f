//! What a node reports about itself.

pub use ballot_wire::NodeStatus;
