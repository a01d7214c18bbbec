//! The group's state machine over RocksDB (DESIGN.md "Storage layout"):
//! the driver's [`StateMachine`] for a group replica.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `data` | `[shard u32 BE][user key]` | the value |
//! | `meta` | `group/table` | `shardkv.v1.ShardTableRecord`: gid, configuration, shard states, install positions |
//! | `meta` | `group/session/...`, `group/journal/...` | the client sessions ([`crate::session_records`]) |
//! | `meta` | `applied_index`, `restoring_snapshot` | `raft::app_meta`'s |
//!
//! Invariants:
//! - Applying a run of entries writes their data changes, the sessions
//!   (as a journal record) and table they changed, and the applied index
//!   in one WriteBatch, so a restart resumes exactly after the last
//!   applied entry; reads within the run see the run's own writes.
//! - The snapshot is the `data` column family and the `group/` keys of
//!   `meta`, read from a pinned view; the applied index and the restore
//!   mark are not part of it.
//! - A data dir holds one group: opening it as another gid, or with
//!   another shard count, is refused.
//! - Every batch that changes the shard table is a change of the table
//!   the store publishes to its readers ([`crate::published`]), begun
//!   before the batch is written and published after, as is a snapshot's
//!   restore; a Get routes with the published table.
//! - The `data` family's blob GC is off while a shard is `Pulling` here
//!   or its blob files hold little garbage, and on otherwise (a physical
//!   setting of this replica, not state).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;
use proto::config::{Config, GroupId, ShardId};
use proto::shardkv::v1 as pb;
use raft::app_meta;
use raft::app_snapshot::{self, Part};
use raft::core::{Entry, EntryKind, LogIndex, RestorePoint, StorageError, Term};
use raft::driver::{SnapshotSource, StateMachine};
use raft::storage::{CF_DATA, CF_META, RocksStorage, WalBound, defer_blob_gc};
use rocksdb::{DB, WriteBatch};

use crate::machine::{
    Applied, Changes, GroupCommand, GroupMachine, InstallPosition, ShardChunk, ShardData, cut_chunk,
};
use crate::metrics;
use crate::published::{Published, Publisher, publish};
use crate::session_records::{self, Journal};
use crate::shards::{NotServed, ShardState, ShardTable};

/// The prefix of the group's records in `meta`.
const GROUP_PREFIX: &[u8] = b"group/";
/// The key of the shard table record.
const TABLE_KEY: &[u8] = b"group/table";
/// Blob GC starts once garbage is at least 1/4 of the blob bytes.
const BLOB_GC_START_DIVISOR: u64 = 4;
/// Blob GC, once started, goes on while garbage is at least 1/16 of them.
const BLOB_GC_STOP_DIVISOR: u64 = 16;
/// What a snapshot holds.
const SNAPSHOT_PARTS: [Part; 2] = [
    Part::whole(CF_DATA),
    Part {
        cf: CF_META,
        prefix: GROUP_PREFIX,
    },
];

/// The group's data in RocksDB, written through a batch the store commits
/// once per applied run; reads see the batch's own writes first.
pub struct RocksData {
    db: Arc<DB>,
    batch: WriteBatch,
    /// Keys written by the batch: `None` for a deletion.
    written: BTreeMap<(ShardId, Bytes), Option<Bytes>>,
    /// Shards the batch deleted whole.
    dropped: HashSet<ShardId>,
    /// The `data` key being written, kept to spare an allocation per write.
    key: Vec<u8>,
}

impl RocksData {
    fn new(db: Arc<DB>) -> RocksData {
        RocksData {
            db,
            batch: WriteBatch::default(),
            written: BTreeMap::new(),
            dropped: HashSet::new(),
            key: Vec::new(),
        }
    }

    /// Returns the batch of the writes so far and starts a new one.
    fn take_batch(&mut self) -> WriteBatch {
        self.written.clear();
        self.dropped.clear();
        std::mem::take(&mut self.batch)
    }

