//! Mining throughput on one thread: `NonceScanner::scan` against the bound set by the
//! bare SHA-256 compression function on the same core.
//!
//! `cargo bench -p ballot-pow --bench hashrate [-- SECONDS]` (default 6 s in all)
//!
//! With a midstate, one header hash costs two compressions (the header's second block
//! and the outer hash), so the bound is compressions per second / 2. The machine may
//! be shared: the measurements alternate in short slices, so load from neighbours hits
//! each about equally, and time is this thread's CPU time, not wall time.

use std::hint::black_box;
use std::time::Duration;

use ballot_ledger::{Hash, sha256d};
use ballot_pow::{BlockHeader, CompactTarget, NonceScanner};
use cpu_time::ThreadTime;
use sha2::block_api::compress256;

const IV: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
const SLICE: Duration = Duration::from_millis(50);

/// One slice of bare compressions, one 64-byte block per call as `scan` makes them, on
/// `N` independent states interleaved (each call on its state's previous value, as a
/// long message is hashed, so nothing can be skipped). With `N = 1` every compression
/// waits for the previous one; with more, the core overlaps them, as `scan` overlaps
/// two nonces. The block is not rewritten between calls: that would add the
/// store-forwarding stall `scan` is built to avoid and flatter the ratio.
/// Returns (compressions, CPU seconds).
fn compress_slice<const N: usize>() -> (u64, f64) {
    let mut states = [IV; N];
    let block = black_box([0x5au8; 64]);
    let mut done = 0u64;
    let start = ThreadTime::now();
    while start.elapsed() < SLICE {
        for _ in 0..1u32 << 12 {
            for state in &mut states {
                compress256(state, std::slice::from_ref(&block));
            }
        }
        done += (N as u64) << 12;
    }
    black_box(states);
    (done, start.elapsed().as_secs_f64())
}

/// One slice of `scan` at a target no hash meets, so every nonce is tried.
/// Returns (header hashes, CPU seconds).
fn scan_slice(scanner: &NonceScanner, next_nonce: &mut u32) -> (u64, f64) {
    let chunk = 1u32 << 16;
    let mut done = 0u64;
    let start = ThreadTime::now();
    while start.elapsed() < SLICE {
        let found = scanner.scan(*next_nonce..=*next_nonce + (chunk - 1));
        assert!(black_box(found).is_none());
        *next_nonce = next_nonce.wrapping_add(chunk);
        done += u64::from(chunk);
    }
    (done, start.elapsed().as_secs_f64())
}

fn main() {
    let secs: f64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(6.0);
    let header = BlockHeader {
        version: 1,
        prev: sha256d(b"prev"),
        merkle_root: Hash(sha256d(b"root").0),
        time: 1_700_000_000,
        bits: CompactTarget(0x0300_0001), // target 1: no hash meets it
        nonce: 0,
    };
    let scanner = NonceScanner::new(&header).expect("valid target");
    let mut next_nonce = 0;
    // Totals of (work, CPU seconds): chained, 2 streams, 4 streams, scan.
    let mut totals = [(0u64, 0f64); 4];
    let rounds = (secs / (4.0 * SLICE.as_secs_f64())).ceil().max(1.0) as usize;
    for _ in 0..rounds {
        let slices = [
            compress_slice::<1>(),
            compress_slice::<2>(),
            compress_slice::<4>(),
            scan_slice(&scanner, &mut next_nonce),
        ];
        for (total, (work, time)) in totals.iter_mut().zip(slices) {
            total.0 += work;
            total.1 += time;
        }
    }
    let rate = |(work, time): (u64, f64)| work as f64 / time / 1e6;
    let [chained, two, four, scan] = totals.map(rate);
    println!(
        "SHA-256 compressions, one block per call (M/s): {chained:.2} chained, {two:.2} in 2 streams, {four:.2} in 4 streams"
    );
    let bound = chained.max(two).max(four) / 2.0;
    println!("bound = best compressions/s / 2:  {bound:.3} M header hashes/s");
    println!("scan, one thread:                 {scan:.3} M header hashes/s");
    println!("ratio:                            {:.1} %", 100.0 * scan / bound);
}
