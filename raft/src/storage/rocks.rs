//! [`RocksStorage`]: the durable Raft log, hard state and snapshots of one
//! node in the process's single RocksDB (DESIGN.md "Storage layout").
//!
//! Column families:
//! - `raft_log`: index (big-endian) -> entry record.
//! - `raft_state`: `hard_state`; `snapshot`, the installed snapshot's
//!   record (metadata with membership, data id and size);
//!   `snapshot_staged`, the snapshot being received from a leader;
//!   `membership`, the membership as of the last applied change; and
//!   `snapshot_chunk/<id><offset>` -> data chunk, for both snapshots.
//! - `data` and `meta`: the application's. They are created here and the
//!   application writes them through [`RocksStorage::db`], in its own
//!   batches (entry effects together with the applied index).
//!
//! Every record is crc32-framed ([`codec`](super::codec)); a mismatch is a
//! [`StorageError::Corruption`] naming the index and the column family.
//!
//! Invariants:
//! - `raft_log` holds exactly the indexes `(snapshot index, last index]`,
//!   without gaps. [`RocksStorage::open`] checks this and the crc32 of
//!   every entry before anything is served.
//! - The chunks of a snapshot id hold its data from offset 0 without gaps
//!   up to its size, in records of at most [`CHUNK_RECORD_BYTES_MAX`]
//!   bytes. Chunks of any id that is neither installed nor staged are left
//!   over from an interrupted [`RocksStorage::create_snapshot`] and are
//!   removed by `open`.
//! - Only small caches live in memory (hard state, snapshot records, saved
//!   membership, last index); snapshot data is streamed through RocksDB.
//!   A cache changes only after the write that makes it true succeeded, so
//!   a failed write leaves the storage as it was.
//! - [`Storage::persist`] is one `WriteBatch` written with `sync`: one
//!   fsync per `Ready` (group commit), atomic across a crash.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rocksdb::{
    AsColumnFamilyRef, ColumnFamilyDescriptor, DB, DBCompressionType, DBRawIterator, Options,
    ReadOptions, WriteBatch, WriteOptions,
};
use tracing::info;

use crate::core::{
    Entry, HardState, LogIndex, Membership, SnapshotChunk, SnapshotMeta, StorageError, Term,
};
use crate::storage::codec::{
    SnapshotRecord, chunk_key, corruption, decode_chunk, decode_chunk_key, decode_entry,
    decode_hard_state, decode_index_key, decode_membership, decode_snapshot, encode_chunk,
    encode_entry, encode_hard_state, encode_membership, encode_snapshot, index_key,
};
use crate::storage::{InitialState, PersistBatch, Storage};

/// The column family of the Raft log: index (big-endian) -> entry.
pub const CF_RAFT_LOG: &str = "raft_log";
/// The column family of the hard state, snapshots and saved membership.
pub const CF_RAFT_STATE: &str = "raft_state";
/// The application's column family for its data.
pub const CF_DATA: &str = "data";
/// The application's column family for its metadata (applied index, ...).
pub const CF_META: &str = "meta";

/// Every column family of the database, created on open.
const COLUMN_FAMILIES: [&str; 4] = [CF_RAFT_LOG, CF_RAFT_STATE, CF_DATA, CF_META];

const KEY_HARD_STATE: &str = "hard_state";
const KEY_SNAPSHOT: &str = "snapshot";
const KEY_STAGED: &str = "snapshot_staged";
const KEY_MEMBERSHIP: &str = "membership";

/// The largest snapshot data record; larger chunks are split so that a
/// read never loads more than this beyond what it returns.
pub const CHUNK_RECORD_BYTES_MAX: usize = 1 << 20;

/// How many snapshot bytes [`RocksStorage::create_snapshot`] gathers in one
/// write batch.
const SNAPSHOT_BATCH_BYTES_MAX: usize = 4 << 20;

/// The durable state mirrored in memory.
#[derive(Clone, Debug, Default)]
struct Cache {
    hard_state: HardState,
    /// The installed snapshot; index 0, id 0 and no data when there is none
    /// (a joining node before its first snapshot).
    snapshot: SnapshotRecord,
    /// The snapshot being received, its size being the bytes staged.
    staged: Option<SnapshotRecord>,
    /// The membership saved by the driver and the index it is as of.
    membership: Option<(LogIndex, Membership)>,
    /// Invariant: `raft_log` holds exactly `(snapshot.meta.index, last_index]`.
    last_index: LogIndex,
    /// Invariant: greater than the id of every snapshot in `raft_state`.
    next_snapshot_id: u64,
}