    fn data_cf(&self) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(CF_DATA)
            .expect("column families are checked at open")
    }
}

/// Returns the `data` key of `key` in `shard`.
fn data_key(shard: ShardId, key: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(4 + key.len());
    put_data_key(&mut stored, shard, key);
    stored
}

/// Sets `stored` to the `data` key of `key` in `shard`.
fn put_data_key(stored: &mut Vec<u8>, shard: ShardId, key: &[u8]) {
    stored.clear();
    stored.extend_from_slice(&shard.0.to_be_bytes());
    stored.extend_from_slice(key);
}

impl ShardData for RocksData {
    fn get(&self, shard: ShardId, key: &[u8]) -> Option<Bytes> {
        if let Some(written) = self.written.get(&(shard, Bytes::copy_from_slice(key))) {
            return written.clone();
        }
        if self.dropped.contains(&shard) {
            return None;
        }
        self.db
            .get_cf(self.data_cf(), data_key(shard, key))
            .unwrap_or_else(|error| panic!("reading the group's data failed, stopping: {error}"))
            .map(Bytes::from)
    }

    fn put(&mut self, shard: ShardId, key: Bytes, value: Bytes) {
        let cf = self.db.cf_handle(CF_DATA).expect("checked at open");
        put_data_key(&mut self.key, shard, &key);
        self.batch.put_cf(cf, &self.key, &value);
        self.written.insert((shard, key), Some(value));
    }

    fn delete(&mut self, shard: ShardId, key: &[u8]) {
        let cf = self.db.cf_handle(CF_DATA).expect("checked at open");
        self.batch.delete_cf(cf, data_key(shard, key));
        self.written
            .insert((shard, Bytes::copy_from_slice(key)), None);
    }

    fn delete_shard(&mut self, shard: ShardId) {
        let cf = self.db.cf_handle(CF_DATA).expect("checked at open");
        let end = shard
            .0
            .checked_add(1)
            .expect("shard ids are below u32::MAX");
        self.batch
            .delete_range_cf(cf, shard.0.to_be_bytes(), end.to_be_bytes());
        self.written.retain(|(written, _), _| *written != shard);
        self.dropped.insert(shard);
    }
}

/// What a Get routes with, as the store publishes it.
#[derive(Debug)]
enum Routing {
    /// The shard table as applied.
    Table(ShardTable),
    /// A snapshot up to this index is being restored: the data is partial.
    Restoring(LogIndex),
}

impl Routing {
    /// Returns the routing of a store holding `table`, or restoring
    /// `restoring`.
    fn of(restoring: Option<&RestorePoint>, table: &ShardTable) -> Routing {
        match restoring {
            Some(point) => Routing::Restoring(point.index),
            None => Routing::Table(table.clone()),
        }
    }
}

/// Reads the group's state from any task (the node's task writes it): a
/// key is routed and read against one consistent view, so a shard that has
/// just moved away never answers.
#[derive(Clone)]
pub struct GroupReader {
    db: Arc<DB>,
    gid: GroupId,
    shard_count: u32,
    /// The table (or restore) the store published last.
    routing: Published<Routing>,
}

