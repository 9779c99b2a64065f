//! Crash test: a child process (this test binary, re-executed) appends through the
//! group-commit writer and prints every acknowledged index; the parent kills it with
//! SIGKILL at a random point, reopens the store and checks that every acknowledged
//! append is there, intact, with the log contiguous and no torn group.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ballot_core::testkit::{TestEntry, TestHardState};
use ballot_core::{LogStore, Persist, PersistId, SeededRng};
use ballot_storage::{GroupCommit, RocksStore};
use bytes::Bytes;

type Store = RocksStore<TestEntry, TestHardState>;

const CHILD_ENV: &str = "BALLOT_STORAGE_CRASH_CHILD";
const TEST_NAME: &str = "acknowledged_appends_survive_sigkill";
/// Entries per Persist batch in the child.
const PER_BATCH: u64 = 4;

/// The payload of entry `index`: its size and bytes both derive from the index.
fn payload(index: u64) -> Bytes {
    let len = 64 + (index.wrapping_mul(7_919) % 4_000) as usize;
    Bytes::from((0..len).map(|j| (index as usize).wrapping_mul(31).wrapping_add(j) as u8).collect::<Vec<u8>>())
}

fn test_entry(index: u64) -> TestEntry {
    TestEntry { index, term: 1, data: payload(index) }
}

/// The child: appends forever (bounded by a safety deadline), printing `durable <index>`
/// after each acknowledgement.
fn child(dir: &Path) {
    let store = Store::open(dir).expect("child: open");
    let start = store.last_index().map_or(1, |i| i + 1);
    let (gc, acks) = GroupCommit::with_channel(store).expect("child: spawn");
    let deadline = Instant::now() + Duration::from_secs(50);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut index = start;
            for id in 1.. {
                let mut b = Persist::new(PersistId(id));
                b.entries = (index..index + PER_BATCH).map(test_entry).collect();
                index += PER_BATCH;
                // The hard state goes in the same batch: after recovery it must name the
                // last recovered entry exactly, or a group was torn.
                b.hard_state = Some(TestHardState { term: index - 1, vote: None });
                if gc.submit(b).is_err() || Instant::now() > deadline {
                    break;
                }
            }
        });
        let mut out = std::io::stdout().lock();
        while let Ok(ack) = acks.recv_timeout(Duration::from_secs(10)) {
            let id = ack.expect("child: write failed").0;
            writeln!(out, "durable {}", start + id * PER_BATCH - 1).expect("child: stdout");
            out.flush().expect("child: flush");
            if Instant::now() > deadline {
                std::process::exit(0);
            }
        }
    });
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let seed = match std::env::var("BALLOT_CRASH_SEED") {
        Ok(s) => s.parse().expect("BALLOT_CRASH_SEED must be a number"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64),
    };
    println!("crash test seed {seed} (replay the kill points with BALLOT_CRASH_SEED={seed})");
    let mut rng = SeededRng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current exe");
    let mut acknowledged = 0u64;
    for round in 0..4 {
        let kill_after = rng.gen_range(5..150);
        let mut child = Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut acks = 0u64;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read child stdout");
            let Some(index) = line.strip_prefix("durable ") else { continue };
            let index: u64 = index.parse().expect("index");
            assert!(index > acknowledged, "acknowledgements must increase");
            acknowledged = index;
            acks += 1;
            if acks == kill_after {
                break;
            }
        }
        assert_eq!(acks, kill_after, "round {round}: the child stopped early (see its stderr)");
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "the child must have been killed");

        let mut store = Store::open(dir.path()).expect("reopen after SIGKILL");
        let r = store.recover().expect("recover after SIGKILL");
        let last = r.entries.last().map_or(0, |e| e.index);
        assert!(
            last >= acknowledged,
            "round {round} (seed {seed}): acknowledged index {acknowledged} lost; recovered up to {last}"
        );
        assert_eq!(r.entries.len() as u64, last, "round {round}: the log must be contiguous from 1");
        for (e, index) in r.entries.iter().zip(1..) {
            assert_eq!(e, &test_entry(index), "round {round} (seed {seed}): entry {index} is torn");
        }
        assert_eq!(
            r.hard_state.map(|h| h.term),
            Some(last),
            "round {round}: the hard state must come from the same batch group as the last entry"
        );
        acknowledged = last;
        println!("round {round}: killed after {kill_after} acks, recovered {last} entries intact");
    }
}
