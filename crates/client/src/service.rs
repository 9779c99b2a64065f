//! The service-independent client: connections, leader discovery, retries, sessions.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ballot_client_proto::{Answer, Call, CallError, Endpoints, Policy, QuorumCall, SessionPool, Step, Vote};
use ballot_core::service::{Consistency, Route, StateMachine};
use ballot_core::{ClientRule, Consensus};
use ballot_pbft_auth::RequestSigner;
use ballot_quic::{ClientConnector, ClientOptions, NodeConnection, ResponseStream, TlsConfig};
use ballot_wire::{ClientError, ClientReply, ClientRequest, Codec, NodeStatus, Request, Response};
use tokio::sync::watch;

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
    /// How long one connection attempt may take. Connections to every endpoint are
    /// made at once, so a dead endpoint does not delay a call another node can serve.
    pub connect_timeout: Duration,
    /// The cluster's consensus. Under a Byzantine one (PBFT) the client signs every
    /// request with its certificate's key, sends it to every replica (`endpoints` must
    /// list them all) and accepts an answer only from 2f+1 replicas that agree (a read
    /// that finds no such agreement is ordered like a write).
    pub consensus: Consensus,
}

impl ClientConfig {
    /// A configuration with default timeouts (1 s to connect, 2 s per attempt, 10 s per
    /// call) for the cluster named `ballot`.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>, tls: TlsConfig) -> Self {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            tls,
            cluster: "ballot".to_owned(),
            attempt_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(1),
            consensus: Consensus::Raft,
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

    /// The call policy these settings make.
    fn policy(&self) -> Policy {
        Policy {
            deadline: self.deadline,
            attempt_timeout: self.attempt_timeout.min(self.deadline),
            connect_timeout: self.connect_timeout.min(self.deadline),
            ..Policy::default()
        }
    }
}

struct Inner {
    connector: ClientConnector,
    config: ClientConfig,
    policy: Policy,
    codec: Codec,
    origin: tokio::time::Instant,
    /// The nodes, the state of the connection to each, the last known leader.
    endpoints: Mutex<Endpoints<SocketAddr>>,
    connections: Mutex<HashMap<SocketAddr, NodeConnection>>,
    /// Bumped on every connection event, to wake calls waiting for one.
    connection_events: watch::Sender<u64>,
    sessions: Mutex<SessionPool>,
    /// Under a Byzantine protocol: how requests are signed and how many answers must match.
    byzantine: Option<Byzantine>,
}

/// A Byzantine fault tolerant cluster's client side.
struct Byzantine {
    signer: RequestSigner,
    rule: ClientRule,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A client of one ballot service whose state machine type is `S` (used only for its
/// request, response and event types). Cheap to clone; clones share connections, the
/// leader they know of, and sessions.
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

/// What one attempt at one node produced, besides the call's bookkeeping.
enum Attempt<T> {
    Answered(T),
    NotYet,
}

/// How one replica's part in a [`QuorumCall`] went.
enum Outcome<T> {
    /// The request did not reach the replica, or its answer was lost.
    Lost(String),
    /// The replica answered: the answer's fingerprint and the reply, or its error.
    Answered(Result<(u64, T), ClientError>),
}

/// A fingerprint of an answer's bytes: correct replicas encode equal answers alike.
fn fingerprint(bytes: &[u8]) -> u64 {
    let digest = ballot_pbft::sha256(bytes);
    u64::from_be_bytes(digest.0[..8].try_into().unwrap_or_default())
}

impl<S: StateMachine> Client<S> {
    /// Prepares a client. Connections are made lazily, on the first call.
    ///
    /// # Errors
    /// [`Error::Config`] without endpoints or with an endpoint that does not resolve;
    /// [`Error::Transport`] if the local QUIC endpoint cannot be created.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        if config.endpoints.is_empty() {
            return Err(Error::Config(
                "no endpoints given; pass at least one node address such as 127.0.0.1:7001".into(),
            ));
        }
        let addrs = config.endpoints.iter().map(|e| resolve_now(e)).collect::<Result<Vec<_>, _>>()?;
        let connector = ClientConnector::new(&config.tls, config.cluster.clone(), ClientOptions::default())?;
        let byzantine = config.consensus.is_byzantine().then(|| byzantine(&config)).transpose()?;
        Ok(Client {
            inner: Arc::new(Inner {
                connector,
                policy: config.policy(),
                codec: Codec::default(),
                origin: tokio::time::Instant::now(),
                endpoints: Mutex::new(Endpoints::new(addrs)),
                connections: Mutex::new(HashMap::new()),
                connection_events: watch::channel(0).0,
                sessions: Mutex::new(SessionPool::new(random_u64())),
                byzantine,
                config,
            }),
            service: PhantomData,
        })
    }

