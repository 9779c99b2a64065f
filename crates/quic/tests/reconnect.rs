//! Reconnects, backpressure and graceful close.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use ballot_core::{NodeId, SendError, Transport};
use ballot_quic::{DevCa, QuicTransport};
use bytes::Bytes;
use common::{node_tls, recv_within, send_retrying};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_queued_for_a_peer_that_is_down_arrive_in_order_once_it_starts() {
    common::init_tracing();
    let ca = DevCa::generate().unwrap();
    let b_socket = UdpSocket::bind(common::loopback()).unwrap();
    let b_addr = b_socket.local_addr().unwrap();
    drop(b_socket);
    let a = QuicTransport::bind(common::config(1, node_tls(&ca, 1)).with_peer(NodeId(2), b_addr.to_string())).unwrap();
    for i in 0..100u32 {
        a.send(NodeId(2), Bytes::from(i.to_be_bytes().to_vec())).unwrap();
    }
    // Let a fail to connect a few times (backoff) before b comes up.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!a.is_connected(NodeId(2)));
    let b =
        QuicTransport::with_socket(common::config(2, node_tls(&ca, 2)), common::bind_retrying(b_addr).await).unwrap();
    for i in 0..100u32 {
        let got = recv_within(&b, WAIT).await.unwrap_or_else(|| panic!("frame {i} lost"));
        assert_eq!((got.from, &got.frame[..]), (NodeId(1), &i.to_be_bytes()[..]));
    }
    assert!(a.is_connected(NodeId(2)));
    a.close().await;
    b.close().await;
}

/// Runs node `id` on its own runtime and thread, so the test can make it vanish without
/// a word (as a crash does): frames it receives are forwarded to the test.
fn spawn_crashable(
    config: ballot_quic::QuicConfig,
    socket: UdpSocket,
) -> (std::sync::mpsc::Receiver<Bytes>, std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (frames_tx, frames_rx) = std::sync::mpsc::channel();
    let (crash_tx, crash_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let transport = rt.block_on(async { QuicTransport::with_socket(config, socket).unwrap() });
        rt.block_on(async {
            loop {
                if crash_rx.try_recv().is_ok() {
                    break;
                }
                if let Some(got) = recv_within(&transport, Duration::from_millis(20)).await {
                    let _ = frames_tx.send(got.frame);
                }
            }
        });
        // The "crash": the runtime stops with every task, nothing is sent to peers.
        rt.shutdown_background();
        drop(transport);
    });
    (frames_rx, crash_tx, thread)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_crashed_and_restarted_on_the_same_address_is_reached_again_quickly() {
    common::init_tracing();
    let ca = DevCa::generate().unwrap();
    let b_tls = node_tls(&ca, 2);
    let socket = UdpSocket::bind(common::loopback()).unwrap();
    let b_addr = socket.local_addr().unwrap();
    let mut a_config = common::config(1, node_tls(&ca, 1)).with_peer(NodeId(2), b_addr.to_string());
    // Without a stateless reset, a would wait for this before redialing.
    a_config.idle_timeout = Duration::from_secs(30);
    let a = QuicTransport::bind(a_config).unwrap();

    let (frames, crash, thread) = spawn_crashable(common::config(2, b_tls.clone()), socket);
    send_retrying(&a, NodeId(2), Bytes::from_static(b"before")).await;
    assert_eq!(frames.recv_timeout(WAIT).unwrap(), Bytes::from_static(b"before"));

    crash.send(()).unwrap();
    thread.join().unwrap();
    let socket = common::bind_retrying(b_addr).await;
    let (frames, crash, thread) = spawn_crashable(common::config(2, b_tls), socket);
    let started = std::time::Instant::now();
    let mut delivered = false;
    while started.elapsed() < Duration::from_secs(8) {
        let _ = a.send(NodeId(2), Bytes::from_static(b"after"));
        if let Ok(f) = frames.recv_timeout(Duration::from_millis(50)) {
            assert_eq!(f, Bytes::from_static(b"after"));
            delivered = true;
            break;
        }
    }
    assert!(delivered, "the new incarnation must be reached well before the 30 s idle timeout");
    crash.send(()).unwrap();
    thread.join().unwrap();
    a.close().await;
}

#[tokio::test]
async fn full_queues_refuse_frames_and_count_them() {
    common::init_tracing();
    let ca = DevCa::generate().unwrap();
    // Peers that never answer: their sockets are bound but nobody reads them.
    let silent = [UdpSocket::bind(common::loopback()).unwrap(), UdpSocket::bind(common::loopback()).unwrap()];
    let mut config = common::config(1, node_tls(&ca, 1))
        .with_peer(NodeId(2), silent[0].local_addr().unwrap().to_string())
        .with_peer(NodeId(3), silent[1].local_addr().unwrap().to_string());
    config.send_queue_frames = 8;
    config.send_queue_bytes = 1000;
    let a = QuicTransport::bind(config).unwrap();
    for i in 0..8 {
        assert_eq!(a.send(NodeId(2), Bytes::from_static(b"small")), Ok(()), "frame {i} fits");
    }
    assert_eq!(a.send(NodeId(2), Bytes::from_static(b"small")), Err(SendError::QueueFull(NodeId(2))));
    // The byte limit: two 400-byte frames fit in 1000 bytes, a third does not.
    let frame = Bytes::from(vec![0u8; 400]);
    assert_eq!(a.send(NodeId(3), frame.clone()), Ok(()));
    assert_eq!(a.send(NodeId(3), frame.clone()), Ok(()));
    assert_eq!(a.send(NodeId(3), frame.clone()), Err(SendError::QueueFull(NodeId(3))));
    assert_eq!(a.send(NodeId(9), frame), Err(SendError::UnknownPeer(NodeId(9))));
    a.close().await;
    assert_eq!(a.send(NodeId(2), Bytes::new()), Err(SendError::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_flushes_queued_frames() {
    common::init_tracing();
    let ca = DevCa::generate().unwrap();
    let b = QuicTransport::bind(common::config(2, node_tls(&ca, 2))).unwrap();
    let a = QuicTransport::bind(common::config(1, node_tls(&ca, 1)).with_peer(NodeId(2), b.local_addr().to_string()))
        .unwrap();
    send_retrying(&a, NodeId(2), Bytes::from_static(b"connect")).await;
    assert!(recv_within(&b, WAIT).await.is_some());
    let n = 2000u32;
    for i in 0..n {
        a.send(NodeId(2), Bytes::from(i.to_be_bytes().to_vec())).unwrap();
    }
    a.close().await;
    for i in 0..n {
        let got = recv_within(&b, WAIT).await.unwrap_or_else(|| panic!("frame {i} was not flushed"));
        assert_eq!(&got.frame[..], &i.to_be_bytes()[..]);
    }
    b.close().await;
}
