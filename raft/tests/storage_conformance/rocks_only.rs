//! What only [`RocksStorage`] promises: everything survives a reopen (and a
//! crash of the process), a damaged record fails the reopen with a
//! corruption error naming its index and column family, a batch is
//! written whole or not at all, and compaction writes no copy of the
//! application's state (which is the snapshot) nor of anything else.

use std::path::Path;
use std::process::Command;

use rocksdb::{DB, IteratorMode, Options};

use super::*;
use raft::storage::{
    CF_DATA, CF_META, CF_RAFT_LOG, CF_RAFT_STATE, WAL_BYTES_BULK, WAL_BYTES_MAX,
    WAL_FILES_RECYCLED, applied_db_option, takes_direct_writes,
};

/// Set in the child process of [`persisted_batch_survives_process_abort`]
/// to the directory it writes.
const ABORT_CHILD_DIR: &str = "RAFT_STORAGE_CONFORMANCE_ABORT_CHILD_DIR";

/// The `raft_state` key of the compacted prefix record.
const KEY_PREFIX: &str = "compacted_prefix";

fn open(dir: &Path) -> RocksStorage {
    RocksStorage::open(dir).expect("open")
}

fn bootstrapped(dir: &Path, membership: Membership) -> RocksStorage {
    let mut storage = open(dir);
    storage.bootstrap(membership).expect("bootstrap");
    storage
}

/// Opens the database directly with rocksdb, applies `change` to it and
/// closes it.
fn with_raw_db(dir: &Path, change: impl FnOnce(&DB)) {
    let column_families = [CF_RAFT_LOG, CF_RAFT_STATE, CF_DATA, CF_META];
    let db = DB::open_cf(&Options::default(), dir, column_families).expect("open raw db");
    change(&db);
}

/// Returns every record of the column family `name`, in key order.
fn records(db: &DB, name: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let family = db.cf_handle(name).expect("column family");
    db.iterator_cf(family, IteratorMode::Start)
        .map(|record| {
            let (key, value) = record.expect("readable record");
            (key.to_vec(), value.to_vec())
        })
        .collect()
}

/// Returns the bytes (keys and values) the column family `name` holds.
fn stored_bytes(db: &DB, name: &str) -> usize {
    records(db, name)
        .iter()
        .map(|(key, value)| key.len() + value.len())
        .sum()
}

fn expect_corruption(
    result: Result<RocksStorage, StorageError>,
    index: u64,
    column_family: &str,
) -> String {
    match result {
        Err(StorageError::Corruption {
            index: reported,
            location,
            detail,
        }) => {
            assert_eq!(reported, LogIndex(index), "{location}: {detail}");
            assert!(location.contains(column_family), "{location}");
            detail
        }
        other => panic!("expected corruption at {index}, got {other:?}"),
    }
}

// Goal: a reopen restores term, vote, commit, the log, the compacted
// prefix with its membership and the saved membership.
#[test]
fn reopen_reads_everything_back() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let state = hard_state(4, Some(2), 9);
    {
        let mut storage = bootstrapped(dir.path(), voters(&[1, 2]));
        let log = [entries(2..=6, 2), entries(7..=12, 4)].concat();
        storage
            .persist(&PersistBatch {
                hard_state: Some(&state),
                entries: &log,
                ..PersistBatch::default()
            })
            .expect("persist");
        storage
            .compact(LogIndex(6), voters(&[1, 2]))
            .expect("compact");
        storage
            .save_membership(&voters(&[1, 2, 3]), LogIndex(8))
            .expect("save membership");
    }
    let mut storage = open(dir.path());
    assert!(!storage.is_empty());
    assert_eq!(storage.hard_state(), state);
    assert_eq!(
        storage.snapshot_meta(),
        snapshot_meta(6, 2, voters(&[1, 2]))
    );
    assert_eq!(storage.first_index(), LogIndex(7));
    assert_eq!(storage.last_index(), LogIndex(12));
    assert_eq!(
        storage.entries(LogIndex(7), LogIndex(13), u64::MAX),
        Ok(entries(7..=12, 4))
    );
    assert_eq!(storage.term(LogIndex(6)), Ok(Term(2)));
    assert_eq!(storage.term(LogIndex(5)), Err(StorageError::Compacted));
    let initial = storage.initial_state().expect("initial state");
    assert_eq!(initial.hard_state, state);
    assert_eq!(initial.membership, voters(&[1, 2, 3]));
    // The reopened log compacts and grows like before.
    storage
        .compact(LogIndex(12), voters(&[1, 2, 3]))
        .expect("compact all");
    append(&mut storage, &entries(13..=14, 5)).expect("append");
    drop(storage);
    let storage = open(dir.path());
    assert_eq!(
        storage.snapshot_meta(),
        snapshot_meta(12, 4, voters(&[1, 2, 3]))
    );
    assert_eq!(
        storage.entries(LogIndex(13), LogIndex(15), u64::MAX),
        Ok(entries(13..=14, 5))
    );
}

