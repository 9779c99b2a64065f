//! The crate's error type.

use crate::VersionRange;

/// Everything that can go wrong encoding or decoding ballot's wire format.
///
/// Errors from a [`FrameDecoder`](crate::FrameDecoder) come in two sorts, told apart by
/// [`is_fatal`](WireError::is_fatal): a fatal error means the byte stream has lost its
/// framing and the connection must be closed; any other error concerns one frame only,
/// which was skipped, and the next frame decodes normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A frame header did not start with ballot's magic number `0xBA11`: the peer does
    /// not speak ballot's protocol, or the stream is corrupt. Fatal.
    #[error(
        "not a ballot frame (expected magic 0xba11, found {found:#x}): the peer does not speak ballot's wire \
         protocol or the stream is corrupt; close the connection"
    )]
    BadMagic {
        /// The bytes found where the magic number belongs (one byte when only one had
        /// arrived).
        found: u16,
    },
    /// A frame header declared a payload longer than the decoder's maximum. Nothing was
    /// allocated for it. Fatal: the rest of the stream cannot be trusted.
    #[error(
        "frame of {declared} bytes exceeds the maximum frame size of {max} bytes; close the connection, or \
         raise the limit on both ends if the peer is trusted"
    )]
    FrameTooLarge {
        /// The length the header declared.
        declared: u64,
        /// The decoder's limit.
        max: u64,
    },
    /// The stream ended in the middle of a frame. Fatal.
    #[error("stream ended inside a frame: at least {missing} more bytes were expected")]
    Truncated {
        /// How many more bytes the frame needed (when the header itself was cut short,
        /// only the rest of the header is counted).
        missing: u64,
    },
    /// A frame carried a protocol version outside the supported range. The frame was
    /// skipped; the stream is still usable, but the peer should be told (for example
    /// with [`ClientError::UnsupportedVersion`](crate::ClientError::UnsupportedVersion)).
    #[error("frame has protocol version {got}, but this end supports {supported}; upgrade the older side")]
    UnsupportedVersion {
        /// The version the frame carried.
        got: u8,
        /// The versions accepted.
        supported: VersionRange,
    },
    /// A frame had a kind byte this build does not know (a newer peer's extension). The
    /// frame was skipped; the stream is still usable.
    #[error("unknown frame kind {kind}; the frame was skipped")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },
    /// A value's encoding is larger than the codec's limit. On encoding nothing was
    /// written; on decoding the input was not looked at.
    #[error("encoded value of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The encoded size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The bytes are not a valid encoding of the expected type (garbage, truncation,
    /// a schema mismatch between peers).
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The type that was being decoded.
        what: &'static str,
        /// What the decoder found wrong.
        reason: String,
    },
    /// A value decoded, but bytes were left over after it: the input is not exactly one
    /// encoded value (a schema mismatch, or garbage appended).
    #[error("malformed {what}: {count} unexpected bytes after the value")]
    TrailingBytes {
        /// The type that was decoded.
        what: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// The value cannot be represented in the wire format (for example a sequence of
    /// unknown length, or a serializer that reported an error). A bug in the message type.
    #[error("cannot encode {what}: {reason}")]
    Unencodable {
        /// The type that was being encoded.
        what: &'static str,
        /// What the encoder reported.
        reason: String,
    },
    /// A [`Hello`](crate::Hello) named another cluster: the peer was configured for a
    /// different cluster (or the address is wrong).
    #[error("peer belongs to cluster {theirs:?}, this end to {ours:?}; check the peer addresses and cluster name")]
    WrongCluster {
        /// This end's cluster name.
        ours: String,
        /// The peer's cluster name.
        theirs: String,
    },
    /// A [`Hello`](crate::Hello) offered no protocol version this end speaks.
    #[error("no common protocol version: this end speaks {ours}, the peer {theirs}; upgrade the older side")]
    NoCommonVersion {
        /// The versions this end speaks.
        ours: VersionRange,
        /// The versions the peer offered.
        theirs: VersionRange,
    },
}

impl WireError {
    /// Whether the byte stream this error came from has lost its framing, so the
    /// connection must be closed. Errors about a single frame or value are not fatal.
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        matches!(self, WireError::BadMagic { .. } | WireError::FrameTooLarge { .. } | WireError::Truncated { .. })
    }
}
