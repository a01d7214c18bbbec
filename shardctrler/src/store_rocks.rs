//! [`ControllerStore`]: the controller's durable state machine over the
//! process's RocksDB, the thin I/O shell around [`ControllerState`] that the
//! Raft driver applies committed entries to (DESIGN.md "Storage layout").
//!
//! Layout (keys are ASCII prefixes then big-endian numbers):
//!
//! - `data`: `config/<num:u64>` -> config record (`codec.rs`), one per
//!   configuration, configuration 0 included.
//! - `meta`: `applied_index` -> u64; `shard_count` -> u32;
//!   `session/<client_id:u64>` -> session record.
//!
//! Invariants:
//!
//! - Applying an entry writes what it changed (the new configuration, the
//!   client's session) **and** the applied index in one `WriteBatch`, so a
//!   restart resumes exactly after the last applied entry.
//! - The in-memory [`SharedState`] equals what the two column families hold
//!   once each write returns; `open` rebuilds it from them and checks every
//!   invariant of [`ControllerState`].
//! - Writes are not synced: the Raft log's next synced write covers them
//!   (one WAL), and the driver compacts the log only with a synced write.
//! - A snapshot is the encoded [`ControllerState`] (`codec.rs`), read in
//!   chunks by byte position. The state is held whole in memory anyway (it
//!   is small: one shard table per configuration), so the snapshot is too;
//!   a restore treats the chunks as one byte stream, whatever their
//!   boundaries. An empty snapshot is the bootstrap one (the log's prefix
//!   at index 1 carries only the membership): it restores the initial
//!   state. A restore marks `meta/restoring_snapshot` durably at its start
//!   and writes nothing else until every chunk arrived and the whole
//!   decodes; then the state and the applied index in one batch, which
//!   drops the mark. A restart finds the mark and restores from the
//!   beginning again (the chunks were held in memory only).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};

use raft::app_meta;
use raft::core::{Entry, EntryKind, LogIndex, RestorePoint, StorageError, Term};
use raft::driver::{EncodedSnapshot, SnapshotSource, StateMachine};
use raft::storage::{CF_DATA, CF_META};

use crate::codec::{
    decode_config_record, decode_session_record, encode_config_record, encode_session_record,
};
use crate::command::Request;
use crate::error::{AdminError, DecodeError};
use crate::shared::SharedState;
use crate::state_machine::{ControllerState, Session};
use crate::types::Config;

const KEY_SHARD_COUNT: &[u8] = b"shard_count";
const PREFIX_CONFIG: &[u8] = b"config/";
const PREFIX_SESSION: &[u8] = b"session/";

/// What applying one entry answers its proposer: `None` for entries that
/// carry no request (a new leader's empty entry, a membership change),
/// otherwise the configuration the request created or why it was refused.
pub type ApplyOutput = Option<Result<Config, AdminError>>;

/// The controller state machine of one replica, persisted in RocksDB.
pub struct ControllerStore {
    db: Arc<DB>,
    /// Invariant: equals `meta/applied_index`.
    applied: LogIndex,
    shared: Arc<SharedState>,
    /// This replica's id, a metrics label.
    node: u64,
    /// The restore under way (as marked durably), if any.
    restoring: Option<RestorePoint>,
    /// The bytes of the snapshot being restored, received so far (the
    /// state is small and decoded whole).
    restored: Vec<u8>,
}

impl ControllerStore {
    /// Opens the controller state stored in `db`, which has the `data` and
    /// `meta` column families. On an empty store it writes the bootstrap
    /// state: `shard_count` shards, configuration 0. On a used one the
    /// stored shard count wins and `shard_count` is ignored.
    ///
    /// # Errors
    ///
    /// [`StorageError::Io`] if RocksDB fails, [`StorageError::Corruption`] if
    /// a record does not decode or the state breaks an invariant.
    pub fn open(db: Arc<DB>, shard_count: u32, node: u64) -> Result<ControllerStore, StorageError> {
        let applied = app_meta::read_applied(&db)?;
        let state = match read_u32(&db, KEY_SHARD_COUNT)? {
            Some(stored) => load_state(&db, stored)?,
            None if applied == LogIndex(0) => bootstrap(&db, shard_count)?,
            None => return Err(corruption(applied, KEY_SHARD_COUNT, "missing")),
        };
        if state.shard_count() != shard_count {
            tracing::warn!(
                stored = state.shard_count(),
                flag = shard_count,
                "the data dir's shard count wins over --shards"
            );
        }
        crate::metrics::observe_config(node, state.latest().num.0, state.latest().groups.len());
        let restoring = app_meta::read_restore_mark(&db)?;
        Ok(ControllerStore {
            db,
            applied,
            shared: SharedState::new(state),
            node,
            restoring,
            restored: Vec::new(),
        })
    }