// Goal: a bit flipped on disk is never served. Method: flip, one at a
// time, a byte of the payload, of the crc and of the header of entry 5's
// raw value in raft_log; reopening must fail naming index 5 and raft_log.
#[test]
fn flipped_byte_in_stored_entry_fails_reopen_with_corruption() {
    let dir = tempfile::tempdir().expect("temporary directory");
    {
        let mut storage = bootstrapped(dir.path(), voters(&[1]));
        append(&mut storage, &entries(2..=9, 1)).expect("append");
    }
    let key = 5u64.to_be_bytes();
    let original = {
        let mut value = None;
        with_raw_db(dir.path(), |db| {
            let log = db.cf_handle(CF_RAFT_LOG).expect("raft_log");
            value = db.get_cf(log, key).expect("read raw entry");
        });
        value.expect("entry 5 is stored")
    };
    for position in [0, 3, 4, 12, 20, original.len() - 1] {
        let mut damaged = original.clone();
        damaged[position] ^= 0x10;
        with_raw_db(dir.path(), |db| {
            let log = db.cf_handle(CF_RAFT_LOG).expect("raft_log");
            db.put_cf(log, key, &damaged).expect("write raw entry");
        });
        expect_corruption(RocksStorage::open(dir.path()), 5, CF_RAFT_LOG);
    }
    // Restoring the bytes makes the store readable again.
    with_raw_db(dir.path(), |db| {
        let log = db.cf_handle(CF_RAFT_LOG).expect("raft_log");
        db.put_cf(log, key, &original).expect("restore raw entry");
    });
    assert_eq!(open(dir.path()).last_index(), LogIndex(9));
}

#[test]
fn missing_entry_fails_reopen_with_corruption() {
    let dir = tempfile::tempdir().expect("temporary directory");
    {
        let mut storage = bootstrapped(dir.path(), voters(&[1]));
        append(&mut storage, &entries(2..=9, 1)).expect("append");
    }
    with_raw_db(dir.path(), |db| {
        let log = db.cf_handle(CF_RAFT_LOG).expect("raft_log");
        db.delete_cf(log, 6u64.to_be_bytes())
            .expect("delete raw entry");
    });
    expect_corruption(RocksStorage::open(dir.path()), 6, CF_RAFT_LOG);
}

// Goal: the range deletion of a compaction hides exactly the compacted
// entries from the verification on open, and an entry that reappears
// below the prefix (a valid record put back) is a gap, not ignored.
#[test]
fn entry_below_the_prefix_fails_reopen_with_corruption() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let key = 3u64.to_be_bytes();
    let mut entry_3 = None;
    {
        let mut storage = bootstrapped(dir.path(), voters(&[1]));
        append(&mut storage, &entries(2..=9, 1)).expect("append");
    }
    with_raw_db(dir.path(), |db| {
        let log = db.cf_handle(CF_RAFT_LOG).expect("raft_log");
        entry_3 = db.get_cf(log, key).expect("read raw entry");
    });
    {
        let mut storage = open(dir.path());
        storage.compact(LogIndex(5), voters(&[1])).expect("compact");
    }
    assert_eq!(open(dir.path()).first_index(), LogIndex(6));
    with_raw_db(dir.path(), |db| {
        let log = db.cf_handle(CF_RAFT_LOG).expect("raft_log");
        let value = entry_3.expect("entry 3 was stored");
        db.put_cf(log, key, value).expect("write raw entry");
    });
    expect_corruption(RocksStorage::open(dir.path()), 3, CF_RAFT_LOG);
}

