//! ballot's network layer: a QUIC transport with mutual TLS, for peers and clients, on
//! one UDP port per node.
//!
//! Use this crate to run a ballot node on a real network ([`QuicTransport`] implements
//! [`ballot_core::Transport`], which the driver in ballot-node runs protocols against),
//! to serve or speak the client protocol ([`ClientListener`], [`ClientConnector`]), and
//! to make development certificates ([`generate_dev_certs`], [`DevCa`]). Algorithms and
//! the simulator never need it.
//!
//! - **One endpoint per node.** The ALPN protocol of each connection selects the peer
//!   protocol ([`ALPN_PEER`], `ballot-peer/1`) or the client protocol ([`ALPN_CLIENT`],
//!   `ballot-client/1`).
//! - **Mutual TLS** (TLS 1.3, ring) against a cluster CA. Node `n{id}`'s certificate
//!   carries the DNS name `n{id}.ballot` ([`node_dns_name`]); a dialer checks that name,
//!   an acceptor reads it from the client certificate and checks it against the node id
//!   claimed in the first frame (a ballot-wire [`Hello`](ballot_wire::Hello), which
//!   also carries the cluster name). Refusals are logged and counted in
//!   `ballot_network_peer_handshake_failures_total{reason}` (see [`HandshakeFailure`]).
//! - **Framing** is ballot-wire's: each peer link is one bidirectional stream carrying
//!   length-delimited frames in order, at most [`QuicConfig::max_frame_size`] each.
//! - **Backpressure**: [`Transport::send`](ballot_core::Transport::send) never waits;
//!   a full per-peer queue drops the frame and returns `QueueFull`.
//! - **Reconnects** with capped, jittered exponential backoff; a peer that crashed and
//!   restarted on the same address resets stale connections at once (QUIC stateless
//!   resets keyed from the node's private key).
//! - **Metrics** follow etcd's names with a `ballot_` prefix (see [`metrics`]).
//!
//! `docs/transport.md` describes the wire-level details.
//!
//! # Example
//!
//! Two nodes on loopback exchange a frame:
//!
//! ```
//! use ballot_core::{NodeId, Transport};
//! use ballot_quic::{DevCa, QuicConfig, QuicTransport};
//! use bytes::Bytes;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ca = DevCa::generate()?;
//! let hosts = ["127.0.0.1".to_owned()];
//! let tls = |id| ca.issue_node(NodeId(id), &hosts).and_then(|cert| ca.tls_config(&cert));
//! let any_port = "127.0.0.1:0".parse()?;
//!
//! let n1 = QuicTransport::bind(QuicConfig::new(NodeId(1), "demo", any_port, tls(1)?))?;
//! let n2 = QuicTransport::bind(
//!     QuicConfig::new(NodeId(2), "demo", any_port, tls(2)?).with_peer(NodeId(1), n1.local_addr().to_string()),
//! )?;
//!
//! n2.send(NodeId(1), Bytes::from_static(b"hello"))?;
//! let got = n1.recv().await?;
//! assert_eq!((got.from, &got.frame[..]), (NodeId(2), &b"hello"[..]));
//! n2.close().await;
//! n1.close().await;
//! # Ok(())
//! # }
//! ```

mod accept;
mod backoff;
mod certs;
mod client;
mod config;
mod error;
pub mod metrics;
pub mod open;
mod peer;
mod stream;
mod tls;
mod transport;

pub use certs::{DevCa, DevCertFiles, IssuedCert, generate_dev_certs};
pub use client::{ClientConnection, ClientConnector, ClientListener, NodeConnection, RequestStream, ResponseStream};
pub use config::{ClientOptions, QuicConfig};
pub use error::Error;
pub use metrics::HandshakeFailure;
pub use tls::{
    ALPN_CLIENT, ALPN_PEER, CLIENT_DNS_NAME, IDENTITY_SUFFIX, PeerIdentity, TlsConfig, load_certificate, node_dns_name,
};
pub use transport::QuicTransport;

/// Application close code: orderly shutdown or client disconnect.
pub const CLOSE_NORMAL: quinn::VarInt = quinn::VarInt::from_u32(0);
/// Application close code: the handshake was refused; the reason says why (wrong
/// identity, cluster or version).
pub const CLOSE_REFUSED: quinn::VarInt = quinn::VarInt::from_u32(1);
/// Application close code: the remote end broke the protocol (bad frame, oversized
/// frame, unexpected frame kind).
pub const CLOSE_PROTOCOL: quinn::VarInt = quinn::VarInt::from_u32(2);
/// Application close code: a newer connection from the same peer replaced this one.
pub const CLOSE_SUPERSEDED: quinn::VarInt = quinn::VarInt::from_u32(3);
/// Application close code: too many client connections are waiting; retry later.
pub const CLOSE_BUSY: quinn::VarInt = quinn::VarInt::from_u32(4);
/// Application close code: this node does not serve clients.
pub const CLOSE_NOT_SERVING: quinn::VarInt = quinn::VarInt::from_u32(5);
