//! Tests of the group store over a real RocksDB: a run of entries applies
//! in one batch (an Append sees the Put before it), everything survives a
//! reopen, a snapshot restores an equal state, a hand-over's deletion is
//! durable, and a data dir refuses another group.

use std::collections::BTreeMap;

use proto::config::{Config, ConfigNum};
use raft::storage::RocksStorage;

use super::*;
use crate::ops::{Write, WriteReply};
use crate::shards::NextConfig;

const SHARDS: u32 = 4;

fn open(dir: &std::path::Path, gid: u64) -> (RocksStorage, GroupStore) {
    let storage = RocksStorage::open(dir).expect("open RocksDB");
    let store = GroupStore::open(&storage, GroupId(gid), SHARDS).expect("open the store");
    (storage, store)
}

fn entry(index: u64, command: &GroupCommand) -> Entry {
    Entry {
        term: Term(1),
        index: LogIndex(index),
        kind: EntryKind::Normal,
        data: Bytes::from(command.encode()),
    }
}

fn config(num: u64, owners: [u64; SHARDS as usize]) -> GroupCommand {
    let shards: Vec<GroupId> = owners.iter().map(|&gid| GroupId(gid)).collect();
    let groups = shards
        .iter()
        .map(|gid| (*gid, vec![format!("g{}:1", gid.0)]))
        .collect();
    GroupCommand::Config(NextConfig {
        config: Config {
            num: ConfigNum(num),
            shards,
            groups,
        },
        holders: BTreeMap::new(),
    })
}

fn write(client_id: u64, seq: u64, write: Write) -> GroupCommand {
    GroupCommand::Write {
        client_id,
        seq,
        timestamp_ms: 5,
        write,
    }
}

fn put(key: &'static str, value: &'static str) -> Write {
    Write::Put {
        key: Bytes::from_static(key.as_bytes()),
        value: Bytes::from_static(value.as_bytes()),
    }
}

fn append(key: &'static str, value: &'static str) -> Write {
    Write::Append {
        key: Bytes::from_static(key.as_bytes()),
        value: Bytes::from_static(value.as_bytes()),
    }
}

/// Applies a config owning every shard and a run of writes, in one batch.
fn apply_sample(store: &mut GroupStore) {
    let commands = [
        config(1, [1; 4]),
        write(7, 1, put("k", "a")),
        write(7, 2, append("k", "b")),
        write(8, 1, append("other", "x")),
        write(7, 2, append("k", "b")),
    ];
    let entries: Vec<Entry> = commands
        .iter()
        .enumerate()
        .map(|(at, command)| entry(at as u64 + 1, command))
        .collect();
    let outputs = store.apply_batch(&entries);
    assert_eq!(outputs[0], Some(Applied::Config(Ok(()))));
    assert_eq!(outputs[4], Some(Applied::Write(Ok(WriteReply::Ok))));
}

fn value(store: &GroupStore, key: &str) -> Option<Bytes> {
    store.machine().read(key.as_bytes()).expect("served")
}

// Goal: a run of entries applies in one batch whose reads see its own
// writes, and the whole state (data, table, sessions, applied index)
// survives a reopen.
#[test]
fn a_run_applies_in_one_batch_and_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (storage, mut store) = open(dir.path(), 1);
    apply_sample(&mut store);
    assert_eq!(value(&store, "k"), Some(Bytes::from_static(b"ab")));
    let before = (
        store.machine().table().clone(),
        store.machine().sessions_of(store.machine().shard_of(b"k")),
    );
    drop(store);
    drop(storage);
    let (_storage, reopened) = open(dir.path(), 1);
    assert_eq!(reopened.applied_index(), LogIndex(5));
    assert_eq!(value(&reopened, "k"), Some(Bytes::from_static(b"ab")));
    assert_eq!(value(&reopened, "other"), Some(Bytes::from_static(b"x")));
    let shard = reopened.machine().shard_of(b"k");
    let after = (
        reopened.machine().table().clone(),
        reopened.machine().sessions_of(shard),
    );
    assert_eq!(after, before);
}

