//! Throughput and latency of `QuicTransport` between two endpoints on loopback.
//!
//! Run with `cargo bench -p ballot-quic --bench transport`. One-way throughput: node 1
//! sends as fast as its queue accepts (yielding when `send` reports `QueueFull`) and
//! node 2 counts what arrives. Latency: a ping-pong of small frames.
//! `BALLOT_BENCH_SECS` (default 3) sets each throughput run's length.

use std::time::{Duration, Instant};

use ballot_core::{NodeId, SendError, Transport};
use ballot_quic::{DevCa, QuicConfig, QuicTransport};
use bytes::Bytes;

fn pair(ca: &DevCa) -> (QuicTransport, QuicTransport) {
    let tls = |id| ca.issue_node(NodeId(id), &[]).and_then(|c| ca.tls_config(&c)).expect("dev certificate");
    let any = "127.0.0.1:0".parse().expect("address");
    let b = QuicTransport::bind(QuicConfig::new(NodeId(2), "bench", any, tls(2))).expect("bind n2");
    let a = QuicTransport::bind(
        QuicConfig::new(NodeId(1), "bench", any, tls(1)).with_peer(NodeId(2), b.local_addr().to_string()),
    )
    .expect("bind n1");
    b.add_peer(NodeId(1), a.local_addr().to_string()).expect("add n1");
    (a, b)
}

/// Sends `size`-byte frames from `a` to `b` for `secs`; returns (frames, seconds).
async fn one_way(a: &QuicTransport, b: &QuicTransport, size: usize, run: Duration) -> (u64, f64) {
    let payload = Bytes::from(vec![0xAB; size]);
    // Warm up: connect and open the congestion window.
    let warm = Instant::now();
    let mut sent = 0u64;
    while warm.elapsed() < Duration::from_millis(500) {
        if a.send(NodeId(2), payload.clone()).is_ok() {
            sent += 1;
        } else {
            tokio::task::yield_now().await;
        }
        while let Ok(Ok(_)) = tokio::time::timeout(Duration::ZERO, b.recv()).await {
            sent -= 1;
        }
    }
    while sent > 0 {
        b.recv().await.expect("warm-up frame");
        sent -= 1;
    }

    let stop = tokio::sync::watch::channel(false);
    let sender = async {
        let mut n = 0u64;
        while !*stop.1.borrow() {
            match a.send(NodeId(2), payload.clone()) {
                Ok(()) => n += 1,
                Err(SendError::QueueFull(_)) => tokio::task::yield_now().await,
                Err(e) => panic!("send failed: {e}"),
            }
        }
        n
    };
    let receiver = async {
        let start = Instant::now();
        let mut received = 0u64;
        while start.elapsed() < run {
            let got = b.recv().await.expect("frame");
            debug_assert_eq!(got.frame.len(), size);
            received += 1;
        }
        let elapsed = start.elapsed().as_secs_f64();
        stop.0.send_replace(true);
        (received, elapsed)
    };
    let (sent, (received, elapsed)) = tokio::join!(sender, receiver);
    // Drain what is still in flight so the next run starts clean.
    let mut left = sent.saturating_sub(received);
    while left > 0 {
        match tokio::time::timeout(Duration::from_secs(5), b.recv()).await {
            Ok(Ok(_)) => left -= 1,
            _ => break,
        }
    }
    (received, elapsed)
}

/// Round trips of `size`-byte frames; returns sorted latencies.
async fn ping_pong(a: &QuicTransport, b: &QuicTransport, size: usize, rounds: usize) -> Vec<Duration> {
    let payload = Bytes::from(vec![1u8; size]);
    let echo = async {
        for _ in 0..rounds {
            let got = b.recv().await.expect("ping");
            while b.send(NodeId(1), got.frame.clone()).is_err() {
                tokio::task::yield_now().await;
            }
        }
    };
    let pinger = async {
        let mut rtts = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let start = Instant::now();
            while a.send(NodeId(2), payload.clone()).is_err() {
                tokio::task::yield_now().await;
            }
            a.recv().await.expect("pong");
            rtts.push(start.elapsed());
        }
        rtts
    };
    let ((), mut rtts) = tokio::join!(echo, pinger);
    rtts.sort();
    rtts
}

fn main() {
    let secs = std::env::var("BALLOT_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let ca = DevCa::generate().expect("CA");
        let (a, b) = pair(&ca);
        println!("ballot-quic transport, loopback, 2 endpoints, {secs} s per run");
        println!("{:>10} {:>14} {:>10}", "size", "messages/s", "MB/s");
        for size in [100usize, 64 * 1024] {
            let (n, elapsed) = one_way(&a, &b, size, Duration::from_secs_f64(secs)).await;
            let rate = n as f64 / elapsed;
            println!("{:>10} {:>14.0} {:>10.1}", size, rate, rate * size as f64 / 1e6);
        }
        let rtts = ping_pong(&a, &b, 100, 10_000).await;
        let pct = |p: f64| rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)];
        println!(
            "ping-pong 100 B, {} round trips: p50 {:?}, p99 {:?}, max {:?}",
            rtts.len(),
            pct(0.50),
            pct(0.99),
            rtts[rtts.len() - 1]
        );
        a.close().await;
        b.close().await;
    });
}
