//! The storage thread: writes `Persist` batches through any [`LogStore`] with group
//! commit, and acknowledges them to the driver.

use std::sync::mpsc as std_mpsc;
use std::thread;

use ballot_core::{LogEntry, LogStore, Persist, PersistId, StorageError};
use tokio::sync::mpsc;

/// An acknowledgement: every batch up to this id is durable, or the store failed.
pub(crate) type Ack = Result<PersistId, String>;

/// Hands batches to the storage thread. Dropping it stops the thread once the queue is
/// written.
pub(crate) struct StorageWorker<E, H> {
    queue: std_mpsc::Sender<Persist<E, H>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl<E: LogEntry, H: Send + 'static> StorageWorker<E, H> {
    /// Starts the thread. It takes everything queued, writes it with one
    /// [`LogStore::write`] call (one sync), and sends the highest id to `acks`: batches
    /// that arrive while a sync is in flight go out together in the next one.
    pub(crate) fn spawn<S: LogStore<E, H> + 'static>(mut store: S, acks: mpsc::UnboundedSender<Ack>) -> Self {
        let (queue, rx) = std_mpsc::channel::<Persist<E, H>>();
        let thread = thread::Builder::new()
            .name("ballot-storage".into())
            .spawn(move || {
                let mut pending = Vec::new();
                while let Ok(first) = rx.recv() {
                    pending.push(first);
                    pending.extend(rx.try_iter());
                    let last = pending.last().map(|b| b.id).expect("non-empty");
                    let result = store.write(&pending);
                    metrics::histogram!("ballot_disk_group_commit_batches").record(pending.len() as f64);
                    pending.clear();
                    let ack = result.map(|()| last).map_err(|e: StorageError| e.to_string());
                    let failed = ack.is_err();
                    if acks.send(ack).is_err() || failed {
                        return;
                    }
                }
            })
            .expect("spawning the storage thread");
        StorageWorker { queue, thread: Some(thread) }
    }

    /// Queues a batch. Returns `false` if the thread has stopped (after a storage error).
    pub(crate) fn submit(&self, batch: Persist<E, H>) -> bool {
        self.queue.send(batch).is_ok()
    }
}

impl<E, H> Drop for StorageWorker<E, H> {
    fn drop(&mut self) {
        // Close the queue so the thread finishes the writes already queued, then wait.
        let (closed, _) = std_mpsc::channel();
        drop(std::mem::replace(&mut self.queue, closed));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