    /// Returns the state shared with the service.
    pub fn shared(&self) -> Arc<SharedState> {
        Arc::clone(&self.shared)
    }

    fn write(&self, batch: WriteBatch) {
        // A failed write leaves the replica unable to follow its log: stop.
        if let Err(error) = self.db.write(batch) {
            panic!("controller state write failed, stopping the node: {error}");
        }
    }

    /// Applies one request and adds what it changed to `batch`.
    fn apply_request(&self, entry: &Entry, batch: &mut WriteBatch) -> Result<Config, AdminError> {
        let request = Request::decode(&entry.data).unwrap_or_else(|error| {
            panic!(
                "log entry {} is not a controller request, stopping the node: {error}",
                entry.index.0
            )
        });
        let client_id = request.client_id;
        let applied = self.shared.apply(request);
        if let Some(config) = &applied.created {
            batch.put_cf(
                cf(&self.db, CF_DATA),
                config_key(config),
                encode_config_record(config),
            );
            crate::metrics::observe_config(self.node, config.num.0, config.groups.len());
        }
        if let Some(session) = &applied.session {
            put_session(&self.db, batch, client_id, session);
        }
        for expired in &applied.expired {
            batch.delete_cf(cf(&self.db, CF_META), session_key(*expired));
        }
        applied.reply
    }
}

impl StateMachine for ControllerStore {
    type Output = ApplyOutput;

    fn applied_index(&self) -> LogIndex {
        self.applied
    }

    fn apply(&mut self, entry: &Entry) -> ApplyOutput {
        let mut batch = WriteBatch::default();
        let carries_request = entry.kind == EntryKind::Normal && !entry.data.is_empty();
        let output = carries_request.then(|| self.apply_request(entry, &mut batch));
        app_meta::put_applied(&self.db, &mut batch, entry.index)
            .unwrap_or_else(|error| panic!("{error}"));
        self.write(batch);
        self.applied = entry.index;
        output
    }

    fn snapshot_source(&self) -> Result<Box<dyn SnapshotSource>, StorageError> {
        let encoded = Bytes::from(self.shared.read(ControllerState::encode_snapshot));
        Ok(Box::new(EncodedSnapshot::new(encoded)))
    }

    fn restoring(&self) -> Option<RestorePoint> {
        self.restoring.clone()
    }

    fn begin_restore(&mut self, index: LogIndex, term: Term) -> Result<(), StorageError> {
        // Only the mark is written before `finish_restore`, which writes
        // the whole state and the applied index in one batch.
        let point = RestorePoint::beginning(index, term);
        let mut batch = WriteBatch::default();
        app_meta::put_restore_mark(&self.db, &mut batch, &point)?;
        self.db
            .write(batch)
            .map_err(io_error("marking the controller state as being restored"))?;
        self.applied = LogIndex(0);
        self.restoring = Some(point);
        self.restored.clear();
        Ok(())
    }

    fn restore_chunk(&mut self, data: Bytes, _next_cursor: Bytes) -> Result<(), StorageError> {
        assert!(
            self.restoring.is_some(),
            "restore_chunk follows begin_restore"
        );
        self.restored.extend_from_slice(&data);
        Ok(())
    }

    fn finish_restore(&mut self, index: LogIndex, data: Bytes) -> Result<(), StorageError> {
        assert!(
            self.restoring.is_some(),
            "finish_restore follows begin_restore"
        );
        let mut bytes = std::mem::take(&mut self.restored);
        bytes.extend_from_slice(&data);
        let state = if bytes.is_empty() {
            // The bootstrap snapshot (index 1, membership only) has no
            // data; every snapshot this store makes has at least a header.
            ControllerState::new(self.shared.read(ControllerState::shard_count))
        } else {
            ControllerState::decode_snapshot(&bytes).map_err(|error| StorageError::Corruption {
                index,
                location: "controller snapshot".into(),
                detail: error.to_string(),
            })?
        };
        let mut batch = WriteBatch::default();
        clear_prefix(&self.db, &mut batch, CF_DATA, PREFIX_CONFIG);
        clear_prefix(&self.db, &mut batch, CF_META, PREFIX_SESSION);
        put_state(&self.db, &mut batch, &state);
        app_meta::finish_restore(&self.db, batch, index)?;
        self.restoring = None;
        self.applied = index;
        let latest = state.latest();
        crate::metrics::observe_config(self.node, latest.num.0, latest.groups.len());
        self.shared.replace(state);
        tracing::info!(index = index.0, "controller state restored from a snapshot");
        Ok(())
    }
}

/// Writes the bootstrap state (configuration 0 of `shard_count` shards).
fn bootstrap(db: &DB, shard_count: u32) -> Result<ControllerState, StorageError> {
    let state = ControllerState::new(shard_count);
    let mut batch = WriteBatch::default();
    put_state(db, &mut batch, &state);
    db.write(batch)
        .map_err(io_error("writing the bootstrap state"))?;
    Ok(state)
}

