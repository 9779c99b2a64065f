//! The revisioned key-value map: the data structure behind the database, reusable by
//! other services (the configuration service keeps its keys in one).

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{Compare, KeyValue, KvError, MAX_RANGE_BYTES};

/// The snapshot format this version writes and reads.
const SNAPSHOT_FORMAT: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    value: Bytes,
    create_revision: u64,
    mod_revision: u64,
    version: u64,
}

/// An ordered map from byte keys to byte values with etcd's revision bookkeeping: a
/// global revision that increases by one per state-changing operation, and per key a
/// `create_revision`, `mod_revision` and `version`.
///
/// Methods do not check size limits: the service layer ([`StateMachine::validate`])
/// does. Every method is deterministic; none panics on any input.
///
/// [`StateMachine::validate`]: ballot_core::service::StateMachine::validate
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    revision: u64,
    map: BTreeMap<Bytes, Entry>,
}

/// One page of a [`KvStore::range`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangePage {
    /// The keys of the page, in byte order.
    pub kvs: Vec<KeyValue>,
    /// Whether keys after the last one returned also match.
    pub more: bool,
    /// How many keys match the prefix in all (whatever the cursor and limit).
    pub count: u64,
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    revision: u64,
    map: &'a BTreeMap<Bytes, Entry>,
}

#[derive(Deserialize)]
struct SnapshotOwned {
    revision: u64,
    map: BTreeMap<Bytes, Entry>,
}

impl KvStore {
    /// An empty store at revision 0.
    #[must_use]
    pub fn new() -> Self {
        KvStore::default()
    }

