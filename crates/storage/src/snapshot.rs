//! Snapshots stored in chunks: written atomically with a `Persist` batch, or streamed in
//! chunk by chunk and read back chunk by chunk, never as one giant value.

use std::sync::Arc;

use ballot_core::SnapshotMeta;
use bytes::{Bytes, BytesMut};
use rocksdb::{ColumnFamily, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::db::{Db, SnapState};
use crate::keys::{self, CF_SNAPSHOT};
use crate::{Error, Result, codec};

/// The largest chunk a snapshot is stored in (1 MiB). [`SnapshotReader`] yields chunks of
/// at most this size.
pub const SNAPSHOT_CHUNK_SIZE: usize = 1 << 20;

/// The largest initial allocation made from a length read from disk.
const MAX_PREALLOC: u64 = 64 << 20;

/// The stored description of the live snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) meta: SnapshotMeta,
    /// Which chunk keys hold the data.
    pub(crate) generation: u64,
    /// How many chunks.
    pub(crate) chunks: u64,
    /// Total data length in bytes.
    pub(crate) len: u64,
}

pub(crate) fn read_header(db: &Db) -> Result<Option<Header>> {
    match db.get(CF_SNAPSHOT, keys::SNAPSHOT_HEADER_KEY)? {
        None => Ok(None),
        Some(v) => codec::decode(&v).map(Some).map_err(|e| db.corrupt("snapshot header", e)),
    }
}

/// Validates the stored snapshot's chunks, removes chunks left by an interrupted
/// streaming install, and initialises the generation counter. Runs at open.
pub(crate) fn init(db: &Db) -> Result<()> {
    let header = read_header(db)?;
    let cf = db.cf(CF_SNAPSHOT)?;
    let mut it = db.db.raw_iterator_cf(cf);
    let chunk_at = |it: &rocksdb::DBRawIterator<'_>| it.key().and_then(keys::parse_chunk_key);
    let (all_start, all_end) = keys::all_chunks_range();
    if let Some(h) = &header {
        let (start, end) = keys::chunk_range(h.generation);
        it.seek(start);
        let first = chunk_at(&it);
        it.seek_for_prev(&end);
        let last = chunk_at(&it);
        let ok = match h.chunks {
            0 => first.is_none_or(|(g, _)| g != h.generation),
            n => first == Some((h.generation, 0)) && last == Some((h.generation, n - 1)),
        };
        if !ok {
            return Err(db.corrupt(
                "snapshot chunks",
                format!(
                    "the header of the snapshot at index {} names {} chunks of generation {}, found first {first:?}, \
                     last {last:?}",
                    h.meta.index, h.chunks, h.generation
                ),
            ));
        }
    }
    it.seek(all_start);
    let lowest = chunk_at(&it);
    it.seek_for_prev(all_end);
    let highest = chunk_at(&it);
    it.status().map_err(|e| Error::db(&db.dir, e))?;
    drop(it);
    let live = header.as_ref().map(|h| h.generation);
    let garbage = lowest.is_some_and(|(g, _)| Some(g) != live) || highest.is_some_and(|(g, _)| Some(g) != live);
    if garbage {
        let mut wb = WriteBatch::default();
        match live {
            Some(g) => {
                let (start, end) = keys::chunk_range(g);
                wb.delete_range_cf(cf, all_start.as_slice(), start.as_slice());
                wb.delete_range_cf(cf, end.as_slice(), all_end.as_slice());
            }
            None => wb.delete_range_cf(cf, all_start, all_end),
        }
        db.write(wb, false)?;
        tracing::info!(dir = %db.dir.display(), "removed the chunks of an interrupted snapshot install");
    }
    let top = [live, highest.map(|(g, _)| g)].into_iter().flatten().max().unwrap_or(0);
    *db.snap_state() = SnapState { current: live, next: top.saturating_add(1) };
    Ok(())
}

/// Adds the replacement of the stored snapshot by `meta`/`data` to `wb`, advancing `st`
/// (a copy of the shared state, stored back once `wb` is durable).
pub(crate) fn put_in_batch(
    wb: &mut WriteBatch,
    cf: &ColumnFamily,
    st: &mut SnapState,
    meta: &SnapshotMeta,
    data: &Bytes,
) -> Result<()> {
    let generation = st.next;
    st.next = st.next.saturating_add(1);
    if let Some(old) = st.current {
        let (start, end) = keys::chunk_range(old);
        wb.delete_range_cf(cf, start.as_slice(), end.as_slice());
    }
    let mut chunks = 0u64;
    for c in data.chunks(SNAPSHOT_CHUNK_SIZE) {
        wb.put_cf(cf, keys::chunk_key(generation, chunks), c);
        chunks += 1;
    }
    let header = Header { meta: meta.clone(), generation, chunks, len: data.len() as u64 };
    wb.put_cf(cf, keys::SNAPSHOT_HEADER_KEY, codec::encode(&header, "snapshot header")?);
    st.current = Some(generation);
    Ok(())
}

