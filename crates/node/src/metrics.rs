//! Metric names (etcd's, under `ballot_`) and their descriptions.

use ballot_core::{Role, Status};
use ballot_wire::ClientError;

/// 1 if a leader is known, else 0.
pub const HAS_LEADER: &str = "ballot_server_has_leader";
/// 1 if this node leads, else 0.
pub const IS_LEADER: &str = "ballot_server_is_leader";
/// Leader changes seen by this node.
pub const LEADER_CHANGES: &str = "ballot_server_leader_changes_seen_total";
/// The highest committed index (etcd's proposals_committed_total is this gauge).
pub const PROPOSALS_COMMITTED: &str = "ballot_server_proposals_committed_total";
/// The highest applied index.
pub const PROPOSALS_APPLIED: &str = "ballot_server_proposals_applied_total";
/// Proposals waiting to commit.
pub const PROPOSALS_PENDING: &str = "ballot_server_proposals_pending";
/// Proposals refused or lost.
pub const PROPOSALS_FAILED: &str = "ballot_server_proposals_failed_total";
/// The current term (or view, or ballot round).
pub const TERM: &str = "ballot_server_term";
/// Snapshots taken.
pub const SNAPSHOTS: &str = "ballot_server_snapshots_total";
/// Open watch streams.
pub const WATCHERS: &str = "ballot_server_watchers";
/// Client requests by operation and outcome.
pub const CLIENT_REQUESTS: &str = "ballot_client_requests_total";
/// Client request latency by operation and outcome.
pub const CLIENT_REQUEST_DURATION: &str = "ballot_client_request_duration_seconds";
/// Peer messages the consensus protocol refused, by reason (PBFT).
pub const REFUSED: &str = "ballot_server_refused_peer_messages_total";
/// Peer messages that failed to decode.
pub const PEER_MALFORMED: &str = "ballot_network_peer_malformed_messages_total";
/// Peer messages the transport refused to queue.
pub const PEER_SEND_DROPPED: &str = "ballot_network_peer_sent_failures_total";

/// Registers descriptions for every metric above.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(HAS_LEADER, "Whether a leader exists (1) or not (0).");
    describe_gauge!(IS_LEADER, "Whether this member is the leader (1) or not (0).");
    describe_counter!(LEADER_CHANGES, "The number of leader changes seen.");
    describe_gauge!(PROPOSALS_COMMITTED, "The highest committed log index.");
    describe_gauge!(PROPOSALS_APPLIED, "The highest applied log index.");
    describe_gauge!(PROPOSALS_PENDING, "The number of pending proposals to commit.");
    describe_counter!(PROPOSALS_FAILED, "The number of failed proposals.");
    describe_gauge!(TERM, "The current term (Raft), ballot round (Paxos) or view.");
    describe_counter!(SNAPSHOTS, "Snapshots of the service state taken to compact the log.");
    describe_gauge!(WATCHERS, "Open watch streams.");
    describe_counter!(
        REFUSED,
        "Peer messages the consensus protocol refused, by reason (PBFT: forged, altered or misplaced ones; stale \
         ones after loss or a restart are counted too)."
    );
    describe_counter!(CLIENT_REQUESTS, "Client requests by operation and outcome.");
    describe_histogram!(
        CLIENT_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Client request latency by operation and outcome."
    );
    describe_counter!(PEER_MALFORMED, "Peer messages that could not be decoded.");
    describe_counter!(PEER_SEND_DROPPED, "Peer messages dropped because they could not be queued.");
}

/// Refreshes the gauges that follow the protocol's status.
pub(crate) fn record_status(status: &Status, applied: u64) {
    metrics::gauge!(HAS_LEADER).set(if status.leader.is_some() { 1.0 } else { 0.0 });
    metrics::gauge!(IS_LEADER).set(if status.role == Role::Leader { 1.0 } else { 0.0 });
    metrics::gauge!(PROPOSALS_COMMITTED).set(status.commit_index as f64);
    metrics::gauge!(PROPOSALS_APPLIED).set(applied as f64);
    metrics::gauge!(TERM).set(status.term as f64);
}

/// The `outcome` label of a failed request.
pub(crate) fn error_label(e: &ClientError) -> &'static str {
    match e {
        ClientError::NotLeader { .. } => "not_leader",
        ClientError::Busy => "busy",
        ClientError::TooLarge { .. } => "too_large",
        ClientError::InvalidRequest(_) => "invalid",
        ClientError::Unavailable(_) => "unavailable",
        ClientError::Timeout => "timeout",
        ClientError::LeaderChanged => "leader_changed",
        ClientError::Compacted { .. } => "compacted",
        ClientError::NotFound(_) => "not_found",
        ClientError::Unauthenticated => "unauthenticated",
        _ => "error",
    }
}
