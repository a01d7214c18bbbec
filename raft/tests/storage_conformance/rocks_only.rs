//! What only [`RocksStorage`] promises: everything survives a reopen (and a
//! crash of the process), a damaged record fails the reopen with a
//! corruption error naming its index and column family, and a batch is
//! written whole or not at all.

use std::path::Path;
use std::process::Command;

use rocksdb::{DB, Options};

use super::*;
use raft::storage::{CF_DATA, CF_META, CF_RAFT_LOG, CF_RAFT_STATE, CHUNK_RECORD_BYTES_MAX};

/// Set in the child process of [`persisted_batch_survives_process_abort`]
/// to the directory it writes.
const ABORT_CHILD_DIR: &str = "RAFT_STORAGE_CONFORMANCE_ABORT_CHILD_DIR";

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

fn expect_corruption(result: Result<RocksStorage, StorageError>, index: u64, column_family: &str) {
    match result {
        Err(StorageError::Corruption {
            index: reported,
            location,
            detail,
        }) => {
            assert_eq!(reported, LogIndex(index), "{location}: {detail}");
            assert!(location.contains(column_family), "{location}");
        }
        other => panic!("expected corruption at {index}, got {other:?}"),
    }
}

// Goal: a reopen restores term, vote, commit, the log, the snapshot with
// its data and membership, the saved membership and a staged snapshot.
#[test]
fn reopen_reads_everything_back() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let state = hard_state(4, Some(2), 9);
    let staged = snapshot_meta(20, 4, voters(&[1, 2]));
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
        let data = vec![Bytes::from_static(b"snap"), Bytes::from_static(b"shot")];
        storage
            .create_snapshot(LogIndex(6), voters(&[1, 2]), data)
            .expect("create snapshot");
        storage
            .save_membership(&voters(&[1, 2, 3]), LogIndex(8))
            .expect("save membership");
        stage(&mut storage, &[chunk(&staged, 0, b"staged ", false)]).expect("stage");
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
    assert_eq!(read_snapshot(&storage, LogIndex(6), 3), b"snapshot");
    let initial = storage.initial_state().expect("initial state");
    assert_eq!(initial.hard_state, state);
    assert_eq!(initial.membership, voters(&[1, 2, 3]));
    // The staged transfer is reported, so the core resumes it at byte 7.
    assert_eq!(initial.staged_snapshot, Some((staged.clone(), 7)));
    let last = [chunk(&staged, 7, b"data", true)];
    install(&mut storage, &last, &staged).expect("install after reopen");
    drop(storage);
    let storage = open(dir.path());
    assert_eq!(storage.snapshot_meta(), staged);
    assert_eq!(storage.last_index(), LogIndex(20));
    assert_eq!(read_snapshot(&storage, LogIndex(20), 100), b"staged data");
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

// Goal: the entries and the hard state of one batch are durable together,
// and a failed batch leaves nothing behind after a reopen either.
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
        let failing_state = hard_state(9, None, 3);
        let failing_entries = entries(5..=7, 9);
        let unknown = snapshot_meta(30, 9, voters(&[1]));
        let result = storage.persist(&PersistBatch {
            hard_state: Some(&failing_state),
            snapshot: Some(&unknown),
            entries: &failing_entries,
            ..PersistBatch::default()
        });
        assert!(result.is_err());
    }
    let storage = open(dir.path());
    assert_eq!(storage.hard_state(), state);
    assert_eq!(storage.last_index(), LogIndex(4));
    assert_eq!(
        storage.entries(LogIndex(2), LogIndex(5), u64::MAX),
        Ok(entries(2..=4, 2))
    );
}

// Goal: `persist` is durable when it returns, without a clean close.
// Method: the test re-runs itself as a child process that persists a batch
// and aborts; the parent reopens and finds the whole batch.
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
    assert_eq!(storage.last_index(), LogIndex(50));
    assert_eq!(
        storage.entries(LogIndex(2), LogIndex(51), u64::MAX),
        Ok(entries(2..=50, 7))
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

// Goal: the initial membership is the latest of the snapshot's and the one
// saved after applying a change, by index.
#[test]
fn saved_membership_counts_only_when_newer_than_the_snapshot() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut storage = bootstrapped(dir.path(), voters(&[1]));
    append(&mut storage, &entries(2..=10, 1)).expect("append");
    storage
        .save_membership(&voters(&[1, 2]), LogIndex(4))
        .expect("save");
    let membership = |storage: &RocksStorage| storage.initial_state().expect("state").membership;
    assert_eq!(membership(&storage), voters(&[1, 2]));
    storage
        .create_snapshot(LogIndex(6), voters(&[1, 2, 3]), Vec::new())
        .expect("snapshot");
    assert_eq!(membership(&storage), voters(&[1, 2, 3]));
    storage
        .save_membership(&voters(&[2, 3]), LogIndex(8))
        .expect("save");
    drop(storage);
    assert_eq!(membership(&open(dir.path())), voters(&[2, 3]));
}

