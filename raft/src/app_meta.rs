//! An application's bookkeeping in the `meta` column family, one encoding
//! for every application on the node's RocksDB (the register map, the
//! controller; the group server later): the applied index, written in the
//! same batch as the effects of the entries it covers, and the restore
//! mark, present while a snapshot is being restored (DESIGN.md "Storage
//! layout").
//!
//! Invariants: the applied index is 8 bytes big-endian, absent meaning 0;
//! the mark is `index | term | next position | crc32`, its crc checked on
//! every read, so a damaged mark is a corruption error, never a wrong
//! position.

use bytes::Bytes;
use rocksdb::{DB, WriteBatch};

use crate::core::{LogIndex, RestorePoint, StorageError, Term};
use crate::storage::CF_META;

/// The key of the applied index.
pub const APPLIED_KEY: &[u8] = b"applied_index";
/// The key of the restore mark.
pub const RESTORING_KEY: &[u8] = b"restoring_snapshot";

fn meta(db: &DB) -> Result<&rocksdb::ColumnFamily, StorageError> {
    db.cf_handle(CF_META)
        .ok_or_else(|| StorageError::Io(format!("missing {CF_META} column family")))
}

fn location(key: &[u8]) -> String {
    format!("{CF_META}/{}", String::from_utf8_lossy(key))
}

/// Returns the applied index stored in `db` (0 if none).
///
/// # Errors
/// [`StorageError::Io`] if reading fails, [`StorageError::Corruption`] if
/// the record is not 8 bytes.
pub fn read_applied(db: &DB) -> Result<LogIndex, StorageError> {
    let raw = db
        .get_cf(meta(db)?, APPLIED_KEY)
        .map_err(|error| StorageError::Io(format!("reading the applied index: {error}")))?;
    let Some(raw) = raw else {
        return Ok(LogIndex(0));
    };
    let bytes: [u8; 8] = raw
        .as_slice()
        .try_into()
        .map_err(|_| StorageError::Corruption {
            index: LogIndex(0),
            location: location(APPLIED_KEY),
            detail: format!("a log index has {} bytes, expected 8", raw.len()),
        })?;
    Ok(LogIndex(u64::from_be_bytes(bytes)))
}

/// Adds to `batch` the write of `index` as the applied index.
///
/// # Errors
/// [`StorageError::Io`] if `meta` is missing.
pub fn put_applied(db: &DB, batch: &mut WriteBatch, index: LogIndex) -> Result<(), StorageError> {
    batch.put_cf(meta(db)?, APPLIED_KEY, index.0.to_be_bytes());
    Ok(())
}

/// Adds to `batch` the removal of the applied index (a restore begins).
///
/// # Errors
/// [`StorageError::Io`] if `meta` is missing.
pub fn delete_applied(db: &DB, batch: &mut WriteBatch) -> Result<(), StorageError> {
    batch.delete_cf(meta(db)?, APPLIED_KEY);
    Ok(())
}

/// Returns the restore mark stored in `db`, if any.
///
/// # Errors
/// [`StorageError::Io`] if reading fails, [`StorageError::Corruption`] if
/// the mark is damaged.
pub fn read_restore_mark(db: &DB) -> Result<Option<RestorePoint>, StorageError> {
    let raw = db
        .get_cf(meta(db)?, RESTORING_KEY)
        .map_err(|error| StorageError::Io(format!("reading the restore mark: {error}")))?;
    decode_restore_mark(raw.as_deref())
}

/// Decodes a restore mark as read (by any view) under [`RESTORING_KEY`].
///
/// # Errors
/// [`StorageError::Corruption`] if it is damaged.
pub fn decode_restore_mark(raw: Option<&[u8]>) -> Result<Option<RestorePoint>, StorageError> {
    raw.map(decode_mark).transpose()
}

/// Adds to `batch` the write of the restore mark `point`.
///
/// # Errors
/// [`StorageError::Io`] if `meta` is missing.
pub fn put_restore_mark(
    db: &DB,
    batch: &mut WriteBatch,
    point: &RestorePoint,
) -> Result<(), StorageError> {
    batch.put_cf(meta(db)?, RESTORING_KEY, encode_mark(point));
    Ok(())
}

