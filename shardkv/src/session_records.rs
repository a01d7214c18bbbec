//! The group's client sessions in `meta` (DESIGN.md "Storage layout"):
//! one record per (shard, client), and a journal that carries each applied
//! run's session changes until they are folded into those records.
//!
//! | key | value |
//! |---|---|
//! | `group/session/[shard u32 BE][client u64 BE]` | `shardkv.v1.ClientSession` |
//! | `group/journal/[last index of the run u64 BE]` | `shardkv.v1.SessionJournal` |
//!
//! A write changes its session, so writing each session's record at each
//! write made every write two random inserts into RocksDB's memtables. A
//! run's changes go instead into one journal record, in the run's own
//! batch; a fold, now and then, writes the journaled sessions' records and
//! deletes the journal.
//!
//! Invariants:
//! - The stored sessions are the records overlaid by the journal's records
//!   in index order (a journaled removal removes). Every reader of stored
//!   sessions reads them that way, from one view, so it sees the sessions
//!   as of one applied run, as exact as before the journal.
//! - A journal record is written in the batch of its run, with the run's
//!   data and applied index; a fold writes every journaled session's
//!   current record (or its removal) and deletes the journal in one batch.
//! - A run that changes the shard table or the install positions folds, so
//!   the journal is empty whenever a shard starts or stops moving.
//! - The journal holds at most [`JOURNAL_BYTES_MAX`] bytes, which bounds
//!   the work of reading the sessions back.
//! - Both kinds of record are under `group/`, so a follower's snapshot
//!   carries the journal with the records it overlays.

use std::collections::BTreeMap;

use prost::Message;
use proto::config::ShardId;
use proto::shardkv::v1 as pb;
use raft::core::{LogIndex, StorageError};
use raft::session::Session;
use raft::storage::CF_META;
use rocksdb::{DB, DBRawIteratorWithThreadMode, WriteBatch};

use crate::codec::{session_from_proto, session_to_proto};
use crate::ops::WriteReply;
use crate::store_rocks::corruption;

/// The prefix of the session records.
const SESSION_PREFIX: &[u8] = b"group/session/";
/// The length of a session record's key: the prefix, the shard and the
/// client id.
const SESSION_KEY_BYTES: usize = SESSION_PREFIX.len() + 4 + 8;
/// The prefix of the journal records.
const JOURNAL_PREFIX: &[u8] = b"group/journal/";
/// The length of a journal record's key: the prefix and the index.
const JOURNAL_KEY_BYTES: usize = JOURNAL_PREFIX.len() + 8;
/// The first key past the journal (`'/' + 1`).
const JOURNAL_END: &[u8] = b"group/journal0";
/// The journal is folded before it passes this many bytes.
pub const JOURNAL_BYTES_MAX: usize = 4 << 20;

/// A session as stored: its shard, its client and the session.
pub type StoredSession = (ShardId, u64, Session<WriteReply>);
/// A journaled change of a session: its shard, its client and its new
/// record, or `None` for a removal.
type JournaledChange = (ShardId, u64, Option<Session<WriteReply>>);
/// Stored sessions by shard and client.
type SessionMap = BTreeMap<(ShardId, u64), Session<WriteReply>>;

/// What the stored journal holds, kept by the store that writes it.
#[derive(Debug)]
pub struct Journal {
    /// The sessions its records name, in record order (with repeats: a
    /// fold sorts them out).
    named: Vec<(ShardId, u64)>,
    /// The bytes of its records.
    bytes: usize,
    /// The journal is folded before it passes this many bytes.
    bytes_max: usize,
    /// The record being encoded, kept to spare an allocation per run.
    buffer: Vec<u8>,
}

impl Default for Journal {
    fn default() -> Journal {
        Journal {
            named: Vec::new(),
            bytes: 0,
            bytes_max: JOURNAL_BYTES_MAX,
            buffer: Vec::new(),
        }
    }
}

