//! The client protocol (ALPN `ballot-client/1`): request/response and server-push
//! streams of opaque ballot-wire frames, on the node's port.
//!
//! A client connection starts with a `Hello` exchange on its first bidirectional
//! stream (cluster name, protocol version; the server answers with its node id). After
//! that, each request opens a bidirectional stream: the client writes one
//! [`Request`](ballot_wire::FrameKind::Request) frame and finishes its side; the server
//! answers with one or more [`Response`](ballot_wire::FrameKind::Response) frames and
//! finishes (several for a watch). Either side may drop a stream to cancel it.

use std::net::SocketAddr;
use std::sync::Arc;

use ballot_core::NodeId;
use ballot_wire::{FrameEncoder, FrameKind, Hello};
use bytes::Bytes;

use crate::config::{client_endpoint, transport_config, validate_cluster, validate_frame_size, validate_timeouts};
use crate::stream::{FrameReader, HelloError, connection_error, read_hello, write_frame, write_hello};
use crate::{CLOSE_NORMAL, ClientOptions, Error, PeerIdentity, TlsConfig, node_dns_name};

/// Hands out authenticated client connections of a [`QuicTransport`](crate::QuicTransport).
/// Clones share one backlog.
#[derive(Clone, Debug)]
pub struct ClientListener {
    rx: async_channel::Receiver<ClientConnection>,
}

impl ClientListener {
    pub(crate) fn new(rx: async_channel::Receiver<ClientConnection>) -> Self {
        ClientListener { rx }
    }

    /// The next client connection whose certificate and `Hello` were accepted.
    ///
    /// # Errors
    /// [`Error::Closed`] once the transport is closed.
    pub async fn accept(&self) -> Result<ClientConnection, Error> {
        self.rx.recv().await.map_err(|_| Error::Closed)
    }
}

/// A client connection on the node side.
#[derive(Clone, Debug)]
pub struct ClientConnection {
    conn: quinn::Connection,
    identity: Arc<PeerIdentity>,
    encoder: FrameEncoder,
    version: u8,
    max_frame_size: usize,
}

impl ClientConnection {
    pub(crate) fn new(conn: quinn::Connection, identity: PeerIdentity, version: u8, max_frame_size: usize) -> Self {
        ClientConnection {
            conn,
            identity: Arc::new(identity),
            encoder: FrameEncoder::new(max_frame_size).with_version(version),
            version,
            max_frame_size,
        }
    }

    /// Who the client's certificate names.
    #[must_use]
    pub fn identity(&self) -> &PeerIdentity {
        &self.identity
    }

    /// The client's address.
    #[must_use]
    pub fn remote_address(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    /// The protocol version agreed in the `Hello` exchange.
    #[must_use]
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The next request stream, or `None` once the client closed the connection.
    ///
    /// # Errors
    /// [`Error::ConnectionLost`] (or another connection error) when the connection
    /// failed.
    pub async fn accept_stream(&self) -> Result<Option<RequestStream>, Error> {
        let remote = self.conn.remote_address();
        match self.conn.accept_bi().await {
            Ok((send, recv)) => {
                let mut reader = FrameReader::new(recv, self.max_frame_size, remote);
                reader.set_version(self.version);
                Ok(Some(RequestStream { reader, send, encoder: self.encoder, remote }))
            }
            Err(quinn::ConnectionError::ApplicationClosed(a)) if a.error_code == CLOSE_NORMAL => Ok(None),
            Err(e) => Err(connection_error(remote, &e)),
        }
    }

    /// Closes the connection with `code` and a reason for the client.
    pub fn close(&self, code: quinn::VarInt, reason: &str) {
        self.conn.close(code, crate::stream::close_reason(reason));
    }
}

/// One request stream on the node side: read the request, send one or more responses,
/// finish.
#[derive(Debug)]
pub struct RequestStream {
    reader: FrameReader,
    send: quinn::SendStream,
    encoder: FrameEncoder,
    remote: SocketAddr,
}

impl RequestStream {
    /// The next request frame, or `None` once the client finished its side.
    ///
    /// # Errors
    /// [`Error::Wire`] for a malformed or oversized frame, [`Error::Protocol`] for a
    /// frame that is not a request, connection errors.
    pub async fn read_request(&mut self) -> Result<Option<Bytes>, Error> {
        match self.reader.next().await? {
            Some(frame) if frame.kind == FrameKind::Request => Ok(Some(frame.payload)),
            Some(frame) => Err(Error::Protocol(format!("expected a Request frame, got {:?}", frame.kind))),
            None => Ok(None),
        }
    }