#[test]
fn damaged_hard_state_fails_reopen_with_corruption() {
    let dir = tempfile::tempdir().expect("temporary directory");
    {
        let mut storage = bootstrapped(dir.path(), voters(&[1]));
        let state = hard_state(3, Some(1), 0);
        storage
            .persist(&PersistBatch {
                hard_state: Some(&state),
                ..PersistBatch::default()
            })
            .expect("persist");
    }
    with_raw_db(dir.path(), |db| {
        let cf = db.cf_handle(CF_RAFT_STATE).expect("raft_state");
        let mut value = db.get_cf(cf, "hard_state").expect("read").expect("stored");
        value[6] ^= 1;
        db.put_cf(cf, "hard_state", value).expect("write");
    });
    expect_corruption(RocksStorage::open(dir.path()), 0, CF_RAFT_STATE);
}

// Goal: a damaged compacted prefix record (the only record saying where
// the log starts) fails the open, naming raft_state and the record, for a
// flipped byte and for a truncation alike.
#[test]
fn damaged_prefix_record_fails_reopen_with_corruption() {
    let dir = tempfile::tempdir().expect("temporary directory");
    {
        let mut storage = bootstrapped(dir.path(), voters(&[1, 2]));
        append(&mut storage, &entries(2..=9, 1)).expect("append");
        storage
            .compact(LogIndex(4), voters(&[1, 2]))
            .expect("compact");
    }
    let original = {
        let mut value = None;
        with_raw_db(dir.path(), |db| {
            let state = db.cf_handle(CF_RAFT_STATE).expect("raft_state");
            value = db.get_cf(state, KEY_PREFIX).expect("read");
        });
        value.expect("the prefix record is stored")
    };
    let mut flipped = original.clone();
    flipped[9] ^= 0x02;
    let truncated = original[..original.len() - 3].to_vec();
    for damaged in [flipped, truncated] {
        with_raw_db(dir.path(), |db| {
            let state = db.cf_handle(CF_RAFT_STATE).expect("raft_state");
            db.put_cf(state, KEY_PREFIX, &damaged).expect("write");
        });
        let result = RocksStorage::open(dir.path());
        let Err(StorageError::Corruption { location, .. }) = &result else {
            panic!("expected corruption, got {result:?}");
        };
        assert!(location.contains(KEY_PREFIX), "{location}");
        expect_corruption(result, 0, CF_RAFT_STATE);
    }
    with_raw_db(dir.path(), |db| {
        let state = db.cf_handle(CF_RAFT_STATE).expect("raft_state");
        db.put_cf(state, KEY_PREFIX, &original).expect("restore");
    });
    assert_eq!(open(dir.path()).first_index(), LogIndex(5));
}

/// Returns a snapshot record of the pre-release layout: crc32, then data
/// id, data size, index, term, voters and learners.
fn legacy_snapshot_record(id: u64, size_bytes: u64, index: u64, term: u64) -> Vec<u8> {
    let mut payload = Vec::new();
    for field in [id, size_bytes, index, term, 1, 1, 0] {
        payload.extend_from_slice(&field.to_be_bytes());
    }
    let mut record = crc32fast::hash(&payload).to_be_bytes().to_vec();
    record.extend_from_slice(&payload);
    record
}

