//! [`RocksStorage`]: the durable Raft log and hard state of one node in the
//! process's single RocksDB (DESIGN.md "Storage layout").
//!
//! The application's state is the snapshot: it lives in the `data` and
//! `meta` column families of the same database, so compaction only
//! truncates the log and records the compacted prefix, and a lagging
//! follower is sent that state from a pinned view of the database (by
//! the driver and the application, not through this storage). Nothing
//! here ever holds a copy of the application's state.
//!
//! Column families:
//! - `raft_log`: index (big-endian) -> entry record.
//! - `raft_state`: `hard_state`; `compacted_prefix`, the index, term and
//!   membership of the last entry dropped from the log (what
//!   [`Storage::snapshot_meta`] returns; absent before the first
//!   bootstrap, install or compaction); `membership`, the membership saved
//!   after the last applied change, with its index. No other key.
//! - `data` and `meta`: the application's. They are created here and the
//!   application writes them through [`RocksStorage::db`], in its own
//!   batches (entry effects together with the applied index), with the
//!   write-ahead log enabled.
//!
//! Every record is crc32-framed ([`codec`](super::codec)); a mismatch is a
//! [`StorageError::Corruption`] naming the index and the column family.
//!
//! Invariants:
//! - `raft_log` holds exactly the indexes `(prefix index, last index]`,
//!   without gaps. [`RocksStorage::open`] checks this and the crc32 of
//!   every entry before anything is served. Entries are dropped (by
//!   compaction, installation or a conflicting append) with one range
//!   deletion in the same batch as the record that makes the new bounds
//!   true, so the bounds and the keys never disagree after a crash.
//! - Compaction and installation are synced writes of the one shared
//!   write-ahead log: they make every earlier write durable first,
//!   the application's unsynced writes included, so the log never loses
//!   entries whose effects could still be lost.
//! - Only small caches live in memory (hard state, compacted prefix,
//!   saved membership, last index). A cache changes only after the write
//!   that makes it true succeeded, so a failed write leaves the storage as
//!   it was.
//! - [`Storage::persist`] is one `WriteBatch` written with `sync` when
//!   [`PersistBatch::must_sync`]: one fsync per `Ready` (group commit),
//!   atomic across a crash.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    AsColumnFamilyRef, ColumnFamilyDescriptor, DB, DBCompressionType, FlushOptions, Options,
    ReadOptions, WriteBatch, WriteOptions,
};
use tracing::{debug, info, warn};

use crate::core::{Entry, HardState, LogIndex, Membership, SnapshotMeta, StorageError, Term};
use crate::storage::codec::{
    corruption, decode_entry, decode_hard_state, decode_index_key, decode_membership,
    decode_snapshot_meta, encode_entry, encode_hard_state, encode_membership, encode_snapshot_meta,
    index_key,
};
use crate::storage::entry_cache::EntryCache;
use crate::storage::term_runs::TermRuns;
use crate::storage::{InitialState, PersistBatch, Storage, WalBound, takes_direct_writes};

/// The column family of the Raft log: index (big-endian) -> entry.
pub const CF_RAFT_LOG: &str = "raft_log";
/// The column family of the hard state, compacted prefix and saved
/// membership.
pub const CF_RAFT_STATE: &str = "raft_state";
/// The application's column family for its data.
pub const CF_DATA: &str = "data";
/// The application's column family for its metadata (applied index, ...).
pub const CF_META: &str = "meta";

/// Every column family of the database, created on open.
const COLUMN_FAMILIES: [&str; 4] = [CF_RAFT_LOG, CF_RAFT_STATE, CF_DATA, CF_META];

const KEY_HARD_STATE: &str = "hard_state";
const KEY_PREFIX: &str = "compacted_prefix";
const KEY_MEMBERSHIP: &str = "membership";

/// Every key `raft_state` may hold; `open` refuses any other.
const STATE_KEYS: [&str; 3] = [KEY_HARD_STATE, KEY_PREFIX, KEY_MEMBERSHIP];