// Goal: snapshot data is streamed in bounded records, read back in any
// window and whole through the chunk iterator, and a damaged record is
// reported as corruption naming the snapshot's index.
#[test]
fn snapshot_data_is_streamed_and_checked() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut storage = bootstrapped(dir.path(), voters(&[1]));
    append(&mut storage, &entries(2..=4, 1)).expect("append");
    let size = 2 * CHUNK_RECORD_BYTES_MAX + 100;
    let data: Vec<u8> = (0..size).map(|byte| (byte % 253) as u8).collect();
    let chunks = vec![
        Bytes::copy_from_slice(&data[..10]),
        Bytes::copy_from_slice(&data[10..]),
    ];
    storage
        .create_snapshot(LogIndex(4), voters(&[1]), chunks)
        .expect("snapshot");
    let across = CHUNK_RECORD_BYTES_MAX as u64 + 5;
    let (piece, last) = storage
        .snapshot_chunk(LogIndex(4), across - 100, 200)
        .expect("chunk across records");
    assert_eq!(
        &piece[..],
        &data[(across - 100) as usize..(across + 100) as usize]
    );
    assert!(!last);
    let reader = storage.snapshot_data().expect("reader");
    assert_eq!(reader.size_bytes(), size as u64);
    let pieces: Vec<Bytes> = reader.map(|piece| piece.expect("piece")).collect();
    assert!(
        pieces
            .iter()
            .all(|piece| piece.len() <= CHUNK_RECORD_BYTES_MAX)
    );
    assert_eq!(pieces.concat(), data);

    damage_first_chunk_record(&storage);
    assert!(matches!(
        storage.snapshot_chunk(LogIndex(4), 0, 5),
        Err(StorageError::Corruption {
            index: LogIndex(4),
            ..
        })
    ));
    let mut reader = storage.snapshot_data().expect("reader");
    assert!(matches!(
        reader.next(),
        Some(Err(StorageError::Corruption {
            index: LogIndex(4),
            ..
        }))
    ));
    assert!(reader.next().is_none());
}

// Goal: a snapshot written from another thread becomes the latest only
// when installed, is discarded (its data deleted) when a later one was
// installed meanwhile, and one never installed leaves no data after a
// reopen. Method: write one on a thread, install; write one at an older
// index after a newer install; start one and reopen without installing.
#[test]
fn snapshots_written_elsewhere_are_installed_or_discarded() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut storage = bootstrapped(dir.path(), voters(&[1]));
    append(&mut storage, &entries(2..=10, 1)).expect("append");
    let stale = storage.snapshot_writer();
    let mut writer = storage.snapshot_writer();
    let written = std::thread::spawn(move || {
        writer.write_chunk(b"state at 6").expect("chunk");
        writer.finish().expect("finish")
    })
    .join()
    .expect("writer thread");
    // The chunks skipped the WAL, so `finish` must have flushed them to
    // table files: nothing of `raft_state` is left only in memory.
    {
        let db = storage.db();
        let state = db.cf_handle(CF_RAFT_STATE).expect("raft_state");
        for property in [
            "rocksdb.num-entries-active-mem-table",
            "rocksdb.num-immutable-mem-table",
        ] {
            let value = db.property_int_value_cf(state, property).expect("property");
            assert_eq!(value, Some(0), "{property} after finish");
        }
    }
    assert!(
        storage
            .install_written_snapshot(written, LogIndex(6), voters(&[1]))
            .expect("install")
    );
    assert_eq!(storage.snapshot_meta().index, LogIndex(6));
    assert_eq!(storage.first_index(), LogIndex(7));
    assert_eq!(installed_data(&storage), b"state at 6");

    let stale = {
        let mut stale = stale;
        stale.write_chunk(b"state at 5").expect("chunk");
        stale.finish().expect("finish")
    };
    assert!(
        !storage
            .install_written_snapshot(stale, LogIndex(5), voters(&[1]))
            .expect("discard"),
        "an older snapshot is not installed over a newer one"
    );
    assert_eq!(storage.snapshot_meta().index, LogIndex(6));

    let mut unfinished = storage.snapshot_writer();
    unfinished.write_chunk(b"never installed").expect("chunk");
    unfinished.finish().expect("finish");
    drop(storage);
    let storage = open(dir.path());
    assert_eq!(storage.snapshot_meta().index, LogIndex(6));
    assert_eq!(installed_data(&storage), b"state at 6");
    drop(storage);
    let mut chunk_records = 0;
    with_raw_db(dir.path(), |db| {
        let state = db.cf_handle(CF_RAFT_STATE).expect("raft_state");
        chunk_records = db
            .iterator_cf(state, rocksdb::IteratorMode::Start)
            .filter(|record| {
                record
                    .as_ref()
                    .is_ok_and(|(key, _)| key.starts_with(b"snapshot_chunk/"))
            })
            .count();
    });
    assert_eq!(
        chunk_records, 1,
        "only the installed snapshot's record remains"
    );
}

/// Returns the installed snapshot's data, whole.
fn installed_data(storage: &RocksStorage) -> Vec<u8> {
    let pieces: Vec<Bytes> = storage
        .snapshot_data()
        .expect("data")
        .map(|piece| piece.expect("piece"))
        .collect();
    pieces.concat()
}

/// Flips a data byte of the first snapshot chunk record, through the
/// database the storage shares.
fn damage_first_chunk_record(storage: &RocksStorage) {
    let db = storage.db();
    let state = db.cf_handle(CF_RAFT_STATE).expect("raft_state");
    let (key, value) = db
        .prefix_iterator_cf(state, "snapshot_chunk/")
        .next()
        .expect("a chunk record")
        .expect("readable");
    let mut value = value.to_vec();
    let position = value.len() - 1;
    value[position] ^= 0x01;
    db.put_cf(state, key, value).expect("write");
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