impl GroupReader {
    /// Returns a receiver marked changed whenever the store publishes a
    /// new table or begins or ends a restore.
    pub fn table_changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.routing.subscribe()
    }

    /// Returns the shard table as applied so far: the one the store
    /// published, else (a change or a restore under way) the stored one.
    ///
    /// # Errors
    ///
    /// [`StorageError::Corruption`] or [`StorageError::Io`] if it cannot
    /// be read.
    pub fn table(&self) -> Result<ShardTable, StorageError> {
        let published = self.routing.read(|routing| match routing {
            Routing::Table(table) => Some(table.clone()),
            Routing::Restoring(_) => None,
        });
        match published.flatten() {
            Some(table) => Ok(table),
            None => self.stored_table(),
        }
    }

    /// Returns the shard table as stored in `meta`.
    fn stored_table(&self) -> Result<ShardTable, StorageError> {
        let meta = self.db.cf_handle(CF_META).expect("checked at open");
        let raw = self
            .db
            .get_cf(meta, TABLE_KEY)
            .map_err(|error| StorageError::Io(format!("reading the shard table: {error}")))?;
        self.decode(raw)
    }

    /// Decodes a stored table record (none: the fresh table).
    fn decode(&self, raw: Option<Vec<u8>>) -> Result<ShardTable, StorageError> {
        match raw {
            Some(raw) => Ok(decode_table(&raw, self.gid, self.shard_count)?.0),
            None => Ok(ShardTable::new(self.gid, self.shard_count)),
        }
    }

    /// Returns the shard table and the install positions as applied so
    /// far.
    ///
    /// # Errors
    ///
    /// [`StorageError::Corruption`] or [`StorageError::Io`] if they cannot
    /// be read.
    pub fn table_and_installing(
        &self,
    ) -> Result<(ShardTable, BTreeMap<ShardId, InstallPosition>), StorageError> {
        let meta = self.db.cf_handle(CF_META).expect("checked at open");
        let raw = self
            .db
            .get_cf(meta, TABLE_KEY)
            .map_err(|error| StorageError::Io(format!("reading the shard table: {error}")))?;
        match raw {
            Some(raw) => decode_table(&raw, self.gid, self.shard_count),
            None => Ok((ShardTable::new(self.gid, self.shard_count), BTreeMap::new())),
        }
    }

    /// Reads the chunk of `shard` at `cursor` for its new owner `to`, in
    /// move `num`: at most `bytes_max` bytes of records (at least one), and
    /// the shard's sessions with the last chunk. `None` unless the shard is
    /// here `Sending` to `to` in configuration `num` (the shard cannot
    /// change then, so chunks read from different views fit together).
    ///
    /// # Errors
    ///
    /// [`StorageError`] if the state cannot be read.
    pub fn read_chunk(
        &self,
        to: GroupId,
        shard: ShardId,
        num: proto::config::ConfigNum,
        cursor: &[u8],
        bytes_max: u64,
    ) -> Result<Option<ShardChunk>, StorageError> {
        let io = |error: rocksdb::Error| StorageError::Io(format!("reading a shard: {error}"));
        let (data, meta) = (
            self.db.cf_handle(CF_DATA).expect("checked at open"),
            self.db.cf_handle(CF_META).expect("checked at open"),
        );
        let view = self.db.snapshot();
        if view
            .get_cf(meta, app_meta::RESTORING_KEY)
            .map_err(io)?
            .is_some()
        {
            return Ok(None);
        }
        let table = self.decode(view.get_cf(meta, TABLE_KEY).map_err(io)?)?;
        if !table.sends(shard, to, num) {
            return Ok(None);
        }
        let prefix = shard.0.to_be_bytes();
        let mut options = rocksdb::ReadOptions::default();
        options.set_snapshot(&view);
        let mut records = self.db.raw_iterator_cf_opt(data, options);
        records.seek(data_key(shard, cursor));
        let shard_records = std::iter::from_fn(|| {
            let (key, value) = (records.key()?, records.value()?);
            let user_key = key.strip_prefix(&prefix[..])?;
            let record = (
                Bytes::copy_from_slice(user_key),
                Bytes::copy_from_slice(value),
            );
            records.next();
            Some(record)
        });
        let (chunk, next_cursor, last) = cut_chunk(shard_records, cursor, bytes_max);
        records.status().map_err(io)?;
        let sessions = if last {
            session_records::read_shard(&self.db, &view, shard)?
        } else {
            Vec::new()
        };
        Ok(Some(ShardChunk {
            shard,
            num,
            cursor: Bytes::copy_from_slice(cursor),
            next_cursor,
            records: chunk,
            sessions,
            last,
        }))
    }

    /// Returns how many keys and sessions of `shard` this replica stores
    /// (both 0 once a moved shard was deleted here).
    ///
    /// # Errors
    ///
    /// [`StorageError`] if the state cannot be read.
    pub fn stored(&self, shard: ShardId) -> Result<(usize, usize), StorageError> {
        let io = |error: rocksdb::Error| StorageError::Io(format!("counting a shard: {error}"));
        let data = self.db.cf_handle(CF_DATA).expect("checked at open");
        let view = self.db.snapshot();
        let mut options = rocksdb::ReadOptions::default();
        options.set_snapshot(&view);
        let mut records = self.db.raw_iterator_cf_opt(data, options);
        let prefix = shard.0.to_be_bytes();
        records.seek(prefix);
        let mut keys = 0;
        while records.key().is_some_and(|key| key.starts_with(&prefix)) {
            keys += 1;
            records.next();
        }
        records.status().map_err(io)?;
        Ok((
            keys,
            session_records::read_shard(&self.db, &view, shard)?.len(),
        ))
    }

    /// Returns the value of `key` if its shard is served here, read from
    /// one view of the table and the data.
    ///
    /// # Errors
    ///
    /// [`StorageError::SnapshotUnavailable`] while a snapshot is being
    /// restored; [`StorageError::Corruption`] or [`StorageError::Io`] if
    /// the state cannot be read.
    pub fn get(&self, key: &[u8]) -> Result<Result<Option<Bytes>, NotServed>, StorageError> {
        let shard = ShardId(proto::shard_of_key(key, self.shard_count));
        let data = self.db.cf_handle(CF_DATA).expect("checked at open");
        let published = self.routing.read(|routing| match routing {
            Routing::Restoring(index) => Err(StorageError::SnapshotUnavailable(*index)),
            Routing::Table(table) => {
                routed_read(table, shard, key, |stored| self.db.get_cf(data, stored))
            }
        });
        published.unwrap_or_else(|| self.get_in_one_view(shard, key))
    }

    /// As [`GroupReader::get`], for a read that a change of the table
    /// overlapped: the restore mark, the table and the key from one
    /// RocksDB snapshot.
    fn get_in_one_view(
        &self,
        shard: ShardId,
        key: &[u8],
    ) -> Result<Result<Option<Bytes>, NotServed>, StorageError> {
        let (data, meta) = (
            self.db.cf_handle(CF_DATA).expect("checked at open"),
            self.db.cf_handle(CF_META).expect("checked at open"),
        );
        let view = self.db.snapshot();
        let mark = view
            .get_cf(meta, app_meta::RESTORING_KEY)
            .map_err(key_read_error)?;
        if let Some(point) = app_meta::decode_restore_mark(mark.as_deref())? {
            return Err(StorageError::SnapshotUnavailable(point.index));
        }
        let table = self.decode(view.get_cf(meta, TABLE_KEY).map_err(key_read_error)?)?;
        routed_read(&table, shard, key, |stored| view.get_cf(data, stored))
    }
}