/// The prefix of every key of the pre-release layout that stored snapshot
/// data in `raft_state` (`snapshot`, whose record held a data id and size,
/// `snapshot_staged` and `snapshot_chunk/...`): such a database cannot be
/// opened.
const LEGACY_KEY_PREFIX: &str = "snapshot";

/// The memory all memtables together may use before RocksDB starts
/// flushing them (128 MiB): a flush trigger, not a hard cap.
pub const MEMTABLES_BYTES_MAX: usize = 128 << 20;

/// The write-ahead log files kept before RocksDB flushes the column
/// families that hold them back (16 MiB). Every write goes to the WAL
/// first, the log entry and the application's effect alike, so without a
/// bound the WAL alone held twice the data written since the quietest
/// family (`raft_state`, `meta`) last flushed: about 3x the live data on
/// disk after 80 MiB of writes, measured. 16 MiB keeps that to a small
/// constant over the live data. The bound also paces the flushes of
/// `raft_log`, whose memtable holds the log's live tail: each flush writes
/// that tail to a file only to delete it soon after, so compaction keeps
/// the tail well below it while the followers keep up
/// (`NodeOptions::compact_keep_bytes`, docs/raft.md "Compaction").
/// 64 MiB was tried (2026-12-06): shard moves ran 9 % faster, but puts
/// from 64 clients on a fresh store 10-15 % slower, since a WAL file is
/// recycled only after it rotates (docs/shardkv.md "Benches of the whole
/// store"); so the bound is raised only while bulk data is written
/// ([`WalBound`]).
pub const WAL_BYTES_MAX: u64 = 16 << 20;

/// Obsolete write-ahead log files kept for reuse (one, at most about
/// [`WAL_BYTES_MAX`]): a recycled file is overwritten in place, so the
/// fsync of every synced write skips the inode update a growing file needs.
/// A kept file stays on disk, so a store's WAL may hold up to
/// `1 + WAL_FILES_RECYCLED` files of about [`WAL_BYTES_MAX`] once writes
/// stop; four were no faster than one in `raft-bench`
/// (docs/performance.md).
pub const WAL_FILES_RECYCLED: usize = 1;

/// Returns the bytes of log entries appended between two flushes of
/// `raft_log` by compactions under the WAL bound `wal_bytes` (half of it):
/// often enough to keep the WAL near its bound, seldom enough that the
/// log's live tail, written by each flush, is a small part of what was
/// appended.
fn log_flush_bytes(wal_bytes: u64) -> u64 {
    wal_bytes / 2
}

/// Bytes appended to the WAL after which RocksDB starts writing them back
/// in the background (1 MiB), ahead of the fsync that must wait for them.
const WAL_BACKGROUND_SYNC_BYTES: u64 = 1 << 20;

/// Memtables `raft_log` may hold, the one written and those waiting for
/// their flush, before RocksDB stops writes (RocksDB's default is two).
const LOG_MEMTABLES_MAX: i32 = 4;

/// The bytes of the newest entries kept in memory once written (4 MiB),
/// read back by every replica when it applies them and by a leader
/// sending them to a follower a little behind.
const ENTRY_CACHE_BYTES_MAX: u64 = 4 << 20;

/// Values of at least this size (4 KiB) are stored in blob files next to
/// the `data` family's tables, not in them: written once, at the flush,
/// instead of again at every level compaction. Smaller values stay inline,
/// where a read costs one lookup.
const BLOB_VALUE_BYTES_MIN: u64 = 4 << 10;

/// The durable state mirrored in memory.
#[derive(Clone, Debug, Default)]
struct Cache {
    hard_state: HardState,
    /// The compacted prefix; index 0, term 0 and no membership when there
    /// is none (a joining node before its first snapshot).
    prefix: SnapshotMeta,
    /// The membership saved by the driver and the index it is as of.
    membership: Option<(LogIndex, Membership)>,
    /// Invariant: `raft_log` holds exactly `(prefix.index, last_index]`.
    last_index: LogIndex,
    /// The terms of the entries `raft_log` holds.
    terms: TermRuns,
}

