//! The replicated key-value service each simulated node runs on top of consensus, and
//! the command encoding clients propose.

use std::collections::BTreeMap;
use std::fmt;

use ballot_core::Snapshot;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::SimError;

/// Keys and values are small integers: cheap to model-check, and every written value is
/// unique within a run so that a read identifies the write it observed.
pub type Key = u64;
/// See [`Key`].
pub type Value = u64;

/// What a client asks of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvInput {
    /// Read the value.
    Get,
    /// Set the value.
    Put(Value),
    /// Set the value to `new` if it currently is `expected` (`None`: absent).
    Cas {
        /// The value the key must hold.
        expected: Option<Value>,
        /// The value to store.
        new: Value,
    },
    /// Remove the key.
    Delete,
}

/// What the service answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvOutput {
    /// A read's result.
    Value(Option<Value>),
    /// A put or delete took effect.
    Done,
    /// Whether a compare-and-swap matched (and so took effect).
    Swapped(bool),
}

impl fmt::Display for KvInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvInput::Get => write!(f, "get()"),
            KvInput::Put(v) => write!(f, "put({v})"),
            KvInput::Cas { expected, new } => write!(f, "cas({expected:?} -> {new})"),
            KvInput::Delete => write!(f, "delete()"),
        }
    }
}

/// A command as replicated through the log: the client operation's id (unique within a
/// run, so the simulator can tell which operation a committed command belongs to), the
/// key and the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvCommand {
    /// The client operation ([`OpId`](crate::OpId)) this command carries out.
    pub op: u64,
    /// The key.
    pub key: Key,
    /// What to do.
    pub input: KvInput,
}

impl KvCommand {
    /// The wire form proposed to consensus.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        // Serializing plain integers and enums into a Vec cannot fail.
        Bytes::from(postcard::to_allocvec(self).unwrap_or_default())
    }

    /// Parses a committed command.
    ///
    /// # Errors
    /// [`SimError::Decode`] if `bytes` is not a command this simulator proposed.
    pub fn decode(bytes: &[u8]) -> Result<KvCommand, SimError> {
        postcard::from_bytes(bytes).map_err(|e| SimError::Decode { what: "KV command", detail: e.to_string() })
    }
}

#[derive(Serialize, Deserialize)]
struct KvSnapshot {
    index: u64,
    entries: Vec<(Key, Value)>,
}

/// The state machine: a map applied to in log order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    map: BTreeMap<Key, Value>,
    applied: u64,
}

impl KvStore {
    /// An empty store that has applied nothing.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The last log index applied (or restored).
    #[must_use]
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The value of `key`.
    #[must_use]
    pub fn get(&self, key: Key) -> Option<Value> {
        self.map.get(&key).copied()
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (Key, Value)> + '_ {
        self.map.iter().map(|(&k, &v)| (k, v))
    }

    /// Applies `command`, committed at `index`, and returns the client's answer.
    pub fn apply(&mut self, index: u64, command: &KvCommand) -> KvOutput {
        self.applied = index;
        let key = command.key;
        match command.input {
            KvInput::Get => KvOutput::Value(self.get(key)),
            KvInput::Put(v) => {
                self.map.insert(key, v);
                KvOutput::Done
            }
            KvInput::Cas { expected, new } => {
                let hit = self.get(key) == expected;
                if hit {
                    self.map.insert(key, new);
                }
                KvOutput::Swapped(hit)
            }
            KvInput::Delete => {
                self.map.remove(&key);
                KvOutput::Done
            }
        }
    }

    /// Notes that a protocol-internal entry at `index` was applied.
    pub fn skip(&mut self, index: u64) {
        self.applied = index;
    }

    /// Serializes the state (including the applied index, as a consistency check on
    /// restore).
    #[must_use]
    pub fn snapshot(&self) -> Bytes {
        let s = KvSnapshot { index: self.applied, entries: self.iter().collect() };
        Bytes::from(postcard::to_allocvec(&s).unwrap_or_default())
    }

    /// Replaces the state with `snapshot`'s.
    ///
    /// # Errors
    /// [`SimError::Decode`] if the data is not a KV snapshot, or was taken at a
    /// different index than its metadata claims.
    pub fn restore(&mut self, snapshot: &Snapshot) -> Result<(), SimError> {
        let s: KvSnapshot = postcard::from_bytes(&snapshot.data)
            .map_err(|e| SimError::Decode { what: "KV snapshot", detail: e.to_string() })?;
        if s.index != snapshot.meta.index {
            return Err(SimError::Decode {
                what: "KV snapshot",
                detail: format!(
                    "the data was taken at index {} but the snapshot metadata says {}",
                    s.index, snapshot.meta.index
                ),
            });
        }
        self.map = s.entries.into_iter().collect();
        self.applied = s.index;
        Ok(())
    }

    /// A deterministic fingerprint of the contents (FNV-1a), for comparing replicas.
    #[must_use]
    pub fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (k, v) in self.iter() {
            for b in k.to_le_bytes().into_iter().chain(v.to_le_bytes()) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use ballot_core::SnapshotMeta;

    use super::*;

    fn cmd(key: Key, input: KvInput) -> KvCommand {
        KvCommand { op: 0, key, input }
    }

    #[test]
    fn applies_operations() {
        let mut kv = KvStore::new();
        assert_eq!(kv.apply(1, &cmd(1, KvInput::Put(10))), KvOutput::Done);
        assert_eq!(kv.apply(2, &cmd(1, KvInput::Cas { expected: Some(9), new: 11 })), KvOutput::Swapped(false));
        assert_eq!(kv.apply(3, &cmd(1, KvInput::Cas { expected: Some(10), new: 12 })), KvOutput::Swapped(true));
        assert_eq!(kv.apply(4, &cmd(1, KvInput::Get)), KvOutput::Value(Some(12)));
        assert_eq!(kv.apply(5, &cmd(1, KvInput::Delete)), KvOutput::Done);
        assert_eq!(kv.apply(6, &cmd(1, KvInput::Cas { expected: None, new: 1 })), KvOutput::Swapped(true));
        assert_eq!(kv.applied(), 6);
        assert_eq!(kv.get(1), Some(1));
    }

    #[test]
    fn command_round_trips_and_garbage_is_an_error() {
        let c = KvCommand { op: 77, key: 3, input: KvInput::Cas { expected: None, new: 5 } };
        assert_eq!(KvCommand::decode(&c.encode()), Ok(c));
        assert!(matches!(KvCommand::decode(&[0xff, 0xff, 0xff]), Err(SimError::Decode { .. })));
    }

    #[test]
    fn snapshot_restores_and_checks_its_index() {
        let mut kv = KvStore::new();
        kv.apply(1, &cmd(1, KvInput::Put(10)));
        kv.apply(2, &cmd(2, KvInput::Put(20)));
        let snap = Snapshot { meta: SnapshotMeta { index: 2, ..SnapshotMeta::default() }, data: kv.snapshot() };
        let mut other = KvStore::new();
        other.restore(&snap).expect("restore");
        assert_eq!(other, kv);
        assert_eq!(other.digest(), kv.digest());
        assert_ne!(KvStore::new().digest(), kv.digest());

        let wrong = Snapshot { meta: SnapshotMeta { index: 3, ..SnapshotMeta::default() }, data: kv.snapshot() };
        assert!(other.restore(&wrong).is_err());
        let garbage = Snapshot { meta: SnapshotMeta::default(), data: Bytes::from_static(b"\xff\xff\xff\xff") };
        assert!(other.restore(&garbage).is_err());
    }
}
