//! Length-delimited, versioned frames over a byte stream.

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::{Codec, DEFAULT_MAX_SIZE, MAX_SIZE_LIMIT, PROTOCOL_VERSION, VersionRange, WireError};

/// The two bytes every frame starts with.
pub const MAGIC: [u8; 2] = [0xBA, 0x11];

/// The length of a frame header: magic (2), version (1), kind (1), payload length (4).
pub const HEADER_LEN: usize = 8;

/// The most a [`FrameDecoder`] reserves ahead of the bytes that have arrived: a header
/// alone cannot make it allocate more than this, whatever length it declares.
const RESERVE_AHEAD: usize = 64 * 1024;

/// What a frame carries. The kind byte lets a receiver route a frame before decoding
/// it, and skip kinds it does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum FrameKind {
    /// A [`Hello`](crate::Hello): the first frame each side of a connection sends. Its
    /// layout is the same in every protocol version, so decoders accept it whatever
    /// version its header names.
    Hello = 1,
    /// A peer-protocol message (the opaque frame of a [`Transport`](ballot_core::Transport)).
    Message = 2,
    /// A client [`Request`](crate::Request).
    Request = 3,
    /// A [`Response`](crate::Response) to a request. Several responses with the same id
    /// form a stream (watches).
    Response = 4,
}

impl FrameKind {
    /// The kind byte.
    #[must_use]
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The kind for a kind byte, if this build knows it.
    #[must_use]
    pub const fn from_u8(byte: u8) -> Option<FrameKind> {
        match byte {
            1 => Some(FrameKind::Hello),
            2 => Some(FrameKind::Message),
            3 => Some(FrameKind::Request),
            4 => Some(FrameKind::Response),
            _ => None,
        }
    }
}

impl TryFrom<u8> for FrameKind {
    type Error = WireError;

    fn try_from(kind: u8) -> Result<Self, WireError> {
        FrameKind::from_u8(kind).ok_or(WireError::UnknownKind { kind })
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The protocol version the sender wrote (within the decoder's accepted range,
    /// except for [`FrameKind::Hello`]).
    pub version: u8,
    /// What the payload is.
    pub kind: FrameKind,
    /// The payload: usually one postcard-encoded value.
    pub payload: Bytes,
}

impl Frame {
    /// Decodes the payload as exactly one `T`. The payload is already bounded by the
    /// decoder's limit, so no further limit applies.
    ///
    /// # Errors
    /// [`WireError::Malformed`] or [`WireError::TrailingBytes`] when the payload is not
    /// one `T`.
    pub fn decode<'de, T: Deserialize<'de>>(&'de self) -> Result<T, WireError> {
        Codec::new(MAX_SIZE_LIMIT).decode(&self.payload)
    }
}

/// Writes frames: the header, then the payload.
///
/// ```
/// use ballot_wire::{FrameEncoder, FrameKind, HEADER_LEN};
/// use bytes::BytesMut;
///
/// let mut out = BytesMut::new();
/// FrameEncoder::default().encode(FrameKind::Message, &42u64, &mut out)?;
/// assert_eq!(&out[..], &[0xBA, 0x11, ballot_wire::PROTOCOL_VERSION, 2, 0, 0, 0, 1, 42]);
/// assert_eq!(out.len(), HEADER_LEN + 1);
/// # Ok::<(), ballot_wire::WireError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameEncoder {
    codec: Codec,
    version: u8,
}

impl Default for FrameEncoder {
    fn default() -> Self {
        FrameEncoder::new(DEFAULT_MAX_SIZE)
    }
}

impl FrameEncoder {
    /// An encoder writing [`PROTOCOL_VERSION`] frames whose payloads may be up to
    /// `max_size` bytes (capped at [`MAX_SIZE_LIMIT`]).
    #[must_use]
    pub const fn new(max_size: usize) -> Self {
        FrameEncoder { codec: Codec::new(max_size), version: PROTOCOL_VERSION }
    }

    /// The same encoder writing `version` into headers (after a handshake settled on
    /// an older version).
    #[must_use]
    pub const fn with_version(self, version: u8) -> Self {
        FrameEncoder { version, ..self }
    }

    /// The version written into headers.
    #[must_use]
    pub const fn version(&self) -> u8 {
        self.version
    }

    /// The largest payload accepted.
    #[must_use]
    pub const fn max_size(&self) -> usize {
        self.codec.max_size()
    }

