//! Column family names and key encoding. `docs/storage.md` describes the layout.

/// Log entries: key = index as big-endian `u64`, value = the encoded entry.
pub(crate) const CF_LOG: &str = "log";
/// Hard state: one key, [`HARD_STATE_KEY`].
pub(crate) const CF_HARD_STATE: &str = "hard_state";
/// Snapshot: a header and the data in chunks.
pub(crate) const CF_SNAPSHOT: &str = "snapshot";
/// Store metadata: format version and creation info.
pub(crate) const CF_META: &str = "meta";
/// The service state machine's data and its applied index.
pub(crate) const CF_STATE: &str = "state";

/// Every column family of the store, besides RocksDB's mandatory `default` (left empty).
pub(crate) const ALL_CFS: [&str; 5] = [CF_LOG, CF_HARD_STATE, CF_SNAPSHOT, CF_META, CF_STATE];

pub(crate) const HARD_STATE_KEY: &[u8] = b"hard_state";

pub(crate) const META_FORMAT_VERSION: &[u8] = b"format_version";
pub(crate) const META_CREATED_BY: &[u8] = b"created_by";
pub(crate) const META_CREATED_AT: &[u8] = b"created_at_unix_ms";

/// Snapshot header: `[b'h']`. Chunks: `[b'c'] ++ generation (BE u64) ++ chunk number (BE u64)`.
pub(crate) const SNAPSHOT_HEADER_KEY: &[u8] = b"h";
const SNAPSHOT_CHUNK_TAG: u8 = b'c';

/// Service state: the applied index at `[0x00] ++ "applied_index"`; service keys at
/// `[0x01] ++ key`, so the whole service keyspace is the range `[0x01, 0x02)`.
pub(crate) const STATE_APPLIED_KEY: &[u8] = b"\x00applied_index";
pub(crate) const STATE_DATA_TAG: u8 = 0x01;

/// The log key of `index`.
pub(crate) fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// A key greater than every log key (log keys are 8 bytes; this one is 9).
pub(crate) const LOG_END: [u8; 9] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];

/// The exclusive upper bound for deleting entries `<= upto`.
pub(crate) fn log_key_after(upto: u64) -> Vec<u8> {
    match upto.checked_add(1) {
        Some(next) => log_key(next).to_vec(),
        None => LOG_END.to_vec(),
    }
}

/// Decodes a log key.
pub(crate) fn parse_log_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

pub(crate) fn chunk_key(generation: u64, chunk: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = SNAPSHOT_CHUNK_TAG;
    k[1..9].copy_from_slice(&generation.to_be_bytes());
    k[9..].copy_from_slice(&chunk.to_be_bytes());
    k
}

/// The key range `[start, end)` holding every chunk of `generation`.
pub(crate) fn chunk_range(generation: u64) -> ([u8; 17], Vec<u8>) {
    let start = chunk_key(generation, 0);
    let end = match generation.checked_add(1) {
        Some(g) => chunk_key(g, 0).to_vec(),
        None => vec![SNAPSHOT_CHUNK_TAG + 1],
    };
    (start, end)
}

/// The key range holding the chunks of every generation.
pub(crate) fn all_chunks_range() -> ([u8; 1], [u8; 1]) {
    ([SNAPSHOT_CHUNK_TAG], [SNAPSHOT_CHUNK_TAG + 1])
}

/// Decodes a chunk key into (generation, chunk number).
pub(crate) fn parse_chunk_key(key: &[u8]) -> Option<(u64, u64)> {
    if key.len() != 17 || key[0] != SNAPSHOT_CHUNK_TAG {
        return None;
    }
    Some((u64::from_be_bytes(key[1..9].try_into().ok()?), u64::from_be_bytes(key[9..].try_into().ok()?)))
}

/// The state-CF key of service key `key`.
pub(crate) fn state_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(STATE_DATA_TAG);
    k.extend_from_slice(key);
    k
}

/// The smallest key greater than every key starting with `prefix`, if one exists
/// (none when `prefix` is all `0xff`).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_numerically() {
        let mut keys: Vec<[u8; 8]> = [300u64, 1, u64::MAX, 256, 0].iter().map(|&i| log_key(i)).collect();
        keys.sort();
        let back: Vec<u64> = keys.iter().map(|k| parse_log_key(k).unwrap()).collect();
        assert_eq!(back, vec![0, 1, 256, 300, u64::MAX]);
        assert!(LOG_END.as_slice() > log_key(u64::MAX).as_slice());
        assert_eq!(log_key_after(u64::MAX), LOG_END.to_vec());
        assert_eq!(parse_log_key(&[1, 2, 3]), None);
    }

    #[test]
    fn chunk_keys_round_trip_and_ranges_nest() {
        assert_eq!(parse_chunk_key(&chunk_key(7, 9)), Some((7, 9)));
        let (start, end) = chunk_range(7);
        assert!(chunk_key(7, u64::MAX).as_slice() < end.as_slice());
        assert!(chunk_key(7, 0).as_slice() >= start.as_slice());
        assert!(chunk_key(8, 0).as_slice() >= end.as_slice());
        let (_, end) = chunk_range(u64::MAX);
        assert!(chunk_key(u64::MAX, u64::MAX).as_slice() < end.as_slice());
        assert_eq!(parse_chunk_key(b"h"), None);
    }

    #[test]
    fn prefix_successor_bounds_the_prefix() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
        assert_eq!(prefix_successor(&state_key(&[0xff])), Some(vec![STATE_DATA_TAG + 1]));
    }
}
