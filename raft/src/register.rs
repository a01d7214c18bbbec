//! A replicated register map over RocksDB: the application the
//! `raft-node` binary, the node benchmark and the integration tests run on
//! the driver. It keeps its values in the `data` column family and its
//! applied index in `meta`, written together in one WriteBatch per applied
//! run of entries (DESIGN.md "Storage layout"), so a restart resumes
//! exactly after the last applied entry.
//!
//! Invariants:
//! - `applied` equals the index stored in `meta` (both change in one
//!   batch).
//! - While a snapshot is being restored, `meta` holds a restore marker
//!   and no applied index, so a restart finds applied index 0 and restores
//!   again: a partly restored map is never taken for a state at an index.
//! - Writes are not synced: the Raft log's next synced write covers them
//!   (one WAL), and the log is never compacted past an unsynced entry.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rocksdb::{DB, IteratorMode, WriteBatch};

use crate::core::{Entry, EntryKind, LogIndex, StorageError};
use crate::driver::{SnapshotJob, StateMachine};

/// Column family of the values.
pub const DATA_CF: &str = "data";
/// Column family of the applied index.
pub const META_CF: &str = "meta";
const APPLIED_KEY: &[u8] = b"applied_index";
/// Present (holding the snapshot's index) while a restore is under way: the
/// data is then partial and the applied index is absent.
const RESTORING_KEY: &[u8] = b"restoring_snapshot";
/// Snapshot chunks are cut near this size.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Keys are at most this long (DESIGN.md "Clients and semantics").
pub const KEY_BYTES_MAX: usize = 4096;

/// A write to the register map, as carried in a log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterCommand {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Appends `value` to `key`'s value (a missing key is created).
    Append {
        /// The key.
        key: Bytes,
        /// The suffix.
        value: Bytes,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: Bytes,
    },
}

impl RegisterCommand {
    /// Encodes the command: tag, key length (u32 BE), key, value.
    pub fn encode(&self) -> Bytes {
        let (tag, key, value) = match self {
            RegisterCommand::Put { key, value } => (b'P', key, value.as_ref()),
            RegisterCommand::Append { key, value } => (b'A', key, value.as_ref()),
            RegisterCommand::Delete { key } => (b'D', key, &[][..]),
        };
        let mut buffer = BytesMut::with_capacity(5 + key.len() + value.len());
        buffer.put_u8(tag);
        buffer.put_u32(key.len() as u32);
        buffer.put_slice(key);
        buffer.put_slice(value);
        buffer.freeze()
    }

    /// Decodes a payload; `None` if malformed.
    pub fn decode(data: &Bytes) -> Option<RegisterCommand> {
        let tag = *data.first()?;
        let length = u32::from_be_bytes(data.get(1..5)?.try_into().ok()?) as usize;
        let key = data.slice(
            5..5usize
                .checked_add(length)
                .filter(|&end| end <= data.len())?,
        );
        let value = data.slice(5 + length..);
        match tag {
            b'P' => Some(RegisterCommand::Put { key, value }),
            b'A' => Some(RegisterCommand::Append { key, value }),
            b'D' => Some(RegisterCommand::Delete { key }),
            _ => None,
        }
    }
}

/// Reads the register map from any task (the node's task writes it).
#[derive(Clone)]
pub struct RegisterReader {
    db: Arc<DB>,
}

impl RegisterReader {
    /// Returns a reader over `db`.
    pub fn new(db: Arc<DB>) -> RegisterReader {
        RegisterReader { db }
    }

