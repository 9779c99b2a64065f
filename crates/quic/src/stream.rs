//! Framed reading and writing on QUIC streams, the `Hello` exchange, and turning
//! quinn's connection errors into something a person can act on.

use std::net::SocketAddr;

use ballot_wire::{Frame, FrameDecoder, FrameEncoder, FrameKind, Hello, VersionRange, WireError};
use bytes::{Bytes, BytesMut};
use metrics::Counter;
use quinn::{ConnectionError, RecvStream, SendStream};

use crate::metrics::HandshakeFailure;
use crate::{CLOSE_BUSY, CLOSE_NOT_SERVING, CLOSE_REFUSED, Error};

/// Most bytes taken from a stream per read.
const READ_CHUNK: usize = 256 * 1024;
/// Payloads up to this size are copied next to their header, larger ones are written
/// as separate chunks without copying.
pub(crate) const COPY_THRESHOLD: usize = 4096;

/// Reads ballot-wire frames off a receive stream.
pub(crate) struct FrameReader {
    recv: RecvStream,
    decoder: FrameDecoder,
    buf: BytesMut,
    eof: bool,
    remote: SocketAddr,
    received: Option<Counter>,
}

impl std::fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader").field("remote", &self.remote).field("buffered", &self.buf.len()).finish()
    }
}

impl FrameReader {
    pub(crate) fn new(recv: RecvStream, max_frame_size: usize, remote: SocketAddr) -> Self {
        FrameReader {
            recv,
            decoder: FrameDecoder::new(max_frame_size),
            buf: BytesMut::new(),
            eof: false,
            remote,
            received: None,
        }
    }

    /// Counts every byte read from now on into `counter`.
    pub(crate) fn count_into(&mut self, counter: Counter) {
        self.received = Some(counter);
    }

    /// Accepts only frames of the negotiated `version` from now on.
    pub(crate) fn set_version(&mut self, version: u8) {
        self.decoder.set_versions(VersionRange::single(version));
    }

    /// The next frame, or `None` once the sender finished the stream at a frame
    /// boundary. Frames of unknown kinds or other versions are skipped.
    ///
    /// # Errors
    /// [`Error::Wire`] when the stream lost its framing (bad magic, oversized frame,
    /// truncated); the stream's read errors, with connection losses explained.
    pub(crate) async fn next(&mut self) -> Result<Option<Frame>, Error> {
        loop {
            let decoded =
                if self.eof { self.decoder.decode_eof(&mut self.buf) } else { self.decoder.decode(&mut self.buf) };
            match decoded {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) if self.eof => return Ok(None),
                Ok(None) => {}
                Err(e) if e.is_fatal() => return Err(Error::Wire(e)),
                Err(e) => {
                    tracing::debug!(remote = %self.remote, "skipped a frame: {e}");
                    continue;
                }
            }
            match self.recv.read_chunk(READ_CHUNK, true).await {
                Ok(Some(chunk)) => {
                    if let Some(c) = &self.received {
                        c.increment(chunk.bytes.len() as u64);
                    }
                    self.buf.extend_from_slice(&chunk.bytes);
                }
                Ok(None) => self.eof = true,
                Err(quinn::ReadError::ConnectionLost(e)) => return Err(connection_error(self.remote, &e)),
                Err(e) => return Err(Error::Read(e)),
            }
        }
    }

    /// Tells the sender to stop (it sees `code`).
    pub(crate) fn stop(&mut self, code: quinn::VarInt) {
        let _ = self.recv.stop(code);
    }
}

/// Writes one frame, copying small payloads next to the header and sending larger
/// ones as their own chunk.
pub(crate) async fn write_frame(
    send: &mut SendStream,
    encoder: &FrameEncoder,
    kind: FrameKind,
    payload: Bytes,
    remote: SocketAddr,
) -> Result<(), Error> {
    let header = encoder
        .header(kind, payload.len())
        .map_err(|_| Error::TooLarge { size: payload.len(), max: encoder.max_size() })?;
    let result = if payload.len() <= COPY_THRESHOLD {
        let mut buf = BytesMut::with_capacity(header.len() + payload.len());
        buf.extend_from_slice(&header);
        buf.extend_from_slice(&payload);
        send.write_all(&buf).await
    } else {
        send.write_all_chunks(&mut [Bytes::copy_from_slice(&header), payload]).await
    };
    result.map_err(|e| write_error(remote, e))
}

pub(crate) fn write_error(remote: SocketAddr, e: quinn::WriteError) -> Error {
    match e {
        quinn::WriteError::ConnectionLost(c) => connection_error(remote, &c),
        other => Error::Write(other),
    }
}

/// Sends `hello` as a `Hello` frame.
pub(crate) async fn write_hello(send: &mut SendStream, hello: &Hello, remote: SocketAddr) -> Result<(), Error> {
    let mut buf = BytesMut::new();
    FrameEncoder::default().encode(FrameKind::Hello, hello, &mut buf)?;
    send.write_all(&buf).await.map_err(|e| write_error(remote, e))
}

