//! The handshake both ends of a connection open with.

use ballot_core::NodeId;
use serde::{Deserialize, Serialize};

use crate::codec::decode_prefix;
use crate::{DEFAULT_MAX_SIZE, VersionRange, WireError};

/// The first frame ([`FrameKind::Hello`](crate::FrameKind::Hello)) each side of a peer
/// or client connection sends. Each side checks the other's with
/// [`negotiate`](Hello::negotiate), then uses the agreed version for every later frame
/// ([`FrameEncoder::with_version`](crate::FrameEncoder::with_version),
/// [`FrameDecoder::set_versions`](crate::FrameDecoder::set_versions)), or closes the
/// connection with the error.
///
/// The layout is frozen across protocol versions so that any two versions can read each
/// other's `Hello`; later versions may only append fields, which older ones ignore
/// (decode it with [`Hello::decode`], which allows trailing bytes).
///
/// ```
/// use ballot_core::NodeId;
/// use ballot_wire::{Hello, PROTOCOL_VERSION, WireError};
///
/// let ours = Hello::new("prod", Some(NodeId(1)));
/// let theirs = Hello::new("prod", None);
/// assert_eq!(ours.negotiate(&theirs)?, PROTOCOL_VERSION);
/// assert!(matches!(ours.negotiate(&Hello::new("staging", None)), Err(WireError::WrongCluster { .. })));
/// # Ok::<(), WireError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol versions the sender speaks.
    pub versions: VersionRange,
    /// The cluster the sender belongs to (or, for a client, wants to talk to).
    pub cluster: String,
    /// The sender's node id; `None` for clients.
    pub node: Option<NodeId>,
    /// The sender's software and version, for logs (`ballot/0.1.0`).
    pub agent: String,
}

impl Hello {
    /// A `Hello` from this build: [`VersionRange::SUPPORTED`] and agent `ballot/<version>`.
    #[must_use]
    pub fn new(cluster: impl Into<String>, node: Option<NodeId>) -> Self {
        Hello {
            versions: VersionRange::SUPPORTED,
            cluster: cluster.into(),
            node,
            agent: concat!("ballot/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// Checks the peer's `Hello` against this one and returns the protocol version to
    /// speak: the newest both support.
    ///
    /// # Errors
    /// [`WireError::WrongCluster`] when the cluster names differ;
    /// [`WireError::NoCommonVersion`] when the version ranges do not overlap.
    pub fn negotiate(&self, theirs: &Hello) -> Result<u8, WireError> {
        if self.cluster != theirs.cluster {
            return Err(WireError::WrongCluster { ours: self.cluster.clone(), theirs: theirs.cluster.clone() });
        }
        self.versions
            .highest_common(theirs.versions)
            .ok_or(WireError::NoCommonVersion { ours: self.versions, theirs: theirs.versions })
    }

    /// Decodes a `Hello` frame's payload, ignoring fields a newer version appended.
    ///
    /// # Errors
    /// [`WireError::TooLarge`] for a payload over the default limit,
    /// [`WireError::Malformed`] when it is not a `Hello`.
    pub fn decode(payload: &[u8]) -> Result<Hello, WireError> {
        if payload.len() > DEFAULT_MAX_SIZE {
            return Err(WireError::TooLarge { size: payload.len() as u64, max: DEFAULT_MAX_SIZE as u64 });
        }
        decode_prefix::<Hello>(payload).map(|(hello, _newer_fields)| hello)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PROTOCOL_VERSION, decode, encode};

    #[test]
    fn negotiates_the_newest_common_version() {
        let mut ours = Hello::new("c", Some(NodeId(1)));
        ours.versions = VersionRange::new(1, 3);
        let mut theirs = Hello::new("c", Some(NodeId(2)));
        theirs.versions = VersionRange::new(2, 5);
        assert_eq!(ours.negotiate(&theirs), Ok(3));
        assert_eq!(theirs.negotiate(&ours), Ok(3), "both sides agree");
        theirs.versions = VersionRange::new(4, 5);
        assert_eq!(
            ours.negotiate(&theirs),
            Err(WireError::NoCommonVersion { ours: VersionRange::new(1, 3), theirs: VersionRange::new(4, 5) })
        );
        let other = Hello::new("d", None);
        assert_eq!(ours.negotiate(&other), Err(WireError::WrongCluster { ours: "c".into(), theirs: "d".into() }));
    }

    #[test]
    fn new_uses_this_build() {
        let h = Hello::new("c", None);
        assert!(h.versions.contains(PROTOCOL_VERSION));
        assert!(h.agent.starts_with("ballot/"));
    }

    #[test]
    fn tolerates_appended_fields_but_not_garbage() {
        let h = Hello::new("prod", Some(NodeId(4)));
        let mut bytes = encode(&h).unwrap().to_vec();
        assert_eq!(Hello::decode(&bytes), Ok(h.clone()));
        bytes.extend_from_slice(&[1, 2, 3]); // a field from a future version
        assert_eq!(Hello::decode(&bytes), Ok(h), "appended fields are ignored");
        assert!(matches!(decode::<Hello>(&bytes), Err(WireError::TrailingBytes { count: 3, .. })));
        assert!(matches!(Hello::decode(&[1, 1, 5, b'a']), Err(WireError::Malformed { .. })));
    }
}
