//! Snapshots of an application's column families, for applications whose
//! state lives in the node's RocksDB (the register map, the group server):
//! a pinned view read in chunks by key, and the restore of such chunks
//! straight into the column families (the restore mark is
//! [`crate::app_meta`]'s). A snapshot covers [`Part`]s: a column family,
//! whole or only the keys under a prefix (so an application's records in
//! `meta` travel while the applied index and the restore mark stay).
//!
//! A chunk is a run of whole records, each `[cf: u8][key length: u32 BE]
//! [key][value length: u32 BE][value]`, `cf` indexing the column families
//! the view was pinned over. A position (cursor) is `[cf: u8][key]`: the
//! chunk starts at that key, inclusive; empty is the beginning.
//!
//! Invariants:
//! - A view is pinned (a RocksDB snapshot) before [`pin`] returns and is
//!   read only by its own thread, which ends when the source is dropped:
//!   reads never run on the caller's thread and never see later writes.
//! - Chunks hold whole records, so each restores on its own; a record
//!   that takes a chunk past the chunk size ends it (whole).
//! - A source's thread is joined when the source is dropped.

use std::sync::Arc;
use std::sync::mpsc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rocksdb::{DB, ReadOptions, WriteBatch};

use crate::app_meta;
use crate::core::{LogIndex, RestorePoint, StorageError, Term};
use crate::driver::{SnapshotPiece, SnapshotSource};

type ReadRequest = (
    Bytes,
    u64,
    mpsc::SyncSender<Result<SnapshotPiece, StorageError>>,
);

/// One part of a snapshot: the keys of column family `cf` that start with
/// `prefix` (all of them for an empty prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// The column family.
    pub cf: &'static str,
    /// The key prefix (empty: every key).
    pub prefix: &'static [u8],
}

impl Part {
    /// Returns the part holding every key of `cf`.
    pub const fn whole(cf: &'static str) -> Part {
        Part { cf, prefix: b"" }
    }

    /// Returns whether `key` belongs to the part.
    fn holds(&self, key: &[u8]) -> bool {
        key.starts_with(self.prefix)
    }
}

