//! The client protocol on a node's port: request/response, server push, identity
//! checks, wrong-CA clients, oversized requests.

mod common;

use std::time::Duration;

use ballot_core::NodeId;
use ballot_quic::{
    CLIENT_DNS_NAME, ClientConnection, ClientConnector, ClientOptions, DevCa, Error, HandshakeFailure, QuicTransport,
    TlsConfig,
};
use ballot_wire::WireError;
use bytes::Bytes;
use common::{CLUSTER, eventually, node_tls};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

/// Serves one client connection: `echo:x` answers `x` reversed, `watch:n` pushes `n`
/// numbered responses; request-read errors are reported on `errors`.
async fn serve(conn: ClientConnection, errors: mpsc::UnboundedSender<Error>) {
    while let Ok(Some(mut stream)) = conn.accept_stream().await {
        let errors = errors.clone();
        tokio::spawn(async move {
            let request = match stream.read_request().await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    let _ = errors.send(e);
                    return;
                }
            };
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some(n) = text.strip_prefix("watch:") {
                for i in 0..n.parse::<u32>().unwrap() {
                    stream.send_response(Bytes::from(format!("event {i}"))).await.unwrap();
                }
            } else if let Some(s) = text.strip_prefix("echo:") {
                stream.send_response(Bytes::from(s.chars().rev().collect::<String>())).await.unwrap();
            }
            stream.finish().unwrap();
        });
    }
}

struct Node {
    transport: QuicTransport,
    errors: mpsc::UnboundedReceiver<Error>,
}

fn start_node(ca: &DevCa, id: u64, max_frame_size: usize) -> Node {
    let mut config = common::config(id, node_tls(ca, id));
    config.max_frame_size = max_frame_size;
    let transport = QuicTransport::bind(config).unwrap();
    let listener = transport.client_listener();
    let (tx, errors) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(conn) = listener.accept().await {
            tokio::spawn(serve(conn, tx.clone()));
        }
    });
    Node { transport, errors }
}

fn client_tls(ca: &DevCa) -> TlsConfig {
    ca.tls_config(&ca.issue_client(CLIENT_DNS_NAME).unwrap()).unwrap()
}

#[tokio::test]
async fn requests_and_server_push_streams() {
    common::init_tracing();
    let ca = DevCa::generate().unwrap();
    let node = start_node(&ca, 1, 1 << 20);
    let addr = node.transport.local_addr();
    let connector = ClientConnector::new(&client_tls(&ca), CLUSTER, ClientOptions::default()).unwrap();

    let session = connector.connect(addr).await.unwrap();
    assert_eq!(session.node_id(), NodeId(1), "the node's id comes from its verified certificate");
    assert_eq!(&session.request(Bytes::from_static(b"echo:ballot")).await.unwrap()[..], b"tollab");

    // Concurrent requests on one session.
    let answers = futures_join((0..20).map(|i| {
        let s = session.clone();
        async move { s.request(Bytes::from(format!("echo:{i:03}"))).await.unwrap() }
    }))
    .await;
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a, &Bytes::from(format!("{i:03}").chars().rev().collect::<String>()));
    }

    // A watch: several responses on one stream, then the end.
    let mut watch = session.open_stream(Bytes::from_static(b"watch:5")).await.unwrap();
    for i in 0..5 {
        assert_eq!(watch.next().await.unwrap(), Some(Bytes::from(format!("event {i}"))));
    }
    assert_eq!(watch.next().await.unwrap(), None);

    // A named connection to the right node works; to the wrong one TLS refuses.
    assert_eq!(connector.connect_node(addr, NodeId(1)).await.unwrap().node_id(), NodeId(1));
    match connector.connect_node(addr, NodeId(2)).await {
        Err(Error::Handshake { reason, .. }) => assert!(reason.contains("expected name"), "{reason}"),
        other => panic!("connecting to n1 as n2 must fail the handshake, got {other:?}"),
    }
    session.close();
    connector.close().await;
    ballot_core::Transport::close(&node.transport).await;
}

