//! The bodies of the client protocol that every ballot service shares: a service call
//! (with its exactly-once session) or a node-status query, and their replies.

use ballot_core::service::Rejection;
use ballot_core::{Consensus, Status};
use serde::{Deserialize, Serialize};

use crate::ClientError;

/// The body of a client [`Request`](crate::Request) to a ballot node running a
/// service whose requests are `R`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientRequest<R> {
    /// A request of the service: the postcard encoding of a
    /// [`Command`](ballot_core::service::Command) (the request, and for writes the
    /// session that makes retries apply once). A write is ordered as these very bytes,
    /// so that whatever the client put in them reaches every replica unchanged.
    Call {
        /// The encoded command.
        command: bytes::Bytes,
    },
    /// Open a stream of events (a watch): the server answers with any number of
    /// [`ClientReply::Event`]s on the same stream until either side closes it.
    Watch {
        /// The service's watch request.
        request: R,
    },
    /// The node's view of itself and the cluster.
    Status,
}

/// The body of a successful [`Response`](crate::Response).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientReply<Resp, Ev> {
    /// The service's answer to a [`ClientRequest::Call`].
    Response(Resp),
    /// One event of a watch stream.
    Event(Ev),
    /// The answer to [`ClientRequest::Status`].
    Status(NodeStatus),
}

/// What a node reports about itself: the protocol's view, how far it has applied, and
/// which consensus it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The protocol's status: id, role, leader, term, commit and log positions, members.
    pub status: Status,
    /// The highest log index the service has applied.
    pub applied_index: u64,
    /// Leader changes this node has seen since it started.
    pub leader_changes: u64,
    /// The consensus protocol.
    pub consensus: Consensus,
}

impl From<Rejection> for ClientError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Invalid(msg) => ClientError::InvalidRequest(msg),
            Rejection::TooLarge { what, size, max } => {
                ClientError::TooLarge { what, size: size as u64, max: max as u64 }
            }
            Rejection::Compacted { compact_revision } => ClientError::Compacted { compact_revision },
        }
    }
}