// Goal: sessions written run by run (journaled, then folded by a change
// of the table) survive a reopen, so an Append retried after a restart is
// answered from its session and applied once.
#[test]
fn sessions_of_many_runs_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (storage, mut store) = open(dir.path(), 1);
    let appends: Vec<GroupCommand> = (1..=6)
        .flat_map(|seq| (1..=3).map(move |client| write(client, seq, append("k", "+"))))
        .collect();
    let mut index = 0;
    let mut apply_one = |store: &mut GroupStore, command: &GroupCommand| {
        index += 1;
        store.apply_batch(&[entry(index, command)]).pop().flatten()
    };
    apply_one(&mut store, &config(1, [1; 4]));
    for (at, command) in appends.iter().enumerate() {
        apply_one(&mut store, command);
        if at == 8 {
            // A change of the table folds the journal halfway.
            apply_one(&mut store, &config(2, [1; 4]));
        }
    }
    let expected = Some(Bytes::from("+".repeat(appends.len())));
    assert_eq!(value(&store, "k"), expected);
    let sessions = |store: &GroupStore| -> Vec<_> {
        (0..SHARDS)
            .map(|shard| store.machine().sessions_of(ShardId(shard)))
            .collect()
    };
    let before = sessions(&store);
    assert_eq!(before.iter().map(Vec::len).sum::<usize>(), 3);
    drop(store);
    drop(storage);
    let (_storage, mut reopened) = open(dir.path(), 1);
    assert_eq!(sessions(&reopened), before);
    // Each client's last Append, retried.
    for command in &appends[appends.len() - 3..] {
        let reply = apply_one(&mut reopened, command);
        assert_eq!(reply, Some(Applied::Write(Ok(WriteReply::Ok))));
    }
    assert_eq!(
        value(&reopened, "k"),
        expected,
        "a retried Append applied again"
    );
}

/// Restores into `target` a snapshot of `source` at `index`, in pieces
/// of 64 bytes.
fn restore(target: &mut GroupStore, source: &GroupStore, index: LogIndex) {
    let mut reader = source.snapshot_source().expect("pin");
    target.begin_restore(index, Term(1)).expect("begin");
    let mut cursor = Bytes::new();
    loop {
        let piece = reader.read(&cursor, 64).expect("read");
        if piece.last {
            target.finish_restore(index, piece.data).expect("finish");
            return;
        }
        target
            .restore_chunk(piece.data, piece.next_cursor.clone())
            .expect("chunk");
        cursor = piece.next_cursor;
    }
}

// Goal: a snapshot of one replica restores an equal state into another
// that held something else, durably, and leaves its applied index and
// restore mark to the restore itself.
#[test]
fn a_snapshot_restores_an_equal_state() {
    let source_dir = tempfile::tempdir().expect("temp dir");
    let (_source_storage, mut source) = open(source_dir.path(), 1);
    apply_sample(&mut source);
    let target_dir = tempfile::tempdir().expect("temp dir");
    let (target_storage, mut target) = open(target_dir.path(), 1);
    target.apply_batch(&[
        entry(1, &config(1, [1; 4])),
        entry(2, &write(9, 1, put("stale", "gone"))),
    ]);
    restore(&mut target, &source, LogIndex(5));
    assert_eq!(target.applied_index(), LogIndex(5));
    assert_eq!(target.restoring(), None);
    assert_eq!(target.machine().table(), source.machine().table());
    assert_eq!(value(&target, "k"), Some(Bytes::from_static(b"ab")));
    assert_eq!(value(&target, "stale"), None);
    drop(target);
    drop(target_storage);
    let (_storage, reopened) = open(target_dir.path(), 1);
    assert_eq!(reopened.applied_index(), LogIndex(5));
    let shard = source.machine().shard_of(b"k");
    assert_eq!(
        reopened.machine().sessions_of(shard),
        source.machine().sessions_of(shard)
    );
}

