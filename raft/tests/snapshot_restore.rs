//! A replica whose stored snapshot cannot be restored (a chunk fails its
//! crc32, or the chunks end before the snapshot's size) refuses to start
//! with an error naming the snapshot and how far the restore got, and
//! keeps refusing on every restart: the register map is never left with
//! an applied index over part of a snapshot. The same data dir with
//! nothing damaged restores and serves the whole map.

mod damaged_snapshot;

use std::collections::BTreeMap;
use std::sync::Arc;

use damaged_snapshot::{Damage, KEYS, SNAPSHOT_INDEX, applied_index, assert_refused, prepare};
use raft::core::{Error, LogIndex, NodeId};
use raft::driver::{NodeJoinHandle, NodeOptions, RaftHandle, spawn_node};
use raft::register::{RegisterMachine, RegisterReader};
use raft::storage::RocksStorage;
use raft::transport::grpc::GrpcTransport;

/// Starts the single replica of group 1 on `dir`.
fn start(dir: &std::path::Path) -> Result<(RaftHandle<()>, NodeJoinHandle, RegisterReader), Error> {
    let storage = RocksStorage::open(dir)?;
    let db = storage.db();
    let machine = RegisterMachine::open(db.clone())?;
    let peers = BTreeMap::from([(NodeId(1), "127.0.0.1:1".to_string())]);
    let transport = Arc::new(GrpcTransport::new(1, NodeId(1), peers));
    let (_inbound_sender, inbound) = raft::transport::inbound_queue(16, 1 << 20);
    let (handle, join) = spawn_node(
        NodeOptions::new(1, NodeId(1)),
        storage,
        machine,
        transport,
        inbound,
    )?;
    Ok((handle, join, RegisterReader::new(db)))
}

/// Asserts that the replica on a data dir damaged by `damage` refuses to
/// start, twice, and never records the snapshot's index as applied.
fn assert_refuses_every_start(damage: Damage) {
    let dir = tempfile::tempdir().expect("temp dir");
    let position = prepare(dir.path(), &[1], damage);
    for attempt in 1..=2 {
        match start(dir.path()) {
            Ok(_) => panic!("attempt {attempt}: a replica started on a damaged snapshot"),
            Err(Error::Storage(error)) => assert_refused(&error, position),
            Err(other) => panic!("attempt {attempt}: unexpected error {other}"),
        }
        assert_eq!(
            applied_index(dir.path()),
            LogIndex(0),
            "attempt {attempt}: a failed restore left an applied index"
        );
    }
}

#[tokio::test]
async fn a_corrupt_chunk_is_refused_on_every_start() {
    assert_refuses_every_start(Damage::FlippedByte);
}

#[tokio::test]
async fn a_truncated_chunk_stream_is_refused_on_every_start() {
    assert_refuses_every_start(Damage::MissingLastChunk);
}

#[tokio::test]
async fn an_undamaged_snapshot_restores_the_whole_map() {
    let dir = tempfile::tempdir().expect("temp dir");
    prepare(dir.path(), &[1], Damage::None);
    let (handle, join, reader) = start(dir.path()).expect("starts");
    for key in 0..KEYS {
        let value = reader
            .get(format!("key-{key}").as_bytes())
            .expect("read")
            .expect("restored key");
        assert_eq!(value, vec![key as u8; 1 << 20], "key-{key}");
    }
    drop((handle, reader));
    join.await.expect("node thread").expect("clean stop");
    assert!(applied_index(dir.path()) >= SNAPSHOT_INDEX);
}