/// Reads the whole stored snapshot into memory (for [`LogStore::recover`](ballot_core::LogStore::recover)).
pub(crate) fn read_all(db: &Arc<Db>) -> Result<Option<ballot_core::Snapshot>> {
    let Some(mut reader) = SnapshotReader::open(Arc::clone(db))? else { return Ok(None) };
    let mut data = BytesMut::with_capacity(reader.header.len.min(MAX_PREALLOC) as usize);
    for chunk in &mut reader {
        data.extend_from_slice(&chunk?);
    }
    Ok(Some(ballot_core::Snapshot { meta: reader.header.meta, data: data.freeze() }))
}

/// A handle for streaming snapshots in and out of a store, chunk by chunk. Cheap to
/// clone; usable from any thread while a [`GroupCommit`](crate::GroupCommit) writer owns
/// the [`RocksStore`](crate::RocksStore).
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    pub(crate) db: Arc<Db>,
}

impl SnapshotStore {
    /// The metadata of the stored snapshot, if any.
    ///
    /// # Errors
    /// [`Error::Db`] or [`Error::Corrupt`].
    pub fn meta(&self) -> Result<Option<SnapshotMeta>> {
        Ok(read_header(&self.db)?.map(|h| h.meta))
    }

    /// A reader over the stored snapshot's chunks, or `None` if there is none.
    ///
    /// # Errors
    /// [`Error::Db`] or [`Error::Corrupt`].
    pub fn reader(&self) -> Result<Option<SnapshotReader>> {
        SnapshotReader::open(Arc::clone(&self.db))
    }

    /// Starts streaming in a snapshot described by `meta`. The data is written chunk by
    /// chunk as it arrives; the stored snapshot is replaced, atomically and durably, only
    /// by [`SnapshotWriter::finish`]. Dropping the writer abandons the install.
    pub fn writer(&self, meta: SnapshotMeta) -> SnapshotWriter {
        let generation = {
            let mut st = self.db.snap_state();
            let g = st.next;
            st.next = st.next.saturating_add(1);
            g
        };
        SnapshotWriter {
            db: Arc::clone(&self.db),
            meta,
            generation,
            buf: Vec::new(),
            chunks: 0,
            len: 0,
            max_chunk: 0,
            finished: false,
        }
    }

    /// Streams `chunks` (of any sizes) in as the snapshot described by `meta` and makes it
    /// the stored snapshot. Holds at most one [`SNAPSHOT_CHUNK_SIZE`] chunk in memory
    /// besides the items of `chunks`.
    ///
    /// # Errors
    /// The first error of `chunks` (the install is abandoned), [`Error::Db`].
    pub fn install<I, B>(&self, meta: SnapshotMeta, chunks: I) -> Result<SnapshotMeta>
    where
        I: IntoIterator<Item = Result<B>>,
        B: AsRef<[u8]>,
    {
        let mut w = self.writer(meta);
        for c in chunks {
            w.write(c?.as_ref())?;
        }
        w.finish()
    }
}

/// Streams a snapshot into the store; see [`SnapshotStore::writer`].
#[derive(Debug)]
pub struct SnapshotWriter {
    db: Arc<Db>,
    meta: SnapshotMeta,
    generation: u64,
    buf: Vec<u8>,
    chunks: u64,
    len: u64,
    max_chunk: usize,
    finished: bool,
}