/// The Raft log storage of one node over a RocksDB database it shares
/// with the application.
pub struct RocksStorage {
    db: Arc<DB>,
    path: PathBuf,
    cache: Cache,
}

impl fmt::Debug for RocksStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksStorage")
            .field("path", &self.path)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// Returns a mapper of RocksDB errors to [`StorageError::Io`] saying what
/// was being done.
fn io_error(context: impl fmt::Display) -> impl FnOnce(rocksdb::Error) -> StorageError {
    move |error| StorageError::Io(format!("{context}: {error}"))
}

/// Returns the column family `name` of the database at `path`.
fn column_family<'a>(
    db: &'a DB,
    path: &Path,
    name: &str,
) -> Result<impl AsColumnFamilyRef + 'a, StorageError> {
    db.cf_handle(name).ok_or_else(|| {
        StorageError::Io(format!(
            "column family {name} missing in {}",
            path.display()
        ))
    })
}

/// Writes `batch`, synced or not; unsynced writes still go to the WAL in
/// order, so a later synced write makes them durable too.
fn write_batch(
    db: &DB,
    batch: WriteBatch,
    sync: bool,
    context: impl fmt::Display,
) -> Result<(), StorageError> {
    let mut options = WriteOptions::default();
    options.set_sync(sync);
    db.write_opt(batch, &options).map_err(io_error(context))
}

/// The memory all memtables together may use before RocksDB starts
/// flushing them (128 MiB): a flush trigger, not a hard cap.
pub const MEMTABLES_BYTES_MAX: usize = 128 << 20;

/// Opens (creating if missing) the database at `dir` with every column
/// family.
fn open_db(dir: &Path) -> Result<DB, StorageError> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_compression_type(DBCompressionType::Lz4);
    // The node's thread does nearly all writes (a snapshot writer's
    // occasional batches aside, which then queue behind them): concurrent
    // memtable inserts would only cost each insert a fresh skip-list
    // search, where a single writer reuses the last insert's position for
    // the log's ascending keys.
    options.set_allow_concurrent_memtable_write(false);
    // One budget for the memtables of every column family, so a replica's
    // memory stays flat whatever the load (1 MiB values fill a 64 MiB
    // memtable per family in 64 writes, and each family may hold two).
    options.set_db_write_buffer_size(MEMTABLES_BYTES_MAX);
    let families = COLUMN_FAMILIES.iter().map(|name| {
        let mut family_options = Options::default();
        family_options.set_compression_type(DBCompressionType::Lz4);
        ColumnFamilyDescriptor::new(*name, family_options)
    });
    DB::open_cf_descriptors(&options, dir, families).map_err(io_error(format_args!(
        "opening RocksDB at {}",
        dir.display()
    )))
}

/// Adds to `batch` the records of `data`, the snapshot bytes at `offset`
/// of snapshot `id`, split into records of at most
/// [`CHUNK_RECORD_BYTES_MAX`] bytes.
fn put_chunk_records(
    batch: &mut WriteBatch,
    state: &impl AsColumnFamilyRef,
    id: u64,
    offset: u64,
    data: &[u8],
) {
    let mut record_offset = offset;
    for piece in data.chunks(CHUNK_RECORD_BYTES_MAX) {
        batch.put_cf(
            state,
            chunk_key(id, record_offset),
            encode_chunk(record_offset, piece),
        );
        record_offset += piece.len() as u64;
    }
}

/// Adds to `batch` the deletion of every chunk of snapshot `id`.
fn delete_chunks(batch: &mut WriteBatch, state: &impl AsColumnFamilyRef, id: u64) {
    batch.delete_range_cf(state, chunk_key(id, 0), chunk_key(id + 1, 0));
}

impl RocksStorage {
    /// Returns the storage in the database at `dir`, creating an empty one
    /// if missing. An existing database is read back whole: hard state,
    /// snapshot records and membership, then every log entry, whose crc32
    /// and position are verified.
    ///
    /// # Errors
    /// [`StorageError::Corruption`] naming the index and column family of
    /// the first bad record or gap; [`StorageError::Io`] if RocksDB fails.
    pub fn open(dir: &Path) -> Result<RocksStorage, StorageError> {
        let db = open_db(dir)?;
        let mut storage = RocksStorage {
            db: Arc::new(db),
            path: dir.to_path_buf(),
            cache: Cache::default(),
        };
        storage.cache = storage.load_state()?;
        storage.remove_orphan_chunks()?;
        storage.cache.last_index = storage.verify_log()?;
        Ok(storage)
    }

