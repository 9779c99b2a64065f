//! Protocol versions and version ranges.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks by default and writes into frame headers.
///
/// The version names the schema of every payload type (messages, requests, responses)
/// together. Bump it whenever a serialized type changes shape: postcard is not
/// self-describing, so adding, removing or reordering a field or an enum variant changes
/// the bytes.
///
/// Version 2: a client call carries its command as the client encoded it
/// ([`ClientRequest::Call`](crate::ClientRequest::Call)), so that it is ordered
/// unchanged; Multi-Paxos and Raft messages are as in version 1, but the shared outbox
/// and checkpoint entries changed what a node writes, so version 1 nodes are refused.
pub const PROTOCOL_VERSION: u8 = 2;

/// The oldest protocol version this build still understands.
pub const MIN_PROTOCOL_VERSION: u8 = 2;

/// An inclusive range of protocol versions, `min..=max`. Empty when `min > max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionRange {
    /// The oldest version in the range.
    pub min: u8,
    /// The newest version in the range.
    pub max: u8,
}

impl VersionRange {
    /// The versions this build supports: [`MIN_PROTOCOL_VERSION`]`..=`[`PROTOCOL_VERSION`].
    pub const SUPPORTED: VersionRange = VersionRange { min: MIN_PROTOCOL_VERSION, max: PROTOCOL_VERSION };

    /// `min..=max`.
    #[must_use]
    pub const fn new(min: u8, max: u8) -> Self {
        VersionRange { min, max }
    }

    /// The range holding only `version`.
    #[must_use]
    pub const fn single(version: u8) -> Self {
        VersionRange { min: version, max: version }
    }

    /// Whether `version` lies in the range.
    #[must_use]
    pub const fn contains(self, version: u8) -> bool {
        self.min <= version && version <= self.max
    }

    /// Whether the range holds no version.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.min > self.max
    }

    /// The newest version both ranges contain, if any.
    #[must_use]
    pub fn highest_common(self, other: VersionRange) -> Option<u8> {
        let (min, max) = (self.min.max(other.min), self.max.min(other.max));
        (min <= max).then_some(max)
    }
}

impl Default for VersionRange {
    fn default() -> Self {
        VersionRange::SUPPORTED
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            f.write_str("none")
        } else if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..={}", self.min, self.max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_intersect_and_display() {
        let a = VersionRange::new(1, 3);
        assert_eq!(a.highest_common(VersionRange::new(2, 5)), Some(3));
        assert_eq!(a.highest_common(VersionRange::single(1)), Some(1));
        assert_eq!(a.highest_common(VersionRange::new(4, 5)), None);
        assert_eq!(a.highest_common(VersionRange::new(3, 2)), None, "an empty range shares nothing");
        assert!(a.contains(2) && !a.contains(0) && !a.contains(4));
        assert_eq!(a.to_string(), "1..=3");
        assert_eq!(VersionRange::single(2).to_string(), "2");
        assert_eq!(VersionRange::new(2, 1).to_string(), "none");
        assert!(VersionRange::SUPPORTED.contains(PROTOCOL_VERSION));
    }
}