// Goal: a hand-over deletes the shard's data and sessions durably, and the
// other shards keep theirs.
#[test]
fn a_hand_over_deletes_the_shard_durably() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (storage, mut store) = open(dir.path(), 1);
    apply_sample(&mut store);
    let shard = store.machine().shard_of(b"k");
    let mut owners = [1; 4];
    owners[shard.0 as usize] = 2;
    let hand_over = GroupCommand::HandOver {
        shard,
        to: GroupId(2),
        num: ConfigNum(2),
    };
    let outputs = store.apply_batch(&[entry(6, &config(2, owners)), entry(7, &hand_over)]);
    assert_eq!(outputs[1], Some(Applied::HandOver(true)));
    drop(store);
    drop(storage);
    let (_storage, reopened) = open(dir.path(), 1);
    assert!(reopened.machine().sessions_of(shard).is_empty());
    assert_eq!(reopened.machine().table().state(shard), None);
    assert_eq!(reopened.machine().data().get(shard, b"k"), None);
    let other = reopened.machine().shard_of(b"other");
    if other != shard {
        assert_eq!(value(&reopened, "other"), Some(Bytes::from_static(b"x")));
    }
}

// Goal: a data dir of one group does not open as another group, nor with
// another shard count.
#[test]
fn a_data_dir_refuses_another_group_or_shard_count() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (storage, mut store) = open(dir.path(), 1);
    apply_sample(&mut store);
    drop(store);
    let other_group = GroupStore::open(&storage, GroupId(2), SHARDS);
    assert!(matches!(other_group, Err(StorageError::Corruption { .. })));
    let other_count = GroupStore::open(&storage, GroupId(1), SHARDS + 1);
    assert!(matches!(other_count, Err(StorageError::Corruption { .. })));
}

/// Returns whether the options RocksDB applied in `dir` have the `data`
/// family's blob GC on.
fn data_blob_gc_in_options(dir: &std::path::Path) -> bool {
    let option = "enable_blob_garbage_collection";
    let value = raft::storage::applied_family_option(dir, CF_DATA, option).expect("read OPTIONS");
    match value.as_deref() {
        Some("true") => true,
        Some("false") => false,
        other => panic!("{option} is {other:?}"),
    }
}

/// Leaves garbage in the `data` family's blob files of `db`: eight 8 KiB
/// values in one blob file, four of them overwritten into another, then a
/// full compaction that drops the four old values (a third of the blob
/// bytes become garbage).
fn make_blob_garbage(db: &DB) {
    let data = db.cf_handle(CF_DATA).expect("data");
    for (round, keys) in [(1u8, 0..8u8), (2, 0..4)] {
        for key in keys {
            let key = data_key(ShardId(0), &[b'g', key]);
            db.put_cf(data, key, vec![round; 8 << 10]).expect("put");
        }
        db.flush_cf(data).expect("flush");
    }
    db.compact_range_cf(data, None::<&[u8]>, None::<&[u8]>);
}

/// Returns configuration 2 of group 1 taking shard 3 from group 2.
fn pull_shard_3_at_2() -> GroupCommand {
    let mut pull = config(2, [1; 4]);
    if let GroupCommand::Config(next) = &mut pull {
        next.holders.insert(ShardId(3), GroupId(2));
    }
    pull
}

/// Returns shard 3 as of configuration 2 in one chunk: its first and last.
fn whole_shard_3_at_2() -> GroupCommand {
    chunk_of_shard_3("", "\0", &[("moved", "v")], true)
}

/// Returns the chunk of shard 3 at 2 from `cursor` to `next` holding
/// `records`; `last` if it ends the shard.
fn chunk_of_shard_3(
    cursor: &'static str,
    next: &'static str,
    records: &[(&'static str, &'static str)],
    last: bool,
) -> GroupCommand {
    GroupCommand::Install(ShardChunk {
        shard: ShardId(3),
        num: ConfigNum(2),
        cursor: Bytes::from_static(cursor.as_bytes()),
        next_cursor: Bytes::from_static(next.as_bytes()),
        records: records
            .iter()
            .map(|(key, value)| {
                (
                    Bytes::from_static(key.as_bytes()),
                    Bytes::from_static(value.as_bytes()),
                )
            })
            .collect(),
        sessions: Vec::new(),
        last,
    })
}