    /// The current revision: how many state-changing operations were applied.
    #[must_use]
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// How many keys are stored.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The key's current value and metadata.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<KeyValue> {
        self.map.get_key_value(key).map(|(k, e)| key_value(k, e))
    }

    /// Every key in byte order.
    pub fn iter(&self) -> impl Iterator<Item = KeyValue> + '_ {
        self.map.iter().map(|(k, e)| key_value(k, e))
    }

    /// Sets `key` to `value` at a new revision; returns the previous value, if any.
    pub fn put(&mut self, key: Bytes, value: Bytes) -> Option<KeyValue> {
        self.revision += 1;
        let revision = self.revision;
        if let Some(entry) = self.map.get_mut(&key[..]) {
            let old = std::mem::replace(&mut entry.value, value);
            let prev = KeyValue {
                key,
                value: old,
                create_revision: entry.create_revision,
                mod_revision: entry.mod_revision,
                version: entry.version,
            };
            entry.mod_revision = revision;
            entry.version += 1;
            Some(prev)
        } else {
            self.map.insert(key, Entry { value, create_revision: revision, mod_revision: revision, version: 1 });
            None
        }
    }

    /// Removes `key`; a removal is a new revision, a missing key changes nothing.
    /// Returns the removed value, if any.
    pub fn delete(&mut self, key: &[u8]) -> Option<KeyValue> {
        let (key, entry) = self.map.remove_entry(key)?;
        self.revision += 1;
        Some(key_value_owned(key, entry))
    }

    /// Removes every key starting with `prefix`, all at one new revision (none if no key
    /// matches). Returns how many keys were removed.
    pub fn delete_prefix(&mut self, prefix: &[u8]) -> u64 {
        let end = prefix_end(prefix);
        let keys: Vec<Bytes> =
            self.map.range::<[u8], _>(bounds(prefix, end.as_deref())).map(|(k, _)| k.clone()).collect();
        for key in &keys {
            self.map.remove(key);
        }
        if !keys.is_empty() {
            self.revision += 1;
        }
        keys.len() as u64
    }

    /// Whether `compare` holds for `key` now. A missing key has version and
    /// mod revision 0 and equals no value.
    #[must_use]
    pub fn compare(&self, key: &[u8], compare: &Compare) -> bool {
        let entry = self.map.get(key);
        match compare {
            Compare::Value(v) => entry.is_some_and(|e| e.value == *v),
            Compare::ModRevision(r) => entry.map_or(0, |e| e.mod_revision) == *r,
            Compare::Version(v) => entry.map_or(0, |e| e.version) == *v,
            Compare::Absent => entry.is_none(),
        }
    }

    /// The keys starting with `prefix` (every key for an empty prefix) in byte order,
    /// strictly after `after` if given, at most `limit` of them, and stopping early once
    /// the page holds more than [`MAX_RANGE_BYTES`] of keys and values (a page always holds
    /// at least one key if any is left).
    #[must_use]
    pub fn range(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> RangePage {
        let end = prefix_end(prefix);
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        // `BTreeMap::range` panics on an empty or inverted range: rule those out first.
        let empty = match (start, end.as_deref()) {
            (Bound::Excluded(s) | Bound::Included(s), Some(e)) => s >= e,
            _ => false,
        };
        let mut kvs = Vec::new();
        let mut more = false;
        if !empty {
            let end_bound = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let mut bytes = 0usize;
            for (k, e) in self.map.range::<[u8], _>((start, end_bound)) {
                let size = k.len() + e.value.len();
                if kvs.len() >= limit || (!kvs.is_empty() && bytes + size > MAX_RANGE_BYTES) {
                    more = true;
                    break;
                }
                bytes += size;
                kvs.push(key_value(k, e));
            }
        }
        let count = if more || after.is_some() {
            self.map.range::<[u8], _>(bounds(prefix, end.as_deref())).count() as u64
        } else {
            kvs.len() as u64
        };
        RangePage { kvs, more, count }
    }

    /// Serializes the whole store (format byte, then postcard).
    #[must_use]
    pub fn to_snapshot(&self) -> Vec<u8> {
        postcard::to_extend(&SnapshotRef { revision: self.revision, map: &self.map }, vec![SNAPSHOT_FORMAT])
            .expect("serializing plain data into memory cannot fail")
    }

    /// Decodes a store written by [`to_snapshot`](Self::to_snapshot), checking that it is
    /// consistent.
    ///
    /// # Errors
    /// [`KvError`] if the bytes do not decode or describe an impossible store.
    pub fn from_snapshot(data: &[u8]) -> Result<Self, KvError> {
        let snap: SnapshotOwned = decode_snapshot(SNAPSHOT_FORMAT, data)?;
        for (key, e) in &snap.map {
            if key.is_empty() {
                return Err(KvError::CorruptSnapshot("an empty key".into()));
            }
            if e.version == 0
                || e.create_revision == 0
                || e.create_revision > e.mod_revision
                || e.mod_revision > snap.revision
            {
                return Err(KvError::CorruptSnapshot(format!(
                    "key {:?} has impossible metadata (create {}, mod {}, version {}) at revision {}",
                    String::from_utf8_lossy(key),
                    e.create_revision,
                    e.mod_revision,
                    e.version,
                    snap.revision
                )));
            }
        }
        Ok(KvStore { revision: snap.revision, map: snap.map })
    }
}

/// Decodes `data` as a format byte equal to `format` followed by exactly one postcard `T`.
///
/// # Errors
/// [`KvError`] for a missing or unknown format byte, undecodable or trailing bytes.
pub(crate) fn decode_snapshot<T: serde::de::DeserializeOwned>(format: u8, data: &[u8]) -> Result<T, KvError> {
    let (&found, rest) = data.split_first().ok_or(KvError::CorruptSnapshot("the snapshot is empty".into()))?;
    if found != format {
        return Err(KvError::SnapshotFormat { found, supported: format });
    }
    let (value, trailing) = postcard::take_from_bytes(rest)?;
    if !trailing.is_empty() {
        return Err(KvError::CorruptSnapshot(format!("{} trailing bytes", trailing.len())));
    }
    Ok(value)
}

fn key_value(key: &Bytes, e: &Entry) -> KeyValue {
    KeyValue {
        key: key.clone(),
        value: e.value.clone(),
        create_revision: e.create_revision,
        mod_revision: e.mod_revision,
        version: e.version,
    }
}