/// Adds every record of `state` (configurations, sessions, shard count).
fn put_state(db: &DB, batch: &mut WriteBatch, state: &ControllerState) {
    batch.put_cf(
        cf(db, CF_META),
        KEY_SHARD_COUNT,
        state.shard_count().to_be_bytes(),
    );
    for config in state.history() {
        batch.put_cf(
            cf(db, CF_DATA),
            config_key(config),
            encode_config_record(config),
        );
    }
    for (client_id, session) in state.sessions() {
        put_session(db, batch, client_id, session);
    }
}

fn put_session(db: &DB, batch: &mut WriteBatch, client_id: u64, session: &Session) {
    batch.put_cf(
        cf(db, CF_META),
        session_key(client_id),
        encode_session_record(session),
    );
}

/// Returns the `meta` key of `client_id`'s session record.
fn session_key(client_id: u64) -> Vec<u8> {
    let mut key = PREFIX_SESSION.to_vec();
    key.extend_from_slice(&client_id.to_be_bytes());
    key
}

/// Deletes every key of `name` that starts with `prefix`.
fn clear_prefix(db: &DB, batch: &mut WriteBatch, name: &str, prefix: &[u8]) {
    let mut end = prefix.to_vec();
    // The prefixes end in '/', so the next byte value bounds the range.
    *end.last_mut().expect("prefixes are not empty") += 1;
    batch.delete_range_cf(cf(db, name), prefix, end.as_slice());
}

/// Rebuilds the state from its records and checks its invariants.
fn load_state(db: &DB, shard_count: u32) -> Result<ControllerState, StorageError> {
    let mut history = Vec::new();
    for (key, value) in scan_prefix(db, CF_DATA, PREFIX_CONFIG)? {
        let config = decode_config_record(&value).map_err(|e| decode_failure(&key, &e))?;
        history.push(config);
    }
    let mut sessions = BTreeMap::new();
    for (key, value) in scan_prefix(db, CF_META, PREFIX_SESSION)? {
        let client_id = key
            .get(PREFIX_SESSION.len()..)
            .and_then(|id| <[u8; 8]>::try_from(id).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| corruption(LogIndex(0), &key, "malformed session key"))?;
        let session = decode_session_record(&value).map_err(|e| decode_failure(&key, &e))?;
        sessions.insert(client_id, session);
    }
    ControllerState::from_parts(shard_count, history, sessions)
        .map_err(|error| decode_failure(b"controller state", &error))
}

/// One stored (key, value) pair.
type Record = (Vec<u8>, Vec<u8>);

/// Returns every (key, value) of `name` whose key starts with `prefix`, in
/// key order.
fn scan_prefix(db: &DB, name: &str, prefix: &[u8]) -> Result<Vec<Record>, StorageError> {
    let mut records = Vec::new();
    let mode = IteratorMode::From(prefix, Direction::Forward);
    for item in db.iterator_cf(cf(db, name), mode) {
        let (key, value) = item.map_err(io_error("scanning the controller state"))?;
        if !key.starts_with(prefix) {
            break;
        }
        records.push((key.to_vec(), value.to_vec()));
    }
    Ok(records)
}

fn read_u32(db: &DB, key: &[u8]) -> Result<Option<u32>, StorageError> {
    let raw = db
        .get_cf(cf(db, CF_META), key)
        .map_err(io_error("reading the controller metadata"))?;
    raw.map(|raw| {
        <[u8; 4]>::try_from(raw.as_slice())
            .map(u32::from_be_bytes)
            .map_err(|_| corruption(LogIndex(0), key, "not 4 bytes"))
    })
    .transpose()
}

fn config_key(config: &Config) -> Vec<u8> {
    let mut key = PREFIX_CONFIG.to_vec();
    key.extend_from_slice(&config.num.0.to_be_bytes());
    key
}

/// Returns the column family `name`, which `RocksStorage::open` created.
fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .expect("RocksStorage::open creates the data and meta column families")
}

fn io_error(context: &'static str) -> impl FnOnce(rocksdb::Error) -> StorageError {
    move |error| StorageError::Io(format!("{context}: {error}"))
}

fn corruption(index: LogIndex, key: &[u8], detail: &str) -> StorageError {
    StorageError::Corruption {
        index,
        location: format!("controller record {}", String::from_utf8_lossy(key)),
        detail: detail.to_string(),
    }
}

fn decode_failure(key: &[u8], error: &DecodeError) -> StorageError {
    corruption(LogIndex(0), key, &error.to_string())
}

#[cfg(test)]
#[path = "store_rocks_test.rs"]
mod tests;