    /// This client's session id.
    #[must_use]
    pub fn client_id(&self) -> u64 {
        lock(&self.inner.sessions).own_client()
    }

    /// Runs one request of the service at the leader (following redirects, retrying
    /// what is safe to retry), within a session so that a retried write applies once.
    ///
    /// # Errors
    /// The server's error if it is not retryable or the deadline passed;
    /// [`Error::OutcomeUnknown`] for a write that may or may not have been applied;
    /// [`Error::Unreachable`] if no node answered.
    pub async fn call(&self, request: S::Request) -> Result<S::Response, Error> {
        let route = S::route(&request);
        let session = lock(&self.inner.sessions).take(random_u64);
        let command = self.encode_command(Some(session), request)?;
        let result = if let Some(byzantine) = &self.inner.byzantine {
            self.quorum_call(byzantine.rule, route, command).await
        } else {
            let frame = self.encode(&ClientRequest::<S::Request>::Call { command })?;
            let mut call = self.start(route == Route::Write, None);
            if route == Route::Read(Consistency::Serializable) {
                call = call.served_by_any_node();
            }
            self.run(call, &frame).await
        };
        // Only a finished call gives its session back: a cancelled one may still apply.
        lock(&self.inner.sessions).give_back(session);
        match result? {
            ClientReply::Response(r) => Ok(r),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// Runs a read at one specific node (a serializable read there sees that node's
    /// state), without following redirects.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub async fn call_at(&self, endpoint: &str, request: S::Request) -> Result<S::Response, Error> {
        let addr = resolve(endpoint).await?;
        let command = self.encode_command(None, request)?;
        let frame = self.encode(&ClientRequest::<S::Request>::Call { command })?;
        match self.run(self.start(false, Some(addr)), &frame).await? {
            ClientReply::Response(r) => Ok(r),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// The status of the node at `endpoint`.
    ///
    /// # Errors
    /// [`Error::Unreachable`] if it does not answer.
    pub async fn status(&self, endpoint: &str) -> Result<NodeStatus, Error> {
        let addr = resolve(endpoint).await?;
        let frame = self.encode(&ClientRequest::<S::Request>::Status)?;
        match self.run(self.start(false, Some(addr)), &frame).await? {
            ClientReply::Status(s) => Ok(s),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// The status of every configured endpoint, in order, asked of all at once.
    pub async fn statuses(&self) -> Vec<(String, Result<NodeStatus, Error>)> {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, e) in self.inner.config.endpoints.iter().enumerate() {
            let (client, endpoint) = (self.clone(), e.clone());
            tasks.spawn(async move { (i, client.status(&endpoint).await) });
        }
        let mut out: Vec<(String, Result<NodeStatus, Error>)> = self
            .inner
            .config
            .endpoints
            .iter()
            .map(|e| (e.clone(), Err(Error::Unexpected("status task failed".into()))))
            .collect();
        while let Some(done) = tasks.join_next().await {
            if let Ok((i, r)) = done {
                out[i].1 = r;
            }
        }
        out
    }

    /// Opens a watch stream at the node believed to lead (any node serves watches).
    ///
    /// # Errors
    /// [`Error::Unreachable`] if no node accepts the stream.
    pub async fn watch(&self, request: S::Request) -> Result<WatchStream<S>, Error> {
        let frame = self.encode(&ClientRequest::Watch { request })?;
        let mut call = self.start(false, None).served_by_any_node();
        loop {
            let Some((to, _reply_by)) = self.next_send(&mut call).await? else { continue };
            let opened = match self.connection(to) {
                Some(session) => session.open_stream(frame.clone()).await,
                None => Err(ballot_quic::Error::Closed),
            };
            match opened {
                Ok(stream) => {
                    call.on_answer(self.now(), &mut lock(&self.inner.endpoints), to, Answer::Done);
                    return Ok(WatchStream { stream, node: to, client: self.clone() });
                }
                Err(e) => {
                    self.forget(to);
                    call.on_unsent(self.now(), &mut lock(&self.inner.endpoints), &to, &e.to_string());
                }
            }
        }
    }

    fn start(&self, write: bool, pinned: Option<SocketAddr>) -> Call<SocketAddr> {
        let now = self.now();
        match pinned {
            Some(node) => Call::pinned(now, &self.inner.policy, write, random_u64(), node),
            None => Call::new(now, &self.inner.policy, write, random_u64()),
        }
    }

    fn now(&self) -> ballot_core::Instant {
        let nanos = u64::try_from(self.inner.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        ballot_core::Instant::from_nanos(nanos)
    }

    fn instant(&self, at: ballot_core::Instant) -> tokio::time::Instant {
        self.inner.origin + Duration::from_nanos(at.as_nanos())
    }

    /// Polls `call` until it asks to send (returns where, and by when to answer) or is
    /// over (returns its error; `Ok(None)` never escapes: done-ok is reported by the
    /// caller's own bookkeeping). Carries out connect steps and waits on the way.
    async fn next_send(
        &self,
        call: &mut Call<SocketAddr>,
    ) -> Result<Option<(SocketAddr, tokio::time::Instant)>, Error> {
        let mut events = self.inner.connection_events.subscribe();
        let step = call.poll(self.now(), &mut lock(&self.inner.endpoints));
        match step {
            Step::Connect(addr) => {
                self.spawn_connect(addr);
                Ok(None)
            }
            Step::Send { to, reply_by } => Ok(Some((to, self.instant(reply_by)))),
            Step::Wait(until) => {
                tokio::select! {
                    () = tokio::time::sleep_until(self.instant(until)) => {}
                    _ = events.changed() => {}
                }
                Ok(None)
            }
            Step::Done(Ok(())) => Err(Error::Unexpected("the call finished without an answer".into())),
            Step::Done(Err(e)) => Err(self.call_error(e)),
        }
    }

    /// Runs `call` to its end with `frame` as the request.
    async fn run(&self, mut call: Call<SocketAddr>, frame: &bytes::Bytes) -> Result<Reply<S>, Error> {
        loop {
            let Some((to, reply_by)) = self.next_send(&mut call).await? else { continue };
            if let Attempt::Answered(reply) = self.attempt(&mut call, to, reply_by, frame).await? {
                return Ok(reply);
            }
        }
    }

    /// Sends `frame` to `to` and feeds what happened back into `call`.
    async fn attempt(
        &self,
        call: &mut Call<SocketAddr>,
        to: SocketAddr,
        reply_by: tokio::time::Instant,
        frame: &bytes::Bytes,
    ) -> Result<Attempt<Reply<S>>, Error> {
        let Some(session) = self.connection(to) else {
            call.on_unsent(self.now(), &mut lock(&self.inner.endpoints), &to, "the connection closed");
            return Ok(Attempt::NotYet);
        };
        // A request that could not be put on a stream never reached the node.
        let mut stream = match tokio::time::timeout_at(reply_by, session.open_stream(frame.clone())).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(ballot_quic::Error::TooLarge { size, max })) => {
                return Err(Error::Server(ClientError::TooLarge {
                    what: "request".into(),
                    size: size as u64,
                    max: max as u64,
                }));
            }
            Ok(Err(e)) => {
                self.forget(to);
                call.on_unsent(self.now(), &mut lock(&self.inner.endpoints), &to, &e.to_string());
                return Ok(Attempt::NotYet);
            }
            Err(_) => {
                self.forget(to);
                call.on_lost(self.now(), &mut lock(&self.inner.endpoints), &to, "sending the request timed out");
                return Ok(Attempt::NotYet);
            }
        };
        // From here on the node may have received it.
        let answer = match tokio::time::timeout_at(reply_by, stream.next()).await {
            Ok(Ok(Some(bytes))) => self.inner.codec.decode::<Response<Reply<S>>>(&bytes)?,
            Ok(Ok(None)) => {
                call.on_lost(self.now(), &mut lock(&self.inner.endpoints), &to, "the node ended the stream unanswered");
                return Ok(Attempt::NotYet);
            }
            Ok(Err(e)) => {
                self.forget(to);
                call.on_lost(self.now(), &mut lock(&self.inner.endpoints), &to, &e.to_string());
                return Ok(Attempt::NotYet);
            }
            Err(_) => {
                // A node that does not answer may be gone (QUIC notices only after its
                // idle timeout): reconnecting tells sooner.
                self.forget(to);
                let waited = self.inner.policy.attempt_timeout;
                let reason = format!("no answer from {to} within {waited:?}");
                call.on_lost(self.now(), &mut lock(&self.inner.endpoints), &to, &reason);
                return Ok(Attempt::NotYet);
            }
        };
        let (answer, reply) = match answer.result {
            Ok(reply) => (Answer::Done, Some(reply)),
            Err(error @ ClientError::NotLeader { .. }) => {
                let leader = match &error {
                    ClientError::NotLeader { leader_addr: Some(a), .. } => resolve(a).await.ok(),
                    _ => None,
                };
                (Answer::Redirect { leader, error }, None)
            }
            Err(error) => (Answer::Error(error), None),
        };
        call.on_answer(self.now(), &mut lock(&self.inner.endpoints), to, answer);
        Ok(reply.map_or(Attempt::NotYet, Attempt::Answered))
    }

    /// A call's command (request and session), encoded once, here, and signed under a
    /// Byzantine protocol: it travels unchanged into the log.
    fn encode_command(
        &self,
        session: Option<ballot_core::service::Session>,
        request: S::Request,
    ) -> Result<bytes::Bytes, Error> {
        let command = self.inner.codec.encode(&ballot_core::service::Command { session, request })?;
        Ok(match &self.inner.byzantine {
            Some(b) => b.signer.sign(&command),
            None => command,
        })
    }

    /// A call under a Byzantine protocol's [`ClientRule::Matching`]: the signed command
    /// goes to every replica. A write settles with `writes` matching answers; a read
    /// first asks for `reads` matching answers from the replicas' executed states, and
    /// when they disagree (or do not all answer within an attempt's time) is ordered
    /// through the log like a write and settles with `writes` matching answers.
    async fn quorum_call(&self, rule: ClientRule, route: Route, command: bytes::Bytes) -> Result<Reply<S>, Error> {
        let ClientRule::Matching { writes, reads } = rule else {
            return Err(Error::Unexpected("a quorum call without a matching rule".into()));
        };
        let start = self.now();
        if route.under(rule) == Route::Write {
            let frame = self.encode(&ClientRequest::<S::Request>::Call { command })?;
            return self.run_quorum(QuorumCall::new(start, &self.inner.policy, true, writes), &frame, false).await;
        }
        let fast = Policy { deadline: self.inner.policy.attempt_timeout, ..self.inner.policy.clone() };
        let frame = self.encode(&ClientRequest::<S::Request>::Call { command: command.clone() })?;
        match self.run_quorum(QuorumCall::new(start, &fast, false, reads), &frame, true).await {
            Err(Error::Unreachable { last, .. }) => {
                tracing::debug!(%last, "an unordered read found no {reads} matching answers; ordering it");
            }
            other => return other,
        }
        let left = self.inner.policy.deadline.saturating_sub(self.now() - start);
        let ordered = Policy { deadline: left, ..self.inner.policy.clone() };
        let frame = self.encode(&ClientRequest::<S::Request>::Ordered { command })?;
        self.run_quorum(QuorumCall::new(self.now(), &ordered, false, writes), &frame, false).await
    }

    /// Runs `call` with `frame` to its end: sends to every replica at once, feeds their
    /// answers back, returns the reply enough of them agreed on. With `give_up_early`,
    /// ends as unreachable once no answer can gather enough matches.
    async fn run_quorum(
        &self,
        mut call: QuorumCall<SocketAddr>,
        frame: &bytes::Bytes,
        give_up_early: bool,
    ) -> Result<Reply<S>, Error> {
        let replicas = self.inner.config.endpoints.len();
        let mut replies: HashMap<u64, Reply<S>> = HashMap::new();
        let mut attempts = tokio::task::JoinSet::new();
        loop {
            let mut events = self.inner.connection_events.subscribe();
            if give_up_early && call.hopeless(replicas) {
                let last = format!("the replicas' answers differ; fewer than {replicas} can match");
                return Err(Error::Unreachable { endpoints: self.inner.config.endpoints.join(","), last });
            }
            let step = call.poll(self.now(), &mut lock(&self.inner.endpoints));
            match step {
                Step::Connect(addr) => self.spawn_connect(addr),
                Step::Send { to, reply_by } => {
                    let (client, frame, reply_by) = (self.clone(), frame.clone(), self.instant(reply_by));
                    attempts.spawn(async move { (to, client.ask(to, reply_by, frame).await) });
                }
                Step::Wait(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(self.instant(until)) => {}
                        _ = events.changed() => {}
                        Some(Ok((node, outcome))) = attempts.join_next() => {
                            let now = self.now();
                            match outcome {
                                Outcome::Lost(reason) => {
                                    call.on_lost(now, &mut lock(&self.inner.endpoints), &node, &reason);
                                }
                                Outcome::Answered(Ok((fingerprint, reply))) => {
                                    replies.entry(fingerprint).or_insert(reply);
                                    call.on_vote(now, node, Vote::Reply { fingerprint });
                                }
                                Outcome::Answered(Err(error)) => call.on_vote(now, node, Vote::Error(error)),
                            }
                        }
                    }
                }
                Step::Done(Ok(())) => {
                    return call
                        .accepted()
                        .and_then(|f| replies.remove(&f))
                        .ok_or_else(|| Error::Unexpected("the call settled without a reply".into()));
                }
                Step::Done(Err(e)) => return Err(self.call_error(e)),
            }
        }
    }

    /// Sends `frame` to replica `to` and waits for its answer until `reply_by`.
    async fn ask(&self, to: SocketAddr, reply_by: tokio::time::Instant, frame: bytes::Bytes) -> Outcome<Reply<S>> {
        let Some(session) = self.connection(to) else { return Outcome::Lost("the connection closed".into()) };
        let mut stream = match tokio::time::timeout_at(reply_by, session.open_stream(frame)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(ballot_quic::Error::TooLarge { size, max })) => {
                let what = "request".into();
                return Outcome::Answered(Err(ClientError::TooLarge { what, size: size as u64, max: max as u64 }));
            }
            Ok(Err(e)) => {
                self.forget(to);
                return Outcome::Lost(e.to_string());
            }
            Err(_) => {
                self.forget(to);
                return Outcome::Lost("sending the request timed out".into());
            }
        };
        match tokio::time::timeout_at(reply_by, stream.next()).await {
            Ok(Ok(Some(bytes))) => match self.inner.codec.decode::<Response<Reply<S>>>(&bytes) {
                Ok(response) => Outcome::Answered(response.result.map(|reply| (fingerprint(&bytes), reply))),
                // A replica whose answer does not decode counts as one that did not answer.
                Err(e) => Outcome::Lost(format!("{to} sent an answer that does not decode: {e}")),
            },
            Ok(Ok(None)) => Outcome::Lost(format!("{to} ended the stream unanswered")),
            Ok(Err(e)) => {
                self.forget(to);
                Outcome::Lost(e.to_string())
            }
            Err(_) => {
                self.forget(to);
                Outcome::Lost(format!("no answer from {to} within {:?}", self.inner.policy.attempt_timeout))
            }
        }
    }

    fn encode(&self, body: &ClientRequest<S::Request>) -> Result<bytes::Bytes, Error> {
        Ok(self.inner.codec.encode(&Request::new(1, body))?)
    }

    fn call_error(&self, e: CallError) -> Error {
        match e {
            CallError::Server(e) => Error::Server(e),
            CallError::OutcomeUnknown { last } => Error::OutcomeUnknown { last },
            CallError::Unreachable { last } => {
                Error::Unreachable { endpoints: self.inner.config.endpoints.join(","), last }
            }
        }
    }

    fn connection(&self, addr: SocketAddr) -> Option<NodeConnection> {
        lock(&self.inner.connections).get(&addr).cloned()
    }

    /// Connects to `addr` in the background; the outcome lands in the endpoints' view
    /// and wakes the calls waiting for it.
    fn spawn_connect(&self, addr: SocketAddr) {
        let client = self.clone();
        tokio::spawn(async move {
            let timeout = client.inner.policy.connect_timeout;
            let result = match tokio::time::timeout(timeout, client.inner.connector.connect(addr)).await {
                Ok(Ok(session)) => Ok(session),
                Ok(Err(e)) => Err(format!("cannot connect to {addr}: {e}")),
                Err(_) => Err(format!("connecting to {addr} timed out after {timeout:?}")),
            };
            match result {
                Ok(session) => {
                    lock(&client.inner.connections).insert(addr, session);
                    lock(&client.inner.endpoints).connected(addr);
                }
                Err(reason) => {
                    tracing::debug!(%addr, %reason, "connection failed");
                    let retry = client.inner.policy.retry_down_after;
                    lock(&client.inner.endpoints).connect_failed(client.now(), addr, retry, reason);
                }
            }
            client.inner.connection_events.send_modify(|n| *n += 1);
        });
    }

    fn forget(&self, addr: SocketAddr) {
        if let Some(s) = lock(&self.inner.connections).remove(&addr) {
            s.close();
        }
        lock(&self.inner.endpoints).disconnected(&addr);
    }
}

/// The signer and rule of a Byzantine fault tolerant cluster's client.
fn byzantine(config: &ClientConfig) -> Result<Byzantine, Error> {
    let n = config.endpoints.len();
    let least = config.consensus.nodes_for(1);
    if n < least {
        return Err(Error::Config(format!(
            "a {} cluster's client needs every replica's address (at least {least}: 3f+1 survive f faulty \
             ones); {n} endpoint(s) given",
            config.consensus
        )));
    }
    let signer = RequestSigner::new(&config.cluster, config.tls.certificate(), config.tls.private_key())
        .map_err(|e| Error::Config(format!("the client certificate cannot sign {} requests: {e}", config.consensus)))?;
    Ok(Byzantine { signer, rule: ClientRule::byzantine(n) })
}

fn resolve_now(endpoint: &str) -> Result<SocketAddr, Error> {
    use std::net::ToSocketAddrs;
    endpoint
        .to_socket_addrs()
        .map_err(|e| Error::Config(format!("cannot resolve endpoint {endpoint:?}: {e}")))?
        .next()
        .ok_or_else(|| Error::Config(format!("endpoint {endpoint:?} resolves to no address")))
}

async fn resolve(endpoint: &str) -> Result<SocketAddr, Error> {
    tokio::net::lookup_host(endpoint)
        .await
        .map_err(|e| Error::Config(format!("cannot resolve endpoint {endpoint:?}: {e}")))?
        .next()
        .ok_or_else(|| Error::Config(format!("endpoint {endpoint:?} resolves to no address")))
}

/// The events of one watch, in order. Ends with the server's error (for example
/// "compacted"), or `None` when the stream closed.
pub struct WatchStream<S: StateMachine> {
    stream: ResponseStream,
    node: SocketAddr,
    client: Client<S>,
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
        let bytes = match self.stream.next().await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(e) => {
                // The connection is gone: the next call or watch reconnects.
                self.client.forget(self.node);
                return Err(e.into());
            }
        };
        let response: Response<Reply<S>> = self.client.inner.codec.decode(&bytes)?;
        match response.result {
            Ok(ClientReply::Event(e)) => Ok(Some(e)),
            Ok(other) => Err(Error::Unexpected(format!("{other:?}"))),
            Err(e) => Err(Error::Server(e)),
        }
    }
}
