//! Settings of a PBFT replica.

use std::time::Duration;

use ballot_core::{ConsensusSettings, NodeId};

use crate::PbftError;

/// How [`Protocol::read`](ballot_core::Protocol::read) serves reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// The read-only optimisation: answer at once from the executed state; the client
    /// needs 2f+1 matching answers and falls back to [`ReadMode::Ordered`] otherwise.
    #[default]
    Fast,
    /// Order a barrier through the protocol first, then answer (f+1 matching answers).
    Ordered,
}

/// Settings of a [`Pbft`](crate::Pbft) replica. Start from [`Config::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This replica's id.
    pub id: NodeId,
    /// K: a checkpoint every this many sequence numbers.
    pub checkpoint_interval: u64,
    /// L: sequence numbers are accepted only in `(h, h + L]`, `h` the stable checkpoint.
    /// At least `2 * checkpoint_interval`, so that the log never stalls waiting for a
    /// checkpoint to become stable.
    pub log_window: u64,
    /// Most items in one batch.
    pub max_batch: usize,
    /// Most item bytes in one batch (a larger single item still goes alone).
    pub max_batch_bytes: usize,
    /// Most batches the primary has pre-prepared and not yet executed; requests beyond
    /// it wait and are batched together.
    pub max_inflight: u64,
    /// A backup waiting this long for a request to execute starts a view change; also
    /// the NEW-VIEW timer. Both double for each view change in a row that executes
    /// nothing.
    pub request_timeout: Duration,
    /// Cap on the timers' back-off: they run at most `request_timeout * 2^max_backoff`.
    /// Without a cap, the view changes of a long outage (each doubling the timer) leave
    /// the cluster waiting minutes for a faulty new primary after the network heals.
    pub max_backoff: u32,
    /// Period of status messages, retransmissions and catch-up checks.
    pub status_interval: Duration,
    /// Largest command accepted.
    pub max_command_size: usize,
    /// Most requests waiting to execute; beyond it `propose` answers `Busy`.
    pub max_pending: usize,
    /// How reads are served.
    pub read_mode: ReadMode,
    /// Agreed time for services with leases: `None` (the default) orders no time.
    pub clock: Option<AgreedClock>,
}

/// Time the replicas agree on (Castro and Liskov's non-deterministic choices, checked
/// by the backups): the primary puts its clock reading first in every batch, as an
/// [`Item::Time`](crate::Item::Time), and orders a batch of time alone when its clock
/// passes the service's next deadline ([`Protocol::time_wanted`](ballot_core::Protocol::time_wanted));
/// a backup accepts a PRE-PREPARE only if that time is at most
/// `max_skew` ahead of its own clock and at most `max_skew` plus the request timeout
/// behind it (the batch was timed before its durable write and its trip). A lying
/// primary can therefore move the agreed time at most `max_skew` ahead of a correct
/// clock, or time a keep-alive up to `max_skew` plus the request timeout late, so a
/// lease ends at most `2 * max_skew + request_timeout` (plus the correct clocks' own
/// differences) earlier than its holder, counting from its keep-alive, expects; with a
/// correct primary, only the clocks' differences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgreedClock {
    /// This replica's clock: milliseconds since the Unix epoch at
    /// [`Instant::ZERO`](ballot_core::Instant::ZERO) of the host's timeline (the host
    /// reads its wall clock once; time then advances with the inputs' `now`).
    pub unix_ms_at_zero: u64,
    /// How far the primary's time may be ahead of a backup's clock.
    pub max_skew: Duration,
    /// While the service still waits for a deadline, the primary orders a batch of time
    /// alone at most once per `heartbeat`.
    pub heartbeat: Duration,
}

impl AgreedClock {
    /// A clock reading `unix_ms_at_zero` at the host's `Instant::ZERO`, with a 500 ms
    /// skew bound and a 500 ms heartbeat.
    #[must_use]
    pub fn new(unix_ms_at_zero: u64) -> Self {
        AgreedClock { unix_ms_at_zero, max_skew: Duration::from_millis(500), heartbeat: Duration::from_millis(500) }
    }

    /// The clock's reading at `now`, in milliseconds since the Unix epoch.
    #[must_use]
    pub fn unix_ms(&self, now: ballot_core::Instant) -> u64 {
        self.unix_ms_at_zero.saturating_add(now.as_nanos() / 1_000_000)
    }
}

impl Config {
    /// Defaults for replica `id`: checkpoints every 128, window 256, batches of up to
    /// 256 items or 1 MiB, 8 batches in flight, 1 s request timeout (NEW-VIEW timer
    /// backing off to at most 8 s), status every 100 ms,
    /// 1 MiB commands, 10 000 pending requests, fast reads.
    #[must_use]
    pub fn new(id: NodeId) -> Self {
        Config {
            id,
            checkpoint_interval: 128,
            log_window: 256,
            max_batch: 256,
            max_batch_bytes: 1 << 20,
            max_inflight: 8,
            request_timeout: Duration::from_secs(1),
            max_backoff: 3,
            status_interval: Duration::from_millis(100),
            max_command_size: 1 << 20,
            max_pending: 10_000,
            read_mode: ReadMode::Fast,
            clock: None,
        }
    }

    /// Defaults for replica `id` with a server's shared settings: the request timeout
    /// (a backup's wait for the primary) is the election timeout, the status and
    /// retransmission period the heartbeat.
    #[must_use]
    pub fn from_settings(id: NodeId, settings: &ConsensusSettings) -> Self {
        let mut config = Self::new(id);
        config.request_timeout = settings.election_timeout;
        config.status_interval = settings.heartbeat;
        config.max_command_size = settings.max_command_size;
        config
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`PbftError::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<(), PbftError> {
        let bad = |field, reason| Err(PbftError::InvalidConfig { field, reason });
        if self.id.0 == 0 {
            return bad("id", "must not be 0");
        }
        if self.checkpoint_interval == 0 {
            return bad("checkpoint_interval", "must be positive");
        }
        if self.log_window < 2 * self.checkpoint_interval {
            return bad("log_window", "must be at least twice checkpoint_interval");
        }
        if self.max_batch == 0 || self.max_inflight == 0 {
            return bad("max_batch", "max_batch and max_inflight must be positive");
        }
        if self.request_timeout.is_zero() || self.status_interval.is_zero() {
            return bad("request_timeout", "timeouts must be positive");
        }
        if self.clock.is_some_and(|c| c.heartbeat.is_zero()) {
            return bad("clock", "the heartbeat must be positive");
        }
        Ok(())
    }
}