// Goal: blob GC of the `data` family runs only while its blob files hold
// garbage and no shard is being pulled here: off while serving without
// garbage, on once there is garbage, off while a shard is pulled, on again
// once its last chunk is installed.
#[test]
fn blob_gc_runs_only_with_garbage_and_no_pull() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (storage, mut store) = open(dir.path(), 1);
    store.apply_batch(&[entry(1, &config(1, [1, 1, 1, 2]))]);
    assert!(!data_blob_gc_in_options(dir.path()), "off without garbage");
    make_blob_garbage(&storage.db());
    store.pace_blob_gc();
    assert!(data_blob_gc_in_options(dir.path()), "on with garbage");
    let pull = pull_shard_3_at_2();
    store.apply_batch(&[entry(2, &pull)]);
    assert!(store.blob_gc_deferred);
    assert!(!data_blob_gc_in_options(dir.path()), "off while pulling");
    let last_chunk = whole_shard_3_at_2();
    assert_eq!(
        store.apply_batch(&[entry(3, &last_chunk)]),
        vec![Some(Applied::Install(true))]
    );
    assert!(!store.blob_gc_deferred);
    assert!(data_blob_gc_in_options(dir.path()), "on once installed");
}

/// Returns the `max_total_wal_size` RocksDB applied in `dir`.
fn wal_bound_in_options(dir: &std::path::Path) -> u64 {
    raft::storage::applied_db_option(dir, "max_total_wal_size")
        .expect("read OPTIONS")
        .expect("max_total_wal_size in the DB options")
        .parse()
        .expect("a number")
}

// Goal: the WAL bound is raised while a shard is pulled here and only
// then: the small-writes bound while serving, the bulk bound from the
// configuration that starts a pull (and after a reopen mid-pull), the
// small-writes bound again once the last chunk is installed.
#[test]
fn the_wal_bound_is_raised_only_while_a_shard_is_pulled() {
    use raft::storage::{WAL_BYTES_BULK, WAL_BYTES_MAX};
    let dir = tempfile::tempdir().expect("temp dir");
    let (storage, mut store) = open(dir.path(), 1);
    store.apply_batch(&[entry(1, &config(1, [1, 1, 1, 2]))]);
    assert_eq!(wal_bound_in_options(dir.path()), WAL_BYTES_MAX, "serving");
    let pull = pull_shard_3_at_2();
    store.apply_batch(&[entry(2, &pull)]);
    assert_eq!(wal_bound_in_options(dir.path()), WAL_BYTES_BULK, "pulling");
    assert_eq!(storage.wal_bound().bytes(), WAL_BYTES_BULK);
    drop((store, storage));
    let (storage, mut store) = open(dir.path(), 1);
    assert_eq!(
        storage.wal_bound().bytes(),
        WAL_BYTES_BULK,
        "pulling, reopened"
    );
    assert_eq!(wal_bound_in_options(dir.path()), WAL_BYTES_BULK);
    let last_chunk = whole_shard_3_at_2();
    assert_eq!(
        store.apply_batch(&[entry(3, &last_chunk)]),
        vec![Some(Applied::Install(true))]
    );
    assert_eq!(wal_bound_in_options(dir.path()), WAL_BYTES_MAX, "installed");
    assert_eq!(storage.wal_bound().bytes(), WAL_BYTES_MAX);
}

/// Returns the install positions `store` stored, as a replica's admin
/// service reads them for `kvctl status`.
fn stored_positions(store: &GroupStore) -> BTreeMap<ShardId, InstallPosition> {
    let reader = store.reader();
    reader.table_and_installing().expect("read the table").1
}

