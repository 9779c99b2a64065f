//! A client's view of the cluster, shared by all its calls.

use std::collections::HashMap;
use std::hash::Hash;

use ballot_core::Instant;

/// The state of the client's connection to one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// No connection and none being made.
    Idle,
    /// A connection is being made; it counts as failed after `until`.
    Connecting {
        /// When the attempt is given up.
        until: Instant,
    },
    /// Connected: requests can be sent.
    Up,
    /// The last attempt failed; not tried again before `until`.
    Down {
        /// When the node may be tried again.
        until: Instant,
    },
}

/// The nodes a client knows, its connections to them and the leader it last heard of.
///
/// The host reports connection events ([`connected`](Self::connected),
/// [`connect_failed`](Self::connect_failed), [`disconnected`](Self::disconnected));
/// [`Call`](crate::Call)s read and update the rest.
#[derive(Clone, Debug)]
pub struct Endpoints<A> {
    nodes: Vec<A>,
    links: HashMap<A, Link>,
    leader: Option<A>,
    last_failure: Option<String>,
}

impl<A: Clone + Eq + Hash> Endpoints<A> {
    /// The configured nodes, in the order they are tried when nothing else is known.
    #[must_use]
    pub fn new(nodes: Vec<A>) -> Self {
        let links = nodes.iter().map(|n| (n.clone(), Link::Idle)).collect();
        Endpoints { nodes, links, leader: None, last_failure: None }
    }

    /// The configured nodes (and leaders learned from redirects), in order.
    #[must_use]
    pub fn nodes(&self) -> &[A] {
        &self.nodes
    }

    /// The leader the client last heard of.
    #[must_use]
    pub fn leader(&self) -> Option<&A> {
        self.leader.as_ref()
    }

    /// The state of the connection to `node` (`Idle` for an unknown node).
    #[must_use]
    pub fn link(&self, node: &A) -> Link {
        self.links.get(node).copied().unwrap_or(Link::Idle)
    }

    /// A connection to `node` is up.
    pub fn connected(&mut self, node: A) {
        self.add(&node);
        self.links.insert(node, Link::Up);
    }

    /// Why the last connection attempt failed, if one did.
    #[must_use]
    pub fn last_failure(&self) -> Option<&str> {
        self.last_failure.as_deref()
    }

    /// Connecting to `node` failed at `now` because of `reason`; it is not tried again
    /// for `retry_after`.
    pub fn connect_failed(&mut self, now: Instant, node: A, retry_after: std::time::Duration, reason: String) {
        self.last_failure = Some(reason);
        if self.leader.as_ref() == Some(&node) {
            self.leader = None;
        }
        self.add(&node);
        self.links.insert(node, Link::Down { until: now + retry_after });
    }

    /// The connection to `node` was lost or closed; the next call reconnects.
    pub fn disconnected(&mut self, node: &A) {
        if let Some(link) = self.links.get_mut(node) {
            *link = Link::Idle;
        }
    }

    /// Whether `node` can be sent to now.
    #[must_use]
    pub fn is_up(&self, node: &A) -> bool {
        self.link(node) == Link::Up
    }

    pub(crate) fn set_leader(&mut self, leader: Option<A>) {
        if let Some(l) = &leader {
            self.add(l);
        }
        self.leader = leader;
    }

    pub(crate) fn start_connecting(&mut self, node: &A, until: Instant) {
        self.links.insert(node.clone(), Link::Connecting { until });
    }

    /// Marks connections that took too long, and down nodes whose pause is over, as
    /// worth trying again.
    pub(crate) fn expire(&mut self, now: Instant, retry_after: std::time::Duration) {
        for link in self.links.values_mut() {
            match *link {
                Link::Connecting { until } if until <= now => {
                    *link = Link::Down { until: now + retry_after };
                    self.last_failure.get_or_insert_with(|| "connecting timed out".to_owned());
                }
                Link::Down { until } if until <= now => *link = Link::Idle,
                _ => {}
            }
        }
    }

    /// A node learned from a redirect joins the rotation.
    fn add(&mut self, node: &A) {
        if !self.nodes.contains(node) {
            self.nodes.push(node.clone());
            self.links.insert(node.clone(), Link::Idle);
        }
    }
}