// Goal: a database of the pre-release layout (a snapshot record with a
// data id and size, snapshot data chunks) is refused with a corruption
// error naming raft_state and saying why, not misread or a panic.
#[test]
fn pre_release_snapshot_layout_fails_open_with_corruption() {
    let dir = tempfile::tempdir().expect("temporary directory");
    drop(bootstrapped(dir.path(), voters(&[1])));
    with_raw_db(dir.path(), |db| {
        let state = db.cf_handle(CF_RAFT_STATE).expect("raft_state");
        db.delete_cf(state, KEY_PREFIX).expect("delete");
        db.put_cf(state, "snapshot", legacy_snapshot_record(1, 4, 1, 1))
            .expect("write");
        let mut chunk_key = b"snapshot_chunk/".to_vec();
        chunk_key.extend_from_slice(&1u64.to_be_bytes());
        chunk_key.extend_from_slice(&0u64.to_be_bytes());
        db.put_cf(state, chunk_key, b"data").expect("write");
    });
    let detail = expect_corruption(RocksStorage::open(dir.path()), 0, CF_RAFT_STATE);
    assert!(detail.contains("pre-release layout"), "{detail}");

    // A staged snapshot of a joiner alone is refused the same way.
    let dir = tempfile::tempdir().expect("temporary directory");
    drop(open(dir.path()));
    with_raw_db(dir.path(), |db| {
        let state = db.cf_handle(CF_RAFT_STATE).expect("raft_state");
        let record = legacy_snapshot_record(1, 0, 9, 2);
        db.put_cf(state, "snapshot_staged", record).expect("write");
    });
    let detail = expect_corruption(RocksStorage::open(dir.path()), 0, CF_RAFT_STATE);
    assert!(detail.contains("pre-release layout"), "{detail}");
}

// Goal: the entries and the hard state of one batch are durable together,
// and a failed batch (an install then entries leaving a gap) leaves
// nothing behind, neither in memory nor after a reopen: not even the
// install that comes first in it.
#[test]
fn persist_is_atomic_across_reopen() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let state = hard_state(2, Some(1), 3);
    {
        let mut storage = bootstrapped(dir.path(), voters(&[1]));
        let batch_entries = entries(2..=4, 2);
        storage
            .persist(&PersistBatch {
                hard_state: Some(&state),
                entries: &batch_entries,
                ..PersistBatch::default()
            })
            .expect("persist");
        let before = observe(&storage);
        let failing_state = hard_state(9, None, 3);
        let held = snapshot_meta(3, 2, voters(&[1, 2]));
        let failing_entries = entries(6..=7, 9);
        let result = storage.persist(&PersistBatch {
            hard_state: Some(&failing_state),
            snapshot: Some(&held),
            entries: &failing_entries,
        });
        assert!(result.is_err());
        assert_eq!(observe(&storage), before);
    }
    let storage = open(dir.path());
    assert_eq!(storage.hard_state(), state);
    assert_eq!(storage.snapshot_meta(), snapshot_meta(1, 1, voters(&[1])));
    assert_eq!(storage.last_index(), LogIndex(4));
    assert_eq!(
        storage.entries(LogIndex(2), LogIndex(5), u64::MAX),
        Ok(entries(2..=4, 2))
    );
}

// Goal: `persist` and `compact` are durable when they return, without a
// clean close. Method: the test re-runs itself as a child process that
// persists a batch, compacts part of it and aborts; the parent reopens
// and finds the whole batch and the compaction.
#[test]
fn persisted_batch_survives_process_abort() {
    let state = hard_state(7, Some(3), 40);
    if let Ok(dir) = std::env::var(ABORT_CHILD_DIR) {
        let mut storage = open(Path::new(&dir));
        let batch_entries = entries(2..=50, 7);
        storage
            .persist(&PersistBatch {
                hard_state: Some(&state),
                entries: &batch_entries,
                ..PersistBatch::default()
            })
            .expect("persist");
        storage
            .compact(LogIndex(30), voters(&[3]))
            .expect("compact");
        std::process::abort();
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    drop(bootstrapped(dir.path(), voters(&[3])));
    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "rocks_only::persisted_batch_survives_process_abort",
        ])
        .args(["--nocapture", "--test-threads=1"])
        .env(ABORT_CHILD_DIR, dir.path())
        .status()
        .expect("run the child");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(6), "the child must abort: {status}");
    }
    assert!(!status.success(), "the child must abort");
    let storage = open(dir.path());
    assert_eq!(storage.hard_state(), state);
    assert_eq!(storage.snapshot_meta(), snapshot_meta(30, 7, voters(&[3])));
    assert_eq!(storage.last_index(), LogIndex(50));
    assert_eq!(
        storage.entries(LogIndex(31), LogIndex(51), u64::MAX),
        Ok(entries(31..=50, 7))
    );
}