impl SnapshotWriter {
    /// Appends `data` to the snapshot. Full chunks are written to the store as they fill.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.buf.is_empty() && data.len() >= SNAPSHOT_CHUNK_SIZE {
                // A whole chunk straight from the caller's buffer, without staging.
                let (chunk, rest) = data.split_at(SNAPSHOT_CHUNK_SIZE);
                self.put_chunk(chunk)?;
                data = rest;
                continue;
            }
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(SNAPSHOT_CHUNK_SIZE);
            }
            let take = (SNAPSHOT_CHUNK_SIZE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == SNAPSHOT_CHUNK_SIZE {
                let buf = std::mem::take(&mut self.buf);
                self.put_chunk(&buf)?;
                self.buf = buf;
                self.buf.clear();
            }
        }
        Ok(())
    }

    fn put_chunk(&mut self, chunk: &[u8]) -> Result<()> {
        let mut wb = WriteBatch::default();
        wb.put_cf(self.db.cf(CF_SNAPSHOT)?, keys::chunk_key(self.generation, self.chunks), chunk);
        // Not synced: `finish` makes the chunks durable with the header, in one synced
        // write (RocksDB syncs every earlier WAL record with it).
        self.db.write(wb, false)?;
        self.chunks += 1;
        self.len += chunk.len() as u64;
        self.max_chunk = self.max_chunk.max(chunk.len());
        Ok(())
    }

    /// Bytes written so far.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.len + self.buf.len() as u64
    }

    /// The largest chunk written to the store so far (at most [`SNAPSHOT_CHUNK_SIZE`]).
    #[must_use]
    pub fn max_chunk_len(&self) -> usize {
        self.max_chunk
    }

    /// Writes the last chunk and atomically replaces the stored snapshot with this one;
    /// durable when it returns. The log is left alone: compact it with a `Persist` batch.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn finish(mut self) -> Result<SnapshotMeta> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            self.put_chunk(&buf)?;
        }
        let header =
            Header { meta: self.meta.clone(), generation: self.generation, chunks: self.chunks, len: self.len };
        let cf = self.db.cf(CF_SNAPSHOT)?;
        let mut st = self.db.snap_state();
        let mut wb = WriteBatch::default();
        if let Some(old) = st.current {
            let (start, end) = keys::chunk_range(old);
            wb.delete_range_cf(cf, start.as_slice(), end.as_slice());
        }
        wb.put_cf(cf, keys::SNAPSHOT_HEADER_KEY, codec::encode(&header, "snapshot header")?);
        self.db.write(wb, true)?;
        st.current = Some(self.generation);
        drop(st);
        self.finished = true;
        tracing::info!(index = header.meta.index, bytes = header.len, chunks = header.chunks, "snapshot installed");
        Ok(header.meta)
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if self.finished || self.chunks == 0 {
            return;
        }
        let Ok(cf) = self.db.cf(CF_SNAPSHOT) else { return };
        let (start, end) = keys::chunk_range(self.generation);
        let mut wb = WriteBatch::default();
        wb.delete_range_cf(cf, start.as_slice(), end.as_slice());
        if let Err(e) = self.db.write(wb, false) {
            tracing::warn!(error = %e, "could not remove the chunks of an abandoned snapshot install");
        }
    }
}

/// Reads the stored snapshot back chunk by chunk (each at most [`SNAPSHOT_CHUNK_SIZE`]);
/// an iterator of `Result<Bytes>`. If the snapshot is replaced while it is being read,
/// the next item is [`Error::SnapshotReplaced`].
#[derive(Debug)]
pub struct SnapshotReader {
    db: Arc<Db>,
    header: Header,
    next: u64,
    read: u64,
    failed: bool,
}

impl SnapshotReader {
    fn open(db: Arc<Db>) -> Result<Option<Self>> {
        Ok(read_header(&db)?.map(|header| SnapshotReader { db, header, next: 0, read: 0, failed: false }))
    }

    /// The snapshot's metadata.
    #[must_use]
    pub fn meta(&self) -> &SnapshotMeta {
        &self.header.meta
    }

    /// Its total size in bytes.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.header.len
    }

    /// Whether the snapshot's data is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.header.len == 0
    }

    /// How many chunks it is stored in.
    #[must_use]
    pub fn chunk_count(&self) -> u64 {
        self.header.chunks
    }

    fn read_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.next == self.header.chunks {
            if self.read != self.header.len {
                return Err(self.db.corrupt(
                    "snapshot chunks",
                    format!("chunks hold {} bytes, the header says {}", self.read, self.header.len),
                ));
            }
            return Ok(None);
        }
        let cf = self.db.cf(CF_SNAPSHOT)?;
        let key = keys::chunk_key(self.header.generation, self.next);
        let Some(v) = self.db.db.get_pinned_cf(cf, key).map_err(|e| Error::db(&self.db.dir, e))? else {
            let live = read_header(&self.db)?.map(|h| h.generation);
            if live != Some(self.header.generation) {
                return Err(Error::SnapshotReplaced);
            }
            return Err(self.db.corrupt("snapshot chunks", format!("chunk {} is missing", self.next)));
        };
        if v.len() > SNAPSHOT_CHUNK_SIZE {
            return Err(self.db.corrupt("snapshot chunks", format!("chunk {} is {} bytes", self.next, v.len())));
        }
        self.next += 1;
        self.read += v.len() as u64;
        Ok(Some(Bytes::copy_from_slice(&v)))
    }
}

impl Iterator for SnapshotReader {
    type Item = Result<Bytes>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = self.read_chunk().transpose();
        self.failed = matches!(r, Some(Err(_)));
        r
    }
}