    /// Appends a frame of `kind` holding `value`'s encoding to `dst`, encoding in place
    /// (no intermediate buffer). On error `dst` is left as it was.
    ///
    /// # Errors
    /// [`WireError::TooLarge`] when the encoding exceeds the limit;
    /// [`WireError::Unencodable`] when postcard cannot represent the value.
    pub fn encode<T: Serialize + ?Sized>(
        &self,
        kind: FrameKind,
        value: &T,
        dst: &mut BytesMut,
    ) -> Result<(), WireError> {
        let start = dst.len();
        dst.put_bytes(0, HEADER_LEN);
        match self.codec.encode_into(value, dst) {
            Ok(len) => {
                let header = self.header_unchecked(kind, len);
                dst[start..start + HEADER_LEN].copy_from_slice(&header);
                Ok(())
            }
            Err(e) => {
                dst.truncate(start);
                Err(e)
            }
        }
    }

    /// Appends a frame of `kind` carrying `payload` as is (already encoded bytes, such
    /// as a [`Transport`](ballot_core::Transport) frame) to `dst`.
    ///
    /// # Errors
    /// [`WireError::TooLarge`] when `payload` exceeds the limit; `dst` is untouched.
    pub fn encode_payload(&self, kind: FrameKind, payload: &[u8], dst: &mut BytesMut) -> Result<(), WireError> {
        let header = self.header(kind, payload.len())?;
        dst.reserve(HEADER_LEN + payload.len());
        dst.put_slice(&header);
        dst.put_slice(payload);
        Ok(())
    }

    /// The header for a frame of `kind` with a `payload_len`-byte payload, for writers
    /// that send the header and the payload as separate buffers (vectored writes).
    ///
    /// # Errors
    /// [`WireError::TooLarge`] when `payload_len` exceeds the limit.
    pub fn header(&self, kind: FrameKind, payload_len: usize) -> Result<[u8; HEADER_LEN], WireError> {
        if payload_len > self.codec.max_size() {
            return Err(WireError::TooLarge { size: payload_len as u64, max: self.codec.max_size() as u64 });
        }
        Ok(self.header_unchecked(kind, payload_len))
    }

    /// `len` must be at most `max_size`, which fits in `u32`.
    fn header_unchecked(&self, kind: FrameKind, len: usize) -> [u8; HEADER_LEN] {
        debug_assert!(len <= MAX_SIZE_LIMIT);
        let [l0, l1, l2, l3] = (len as u32).to_be_bytes();
        [MAGIC[0], MAGIC[1], self.version, kind.as_u8(), l0, l1, l2, l3]
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// At a frame boundary.
    Header,
    /// Discarding the payload of a frame that was reported as an error.
    Skip(usize),
    /// The stream lost its framing; every call repeats the error.
    Failed(WireError),
}

/// Splits a byte stream into [`Frame`]s.
///
/// Feed it whatever bytes have arrived by appending them to a `BytesMut` and calling
/// [`decode`](FrameDecoder::decode) until it returns `Ok(None)` (more bytes needed);
/// at the end of the stream call [`decode_eof`](FrameDecoder::decode_eof), which
/// reports a frame cut short. Complete frames are taken out of the buffer without
/// copying their payload.
///
/// A header's declared length is checked against the maximum before anything is
/// reserved, so a hostile length costs nothing; and even a length within the maximum
/// only makes the decoder reserve 64 KiB ahead of the bytes that actually arrived, so a
/// peer cannot make it allocate memory it did not send.
///
/// Errors follow [`WireError::is_fatal`]: a frame with an unsupported version or an
/// unknown kind is reported as soon as its header arrives and then skipped, and the
/// next frame decodes normally; a bad magic number, an oversized length or a truncated
/// stream leave the decoder failed, and every later call returns the same error: close
/// the connection.
///
/// ```
/// use ballot_wire::{FrameDecoder, FrameEncoder, FrameKind};
/// use bytes::BytesMut;
///
/// let mut wire = BytesMut::new();
/// FrameEncoder::default().encode(FrameKind::Request, "ping", &mut wire)?;
///
/// let mut decoder = FrameDecoder::default();
/// let mut buf = BytesMut::new();
/// buf.extend_from_slice(&wire[..5]); // a partial header
/// assert_eq!(decoder.decode(&mut buf)?, None);
/// buf.extend_from_slice(&wire[5..]);
/// let frame = decoder.decode(&mut buf)?.expect("a whole frame");
/// assert_eq!((frame.kind, frame.decode::<&str>()?), (FrameKind::Request, "ping"));
/// assert_eq!(decoder.decode_eof(&mut buf)?, None);
/// # Ok::<(), ballot_wire::WireError>(())
/// ```
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    max_size: usize,
    versions: VersionRange,
    state: State,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_SIZE)
    }
}

