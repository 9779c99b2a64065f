//! ballot-core's transport conformance suite against real QUIC endpoints on loopback.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use ballot_core::NodeId;
use ballot_core::testkit::{BoxFuture, TransportHarness, transport_conformance};
use ballot_quic::{DevCa, QuicTransport, TlsConfig};

struct Harness {
    tls: HashMap<NodeId, TlsConfig>,
    addrs: HashMap<NodeId, SocketAddr>,
    /// Sockets bound up front (so every node knows its peers' ports), used by first starts.
    sockets: HashMap<NodeId, UdpSocket>,
}

impl Harness {
    fn new() -> Self {
        let ca = DevCa::generate().unwrap();
        let (mut tls, mut addrs, mut sockets) = (HashMap::new(), HashMap::new(), HashMap::new());
        for id in 1..=3 {
            let socket = UdpSocket::bind(common::loopback()).unwrap();
            addrs.insert(NodeId(id), socket.local_addr().unwrap());
            sockets.insert(NodeId(id), socket);
            tls.insert(NodeId(id), common::node_tls(&ca, id));
        }
        Harness { tls, addrs, sockets }
    }
}

impl TransportHarness for Harness {
    type T = QuicTransport;

    fn ids(&self) -> Vec<NodeId> {
        vec![NodeId(1), NodeId(2), NodeId(3)]
    }

    fn start(&mut self, id: NodeId) -> BoxFuture<'_, QuicTransport> {
        Box::pin(async move {
            let addr = self.addrs[&id];
            let socket = match self.sockets.remove(&id) {
                Some(s) => s,
                None => common::bind_retrying(addr).await,
            };
            let mut config = common::config(id.get(), self.tls[&id].clone());
            for (&peer, peer_addr) in &self.addrs {
                if peer != id {
                    config = config.with_peer(peer, peer_addr.to_string());
                }
            }
            QuicTransport::with_socket(config, socket).unwrap()
        })
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_transport_passes_the_conformance_suite() {
    common::init_tracing();
    tokio::time::timeout(Duration::from_secs(60), transport_conformance(Harness::new()))
        .await
        .expect("the conformance suite must finish within 60 s");
}