#[test]
fn bootstrap_refuses_a_store_that_is_not_empty() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut storage = open(dir.path());
    assert!(storage.is_empty());
    assert!(storage.bootstrap(Membership::default()).is_err());
    assert!(storage.is_empty());
    storage.bootstrap(voters(&[1])).expect("bootstrap");
    assert!(!storage.is_empty());
    assert!(storage.bootstrap(voters(&[1])).is_err());
    drop(storage);
    let mut storage = open(dir.path());
    assert!(matches!(
        storage.bootstrap(voters(&[2])),
        Err(StorageError::Io(_))
    ));
    assert_eq!(storage.snapshot_meta(), snapshot_meta(1, 1, voters(&[1])));

    // A joiner's store is not empty once it persisted anything.
    let joiner_dir = tempfile::tempdir().expect("temporary directory");
    let mut joiner = open(joiner_dir.path());
    append(&mut joiner, &entries(1..=1, 1)).expect("append");
    assert!(!joiner.is_empty());
}

// Goal: compaction writes no copy of anything: the application's state
// in `data` is the snapshot. Method: the application writes `data`
// through `db()`; ~8 MiB of entries are appended and all compacted; then
// `raft_state` holds under 4 KiB, `raft_log` nothing, `data` exactly what
// the application wrote, and the active memtable of `raft_log` holds no
// point deletion (the entries went with one range deletion), across a
// reopen too.
#[test]
fn compaction_writes_no_copy() {
    const ENTRY_BYTES: usize = 4 << 10;
    const ENTRY_COUNT: u64 = 2048;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut storage = bootstrapped(dir.path(), voters(&[1, 2, 3]));
    let db = storage.db();
    let data = db.cf_handle(CF_DATA).expect("data");
    let mut batch = rocksdb::WriteBatch::default();
    for key in 0..256u32 {
        batch.put_cf(data, key.to_be_bytes(), vec![key as u8; 1000]);
    }
    db.write(batch).expect("application write");
    let application_state = records(&db, CF_DATA);

    let payload = Bytes::from(vec![0x5a; ENTRY_BYTES]);
    for first in (2..ENTRY_COUNT + 2).step_by(256) {
        let batch: Vec<Entry> = (first..first + 256)
            .map(|index| Entry {
                term: Term(3),
                index: LogIndex(index),
                kind: EntryKind::Normal,
                data: payload.clone(),
            })
            .collect();
        append(&mut storage, &batch).expect("append");
    }
    let log_bytes = stored_bytes(&db, CF_RAFT_LOG);
    assert!(log_bytes >= 8 << 20, "{log_bytes} bytes of log");
    let last = storage.last_index();
    assert_eq!(last, LogIndex(ENTRY_COUNT + 1));

    storage
        .compact(last, voters(&[1, 2, 3]))
        .expect("compact all");
    assert_eq!(
        storage.snapshot_meta(),
        snapshot_meta(last.0, 3, voters(&[1, 2, 3]))
    );
    let check = |db: &DB| {
        let state_bytes = stored_bytes(db, CF_RAFT_STATE);
        assert!(
            state_bytes < 4 << 10,
            "raft_state holds {state_bytes} bytes"
        );
        assert_eq!(records(db, CF_RAFT_LOG), Vec::new(), "raft_log is empty");
        assert_eq!(records(db, CF_DATA), application_state, "data untouched");
    };
    check(&db);
    let log = db.cf_handle(CF_RAFT_LOG).expect("raft_log");
    let deletes = db
        .property_int_value_cf(log, "rocksdb.num-deletes-active-mem-table")
        .expect("property");
    assert_eq!(deletes, Some(0), "point deletions in raft_log");
    drop(db);
    drop(storage);

    let storage = open(dir.path());
    assert_eq!(storage.first_index(), last.next());
    check(&storage.db());
}

/// Returns the value of `option` in the database options RocksDB applied
/// in `dir`.
fn db_option(dir: &Path, option: &str) -> String {
    applied_db_option(dir, option)
        .expect("read OPTIONS")
        .unwrap_or_else(|| panic!("{option} is not in the OPTIONS file"))
}