    /// Returns the value of `key`, if any, read from one consistent view
    /// of the map.
    ///
    /// # Errors
    /// [`StorageError::SnapshotUnavailable`] while the map is being
    /// restored from a snapshot (its data is then partial), or
    /// [`StorageError::Io`] if reading fails.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let missing = |name: &str| StorageError::Io(format!("missing {name} column family"));
        let data = self.db.cf_handle(DATA_CF).ok_or_else(|| missing(DATA_CF))?;
        let meta = self.db.cf_handle(META_CF).ok_or_else(|| missing(META_CF))?;
        let view = self.db.snapshot();
        let marker = view
            .get_cf(meta, RESTORING_KEY)
            .map_err(|e| io_error("reading the restore marker", e))?;
        if let Some(index) = decode_index(RESTORING_KEY, marker)? {
            return Err(StorageError::SnapshotUnavailable(index));
        }
        view.get_cf(data, key)
            .map_err(|e| io_error("reading a value", e))
    }
}

/// The register map of one replica.
pub struct RegisterMachine {
    db: Arc<DB>,
    applied: LogIndex,
    /// The restore under way, if any.
    restoring: Option<RestoreProgress>,
}

/// How far a restore has come.
struct RestoreProgress {
    /// The snapshot's index.
    index: LogIndex,
    /// The records written so far.
    records: u64,
    /// The start of a record the next chunks complete.
    pending: BytesMut,
}

impl RestoreProgress {
    /// Adds to `batch` every whole record at the start of `bytes` and
    /// returns how many bytes they take.
    fn put_records(
        &mut self,
        batch: &mut WriteBatch,
        data: &rocksdb::ColumnFamily,
        bytes: &[u8],
    ) -> Result<usize, StorageError> {
        let mut rest = bytes;
        loop {
            match next_record(rest) {
                Record::Complete { key, value, tail } => {
                    batch.put_cf(data, key, value);
                    self.records += 1;
                    rest = tail;
                }
                Record::Incomplete => return Ok(bytes.len() - rest.len()),
                Record::Invalid(detail) => {
                    return Err(self.corruption(format!("record {}: {detail}", self.records)));
                }
            }
        }
    }

    fn corruption(&self, detail: String) -> StorageError {
        StorageError::Corruption {
            index: self.index,
            location: "register map snapshot".into(),
            detail,
        }
    }
}

fn io_error(context: &str, error: rocksdb::Error) -> StorageError {
    StorageError::Io(format!("{context}: {error}"))
}

/// Reads the log index stored under `key` in `meta`, if any.
fn read_index(
    db: &DB,
    meta: &rocksdb::ColumnFamily,
    key: &[u8],
) -> Result<Option<LogIndex>, StorageError> {
    let raw = db
        .get_cf(meta, key)
        .map_err(|e| io_error("reading the meta column family", e))?;
    decode_index(key, raw)
}

/// Decodes the log index read from `meta` under `key`, if any.
fn decode_index(key: &[u8], raw: Option<Vec<u8>>) -> Result<Option<LogIndex>, StorageError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let bytes: [u8; 8] = raw
        .as_slice()
        .try_into()
        .map_err(|_| StorageError::Corruption {
            index: LogIndex(0),
            location: format!("{META_CF}/{}", String::from_utf8_lossy(key)),
            detail: format!("a log index has {} bytes, expected 8", raw.len()),
        })?;
    Ok(Some(LogIndex(u64::from_be_bytes(bytes))))
}

impl RegisterMachine {
    /// Opens the register map stored in `db` (which has the `data` and
    /// `meta` column families).
    pub fn open(db: Arc<DB>) -> Result<RegisterMachine, StorageError> {
        let meta = db
            .cf_handle(META_CF)
            .ok_or_else(|| StorageError::Io("missing meta column family".into()))?;
        let applied = read_index(&db, meta, APPLIED_KEY)?.unwrap_or(LogIndex(0));
        if let Some(index) = read_index(&db, meta, RESTORING_KEY)? {
            tracing::warn!(
                snapshot_index = index.0,
                "the register map was being restored from a snapshot when the node stopped; it is restored again"
            );
        }
        Ok(RegisterMachine {
            db,
            applied,
            restoring: None,
        })
    }