/// Routes `key` of `shard` by `table` and, if the shard is served here,
/// reads its value with `fetch` (given the key's `data` key).
fn routed_read(
    table: &ShardTable,
    shard: ShardId,
    key: &[u8],
    fetch: impl FnOnce(Vec<u8>) -> Result<Option<Vec<u8>>, rocksdb::Error>,
) -> Result<Result<Option<Bytes>, NotServed>, StorageError> {
    if let Err(not_served) = table.route(shard) {
        return Ok(Err(not_served));
    }
    let value = fetch(data_key(shard, key)).map_err(key_read_error)?;
    Ok(Ok(value.map(Bytes::from)))
}

/// Returns the storage error of a failed read of a key.
fn key_read_error(error: rocksdb::Error) -> StorageError {
    StorageError::Io(format!("reading a key: {error}"))
}

/// A group replica's state machine over RocksDB.
pub struct GroupStore {
    db: Arc<DB>,
    gid: GroupId,
    shard_count: u32,
    machine: GroupMachine<RocksData>,
    applied: LogIndex,
    restoring: Option<RestorePoint>,
    /// Publishes the table (or restore) to the readers.
    routing: Publisher<Routing>,
    /// A reader of this store, cloned for each user.
    reader: GroupReader,
    /// When the size estimates were last published.
    estimated: Option<std::time::Instant>,
    /// Whether the `data` family's blob GC is off: a shard is being
    /// pulled here, or there is too little garbage to collect
    /// ([`GroupStore::pace_blob_gc`]).
    blob_gc_deferred: bool,
    /// The database's WAL bound, raised while a shard is pulled here
    /// ([`GroupStore::pace_wal_bound`]).
    wal_bound: WalBound,
    /// The session journal as stored.
    journal: Journal,
}

