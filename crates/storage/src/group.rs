//! Group commit: a writer thread that makes every `Persist` batch queued while the
//! previous sync was in flight durable with ONE synced write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use ballot_core::{LogEntry, Persist, PersistId};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result, RocksStore};

/// What the writer reports after each synced write: every batch up to and including the
/// id is durable, or the store failed (fatal: the writer has stopped).
pub type Ack = std::result::Result<PersistId, Arc<Error>>;

/// Tuning of a [`GroupCommit`] writer.
#[derive(Clone, Debug)]
pub struct GroupCommitOptions {
    queue_capacity: usize,
    max_group: usize,
}

impl Default for GroupCommitOptions {
    fn default() -> Self {
        GroupCommitOptions { queue_capacity: 4096, max_group: 1024 }
    }
}

impl GroupCommitOptions {
    /// Default options: a queue of 4096 batches, at most 1024 batches per sync.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many batches may wait in the queue before [`GroupCommit::submit`] blocks.
    #[must_use]
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// The most batches written with one sync.
    #[must_use]
    pub fn max_group(mut self, n: usize) -> Self {
        self.max_group = n.max(1);
        self
    }
}

#[derive(Debug)]
struct Shared {
    /// Highest durable id + 1 (0: none yet).
    durable: AtomicU64,
    failure: Mutex<Option<String>>,
}

impl Shared {
    fn stopped(&self) -> Error {
        Error::WriterStopped(self.failure.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// Owns a [`RocksStore`] on a dedicated thread and commits [`Persist`] batches in groups:
/// while one synced write is in flight, newly submitted batches queue up; the writer then
/// takes everything queued (up to [`GroupCommitOptions::max_group`]) and writes it as ONE
/// atomic, synced `WriteBatch`, then calls the acknowledgement callback with the highest
/// [`PersistId`] written. Batches are applied in submission order.
///
/// Runtime-agnostic: std thread and channels. An async driver passes a callback that
/// forwards the [`Ack`] to its runtime (e.g. a channel's non-blocking send).
///
/// **Errors are fatal**: after a failed write the writer logs it, reports it once through
/// the callback, and stops; later [`submit`](Self::submit) calls and
/// [`shutdown`](Self::shutdown) return [`Error::WriterStopped`] with the cause.
#[derive(Debug)]
pub struct GroupCommit<E, H> {
    tx: Option<SyncSender<Persist<E, H>>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<RocksStore<E, H>>>>,
}

impl<E: LogEntry, H: Serialize + DeserializeOwned + Send + 'static> GroupCommit<E, H> {
    /// Starts the writer with default options; `on_durable` runs on the writer thread
    /// after each synced write.
    ///
    /// # Errors
    /// [`Error::WriterStopped`] if the thread cannot be spawned.
    pub fn spawn(store: RocksStore<E, H>, on_durable: impl FnMut(Ack) + Send + 'static) -> Result<Self> {
        Self::spawn_with(store, GroupCommitOptions::default(), on_durable)
    }

    /// Starts the writer with `options`.
    ///
    /// # Errors
    /// [`Error::WriterStopped`] if the thread cannot be spawned.
    pub fn spawn_with(
        store: RocksStore<E, H>,
        options: GroupCommitOptions,
        mut on_durable: impl FnMut(Ack) + Send + 'static,
    ) -> Result<Self> {
        crate::metrics::describe_metrics();
        let (tx, rx) = mpsc::sync_channel(options.queue_capacity);
        let shared = Arc::new(Shared { durable: AtomicU64::new(0), failure: Mutex::new(None) });
        let writer_shared = Arc::clone(&shared);
        let dir = store.dir().display().to_string();
        let thread = std::thread::Builder::new()
            .name("ballot-storage-writer".into())
            .spawn(move || {
                let span = tracing::info_span!("group_commit", dir = %dir);
                let _enter = span.enter();
                run(store, &rx, options.max_group, &writer_shared, &mut on_durable)
            })
            .map_err(|e| Error::WriterStopped(Some(format!("cannot spawn the writer thread: {e}"))))?;
        Ok(GroupCommit { tx: Some(tx), shared, thread: Some(thread) })
    }

    /// Starts the writer with default options and returns the receiving end of a channel
    /// of acknowledgements.
    ///
    /// # Errors
    /// As for [`spawn`](Self::spawn).
    pub fn with_channel(store: RocksStore<E, H>) -> Result<(Self, Receiver<Ack>)> {
        let (tx, rx) = mpsc::channel();
        let gc = Self::spawn(store, move |ack| {
            let _ = tx.send(ack);
        })?;
        Ok((gc, rx))
    }

    /// Queues `batch` behind every batch submitted before it. Blocks while the queue is
    /// full (backpressure).
    ///
    /// # Errors
    /// [`Error::WriterStopped`] once the writer has failed or been shut down.
    pub fn submit(&self, batch: Persist<E, H>) -> Result<()> {
        let tx = self.tx.as_ref().ok_or_else(|| self.shared.stopped())?;
        match tx.try_send(batch) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(batch)) => tx.send(batch).map_err(|_| self.shared.stopped()),
            Err(TrySendError::Disconnected(_)) => Err(self.shared.stopped()),
        }
    }

    /// The highest id made durable so far, if any.
    #[must_use]
    pub fn durable(&self) -> Option<PersistId> {
        self.shared.durable.load(Ordering::Acquire).checked_sub(1).map(PersistId)
    }

    /// Writes everything queued, stops the writer and returns the store.
    ///
    /// # Errors
    /// [`Error::WriterStopped`] with the cause if the writer failed.
    pub fn shutdown(mut self) -> Result<RocksStore<E, H>> {
        self.stop()
    }

    fn stop(&mut self) -> Result<RocksStore<E, H>> {
        drop(self.tx.take());
        let Some(thread) = self.thread.take() else { return Err(self.shared.stopped()) };
        match thread.join() {
            Ok(r) => r,
            Err(_) => Err(Error::WriterStopped(Some("the writer thread panicked".into()))),
        }
    }
}

impl<E, H> Drop for GroupCommit<E, H> {
    /// Closes the queue and waits for the writer to write what was queued.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run<E: LogEntry, H: Serialize + DeserializeOwned + Send + 'static>(
    mut store: RocksStore<E, H>,
    rx: &Receiver<Persist<E, H>>,
    max_group: usize,
    shared: &Shared,
    on_durable: &mut dyn FnMut(Ack),
) -> Result<RocksStore<E, H>> {
    let mut group: Vec<Persist<E, H>> = Vec::new();
    while let Ok(first) = rx.recv() {
        group.push(first);
        // Everything that queued up while the previous sync was in flight.
        while group.len() < max_group {
            match rx.try_recv() {
                Ok(b) => group.push(b),
                Err(_) => break,
            }
        }
        let last = group.last().map_or(PersistId(0), |b| b.id);
        match store.write_batches(&group) {
            Ok(()) => {
                shared.durable.store(last.0.saturating_add(1), Ordering::Release);
                group.clear();
                on_durable(Ok(last));
            }
            Err(e) => {
                tracing::error!(error = %e, "storage write failed; the group-commit writer stops");
                let msg = e.to_string();
                *shared.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(msg.clone());
                on_durable(Err(Arc::new(e)));
                return Err(Error::WriterStopped(Some(msg)));
            }
        }
    }
    Ok(store)
}
