//! ballot's wire format: versioned, length-delimited frames; a size-limited binary
//! codec; and the types of the client protocol.
//!
//! Use this crate to put ballot's messages on a byte stream or read them off one: the
//! QUIC transport frames peer messages with it, the node's client port and
//! `ballot-client` exchange [`Request`]s and [`Response`]s through it, and anything that
//! wants to speak to a ballot cluster without the rest of ballot can depend on it alone.
//! It has no async runtime or network code: [`FrameDecoder`] and [`FrameEncoder`] work
//! on [`bytes::BytesMut`] buffers, whoever fills them.
//!
//! # Layers
//!
//! - [`Codec`] turns any serde value into bytes and back, refusing encodings larger than
//!   its limit (default [`DEFAULT_MAX_SIZE`], 4 MiB) on both sides and rejecting garbage
//!   and trailing bytes with a typed [`WireError`].
//! - [`FrameEncoder`] and [`FrameDecoder`] delimit payloads on a stream; the decoder is
//!   incremental (feed any split of the input) and checks a declared length against its
//!   limit before reserving anything.
//! - [`Hello`] is the handshake each end sends first; [`Request`], [`Response`] and
//!   [`ClientError`] are the client protocol's envelope.
//!
//! # Frame layout
//!
//! ```text
//!  0      1      2         3      4                           8
//! +------+------+---------+------+---------------------------+------------------+
//! | 0xBA | 0x11 | version | kind | payload length (u32, BE)  | payload ...      |
//! +------+------+---------+------+---------------------------+------------------+
//!   magic          |         |      at most the decoder's       postcard bytes
//!                  |         |      max size (default 4 MiB)
//!                  |         Hello = 1, Message = 2, Request = 3, Response = 4
//!                  protocol version (PROTOCOL_VERSION = 2)
//! ```
//!
//! The header layout is the same in every version. The magic number catches peers
//! that speak something else at the first byte. A frame of unknown kind or unsupported
//! version is reported and skipped (the stream stays usable); a bad magic number, an
//! oversized length or a stream cut inside a frame are fatal ([`WireError::is_fatal`]):
//! there is no way to find the next frame boundary in a corrupt stream, so the
//! connection must be closed. There is no checksum: the transports below (QUIC, TLS)
//! already authenticate every byte.
//!
//! # Why postcard
//!
//! Payloads are encoded with [postcard](https://docs.rs/postcard): integers are
//! varints (a small index or term takes one byte), it needs no schema files or code
//! generation, it is `no_std`-capable, its wire format is specified and frozen for the
//! 1.x series, and it is actively maintained. bincode, the usual alternative, is
//! unmaintained since its 3.0 tombstone release. Postcard is not self-describing, so
//! both ends must agree on the types: that is what the header's version is for.
//!
//! # Example
//!
//! ```
//! use ballot_wire::{ClientError, FrameDecoder, FrameEncoder, FrameKind, Request, Response};
//! use bytes::BytesMut;
//!
//! // A client writes a request frame...
//! let mut wire = BytesMut::new();
//! let encoder = FrameEncoder::default();
//! encoder.encode(FrameKind::Request, &Request::new(1, "get k".to_owned()), &mut wire)?;
//!
//! // ...and the server, reading in arbitrary chunks, decodes it and replies.
//! let mut decoder = FrameDecoder::default();
//! let mut inbox = BytesMut::new();
//! let mut frames = Vec::new();
//! for chunk in wire.chunks(3) {
//!     inbox.extend_from_slice(chunk);
//!     while let Some(frame) = decoder.decode(&mut inbox)? {
//!         frames.push(frame);
//!     }
//! }
//! let request: Request<String> = frames[0].decode()?;
//! assert_eq!(request.body, "get k");
//! let response: Response<String> = request.reply(Err(ClientError::Busy));
//! assert!(response.result.unwrap_err().is_retryable());
//! # Ok::<(), ballot_wire::WireError>(())
//! ```

mod api;
mod client;
mod codec;
mod error;
mod frame;
mod hello;
mod version;

pub use api::{ClientReply, ClientRequest, NodeStatus};
pub use client::{ClientError, Request, Response};
pub use codec::{Codec, DEFAULT_MAX_SIZE, MAX_SIZE_LIMIT, decode, encode};
pub use error::WireError;
pub use frame::{Frame, FrameDecoder, FrameEncoder, FrameKind, HEADER_LEN, MAGIC};
pub use hello::Hello;
pub use version::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, VersionRange};
