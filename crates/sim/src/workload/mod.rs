//! What the simulated clients do: the service every node runs (the real one users run),
//! the operations clients issue, and the service's own invariants.
//!
//! The engine is shared: every workload's clients go through the same sans-IO call
//! logic as `ballot-client` (`ballot_client_proto`), and every node hosts the same
//! [`Replica`](ballot_replica::Replica) as a real node.

mod config;
mod election;
mod kv;

use std::time::Duration;

use ballot_core::service::StateMachine;
use ballot_core::{Instant, NodeId, SeededRng};
use ballot_wire::ClientError;

pub use config::ConfigWorkload;
pub use election::ElectionWorkload;
pub use kv::{KvWorkload, kv_request};

use crate::history::History;
use crate::kv::{Key, KvInput, KvOutput};
use crate::sim::ClientConfig;

/// An operation a client is about to issue.
#[derive(Clone, Debug)]
pub struct PlannedOp<R> {
    /// The service request.
    pub request: R,
    /// Its record in the linearizability history, if the workload keeps one (key and
    /// input in the key-value model).
    pub model: Option<(Key, KvInput)>,
}

/// How a client's call ended.
#[derive(Clone, Debug, PartialEq)]
pub enum CallOutcome<R> {
    /// The service answered.
    Ok(R),
    /// The call failed and the request did not take effect.
    Failed(ClientError),
    /// The call failed and the request may or may not have taken effect.
    Unknown,
}

/// What a workload's checks see after a step.
pub struct ServiceView<'a, S> {
    /// Virtual time.
    pub now: Instant,
    /// Every live replica's service, in id order (`None` while a node is down).
    pub services: Vec<(NodeId, Option<&'a S>)>,
    /// The linearizability history so far.
    pub history: &'a History,
    /// The last check of the run (clients stopped, the cluster settled).
    pub final_check: bool,
}

/// A broken service invariant: the checker's name and what is wrong.
pub type ServiceViolation = (&'static str, String);

/// A service and the clients that use it, for [`Simulation`](crate::Simulation).
pub trait Workload {
    /// The service every node runs.
    type Service: StateMachine;

    /// The name used on the command line (`--service NAME`).
    fn name(&self) -> &'static str;

    /// A fresh service for a node.
    fn service(&self) -> Self::Service;

    /// How long the service keeps writing by itself once the clients stopped (an
    /// expired lease is revoked by the leader): the clients stop this much earlier, so
    /// that the cluster is quiet when the final checks compare the nodes.
    fn wind_down(&self) -> Duration {
        Duration::ZERO
    }

    /// Adapts the run's randomized configuration (as a function of its seed).
    fn shape(&mut self, _rng: &mut SeededRng, _clients: &mut ClientConfig) {}

    /// Client `client`'s next operation, or `None` to stay idle this time.
    fn next_op(
        &mut self,
        rng: &mut SeededRng,
        client: usize,
        now: Instant,
        cfg: &ClientConfig,
    ) -> Option<PlannedOp<<Self::Service as StateMachine>::Request>>;

    /// The key-value model's view of a response, for the linearizability history;
    /// `None` for a response that reports the request did not take effect.
    fn model_output(&self, _response: &<Self::Service as StateMachine>::Response) -> Option<KvOutput> {
        None
    }

    /// A client's call ended.
    fn completed(
        &mut self,
        _client: usize,
        _request: &<Self::Service as StateMachine>::Request,
        _outcome: &CallOutcome<<Self::Service as StateMachine>::Response>,
        _now: Instant,
    ) {
    }

    /// A value that identifies the effect of `request` (a unique written value), so that
    /// the exactly-once checker can see it applied twice; `None` if it has none.
    fn effect_key(&self, _request: &<Self::Service as StateMachine>::Request) -> Option<Vec<u8>> {
        None
    }

    /// Whether a command without a session (one a replica proposed itself, from its
    /// service's tick) is legitimate.
    fn is_internal(&self, _request: &<Self::Service as StateMachine>::Request) -> bool {
        false
    }

    /// How many watchers keep a watch stream open.
    fn watchers(&self) -> usize {
        0
    }

    /// The request watcher `w` (re)opens its stream with.
    fn watch_request(&self, _w: usize) -> Option<<Self::Service as StateMachine>::Request> {
        None
    }

    /// An event watcher `w` received.
    fn watch_event(&mut self, _w: usize, _event: <Self::Service as StateMachine>::Event, _now: Instant) {}

    /// Watcher `w`'s stream ended (`error`: why the node ended it; `None`: it was lost).
    fn watch_ended(&mut self, _w: usize, _error: Option<&ClientError>, _now: Instant) {}

    /// The service's invariants after a step, and at the end of the run.
    ///
    /// # Errors
    /// The checker's name and what is wrong.
    fn check(&mut self, _view: &ServiceView<'_, Self::Service>) -> Result<(), ServiceViolation> {
        Ok(())
    }
}
