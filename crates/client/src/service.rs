//! The service-independent client: connections, leader discovery, retries, sessions.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ballot_core::service::{Session, StateMachine};
use ballot_quic::{ClientConnector, ClientOptions, ClientSession, ResponseStream, TlsConfig};
use ballot_wire::{ClientError, ClientReply, ClientRequest, Codec, NodeStatus, Request, Response};
use tokio::time::Instant;

use crate::Error;

/// How a [`Client`] reaches a cluster.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Client addresses of the nodes (`host:port`); any one is enough to find the rest.
    pub endpoints: Vec<String>,
    /// The client certificate and the cluster CA.
    pub tls: TlsConfig,
    /// The cluster name the nodes expect.
    pub cluster: String,
    /// How long one attempt may take before it is retried.
    pub attempt_timeout: Duration,
    /// How long a call may take in all, retries included.
    pub deadline: Duration,
}

impl ClientConfig {
    /// A configuration with default timeouts (2 s per attempt, 10 s per call) for the
    /// cluster named `ballot`.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>, tls: TlsConfig) -> Self {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            tls,
            cluster: "ballot".to_owned(),
            attempt_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
        }
    }

    /// Like [`new`](Self::new), loading `ca.pem`, `client.pem` and `client-key.pem` from
    /// `dir` (as written by `ballot certs`).
    ///
    /// # Errors
    /// [`Error::Transport`] naming the file that is missing or unusable.
    pub fn from_cert_dir(
        endpoints: impl IntoIterator<Item = impl Into<String>>,
        dir: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        Ok(Self::new(endpoints, TlsConfig::load_client(dir.as_ref())?))
    }
}

struct Inner {
    connector: ClientConnector,
    config: ClientConfig,
    codec: Codec,
    sessions: tokio::sync::Mutex<HashMap<SocketAddr, Arc<ClientSession>>>,
    preferred: std::sync::Mutex<Option<SocketAddr>>,
    client_id: u64,
    /// Whether the session under `client_id` was handed out (it then lives in the pool).
    own_session_used: AtomicBool,
    /// Sessions of finished calls, for reuse. A session's writes must reach the cluster in
    /// sequence order (the session table calls an older sequence number stale), so calls
    /// made concurrently through clones of one client each take a session of their own.
    idle_sessions: std::sync::Mutex<Vec<Session>>,
}

/// A client of one ballot service whose state machine type is `S` (used only for its
/// request, response and event types). Cheap to clone; clones share connections and the
/// session.
pub struct Client<S> {
    inner: Arc<Inner>,
    service: PhantomData<fn() -> S>,
}