impl GroupStore {
    /// Opens the state of group `gid` (`shard_count` shards) stored in the
    /// database of `storage`, or a fresh one.
    ///
    /// # Errors
    ///
    /// [`StorageError::Corruption`] if the stored state is damaged or
    /// belongs to another group or shard count; [`StorageError::Io`] if
    /// reading fails.
    pub fn open(
        storage: &RocksStorage,
        gid: GroupId,
        shard_count: u32,
    ) -> Result<GroupStore, StorageError> {
        let db = storage.db();
        for name in [CF_DATA, CF_META] {
            db.cf_handle(name)
                .ok_or_else(|| StorageError::Io(format!("missing {name} column family")))?;
        }
        let applied = app_meta::read_applied(&db)?;
        let restoring = app_meta::read_restore_mark(&db)?;
        let (machine, journal) = load_machine(&db, gid, shard_count)?;
        metrics::observe_table(machine.table());
        let (routing, published) = publish(Routing::of(restoring.as_ref(), machine.table()));
        let reader = GroupReader {
            db: Arc::clone(&db),
            gid,
            shard_count,
            routing: published,
        };
        let mut store = GroupStore {
            db,
            gid,
            shard_count,
            machine,
            applied,
            restoring,
            routing,
            reader,
            estimated: None,
            blob_gc_deferred: false,
            wal_bound: storage.wal_bound(),
            journal,
        };
        store.follow_table();
        Ok(store)
    }

    /// Sets what follows the shard table's states (blob GC, the WAL
    /// bound), after it changed or was read back.
    fn follow_table(&mut self) {
        self.pace_blob_gc();
        self.pace_wal_bound();
    }

    /// Whether a shard is `Pulling` here.
    fn pulling(&self) -> bool {
        self.machine.table().pulling().next().is_some()
    }

    /// Raises the WAL bound while a shard is `Pulling` here and lowers it
    /// once none is ([`WalBound`]): a move's installs, 1 MiB entries
    /// written twice to the WAL, then force four times fewer flushes of
    /// the log's live tail, and small writes keep the bound that suits
    /// them. A refused change is logged and tried again at the next change
    /// of the table; it changes speed, never what is stored.
    fn pace_wal_bound(&self) {
        let pulling = self.pulling();
        if let Err(error) = self.wal_bound.set_bulk(pulling) {
            tracing::warn!(%error, pulling, "could not change the WAL bound");
        }
    }

    /// Runs the `data` family's blob GC only while it has garbage to
    /// collect and no shard is `Pulling` here
    /// ([`raft::storage::defer_blob_gc`]): a move's install compacts only
    /// fresh, live blobs, and without garbage every compaction would
    /// relocate live blobs for nothing. GC starts once garbage is a quarter
    /// of the blob bytes and stops below a sixteenth (RocksDB's own count,
    /// made by the compactions that drop overwritten or deleted values). A
    /// refused option change is logged and retried at the next check; it
    /// changes speed and space, never what is stored.
    fn pace_blob_gc(&mut self) {
        let deferred = self.pulling() || !self.blob_garbage_to_collect();
        if deferred == self.blob_gc_deferred {
            return;
        }
        match defer_blob_gc(&self.db, deferred) {
            Ok(()) => self.blob_gc_deferred = deferred,
            Err(error) => tracing::warn!(%error, deferred, "could not change blob GC"),
        }
    }

