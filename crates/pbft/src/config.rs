//! Settings of a PBFT replica.

use std::time::Duration;

use ballot_core::NodeId;

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
    /// A backup waiting this long for a request to execute starts a view change; also the
    /// base of the NEW-VIEW timer, doubled for each view change that does not complete.
    pub request_timeout: Duration,
    /// Period of status messages, retransmissions and catch-up checks.
    pub status_interval: Duration,
    /// Largest command accepted.
    pub max_command_size: usize,
    /// Most requests waiting to execute; beyond it `propose` answers `Busy`.
    pub max_pending: usize,
    /// How reads are served.
    pub read_mode: ReadMode,
}

impl Config {
    /// Defaults for replica `id`: checkpoints every 128, window 256, batches of up to
    /// 256 items or 1 MiB, 8 batches in flight, 1 s request timeout, status every 100 ms,
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
            status_interval: Duration::from_millis(100),
            max_command_size: 1 << 20,
            max_pending: 10_000,
            read_mode: ReadMode::Fast,
        }
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
        Ok(())
    }
}