/// The Raft log storage of one node over a RocksDB database it shares
/// with the application.
pub struct RocksStorage {
    db: Arc<DB>,
    path: PathBuf,
    cache: Cache,
    /// Bytes of entries appended since `raft_log` was last flushed by a
    /// compaction (`reclaim_log_files`).
    log_bytes_unflushed: u64,
    /// The WAL bound the paced flushes of `raft_log` follow.
    wal_bound: WalBound,
    /// The newest entries, as stored.
    entry_cache: EntryCache,
}

impl fmt::Debug for RocksStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksStorage")
            .field("path", &self.path)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// Turns the blob garbage collection of the `data` family off
/// (`deferred`) or back on, in this process's RocksDB. While a group
/// installs moved shards its compactions meet only fresh, live blobs, and
/// relocating the oldest of them (what blob GC does at every compaction)
/// cost about a third of a large move's time (docs/raft-storage.md); the
/// group defers the collection until it installs nothing. Only where
/// bytes sit on disk changes: reads and what is stored do not.
///
/// # Errors
/// [`StorageError::Io`] if RocksDB refuses the option change.
pub fn defer_blob_gc(db: &DB, deferred: bool) -> Result<(), StorageError> {
    let data = db
        .cf_handle(CF_DATA)
        .ok_or_else(|| StorageError::Io(format!("missing {CF_DATA} column family")))?;
    let enabled = if deferred { "false" } else { "true" };
    db.set_options_cf(data, &[("enable_blob_garbage_collection", enabled)])
        .map_err(io_error(format_args!(
            "setting enable_blob_garbage_collection={enabled} on {CF_DATA}"
        )))
}

/// Returns the text of the newest OPTIONS file RocksDB wrote in `dir`: the
/// options the store there runs with, as RocksDB applied them (changes
/// made while it runs included), for diagnostics and tests.
///
/// # Errors
/// [`StorageError::Io`] if the dir cannot be read or holds no OPTIONS file.
pub fn applied_options(dir: &Path) -> Result<String, StorageError> {
    let io = |error: std::io::Error| StorageError::Io(format!("{}: {error}", dir.display()));
    let mut newest: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let number = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_prefix("OPTIONS-"))
            .and_then(|number| number.parse::<u64>().ok());
        if let Some(number) = number
            && newest.as_ref().is_none_or(|(seen, _)| number > *seen)
        {
            newest = Some((number, path));
        }
    }
    let (_, path) =
        newest.ok_or_else(|| StorageError::Io(format!("no OPTIONS file in {}", dir.display())))?;
    std::fs::read_to_string(&path).map_err(io)
}

/// Returns the value of the database-wide option `name` (in the
/// `[DBOptions]` section) of the options RocksDB applied in `dir`
/// ([`applied_options`]); `None` if that section does not set it.
///
/// # Errors
/// As [`applied_options`].
pub fn applied_db_option(dir: &Path, name: &str) -> Result<Option<String>, StorageError> {
    Ok(option_in_section(
        &applied_options(dir)?,
        "[DBOptions]",
        name,
    ))
}

/// Returns the value of the option `name` of the column family `family`
/// (in its `[CFOptions "family"]` section) of the options RocksDB applied
/// in `dir` ([`applied_options`]); `None` if that section does not set it.
///
/// # Errors
/// As [`applied_options`].
pub fn applied_family_option(
    dir: &Path,
    family: &str,
    name: &str,
) -> Result<Option<String>, StorageError> {
    let header = format!("[CFOptions \"{family}\"]");
    Ok(option_in_section(&applied_options(dir)?, &header, name))
}

/// Returns the value of `name` in the section of an OPTIONS file `text`
/// that starts with `header`.
fn option_in_section(text: &str, header: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    text.split(header)
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .and_then(|section| {
            section
                .lines()
                .map(str::trim)
                .find_map(|line| line.strip_prefix(prefix.as_str()))
        })
        .map(str::to_string)
}