    /// Makes an empty store the first node of a group with `membership`:
    /// an empty snapshot at index 1, term 1 carries it (like
    /// [`MemStorage::new`](super::MemStorage::new)), so nodes that join
    /// later always start from a snapshot. A joining node skips this and
    /// starts from the empty store, at index 0.
    ///
    /// # Errors
    /// [`StorageError::Io`] if the store is not empty, `membership` has no
    /// voter, or the write fails.
    pub fn bootstrap(&mut self, membership: Membership) -> Result<(), StorageError> {
        if !self.is_empty() {
            return Err(StorageError::Io(format!(
                "refusing to bootstrap {}: it already holds raft state",
                self.path.display()
            )));
        }
        if membership.voters.is_empty() {
            return Err(StorageError::Io(
                "refusing to bootstrap without voters (a joining node starts empty)".into(),
            ));
        }
        let snapshot = SnapshotRecord {
            meta: SnapshotMeta {
                index: LogIndex(1),
                term: Term(1),
                membership,
            },
            id: self.cache.next_snapshot_id,
            size_bytes: 0,
        };
        let mut batch = WriteBatch::default();
        batch.put_cf(
            &self.cf(CF_RAFT_STATE)?,
            KEY_SNAPSHOT,
            encode_snapshot(&snapshot),
        );
        self.write(batch, "bootstrapping")?;
        self.cache.next_snapshot_id += 1;
        self.cache.last_index = snapshot.meta.index;
        self.cache.snapshot = snapshot;
        Ok(())
    }

    /// Returns whether the store holds no Raft state at all: no hard state,
    /// snapshot, staged snapshot, saved membership or entry.
    pub fn is_empty(&self) -> bool {
        let cache = &self.cache;
        cache.hard_state == HardState::default()
            && cache.snapshot.meta.index == LogIndex(0)
            && cache.snapshot.id == 0
            && cache.staged.is_none()
            && cache.membership.is_none()
            && cache.last_index == LogIndex(0)
    }

    /// Returns the database, shared with the application, which writes the
    /// [`CF_DATA`] and [`CF_META`] column families and must leave
    /// [`CF_RAFT_LOG`] and [`CF_RAFT_STATE`] alone.
    pub fn db(&self) -> Arc<DB> {
        Arc::clone(&self.db)
    }

    /// Returns the directory of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a snapshot of the application state at `index` and drops
    /// the log entries it covers. `chunks` yields the snapshot's data in
    /// order; it is written in bounded batches, never held whole, and the
    /// snapshot replaces the previous one with a final synced batch. The
    /// caller guarantees that the application state at `index` is durable.
    ///
    /// # Errors
    /// [`StorageError::Io`] if a write fails; the previous snapshot then
    /// stays in force (the chunks written are removed by the next `open`).
    ///
    /// # Panics
    /// Panics if `index` is not in `(snapshot index, last index]`.
    pub fn create_snapshot(
        &mut self,
        index: LogIndex,
        membership: Membership,
        chunks: impl IntoIterator<Item = Bytes>,
    ) -> Result<(), StorageError> {
        let snapshot_index = self.cache.snapshot.meta.index;
        assert!(
            index > snapshot_index && index <= self.cache.last_index,
            "snapshot index {index} outside ({snapshot_index}, {}]",
            self.cache.last_index
        );
        let mut writer = self.snapshot_writer();
        for chunk in chunks {
            writer.write_chunk(&chunk)?;
        }
        let written = writer.finish()?;
        self.install_written_snapshot(written, index, membership)?;
        Ok(())
    }

    /// Reserves a snapshot id and returns a writer of that snapshot's data,
    /// which may run on another thread while the node goes on.
    /// [`RocksStorage::install_written_snapshot`] then makes it the latest
    /// snapshot; until then (or if the process dies) its chunks are
    /// orphans, which `open` removes.
    pub fn snapshot_writer(&mut self) -> SnapshotWriter {
        let id = self.cache.next_snapshot_id;
        self.cache.next_snapshot_id += 1;
        SnapshotWriter {
            db: self.db.clone(),
            path: self.path.clone(),
            id,
            batch: WriteBatch::default(),
            offset: 0,
        }
    }

