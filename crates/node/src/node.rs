//! The public face of a running replica: start it, talk to it, stop it.

use std::sync::Arc;

use ballot_core::service::{Command, Session, StateMachine};
use ballot_core::{Consensus, LogStore, NodeId, Protocol, Transport};
use ballot_replica::{Replica, ReplicaConfig};
use ballot_wire::{ClientError, Codec};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::driver::{Call, Driver, DriverConfig, DriverError, DriverParts, WatchItem};
use crate::status::NodeStatus;

/// A handle to a running replica: submit requests, open watches, and follow its view of
/// the cluster (the seed's `get_current_leader`, `is_leader` and leader-change
/// callbacks). Cheap to clone.
pub struct NodeHandle<S: StateMachine> {
    calls: mpsc::Sender<Call<S>>,
    status: watch::Receiver<NodeStatus>,
    codec: Codec,
}

impl<S: StateMachine> Clone for NodeHandle<S> {
    fn clone(&self) -> Self {
        NodeHandle { calls: self.calls.clone(), status: self.status.clone(), codec: self.codec }
    }
}

fn stopped() -> ClientError {
    ClientError::Unavailable("the node is stopped".into())
}

impl<S: StateMachine> NodeHandle<S> {
    fn submit(&self, call: Call<S>) -> Result<(), ClientError> {
        self.calls.try_send(call).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ClientError::Busy,
            mpsc::error::TrySendError::Closed(_) => stopped(),
        })
    }

    /// Runs one request of the service. Writes within a `session` apply exactly once
    /// however often they are retried with the same session and sequence number.
    ///
    /// # Errors
    /// [`ClientError`]: not the leader (for writes), busy, timed out, rejected, …
    pub async fn request(&self, session: Option<Session>, request: S::Request) -> Result<S::Response, ClientError> {
        let command = self.codec.encode(&Command { session, request })?;
        self.request_command(command).await
    }

    /// Runs one request as the client encoded it (a [`Command`] of the service's
    /// request); a write is ordered as these very bytes.
    ///
    /// # Errors
    /// As [`request`](Self::request), and [`ClientError::InvalidRequest`] for bytes that
    /// are not a command of this service.
    pub async fn request_command(&self, command: Bytes) -> Result<S::Response, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Call::Command { command, reply })?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Opens a watch stream (a request the service routes as a watch).
    ///
    /// # Errors
    /// [`ClientError::Compacted`] if its start is gone, and the errors of [`request`](Self::request).
    pub async fn watch(&self, request: S::Request) -> Result<mpsc::Receiver<WatchItem<S::Event>>, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Call::Watch { request, reply })?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// This node's latest view of itself and the cluster.
    #[must_use]
    pub fn status(&self) -> NodeStatus {
        self.status.borrow().clone()
    }

    /// The leader this node knows of.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.status.borrow().status.leader
    }

    /// Whether this node leads.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.status.borrow().status.role == ballot_core::Role::Leader
    }

    /// A receiver that wakes on every status change (leader changes among them): the
    /// async form of a leader-change callback.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<NodeStatus> {
        self.status.clone()
    }

    /// Waits until some leader is known, or `timeout` passes; returns it.
    pub async fn wait_for_leader(&self, timeout: std::time::Duration) -> Option<NodeId> {
        let mut rx = self.status.clone();
        let wait = rx.wait_for(|s| s.status.leader.is_some());
        tokio::time::timeout(timeout, wait).await.ok()?.ok()?.status.leader
    }
}

/// Everything needed to start a replica.
pub struct NodeParts<P: Protocol, S: StateMachine, L> {
    /// Shell tuning.
    pub config: DriverConfig,
    /// The replica's settings: timeouts, snapshots, sessions, the members' client
    /// addresses.
    pub replica: ReplicaConfig,
    /// The consensus replica, already restored from `store`'s recovered state.
    pub protocol: P,
    /// The service, empty: the protocol replays snapshot and log into it.
    pub service: S,
    /// The peer transport.
    pub transport: Arc<dyn Transport>,
    /// The durable store the protocol was recovered from.
    pub store: L,
    /// The algorithm `protocol` is, for status pages.
    pub consensus: Consensus,
    /// The codec for peer messages and commands (its limit is the largest message).
    pub codec: Codec,
}

/// A running replica: a tokio task driving the protocol.
pub struct Node<S: StateMachine> {
    handle: NodeHandle<S>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), DriverError>>>,
}

fn joined(r: Result<Result<(), DriverError>, tokio::task::JoinError>) -> Result<(), DriverError> {
    r.unwrap_or_else(|e| Err(DriverError::Panicked(e.to_string())))
}

impl<S: StateMachine> Node<S> {
    /// Starts the replica on the current tokio runtime.
    ///
    /// # Errors
    /// [`DriverError::Storage`] if the storage writer thread cannot start.
    pub fn start<P, L>(parts: NodeParts<P, S, L>) -> Result<Node<S>, DriverError>
    where
        P: Protocol + Send + 'static,
        L: LogStore<P::Entry, P::HardState> + 'static,
    {
        let (acks_tx, acks) = mpsc::unbounded_channel();
        // A deep queue: the driver blocks on a full one (backpressure), which at this
        // depth means the disk is far behind.
        let options = ballot_storage::GroupCommitOptions::new().queue_capacity(1 << 16).max_group(4096);
        let storage = ballot_storage::GroupCommit::spawn_with(parts.store, options, move |ack| {
            let _ = acks_tx.send(ack);
        })
        .map_err(|e| DriverError::Storage(e.to_string()))?;
        let (calls_tx, calls) = mpsc::channel(parts.config.max_batch * 16);
        let status0 = NodeStatus {
            status: parts.protocol.status(),
            applied_index: 0,
            leader_changes: 0,
            consensus: parts.consensus,
        };
        let (status_tx, status) = watch::channel(status0);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let driver = Driver::new(DriverParts {
            cfg: parts.config,
            replica: Replica::new(parts.protocol, parts.service, parts.replica),
            transport: parts.transport,
            storage,
            acks,
            calls,
            origin: std::time::Instant::now(),
            status: status_tx,
            codec: parts.codec,
        });
        let task = tokio::spawn(driver.run(shutdown_rx));
        Ok(Node { handle: NodeHandle { calls: calls_tx, status, codec: parts.codec }, shutdown, task: Some(task) })
    }

    /// A handle for requests and status.
    #[must_use]
    pub fn handle(&self) -> NodeHandle<S> {
        self.handle.clone()
    }

    /// Stops gracefully: pending requests fail with "unavailable", queued writes finish.
    ///
    /// # Errors
    /// The fatal error the driver stopped with, if it had stopped on its own.
    pub async fn shutdown(mut self) -> Result<(), DriverError> {
        let _ = self.shutdown.send(true);
        match self.task.take() {
            Some(task) => joined(task.await),
            None => Ok(()),
        }
    }

    /// Waits until the driver stops by itself (a fatal error); returns at once if it
    /// already has.
    ///
    /// # Errors
    /// That error.
    pub async fn wait_finished(&mut self) -> Result<(), DriverError> {
        match self.task.take() {
            Some(task) => joined(task.await),
            None => Ok(()),
        }
    }

    /// Whether the driver has stopped.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}