/// Finishes a restore at `index`: writes `batch` (the last of the
/// restored state) with the removal of the restore mark and `index` as the
/// applied index, in one synced write (the node acknowledges the snapshot
/// to its leader next, so this must survive a power failure).
///
/// # Errors
/// [`StorageError::Io`] if `meta` is missing or the write fails.
pub fn finish_restore(db: &DB, mut batch: WriteBatch, index: LogIndex) -> Result<(), StorageError> {
    batch.delete_cf(meta(db)?, RESTORING_KEY);
    put_applied(db, &mut batch, index)?;
    let mut synced = rocksdb::WriteOptions::default();
    synced.set_sync(true);
    db.write_opt(batch, &synced).map_err(|error| {
        StorageError::Io(format!("writing the end of a restore at {index}: {error}"))
    })
}

/// Encodes a restore mark: index, term (u64 BE each), the position, and a
/// crc32 of all of it.
fn encode_mark(point: &RestorePoint) -> Vec<u8> {
    let mut mark = Vec::with_capacity(20 + point.next_cursor.len());
    mark.extend_from_slice(&point.index.0.to_be_bytes());
    mark.extend_from_slice(&point.term.0.to_be_bytes());
    mark.extend_from_slice(&point.next_cursor);
    let crc = crc32fast::hash(&mark);
    mark.extend_from_slice(&crc.to_be_bytes());
    mark
}

/// Decodes a mark written by [`encode_mark`].
fn decode_mark(mark: &[u8]) -> Result<RestorePoint, StorageError> {
    let damaged = |detail: &str| StorageError::Corruption {
        index: LogIndex(0),
        location: location(RESTORING_KEY),
        detail: detail.into(),
    };
    if mark.len() < 20 {
        return Err(damaged("the restore mark is too short"));
    }
    let (body, crc) = mark.split_at(mark.len() - 4);
    if crc32fast::hash(body) != u32::from_be_bytes(crc.try_into().expect("4 bytes")) {
        return Err(damaged("the restore mark fails its crc32"));
    }
    let number = |at: usize| u64::from_be_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    Ok(RestorePoint {
        index: LogIndex(number(0)),
        term: Term(number(8)),
        next_cursor: Bytes::copy_from_slice(&body[16..]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::RocksStorage;

    fn write(db: &DB, fill: impl FnOnce(&DB, &mut WriteBatch) -> Result<(), StorageError>) {
        let mut batch = WriteBatch::default();
        fill(db, &mut batch).expect("meta exists");
        db.write(batch).expect("write");
    }

    // What is written reads back; absent means index 0 and no restore; a
    // finished restore leaves its index applied and no mark.
    #[test]
    fn applied_index_and_restore_mark_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = RocksStorage::open(dir.path()).expect("open").db();
        assert_eq!(read_applied(&db), Ok(LogIndex(0)));
        assert_eq!(read_restore_mark(&db), Ok(None));
        let point = RestorePoint {
            index: LogIndex(20),
            term: Term(3),
            next_cursor: Bytes::from_static(b"\0key\0"),
        };
        write(&db, |db, batch| {
            put_applied(db, batch, LogIndex(7))?;
            put_restore_mark(db, batch, &point)
        });
        assert_eq!(read_applied(&db), Ok(LogIndex(7)));
        assert_eq!(read_restore_mark(&db), Ok(Some(point)));
        write(&db, delete_applied);
        assert_eq!(read_applied(&db), Ok(LogIndex(0)));
        finish_restore(&db, WriteBatch::default(), LogIndex(20)).expect("finish");
        assert_eq!(read_applied(&db), Ok(LogIndex(20)));
        assert_eq!(read_restore_mark(&db), Ok(None), "the mark goes with it");
    }

    // A damaged record is a corruption error naming it, never a wrong
    // index or position.
    #[test]
    fn damaged_records_are_corruption() {
        let point = RestorePoint {
            index: LogIndex(20),
            term: Term(3),
            next_cursor: Bytes::from_static(b"k"),
        };
        let mut mark = encode_mark(&point);
        for at in 0..mark.len() {
            mark[at] ^= 0x01;
            let error = decode_restore_mark(Some(&mark)).expect_err("damaged");
            assert!(error.to_string().contains(CF_META), "{error}");
            mark[at] ^= 0x01;
        }
        assert!(decode_restore_mark(Some(&mark[..10])).is_err(), "too short");
        let dir = tempfile::tempdir().expect("temp dir");
        let db = RocksStorage::open(dir.path()).expect("open").db();
        db.put_cf(meta(&db).expect("meta"), APPLIED_KEY, [1, 2, 3])
            .expect("write");
        let error = read_applied(&db).expect_err("3 bytes");
        assert!(error.to_string().contains("expected 8"), "{error}");
    }
}
