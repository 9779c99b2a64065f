//! Open membership: QUIC endpoints whose identity is an Ed25519 key, not a certificate
//! of a cluster CA.
//!
//! A blockchain node accepts anyone who speaks its protocol and knows one address; what
//! it needs is to know *who* is on the other end, so that a peer that misbehaves can be
//! banned and one that reconnects is recognised. Each node presents a self-signed
//! certificate whose subject public key is its Ed25519 node key ([`self_signed_identity`]).
//! Both ends require a certificate; a verifier accepts any certificate carrying an
//! Ed25519 key and checks the TLS 1.3 handshake signature against that key, which proves
//! that the peer holds the private key. The peer's identity is then that key
//! ([`OpenConnection::peer_key`]); no name, issuer or validity period is trusted.
//!
//! Connections carry one bidirectional stream of ballot-wire frames, opened by the
//! dialer, whose first frame the dialer must send (QUIC announces a stream with its
//! first bytes). The ALPN protocol (for example `ballot-chain/1`) keeps such endpoints
//! apart from ballot's closed-membership peer and client protocols.
//!
//! ```
//! use ballot_quic::open::{OpenConfig, OpenEndpoint};
//! use bytes::Bytes;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ballot_quic::Error> {
//! let any = "127.0.0.1:0".parse().unwrap();
//! let a = OpenEndpoint::bind(OpenConfig::new(any, [1; 32], b"demo/1"))?;
//! let b = OpenEndpoint::bind(OpenConfig::new(any, [2; 32], b"demo/1"))?;
//! // The acceptor must be accepting for the handshake to complete, and its `accept`
//! // returns once the dialer's first frame opened the stream.
//! let acceptor = b.clone();
//! let accepted = tokio::spawn(async move { acceptor.accept().await });
//! let (mut out, _) = a.connect(b.local_addr()).await?.split();
//! out.send(Bytes::from_static(b"hello")).await?;
//! let (_, mut inbound) = accepted.await.expect("no panic").expect("open")?.split();
//! assert_eq!(inbound.peer_key(), a.key());
//! assert_eq!(&inbound.next().await?.expect("a frame")[..], b"hello");
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ballot_wire::{DEFAULT_MAX_SIZE, FrameEncoder, FrameKind};
use bytes::Bytes;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

use crate::stream::{FrameReader, close_reason, connection_error, write_frame};
use crate::{CLOSE_NORMAL, CLOSE_PROTOCOL, Error};

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32-byte key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
/// The DER prefix of an Ed25519 PKCS#8 v1 private key (RFC 8410): the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
/// The server name a dialer sends; the certificate need not carry it.
const SERVER_NAME: &str = "peer.ballot";

/// A self-signed certificate whose subject public key is the Ed25519 key of `seed`,
/// with that key's PKCS#8 encoding.
///
/// # Errors
/// [`Error::CertGen`] if rcgen refuses the key or the certificate.
pub fn self_signed_identity(seed: &[u8; 32]) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), Error> {
    let mut der = ED25519_PKCS8_PREFIX.to_vec();
    der.extend_from_slice(seed);
    let pkcs8 = PrivatePkcs8KeyDer::from(der);
    let gen_err = |what: &str| {
        let what = what.to_owned();
        move |source| Error::CertGen { what, source }
    };
    let key =
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519).map_err(gen_err("the node key"))?;
    let params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()]).map_err(gen_err("certificate names"))?;
    let cert = params.self_signed(&key).map_err(gen_err("the node certificate"))?;
    Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(pkcs8)))
}

/// The Ed25519 public key a certificate carries, if it parses and carries one.
#[must_use]
pub fn key_of_certificate(cert: &CertificateDer<'_>) -> Option<[u8; 32]> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    let spki = parsed.subject_public_key_info();
    let key = spki.as_ref().strip_prefix(&ED25519_SPKI_PREFIX[..])?;
    key.try_into().ok()
}

/// Settings of an [`OpenEndpoint`].
#[derive(Clone)]
#[non_exhaustive]
pub struct OpenConfig {
    /// The UDP address to listen on.
    pub listen: SocketAddr,
    /// The node key's 32-byte Ed25519 seed: the node's identity.
    pub seed: [u8; 32],
    /// The ALPN protocol both ends must speak.
    pub alpn: Vec<u8>,
    /// Largest frame sent or accepted (default 4 MiB).
    pub max_frame_size: usize,
    /// Keep-alive interval (default 2 s).
    pub keep_alive_interval: Duration,
    /// A connection silent this long is dead (default 10 s).
    pub idle_timeout: Duration,
    /// Limit for the TLS handshake and the first stream (default 5 s).
    pub handshake_timeout: Duration,
    /// Flow-control window per stream (default 8 MiB).
    pub stream_window: u32,
}