// Goal: the bytes installed of a shard being pulled (what `kvctl status`
// shows of a move) count the keys and values of each chunk once, however
// often a chunk is applied, and survive a reopen; the pull's end ends the
// count.
#[test]
fn the_bytes_installed_count_each_chunk_once_and_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (storage, mut store) = open(dir.path(), 1);
    store.apply_batch(&[
        entry(1, &config(1, [1, 1, 1, 2])),
        entry(2, &pull_shard_3_at_2()),
    ]);
    assert_eq!(
        stored_positions(&store)[&ShardId(3)].bytes,
        0,
        "pull started"
    );
    let first = chunk_of_shard_3("", "b", &[("a", "12345")], false);
    assert_eq!(
        store.apply_batch(&[entry(3, &first), entry(4, &first)]),
        vec![Some(Applied::Install(true)), Some(Applied::Install(false))]
    );
    assert_eq!(stored_positions(&store)[&ShardId(3)].bytes, 6, "one chunk");
    drop((store, storage));
    let (_storage, mut store) = open(dir.path(), 1);
    assert_eq!(stored_positions(&store)[&ShardId(3)].bytes, 6, "reopened");
    let second = chunk_of_shard_3("b", "d", &[("b", "xy"), ("c", "z")], false);
    store.apply_batch(&[entry(5, &second), entry(6, &first)]);
    let position = stored_positions(&store)[&ShardId(3)].clone();
    assert_eq!(
        (position.bytes, position.cursor),
        (11, Bytes::from_static(b"d"))
    );
    let last = chunk_of_shard_3("d", "e", &[], true);
    assert_eq!(
        store.apply_batch(&[entry(7, &last)]),
        vec![Some(Applied::Install(true))]
    );
    assert!(stored_positions(&store).is_empty(), "installed");
}

/// A Get's answer, with a storage error as its message.
type Answer = Result<Result<Option<Bytes>, NotServed>, String>;

/// Returns `reader`'s answer for `key`, after checking that the table is
/// published (the generation even), that the table the reader gives is
/// the stored one, and that the read routed by it and the read from one
/// RocksDB snapshot (taken when a change overlaps a read) agree.
fn get(reader: &GroupReader, key: &str) -> Answer {
    assert!(
        reader.routing.read(|_| ()).is_some(),
        "no change under way: a Get routes with the published table"
    );
    assert_eq!(
        reader.table().map_err(|error| error.to_string()),
        reader.stored_table().map_err(|error| error.to_string()),
        "the reader's table is the stored one"
    );
    let published = reader
        .get(key.as_bytes())
        .map_err(|error| error.to_string());
    let shard = ShardId(proto::shard_of_key(key.as_bytes(), SHARDS));
    let in_one_view = reader
        .get_in_one_view(shard, key.as_bytes())
        .map_err(|error| error.to_string());
    assert_eq!(published, in_one_view, "the two reads of {key} disagree");
    published
}

// Goal: a Get routes by the table of the last run applied, the moment the
// run is applied, as the table stored with the data says: a shard moved
// away answers WRONG_GROUP at once, a restore answers unavailable until
// it finishes, then the restored table routes.
#[test]
fn a_get_routes_by_the_table_the_last_run_applied() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_storage, mut store) = open(dir.path(), 1);
    let reader = store.reader();
    assert_eq!(get(&reader, "k"), Ok(Err(NotServed::WrongGroup)), "fresh");
    apply_sample(&mut store);
    let ab = Some(Bytes::from_static(b"ab"));
    assert_eq!(get(&reader, "k"), Ok(Ok(ab.clone())));
    assert_eq!(get(&reader, "absent"), Ok(Ok(None)));
    let shard = store.machine().shard_of(b"k");
    let mut owners = [1; 4];
    owners[shard.0 as usize] = 2;
    store.apply_batch(&[entry(6, &config(2, owners))]);
    assert_eq!(get(&reader, "k"), Ok(Err(NotServed::WrongGroup)), "moved");

    let target_dir = tempfile::tempdir().expect("temp dir");
    let (_target_storage, mut target) = open(target_dir.path(), 1);
    let target_reader = target.reader();
    target.apply_batch(&[entry(1, &config(1, [1; 4]))]);
    target.begin_restore(LogIndex(6), Term(1)).expect("begin");
    let unavailable = Err(StorageError::SnapshotUnavailable(LogIndex(6)).to_string());
    assert_eq!(get(&target_reader, "other"), unavailable, "restoring");
    restore(&mut target, &store, LogIndex(6));
    assert_eq!(get(&target_reader, "k"), Ok(Err(NotServed::WrongGroup)));
    assert_ne!(store.machine().shard_of(b"other"), shard);
    let x = Some(Bytes::from_static(b"x"));
    assert_eq!(get(&target_reader, "other"), Ok(Ok(x)), "restored");
}