    /// Whether the `data` family's blob files hold enough garbage to
    /// collect: a quarter of their bytes to start, a sixteenth to go on.
    fn blob_garbage_to_collect(&self) -> bool {
        let property = |name| self.data_property(name).unwrap_or(0);
        let garbage = property("rocksdb.live-blob-file-garbage-size");
        let total = property("rocksdb.live-blob-file-size");
        let divisor = if self.blob_gc_deferred {
            BLOB_GC_START_DIVISOR
        } else {
            BLOB_GC_STOP_DIVISOR
        };
        total > 0 && garbage >= total / divisor
    }

    /// Returns RocksDB's integer property `name` of the `data` family
    /// (`None` if RocksDB has no value for it).
    fn data_property(&self, name: &str) -> Option<u64> {
        let data = self.db.cf_handle(CF_DATA).expect("checked at open");
        self.db.property_int_value_cf(data, name).ok().flatten()
    }

    /// Returns a reader of this store's state, routing by the table it
    /// applied. It follows this store only: a store opened again over the
    /// same database publishes to its own readers.
    pub fn reader(&self) -> GroupReader {
        self.reader.clone()
    }

    /// Returns the group state machine.
    pub fn machine(&self) -> &GroupMachine<RocksData> {
        &self.machine
    }

    /// Adds to `batch` the records `changes` names, for the run of
    /// entries that ends at `index`.
    fn put_changes(&mut self, batch: &mut WriteBatch, changes: Changes, index: LogIndex) {
        let table = changes.table || changes.installing;
        let machine = &self.machine;
        self.journal.write(
            &self.db,
            batch,
            index,
            &changes.sessions,
            table,
            |shard, client| machine.session(shard, client),
        );
        if table {
            let meta = self.db.cf_handle(CF_META).expect("checked at open");
            batch.put_cf(meta, TABLE_KEY, table_record(&self.machine));
        }
    }

    /// Refreshes the key-count and data-size gauges and checks whether
    /// blob GC should run, at most once a second (RocksDB's own figures,
    /// cheap to read).
    fn observe_estimates(&mut self) {
        if self
            .estimated
            .is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(1))
        {
            return;
        }
        self.estimated = Some(std::time::Instant::now());
        self.pace_blob_gc();
        if let Some(keys) = self.data_property("rocksdb.estimate-num-keys") {
            ::metrics::gauge!(metrics::SHARDKV_KEYS_ESTIMATE).set(keys as f64);
        }
        if let Some(bytes) = self.data_property("rocksdb.estimate-live-data-size") {
            ::metrics::gauge!(metrics::SHARDKV_DATA_BYTES_ESTIMATE).set(bytes as f64);
        }
    }
}

/// Returns the wire form of one shard's state.
pub fn state_record(shard: ShardId, state: ShardState) -> pb::ShardStateRecord {
    let (kind, gid) = match state {
        ShardState::Serving => (pb::ShardStateKind::Serving, GroupId(0)),
        ShardState::Pulling { from } => (pb::ShardStateKind::Pulling, from),
        ShardState::Sending { to } => (pb::ShardStateKind::Sending, to),
        ShardState::Cleaning { from } => (pb::ShardStateKind::Cleaning, from),
    };
    pb::ShardStateRecord {
        shard: shard.0,
        kind: kind as i32,
        gid: gid.0,
    }
}

/// Encodes the table record of `machine`: its shard table and install
/// positions (the `group/table` key of `meta`).
pub fn table_record<D: ShardData>(machine: &GroupMachine<D>) -> Vec<u8> {
    let table = machine.table();
    let states = table
        .states()
        .map(|(shard, state)| state_record(shard, state))
        .collect();
    pb::ShardTableRecord {
        gid: table.gid().0,
        config: Some(table.config().to_proto()),
        states,
        installing: machine
            .installing()
            .iter()
            .map(|(shard, position)| (shard.0, position.cursor.to_vec().into()))
            .collect(),
        installed_bytes: machine
            .installing()
            .iter()
            .map(|(shard, position)| (shard.0, position.bytes))
            .collect(),
    }
    .encode_to_vec()
}