    /// Returns the value of `key`, if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let data = self.cf(DATA_CF);
        self.db
            .get_cf(data, key)
            .map_err(|e| io_error("reading a value", e))
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are checked at open")
    }

    fn try_write(&self, batch: WriteBatch, context: &str) -> Result<(), StorageError> {
        self.db.write(batch).map_err(|e| io_error(context, e))
    }

    fn write(&self, batch: WriteBatch) {
        // A failed write leaves the replica unable to follow its log: stop.
        if let Err(error) = self.db.write(batch) {
            panic!("register map write failed, stopping the node: {error}");
        }
    }
}

impl StateMachine for RegisterMachine {
    type Output = ();

    fn applied_index(&self) -> LogIndex {
        self.applied
    }

    fn apply(&mut self, entry: &Entry) {
        self.apply_batch(std::slice::from_ref(entry));
    }

    fn apply_batch(&mut self, entries: &[Entry]) -> Vec<()> {
        let Some(last) = entries.last() else {
            return Vec::new();
        };
        let mut batch = WriteBatch::default();
        // What this batch wrote so far, for an Append that follows a write
        // of the same key in the batch (the database does not see it yet).
        let mut written: HashMap<Bytes, Option<Bytes>> = HashMap::new();
        for entry in entries
            .iter()
            .filter(|entry| entry.kind == EntryKind::Normal)
        {
            match RegisterCommand::decode(&entry.data) {
                Some(RegisterCommand::Put { key, value }) => {
                    batch.put_cf(self.cf(DATA_CF), &key, &value);
                    written.insert(key, Some(value));
                }
                Some(RegisterCommand::Append { key, value }) => {
                    let mut current = match written.get(&key) {
                        Some(pending) => pending.as_deref().unwrap_or_default().to_vec(),
                        None => self
                            .get(&key)
                            .unwrap_or_else(|error| panic!("{error}"))
                            .unwrap_or_default(),
                    };
                    current.extend_from_slice(&value);
                    batch.put_cf(self.cf(DATA_CF), &key, &current);
                    written.insert(key, Some(Bytes::from(current)));
                }
                Some(RegisterCommand::Delete { key }) => {
                    batch.delete_cf(self.cf(DATA_CF), &key);
                    written.insert(key, None);
                }
                None => {}
            }
        }
        batch.put_cf(self.cf(META_CF), APPLIED_KEY, last.index.0.to_be_bytes());
        self.write(batch);
        self.applied = last.index;
        vec![(); entries.len()]
    }

    fn snapshot(&self) -> Box<dyn Iterator<Item = Bytes> + '_> {
        // A RocksDB iterator reads one consistent view (an implicit
        // snapshot) however long it lives.
        let records = self.db.iterator_cf(self.cf(DATA_CF), IteratorMode::Start);
        Box::new(
            chunks(records).map(|chunk| {
                chunk.unwrap_or_else(|error| panic!("reading the register map: {error}"))
            }),
        )
    }

    fn snapshot_job(&self) -> Option<Box<dyn SnapshotJob>> {
        Some(Box::new(RegisterSnapshotJob {
            db: self.db.clone(),
        }))
    }

    fn begin_restore(&mut self, index: LogIndex) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(DATA_CF), &[][..], &[0xFFu8; KEY_BYTES_MAX + 1][..]);
        batch.delete_cf(self.cf(META_CF), APPLIED_KEY);
        batch.put_cf(self.cf(META_CF), RESTORING_KEY, index.0.to_be_bytes());
        self.try_write(batch, "marking the register map as being restored")?;
        self.applied = LogIndex(0);
        self.restoring = Some(RestoreProgress {
            index,
            records: 0,
            pending: BytesMut::new(),
        });
        Ok(())
    }

    fn restore_chunk(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        // The handle borrows `db` alone, apart from `restoring`.
        let data = self
            .db
            .cf_handle(DATA_CF)
            .expect("column families are checked at open");
        let progress = self
            .restoring
            .as_mut()
            .expect("restore_chunk follows begin_restore");
        // The chunks are one byte stream: a record may straddle two (or
        // more: a value may be larger than a chunk), so what a chunk leaves
        // unfinished is kept, and the next chunk appended to it.
        let mut batch = WriteBatch::default();
        if progress.pending.is_empty() {
            let used = progress.put_records(&mut batch, data, &chunk)?;
            progress.pending.extend_from_slice(&chunk[used..]);
        } else {
            progress.pending.extend_from_slice(&chunk);
            let pending = std::mem::take(&mut progress.pending);
            let used = progress.put_records(&mut batch, data, &pending)?;
            progress.pending = pending;
            progress.pending.advance(used);
        }
        self.try_write(batch, "writing restored records")
    }

    fn finish_restore(&mut self, index: LogIndex) -> Result<(), StorageError> {
        let progress = self
            .restoring
            .take()
            .expect("finish_restore follows begin_restore");
        assert_eq!(progress.index, index, "one restore at a time");
        if !progress.pending.is_empty() {
            return Err(progress.corruption(format!(
                "the data ends inside record {} ({} bytes of it)",
                progress.records,
                progress.pending.len()
            )));
        }
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(META_CF), RESTORING_KEY);
        batch.put_cf(self.cf(META_CF), APPLIED_KEY, index.0.to_be_bytes());
        self.try_write(batch, "recording the restored index")?;
        self.applied = index;
        Ok(())
    }
}