/// A pinned view of some column families, read by its own thread.
struct PinnedColumnFamilies {
    /// Invariant: `Some` until dropped.
    requests: Option<mpsc::SyncSender<ReadRequest>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for PinnedColumnFamilies {
    /// Ends the reading thread and waits for it, so the view (and the
    /// database it keeps open) is gone when the source is.
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Pins a view of the `parts` of `db` (in this order) and returns a
/// reader of it.
///
/// # Errors
/// [`StorageError::Io`] if a column family is missing or the reading
/// thread cannot start.
pub fn pin(db: Arc<DB>, parts: &[Part]) -> Result<Box<dyn SnapshotSource>, StorageError> {
    for part in parts {
        db.cf_handle(part.cf)
            .ok_or_else(|| StorageError::Io(format!("missing {} column family", part.cf)))?;
    }
    let cfs = parts.to_vec();
    let (requests, incoming) = mpsc::sync_channel::<ReadRequest>(1);
    let (pinned_sender, pinned) = mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("snapshot-view".into())
        .spawn(move || {
            let view = db.snapshot();
            let _ = pinned_sender.send(());
            while let Ok((cursor, bytes_max, reply)) = incoming.recv() {
                let _ = reply.send(read_chunk(&db, &view, &cfs, &cursor, bytes_max));
            }
        })
        .map_err(|error| StorageError::Io(format!("cannot start a snapshot reader: {error}")))?;
    let source = PinnedColumnFamilies {
        requests: Some(requests),
        thread: Some(thread),
    };
    pinned
        .recv()
        .map_err(|_| StorageError::Io("the snapshot reader stopped before pinning".into()))?;
    Ok(Box::new(source))
}

impl SnapshotSource for PinnedColumnFamilies {
    fn read(&mut self, cursor: &[u8], bytes_max: u64) -> Result<SnapshotPiece, StorageError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let gone = || StorageError::Io("the snapshot reader stopped".into());
        self.requests
            .as_ref()
            .ok_or_else(gone)?
            .send((Bytes::copy_from_slice(cursor), bytes_max, reply))
            .map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

fn read_chunk(
    db: &DB,
    view: &rocksdb::SnapshotWithThreadMode<'_, DB>,
    cfs: &[Part],
    cursor: &[u8],
    bytes_max: u64,
) -> Result<SnapshotPiece, StorageError> {
    let (first_cf, start_key) = match cursor.split_first() {
        None => (0, &[][..]),
        // The end position (past the last family) reads as an empty end.
        Some((&cf, key)) if usize::from(cf) <= cfs.len() => (usize::from(cf), key),
        Some(_) => {
            return Err(StorageError::Corruption {
                index: LogIndex(0),
                location: "snapshot position".into(),
                detail: format!("no column family {} in this snapshot", cursor[0]),
            });
        }
    };
    let mut data = BytesMut::new();
    for (cf_index, part) in cfs.iter().enumerate().skip(first_cf) {
        let name = part.cf;
        let cf = db
            .cf_handle(name)
            .ok_or_else(|| StorageError::Io(format!("missing {name} column family")))?;
        let mut options = ReadOptions::default();
        options.set_snapshot(view);
        options.fill_cache(false);
        options.set_readahead_size(2 << 20);
        let mut records = db.raw_iterator_cf_opt(&cf, options);
        if cf_index == first_cf && start_key > part.prefix {
            records.seek(start_key);
        } else {
            records.seek(part.prefix);
        }
        while let (Some(key), Some(value)) = (records.key(), records.value()) {
            if !part.holds(key) {
                break;
            }
            data.put_u8(cf_index as u8);
            data.put_u32(key.len() as u32);
            data.put_slice(key);
            data.put_u32(value.len() as u32);
            data.put_slice(value);
            if data.len() as u64 >= bytes_max {
                let mut next_cursor = BytesMut::with_capacity(key.len() + 2);
                next_cursor.put_u8(cf_index as u8);
                next_cursor.put_slice(key);
                next_cursor.put_u8(0);
                return Ok(SnapshotPiece {
                    data: data.freeze(),
                    next_cursor: next_cursor.freeze(),
                    last: false,
                });
            }
            records.next();
        }
        records
            .status()
            .map_err(|error| StorageError::Io(format!("reading {name} for a snapshot: {error}")))?;
    }
    // Past the last column family: a position no chunk starts at (an empty
    // one would read as the beginning).
    Ok(SnapshotPiece {
        data: data.freeze(),
        next_cursor: Bytes::copy_from_slice(&[cfs.len() as u8]),
        last: true,
    })
}

/// Adds to `batch` the deletion of everything in the `parts` of `db`.
///
/// # Errors
/// [`StorageError::Io`] if a column family is missing or cannot be read.
pub fn clear(db: &DB, batch: &mut WriteBatch, parts: &[Part]) -> Result<(), StorageError> {
    for part in parts {
        let name = part.cf;
        let cf = db
            .cf_handle(name)
            .ok_or_else(|| StorageError::Io(format!("missing {name} column family")))?;
        let mut records = db.raw_iterator_cf(&cf);
        if part.prefix.is_empty() {
            records.seek_to_last();
            if let Some(last) = records.key() {
                batch.delete_range_cf(&cf, &[][..], last);
                batch.delete_cf(&cf, last);
            }
        } else if let Some(end) = prefix_end(part.prefix) {
            // Every key under the prefix sorts before its end.
            batch.delete_range_cf(&cf, part.prefix, &end[..]);
        } else {
            records.seek(part.prefix);
            while let Some(key) = records.key().filter(|key| part.holds(key)) {
                batch.delete_cf(&cf, key);
                records.next();
            }
        }
        records
            .status()
            .map_err(|error| StorageError::Io(format!("reading {name}: {error}")))?;
    }
    Ok(())
}

/// Returns the first key after every key that starts with `prefix`, or
/// `None` if there is none (an empty prefix, or one of 0xff bytes only).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&byte| byte != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// Adds the records of one chunk to `batch`, into the `parts` (the ones
/// the view was pinned over, in the same order); returns how many there
/// were.
///
/// # Errors
/// [`StorageError::Corruption`] if the chunk is not a run of whole records
/// of these parts.
pub fn put_records(
    db: &DB,
    batch: &mut WriteBatch,
    cfs: &[Part],
    mut data: &[u8],
) -> Result<usize, StorageError> {
    let bad = |detail: String| StorageError::Corruption {
        index: LogIndex(0),
        location: "snapshot chunk".into(),
        detail,
    };
    let mut records = 0;
    while !data.is_empty() {
        let record = records;
        let take = |data: &mut &[u8], what: &str| -> Result<Vec<u8>, StorageError> {
            if data.remaining() < 4 {
                return Err(bad(format!(
                    "record {record}: the {what} length is cut short"
                )));
            }
            let length = data.get_u32() as usize;
            if data.remaining() < length {
                return Err(bad(format!(
                    "record {record}: the {what} is cut short ({length} bytes announced, {} left)",
                    data.remaining()
                )));
            }
            let bytes = data[..length].to_vec();
            data.advance(length);
            Ok(bytes)
        };
        let cf_index = usize::from(data.get_u8());
        let part = cfs
            .get(cf_index)
            .ok_or_else(|| bad(format!("record {record}: no column family {cf_index}")))?;
        let name = part.cf;
        let key = take(&mut data, "key")?;
        if !part.holds(&key) {
            return Err(bad(format!(
                "record {record}: a key outside the snapshot's part of {name}"
            )));
        }
        let value = take(&mut data, "value")?;
        let cf = db
            .cf_handle(name)
            .ok_or_else(|| StorageError::Io(format!("missing {name} column family")))?;
        batch.put_cf(&cf, key, value);
        records += 1;
    }
    Ok(records)
}

/// Begins the restore of the snapshot `(index, term)` into `parts`: clears
/// them, drops the applied index and writes the restore mark, in one write
/// (the Ready contract's step 1 for a chunk that starts a restore); returns
/// the mark.
///
/// # Errors
/// [`StorageError::Io`] if a column family is missing or the write fails.
pub fn begin_restore(
    db: &DB,
    parts: &[Part],
    index: LogIndex,
    term: Term,
) -> Result<RestorePoint, StorageError> {
    let point = RestorePoint::beginning(index, term);
    let mut batch = WriteBatch::default();
    clear(db, &mut batch, parts)?;
    app_meta::delete_applied(db, &mut batch)?;
    app_meta::put_restore_mark(db, &mut batch, &point)?;
    write(db, batch, "marking the state as being restored")?;
    Ok(point)
}

/// Writes the records of a chunk that is not the last one into `parts`
/// and moves the restore mark `point` to `next_cursor`, in one write.
///
/// # Errors
/// [`StorageError::Corruption`] for a chunk that is not a run of whole
/// records of these parts; [`StorageError::Io`] if the write fails.
pub fn restore_chunk(
    db: &DB,
    parts: &[Part],
    point: &mut RestorePoint,
    data: &[u8],
    next_cursor: Bytes,
) -> Result<(), StorageError> {
    let mut batch = WriteBatch::default();
    put_records(db, &mut batch, parts, data)?;
    let mut moved = point.clone();
    moved.next_cursor = next_cursor;
    app_meta::put_restore_mark(db, &mut batch, &moved)?;
    write(db, batch, "writing restored records")?;
    *point = moved;
    Ok(())
}

/// Writes the last chunk's records into `parts` and finishes the restore
/// at `index` ([`app_meta::finish_restore`]: the mark removed and the
/// applied index set, synced).
///
/// # Errors
/// As [`restore_chunk`].
pub fn finish_restore(
    db: &DB,
    parts: &[Part],
    data: &[u8],
    index: LogIndex,
) -> Result<(), StorageError> {
    let mut batch = WriteBatch::default();
    put_records(db, &mut batch, parts, data)?;
    app_meta::finish_restore(db, batch, index)
}

fn write(db: &DB, batch: WriteBatch, context: &str) -> Result<(), StorageError> {
    db.write(batch)
        .map_err(|error| StorageError::Io(format!("{context}: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{CF_DATA, CF_META, RocksStorage};

    // Goal: a part under a prefix is read, cleared and restored without
    // touching the other keys of its column family.
    #[test]
    fn a_prefixed_part_leaves_the_rest_of_its_column_family_alone() {
        let parts = [
            Part::whole(CF_DATA),
            Part {
                cf: CF_META,
                prefix: b"app/",
            },
        ];
        let source_dir = tempfile::tempdir().expect("temp dir");
        let source_storage = RocksStorage::open(source_dir.path()).expect("open");
        let source = source_storage.db();
        let meta = source.cf_handle(CF_META).expect("meta");
        let data = source.cf_handle(CF_DATA).expect("data");
        for (cf, key) in [
            (data, &b"k1"[..]),
            (meta, b"app/a"),
            (meta, b"app/b"),
            (meta, b"other"),
        ] {
            source.put_cf(cf, key, b"v").expect("put");
        }
        let mut reader = pin(source.clone(), &parts).expect("pin");
        let piece = reader.read(b"", 1 << 20).expect("read");
        assert!(piece.last);

        let target_dir = tempfile::tempdir().expect("temp dir");
        let target_storage = RocksStorage::open(target_dir.path()).expect("open");
        let target = target_storage.db();
        let meta = target.cf_handle(CF_META).expect("meta");
        for key in [&b"app/stale"[..], b"keep", b"apq"] {
            target.put_cf(meta, key, b"x").expect("put");
        }
        let mut batch = WriteBatch::default();
        clear(&target, &mut batch, &parts).expect("clear");
        let restored = put_records(&target, &mut batch, &parts, &piece.data).expect("records");
        assert_eq!(restored, 3);
        target.write(batch).expect("write");
        let mut keys = Vec::new();
        let mut records = target.raw_iterator_cf(&meta);
        records.seek_to_first();
        while let Some(key) = records.key() {
            keys.push(key.to_vec());
            records.next();
        }
        let expected: Vec<Vec<u8>> = [&b"app/a"[..], b"app/b", b"apq", b"keep"]
            .iter()
            .map(|key| key.to_vec())
            .collect();
        assert_eq!(keys, expected);
        let outside = [
            0u8, 0, 0, 0, 5, b'o', b't', b'h', b'e', b'r', 0, 0, 0, 1, b'v',
        ];
        let mut records = vec![1u8];
        records.extend_from_slice(&outside[1..]);
        let mut batch = WriteBatch::default();
        assert!(put_records(&target, &mut batch, &parts, &records).is_err());
    }
}