/// Returns the corruption error of a `meta` record at `location`.
pub(crate) fn corruption(location: &str, detail: String) -> StorageError {
    StorageError::Corruption {
        index: LogIndex(0),
        location: location.into(),
        detail,
    }
}

/// Reads the group's machine back from `db` (a fresh one if it has
/// none), and the session journal as stored.
fn load_machine(
    db: &Arc<DB>,
    gid: GroupId,
    shard_count: u32,
) -> Result<(GroupMachine<RocksData>, Journal), StorageError> {
    let meta = db.cf_handle(CF_META).expect("checked at open");
    let io = |error: rocksdb::Error| StorageError::Io(format!("reading the group state: {error}"));
    let data = RocksData::new(Arc::clone(db));
    let Some(raw) = db.get_cf(meta, TABLE_KEY).map_err(io)? else {
        return Ok((
            GroupMachine::new(gid, shard_count, data),
            Journal::default(),
        ));
    };
    let (table, installing) = decode_table(&raw, gid, shard_count)?;
    let (sessions, journal) = session_records::load(db)?;
    let machine = GroupMachine::from_parts(shard_count, table, sessions, installing, data);
    Ok((machine, journal))
}

/// Decodes the table record of group `gid` (`shard_count` shards): the
/// shard table and the install positions.
///
/// # Errors
///
/// [`StorageError::Corruption`] if it does not decode or belongs to
/// another group or shard count.
pub fn decode_table(
    raw: &[u8],
    gid: GroupId,
    shard_count: u32,
) -> Result<(ShardTable, BTreeMap<ShardId, InstallPosition>), StorageError> {
    let location = "meta group/table";
    let record = pb::ShardTableRecord::decode(raw)
        .map_err(|error| corruption(location, format!("does not decode: {error}")))?;
    if record.gid != gid.0 {
        return Err(corruption(
            location,
            format!("the data dir holds group {}, not group {gid}", record.gid),
        ));
    }
    let config = Config::from_proto(
        record
            .config
            .ok_or_else(|| corruption(location, "no configuration".into()))?,
    );
    if config.shard_count() != shard_count as usize {
        return Err(corruption(
            location,
            format!(
                "the data dir holds {} shards, not {shard_count}",
                config.shard_count()
            ),
        ));
    }
    let mut states = BTreeMap::new();
    for state in record.states {
        let other = GroupId(state.gid);
        let decoded = match pb::ShardStateKind::try_from(state.kind) {
            Ok(pb::ShardStateKind::Serving) => ShardState::Serving,
            Ok(pb::ShardStateKind::Pulling) => ShardState::Pulling { from: other },
            Ok(pb::ShardStateKind::Sending) => ShardState::Sending { to: other },
            Ok(pb::ShardStateKind::Cleaning) => ShardState::Cleaning { from: other },
            _ => {
                return Err(corruption(
                    location,
                    format!("shard {} has unknown state {}", state.shard, state.kind),
                ));
            }
        };
        states.insert(ShardId(state.shard), decoded);
    }
    let table =
        ShardTable::from_parts(gid, config, states).map_err(|why| corruption(location, why))?;
    let installing = record
        .installing
        .into_iter()
        .map(|(shard, cursor)| {
            let bytes = record.installed_bytes.get(&shard).copied().unwrap_or(0);
            (ShardId(shard), InstallPosition { cursor, bytes })
        })
        .collect();
    Ok((table, installing))
}

