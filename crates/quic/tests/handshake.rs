//! Peers with a wrong identity are refused, logged and counted, while good peers keep
//! working; oversized frames are refused on both ends.

mod common;

use std::time::Duration;

use ballot_core::{NodeId, SendError, Transport};
use ballot_quic::{CLIENT_DNS_NAME, CLOSE_PROTOCOL, CLOSE_REFUSED, DevCa, HandshakeFailure, QuicTransport, TlsConfig};
use ballot_wire::{FrameEncoder, FrameKind, Hello};
use bytes::{Bytes, BytesMut};
use common::{CLUSTER, eventually, node_tls, recv_within, send_retrying};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

const WAIT: Duration = Duration::from_secs(10);

/// Opens a raw peer-protocol connection to `to` presenting `tls`'s certificate, sends a
/// `Hello` claiming `claimed`, and returns how the connection ended.
async fn raw_hello(tls: rustls::ClientConfig, to: &QuicTransport, claimed: NodeId) -> quinn::ConnectionError {
    let endpoint = common::raw_endpoint();
    let conn = endpoint
        .connect_with(common::quic_client_config(tls), to.local_addr(), &ballot_quic::node_dns_name(to.local_id()))
        .unwrap()
        .await
        .expect("the TLS handshake itself succeeds");
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut buf = BytesMut::new();
    FrameEncoder::default().encode(FrameKind::Hello, &Hello::new(CLUSTER, Some(claimed)), &mut buf).unwrap();
    send.write_all(&buf).await.unwrap();
    let answer = tokio::time::timeout(WAIT, recv.read_to_end(1 << 16)).await.expect("an answer in time");
    assert!(answer.is_err(), "a refused peer must not get a Hello back: {answer:?}");
    tokio::time::timeout(WAIT, conn.closed()).await.unwrap()
}

fn refused_reason(e: &quinn::ConnectionError) -> String {
    match e {
        quinn::ConnectionError::ApplicationClosed(a) if a.error_code == CLOSE_REFUSED => {
            String::from_utf8_lossy(&a.reason).into_owned()
        }
        other => panic!("expected an application close with CLOSE_REFUSED, got {other}"),
    }
}

async fn scenario() {
    let ca = DevCa::generate().unwrap();
    let a = QuicTransport::bind(common::config(1, node_tls(&ca, 1))).unwrap();
    let b = QuicTransport::bind(common::config(2, node_tls(&ca, 2)).with_peer(NodeId(1), a.local_addr().to_string()))
        .unwrap();
    a.add_peer(NodeId(2), b.local_addr().to_string()).unwrap();
    let good_exchange = |round: u32| {
        let (a, b) = (&a, &b);
        async move {
            let frame = Bytes::from(format!("round {round}"));
            send_retrying(b, NodeId(1), frame.clone()).await;
            let got = recv_within(a, WAIT).await.expect("good peer b reaches a");
            assert_eq!((got.from, got.frame), (NodeId(2), frame.clone()));
            send_retrying(a, NodeId(2), frame.clone()).await;
            let got = recv_within(b, WAIT).await.expect("a reaches good peer b");
            assert_eq!((got.from, got.frame), (NodeId(1), frame));
        }
    };
    good_exchange(0).await;

    // 1. No certificate at all: the TLS handshake fails on a's side.
    {
        let tls =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates({
                    let mut roots = rustls::RootCertStore::empty();
                    roots.add(ca.cert().clone()).unwrap();
                    roots
                })
                .with_no_client_auth();
        let mut tls = tls;
        tls.alpn_protocols = vec![ballot_quic::ALPN_PEER.to_vec()];
        let endpoint = common::raw_endpoint();
        let result = async {
            let conn =
                endpoint.connect_with(common::quic_client_config(tls), a.local_addr(), "n1.ballot").unwrap().await?;
            let (mut send, _recv) = conn.open_bi().await?;
            let _ = send.write_all(b"x").await;
            Err::<(), _>(conn.closed().await)
        };
        let err = tokio::time::timeout(WAIT, result).await.unwrap().unwrap_err();
        assert!(err.to_string().contains("certificate"), "the refusal must say why: {err}");
        assert!(eventually(WAIT, || a.peer_handshake_failures(HandshakeFailure::NoCertificate) == 1).await);
    }
    good_exchange(1).await;

    // 2. A certificate from another CA (the peer trusts ours, so only a refuses).
    let other_ca = DevCa::generate().unwrap();
    let foreign = other_ca.issue_node(NodeId(3), &[]).unwrap();
    let foreign_tls = TlsConfig::new(vec![ca.cert().clone()], vec![foreign.cert.clone()], foreign.key()).unwrap();
    let x =
        QuicTransport::bind(common::config(3, foreign_tls).with_peer(NodeId(1), a.local_addr().to_string())).unwrap();
    x.send(NodeId(1), Bytes::from_static(b"from a stranger")).unwrap();
    assert!(eventually(WAIT, || a.peer_handshake_failures(HandshakeFailure::UnknownCa) >= 1).await);
    assert!(
        eventually(WAIT, || x.peer_handshake_failures(HandshakeFailure::RejectedByRemote) >= 1).await,
        "the stranger learns that it was refused"
    );
    good_exchange(2).await;
    x.close().await;

    // 3. A valid certificate for n3 claiming to be n2.
    let n3 = node_tls(&ca, 3);
    let reason = refused_reason(&raw_hello(n3.peer_client_config().unwrap(), &a, NodeId(2)).await);
    assert!(reason.contains("claims to be n2") && reason.contains("n3"), "{reason}");
    assert_eq!(a.peer_handshake_failures(HandshakeFailure::IdMismatch), 1);

    // 4. The client certificate on the peer protocol names no node.
    let client = ca.issue_client(CLIENT_DNS_NAME).unwrap();
    let client_tls = ca.tls_config(&client).unwrap();
    let reason = refused_reason(&raw_hello(client_tls.peer_client_config().unwrap(), &a, NodeId(3)).await);
    assert!(reason.contains("names no node"), "{reason}");
    assert_eq!(a.peer_handshake_failures(HandshakeFailure::NoNodeIdentity), 1);

    // 5. A node of another cluster.
    let mut other_cluster = common::config(4, node_tls(&ca, 4)).with_peer(NodeId(1), a.local_addr().to_string());
    other_cluster.cluster = "another-cluster".into();
    let y = QuicTransport::bind(other_cluster).unwrap();
    y.send(NodeId(1), Bytes::from_static(b"wrong cluster")).unwrap();
    assert!(eventually(WAIT, || a.peer_handshake_failures(HandshakeFailure::WrongCluster) >= 1).await);
    y.close().await;

    good_exchange(3).await;
    assert!(recv_within(&a, Duration::from_millis(200)).await.is_none(), "no refused peer's frame got through");

    a.close().await;
    b.close().await;
}

