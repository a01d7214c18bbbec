//! A replicated register map over RocksDB: the application the
//! `raft-node` binary, the node benchmark and the real-node tests run on
//! the driver. It keeps its values in the `data` column family and its
//! applied index in `meta`, written together in one WriteBatch per applied
//! run of entries (DESIGN.md "Storage layout"), so a restart resumes
//! exactly after the last applied entry.
//!
//! Invariants:
//! - `applied` equals the index stored in `meta` (both change in one
//!   batch).
//! - The map is its own snapshot: a lagging follower receives the `data`
//!   column family read from a pinned view ([`raft::app_snapshot`]).
//! - While a snapshot is being restored, `meta` holds a restore mark (the
//!   snapshot and the position of the next chunk) and no applied index,
//!   so a restart resumes the restore: a partly restored map is never
//!   taken for a state at an index, and readers refuse it.
//! - Writes are not synced: the Raft log's next synced write covers them
//!   (one WAL), and the log is never compacted past an unsynced entry.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use rocksdb::{DB, WriteBatch};

use raft::app_snapshot::Part;
use raft::core::{Entry, EntryKind, LogIndex, RestorePoint, StorageError, Term};
use raft::driver::{SnapshotSource, StateMachine};
use raft::storage::{CF_DATA, CF_META};
use raft::{app_meta, app_snapshot};

/// What a snapshot holds: the `data` column family.
const SNAPSHOT_CFS: [Part; 1] = [Part::whole(CF_DATA)];
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
        let data = self.db.cf_handle(CF_DATA).ok_or_else(|| missing(CF_DATA))?;
        let meta = self.db.cf_handle(CF_META).ok_or_else(|| missing(CF_META))?;
        let view = self.db.snapshot();
        let mark = view
            .get_cf(meta, app_meta::RESTORING_KEY)
            .map_err(|e| io_error("reading the restore mark", e))?;
        if let Some(point) = app_meta::decode_restore_mark(mark.as_deref())? {
            return Err(StorageError::SnapshotUnavailable(point.index));
        }
        view.get_cf(data, key)
            .map_err(|e| io_error("reading a value", e))
    }
}

/// The register map of one replica.
pub struct RegisterMachine {
    db: Arc<DB>,
    applied: LogIndex,
    /// The restore under way, if any (as durably marked).
    restoring: Option<RestorePoint>,
}

fn io_error(context: &str, error: rocksdb::Error) -> StorageError {
    StorageError::Io(format!("{context}: {error}"))
}

impl RegisterMachine {
    /// Opens the register map stored in `db` (which has the `data` and
    /// `meta` column families).
    pub fn open(db: Arc<DB>) -> Result<RegisterMachine, StorageError> {
        let applied = app_meta::read_applied(&db)?;
        let restoring = app_meta::read_restore_mark(&db)?;
        if let Some(point) = &restoring {
            tracing::warn!(
                snapshot_index = point.index.0,
                "the register map was being restored from a snapshot when the node stopped; the restore resumes"
            );
        }
        Ok(RegisterMachine {
            db,
            applied,
            restoring,
        })
    }