    /// Makes the `written` snapshot (the application state at `index`) the
    /// latest one and drops the log
    /// entries it covers, with one synced write. Returns `false`, and
    /// deletes the written data, if a later snapshot was installed since
    /// the writer was made (a follower may receive one meanwhile).
    ///
    /// # Errors
    /// [`StorageError::Io`] if a write fails; the previous snapshot then
    /// stays in force.
    ///
    /// # Panics
    /// Panics if `index` is beyond the last log index.
    pub fn install_written_snapshot(
        &mut self,
        written: WrittenSnapshot,
        index: LogIndex,
        membership: Membership,
    ) -> Result<bool, StorageError> {
        assert!(
            index <= self.cache.last_index,
            "snapshot index {index} beyond the last index {}",
            self.cache.last_index
        );
        if index <= self.cache.snapshot.meta.index {
            let mut batch = WriteBatch::default();
            delete_chunks(&mut batch, &self.cf(CF_RAFT_STATE)?, written.id);
            self.write_with(batch, false, "deleting a superseded snapshot")?;
            return Ok(false);
        }
        let term = self.term(index)?;
        let snapshot = SnapshotRecord {
            meta: SnapshotMeta {
                index,
                term,
                membership,
            },
            id: written.id,
            size_bytes: written.size_bytes,
        };
        self.replace_snapshot(&snapshot)?;
        info!(
            index = index.0,
            term = term.0,
            size_bytes = written.size_bytes,
            "snapshot created"
        );
        self.cache.snapshot = snapshot;
        Ok(true)
    }

    /// Returns the size of the installed snapshot's data, in bytes.
    pub fn snapshot_record_size_bytes(&self) -> u64 {
        self.cache.snapshot.size_bytes
    }

