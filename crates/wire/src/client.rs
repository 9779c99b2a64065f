//! The client protocol envelope: requests, responses and the errors clients act on.

use ballot_core::{NodeId, ProposeError};
use serde::{Deserialize, Serialize};

use crate::{VersionRange, WireError};

/// A client request: a service-defined `body`, tagged with an `id` the client chooses
/// (unique among its requests in flight on one connection) and the server echoes in
/// every [`Response`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Request<B> {
    /// Matches responses to this request.
    pub id: u64,
    /// The service-specific request.
    pub body: B,
}

impl<B> Request<B> {
    /// A request with `id` and `body`.
    #[must_use]
    pub fn new(id: u64, body: B) -> Self {
        Request { id, body }
    }

    /// The response to this request carrying `result`.
    #[must_use]
    pub fn reply<R>(&self, result: Result<R, ClientError>) -> Response<R> {
        Response { id: self.id, result }
    }
}

/// The answer to the [`Request`] with the same `id`: a service-defined body or a
/// [`ClientError`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Response<B> {
    /// The id of the request answered.
    pub id: u64,
    /// The outcome.
    pub result: Result<B, ClientError>,
}

impl<B> Response<B> {
    /// A successful response.
    #[must_use]
    pub fn ok(id: u64, body: B) -> Self {
        Response { id, result: Ok(body) }
    }

    /// A failed response.
    #[must_use]
    pub fn err(id: u64, error: ClientError) -> Self {
        Response { id, result: Err(error) }
    }
}

/// Why a server did not carry out a request, in a form clients can act on: where to
/// retry ([`NotLeader`](ClientError::NotLeader)), whether to retry at all
/// ([`is_retryable`](ClientError::is_retryable)) and whether the request may still
/// have taken effect ([`is_outcome_unknown`](ClientError::is_outcome_unknown)).
///
/// The variants' order is part of the wire format: new variants go at the end, with a
/// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) bump.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// This node does not lead; send the request to `leader` (at `leader_addr`) if
    /// known. The request was not carried out.
    #[error("{}", not_leader_message(*.leader, .leader_addr.as_deref()))]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
        /// That leader's client address, if this node knows it.
        leader_addr: Option<String>,
    },
    /// The server is overloaded; the request was not carried out. Retry after a backoff.
    #[error("server busy (too many requests in flight); retry after a short backoff")]
    Busy,
    /// Part of the request is larger than the server accepts. Retrying will not help.
    #[error("{what} of {size} bytes exceeds the limit of {max} bytes; make it smaller or split it")]
    TooLarge {
        /// What was too large ("request", "value", "key", …).
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The request is invalid (malformed, or rejected by the service); the message says
    /// why. Retrying the same request will not help.
    #[error("invalid request: {0}; fix the request, retrying it unchanged will not help")]
    InvalidRequest(String),
    /// The cluster cannot serve requests right now (no quorum, no leader elected yet,
    /// node shutting down). The request was not carried out; retry later or at another
    /// node.
    #[error("service unavailable: {0}; retry later or at another node")]
    Unavailable(String),
    /// The request did not complete in time. It may or may not have taken effect:
    /// retry only if it is idempotent (or sent within a session).
    #[error("request timed out and may or may not have taken effect; retry if it is idempotent")]
    Timeout,
    /// Leadership changed while the request was in flight. It may or may not have
    /// taken effect: retry at the new leader if it is idempotent.
    #[error(
        "leadership changed while the request was in flight; it may or may not have taken effect, retry at the new leader if it is idempotent"
    )]
    LeaderChanged,
    /// The requested revision (or log position) was compacted away; the oldest history
    /// still kept starts at `compact_revision`. Read the current state and continue from
    /// there.
    #[error(
        "revision compacted: the oldest revision still available is {compact_revision}; re-read the current state and continue from there"
    )]
    Compacted {
        /// The oldest revision still available.
        compact_revision: u64,
    },
    /// The named object (key, watch, lease, campaign…) does not exist.
    #[error("{0} not found; check the name (it may have been deleted, or never created)")]
    NotFound(String),
    /// The client did not authenticate, or its credentials were rejected.
    #[error("not authenticated: present a client certificate signed by the cluster's CA")]
    Unauthenticated,
    /// The client speaks a protocol version this server does not. Upgrade one side.
    #[error("protocol version {got} is not supported (this server speaks {supported}); upgrade the older side")]
    UnsupportedVersion {
        /// The client's version (the newest it offered).
        got: u8,
        /// The versions the server speaks.
        supported: VersionRange,
    },
    /// The server failed (a bug, a storage error). The request may or may not have taken
    /// effect; the message is for the operator's bug report.
    #[error("internal server error: {0}; the request may or may not have taken effect, report this to the operator")]
    Internal(String),
}

fn not_leader_message(leader: Option<NodeId>, addr: Option<&str>) -> String {
    match (leader, addr) {
        (Some(l), Some(a)) => format!("not the leader; retry at the leader {l} ({a})"),
        (Some(l), None) => format!("not the leader; retry at the leader {l}"),
        (None, Some(a)) => format!("not the leader; retry at the leader at {a}"),
        (None, None) => "not the leader and no leader is known yet; retry shortly, possibly at another node".to_owned(),
    }
}

impl ClientError {
    /// Whether retrying the same request (after a backoff, or at the leader named by
    /// [`NotLeader`](ClientError::NotLeader)) can succeed. For errors where
    /// [`is_outcome_unknown`](ClientError::is_outcome_unknown) holds, retry only
    /// idempotent requests.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::NotLeader { .. }
            | ClientError::Busy
            | ClientError::Unavailable(_)
            | ClientError::Timeout
            | ClientError::LeaderChanged => true,
            ClientError::TooLarge { .. }
            | ClientError::InvalidRequest(_)
            | ClientError::Compacted { .. }
            | ClientError::NotFound(_)
            | ClientError::Unauthenticated
            | ClientError::UnsupportedVersion { .. }
            | ClientError::Internal(_) => false,
        }
    }

    /// Whether the request may have taken effect despite the error.
    #[must_use]
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, ClientError::Timeout | ClientError::LeaderChanged | ClientError::Internal(_))
    }
}

