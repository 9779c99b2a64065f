//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use ballot_core::{Incoming, NodeId, Transport};
use ballot_quic::{DevCa, QuicConfig, QuicTransport, TlsConfig};

pub const CLUSTER: &str = "test-cluster";

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "ballot_quic=warn".into()),
        )
        .with_test_writer()
        .try_init();
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Node `id`'s TLS configuration from `ca`.
pub fn node_tls(ca: &DevCa, id: u64) -> TlsConfig {
    let cert = ca.issue_node(NodeId(id), &["127.0.0.1".to_owned()]).unwrap();
    ca.tls_config(&cert).unwrap()
}

/// A configuration with short timeouts suited to loopback tests.
pub fn config(id: u64, tls: TlsConfig) -> QuicConfig {
    let mut c = QuicConfig::new(NodeId(id), CLUSTER, loopback(), tls);
    c.reconnect_max = Duration::from_millis(500);
    c.close_timeout = Duration::from_millis(500);
    c
}

/// Binds `addr`, retrying while a previous incarnation still holds it.
pub async fn bind_retrying(addr: SocketAddr) -> UdpSocket {
    for _ in 0..300 {
        match UdpSocket::bind(addr) {
            Ok(s) => return s,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("{addr} stayed in use for 3 s");
}

pub async fn recv_within(t: &QuicTransport, d: Duration) -> Option<Incoming> {
    tokio::time::timeout(d, t.recv()).await.ok().and_then(Result::ok)
}

/// Polls `cond` every 10 ms for up to `d`.
pub async fn eventually(d: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// A bare QUIC client endpoint speaking `tls` (for misbehaving peers).
pub fn raw_endpoint() -> quinn::Endpoint {
    quinn::Endpoint::client(loopback()).unwrap()
}

pub fn quic_client_config(tls: rustls::ClientConfig) -> quinn::ClientConfig {
    quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap()))
}

/// Sends `frame` to `to` until the queue accepts it.
pub async fn send_retrying(t: &QuicTransport, to: NodeId, frame: bytes::Bytes) {
    for _ in 0..2_000 {
        match t.send(to, frame.clone()) {
            Ok(()) => return,
            Err(ballot_core::SendError::QueueFull(_)) => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(e) => panic!("send to {to} failed: {e}"),
        }
    }
    panic!("queue to {to} stayed full");
}