/// Returns the shard count of the group stored in `db`, if it holds one.
///
/// # Errors
///
/// [`StorageError`] if the table record cannot be read or decoded.
pub fn decode_stored_shard_count(
    db: &DB,
    meta: &rocksdb::ColumnFamily,
) -> Result<Option<u32>, StorageError> {
    let raw = db
        .get_cf(meta, TABLE_KEY)
        .map_err(|error| StorageError::Io(format!("reading the shard table: {error}")))?;
    let Some(raw) = raw else {
        return Ok(None);
    };
    let record = pb::ShardTableRecord::decode(&raw[..])
        .map_err(|error| corruption("meta group/table", format!("does not decode: {error}")))?;
    let shards = record.config.map_or(0, |config| config.shards.len());
    Ok(u32::try_from(shards).ok())
}

impl StateMachine for GroupStore {
    type Output = Option<Applied>;

    fn applied_index(&self) -> LogIndex {
        self.applied
    }

    fn apply(&mut self, entry: &Entry) -> Option<Applied> {
        self.apply_batch(std::slice::from_ref(entry))
            .pop()
            .flatten()
    }

    fn apply_batch(&mut self, entries: &[Entry]) -> Vec<Option<Applied>> {
        let Some(last) = entries.last() else {
            return Vec::new();
        };
        let outputs = entries
            .iter()
            .map(|entry| {
                if entry.kind != EntryKind::Normal || entry.data.is_empty() {
                    return None;
                }
                let command = GroupCommand::decode(entry.data.clone()).unwrap_or_else(|error| {
                    panic!(
                        "log entry {} is not a group command, stopping the node: {error}",
                        entry.index.0
                    )
                });
                Some(self.machine.apply(command))
            })
            .collect();
        let mut batch = self.machine.data_mut().take_batch();
        let changes = self.machine.take_changes();
        let table_changed = changes.table;
        if table_changed {
            metrics::observe_table(self.machine.table());
        }
        self.put_changes(&mut batch, changes, last.index);
        app_meta::put_applied(&self.db, &mut batch, last.index)
            .unwrap_or_else(|error| panic!("{error}"));
        let change = table_changed.then(|| self.routing.begin());
        if let Err(error) = self.db.write(batch) {
            panic!("group state write failed, stopping the node: {error}");
        }
        if let Some(change) = change {
            change.publish(Routing::Table(self.machine.table().clone()));
        }
        self.applied = last.index;
        if table_changed {
            self.follow_table();
        }
        self.observe_estimates();
        outputs
    }

    fn snapshot_source(&self) -> Result<Box<dyn SnapshotSource>, StorageError> {
        app_snapshot::pin(Arc::clone(&self.db), &SNAPSHOT_PARTS)
    }

    fn restoring(&self) -> Option<RestorePoint> {
        self.restoring.clone()
    }

    fn begin_restore(&mut self, index: LogIndex, term: Term) -> Result<(), StorageError> {
        let change = self.routing.begin();
        let point = app_snapshot::begin_restore(&self.db, &SNAPSHOT_PARTS, index, term)?;
        change.publish(Routing::Restoring(point.index));
        self.machine = GroupMachine::new(
            self.gid,
            self.shard_count,
            RocksData::new(Arc::clone(&self.db)),
        );
        self.journal = Journal::default();
        self.applied = LogIndex(0);
        self.restoring = Some(point);
        Ok(())
    }

    fn restore_chunk(&mut self, data: Bytes, next_cursor: Bytes) -> Result<(), StorageError> {
        let point = self
            .restoring
            .as_mut()
            .expect("restore_chunk follows begin_restore");
        app_snapshot::restore_chunk(&self.db, &SNAPSHOT_PARTS, point, &data, next_cursor)
    }

    fn finish_restore(&mut self, index: LogIndex, data: Bytes) -> Result<(), StorageError> {
        let change = self.routing.begin();
        app_snapshot::finish_restore(&self.db, &SNAPSHOT_PARTS, &data, index)?;
        (self.machine, self.journal) = load_machine(&self.db, self.gid, self.shard_count)?;
        change.publish(Routing::Table(self.machine.table().clone()));
        metrics::observe_table(self.machine.table());
        self.follow_table();
        self.restoring = None;
        self.applied = index;
        Ok(())
    }
}

#[cfg(test)]
#[path = "store_rocks_test.rs"]
mod tests;