async fn futures_join<F: std::future::Future<Output = Bytes> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<Bytes> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = vec![];
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn wrong_ca_and_wrong_cluster_clients_get_clear_errors() {
    common::init_tracing();
    let ca = DevCa::generate().unwrap();
    let node = start_node(&ca, 1, 1 << 20);
    let addr = node.transport.local_addr();

    // A client certificate from another CA (the client trusts the cluster CA).
    let other = DevCa::generate().unwrap();
    let foreign = other.issue_client(CLIENT_DNS_NAME).unwrap();
    let tls = TlsConfig::new(vec![ca.cert().clone()], vec![foreign.cert.clone()], foreign.key()).unwrap();
    let connector = ClientConnector::new(&tls, CLUSTER, ClientOptions::default()).unwrap();
    let err = connector.connect(addr).await.expect_err("a wrong-CA client must be refused");
    assert!(matches!(err, Error::Handshake { .. }), "{err:?}");
    assert!(err.to_string().contains("does not trust our certificate (unknown CA)"), "{err}");
    assert!(eventually(WAIT, || node.transport.client_handshake_failures(HandshakeFailure::UnknownCa) == 1).await);
    assert_eq!(node.transport.peer_handshake_failures(HandshakeFailure::UnknownCa), 0, "counted as a client");

    // A client that does not trust the node's CA.
    let tls = other.tls_config(&foreign).unwrap();
    let connector = ClientConnector::new(&tls, CLUSTER, ClientOptions::default()).unwrap();
    let err = connector.connect(addr).await.expect_err("the client must refuse a node of another CA");
    assert!(err.to_string().contains("not signed by the cluster CA"), "{err}");

    // The right CA, the wrong cluster.
    let connector = ClientConnector::new(&client_tls(&ca), "elsewhere", ClientOptions::default()).unwrap();
    match connector.connect(addr).await {
        Err(Error::Refused { reason, .. }) => assert!(reason.contains("cluster"), "{reason}"),
        other => panic!("a client of another cluster must be refused, got {other:?}"),
    }
    assert_eq!(node.transport.client_handshake_failures(HandshakeFailure::WrongCluster), 1);
    ballot_core::Transport::close(&node.transport).await;
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    common::init_tracing();
    let ca = DevCa::generate().unwrap();
    let mut node = start_node(&ca, 1, 64 * 1024);
    let addr = node.transport.local_addr();

    // Refused locally by a client with the same limit: nothing is sent.
    let mut options = ClientOptions::default();
    options.max_frame_size = 64 * 1024;
    let connector = ClientConnector::new(&client_tls(&ca), CLUSTER, options).unwrap();
    let session = connector.connect(addr).await.unwrap();
    match session.request(Bytes::from(vec![b'x'; 64 * 1024 + 1])).await {
        Err(Error::TooLarge { size, max }) => assert_eq!((size, max), (64 * 1024 + 1, 64 * 1024)),
        other => panic!("expected TooLarge, got {other:?}"),
    }

    // Refused by the node when a client with a larger limit sends one.
    let mut options = ClientOptions::default();
    options.max_frame_size = 1 << 20;
    let big = ClientConnector::new(&client_tls(&ca), CLUSTER, options).unwrap().connect(addr).await.unwrap();
    let result = tokio::time::timeout(WAIT, big.request(Bytes::from(vec![b'x'; 100_000]))).await.unwrap();
    assert!(result.is_err(), "an oversized request gets no answer: {result:?}");
    let seen = tokio::time::timeout(WAIT, node.errors.recv()).await.unwrap().unwrap();
    assert!(matches!(seen, Error::Wire(WireError::FrameTooLarge { declared: 100_000, .. })), "{seen:?}");

    // The first session still works.
    assert_eq!(&session.request(Bytes::from_static(b"echo:ok")).await.unwrap()[..], b"ko");
    ballot_core::Transport::close(&node.transport).await;
}