impl Journal {
    /// Adds to `batch` the session changes of the run that ends at
    /// `index`: one journal record, or the fold of the journal when `fold`
    /// is asked (the run changed the table) or the record would fill it.
    /// `current` returns a session as the run left it.
    pub fn write<'a>(
        &mut self,
        db: &DB,
        batch: &mut WriteBatch,
        index: LogIndex,
        changes: &BTreeMap<(ShardId, u64), Option<Session<WriteReply>>>,
        fold: bool,
        current: impl Fn(ShardId, u64) -> Option<&'a Session<WriteReply>>,
    ) {
        if !fold && changes.is_empty() {
            return;
        }
        let meta = db.cf_handle(CF_META).expect("checked at open");
        self.named.extend(changes.keys().copied());
        if !fold {
            self.buffer.clear();
            journal_record(changes)
                .encode(&mut self.buffer)
                .expect("a Vec grows to fit");
            if self.bytes + self.buffer.len() <= self.bytes_max {
                batch.put_cf(meta, journal_key(index), &self.buffer);
                self.bytes += self.buffer.len();
                return;
            }
        }
        self.named.sort_unstable();
        self.named.dedup();
        for (shard, client) in self.named.drain(..) {
            let key = session_key(shard, client);
            match current(shard, client) {
                Some(session) => {
                    self.buffer.clear();
                    session_to_proto(client, session)
                        .encode(&mut self.buffer)
                        .expect("a Vec grows to fit");
                    batch.put_cf(meta, key, &self.buffer);
                }
                None => batch.delete_cf(meta, key),
            }
        }
        if self.bytes > 0 {
            batch.delete_range_cf(meta, JOURNAL_PREFIX, JOURNAL_END);
        }
        self.bytes = 0;
    }

    /// Returns how many bytes its records hold.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Sets the bytes it may hold (tests fold it often this way).
    #[cfg(test)]
    pub fn set_bytes_max(&mut self, bytes_max: usize) {
        self.bytes_max = bytes_max;
    }
}

/// Returns the journal record of a run's session changes.
fn journal_record(
    changes: &BTreeMap<(ShardId, u64), Option<Session<WriteReply>>>,
) -> pb::SessionJournal {
    pb::SessionJournal {
        sessions: changes
            .iter()
            .map(|(&(shard, client), session)| pb::JournaledSession {
                shard: shard.0,
                client_id: client,
                session: session
                    .as_ref()
                    .map(|session| session_to_proto(client, session)),
            })
            .collect(),
    }
}

/// Returns the `meta` key of a session record.
fn session_key(shard: ShardId, client: u64) -> [u8; SESSION_KEY_BYTES] {
    let mut key = [0; SESSION_KEY_BYTES];
    let (prefix, ids) = key.split_at_mut(SESSION_PREFIX.len());
    prefix.copy_from_slice(SESSION_PREFIX);
    ids[..4].copy_from_slice(&shard.0.to_be_bytes());
    ids[4..].copy_from_slice(&client.to_be_bytes());
    key
}

/// Returns the `meta` key of the journal record of the run ending at
/// `index`.
fn journal_key(index: LogIndex) -> [u8; JOURNAL_KEY_BYTES] {
    let mut key = [0; JOURNAL_KEY_BYTES];
    let (prefix, id) = key.split_at_mut(JOURNAL_PREFIX.len());
    prefix.copy_from_slice(JOURNAL_PREFIX);
    id.copy_from_slice(&index.0.to_be_bytes());
    key
}

/// Reads every stored session, and the journal as stored.
///
/// # Errors
///
/// [`StorageError::Corruption`] if a record does not decode;
/// [`StorageError::Io`] if reading fails.
pub fn load(db: &DB) -> Result<(Vec<StoredSession>, Journal), StorageError> {
    let meta = db.cf_handle(CF_META).expect("checked at open");
    let (sessions, journal) = read_stored(|| db.raw_iterator_cf(meta), None)?;
    let sessions = sessions
        .into_iter()
        .map(|((shard, client), session)| (shard, client, session))
        .collect();
    Ok((sessions, journal))
}