impl fmt::Debug for OpenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenConfig")
            .field("listen", &self.listen)
            .field("alpn", &String::from_utf8_lossy(&self.alpn))
            .field("max_frame_size", &self.max_frame_size)
            .finish_non_exhaustive()
    }
}

impl OpenConfig {
    /// Defaults for an endpoint on `listen` with the key of `seed`, speaking `alpn`.
    #[must_use]
    pub fn new(listen: SocketAddr, seed: [u8; 32], alpn: &[u8]) -> Self {
        OpenConfig {
            listen,
            seed,
            alpn: alpn.to_vec(),
            max_frame_size: DEFAULT_MAX_SIZE,
            keep_alive_interval: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            stream_window: 8 * 1024 * 1024,
        }
    }
}

/// A QUIC endpoint of an open network: dials and accepts peers identified by their keys.
#[derive(Clone)]
pub struct OpenEndpoint {
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    key: [u8; 32],
    local_addr: SocketAddr,
    max_frame_size: usize,
    handshake_timeout: Duration,
}

impl fmt::Debug for OpenEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenEndpoint").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl OpenEndpoint {
    /// Binds the endpoint.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid settings, [`Error::CertGen`] or [`Error::Tls`] for
    /// an unusable key, [`Error::Bind`] when the address cannot be bound,
    /// [`Error::NoRuntime`] outside a Tokio runtime.
    pub fn bind(config: OpenConfig) -> Result<Self, Error> {
        tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        crate::config::validate_frame_size(config.max_frame_size)?;
        crate::config::validate_timeouts(config.keep_alive_interval, config.idle_timeout, config.handshake_timeout)?;
        if config.alpn.is_empty() {
            return Err(Error::Config("the ALPN protocol must not be empty".into()));
        }
        let provider = crate::tls::provider();
        let (cert, key) = self_signed_identity(&config.seed)?;
        let own_key = key_of_certificate(&cert)
            .ok_or_else(|| Error::BadCertificate { what: "own".into(), reason: "no Ed25519 key".into() })?;
        let certified = Arc::new(CertifiedKey::from_der(vec![cert], key, &provider).map_err(|e| {
            Error::KeyMismatch { cert: "self-signed".into(), key: "node key".into(), reason: e.to_string() }
        })?);
        let verifier = Arc::new(KeyVerifier { algorithms: provider.signature_verification_algorithms });
        let mut server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier.clone())
            .with_cert_resolver(Arc::new(Resolver(certified.clone())));
        server_tls.alpn_protocols = vec![config.alpn.clone()];
        let mut client_tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(Resolver(certified)));
        client_tls.alpn_protocols = vec![config.alpn.clone()];

        let transport = crate::config::transport_config(
            config.keep_alive_interval,
            config.idle_timeout,
            Duration::from_millis(100),
            config.stream_window,
            1,
        )?;
        let server_crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server_tls)
            .map_err(|e| Error::Config(format!("QUIC server TLS: {e}")))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server.transport_config(transport.clone());
        let client_crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_tls)
            .map_err(|e| Error::Config(format!("QUIC client TLS: {e}")))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
        client.transport_config(transport);

        // Stateless resets keyed from the node key: a restarted node resets its old
        // incarnation's connections, so peers notice at once (as QuicTransport does).
        let secret = |label: &[u8]| {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &config.seed);
            let tag = ring::hmac::sign(&key, label);
            let mut out = [0u8; 32];
            out.copy_from_slice(&tag.as_ref()[..32]);
            out
        };
        let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret(b"ballot-quic open reset key v1"));
        let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(reset_key));
        let cid_key = u64::from_le_bytes(secret(b"ballot-quic open cid key v1")[..8].try_into().unwrap_or_default());
        endpoint_config.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));

        let addr = config.listen;
        let socket =
            std::net::UdpSocket::bind(addr).map_err(|source| Error::Bind { addr: addr.to_string(), source })?;
        crate::config::enlarge_socket_buffers(socket2::SockRef::from(&socket));
        let local_addr = socket.local_addr().map_err(|source| Error::Bind { addr: addr.to_string(), source })?;
        let runtime = quinn::default_runtime().ok_or(Error::NoRuntime)?;
        let endpoint = quinn::Endpoint::new(endpoint_config, Some(server), socket, runtime)
            .map_err(|source| Error::Bind { addr: local_addr.to_string(), source })?;
        Ok(OpenEndpoint {
            endpoint,
            client,
            key: own_key,
            local_addr,
            max_frame_size: config.max_frame_size,
            handshake_timeout: config.handshake_timeout,
        })
    }

    /// This endpoint's public key (its identity).
    #[must_use]
    pub fn key(&self) -> [u8; 32] {
        self.key
    }

    /// The bound UDP address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Dials `addr` and opens the connection's stream. Whoever answers is accepted if
    /// it proves a key; check [`OpenConnection::peer_key`] to know who it is.
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::Handshake`] (no common ALPN, no Ed25519 key…),
    /// [`Error::Timeout`], [`Error::ConnectionLost`].
    pub async fn connect(&self, addr: SocketAddr) -> Result<OpenConnection, Error> {
        let connecting = self
            .endpoint
            .connect_with(self.client.clone(), addr, SERVER_NAME)
            .map_err(|source| Error::Connect { addr, source })?;
        let setup = async {
            let conn = connecting.await.map_err(|e| connection_error(addr, &e))?;
            let (send, recv) = conn.open_bi().await.map_err(|e| connection_error(addr, &e))?;
            Ok::<_, Error>((conn, send, recv))
        };
        let (conn, send, recv) = tokio::time::timeout(self.handshake_timeout, setup)
            .await
            .map_err(|_| Error::Timeout { what: "the QUIC handshake", after: self.handshake_timeout })??;
        self.wrap(conn, send, recv, addr)
    }

    /// The next inbound connection whose handshake completed and whose dialer opened
    /// its stream; `None` once the endpoint is closed. A failed attempt is returned as
    /// an error (keep accepting).
    pub async fn accept(&self) -> Option<Result<OpenConnection, Error>> {
        let incoming = self.endpoint.accept().await?;
        let addr = incoming.remote_address();
        let setup = async {
            let conn = incoming.await.map_err(|e| connection_error(addr, &e))?;
            let (send, recv) = conn.accept_bi().await.map_err(|e| connection_error(addr, &e))?;
            Ok::<_, Error>((conn, send, recv))
        };
        Some(match tokio::time::timeout(self.handshake_timeout, setup).await {
            Ok(Ok((conn, send, recv))) => self.wrap(conn, send, recv, addr),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Timeout { what: "an inbound handshake and stream", after: self.handshake_timeout }),
        })
    }

    fn wrap(
        &self,
        conn: quinn::Connection,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        remote: SocketAddr,
    ) -> Result<OpenConnection, Error> {
        let certs = conn
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
            .ok_or_else(|| Error::Protocol(format!("{remote} presented no certificate")))?;
        let peer_key = certs
            .first()
            .and_then(key_of_certificate)
            .ok_or_else(|| Error::Protocol(format!("{remote}'s certificate carries no Ed25519 key")))?;
        Ok(OpenConnection {
            sender: FrameSender { conn: conn.clone(), send, encoder: FrameEncoder::new(self.max_frame_size), remote },
            receiver: FrameReceiver { conn, reader: FrameReader::new(recv, self.max_frame_size, remote), peer_key },
        })
    }

    /// Closes every connection and stops accepting.
    pub async fn close(&self) {
        self.endpoint.close(CLOSE_NORMAL, b"shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// An established connection and its stream.
#[derive(Debug)]
pub struct OpenConnection {
    sender: FrameSender,
    receiver: FrameReceiver,
}

impl OpenConnection {
    /// The key the peer proved it holds: its identity.
    #[must_use]
    pub fn peer_key(&self) -> [u8; 32] {
        self.receiver.peer_key
    }

    /// The peer's UDP address.
    #[must_use]
    pub fn remote(&self) -> SocketAddr {
        self.sender.remote
    }

    /// Splits into the sending and receiving halves (for a writer and a reader task).
    #[must_use]
    pub fn split(self) -> (FrameSender, FrameReceiver) {
        (self.sender, self.receiver)
    }
}

/// The sending half: writes frames in order.
pub struct FrameSender {
    conn: quinn::Connection,
    send: quinn::SendStream,
    encoder: FrameEncoder,
    remote: SocketAddr,
}

impl fmt::Debug for FrameSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameSender").field("remote", &self.remote).finish_non_exhaustive()
    }
}

impl FrameSender {
    /// Writes one message frame; waits while flow control holds it back.
    ///
    /// # Errors
    /// [`Error::TooLarge`] above the frame limit; the stream's write errors.
    pub async fn send(&mut self, payload: Bytes) -> Result<(), Error> {
        write_frame(&mut self.send, &self.encoder, FrameKind::Message, payload, self.remote).await
    }

    /// Closes the connection with `reason` (the peer sees it); a protocol violation
    /// when `protocol` is set, an orderly close otherwise.
    pub fn close(&self, protocol: bool, reason: &str) {
        close(&self.conn, protocol, reason);
    }
}

/// The receiving half: reads frames in order.
#[derive(Debug)]
pub struct FrameReceiver {
    conn: quinn::Connection,
    reader: FrameReader,
    peer_key: [u8; 32],
}

impl FrameReceiver {
    /// The key the peer proved it holds.
    #[must_use]
    pub fn peer_key(&self) -> [u8; 32] {
        self.peer_key
    }

    /// The next message frame's payload, or `None` once the peer finished the stream.
    /// Frames of unknown kinds are skipped.
    ///
    /// # Errors
    /// [`Error::Wire`] when the stream lost its framing (bad magic, a frame over the
    /// limit, cut inside a frame): close the connection; the stream's read errors.
    pub async fn next(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            match self.reader.next().await? {
                Some(frame) if frame.kind == FrameKind::Message => return Ok(Some(frame.payload)),
                Some(frame) => tracing::debug!(kind = ?frame.kind, "skipped a non-message frame"),
                None => return Ok(None),
            }
        }
    }

    /// Closes the connection, as [`FrameSender::close`].
    pub fn close(&self, protocol: bool, reason: &str) {
        close(&self.conn, protocol, reason);
    }
}

fn close(conn: &quinn::Connection, protocol: bool, reason: &str) {
    conn.close(if protocol { CLOSE_PROTOCOL } else { CLOSE_NORMAL }, close_reason(reason));
}

/// Presents the node's one certificate, as server and as client.
#[derive(Debug)]
struct Resolver(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl rustls::client::ResolvesClientCert for Resolver {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Accepts any certificate that carries an Ed25519 key, and checks the handshake
/// signature against it: the peer is whoever holds that key.
#[derive(Debug)]
struct KeyVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

fn no_key() -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
}

impl KeyVerifier {
    fn check(cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        key_of_certificate(cert).map(|_| ()).ok_or_else(no_key)
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme != SignatureScheme::ED25519 {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
}

impl ServerCertVerifier for KeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Self::check(end_entity).map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for KeyVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Self::check(end_entity).map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_carries_the_node_key() {
        let seed = [7u8; 32];
        let (cert, _) = self_signed_identity(&seed).unwrap();
        let expected = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        use ring::signature::KeyPair as _;
        assert_eq!(key_of_certificate(&cert).map(|k| k.to_vec()), Some(expected.public_key().as_ref().to_vec()));
        assert_eq!(key_of_certificate(&CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00])), None);
    }

    #[tokio::test]
    async fn peers_learn_each_others_keys_and_other_alpns_are_refused() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let a = OpenEndpoint::bind(OpenConfig::new(any, [1; 32], b"t/1")).unwrap();
        let b = OpenEndpoint::bind(OpenConfig::new(any, [2; 32], b"t/1")).unwrap();
        let other = OpenEndpoint::bind(OpenConfig::new(any, [3; 32], b"t/2")).unwrap();
        let acceptor = b.clone();
        let accepted = tokio::spawn(async move { acceptor.accept().await });
        let (mut tx, mut from_b) = a.connect(b.local_addr()).await.unwrap().split();
        assert_eq!(from_b.peer_key(), b.key());
        tx.send(Bytes::from_static(b"ping")).await.unwrap();
        let (mut b_tx, mut b_rx) = accepted.await.unwrap().unwrap().unwrap().split();
        assert_eq!(b_rx.peer_key(), a.key());
        assert_eq!(&b_rx.next().await.unwrap().unwrap()[..], b"ping");
        b_tx.send(Bytes::from_static(b"pong")).await.unwrap();
        assert_eq!(&from_b.next().await.unwrap().unwrap()[..], b"pong");

        let (refused, failed) = tokio::join!(other.connect(b.local_addr()), b.accept());
        assert!(matches!(refused, Err(Error::Handshake { .. })), "{refused:?}");
        assert!(matches!(failed, Some(Err(_))), "the acceptor reports the failed attempt");
        for e in [a, b, other] {
            e.close().await;
        }
    }

    #[tokio::test]
    async fn an_oversized_frame_is_a_fatal_wire_error() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let a = OpenEndpoint::bind(OpenConfig::new(any, [1; 32], b"t/1")).unwrap();
        let mut small = OpenConfig::new(any, [2; 32], b"t/1");
        small.max_frame_size = 1024;
        let b = OpenEndpoint::bind(small).unwrap();
        let acceptor = b.clone();
        let accepted = tokio::spawn(async move { acceptor.accept().await });
        let (mut tx, _rx) = a.connect(b.local_addr()).await.unwrap().split();
        tx.send(Bytes::from(vec![0u8; 4096])).await.unwrap();
        let (_, mut b_rx) = accepted.await.unwrap().unwrap().unwrap().split();
        assert!(matches!(b_rx.next().await, Err(Error::Wire(_))));
        a.close().await;
        b.close().await;
    }
}
