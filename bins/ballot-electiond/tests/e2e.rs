//! End to end: `ballot-electiond` processes on loopback, with campaigning clients in
//! their own processes. Killing the leader's client process hands leadership to the next
//! candidate once the lease's TTL runs out, and fencing tokens strictly increase.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ballot_client::{ClientConfig, ElectionClient};
use ballot_election::{ElectionRequest, ElectionResponse};
use ballot_localcluster::{Cluster, ClusterSpec, Consensus, Service};

const TTL: Duration = Duration::from_secs(2);

/// A cluster that survives one faulty node: 3 nodes, or 4 for PBFT.
fn start(name: &str, consensus: Consensus) -> Cluster {
    let dir = ballot_localcluster::test_dir(env!("CARGO_TARGET_TMPDIR"), &format!("{name}-{consensus}")).unwrap();
    let nodes = consensus.nodes_for(1);
    let mut spec = ClusterSpec::new(Service::Election, nodes, dir, env!("CARGO_BIN_EXE_ballot-electiond"));
    spec.consensus = consensus;
    spec.election_timeout_ms = 500;
    let mut cluster = Cluster::start(spec).unwrap();
    cluster.wait_ready(Duration::from_secs(30)).unwrap();
    cluster
}

/// A campaigning client in its own process: this test binary, re-run with the ignored
/// `campaigner` test and the campaign in its environment.
fn spawn_campaigner(cluster: &Cluster, value: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["campaigner", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("E2E_ENDPOINTS", cluster.spec().endpoints().join(","))
        .env("E2E_CERTS", cluster.spec().cert_dir())
        .env("E2E_CONSENSUS", cluster.spec().consensus.name())
        .env("E2E_VALUE", value)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "test campaigner ... " on the same line first.
            if let Some(at) = line.find("ELECTED ")
                && tx.send(line[at..].to_owned()).is_err()
            {
                return;
            }
        }
    });
    (child, rx)
}

/// The body of a campaigning client process (run only by `spawn_campaigner`).
#[test]
#[ignore = "runs only as a child process of the election tests"]
fn campaigner() {
    let (Ok(endpoints), Ok(certs), Ok(value)) =
        (std::env::var("E2E_ENDPOINTS"), std::env::var("E2E_CERTS"), std::env::var("E2E_VALUE"))
    else {
        panic!("campaigner runs only as a child process of the election tests");
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut config = ClientConfig::from_cert_dir(endpoints.split(','), certs).unwrap();
        config.consensus = std::env::var("E2E_CONSENSUS").map_or(Consensus::Raft, |c| c.parse().unwrap());
        let election = ElectionClient::connect(config).await.unwrap();
        let campaign = election.campaign("jobs", value.clone(), TTL).await.unwrap();
        println!("ELECTED {} {}", campaign.leadership().token, value);
        std::future::pending::<()>().await;
    });
}

#[test]
fn killing_the_leaders_client_elects_the_next_candidate_after_the_ttl() {
    let _serial = ballot_localcluster::serial();
    // Leases expire by the leader's clock (Raft, Multi-Paxos), or by time the replicas
    // agreed on (PBFT: the primary proposes its clock, backups check it).
    for consensus in Consensus::ALL {
        let cluster = start("campaign", consensus);
        let (mut a, a_elected) = spawn_campaigner(&cluster, "alpha");
        let line = a_elected.recv_timeout(Duration::from_secs(20)).expect("the first candidate is elected");
        let token_a: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let (mut b, b_elected) = spawn_campaigner(&cluster, "beta");
        // b queues behind a while a's process lives.
        assert!(b_elected.recv_timeout(Duration::from_secs(3)).is_err(), "{consensus}: b must wait while a leads");

        let killed = Instant::now();
        a.kill().unwrap();
        a.wait().unwrap();
        let line = b_elected.recv_timeout(Duration::from_secs(20)).expect("the next candidate is elected");
        let waited = killed.elapsed();
        let token_b: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        eprintln!(
            "{consensus}: leadership passed {waited:?} after the leader's client died (TTL {TTL:?}); tokens {token_a} -> {token_b}"
        );
        assert!(token_b > token_a, "{consensus}: fencing tokens must strictly increase");
        // Not before a's lease could have expired (a kept it alive up to TTL/3 before the kill).
        assert!(waited >= TTL * 2 / 3 - Duration::from_millis(100), "{consensus}: too early: {waited:?}");
        assert!(waited <= TTL + Duration::from_secs(3), "{consensus}: too late: {waited:?}");

        // The leader is visible to everyone, with its token.
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let election = ElectionClient::connect(cluster.spec().client_config().unwrap()).await.unwrap();
            let leader = election.leader("jobs").await.unwrap().expect("a leader");
            assert_eq!((leader.value.as_ref(), leader.token), (&b"beta"[..], token_b));
        });
        b.kill().unwrap();
        b.wait().unwrap();
    }
}