impl From<ProposeError> for ClientError {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::NotLeader { leader } => ClientError::NotLeader { leader, leader_addr: None },
            ProposeError::Busy => ClientError::Busy,
            ProposeError::TooLarge { size, max } => {
                ClientError::TooLarge { what: "command".to_owned(), size: size as u64, max: max as u64 }
            }
            ProposeError::LeadershipLost => ClientError::LeaderChanged,
            ProposeError::Unavailable(reason) => ClientError::Unavailable(reason),
            ProposeError::Stopped => ClientError::Unavailable("this node is stopped".to_owned()),
        }
    }
}

/// What a server answers when a client's frame or request does not decode.
impl From<WireError> for ClientError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::FrameTooLarge { declared, max } => {
                ClientError::TooLarge { what: "request".to_owned(), size: declared, max }
            }
            WireError::TooLarge { size, max } => ClientError::TooLarge { what: "request".to_owned(), size, max },
            WireError::UnsupportedVersion { got, supported } => ClientError::UnsupportedVersion { got, supported },
            WireError::NoCommonVersion { ours, theirs } => {
                ClientError::UnsupportedVersion { got: theirs.max, supported: ours }
            }
            WireError::Unencodable { .. } => ClientError::Internal(e.to_string()),
            other => ClientError::InvalidRequest(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode};

    fn all_errors() -> Vec<ClientError> {
        vec![
            ClientError::NotLeader { leader: Some(NodeId(3)), leader_addr: Some("10.0.0.3:7000".into()) },
            ClientError::NotLeader { leader: None, leader_addr: None },
            ClientError::Busy,
            ClientError::TooLarge { what: "value".into(), size: 10, max: 5 },
            ClientError::InvalidRequest("empty key".into()),
            ClientError::Unavailable("no quorum".into()),
            ClientError::Timeout,
            ClientError::LeaderChanged,
            ClientError::Compacted { compact_revision: 41 },
            ClientError::NotFound("key \"a\"".into()),
            ClientError::Unauthenticated,
            ClientError::UnsupportedVersion { got: 9, supported: VersionRange::new(1, 2) },
            ClientError::Internal("disk full".into()),
        ]
    }

    #[test]
    fn every_error_round_trips_and_says_what_to_do() {
        for e in all_errors() {
            let back: ClientError = decode(&encode(&e).unwrap()).unwrap();
            assert_eq!(back, e);
            let msg = e.to_string();
            let advises = ["retry", "fix", "upgrade", "smaller", "re-read", "certificate", "report", "check"];
            assert!(advises.iter().any(|w| msg.contains(w)), "{msg:?} does not say what to do");
            if e.is_outcome_unknown() {
                assert!(msg.contains("may or may not"), "{msg:?} must warn that the outcome is unknown");
            }
        }
    }

    #[test]
    fn retryability() {
        let retryable: Vec<bool> = all_errors().iter().map(ClientError::is_retryable).collect();
        assert_eq!(
            retryable,
            [true, true, true, false, false, true, true, true, false, false, false, false, false],
            "retry where another attempt can succeed"
        );
        assert!(ClientError::Timeout.is_outcome_unknown());
        assert!(!ClientError::Busy.is_outcome_unknown());
    }

    #[test]
    fn not_leader_names_the_leader() {
        let e = ClientError::NotLeader { leader: Some(NodeId(3)), leader_addr: Some("h:1".into()) };
        assert_eq!(e.to_string(), "not the leader; retry at the leader n3 (h:1)");
        let e: ClientError = ProposeError::NotLeader { leader: Some(NodeId(2)) }.into();
        assert_eq!(e, ClientError::NotLeader { leader: Some(NodeId(2)), leader_addr: None });
        assert!(e.to_string().contains("n2"));
    }

    #[test]
    fn propose_and_wire_errors_map_to_client_errors() {
        assert_eq!(ClientError::from(ProposeError::Busy), ClientError::Busy);
        assert_eq!(ClientError::from(ProposeError::LeadershipLost), ClientError::LeaderChanged);
        assert!(ClientError::from(ProposeError::Stopped).is_retryable());
        assert_eq!(
            ClientError::from(ProposeError::TooLarge { size: 9, max: 4 }),
            ClientError::TooLarge { what: "command".into(), size: 9, max: 4 }
        );
        let versions = VersionRange::new(1, 1);
        assert_eq!(
            ClientError::from(WireError::UnsupportedVersion { got: 2, supported: versions }),
            ClientError::UnsupportedVersion { got: 2, supported: versions }
        );
        assert_eq!(
            ClientError::from(WireError::FrameTooLarge { declared: 10, max: 5 }),
            ClientError::TooLarge { what: "request".into(), size: 10, max: 5 }
        );
        let garbage = decode::<Request<u64>>(&[1]).unwrap_err();
        assert!(matches!(ClientError::from(garbage), ClientError::InvalidRequest(m) if m.contains("malformed")));
    }

    #[test]
    fn request_reply_keeps_the_id() {
        let req = Request::new(17, "get a".to_owned());
        let resp: Response<u64> = req.reply(Ok(5));
        assert_eq!(resp, Response::ok(17, 5));
        let back: Response<u64> = decode(&encode(&Response::<u64>::err(17, ClientError::Busy)).unwrap()).unwrap();
        assert_eq!(back.result, Err(ClientError::Busy));
    }
}