/// Why a `Hello` could not be read.
#[derive(Debug)]
pub(crate) enum HelloError {
    /// The stream or connection failed.
    Io(Error),
    /// The remote sent something that is not a `Hello`.
    Bad(String),
}

/// Reads the first frame, which must be a `Hello`.
pub(crate) async fn read_hello(reader: &mut FrameReader) -> Result<Hello, HelloError> {
    match reader.next().await {
        Ok(Some(frame)) if frame.kind == FrameKind::Hello => {
            Hello::decode(&frame.payload).map_err(|e| HelloError::Bad(format!("malformed Hello: {e}")))
        }
        Ok(Some(frame)) => Err(HelloError::Bad(format!("expected a Hello frame first, got {:?}", frame.kind))),
        Ok(None) => Err(HelloError::Bad("the stream ended before a Hello frame".into())),
        Err(Error::Wire(e)) => Err(HelloError::Bad(format!("invalid first frame: {e}"))),
        Err(e) => Err(HelloError::Io(e)),
    }
}

/// The handshake-failure reason of a failed `Hello` negotiation.
pub(crate) fn negotiation_failure(e: &WireError) -> HandshakeFailure {
    match e {
        WireError::WrongCluster { .. } => HandshakeFailure::WrongCluster,
        WireError::NoCommonVersion { .. } => HandshakeFailure::NoCommonVersion,
        _ => HandshakeFailure::BadHello,
    }
}

/// The TLS alert carried by a QUIC crypto error code (0x100–0x1ff).
fn alert_of(code: quinn::TransportErrorCode) -> Option<u8> {
    let code = u64::from(code);
    (0x100..=0x1ff).contains(&code).then(|| (code - 0x100) as u8)
}

fn describe_alert(alert: u8, local: bool) -> &'static str {
    match (alert, local) {
        (116, true) => "the remote end presented no certificate",
        (48, true) => "the remote certificate is not signed by the cluster CA (unknown CA)",
        (45, true) => "the remote certificate has expired or is not yet valid",
        (42, true) => "the remote certificate is invalid or does not carry the expected name",
        (43, true) => "the remote certificate is not valid for this use (key usage)",
        (51, true) => "a signature in the remote certificate or handshake did not verify",
        (120, true) => "no common ALPN protocol (the remote end is not a ballot peer or client)",
        (116, false) => "the remote end requires a certificate and got none",
        (48, false) => {
            "the remote end does not trust our certificate (unknown CA): use a certificate issued by the cluster CA"
        }
        (45, false) => "the remote end says our certificate has expired or is not yet valid",
        (42 | 43 | 46, false) => "the remote end rejected our certificate",
        (120, false) => "the remote end speaks no common ALPN protocol (is it a ballot node?)",
        _ => "TLS handshake failure",
    }
}

/// How a failed connection should be reported: the handshake-failure reason when it
/// is one, and a description.
pub(crate) fn classify(e: &ConnectionError) -> (Option<HandshakeFailure>, String) {
    match e {
        ConnectionError::TransportError(t) => match alert_of(t.code) {
            Some(alert) => (
                Some(HandshakeFailure::from_alert(alert, true)),
                format!("{} (TLS alert {alert}: {})", describe_alert(alert, true), t.reason),
            ),
            None => (None, format!("transport error: {t}")),
        },
        ConnectionError::ConnectionClosed(c) => match alert_of(c.error_code) {
            Some(alert) => (
                Some(HandshakeFailure::from_alert(alert, false)),
                format!("{} (TLS alert {alert}: {})", describe_alert(alert, false), String::from_utf8_lossy(&c.reason)),
            ),
            None => (None, format!("closed by the remote end: {c}")),
        },
        ConnectionError::ApplicationClosed(a) => {
            let reason = String::from_utf8_lossy(&a.reason);
            if a.error_code == CLOSE_REFUSED {
                (Some(HandshakeFailure::RejectedByRemote), format!("refused by the remote end: {reason}"))
            } else {
                (None, format!("closed by the remote end (code {}): {reason}", a.error_code))
            }
        }
        ConnectionError::Reset => (None, "reset by the remote end (it restarted)".into()),
        ConnectionError::TimedOut => (None, "timed out: no answer from the remote end".into()),
        ConnectionError::LocallyClosed => (None, "closed locally".into()),
        other => (None, other.to_string()),
    }
}

/// An [`Error`] for a failed connection to `remote`.
pub(crate) fn connection_error(remote: SocketAddr, e: &ConnectionError) -> Error {
    let (failure, reason) = classify(e);
    match e {
        ConnectionError::LocallyClosed => Error::Closed,
        ConnectionError::ApplicationClosed(a)
            if [CLOSE_REFUSED, CLOSE_BUSY, CLOSE_NOT_SERVING].contains(&a.error_code) =>
        {
            Error::Refused { addr: remote, reason: String::from_utf8_lossy(&a.reason).into_owned() }
        }
        _ if failure.is_some() => Error::Handshake { addr: remote, reason },
        _ => Error::ConnectionLost { addr: remote, reason },
    }
}

/// A close reason for the wire: at most 200 bytes, cut at a character boundary.
pub(crate) fn close_reason(text: &str) -> &[u8] {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text.as_bytes()[..end]
}
