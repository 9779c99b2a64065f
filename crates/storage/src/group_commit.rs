//! Group commit for any [`LogStore`]: a writer thread that makes every [`Persist`] batch
//! queued while the previous sync was in flight durable with one `write` (one sync).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use ballot_core::{LogEntry, LogStore, Persist, PersistId, StorageError};

/// What the writer reports after each synced write: every batch up to and including the
/// id is durable, or the store failed (fatal: the writer has stopped).
pub type Ack = Result<PersistId, StorageError>;

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
    failure: Mutex<Option<StorageError>>,
}

impl Shared {
    fn stopped(&self) -> StorageError {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or(StorageError::Closed)
    }
}

/// Owns a [`LogStore`] on a dedicated thread and commits [`Persist`] batches in groups:
/// while one write is in flight, newly submitted batches queue up; the writer then takes
/// everything queued (up to [`GroupCommitOptions::max_group`]) and hands it to ONE
/// [`LogStore::write`] call — one atomic, synced write for the RocksDB store — then calls
/// the acknowledgement callback with the highest [`PersistId`] written. Batches are
/// applied in submission order.
///
/// Runtime-agnostic (std thread and channels): an async driver passes a callback that
/// forwards the [`Ack`] to its runtime, e.g. a channel's non-blocking send.
///
/// **Errors are fatal**: after a failed write the writer reports it once through the
/// callback and stops; later [`submit`](Self::submit) and [`shutdown`](Self::shutdown)
/// calls return that error.
#[derive(Debug)]
pub struct GroupCommit<E, H, S> {
    tx: Option<SyncSender<Persist<E, H>>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<S, StorageError>>>,
}

impl<E: LogEntry, H: Send + 'static, S: LogStore<E, H> + 'static> GroupCommit<E, H, S> {
    /// Starts the writer with default options; `on_durable` runs on the writer thread
    /// after each write.
    ///
    /// # Errors
    /// [`StorageError::Io`] if the thread cannot be spawned.
    pub fn spawn(store: S, on_durable: impl FnMut(Ack) + Send + 'static) -> Result<Self, StorageError> {
        Self::spawn_with(store, GroupCommitOptions::default(), on_durable)
    }

    /// Starts the writer with `options`.
    ///
    /// # Errors
    /// [`StorageError::Io`] if the thread cannot be spawned.
    pub fn spawn_with(
        store: S,
        options: GroupCommitOptions,
        mut on_durable: impl FnMut(Ack) + Send + 'static,
    ) -> Result<Self, StorageError> {
        let (tx, rx) = mpsc::sync_channel(options.queue_capacity);
        let shared = Arc::new(Shared { durable: AtomicU64::new(0), failure: Mutex::new(None) });
        let writer_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ballot-group-commit".into())
            .spawn(move || run(store, &rx, options.max_group, &writer_shared, &mut on_durable))
            .map_err(|e| StorageError::Io(format!("cannot spawn the group-commit writer thread: {e}")))?;
        Ok(GroupCommit { tx: Some(tx), shared, thread: Some(thread) })
    }

    /// Starts the writer with default options and returns the receiving end of a channel
    /// of acknowledgements.
    ///
    /// # Errors
    /// As for [`spawn`](Self::spawn).
    pub fn with_channel(store: S) -> Result<(Self, Receiver<Ack>), StorageError> {
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
    /// The writer's failure once it has failed, [`StorageError::Closed`] after shutdown.
    pub fn submit(&self, batch: Persist<E, H>) -> Result<(), StorageError> {
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
    /// The writer's failure, if it failed.
    pub fn shutdown(mut self) -> Result<S, StorageError> {
        drop(self.tx.take());
        let Some(thread) = self.thread.take() else { return Err(self.shared.stopped()) };
        thread.join().unwrap_or_else(|_| Err(StorageError::Io("the group-commit writer thread panicked".into())))
    }
}

impl<E, H, S> Drop for GroupCommit<E, H, S> {
    /// Closes the queue and waits for the writer to write what was queued.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run<E: LogEntry, H, S: LogStore<E, H>>(
    mut store: S,
    rx: &Receiver<Persist<E, H>>,
    max_group: usize,
    shared: &Shared,
    on_durable: &mut dyn FnMut(Ack),
) -> Result<S, StorageError> {
    let mut group: Vec<Persist<E, H>> = Vec::new();
    while let Ok(first) = rx.recv() {
        group.push(first);
        // Everything that queued up while the previous write was in flight.
        while group.len() < max_group {
            match rx.try_recv() {
                Ok(b) => group.push(b),
                Err(_) => break,
            }
        }
        let last = group.last().map_or(PersistId(0), |b| b.id);
        match store.write(&group) {
            Ok(()) => {
                shared.durable.store(last.0.saturating_add(1), Ordering::Release);
                group.clear();
                on_durable(Ok(last));
            }
            Err(e) => {
                *shared.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.clone());
                on_durable(Err(e.clone()));
                return Err(e);
            }
        }
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballot_core::MemStore;
    use ballot_core::testkit::{TestEntry, TestHardState, entry};

    #[test]
    fn groups_queued_batches_and_acknowledges_in_order() {
        let store: MemStore<TestEntry, TestHardState> = MemStore::new();
        let probe = store.clone();
        let (gc, acks) = GroupCommit::with_channel(store).unwrap();
        for i in 1..=500u64 {
            let mut b = Persist::new(PersistId(i));
            b.entries.push(entry(i, 1));
            gc.submit(b).unwrap();
        }
        let mut last = 0;
        while last < 500 {
            let id = acks.recv().unwrap().unwrap().0;
            assert!(id > last, "acknowledgements increase");
            last = id;
        }
        assert_eq!(gc.durable(), Some(PersistId(500)));
        let mut store = gc.shutdown().unwrap();
        assert_eq!(store.recover().unwrap().entries.len(), 500);
        assert!(probe.write_calls() < 500, "batches were grouped into fewer writes ({})", probe.write_calls());
    }
}