/// Returns a mapper of RocksDB errors to [`StorageError::Io`] saying what
/// was being done.
fn io_error(context: impl fmt::Display) -> impl FnOnce(rocksdb::Error) -> StorageError {
    move |error| StorageError::Io(format!("{context}: {error}"))
}

/// Opens (creating if missing) the database at `dir` with every column
/// family.
fn open_db(dir: &Path) -> Result<DB, StorageError> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_compression_type(DBCompressionType::Lz4);
    // The node's thread does nearly all writes: concurrent memtable
    // inserts would only cost each insert a fresh skip-list search, where
    // a single writer reuses the last insert's position for the log's
    // ascending keys.
    options.set_allow_concurrent_memtable_write(false);
    // One budget for the memtables of every column family, so a replica's
    // memory stays flat whatever the load (1 MiB values fill a 64 MiB
    // memtable per family in 64 writes, and each family may hold two).
    options.set_db_write_buffer_size(MEMTABLES_BYTES_MAX);
    options.set_max_total_wal_size(WAL_BYTES_MAX);
    // Flushes and compactions write their files once and sequentially:
    // with direct writes they skip the copy into the page cache, the
    // largest single cost of a shard move (docs/raft-storage.md "Direct
    // writes"). The WAL stays buffered: RocksDB appends to it in pieces
    // of any size and every Raft write syncs it.
    let direct = takes_direct_writes(dir);
    if !direct {
        info!(dir = %dir.display(), "the file system refuses direct writes: flushes and compactions go through the page cache");
    }
    options.set_use_direct_io_for_flush_and_compaction(direct);
    // Start writing the WAL back every 1 MiB (`sync_file_range`, in the
    // background) instead of leaving it all to the next fsync: a move's
    // 1 MiB entries otherwise wait for the whole of it at every sync
    // (docs/raft-storage.md "Direct writes").
    options.set_wal_bytes_per_sync(WAL_BACKGROUND_SYNC_BYTES);
    // Reuse obsolete WAL files instead of creating new ones: a synced
    // write then overwrites blocks already allocated, and fdatasync has
    // no file size to update (one device write and flush instead of two
    // for the data and the inode; docs/performance.md). Safe with the
    // default point-in-time recovery since RocksDB 9: a recycled file's
    // old records carry the previous log number and are never replayed.
    options.set_recycle_log_file_num(WAL_FILES_RECYCLED);
    let families = COLUMN_FAMILIES.iter().map(|name| {
        let mut family_options = Options::default();
        family_options.set_compression_type(DBCompressionType::Lz4);
        if *name == CF_RAFT_LOG {
            // A flushed file of the log holds its tail, soon dropped: move
            // it out of level 0 at once, where the compaction drops what
            // was truncated meanwhile and whole files below the truncation
            // are deleted without a write (`reclaim_log_files`).
            family_options.set_level_zero_file_num_compaction_trigger(1);
            // The paced flushes and those the WAL bound forces make small
            // memtables of the log (about half the WAL bound); a flush of
            // `data` (64 MiB of a move's values) holds the flush thread
            // meanwhile. With two memtables RocksDB stopped every write
            // whenever two of the log's waited (24-40 times per replica in
            // a 1 GiB move, RocksDB's `LOG`).
            family_options.set_max_write_buffer_number(LOG_MEMTABLES_MAX);
        }
        if *name == CF_DATA {
            // Large values (shard moves install 1 MiB chunks of them) are
            // written once, to blob files, and compactions move only their
            // keys; blob files whose values were overwritten or deleted are
            // rewritten by the compactions that reach them (blob GC). Blobs
            // are not compressed: RocksDB would store an incompressible one
            // compressed anyway, larger, after spending the CPU.
            family_options.set_enable_blob_files(true);
            family_options.set_min_blob_size(BLOB_VALUE_BYTES_MIN);
            family_options.set_enable_blob_gc(true);
        }
        ColumnFamilyDescriptor::new(*name, family_options)
    });
    DB::open_cf_descriptors(&options, dir, families).map_err(io_error(format_args!(
        "opening RocksDB at {}",
        dir.display()
    )))
}