/// Reads the stored sessions of `shard`, by client, from `view`.
///
/// # Errors
///
/// [`StorageError::Corruption`] if a record does not decode;
/// [`StorageError::Io`] if reading fails.
pub fn read_shard(
    db: &DB,
    view: &rocksdb::SnapshotWithThreadMode<'_, DB>,
    shard: ShardId,
) -> Result<Vec<(u64, Session<WriteReply>)>, StorageError> {
    let meta = db.cf_handle(CF_META).expect("checked at open");
    let iterator = || {
        let mut options = rocksdb::ReadOptions::default();
        options.set_snapshot(view);
        db.raw_iterator_cf_opt(meta, options)
    };
    let (sessions, _) = read_stored(iterator, Some(shard))?;
    Ok(sessions
        .into_iter()
        .map(|((_, client), session)| (client, session))
        .collect())
}

/// Reads the stored sessions (of `shard` only, if given): the records
/// overlaid by the journal in index order; and the journal as stored.
/// `records` opens an iterator over `meta` in the view to read.
fn read_stored<'a>(
    records: impl Fn() -> DBRawIteratorWithThreadMode<'a, DB>,
    shard: Option<ShardId>,
) -> Result<(SessionMap, Journal), StorageError> {
    let mut prefix = SESSION_PREFIX.to_vec();
    if let Some(shard) = shard {
        prefix.extend_from_slice(&shard.0.to_be_bytes());
    }
    let mut sessions = BTreeMap::new();
    read_records(records(), &prefix, |key, value| {
        let (shard, client, session) = decode_session(key, value)?;
        sessions.insert((shard, client), session);
        Ok(())
    })?;
    let mut journal = Journal::default();
    read_records(records(), JOURNAL_PREFIX, |_, value| {
        journal.bytes += value.len();
        for (journaled, client, session) in decode_journal(value)? {
            journal.named.push((journaled, client));
            if shard.is_some_and(|shard| shard != journaled) {
                continue;
            }
            match session {
                Some(session) => sessions.insert((journaled, client), session),
                None => sessions.remove(&(journaled, client)),
            };
        }
        Ok(())
    })?;
    Ok((sessions, journal))
}

/// Calls `each` with every record under `prefix`, in key order.
fn read_records(
    mut records: DBRawIteratorWithThreadMode<'_, DB>,
    prefix: &[u8],
    mut each: impl FnMut(&[u8], &[u8]) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    records.seek(prefix);
    while let (Some(key), Some(value)) = (records.key(), records.value()) {
        if !key.starts_with(prefix) {
            break;
        }
        each(key, value)?;
        records.next();
    }
    records
        .status()
        .map_err(|error| StorageError::Io(format!("reading the sessions: {error}")))
}

/// Decodes one session record and its key.
fn decode_session(key: &[u8], value: &[u8]) -> Result<StoredSession, StorageError> {
    let location = "meta group/session";
    let ids: [u8; 12] = key
        .strip_prefix(SESSION_PREFIX)
        .and_then(|suffix| suffix.try_into().ok())
        .ok_or_else(|| corruption(location, format!("a key of {} bytes", key.len())))?;
    let shard = ShardId(u32::from_be_bytes(ids[..4].try_into().expect("4 bytes")));
    let client = u64::from_be_bytes(ids[4..].try_into().expect("8 bytes"));
    let record = pb::ClientSession::decode(value)
        .map_err(|error| corruption(location, format!("does not decode: {error}")))?;
    let (_, session) = session_from_proto(record);
    Ok((shard, client, session))
}

/// Decodes one journal record: each session it names, with its record or
/// `None` for a removal.
fn decode_journal(value: &[u8]) -> Result<Vec<JournaledChange>, StorageError> {
    let record = pb::SessionJournal::decode(value)
        .map_err(|error| corruption("meta group/journal", format!("does not decode: {error}")))?;
    Ok(record
        .sessions
        .into_iter()
        .map(|journaled| {
            let session = journaled
                .session
                .map(|session| session_from_proto(session).1);
            (ShardId(journaled.shard), journaled.client_id, session)
        })
        .collect())
}

#[cfg(test)]
#[path = "session_records_test.rs"]
mod tests;
