//! Identifiers shared by every algorithm and service.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The identity of one node (replica) in a cluster.
///
/// Node ids are small positive integers chosen by the operator (`--node-id 1`). They are
/// displayed as `n1`, `n2`, … and parse from either `3` or `n3`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The raw number.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<u64> for NodeId {
    fn from(v: u64) -> Self {
        NodeId(v)
    }
}

/// Error parsing a [`NodeId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid node id {0:?}: expected a positive integer such as `3` or `n3`")]
pub struct ParseNodeIdError(pub String);

impl FromStr for NodeId {
    type Err = ParseNodeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix('n').unwrap_or(s);
        match digits.parse::<u64>() {
            Ok(0) | Err(_) => Err(ParseNodeIdError(s.to_owned())),
            Ok(v) => Ok(NodeId(v)),
        }
    }
}

/// Identifies a client command proposed through one node. Chosen by the driver; echoed
/// back in [`Apply::Command`](crate::Apply::Command) on the node that proposed it, so the
/// driver can answer the waiting client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProposalId(pub u64);

/// Identifies a linearizable read request on one node. Chosen by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReadId(pub u64);

/// Identifies one [`Persist`](crate::Persist) batch. Ids increase by one per batch within
/// one incarnation of a state machine; acknowledging id `n` acknowledges every batch up
/// to and including `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersistId(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        assert_eq!("3".parse::<NodeId>(), Ok(NodeId(3)));
        assert_eq!("n12".parse::<NodeId>(), Ok(NodeId(12)));
        assert!("0".parse::<NodeId>().is_err());
        assert!("x1".parse::<NodeId>().is_err());
        assert!("".parse::<NodeId>().is_err());
        assert_eq!(NodeId(7).to_string(), "n7");
    }
}