// Goal: flushes and compactions write directly, past the page cache,
// exactly where the data dir's file system takes direct writes, and the
// store works either way (a flush of every family, then a reopen).
#[test]
fn flushes_write_directly_where_the_file_system_allows() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let expected = takes_direct_writes(dir.path());
    let storage = bootstrapped(dir.path(), voters(&[1]));
    let db = storage.db();
    let data = db.cf_handle(CF_DATA).expect("data");
    db.put_cf(data, "key", vec![7u8; 64 << 10]).expect("write");
    for name in [CF_RAFT_LOG, CF_RAFT_STATE, CF_DATA, CF_META] {
        db.flush_cf(db.cf_handle(name).expect("family"))
            .expect("flush");
    }
    assert_eq!(
        db_option(dir.path(), "use_direct_io_for_flush_and_compaction"),
        expected.to_string()
    );
    drop(db);
    drop(storage);
    let reopened = open(dir.path());
    let db = reopened.db();
    let value = db.get_cf(db.cf_handle(CF_DATA).expect("data"), "key");
    assert_eq!(value.expect("read"), Some(vec![7u8; 64 << 10]));
}

/// Returns the bytes of RocksDB's write-ahead log files in `dir`.
fn wal_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("data dir")
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "log"))
        .filter_map(|entry| entry.metadata().ok())
        .map(|meta| meta.len())
        .sum()
}

// Goal: the WAL stays within its bound whatever is written, so a
// replica's disk holds a constant over its live data and a restart
// replays a bounded WAL. Method: append four times `WAL_BYTES_MAX` of
// 1 MiB entries, never compacted; once RocksDB's background flushes are
// done, the WAL files hold at most the live file and the recycled ones,
// each up to the bound and one batch.
#[test]
fn the_wal_stays_within_its_bound() {
    wal_stays_within_its_bound(false);
}

// Goal: the raised bound for bulk writes is a bound too. Method: as
// above, with the bound raised to `WAL_BYTES_BULK` first.
#[test]
fn the_raised_wal_bound_is_a_bound_too() {
    wal_stays_within_its_bound(true);
}

/// Appends four times the bound of 1 MiB entries, with the bound for bulk
/// writes if `bulk`, and waits until the WAL files are within the bound.
fn wal_stays_within_its_bound(bulk: bool) {
    const ENTRY_BYTES: usize = 1 << 20;
    const BATCH_ENTRIES: u64 = 4;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut storage = bootstrapped(dir.path(), voters(&[1]));
    storage.wal_bound().set_bulk(bulk).expect("set the bound");
    let wal_bytes_max = if bulk { WAL_BYTES_BULK } else { WAL_BYTES_MAX };
    let payload = Bytes::from(vec![0xa5; ENTRY_BYTES]);
    let entry_count = 4 * wal_bytes_max / ENTRY_BYTES as u64;
    for first in (2..entry_count + 2).step_by(BATCH_ENTRIES as usize) {
        let batch: Vec<Entry> = (first..first + BATCH_ENTRIES)
            .map(|index| Entry {
                term: Term(1),
                index: LogIndex(index),
                kind: EntryKind::Normal,
                data: payload.clone(),
            })
            .collect();
        append(&mut storage, &batch).expect("append");
    }
    let bound =
        (1 + WAL_FILES_RECYCLED as u64) * (wal_bytes_max + BATCH_ENTRIES * ENTRY_BYTES as u64);
    let started = std::time::Instant::now();
    loop {
        let wal = wal_bytes(dir.path());
        if wal <= bound {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{wal} bytes of WAL after {} MiB appended, over the bound of {bound}",
            entry_count
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(storage.last_index(), LogIndex(entry_count + 1));
}

#[test]
fn application_column_families_are_shared_and_durable() {
    let dir = tempfile::tempdir().expect("temporary directory");
    {
        let storage = bootstrapped(dir.path(), voters(&[1]));
        let db = storage.db();
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(db.cf_handle(CF_DATA).expect("data"), "key", "value");
        batch.put_cf(
            db.cf_handle(CF_META).expect("meta"),
            "applied",
            7u64.to_be_bytes(),
        );
        db.write(batch).expect("application write");
    }
    let storage = open(dir.path());
    let db = storage.db();
    let value = db.get_cf(db.cf_handle(CF_DATA).expect("data"), "key");
    assert_eq!(value.expect("read"), Some(b"value".to_vec()));
    assert_eq!(storage.snapshot_meta().index, LogIndex(1));
}