    /// Returns the data of the installed snapshot as an iterator of chunks
    /// read from a consistent view, so the application can restore from it
    /// without loading it whole. Each chunk is checked against its crc32.
    pub fn snapshot_data(&self) -> Result<SnapshotData<'_>, StorageError> {
        let snapshot = &self.cache.snapshot;
        let mut iterator = self.chunk_iterator(snapshot.id)?;
        iterator.seek_to_first();
        Ok(SnapshotData {
            iterator,
            snapshot_id: snapshot.id,
            snapshot_index: snapshot.meta.index,
            location: self.location(CF_RAFT_STATE),
            next_offset: 0,
            size_bytes: snapshot.size_bytes,
            done: false,
        })
    }

    /// Returns the column family `name` (whichever handle type the
    /// rocksdb thread mode gives).
    fn cf(&self, name: &str) -> Result<impl AsColumnFamilyRef + '_, StorageError> {
        column_family(&self.db, &self.path, name)
    }

    /// Returns where a record lives, for errors: the column family and the
    /// database directory.
    fn location(&self, column_family: &str) -> String {
        format!("column family {column_family} of {}", self.path.display())
    }

    /// Writes `batch` durably (fsync of the WAL before returning).
    fn write(&self, batch: WriteBatch, context: impl fmt::Display) -> Result<(), StorageError> {
        self.write_with(batch, true, context)
    }

    /// Writes `batch`, synced or not; unsynced writes still go to the WAL
    /// in order, so a later synced write makes them durable too.
    fn write_with(
        &self,
        batch: WriteBatch,
        sync: bool,
        context: impl fmt::Display,
    ) -> Result<(), StorageError> {
        write_batch(&self.db, batch, sync, context)
    }

    /// Returns the raw value of `key` in `raft_state`, if any.
    fn get_state(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.db
            .get_cf(&self.cf(CF_RAFT_STATE)?, key)
            .map_err(io_error(format_args!("reading {key}")))
    }

    /// Reads the records of `raft_state` into a cache (without the last
    /// index, which [`RocksStorage::verify_log`] establishes).
    fn load_state(&self) -> Result<Cache, StorageError> {
        let location = |key: &str| format!("{} key {key}", self.location(CF_RAFT_STATE));
        let hard_state = match self.get_state(KEY_HARD_STATE)? {
            Some(record) => decode_hard_state(&location(KEY_HARD_STATE), &record)?,
            None => HardState::default(),
        };
        let snapshot = match self.get_state(KEY_SNAPSHOT)? {
            Some(record) => decode_snapshot(&location(KEY_SNAPSHOT), &record)?,
            None => SnapshotRecord::default(),
        };
        let staged = match self.get_state(KEY_STAGED)? {
            Some(record) => Some(decode_snapshot(&location(KEY_STAGED), &record)?),
            None => None,
        };
        let membership = match self.get_state(KEY_MEMBERSHIP)? {
            Some(record) => Some(decode_membership(&location(KEY_MEMBERSHIP), &record)?),
            None => None,
        };
        let staged_id = staged.as_ref().map_or(0, |staged| staged.id);
        Ok(Cache {
            hard_state,
            last_index: snapshot.meta.index,
            next_snapshot_id: snapshot.id.max(staged_id) + 1,
            snapshot,
            staged,
            membership,
        })
    }

    /// Deletes the chunks of every snapshot id that is neither installed
    /// nor staged (left by an interrupted `create_snapshot`).
    fn remove_orphan_chunks(&self) -> Result<(), StorageError> {
        let state = &self.cf(CF_RAFT_STATE)?;
        let mut live = vec![self.cache.snapshot.id];
        live.extend(self.cache.staged.as_ref().map(|staged| staged.id));
        live.sort_unstable();
        let mut batch = WriteBatch::default();
        let mut start = 0;
        for id in live {
            if id > start {
                batch.delete_range_cf(state, chunk_key(start, 0), chunk_key(id, 0));
            }
            start = start.max(id + 1);
        }
        batch.delete_range_cf(state, chunk_key(start, 0), chunk_key(u64::MAX, 0));
        self.write(batch, "removing orphan snapshot chunks")
    }

    /// Reads every log entry, checking its crc32 and that the log continues
    /// the snapshot without gaps; returns the last index.
    fn verify_log(&self) -> Result<LogIndex, StorageError> {
        let location = self.location(CF_RAFT_LOG);
        let snapshot_index = self.cache.snapshot.meta.index;
        let mut iterator = self.db.raw_iterator_cf(&self.cf(CF_RAFT_LOG)?);
        iterator.seek_to_first();
        let mut expected = snapshot_index.next();
        while let Some((key, record)) = iterator.item() {
            let Some(index) = decode_index_key(key) else {
                let detail = format!("malformed log key {key:?}");
                return Err(corruption(expected, &location, detail));
            };
            if index != expected {
                let detail = format!(
                    "found index {index} where the log (after the snapshot at \
                     {snapshot_index}) continues at {expected}"
                );
                return Err(corruption(index.min(expected), &location, detail));
            }
            decode_entry(index, &location, record)?;
            expected = expected.next();
            iterator.next();
        }
        iterator
            .status()
            .map_err(io_error(format_args!("reading {location}")))?;
        Ok(expected.prev())
    }

    /// Returns the stored entry at `index`, which must be in the log.
    fn read_entry(&self, index: LogIndex) -> Result<Entry, StorageError> {
        let location = self.location(CF_RAFT_LOG);
        let record = self
            .db
            .get_pinned_cf(&self.cf(CF_RAFT_LOG)?, index_key(index))
            .map_err(io_error(format_args!(
                "reading index {index} of {location}"
            )))?
            .ok_or_else(|| corruption(index, &location, "entry missing".into()))?;
        decode_entry(index, &location, &record)
    }

    /// Returns an iterator over the chunk records of snapshot `id` only.
    fn chunk_iterator(&self, id: u64) -> Result<DBRawIterator<'_>, StorageError> {
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(chunk_key(id, 0));
        options.set_iterate_upper_bound(chunk_key(id + 1, 0));
        Ok(self
            .db
            .raw_iterator_cf_opt(&self.cf(CF_RAFT_STATE)?, options))
    }

    /// Makes the created `snapshot`, whose data is written, the installed
    /// one: deletes the previous one's data and the entries it covers.
    fn replace_snapshot(&self, snapshot: &SnapshotRecord) -> Result<(), StorageError> {
        let index = snapshot.meta.index;
        let (state, log) = (&self.cf(CF_RAFT_STATE)?, &self.cf(CF_RAFT_LOG)?);
        let mut batch = WriteBatch::default();
        delete_chunks(&mut batch, state, self.cache.snapshot.id);
        batch.put_cf(state, KEY_SNAPSHOT, encode_snapshot(snapshot));
        batch.delete_range_cf(log, index_key(LogIndex(0)), index_key(index.next()));
        self.write(batch, format_args!("installing the snapshot at {index}"))
    }

    /// Returns the bytes `[start, end)` of the installed snapshot's data,
    /// reading only the records that overlap them.
    fn read_snapshot_range(&self, start: u64, end: u64) -> Result<Bytes, StorageError> {
        let snapshot = &self.cache.snapshot;
        let (index, location) = (snapshot.meta.index, self.location(CF_RAFT_STATE));
        let mut iterator = self.chunk_iterator(snapshot.id)?;
        iterator.seek_for_prev(chunk_key(snapshot.id, start));
        let mut data = Vec::with_capacity((end - start) as usize);
        while start + (data.len() as u64) < end {
            let wanted = start + data.len() as u64;
            let Some((key, record)) = iterator.item() else {
                iterator
                    .status()
                    .map_err(io_error(format_args!("reading {location}")))?;
                let detail = format!("snapshot data missing at offset {wanted}");
                return Err(corruption(index, &location, detail));
            };
            let Some(offset) = decode_chunk_key(snapshot.id, key) else {
                let detail = format!("malformed snapshot chunk key {key:?}");
                return Err(corruption(index, &location, detail));
            };
            let piece = decode_chunk(index, offset, &location, record)?;
            let piece_end = offset + piece.len() as u64;
            if offset > wanted || piece_end <= wanted {
                let detail = format!("snapshot data missing at offset {wanted}");
                return Err(corruption(index, &location, detail));
            }
            let from = (wanted - offset) as usize;
            let to = (end.min(piece_end) - offset) as usize;
            data.extend_from_slice(&piece[from..to]);
            iterator.next();
        }
        Ok(Bytes::from(data))
    }

    /// Stages one received snapshot chunk into `next` and `batch`; a chunk
    /// at offset 0 discards the chunks staged before.
    fn stage_chunk(
        &self,
        next: &mut Cache,
        batch: &mut WriteBatch,
        chunk: &SnapshotChunk,
    ) -> Result<(), StorageError> {
        let state = &self.cf(CF_RAFT_STATE)?;
        if chunk.offset == 0 {
            if let Some(discarded) = next.staged.take() {
                delete_chunks(batch, state, discarded.id);
            }
            next.staged = Some(SnapshotRecord {
                meta: chunk.meta.clone(),
                id: next.next_snapshot_id,
                size_bytes: 0,
            });
            next.next_snapshot_id += 1;
        }
        let Some(staged) = next
            .staged
            .as_mut()
            .filter(|staged| staged.meta == chunk.meta && staged.size_bytes == chunk.offset)
        else {
            return Err(StorageError::Io(format!(
                "snapshot chunk at offset {} does not follow the staged data",
                chunk.offset
            )));
        };
        put_chunk_records(batch, state, staged.id, chunk.offset, &chunk.data);
        staged.size_bytes += chunk.data.len() as u64;
        batch.put_cf(state, KEY_STAGED, encode_snapshot(staged));
        Ok(())
    }

    /// Installs the staged snapshot described by `meta` into `next` and
    /// `batch`: it replaces the installed one and the whole log.
    fn install_staged(
        &self,
        next: &mut Cache,
        batch: &mut WriteBatch,
        meta: &SnapshotMeta,
    ) -> Result<(), StorageError> {
        let staged = match next.staged.take() {
            Some(staged) if staged.meta == *meta => staged,
            _ => return Err(StorageError::SnapshotUnavailable(meta.index)),
        };
        let (state, log) = (&self.cf(CF_RAFT_STATE)?, &self.cf(CF_RAFT_LOG)?);
        delete_chunks(batch, state, next.snapshot.id);
        batch.delete_cf(state, KEY_STAGED);
        batch.put_cf(state, KEY_SNAPSHOT, encode_snapshot(&staged));
        batch.delete_range_cf(
            log,
            index_key(LogIndex(0)),
            index_key(next.last_index.next()),
        );
        next.last_index = staged.meta.index;
        next.snapshot = staged;
        Ok(())
    }

    /// Appends `entries` into `next` and `batch`, truncating the stored
    /// suffix from the first of them.
    fn append(
        &self,
        next: &mut Cache,
        batch: &mut WriteBatch,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let snapshot_index = next.snapshot.meta.index;
        if first.index <= snapshot_index || first.index > next.last_index.next() {
            return Err(StorageError::Io(format!(
                "append at {} outside the log ({}..={})",
                first.index,
                snapshot_index.next(),
                next.last_index
            )));
        }
        debug_assert!(
            entries
                .windows(2)
                .all(|pair| pair[1].index == pair[0].index.next()),
            "appended entries must be contiguous"
        );
        let log = &self.cf(CF_RAFT_LOG)?;
        if last.index < next.last_index {
            // Entries after the new last one belong to a deposed leader.
            let end = index_key(next.last_index.next());
            batch.delete_range_cf(log, index_key(last.index.next()), end);
        }
        for entry in entries {
            batch.put_cf(log, index_key(entry.index), encode_entry(entry));
        }
        next.last_index = last.index;
        Ok(())
    }
}

