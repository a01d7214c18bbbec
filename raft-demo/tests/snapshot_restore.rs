//! Restores that cannot finish never serve part of a snapshot. A replica
//! stopped in the middle of a restore (the transfer cut short) starts
//! marked as restoring: it refuses reads, applies nothing and never
//! campaigns, on every start, until a leader completes the restore. A
//! chunk the application cannot decode stops the node with an error
//! naming the snapshot and the chunk's position, and the next start is
//! again marked as restoring. A chunk failing its crc32 writes nothing.

mod damaged_snapshot;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use damaged_snapshot::{
    RESUME_AT, SNAPSHOT_INDEX, SNAPSHOT_TERM, assert_refused, prepare_interrupted, restoring,
    undecodable_chunk,
};
use raft::core::{Error, Message, MessageBody, NodeId, StorageError, Term};
use raft::driver::{NodeJoinHandle, NodeOptions, RaftHandle, spawn_node};
use raft::storage::RocksStorage;
use raft::transport::InboundSender;
use raft::transport::grpc::GrpcTransport;
use raft_demo::register::{RegisterMachine, RegisterReader};

/// A replica of group 1 as node 1 of `voters`, fed by the test.
struct Replica {
    handle: RaftHandle<()>,
    join: NodeJoinHandle,
    reader: RegisterReader,
    inbound: InboundSender,
}

impl Replica {
    /// Stops the node cleanly (every handle dropped) and waits for it.
    async fn stop(self) {
        drop((self.handle, self.reader, self.inbound));
        self.join.await.expect("node thread").expect("clean stop");
    }
}

/// Starts node 1 on `dir`, its peers unreachable: the test speaks for them.
fn start(dir: &std::path::Path, voters: &[u64]) -> Result<Replica, Error> {
    let storage = RocksStorage::open(dir)?;
    let db = storage.db();
    let machine = RegisterMachine::open(db.clone())?;
    let peers: BTreeMap<NodeId, String> = voters
        .iter()
        .map(|&id| (NodeId(id), "127.0.0.1:1".to_string()))
        .collect();
    let transport = Arc::new(GrpcTransport::new(1, NodeId(1), peers));
    let (inbound, receiver) = raft::transport::inbound_queue(16, 8 << 20);
    let mut options = NodeOptions::new(1, NodeId(1));
    options.tick = Duration::from_millis(10);
    let (handle, join) = spawn_node(options, storage, machine, transport, receiver)?;
    Ok(Replica {
        handle,
        join,
        reader: RegisterReader::new(db),
        inbound,
    })
}

/// Returns a data dir bootstrapped for a group of `voters`.
fn bootstrapped(voters: &[u64]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let membership = raft::core::Membership::with_voters(voters.iter().copied().map(NodeId));
    RocksStorage::open(dir.path())
        .expect("open")
        .bootstrap(membership)
        .expect("bootstrap");
    dir
}

/// Waits (at most 10 s) for the node to stop and returns why.
async fn stopped(join: NodeJoinHandle) -> StorageError {
    let outcome = tokio::time::timeout(Duration::from_secs(10), join)
        .await
        .expect("the node stops by itself");
    match outcome.expect("the node thread does not panic") {
        Err(error) => error,
        Ok(()) => panic!("the node stopped cleanly instead of refusing the chunk"),
    }
}

// Goal: a replica stopped mid-restore never serves the partial map, on any
// start, and never campaigns: it alone cannot finish. Method: a data dir
// marked as restoring with two keys of the snapshot written; start it,
// let it run past several election timeouts, read; twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_restore_is_never_served_on_any_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    prepare_interrupted(dir.path(), &[1]);
    for attempt in 1..=2 {
        let replica = start(dir.path(), &[1]).expect("a replica mid-restore starts");
        let status = replica.handle.status();
        assert!(status.restoring, "start {attempt}: marked as restoring");
        tokio::time::sleep(Duration::from_millis(500)).await; // 25+ election timeouts
        let status = replica.handle.status();
        assert_eq!(
            status.role,
            raft::core::Role::Follower,
            "start {attempt}: never campaigns"
        );
        assert_eq!(
            replica.reader.get(b"key-0"),
            Err(StorageError::SnapshotUnavailable(SNAPSHOT_INDEX)),
            "start {attempt}: the partial map is refused"
        );
        replica.stop().await;
        let point = restoring(dir.path()).expect("still marked");
        assert_eq!(
            (point.index, point.term, &point.next_cursor[..]),
            (SNAPSHOT_INDEX, SNAPSHOT_TERM, RESUME_AT),
            "start {attempt}: the mark keeps the position to resume at"
        );
    }
}

// Goal: a chunk the application cannot decode stops the node loudly, with
// the snapshot and the position named, and the next start is marked as
// restoring (never serving the partial map). Method: a follower of a
// 2-node group whose leader (the test) sends it such a chunk; twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_chunk_stops_the_node_on_every_start() {
    let voters = [1, 2];
    let dir = bootstrapped(&voters);
    for attempt in 1..=2 {
        let replica = start(dir.path(), &voters).expect("starts");
        let chunk = undecodable_chunk(NodeId(2), NodeId(1), Term(5), &voters);
        replica.inbound.try_send(chunk).expect("queued");
        let error = stopped(replica.join).await;
        assert_refused(&error);
        assert_eq!(
            raft::exit_code::for_storage_error(&error),
            raft::exit_code::SNAPSHOT_RESTORE,
            "start {attempt}"
        );
        assert_eq!(
            replica.reader.get(b"key-0"),
            Err(StorageError::SnapshotUnavailable(SNAPSHOT_INDEX)),
            "start {attempt}: the partial map is refused"
        );
        drop(replica.reader);
        assert!(restoring(dir.path()).is_some(), "start {attempt}: marked");
    }
}

// Goal: a chunk failing its crc32 is refused before the application sees
// it: nothing is marked or written, the map keeps serving. Method: the
// same chunk with its crc32 off by one bit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_failing_its_crc_writes_nothing() {
    let voters = [1, 2];
    let dir = bootstrapped(&voters);
    let replica = start(dir.path(), &voters).expect("starts");
    let mut chunk: Message = undecodable_chunk(NodeId(2), NodeId(1), Term(5), &voters);
    if let MessageBody::SnapshotChunk { crc32, .. } = &mut chunk.body {
        *crc32 ^= 1;
    }
    replica.inbound.try_send(chunk).expect("queued");
    // The chunk is refused at once; a heartbeat's round trip later the
    // node has handled it (it answers the leader, which the test is not).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while replica.handle.status().term < Term(5) {
        assert!(
            std::time::Instant::now() < deadline,
            "the chunk was handled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!replica.handle.status().restoring, "no restore began");
    assert_eq!(replica.reader.get(b"key-0"), Ok(None), "the map serves");
    replica.stop().await;
    assert_eq!(restoring(dir.path()), None, "nothing marked");
}