impl<S> Clone for Client<S> {
    fn clone(&self) -> Self {
        Client { inner: Arc::clone(&self.inner), service: PhantomData }
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    h.finish()
}

type Reply<S> = ClientReply<<S as StateMachine>::Response, <S as StateMachine>::Event>;

impl<S: StateMachine> Client<S> {
    /// Prepares a client. Connections are made lazily, on the first call.
    ///
    /// # Errors
    /// [`Error::Config`] without endpoints; [`Error::Transport`] if the local QUIC endpoint
    /// cannot be created.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        if config.endpoints.is_empty() {
            return Err(Error::Config(
                "no endpoints given; pass at least one node address such as 127.0.0.1:7001".into(),
            ));
        }
        let connector = ClientConnector::new(&config.tls, config.cluster.clone(), ClientOptions::default())?;
        Ok(Client {
            inner: Arc::new(Inner {
                connector,
                codec: Codec::default(),
                sessions: tokio::sync::Mutex::new(HashMap::new()),
                preferred: std::sync::Mutex::new(None),
                client_id: random_u64(),
                own_session_used: AtomicBool::new(false),
                idle_sessions: std::sync::Mutex::new(Vec::new()),
                config,
            }),
            service: PhantomData,
        })
    }

    /// This client's session id.
    #[must_use]
    pub fn client_id(&self) -> u64 {
        self.inner.client_id
    }

    /// Runs one request of the service at the leader (following redirects, retrying
    /// what is safe to retry), within a session so that a retried write applies once.
    ///
    /// # Errors
    /// The server's error if it is not retryable or the deadline passed;
    /// [`Error::Unreachable`] if no node answered.
    pub async fn call(&self, request: S::Request) -> Result<S::Response, Error> {
        let session = self.take_session();
        let result = self.round_trip(&ClientRequest::Call { session: Some(session), request }, None).await;
        // Only a finished call gives its session back: a cancelled one may still apply.
        self.inner.idle_sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(session);
        match result? {
            ClientReply::Response(r) => Ok(r),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// The session for the next call: an idle one with its sequence number advanced;
    /// else, the first time, the one under the client's id; else a new one.
    fn take_session(&self) -> Session {
        let idle = self.inner.idle_sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        match idle {
            Some(s) => Session { client: s.client, seq: s.seq + 1 },
            None if !self.inner.own_session_used.swap(true, Ordering::Relaxed) => {
                Session { client: self.inner.client_id, seq: 1 }
            }
            None => Session { client: random_u64(), seq: 1 },
        }
    }

    /// Runs a read at one specific node (a serializable read there sees that node's
    /// state), without following redirects.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub async fn call_at(&self, endpoint: &str, request: S::Request) -> Result<S::Response, Error> {
        let addr = self.resolve(endpoint).await?;
        match self.round_trip(&ClientRequest::Call { session: None, request }, Some(addr)).await? {
            ClientReply::Response(r) => Ok(r),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// The status of the node at `endpoint`.
    ///
    /// # Errors
    /// [`Error::Unreachable`] if it does not answer.
    pub async fn status(&self, endpoint: &str) -> Result<NodeStatus, Error> {
        let addr = self.resolve(endpoint).await?;
        match self.round_trip(&ClientRequest::<S::Request>::Status, Some(addr)).await? {
            ClientReply::Status(s) => Ok(s),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// The status of every configured endpoint, in order.
    pub async fn statuses(&self) -> Vec<(String, Result<NodeStatus, Error>)> {
        let mut out = Vec::new();
        for e in &self.inner.config.endpoints {
            out.push((e.clone(), self.status(e).await));
        }
        out
    }

    /// Opens a watch stream at the node believed to lead (any node serves watches).
    ///
    /// # Errors
    /// [`Error::Unreachable`] if no node accepts the stream.
    pub async fn watch(&self, request: S::Request) -> Result<WatchStream<S>, Error> {
        let frame = self.encode(&ClientRequest::Watch { request })?;
        let deadline = Instant::now() + self.inner.config.deadline;
        let mut last = String::new();
        let mut backoff = Backoff::new();
        for addr in self.rotation(None).await? {
            if Instant::now() >= deadline {
                break;
            }
            match self.session(addr).await {
                Ok(session) => match session.open_stream(frame.clone()).await {
                    Ok(stream) => {
                        return Ok(WatchStream { stream, node: addr, codec: self.inner.codec, service: PhantomData });
                    }
                    Err(e) => {
                        last = e.to_string();
                        self.forget(addr).await;
                    }
                },
                Err(e) => last = e.to_string(),
            }
            backoff.wait().await;
        }
        Err(self.unreachable(last))
    }

    fn encode(&self, body: &ClientRequest<S::Request>) -> Result<bytes::Bytes, Error> {
        Ok(self.inner.codec.encode(&Request::new(1, body))?)
    }

    fn unreachable(&self, last: String) -> Error {
        Error::Unreachable { endpoints: self.inner.config.endpoints.join(","), last }
    }

    async fn resolve(&self, endpoint: &str) -> Result<SocketAddr, Error> {
        tokio::net::lookup_host(endpoint)
            .await
            .map_err(|e| Error::Config(format!("cannot resolve endpoint {endpoint:?}: {e}")))?
            .next()
            .ok_or_else(|| Error::Config(format!("endpoint {endpoint:?} resolves to no address")))
    }

    /// The order to try nodes in: the preferred (last known leader) first.
    async fn rotation(&self, only: Option<SocketAddr>) -> Result<Vec<SocketAddr>, Error> {
        if let Some(a) = only {
            return Ok(vec![a]);
        }
        let mut addrs = Vec::new();
        let mut last_err = None;
        for e in &self.inner.config.endpoints {
            match self.resolve(e).await {
                Ok(a) => addrs.push(a),
                Err(err) => last_err = Some(err),
            }
        }
        if addrs.is_empty() {
            return Err(last_err.unwrap_or_else(|| Error::Config("no endpoints".into())));
        }
        let preferred = *self.inner.preferred.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = preferred {
            addrs.retain(|a| *a != p);
            addrs.insert(0, p);
        }
        Ok(addrs)
    }

    async fn session(&self, addr: SocketAddr) -> Result<Arc<ClientSession>, Error> {
        let mut sessions = self.inner.sessions.lock().await;
        if let Some(s) = sessions.get(&addr) {
            return Ok(Arc::clone(s));
        }
        let s = Arc::new(self.inner.connector.connect(addr).await?);
        sessions.insert(addr, Arc::clone(&s));
        Ok(s)
    }

    async fn forget(&self, addr: SocketAddr) {
        if let Some(s) = self.inner.sessions.lock().await.remove(&addr) {
            s.close();
        }
    }

    fn prefer(&self, addr: Option<SocketAddr>) {
        *self.inner.preferred.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = addr;
    }

    /// One try at one node within `budget`: connecting and the request each get it.
    /// A node that cannot be connected to is [`Error::Unreachable`]; one that took the
    /// request but did not answer is a server-side [`ClientError::Timeout`] (the request
    /// may have taken effect).
    async fn attempt(
        &self,
        addr: SocketAddr,
        frame: bytes::Bytes,
        budget: Duration,
    ) -> Result<Response<Reply<S>>, Error> {
        let session = match tokio::time::timeout(budget, self.session(addr)).await {
            Ok(session) => session?,
            Err(_) => {
                return Err(Error::Unreachable { endpoints: addr.to_string(), last: "connecting timed out".into() });
            }
        };
        match tokio::time::timeout(budget, session.request(frame)).await {
            Ok(Ok(bytes)) => Ok(self.inner.codec.decode(&bytes)?),
            Ok(Err(e)) => {
                self.forget(addr).await;
                Err(e.into())
            }
            Err(_) => {
                self.forget(addr).await;
                Err(Error::Server(ClientError::Timeout))
            }
        }
    }

    async fn round_trip(&self, body: &ClientRequest<S::Request>, only: Option<SocketAddr>) -> Result<Reply<S>, Error> {
        let frame = self.encode(body)?;
        let cfg = &self.inner.config;
        let deadline = Instant::now() + cfg.deadline;
        let mut queue = self.rotation(only).await?;
        let mut next = 0usize;
        let mut backoff = Backoff::new();
        let mut last: Option<Error> = None;
        let mut redirects = 0u32;
        loop {
            if Instant::now() >= deadline {
                return Err(match last {
                    Some(Error::Server(e)) => Error::Server(e),
                    // One node asked: its own error says it all.
                    Some(e @ Error::Unreachable { .. }) if only.is_some() => e,
                    Some(Error::Unreachable { last, .. }) => self.unreachable(last),
                    Some(other) => self.unreachable(other.to_string()),
                    None => self.unreachable("deadline passed".into()),
                });
            }
            let addr = queue[next % queue.len()];
            let left = deadline.saturating_duration_since(Instant::now());
            match self.attempt(addr, frame.clone(), cfg.attempt_timeout.min(left)).await {
                Err(e @ (Error::Decode(_) | Error::Config(_))) => return Err(e),
                Err(e) => {
                    // A node that took the request but timed out is the more telling
                    // error; the session makes the retry safe.
                    if !(matches!(e, Error::Unreachable { .. }) && matches!(last, Some(Error::Server(_)))) {
                        last = Some(e);
                    }
                    next += 1;
                }
                Ok(Response { result: Ok(reply), .. }) => {
                    if only.is_none() {
                        self.prefer(Some(addr));
                    }
                    return Ok(reply);
                }
                Ok(Response { result: Err(e), .. }) => {
                    if !e.is_retryable() {
                        return Err(Error::Server(e));
                    }
                    if only.is_some() && matches!(e, ClientError::NotLeader { .. }) {
                        return Err(Error::Server(e));
                    }
                    // Follow a redirect to the leader at once.
                    let redirect = match &e {
                        ClientError::NotLeader { leader_addr: Some(leader), .. } if only.is_none() => {
                            self.resolve(leader).await.ok().filter(|l| *l != addr)
                        }
                        _ => None,
                    };
                    if let Some(l) = redirect {
                        self.prefer(Some(l));
                        if !queue.contains(&l) {
                            queue.push(l);
                        }
                        next = queue.iter().position(|a| *a == l).unwrap_or(0);
                        last = Some(Error::Server(e));
                        redirects += 1;
                        if redirects <= 3 {
                            continue;
                        }
                        backoff.wait().await;
                        continue;
                    }
                    if matches!(e, ClientError::NotLeader { .. } | ClientError::Unavailable(_)) {
                        next += 1;
                    }
                    last = Some(Error::Server(e));
                }
            }
            backoff.wait().await;
        }
    }
}

/// Jittered exponential backoff: 25 ms doubling to 1 s.
struct Backoff {
    delay: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff { delay: Duration::from_millis(25) }
    }

    async fn wait(&mut self) {
        let jitter = random_u64() % (self.delay.as_millis() as u64 / 2 + 1);
        tokio::time::sleep(self.delay / 2 + Duration::from_millis(jitter)).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(1));
    }
}

/// The events of one watch, in order. Ends with the server's error (for example
/// "compacted"), or `None` when the stream closed.
pub struct WatchStream<S: StateMachine> {
    stream: ResponseStream,
    node: SocketAddr,
    codec: Codec,
    service: PhantomData<fn() -> S>,
}

impl<S: StateMachine> WatchStream<S> {
    /// The node serving this stream.
    #[must_use]
    pub fn node(&self) -> SocketAddr {
        self.node
    }

    /// The next event; `None` when the node ended the stream.
    ///
    /// # Errors
    /// The error that ended the watch (the server's, or a lost connection).
    pub async fn next(&mut self) -> Result<Option<S::Event>, Error> {
        let Some(bytes) = self.stream.next().await? else { return Ok(None) };
        let response: Response<Reply<S>> = self.codec.decode(&bytes)?;
        match response.result {
            Ok(ClientReply::Event(e)) => Ok(Some(e)),
            Ok(other) => Err(Error::Unexpected(format!("{other:?}"))),
            Err(e) => Err(Error::Server(e)),
        }
    }
}