impl RocksStorage {
    /// Returns the storage in the database at `dir`, creating an empty one
    /// if missing. An existing database is read back whole: hard state,
    /// compacted prefix and saved membership, then every log entry, whose
    /// crc32 and position are verified.
    ///
    /// # Errors
    /// [`StorageError::Corruption`] naming the index and column family of
    /// the first bad record or gap, or naming `raft_state` if it holds a
    /// record of the pre-release layout with snapshot data (no migration:
    /// such a database cannot be opened); [`StorageError::Io`] if RocksDB
    /// fails.
    pub fn open(dir: &Path) -> Result<RocksStorage, StorageError> {
        let db = Arc::new(open_db(dir)?);
        let mut storage = RocksStorage {
            wal_bound: WalBound::new(Arc::clone(&db)),
            db,
            path: dir.to_path_buf(),
            cache: Cache::default(),
            log_bytes_unflushed: 0,
            entry_cache: EntryCache::new(ENTRY_CACHE_BYTES_MAX),
        };
        storage.check_state_keys()?;
        storage.cache = storage.load_state()?;
        (storage.cache.last_index, storage.cache.terms) = storage.verify_log()?;
        Ok(storage)
    }

    /// Makes an empty store the first node of a group with `membership`:
    /// an empty compacted prefix at index 1, term 1 carries it (like
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
        let prefix = SnapshotMeta {
            index: LogIndex(1),
            term: Term(1),
            membership,
        };
        let mut batch = WriteBatch::default();
        let record = encode_snapshot_meta(&prefix);
        batch.put_cf(&self.cf(CF_RAFT_STATE)?, KEY_PREFIX, record);
        self.write(batch, true, "bootstrapping")?;
        self.cache.last_index = prefix.index;
        self.cache.prefix = prefix;
        Ok(())
    }

    /// Returns whether the store holds no Raft state at all: no hard state,
    /// compacted prefix, saved membership or entry.
    pub fn is_empty(&self) -> bool {
        let cache = &self.cache;
        cache.hard_state == HardState::default()
            && cache.prefix == SnapshotMeta::default()
            && cache.membership.is_none()
            && cache.last_index == LogIndex(0)
    }

    /// Returns the database, shared with the application, which writes the
    /// [`CF_DATA`] and [`CF_META`] column families (with the write-ahead
    /// log enabled, so a synced Raft write makes them durable too) and
    /// must leave [`CF_RAFT_LOG`] and [`CF_RAFT_STATE`] alone.
    pub fn db(&self) -> Arc<DB> {
        Arc::clone(&self.db)
    }

    /// Returns the handle on the database's WAL bound, which the
    /// application raises while it writes bulk data.
    pub fn wal_bound(&self) -> WalBound {
        self.wal_bound.clone()
    }

    /// Returns the directory of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the column family `name` (whichever handle type the
    /// rocksdb thread mode gives).
    fn cf(&self, name: &str) -> Result<impl AsColumnFamilyRef + '_, StorageError> {
        self.db.cf_handle(name).ok_or_else(|| {
            StorageError::Io(format!(
                "column family {name} missing in {}",
                self.path.display()
            ))
        })
    }

    /// Returns where a record lives, for errors: the column family and the
    /// database directory.
    fn location(&self, column_family: &str) -> String {
        format!("column family {column_family} of {}", self.path.display())
    }

    /// Returns where the `raft_state` record `key` lives, for errors.
    fn state_location(&self, key: &str) -> String {
        format!("{} key {key}", self.location(CF_RAFT_STATE))
    }

    /// Writes `batch`, synced or not; unsynced writes still go to the WAL
    /// in order, so a later synced write makes them durable too.
    fn write(
        &self,
        batch: WriteBatch,
        sync: bool,
        context: impl fmt::Display,
    ) -> Result<(), StorageError> {
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.db
            .write_opt(batch, &options)
            .map_err(io_error(context))
    }

    /// Returns the raw value of `key` in `raft_state`, if any.
    fn get_state(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.db
            .get_cf(&self.cf(CF_RAFT_STATE)?, key)
            .map_err(io_error(format_args!("reading {key}")))
    }

    /// Fails on any `raft_state` key outside [`STATE_KEYS`]: a record of
    /// the pre-release layout that stored snapshot data, or garbage. The
    /// scan is short: the column family holds at most three records.
    fn check_state_keys(&self) -> Result<(), StorageError> {
        let mut iterator = self.db.raw_iterator_cf(&self.cf(CF_RAFT_STATE)?);
        iterator.seek_to_first();
        while let Some(key) = iterator.key() {
            if !STATE_KEYS.iter().any(|known| key == known.as_bytes()) {
                let name = String::from_utf8_lossy(key);
                let detail = if key.starts_with(LEGACY_KEY_PREFIX.as_bytes()) {
                    "a record of the pre-release layout that stored snapshot data in \
                     raft_state; this database predates compaction without copies and \
                     cannot be opened (no migration: start the node from an empty \
                     directory)"
                        .to_string()
                } else {
                    "unknown record".to_string()
                };
                return Err(corruption(LogIndex(0), &self.state_location(&name), detail));
            }
            iterator.next();
        }
        iterator.status().map_err(io_error(format_args!(
            "reading {}",
            self.location(CF_RAFT_STATE)
        )))
    }

    /// Reads the records of `raft_state` into a cache (without the last
    /// index, which [`RocksStorage::verify_log`] establishes).
    fn load_state(&self) -> Result<Cache, StorageError> {
        let hard_state = match self.get_state(KEY_HARD_STATE)? {
            Some(record) => decode_hard_state(&self.state_location(KEY_HARD_STATE), &record)?,
            None => HardState::default(),
        };
        let prefix = match self.get_state(KEY_PREFIX)? {
            Some(record) => decode_snapshot_meta(&self.state_location(KEY_PREFIX), &record)?,
            None => SnapshotMeta::default(),
        };
        let membership = match self.get_state(KEY_MEMBERSHIP)? {
            Some(record) => Some(decode_membership(
                &self.state_location(KEY_MEMBERSHIP),
                &record,
            )?),
            None => None,
        };
        Ok(Cache {
            hard_state,
            last_index: prefix.index,
            prefix,
            membership,
            terms: TermRuns::default(),
        })
    }

    /// Reads every log entry, checking its crc32 and that the log continues
    /// the compacted prefix without gaps (an entry left below it is a gap
    /// too); returns the last index and the entries' terms. Compacted
    /// entries are hidden by their range deletion, which iteration honours.
    fn verify_log(&self) -> Result<(LogIndex, TermRuns), StorageError> {
        let location = self.location(CF_RAFT_LOG);
        let prefix_index = self.cache.prefix.index;
        let mut iterator = self.db.raw_iterator_cf(&self.cf(CF_RAFT_LOG)?);
        iterator.seek_to_first();
        let mut expected = prefix_index.next();
        let mut terms = TermRuns::default();
        while let Some((key, record)) = iterator.item() {
            let Some(index) = decode_index_key(key) else {
                let detail = format!("malformed log key {key:?}");
                return Err(corruption(expected, &location, detail));
            };
            if index != expected {
                let detail = format!(
                    "found index {index} where the log (after the compacted prefix at \
                     {prefix_index}) continues at {expected}"
                );
                return Err(corruption(index.min(expected), &location, detail));
            }
            terms.append(index, decode_entry(index, &location, record)?.term);
            expected = expected.next();
            iterator.next();
        }
        iterator
            .status()
            .map_err(io_error(format_args!("reading {location}")))?;
        Ok((expected.prev(), terms))
    }

    /// Reads the entries `[low, high)` from `raft_log`, as many as fit in
    /// `bytes_max` (at least one).
    fn read_entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        bytes_max: u64,
    ) -> Result<Vec<Entry>, StorageError> {
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

    /// Gives back the space of the `raft_log` entries up to `index`, which
    /// a compaction dropped, and paces the WAL. Deletes the table files
    /// below level 0 that hold only dropped entries (no write). Once
    /// half the WAL bound of entries were appended since the last time,
    /// starts a flush of `raft_log` without waiting for it: dropped entries
    /// still in the memtable die there (the flush drops what the range
    /// deletion covers), only the live tail is written, and the flush
    /// switches RocksDB to a new WAL file, the only point where it holds
    /// the WAL to its bound. A flushed file leaves level 0 at once
    /// (`raft_log` compacts at one file), dropping what was truncated
    /// meanwhile. No manual compaction: RocksDB flushes the memtable first
    /// whenever the range deletion overlaps it, that is at every compaction
    /// (docs/raft-storage.md). Best effort: a failure only delays the
    /// space.
    fn reclaim_log_files(&mut self, index: LogIndex) {
        let Ok(log) = self.cf(CF_RAFT_LOG) else {
            return;
        };
        let (from, to) = (index_key(LogIndex(0)), index_key(index));
        if let Err(error) = self.db.delete_file_in_range_cf(&log, &from, &to) {
            warn!(%error, "deleting the compacted log's files failed");
        }
        if self.log_bytes_unflushed < log_flush_bytes(self.wal_bound.bytes())
            || self.log_flush_pending(&log)
        {
            return;
        }
        let mut flush = FlushOptions::default();
        flush.set_wait(false);
        let flushed = self.db.flush_cf_opt(&log, &flush);
        drop(log);
        match flushed {
            Ok(()) => self.log_bytes_unflushed = 0,
            Err(error) => warn!(%error, "flushing the compacted log failed"),
        }
    }

    /// Whether a memtable of `raft_log` still waits for its flush: a
    /// paced flush then waits too, rather than queue another memtable.
    fn log_flush_pending(&self, log: &impl AsColumnFamilyRef) -> bool {
        self.db
            .property_int_value_cf(log, "rocksdb.num-immutable-mem-table")
            .ok()
            .flatten()
            .is_some_and(|waiting| waiting > 0)
    }

    /// Adds to `batch` the new compacted prefix `prefix` and the deletion
    /// of every entry up to `drop_through`, which is `prefix.index` or
    /// past the last entry (one range deletion, from index 0 so that
    /// nothing can linger below the prefix), and sets them in `next`.
    fn replace_prefix(
        &self,
        next: &mut Cache,
        batch: &mut WriteBatch,
        prefix: SnapshotMeta,
        drop_through: LogIndex,
    ) -> Result<(), StorageError> {
        let (state, log) = (&self.cf(CF_RAFT_STATE)?, &self.cf(CF_RAFT_LOG)?);
        batch.put_cf(state, KEY_PREFIX, encode_snapshot_meta(&prefix));
        batch.delete_range_cf(log, index_key(LogIndex(0)), index_key(drop_through.next()));
        if drop_through >= next.last_index {
            next.last_index = prefix.index;
            next.terms.clear();
        } else {
            next.terms.drop_through(drop_through);
        }
        next.prefix = prefix;
        Ok(())
    }

    /// Installs the restored snapshot `meta` into `next` and `batch` (§7):
    /// it becomes the compacted prefix; the entries after it stay if the
    /// log holds its last entry (same index and term), every entry is
    /// dropped otherwise.
    fn install(
        &self,
        next: &mut Cache,
        batch: &mut WriteBatch,
        meta: &SnapshotMeta,
    ) -> Result<(), StorageError> {
        let holds_last = meta.index >= next.prefix.index
            && meta.index <= next.last_index
            && self.term(meta.index)? == meta.term;
        let drop_through = if holds_last {
            meta.index
        } else {
            next.last_index.max(meta.index)
        };
        self.replace_prefix(next, batch, meta.clone(), drop_through)
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
        let prefix_index = next.prefix.index;
        if first.index <= prefix_index || first.index > next.last_index.next() {
            return Err(StorageError::Io(format!(
                "append at {} outside the log ({}..={})",
                first.index,
                prefix_index.next(),
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
            next.terms.append(entry.index, entry.term);
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
        let prefix = &self.cache.prefix;
        let membership = match &self.cache.membership {
            Some((index, membership)) if *index >= prefix.index => membership.clone(),
            _ => prefix.membership.clone(),
        };
        Ok(InitialState {
            hard_state: self.cache.hard_state,
            membership,
        })
    }

    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        bytes_max: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low <= self.cache.prefix.index {
            return Err(StorageError::Compacted);
        }
        assert!(
            high <= self.cache.last_index.next(),
            "entries past the log end: {high}"
        );
        if let Some(cached) = self.entry_cache.get(low, high, bytes_max) {
            debug_assert_eq!(
                Ok(&cached),
                self.read_entries(low, high, bytes_max).as_ref(),
                "the cached entries are the stored ones"
            );
            return Ok(cached);
        }
        self.read_entries(low, high, bytes_max)
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        let prefix = &self.cache.prefix;
        if index < prefix.index {
            return Err(StorageError::Compacted);
        }
        if index == prefix.index {
            return Ok(prefix.term);
        }
        if index > self.cache.last_index {
            return Err(StorageError::Io(format!(
                "term of index {index} past the log end"
            )));
        }
        let term = self.cache.terms.term(index).ok_or_else(|| {
            corruption(
                index,
                &self.location(CF_RAFT_LOG),
                "no term recorded".into(),
            )
        })?;
        debug_assert_eq!(
            term,
            self.read_entry(index)?.term,
            "the recorded term of index {index} is the stored entry's"
        );
        Ok(term)
    }

    fn first_index(&self) -> LogIndex {
        self.cache.prefix.index.next()
    }

    fn last_index(&self) -> LogIndex {
        self.cache.last_index
    }

    fn snapshot_meta(&self) -> SnapshotMeta {
        self.cache.prefix.clone()
    }

    fn compact(&mut self, index: LogIndex, membership: Membership) -> Result<(), StorageError> {
        if index <= self.cache.prefix.index {
            return Ok(());
        }
        let term = self.term(index)?;
        let prefix = SnapshotMeta {
            index,
            term,
            membership,
        };
        let mut next = self.cache.clone();
        let mut batch = WriteBatch::default();
        self.replace_prefix(&mut next, &mut batch, prefix, index)?;
        // Synced: the application's writes up to `index` reach the disk
        // (same write-ahead log) before the entries that replay them go.
        self.write(
            batch,
            true,
            format_args!("compacting the log up to {index}"),
        )?;
        debug!(index = index.0, term = term.0, "log compacted");
        self.cache = next;
        self.entry_cache
            .retain_within(self.cache.prefix.index, self.cache.last_index);
        self.reclaim_log_files(index);
        Ok(())
    }

    fn persist(&mut self, batch: &PersistBatch<'_>) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let sync = batch.must_sync(&self.cache.hard_state);
        let mut next = self.cache.clone();
        let mut write = WriteBatch::default();
        if let Some(meta) = batch.snapshot {
            self.install(&mut next, &mut write, meta)?;
        }
        self.append(&mut next, &mut write, batch.entries)?;
        let appended: u64 = batch.entries.iter().map(Entry::size_bytes).sum();
        if let Some(hard_state) = batch.hard_state {
            let state = &self.cf(CF_RAFT_STATE)?;
            write.put_cf(state, KEY_HARD_STATE, encode_hard_state(hard_state));
            next.hard_state = *hard_state;
        }
        self.write(write, sync, "persisting a ready")?;
        self.cache = next;
        self.entry_cache
            .retain_within(self.cache.prefix.index, self.cache.last_index);
        self.entry_cache.append(batch.entries);
        self.log_bytes_unflushed += appended;
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
        let context = format_args!("saving the membership at {index}");
        self.write(batch, true, context)?;
        self.cache.membership = Some((index, membership.clone()));
        Ok(())
    }
}