#[test]
fn observe_sees_every_leadership_with_increasing_tokens() {
    let _serial = ballot_localcluster::serial();
    let cluster = start("observe", Consensus::Raft);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let election = ElectionClient::connect(cluster.spec().client_config().unwrap()).await.unwrap();
        let mut observer = election.observe("locks").await.unwrap();
        let first = observer.next().await.unwrap();
        assert!(first.leader.is_none(), "nobody leads yet");
        let mut tokens = Vec::new();
        for round in 0..3 {
            let campaign = election.campaign("locks", format!("holder-{round}"), Duration::from_secs(5)).await.unwrap();
            let event = observer.next().await.unwrap();
            let leader = event.leader.expect("a leader");
            assert_eq!(leader.token, campaign.leadership().token);
            tokens.push(leader.token);
            campaign.resign().await.unwrap();
            assert!(observer.next().await.unwrap().leader.is_none(), "resigning leaves no leader");
        }
        assert!(tokens.windows(2).all(|w| w[0] < w[1]), "tokens strictly increase: {tokens:?}");
    });
}

/// PBFT: campaigns queue and win in order with increasing fencing tokens, every client
/// sees the same leader, and lease keep-alives and TTL queries are ordered and answered
/// from agreed time.
#[test]
fn pbft_campaigns_resignations_and_fencing_tokens() {
    let _serial = ballot_localcluster::serial();
    let cluster = start("pbft-basic", Consensus::Pbft);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let election = ElectionClient::connect(cluster.spec().client_config().unwrap()).await.unwrap();
        let first = election.campaign("jobs", "alpha", TTL).await.unwrap();
        let token_a = first.leadership().token;
        assert_eq!(election.keep_alive(first.lease()).await.unwrap(), Some(TTL));
        let ttl = election.request(ElectionRequest::TimeToLive { lease: first.lease() }).await.unwrap();
        assert!(matches!(ttl, ElectionResponse::TimeToLive { remaining_ms, .. } if remaining_ms <= 2_000), "{ttl:?}");

        // A second candidate queues behind the first and wins when it resigns.
        let waiting = {
            let election = election.clone();
            tokio::spawn(async move { election.campaign("jobs", "beta", TTL).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "beta waits while alpha leads");
        let seen = election.leader("jobs").await.unwrap().expect("a leader");
        assert_eq!((seen.value.as_ref(), seen.token), (&b"alpha"[..], token_a));
        first.resign().await.unwrap();
        let second = tokio::time::timeout(Duration::from_secs(20), waiting).await.unwrap().unwrap().unwrap();
        let token_b = second.leadership().token;
        assert!(token_b > token_a, "fencing tokens strictly increase: {token_a} -> {token_b}");
        let other = ElectionClient::connect(cluster.spec().client_config().unwrap()).await.unwrap();
        let seen = other.leader("jobs").await.unwrap().expect("a leader");
        assert_eq!((seen.value.as_ref(), seen.token), (&b"beta"[..], token_b));
        eprintln!("pbft: tokens {token_a} -> {token_b}");
    });
}