    /// Returns the value of `key`, if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let data = self.cf(CF_DATA);
        self.db
            .get_cf(data, key)
            .map_err(|e| io_error("reading a value", e))
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are checked at open")
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
                    batch.put_cf(self.cf(CF_DATA), &key, &value);
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
                    batch.put_cf(self.cf(CF_DATA), &key, &current);
                    written.insert(key, Some(Bytes::from(current)));
                }
                Some(RegisterCommand::Delete { key }) => {
                    batch.delete_cf(self.cf(CF_DATA), &key);
                    written.insert(key, None);
                }
                None => {}
            }
        }
        app_meta::put_applied(&self.db, &mut batch, last.index)
            .unwrap_or_else(|error| panic!("{error}"));
        self.write(batch);
        self.applied = last.index;
        vec![(); entries.len()]
    }

    fn snapshot_source(&self) -> Result<Box<dyn SnapshotSource>, StorageError> {
        app_snapshot::pin(self.db.clone(), &SNAPSHOT_CFS)
    }

    fn restoring(&self) -> Option<RestorePoint> {
        self.restoring.clone()
    }

    fn begin_restore(&mut self, index: LogIndex, term: Term) -> Result<(), StorageError> {
        let point = app_snapshot::begin_restore(&self.db, &SNAPSHOT_CFS, index, term)?;
        self.applied = LogIndex(0);
        self.restoring = Some(point);
        Ok(())
    }

    fn restore_chunk(&mut self, data: Bytes, next_cursor: Bytes) -> Result<(), StorageError> {
        let point = self
            .restoring
            .as_mut()
            .expect("restore_chunk follows begin_restore");
        app_snapshot::restore_chunk(&self.db, &SNAPSHOT_CFS, point, &data, next_cursor)
    }

    fn finish_restore(&mut self, index: LogIndex, data: Bytes) -> Result<(), StorageError> {
        let point = self
            .restoring
            .as_ref()
            .expect("finish_restore follows begin_restore");
        assert_eq!(point.index, index, "one restore at a time");
        app_snapshot::finish_restore(&self.db, &SNAPSHOT_CFS, &data, index)?;
        self.restoring = None;
        self.applied = index;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use raft::driver::SnapshotPiece;
    use raft::storage::RocksStorage;

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

    fn put(machine: &mut RegisterMachine, index: u64, key: &[u8], value: Vec<u8>) {
        let command = RegisterCommand::Put {
            key: Bytes::copy_from_slice(key),
            value: Bytes::from(value),
        };
        machine.apply(&Entry {
            term: Term(1),
            index: LogIndex(index),
            kind: EntryKind::Normal,
            data: command.encode(),
        });
    }

    /// Reads every chunk of `source`, `bytes_max` at a time.
    fn read_all(source: &mut dyn SnapshotSource, bytes_max: u64) -> Vec<SnapshotPiece> {
        let mut pieces = Vec::new();
        let mut cursor = Bytes::new();
        loop {
            let piece = source.read(&cursor, bytes_max).expect("read");
            cursor = piece.next_cursor.clone();
            let last = piece.last;
            pieces.push(piece);
            if last {
                return pieces;
            }
        }
    }

    /// A pinned view restores a replica to the map as of the pin: writes
    /// after it are not in it, and every chunk holds whole records (a value
    /// larger than a chunk travels alone).
    #[test]
    fn a_pinned_view_restores_the_map_as_of_the_pin() {
        let (source_dir, target_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (_source_storage, mut source) = machine(source_dir.path());
        for k in 0u8..4 {
            put(
                &mut source,
                u64::from(k) + 1,
                &[b'k', k],
                vec![k; 3 + 100 * usize::from(k)],
            );
        }
        let pinned_contents = contents(&source);
        let mut view = source.snapshot_source().expect("pin");
        put(&mut source, 5, b"k\x00", b"late".to_vec());
        let pieces = read_all(view.as_mut(), 64);
        assert!(pieces.len() >= 4, "{} chunks", pieces.len());
        let (_target_storage, mut target) = machine(target_dir.path());
        target.begin_restore(LogIndex(4), Term(1)).expect("begin");
        let (last, rest) = pieces.split_last().expect("one chunk at least");
        for piece in rest {
            target
                .restore_chunk(piece.data.clone(), piece.next_cursor.clone())
                .expect("chunk");
            assert_eq!(
                target.restoring().map(|point| point.next_cursor),
                Some(piece.next_cursor.clone()),
                "the mark follows the chunks"
            );
        }
        target
            .finish_restore(LogIndex(4), last.data.clone())
            .expect("finish");
        assert_eq!(contents(&target), pinned_contents);
        assert_eq!(target.applied_index(), LogIndex(4));
        assert_eq!(target.restoring(), None);
        let reopened = RegisterMachine::open(target.db.clone()).expect("reopen");
        assert_eq!(reopened.applied_index(), LogIndex(4));
        assert_eq!(reopened.restoring(), None);
    }

    /// A restore that does not finish leaves no applied index behind and a
    /// mark that a reopen finds, with the position to resume at; readers
    /// refuse the partial map. A chunk that is not whole records is a
    /// corruption error that writes nothing.
    #[test]
    fn an_unfinished_restore_leaves_the_map_marked() {
        let dir = tempfile::tempdir().unwrap();
        let (_storage, mut target) = machine(dir.path());
        put(&mut target, 3, b"k", b"old".to_vec());
        target.begin_restore(LogIndex(9), Term(2)).expect("begin");
        assert_eq!(target.applied_index(), LogIndex(0));
        assert_eq!(
            RegisterReader::new(target.db.clone()).get(b"k"),
            Err(StorageError::SnapshotUnavailable(LogIndex(9))),
            "readers see no partly restored map"
        );
        let mut record = BytesMut::new();
        record.put_u8(0);
        record.put_u32(1);
        record.put_slice(b"a");
        record.put_u32(2);
        record.put_slice(b"va");
        target
            .restore_chunk(record.freeze(), Bytes::from_static(b"\0a\0"))
            .expect("a whole record");
        let reopened = RegisterMachine::open(target.db.clone()).expect("reopen");
        assert_eq!(reopened.applied_index(), LogIndex(0));
        assert_eq!(
            reopened.restoring(),
            Some(RestorePoint {
                index: LogIndex(9),
                term: Term(2),
                next_cursor: Bytes::from_static(b"\0a\0"),
            })
        );
        assert_eq!(
            reopened.get(b"k").expect("read"),
            None,
            "the old state is gone"
        );

        let mut cut_short = BytesMut::new();
        cut_short.put_u8(0);
        cut_short.put_u32(1);
        cut_short.put_slice(b"b");
        cut_short.put_u32(5);
        cut_short.put_slice(b"vb");
        let error = target
            .finish_restore(LogIndex(9), cut_short.freeze())
            .expect_err("cut short");
        assert!(
            error
                .to_string()
                .contains("record 0: the value is cut short"),
            "{error}"
        );
        assert_eq!(
            target.get(b"b").expect("read"),
            None,
            "nothing of it written"
        );
        assert!(target.restoring().is_some(), "still marked");
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