#[test]
fn wrong_identities_are_refused_counted_and_good_peers_keep_working() {
    common::init_tracing();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(60), scenario()).await.expect("within 60 s") });
    });
    let mut failures = std::collections::BTreeMap::new();
    let (mut sent_to_2, mut received_from_2) = (0, 0);
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let DebugValue::Counter(n) = value else { continue };
        let label = |name: &str| key.labels().find(|l| l.key() == name).map(|l| l.value().to_owned());
        match key.name() {
            ballot_quic::metrics::PEER_HANDSHAKE_FAILURES => {
                *failures.entry(label("reason").unwrap()).or_insert(0) += n;
            }
            ballot_quic::metrics::PEER_SENT_BYTES if label("To").as_deref() == Some("2") => sent_to_2 += n,
            ballot_quic::metrics::PEER_RECEIVED_BYTES if label("From").as_deref() == Some("2") => received_from_2 += n,
            _ => {}
        }
    }
    for reason in ["no_certificate", "unknown_ca", "id_mismatch", "no_node_identity", "wrong_cluster"] {
        assert!(failures.get(reason).copied().unwrap_or(0) >= 1, "{reason} must be counted: {failures:?}");
    }
    assert!(sent_to_2 > 0 && received_from_2 > 0, "byte counters are labelled by peer");
}

#[tokio::test]
async fn oversized_frames_are_refused_by_sender_and_receiver() {
    common::init_tracing();
    let ca = DevCa::generate().unwrap();
    let mut config = common::config(1, node_tls(&ca, 1));
    config.max_frame_size = 1024;
    let a = QuicTransport::bind(config).unwrap();
    let mut config = common::config(2, node_tls(&ca, 2)).with_peer(NodeId(1), a.local_addr().to_string());
    config.max_frame_size = 1024;
    let b = QuicTransport::bind(config).unwrap();

    assert_eq!(b.send(NodeId(1), Bytes::from(vec![0; 1025])), Err(SendError::TooLarge { size: 1025, max: 1024 }));
    send_retrying(&b, NodeId(1), Bytes::from(vec![7; 1024])).await;
    assert_eq!(recv_within(&a, WAIT).await.expect("a frame of exactly the maximum arrives").frame.len(), 1024);

    // A peer that declares a larger frame on the wire is cut off.
    let n3 = node_tls(&ca, 3);
    let endpoint = common::raw_endpoint();
    let conn = endpoint
        .connect_with(common::quic_client_config(n3.peer_client_config().unwrap()), a.local_addr(), "n1.ballot")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut buf = BytesMut::new();
    let encoder = FrameEncoder::default();
    encoder.encode(FrameKind::Hello, &Hello::new(CLUSTER, Some(NodeId(3))), &mut buf).unwrap();
    send.write_all(&buf).await.unwrap();
    let hello = recv.read_to_end(1 << 16).await.expect("n3 is accepted: a answers with its Hello and finishes");
    assert!(!hello.is_empty());
    send.write_all(&encoder.header(FrameKind::Message, 2048).unwrap()).await.unwrap();
    send.write_all(&[0u8; 2048]).await.unwrap();
    match tokio::time::timeout(WAIT, conn.closed()).await.unwrap() {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, CLOSE_PROTOCOL);
            assert!(String::from_utf8_lossy(&c.reason).contains("exceeds"), "{c}");
        }
        other => panic!("expected a protocol close, got {other}"),
    }
    // b still gets through.
    send_retrying(&b, NodeId(1), Bytes::from_static(b"still here")).await;
    let got = recv_within(&a, WAIT).await.unwrap();
    assert_eq!((got.from, &got.frame[..]), (NodeId(2), &b"still here"[..]));
    b.close().await;
    a.close().await;
}