fn key_value_owned(key: Bytes, e: Entry) -> KeyValue {
    KeyValue {
        key,
        value: e.value,
        create_revision: e.create_revision,
        mod_revision: e.mod_revision,
        version: e.version,
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None` if there is
/// none (an empty prefix, or one of only `0xff` bytes).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

fn bounds<'a>(prefix: &'a [u8], end: Option<&'a [u8]>) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (Bound::Included(prefix), end.map_or(Bound::Unbounded, Bound::Excluded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn revisions_and_versions() {
        let mut s = KvStore::new();
        assert_eq!(s.put(b("a"), b("1")), None);
        assert_eq!(s.put(b("b"), b("1")), None);
        let prev = s.put(b("a"), b("2")).expect("a existed");
        assert_eq!((prev.value, prev.create_revision, prev.mod_revision, prev.version), (b("1"), 1, 1, 1));
        let a = s.get(b"a").expect("a exists");
        assert_eq!((a.create_revision, a.mod_revision, a.version, s.revision()), (1, 3, 2, 3));
        assert_eq!(s.delete(b"missing"), None);
        assert_eq!(s.revision(), 3, "deleting a missing key is not a change");
        assert_eq!(s.delete(b"a").map(|kv| kv.version), Some(2));
        assert_eq!(s.revision(), 4);
        s.put(b("a"), b("3"));
        let a = s.get(b"a").expect("recreated");
        assert_eq!((a.create_revision, a.version), (5, 1), "a recreated key starts over");
    }

    #[test]
    fn range_edge_cursors_do_not_panic() {
        let mut s = KvStore::new();
        for k in ["a", "ab", "b", "ba"] {
            s.put(b(k), b("v"));
        }
        let keys = |p: &RangePage| p.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&s.range(b"a", Some(b"b"), 10)), Vec::<Bytes>::new(), "cursor at the prefix end");
        assert_eq!(keys(&s.range(b"a", Some(b"zz"), 10)), Vec::<Bytes>::new(), "cursor past the prefix end");
        assert_eq!(keys(&s.range(b"a", Some(b""), 10)), vec![b("a"), b("ab")], "cursor before the prefix");
        assert_eq!(keys(&s.range(b"", Some(b"ab"), 10)), vec![b("b"), b("ba")]);
        assert_eq!(keys(&s.range(&[0xff], None, 10)), Vec::<Bytes>::new());
        let p = s.range(b"", None, 0);
        assert!(p.kvs.is_empty() && p.more && p.count == 4);
    }

    #[test]
    fn range_stops_at_the_byte_budget() {
        let mut s = KvStore::new();
        let big = Bytes::from(vec![7u8; MAX_RANGE_BYTES / 2]);
        for k in ["k1", "k2", "k3"] {
            s.put(b(k), big.clone());
        }
        let page = s.range(b"k", None, 100);
        assert_eq!(page.kvs.len(), 1, "two halves plus keys exceed the budget");
        assert!(page.more);
        assert_eq!(page.count, 3);
        let huge = Bytes::from(vec![1u8; MAX_RANGE_BYTES + 1]);
        s.put(b("h"), huge);
        assert_eq!(s.range(b"h", None, 10).kvs.len(), 1, "a single oversized key still makes progress");
    }

    #[test]
    fn snapshot_roundtrip_and_corruption() {
        let mut s = KvStore::new();
        s.put(b("x"), b("1"));
        s.put(b("y"), b("2"));
        s.delete(b"x");
        let snap = s.to_snapshot();
        assert_eq!(KvStore::from_snapshot(&snap).expect("decodes"), s);
        assert!(matches!(KvStore::from_snapshot(&[]), Err(KvError::CorruptSnapshot(_))));
        assert!(matches!(KvStore::from_snapshot(&[9]), Err(KvError::SnapshotFormat { found: 9, supported: 1 })));
        let mut trailing = snap.clone();
        trailing.push(0);
        assert!(matches!(KvStore::from_snapshot(&trailing), Err(KvError::CorruptSnapshot(_))));
        assert!(matches!(KvStore::from_snapshot(&snap[..snap.len() - 1]), Err(KvError::SnapshotDecode(_))));
        // A key modified after the store's revision is impossible.
        let bad = SnapshotRef {
            revision: 1,
            map: &BTreeMap::from([(b("k"), Entry { value: b("v"), create_revision: 1, mod_revision: 2, version: 2 })]),
        };
        let mut data = vec![SNAPSHOT_FORMAT];
        data.extend(postcard::to_stdvec(&bad).expect("encodes"));
        assert!(matches!(KvStore::from_snapshot(&data), Err(KvError::CorruptSnapshot(_))));
    }
}