    /// Sends one response frame; call repeatedly to push several (watches).
    ///
    /// # Errors
    /// [`Error::TooLarge`] over the maximum frame size; [`Error::Write`] when the client
    /// stopped reading (it cancelled), connection errors.
    pub async fn send_response(&mut self, frame: Bytes) -> Result<(), Error> {
        write_frame(&mut self.send, &self.encoder, FrameKind::Response, frame, self.remote).await
    }

    /// Finishes the response side: the client sees the end of the stream.
    ///
    /// # Errors
    /// [`Error::Closed`] when the stream was already finished or reset.
    pub fn finish(mut self) -> Result<(), Error> {
        self.send.finish().map_err(|_| Error::Closed)
    }

    /// Waits until the client stops reading the responses (it dropped its
    /// [`ResponseStream`]) or the stream was finished and acknowledged.
    pub async fn stopped(&mut self) {
        let _ = self.send.stopped().await;
    }
}

/// Connects to nodes' client port. One connector (one UDP socket) serves any number of
/// sessions.
#[derive(Debug)]
pub struct ClientConnector {
    endpoint: quinn::Endpoint,
    any_node: quinn::ClientConfig,
    named: quinn::ClientConfig,
    hello: Hello,
    options: ClientOptions,
}

impl ClientConnector {
    /// A connector for `cluster`, presenting `tls`'s certificate (the client
    /// certificate, or a node's when a node forwards requests). Must be called within a
    /// Tokio runtime.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid options, [`Error::Bind`] when no UDP socket can be
    /// bound, [`Error::NoRuntime`] outside a Tokio runtime.
    pub fn new(tls: &TlsConfig, cluster: impl Into<String>, options: ClientOptions) -> Result<Self, Error> {
        tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let cluster = cluster.into();
        validate_cluster(&cluster)?;
        validate_frame_size(options.max_frame_size)?;
        validate_timeouts(options.keep_alive_interval, options.idle_timeout, options.handshake_timeout)?;
        let transport = transport_config(
            options.keep_alive_interval,
            options.idle_timeout,
            options.initial_rtt,
            options.stream_window,
            0,
        )?;
        let quic = |any_node: bool| -> Result<quinn::ClientConfig, Error> {
            let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls.client_config(any_node)?)
                .map_err(|e| Error::Config(format!("QUIC client TLS: {e}")))?;
            let mut config = quinn::ClientConfig::new(Arc::new(crypto));
            config.transport_config(transport.clone());
            Ok(config)
        };
        let (any_node, named) = (quic(true)?, quic(false)?);
        let endpoint = match options.bind {
            Some(addr) => client_endpoint(addr).map_err(|source| Error::Bind { addr: addr.to_string(), source })?,
            None => client_endpoint(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)))
                .or_else(|_| client_endpoint(SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))))
                .map_err(|source| Error::Bind { addr: "0.0.0.0:0".into(), source })?,
        };
        let node = tls.identity().node;
        Ok(ClientConnector { endpoint, any_node, named, hello: Hello::new(cluster, node), options })
    }

    /// Connects to whichever node of the cluster listens at `addr` (its certificate
    /// must come from the CA and name a node).
    ///
    /// # Errors
    /// [`Error::Handshake`] when TLS fails (with which side refused what: a client
    /// certificate from another CA reads "the remote end does not trust our
    /// certificate (unknown CA)"), [`Error::Refused`] when the node refuses the
    /// client, [`Error::Wire`] for another cluster, [`Error::Timeout`], connection
    /// errors.
    pub async fn connect(&self, addr: SocketAddr) -> Result<NodeConnection, Error> {
        self.connect_inner(addr, None).await
    }

    /// Connects to node `node` at `addr`; its certificate must name `node`.
    ///
    /// # Errors
    /// As [`connect`](ClientConnector::connect).
    pub async fn connect_node(&self, addr: SocketAddr, node: NodeId) -> Result<NodeConnection, Error> {
        self.connect_inner(addr, Some(node)).await
    }

    async fn connect_inner(&self, addr: SocketAddr, node: Option<NodeId>) -> Result<NodeConnection, Error> {
        let (config, name) = match node {
            Some(id) => (self.named.clone(), node_dns_name(id)),
            None => (self.any_node.clone(), "node.ballot".to_owned()),
        };
        let connecting =
            self.endpoint.connect_with(config, addr, &name).map_err(|source| Error::Connect { addr, source })?;
        let timeout = self.options.handshake_timeout;
        let handshake = async {
            let conn = connecting.await.map_err(|e| connection_error(addr, &e))?;
            let lost = |e: Error| conn.close_reason().map_or(e, |reason| connection_error(addr, &reason));
            let (mut send, recv) = conn.open_bi().await.map_err(|e| connection_error(addr, &e))?;
            write_hello(&mut send, &self.hello, addr).await.map_err(lost)?;
            let _ = send.finish();
            let mut reader = FrameReader::new(recv, self.options.max_frame_size, addr);
            let hello = match read_hello(&mut reader).await {
                Ok(h) => h,
                Err(HelloError::Io(e)) => return Err(lost(e)),
                Err(HelloError::Bad(detail)) => return Err(lost(Error::Protocol(detail))),
            };
            let version = self.hello.negotiate(&hello)?;
            let server = hello.node.ok_or_else(|| Error::Protocol("the server's Hello carries no node id".into()))?;
            let certified = PeerIdentity::of_connection(&conn).and_then(Result::ok).and_then(|id| id.node);
            if certified != Some(server) {
                conn.close(crate::CLOSE_REFUSED, b"Hello does not match the certificate");
                return Err(Error::Protocol(format!(
                    "the server says it is {server} but its certificate names {certified:?}"
                )));
            }
            Ok(NodeConnection {
                conn,
                node: server,
                encoder: FrameEncoder::new(self.options.max_frame_size).with_version(version),
                version,
                max_frame_size: self.options.max_frame_size,
            })
        };
        tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| Error::Timeout { what: "the handshake", after: timeout })?
    }

    /// Closes every session and waits (up to a second) for the closes to be sent.
    pub async fn close(&self) {
        self.endpoint.close(CLOSE_NORMAL, b"client closing");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// An authenticated connection to one node; cheap to clone, usable concurrently.
#[derive(Clone, Debug)]
pub struct NodeConnection {
    conn: quinn::Connection,
    node: NodeId,
    encoder: FrameEncoder,
    version: u8,
    max_frame_size: usize,
}

impl NodeConnection {
    /// The node at the other end (verified against its certificate).
    #[must_use]
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    /// The node's address.
    #[must_use]
    pub fn remote_address(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    /// Sends `request` and returns the first response frame.
    ///
    /// # Errors
    /// [`Error::TooLarge`] for a request over the maximum frame size (nothing is sent),
    /// [`Error::Protocol`] when the node finished the stream without answering,
    /// connection and stream errors.
    pub async fn request(&self, request: Bytes) -> Result<Bytes, Error> {
        let mut stream = self.open_stream(request).await?;
        stream.next().await?.ok_or_else(|| Error::Protocol("the node ended the stream without a response".into()))
    }

    /// Sends `request` and returns the stream of its responses (for watches).
    ///
    /// # Errors
    /// As [`request`](NodeConnection::request).
    pub async fn open_stream(&self, request: Bytes) -> Result<ResponseStream, Error> {
        if request.len() > self.max_frame_size {
            return Err(Error::TooLarge { size: request.len(), max: self.max_frame_size });
        }
        let remote = self.conn.remote_address();
        let (mut send, recv) = self.conn.open_bi().await.map_err(|e| connection_error(remote, &e))?;
        write_frame(&mut send, &self.encoder, FrameKind::Request, request, remote).await?;
        let _ = send.finish();
        let mut reader = FrameReader::new(recv, self.max_frame_size, remote);
        reader.set_version(self.version);
        Ok(ResponseStream { reader })
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.conn.close(CLOSE_NORMAL, b"client closing");
    }
}

/// The responses to one request; drop it to cancel.
#[derive(Debug)]
pub struct ResponseStream {
    reader: FrameReader,
}

impl ResponseStream {
    /// The next response frame, or `None` when the node finished the stream.
    ///
    /// # Errors
    /// [`Error::Wire`] for a malformed or oversized frame, [`Error::Protocol`] for a
    /// frame that is not a response, connection and stream errors.
    pub async fn next(&mut self) -> Result<Option<Bytes>, Error> {
        match self.reader.next().await? {
            Some(frame) if frame.kind == FrameKind::Response => Ok(Some(frame.payload)),
            Some(frame) => Err(Error::Protocol(format!("expected a Response frame, got {:?}", frame.kind))),
            None => Ok(None),
        }
    }
}