impl Storage for RocksStorage {
    fn hard_state(&self) -> HardState {
        self.cache.hard_state
    }

    fn initial_state(&self) -> Result<InitialState, StorageError> {
        let snapshot = &self.cache.snapshot.meta;
        let membership = match &self.cache.membership {
            Some((index, membership)) if *index > snapshot.index => membership.clone(),
            _ => snapshot.membership.clone(),
        };
        Ok(InitialState {
            hard_state: self.cache.hard_state,
            membership,
            staged_snapshot: self
                .cache
                .staged
                .as_ref()
                .map(|staged| (staged.meta.clone(), staged.size_bytes)),
        })
    }

    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        bytes_max: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low <= self.cache.snapshot.meta.index {
            return Err(StorageError::Compacted);
        }
        assert!(
            high <= self.cache.last_index.next(),
            "entries past the log end: {high}"
        );
        let location = self.location(CF_RAFT_LOG);
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(index_key(high));
        let mut iterator = self.db.raw_iterator_cf_opt(&self.cf(CF_RAFT_LOG)?, options);
        iterator.seek(index_key(low));
        let (mut entries, mut total_bytes) = (Vec::new(), 0u64);
        let mut expected = low;
        while expected < high {
            let Some((key, record)) = iterator.item() else {
                iterator
                    .status()
                    .map_err(io_error(format_args!("reading {location}")))?;
                return Err(corruption(expected, &location, "entry missing".into()));
            };
            if decode_index_key(key) != Some(expected) {
                return Err(corruption(expected, &location, "entry missing".into()));
            }
            let entry = decode_entry(expected, &location, record)?;
            total_bytes += entry.size_bytes();
            if !entries.is_empty() && total_bytes > bytes_max {
                break;
            }
            entries.push(entry);
            expected = expected.next();
            iterator.next();
        }
        Ok(entries)
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        let snapshot = &self.cache.snapshot.meta;
        if index < snapshot.index {
            return Err(StorageError::Compacted);
        }
        if index == snapshot.index {
            return Ok(snapshot.term);
        }
        if index > self.cache.last_index {
            return Err(StorageError::Io(format!(
                "term of index {index} past the log end"
            )));
        }
        Ok(self.read_entry(index)?.term)
    }

    fn first_index(&self) -> LogIndex {
        self.cache.snapshot.meta.index.next()
    }

    fn last_index(&self) -> LogIndex {
        self.cache.last_index
    }

    fn snapshot_meta(&self) -> SnapshotMeta {
        self.cache.snapshot.meta.clone()
    }

    fn snapshot_chunk(
        &self,
        index: LogIndex,
        offset: u64,
        bytes_max: u64,
    ) -> Result<(Bytes, bool), StorageError> {
        let snapshot = &self.cache.snapshot;
        if index != snapshot.meta.index {
            return Err(StorageError::SnapshotUnavailable(index));
        }
        let size_bytes = snapshot.size_bytes;
        let start = offset.min(size_bytes);
        let end = start.saturating_add(bytes_max).min(size_bytes);
        let data = if start == end {
            Bytes::new()
        } else {
            self.read_snapshot_range(start, end)?
        };
        Ok((data, end == size_bytes))
    }

    fn persist(&mut self, batch: &PersistBatch<'_>) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let sync = batch.must_sync(&self.cache.hard_state);
        let mut next = self.cache.clone();
        let mut write = WriteBatch::default();
        for chunk in batch.snapshot_chunks {
            self.stage_chunk(&mut next, &mut write, chunk)?;
        }
        if let Some(meta) = batch.snapshot {
            self.install_staged(&mut next, &mut write, meta)?;
        }
        self.append(&mut next, &mut write, batch.entries)?;
        if let Some(hard_state) = batch.hard_state {
            let state = &self.cf(CF_RAFT_STATE)?;
            write.put_cf(state, KEY_HARD_STATE, encode_hard_state(hard_state));
            next.hard_state = *hard_state;
        }
        self.write_with(write, sync, "persisting a ready")?;
        self.cache = next;
        Ok(())
    }

    fn save_membership(
        &mut self,
        membership: &Membership,
        index: LogIndex,
    ) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let record = encode_membership(index, membership);
        batch.put_cf(&self.cf(CF_RAFT_STATE)?, KEY_MEMBERSHIP, record);
        self.write(batch, format_args!("saving the membership at {index}"))?;
        self.cache.membership = Some((index, membership.clone()));
        Ok(())
    }
}