impl FrameDecoder {
    /// A decoder accepting payloads up to `max_size` bytes (capped at
    /// [`MAX_SIZE_LIMIT`]) and the versions in [`VersionRange::SUPPORTED`].
    #[must_use]
    pub const fn new(max_size: usize) -> Self {
        FrameDecoder {
            max_size: Codec::new(max_size).max_size(),
            versions: VersionRange::SUPPORTED,
            state: State::Header,
        }
    }

    /// The same decoder accepting the versions in `versions`.
    #[must_use]
    pub fn with_versions(mut self, versions: VersionRange) -> Self {
        self.versions = versions;
        self
    }

    /// Accepts only the versions in `versions` from now on (after a handshake).
    pub fn set_versions(&mut self, versions: VersionRange) {
        self.versions = versions;
    }

    /// The largest payload accepted.
    #[must_use]
    pub const fn max_size(&self) -> usize {
        self.max_size
    }

    /// Whether a fatal error ended decoding.
    #[must_use]
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed(_))
    }

    /// Takes the next complete frame out of `src`, or returns `Ok(None)` when `src`
    /// holds no complete frame yet (having consumed any bytes of skipped frames).
    ///
    /// # Errors
    /// See the type's documentation. After a non-fatal error, call again to continue
    /// with the next frame.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        loop {
            match &mut self.state {
                State::Failed(e) => return Err(e.clone()),
                State::Skip(remaining) => {
                    let n = (*remaining).min(src.len());
                    src.advance(n);
                    *remaining -= n;
                    if *remaining > 0 {
                        return Ok(None);
                    }
                    self.state = State::Header;
                }
                State::Header => return self.decode_header(src),
            }
        }
    }

    fn decode_header(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        // Reject garbage as soon as its first byte arrives.
        let seen = src.len().min(MAGIC.len());
        if src[..seen] != MAGIC[..seen] {
            let found = if seen == 1 { u16::from(src[0]) } else { u16::from_be_bytes([src[0], src[1]]) };
            return Err(self.fail(WireError::BadMagic { found }));
        }
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let (version, kind) = (src[2], src[3]);
        let declared = u32::from_be_bytes([src[4], src[5], src[6], src[7]]);
        // u32 always fits in usize on the 32- and 64-bit targets ballot supports.
        let len = declared as usize;
        if len > self.max_size {
            return Err(
                self.fail(WireError::FrameTooLarge { declared: u64::from(declared), max: self.max_size as u64 })
            );
        }
        let error = match FrameKind::from_u8(kind) {
            Some(kind) if kind == FrameKind::Hello || self.versions.contains(version) => {
                if src.len() < HEADER_LEN + len {
                    src.reserve((HEADER_LEN + len - src.len()).min(RESERVE_AHEAD));
                    return Ok(None);
                }
                src.advance(HEADER_LEN);
                let payload = src.split_to(len).freeze();
                return Ok(Some(Frame { version, kind, payload }));
            }
            Some(_) => WireError::UnsupportedVersion { got: version, supported: self.versions },
            None => WireError::UnknownKind { kind },
        };
        src.advance(HEADER_LEN);
        self.state = State::Skip(len);
        Err(error)
    }

    /// Like [`decode`](FrameDecoder::decode), for when the stream has ended: bytes
    /// left over that do not form a whole frame are an error.
    ///
    /// # Errors
    /// As for `decode`, and [`WireError::Truncated`] when the stream ended inside a
    /// frame.
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        let missing = match self.state {
            State::Skip(remaining) => remaining,
            _ if src.is_empty() => return Ok(None),
            _ if src.len() < HEADER_LEN => HEADER_LEN - src.len(),
            // `decode` checked the header: the payload is incomplete.
            _ => HEADER_LEN + u32::from_be_bytes([src[4], src[5], src[6], src[7]]) as usize - src.len(),
        };
        Err(self.fail(WireError::Truncated { missing: missing as u64 }))
    }

    fn fail(&mut self, e: WireError) -> WireError {
        self.state = State::Failed(e.clone());
        e
    }
}