/// Streams the register map from a RocksDB snapshot on another thread: the
/// same chunks as [`RegisterMachine::snapshot`], without stalling the node.
struct RegisterSnapshotJob {
    db: Arc<DB>,
}

impl SnapshotJob for RegisterSnapshotJob {
    fn run(
        self: Box<Self>,
        pinned: &mut dyn FnMut(),
        sink: &mut dyn FnMut(Bytes) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let view = self.db.snapshot();
        pinned();
        let data = self
            .db
            .cf_handle(DATA_CF)
            .ok_or_else(|| StorageError::Io("missing data column family".into()))?;
        for chunk in chunks(view.iterator_cf(data, IteratorMode::Start)) {
            sink(chunk.map_err(|e| io_error("reading the register map for a snapshot", e))?)?;
        }
        Ok(())
    }
}

/// Cuts the register map's (key, value) records into snapshot chunks of
/// about [`SNAPSHOT_CHUNK_BYTES`]; a read error ends the chunks with it.
fn chunks<R>(mut records: R) -> impl Iterator<Item = Result<Bytes, rocksdb::Error>>
where
    R: Iterator<Item = Result<(Box<[u8]>, Box<[u8]>), rocksdb::Error>>,
{
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let mut chunk = BytesMut::new();
        for record in records.by_ref() {
            let (key, value) = match record {
                Ok(record) => record,
                Err(error) => {
                    failed = true;
                    return Some(Err(error));
                }
            };
            chunk.put_u32(key.len() as u32);
            chunk.put_slice(&key);
            chunk.put_u32(value.len() as u32);
            chunk.put_slice(&value);
            if chunk.len() >= SNAPSHOT_CHUNK_BYTES {
                break;
            }
        }
        (!chunk.is_empty()).then(|| Ok(chunk.freeze()))
    })
}

/// What the start of a snapshot byte stream holds.
enum Record<'a> {
    /// A whole (key, value) record and the bytes after it.
    Complete {
        key: &'a [u8],
        value: &'a [u8],
        tail: &'a [u8],
    },
    /// Nothing, or the start of a record whose end is still to come.
    Incomplete,
    /// A record whose lengths cannot be right.
    Invalid(String),
}