/// The data of an installed snapshot, chunk by chunk, from a consistent
/// view of the database (see [`RocksStorage::snapshot_data`]).
///
/// Yields `Err` once and then ends if a chunk fails its crc32, a chunk is
/// missing, or the data ends before the snapshot's recorded size.
pub struct SnapshotData<'a> {
    iterator: DBRawIterator<'a>,
    snapshot_id: u64,
    snapshot_index: LogIndex,
    location: String,
    /// Invariant: the total size of the chunks yielded so far.
    next_offset: u64,
    size_bytes: u64,
    done: bool,
}

impl SnapshotData<'_> {
    /// Returns the total size of the data, in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Returns the next chunk, `None` at a complete end, or the reason the
    /// data is unreadable.
    fn read_next(&mut self) -> Result<Option<Bytes>, StorageError> {
        let Some((key, record)) = self.iterator.item() else {
            self.iterator
                .status()
                .map_err(io_error(format_args!("reading {}", self.location)))?;
            if self.next_offset != self.size_bytes {
                let detail = format!(
                    "snapshot data ends at offset {} of {}",
                    self.next_offset, self.size_bytes
                );
                return Err(corruption(self.snapshot_index, &self.location, detail));
            }
            return Ok(None);
        };
        let offset = self.next_offset;
        if decode_chunk_key(self.snapshot_id, key) != Some(offset) {
            let detail = format!("snapshot data missing at offset {offset}");
            return Err(corruption(self.snapshot_index, &self.location, detail));
        }
        let piece = decode_chunk(self.snapshot_index, offset, &self.location, record)?;
        let piece = Bytes::copy_from_slice(piece);
        self.next_offset += piece.len() as u64;
        self.iterator.next();
        Ok(Some(piece))
    }
}

