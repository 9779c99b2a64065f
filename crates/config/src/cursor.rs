//! Where a resumable watch stands: shared by `ballot-client` and the simulator, so the
//! resume rule users rely on is the one the simulator checks.

use ballot_core::service::Rejection;

use crate::{ConfigEvent, ConfigRequest};

/// A watch that survives reconnects: it remembers the next revision it wants, asks for
/// the stream from there, and drops events it already delivered (a new stream may replay
/// some).
///
/// ```
/// use ballot_config::{ConfigEvent, EventKind, WatchCursor};
///
/// let mut cursor = WatchCursor::new("app", "db.", true, 5);
/// let event = |revision| ConfigEvent {
///     revision,
///     kind: EventKind::Put,
///     namespace: "app".into(),
///     key: "db.url".into(),
///     value: "x".into(),
/// };
/// assert!(cursor.accept(&event(5)));
/// assert!(!cursor.accept(&event(5)), "a replayed event is delivered once");
/// assert_eq!(cursor.next_revision(), 6);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchCursor {
    namespace: String,
    key_or_prefix: String,
    prefix: bool,
    next_revision: u64,
}

impl WatchCursor {
    /// A watch of `namespace`'s `key_or_prefix` (a prefix if `prefix`) from
    /// `start_revision` (at least 1).
    #[must_use]
    pub fn new(namespace: &str, key_or_prefix: &str, prefix: bool, start_revision: u64) -> Self {
        WatchCursor {
            namespace: namespace.to_owned(),
            key_or_prefix: key_or_prefix.to_owned(),
            prefix,
            next_revision: start_revision.max(1),
        }
    }

    /// The request that (re)opens the stream where the watch stands.
    #[must_use]
    pub fn request(&self) -> ConfigRequest {
        ConfigRequest::Watch {
            namespace: self.namespace.clone(),
            key_or_prefix: self.key_or_prefix.clone(),
            prefix: self.prefix,
            start_revision: self.next_revision,
        }
    }

    /// The lowest revision the next event may have.
    #[must_use]
    pub fn next_revision(&self) -> u64 {
        self.next_revision
    }

    /// Whether `event` is new (and so to be delivered); advances past it if so.
    pub fn accept(&mut self, event: &ConfigEvent) -> bool {
        if event.revision < self.next_revision {
            return false;
        }
        self.next_revision = event.revision + 1;
        true
    }

    /// The history the watch wants was compacted: continue from the oldest revision
    /// still kept (changes in between are lost to this watch; re-read the state).
    /// Returns where the watch now stands, or `None` if `rejection` is not a compaction.
    pub fn skip_compacted(&mut self, rejection: &Rejection) -> Option<u64> {
        let Rejection::Compacted { compact_revision } = rejection else { return None };
        self.next_revision = self.next_revision.max(*compact_revision);
        Some(self.next_revision)
    }
}