/// Reads the record at the start of `bytes`: key length (u32 BE), key,
/// value length (u32 BE), value.
fn next_record(bytes: &[u8]) -> Record<'_> {
    let Some(key_length) = bytes.get(..4) else {
        return Record::Incomplete;
    };
    let key_length = u32::from_be_bytes(key_length.try_into().expect("4 bytes")) as usize;
    if key_length > KEY_BYTES_MAX {
        return Record::Invalid(format!("key of {key_length} bytes, over {KEY_BYTES_MAX}"));
    }
    let Some(value_length) = bytes.get(4 + key_length..8 + key_length) else {
        return Record::Incomplete;
    };
    // Values have no limit of their own (appends grow them), so only the
    // u32 prefix bounds one: a damaged length shows as data that ends
    // inside the record.
    let value_length = u32::from_be_bytes(value_length.try_into().expect("4 bytes")) as usize;
    let end = 8 + key_length + value_length;
    if bytes.len() < end {
        return Record::Incomplete;
    }
    Record::Complete {
        key: &bytes[4..4 + key_length],
        value: &bytes[8 + key_length..end],
        tail: &bytes[end..],
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::core::Term;
    use crate::storage::RocksStorage;

    fn command() -> impl Strategy<Value = RegisterCommand> {
        let key = (0u8..4).prop_map(|k| Bytes::from(vec![b'k', k]));
        let value = proptest::collection::vec(any::<u8>(), 0..4).prop_map(Bytes::from);
        prop_oneof![
            (key.clone(), value.clone())
                .prop_map(|(key, value)| RegisterCommand::Put { key, value }),
            (key.clone(), value).prop_map(|(key, value)| RegisterCommand::Append { key, value }),
            key.prop_map(|key| RegisterCommand::Delete { key }),
        ]
    }

    fn machine(dir: &std::path::Path) -> (RocksStorage, RegisterMachine) {
        let storage = RocksStorage::open(dir).expect("open");
        let machine = RegisterMachine::open(storage.db()).expect("register map");
        (storage, machine)
    }

    fn contents(machine: &RegisterMachine) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        (0u8..4)
            .map(|k| (vec![b'k', k], machine.get(&[b'k', k]).expect("read")))
            .collect()
    }

    /// A snapshot taken on another thread restores a replica to the same
    /// map, and writes after the pin are not in it.
    #[test]
    fn a_background_snapshot_restores_the_pinned_map() {
        let (source_dir, target_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (_source_storage, mut source) = machine(source_dir.path());
        for k in 0u8..4 {
            let command = RegisterCommand::Put {
                key: Bytes::from(vec![b'k', k]),
                value: Bytes::from(vec![k; 3]),
            };
            source.apply(&Entry {
                term: Term(1),
                index: LogIndex(u64::from(k) + 1),
                kind: EntryKind::Normal,
                data: command.encode(),
            });
        }
        let pinned_contents = contents(&source);
        let job = source
            .snapshot_job()
            .expect("the register map offers a job");
        let mut chunks = Vec::new();
        job.run(
            &mut || {
                // The node goes on after the pin: this write is not in the view.
                let late = RegisterCommand::Delete {
                    key: Bytes::from_static(b"k\x00"),
                };
                source.apply(&Entry {
                    term: Term(1),
                    index: LogIndex(5),
                    kind: EntryKind::Normal,
                    data: late.encode(),
                });
            },
            &mut |chunk| {
                chunks.push(chunk);
                Ok(())
            },
        )
        .expect("snapshot");
        let (_target_storage, mut target) = machine(target_dir.path());
        target.begin_restore(LogIndex(4)).expect("begin");
        for chunk in chunks {
            target.restore_chunk(chunk).expect("chunk");
        }
        target.finish_restore(LogIndex(4)).expect("finish");
        assert_eq!(contents(&target), pinned_contents);
        assert_eq!(target.applied_index(), LogIndex(4));
        let reopened = RegisterMachine::open(target.db.clone()).expect("reopen");
        assert_eq!(reopened.applied_index(), LogIndex(4));
    }

    /// A restore that does not finish leaves no applied index behind, even
    /// after a reopen: the replica restores again instead of taking part
    /// of a snapshot for the state at its index. Data that ends inside a
    /// record, or a record with an impossible length, is a corruption
    /// error; a record split across two chunks is not.
    #[test]
    fn an_unfinished_restore_leaves_the_map_unapplied() {
        let dir = tempfile::tempdir().unwrap();
        let (_storage, mut target) = machine(dir.path());
        let command = RegisterCommand::Put {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"old"),
        };
        target.apply(&Entry {
            term: Term(1),
            index: LogIndex(3),
            kind: EntryKind::Normal,
            data: command.encode(),
        });
        target.begin_restore(LogIndex(9)).expect("begin");
        assert_eq!(target.applied_index(), LogIndex(0));
        assert_eq!(
            RegisterReader::new(target.db.clone()).get(b"k"),
            Err(StorageError::SnapshotUnavailable(LogIndex(9))),
            "readers see no partly restored map"
        );
        let mut record = BytesMut::new();
        record.put_u32(1);
        record.put_slice(b"a");
        record.put_u32(5);
        record.put_slice(b"va");
        target
            .restore_chunk(record.freeze())
            .expect("the start of a record");
        let error = target.finish_restore(LogIndex(9)).expect_err("cut short");
        assert!(
            matches!(&error, StorageError::Corruption { index: LogIndex(9), detail, .. } if detail.contains("inside record 0")),
            "{error}"
        );
        let reopened = RegisterMachine::open(target.db.clone()).expect("reopen");
        assert_eq!(reopened.applied_index(), LogIndex(0));
        assert_eq!(
            reopened.get(b"k").expect("read"),
            None,
            "the old state is gone"
        );

        target.begin_restore(LogIndex(9)).expect("begin again");
        let mut absurd = BytesMut::new();
        absurd.put_u32(u32::MAX);
        let error = target
            .restore_chunk(absurd.freeze())
            .expect_err("absurd key");
        assert!(error.to_string().contains("record 0: key of"), "{error}");
    }

    /// Records split across chunks at any byte restore whole.
    #[test]
    fn records_straddling_chunks_restore_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (_storage, mut target) = machine(dir.path());
        let mut stream = BytesMut::new();
        for k in 0u8..4 {
            stream.put_u32(2);
            stream.put_slice(&[b'k', k]);
            stream.put_u32(3);
            stream.put_slice(&[k; 3]);
        }
        let stream = stream.freeze();
        target.begin_restore(LogIndex(4)).expect("begin");
        for piece in stream.chunks(3) {
            target
                .restore_chunk(Bytes::copy_from_slice(piece))
                .expect("piece");
        }
        target.finish_restore(LogIndex(4)).expect("finish");
        let expected: Vec<_> = (0u8..4)
            .map(|k| (vec![b'k', k], Some(vec![k; 3])))
            .collect();
        assert_eq!(contents(&target), expected);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// One batch leaves exactly the state that applying its entries one
        /// by one leaves, Appends after writes of the same key included.
        #[test]
        fn a_batch_applies_like_its_entries_one_by_one(
            commands in proptest::collection::vec(command(), 1..24),
        ) {
            let entries: Vec<Entry> = commands
                .iter()
                .enumerate()
                .map(|(i, command)| Entry {
                    term: Term(1),
                    index: LogIndex(i as u64 + 1),
                    kind: EntryKind::Normal,
                    data: command.encode(),
                })
                .collect();
            let (one_dir, batch_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let (_one_storage, mut one_by_one) = machine(one_dir.path());
            let (_batch_storage, mut batched) = machine(batch_dir.path());
            for entry in &entries {
                one_by_one.apply(entry);
            }
            prop_assert_eq!(batched.apply_batch(&entries).len(), entries.len());
            prop_assert_eq!(contents(&batched), contents(&one_by_one));
            prop_assert_eq!(batched.applied_index(), LogIndex(entries.len() as u64));
            let reopened = RegisterMachine::open(batched.db.clone()).expect("reopen");
            prop_assert_eq!(reopened.applied_index(), LogIndex(entries.len() as u64));
        }
    }
}