impl Iterator for SnapshotData<'_> {
    type Item = Result<Bytes, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = self.read_next().transpose();
        self.done = !matches!(result, Some(Ok(_)));
        result
    }
}

/// The data of a snapshot a [`SnapshotWriter`] finished, ready for
/// [`RocksStorage::install_written_snapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrittenSnapshot {
    /// The id its chunk records are stored under.
    pub id: u64,
    /// The size of its data, in bytes.
    pub size_bytes: u64,
}

/// Writes the data of a snapshot being created, chunk by chunk, in bounded
/// batches that skip the WAL, flushed to table files by
/// [`SnapshotWriter::finish`] before the synced install. Made by
/// [`RocksStorage::snapshot_writer`]; usable from any thread.
pub struct SnapshotWriter {
    db: Arc<DB>,
    path: PathBuf,
    id: u64,
    batch: WriteBatch,
    /// Invariant: the bytes written so far, in order.
    offset: u64,
}

impl SnapshotWriter {
    /// Appends `chunk` to the snapshot's data.
    ///
    /// # Errors
    /// [`StorageError::Io`] if a write fails.
    pub fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        let state = column_family(&self.db, &self.path, CF_RAFT_STATE)?;
        put_chunk_records(&mut self.batch, &state, self.id, self.offset, chunk);
        drop(state);
        self.offset += chunk.len() as u64;
        if self.batch.size_in_bytes() >= SNAPSHOT_BATCH_BYTES_MAX {
            self.write_buffered()?;
        }
        Ok(())
    }

    /// Writes what is buffered and makes every chunk durable (a flush of
    /// `raft_state` to its table files, synced); returns what to install.
    ///
    /// # Errors
    /// [`StorageError::Io`] if a write or the flush fails.
    pub fn finish(mut self) -> Result<WrittenSnapshot, StorageError> {
        self.write_buffered()?;
        let state = column_family(&self.db, &self.path, CF_RAFT_STATE)?;
        self.db
            .flush_cf(&state)
            .map_err(io_error("flushing snapshot chunks"))?;
        drop(state);
        Ok(WrittenSnapshot {
            id: self.id,
            size_bytes: self.offset,
        })
    }

    /// Writes the buffered chunk records without the WAL: the chunks of an
    /// unfinished snapshot need no crash recovery (`open` removes them as
    /// orphans), and [`SnapshotWriter::finish`] flushes them before they
    /// can be installed. So a snapshot's bytes never pass through the WAL,
    /// and the node's next synced write does not carry them.
    fn write_buffered(&mut self) -> Result<(), StorageError> {
        let batch = std::mem::take(&mut self.batch);
        let mut options = WriteOptions::default();
        options.disable_wal(true);
        self.db
            .write_opt(batch, &options)
            .map_err(io_error("writing snapshot chunks"))
    }
}
