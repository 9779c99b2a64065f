//! The exactly-once sessions a client's calls are made in.

use ballot_core::service::Session;

/// Hands out sessions to calls. A session's writes must reach the cluster in sequence
/// order (the session table calls an older sequence number stale), so calls that run
/// at the same time each take a session of their own; a finished call gives its session
/// back, and the next call continues it with the next sequence number.
#[derive(Clone, Debug)]
pub struct SessionPool {
    own: u64,
    own_used: bool,
    idle: Vec<Session>,
}

impl SessionPool {
    /// A pool whose first session has the client id `own`.
    #[must_use]
    pub fn new(own: u64) -> Self {
        SessionPool { own, own_used: false, idle: Vec::new() }
    }

    /// The client id of the pool's first session.
    #[must_use]
    pub fn own_client(&self) -> u64 {
        self.own
    }

    /// The session for the next call: an idle one with its sequence number advanced;
    /// else, the first time, the one under the pool's own id; else a new one under
    /// `fresh_client()`.
    pub fn take(&mut self, fresh_client: impl FnOnce() -> u64) -> Session {
        match self.idle.pop() {
            Some(s) => Session { client: s.client, seq: s.seq + 1 },
            None if !self.own_used => {
                self.own_used = true;
                Session { client: self.own, seq: 1 }
            }
            None => Session { client: fresh_client(), seq: 1 },
        }
    }

    /// A call finished with `session`: it may be continued. A call that was cancelled
    /// must not give its session back (its write may still apply later).
    pub fn give_back(&mut self, session: Session) {
        self.idle.push(session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_calls_get_distinct_sessions_and_finished_ones_continue() {
        let mut pool = SessionPool::new(7);
        let a = pool.take(|| 100);
        let b = pool.take(|| 200);
        assert_eq!((a, b), (Session { client: 7, seq: 1 }, Session { client: 200, seq: 1 }));
        pool.give_back(a);
        assert_eq!(pool.take(|| 300), Session { client: 7, seq: 2 });
    }
}
