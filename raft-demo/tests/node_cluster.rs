//! Three real Raft nodes in one process: RocksDB in temp dirs, gRPC over
//! loopback, a fault-injecting transport layer. Covers election and
//! replication, leadership receivers woken by elections and not by
//! commits, a killed and restarted leader, every node killed and
//! restarted, a follower caught up by a streamed snapshot (of 10,000 small
//! entries, and of an 80 MiB state, with the leader holding no copy of
//! it), and a corrupted log entry detected on restart.

mod real_nodes;

use std::collections::BTreeMap;
use std::time::Duration;

use raft::core::{NodeId, StorageError};
use raft::storage::{WAL_BYTES_MAX, WAL_FILES_RECYCLED};
use raft_demo::register::RegisterCommand;
use real_nodes::{TestCluster, fast_options, wait_for};

const DEADLINE: Duration = Duration::from_secs(20);

// Goal: a fresh group elects one leader and replicates every acknowledged
// write to all replicas. Method: 100 puts through the leader, then wait for
// each value on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_elects_a_leader_and_replicates_writes() {
    let cluster = TestCluster::start(3, fast_options).await;
    cluster.wait_for_leader(DEADLINE).await;
    for i in 0..100 {
        cluster
            .put(&format!("k{i}"), &format!("v{i}"), DEADLINE)
            .await;
    }
    for i in 0..100 {
        cluster
            .wait_replicated(&format!("k{i}"), &format!("v{i}"), DEADLINE)
            .await;
    }
}

// Goal: a task waiting on leadership (`watch_leadership`) is woken by an
// election and never by a commit, so it costs nothing under load. Method:
// a task per node counts its receiver's wake-ups during 50 puts replicated
// everywhere: at most a few (a late heartbeat may start a pre-vote, which
// forgets the leader and learns it back), where a receiver woken by every
// status change wakes dozens of times (84 when planted); then the leader
// is killed and a survivor's receiver must wake with a new leader in a
// higher term.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leadership_receivers_wake_on_elections_not_commits() {
    const WAKES_MAX: u64 = 4;
    let mut cluster = TestCluster::start(3, fast_options).await;
    let old_leader = cluster.wait_for_leader(DEADLINE).await;
    cluster.put("settle", "0", DEADLINE).await;
    cluster.wait_replicated("settle", "0", DEADLINE).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let counters: Vec<(NodeId, _)> = cluster
        .running()
        .map(|(id, node)| {
            let mut receiver = node.handle.watch_leadership();
            receiver.borrow_and_update();
            let mut stopped = stopped.clone();
            let counter = tokio::spawn(async move {
                let mut wakes = 0u64;
                loop {
                    tokio::select! {
                        changed = receiver.changed() => match changed {
                            Ok(()) => wakes += 1,
                            Err(_) => return wakes,
                        },
                        _ = stopped.changed() => return wakes,
                    }
                }
            });
            (id, counter)
        })
        .collect();
    for i in 0..50 {
        cluster
            .put(&format!("k{i}"), &format!("v{i}"), DEADLINE)
            .await;
    }
    cluster.wait_replicated("k49", "v49", DEADLINE).await;
    stop.send_replace(true);
    for (id, counter) in counters {
        let wakes = counter.await.expect("counter task");
        assert!(
            wakes <= WAKES_MAX,
            "node {id}'s leadership receiver woke {wakes} times over 50 commits"
        );
    }
    let survivor = if old_leader == NodeId(1) {
        NodeId(2)
    } else {
        NodeId(1)
    };
    let mut receiver = cluster.node(survivor).handle.watch_leadership();
    let before = *receiver.borrow_and_update();
    cluster.kill(old_leader).await;
    let woken = tokio::time::timeout(
        DEADLINE,
        receiver.wait_for(|now| now.leader.is_some_and(|leader| leader != old_leader)),
    )
    .await
    .expect("the survivor learns of the new leader before the deadline")
    .map(|now| *now)
    .expect("node running");
    assert!(woken.term > before.term, "{woken:?} after {before:?}");
}

// Goal: a killed leader is replaced, and when restarted it keeps what it
// had and catches up on what it missed. Method: writes, kill the leader,
// writes through the new leader, restart the old one, check all values on
// all nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_leader_is_replaced_and_catches_up_after_restart() {
    let mut cluster = TestCluster::start(3, fast_options).await;
    let old_leader = cluster.wait_for_leader(DEADLINE).await;
    cluster.put("before", "1", DEADLINE).await;
    cluster.kill(old_leader).await;
    wait_for("a new leader", DEADLINE, || async {
        cluster.leader().is_some_and(|l| l != old_leader)
    })
    .await;
    cluster.put("during", "2", DEADLINE).await;
    cluster.restart(old_leader).await.expect("restart");
    cluster.put("after", "3", DEADLINE).await;
    for (key, value) in [("before", "1"), ("during", "2"), ("after", "3")] {
        cluster.wait_replicated(key, value, DEADLINE).await;
    }
}

// Goal: no acknowledged write is lost when every node dies at once.
// Method: 200 acknowledged puts, kill all three nodes without shutdown,
// restart them, check every value on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_write_survives_killing_all_nodes() {
    let mut cluster = TestCluster::start(3, fast_options).await;
    cluster.wait_for_leader(DEADLINE).await;
    for i in 0..200 {
        cluster
            .put(&format!("k{i}"), &format!("v{i}"), DEADLINE)
            .await;
    }
    for id in 1..=3 {
        cluster.kill(NodeId(id)).await;
    }
    for id in 1..=3 {
        cluster.restart(NodeId(id)).await.expect("restart");
    }
    cluster.wait_for_leader(DEADLINE).await;
    for i in 0..200 {
        cluster
            .wait_replicated(&format!("k{i}"), &format!("v{i}"), DEADLINE)
            .await;
    }
}

fn snapshotting_options(id: NodeId) -> raft::driver::NodeOptions {
    let mut options = fast_options(id);
    options.compact_interval_entries = 1000;
    options.compact_keep_entries = 100;
    options
}

// Goal: a follower that missed more than the leader keeps in its log is
// repaired by a snapshot. Method: kill a follower, commit 10,000 writes
// (the leader compacts every 1,000), restart it, check it reaches the
// leader's state and that its log now starts after a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_down_for_10000_entries_catches_up_by_snapshot() {
    let mut cluster = TestCluster::start(3, snapshotting_options).await;
    let writers = (0..50)
        .map(|writer| {
            (0..200)
                .map(|i| RegisterCommand::Put {
                    key: format!("w{writer}-{i}").into(),
                    value: format!("{i}").into(),
                })
                .collect()
        })
        .collect();
    let (_, follower) = catch_up_after_missing(&mut cluster, writers, DEADLINE).await;
    assert!(
        cluster.node(follower).handle.status().first_index.0 > 1000,
        "the follower's log starts after a snapshot"
    );
    assert_eq!(
        cluster.local_value(follower, "w49-199").as_deref(),
        Some("199")
    );
}

/// Kills a follower, proposes each writer's commands through the leader
/// (the writers concurrently, each in order), restarts the follower and
/// waits, at most `deadline`, until it applied the leader's commit index.
/// Returns the leader and the follower.
async fn catch_up_after_missing(
    cluster: &mut TestCluster,
    writers: Vec<Vec<RegisterCommand>>,
    deadline: Duration,
) -> (NodeId, NodeId) {
    let leader = cluster.wait_for_leader(DEADLINE).await;
    let follower = (1..=3)
        .map(NodeId)
        .find(|&id| id != leader)
        .expect("a follower");
    cluster.kill(follower).await;
    let handle = cluster.node(leader).handle.clone();
    let tasks: Vec<_> = writers
        .into_iter()
        .map(|commands| {
            let handle = handle.clone();
            tokio::spawn(async move {
                for command in commands {
                    handle
                        .propose(command.encode())
                        .await
                        .expect("leader stays up");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
    cluster.restart(follower).await.expect("restart");
    let target = cluster.node(leader).handle.status().commit;
    wait_for("the follower catches up", deadline, || async {
        cluster.node(follower).handle.status().applied >= target
    })
    .await;
    (leader, follower)
}

fn large_state_options(id: NodeId) -> raft::driver::NodeOptions {
    let mut options = fast_options(id);
    options.compact_interval_entries = 100;
    options.compact_keep_entries = 10;
    options
}

/// Values of the large-state test: 320 of 256 KiB (80 MiB), each of bytes
/// no compression shrinks, drawn from its own seed so a value put under
/// the wrong key shows.
const LARGE_VALUES: usize = 320;
const LARGE_VALUE_BYTES: usize = 256 << 10;

fn large_value(i: usize) -> Vec<u8> {
    let mut state = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..LARGE_VALUE_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Returns the bytes of the records (keys and values) a column family of
/// `db` holds.
fn column_family_bytes(db: &rocksdb::DB, name: &str) -> u64 {
    let cf = db.cf_handle(name).expect("column family");
    db.iterator_cf(&cf, rocksdb::IteratorMode::Start)
        .map(|record| {
            let (key, value) = record.expect("readable");
            (key.len() + value.len()) as u64
        })
        .sum()
}

/// Returns the bytes of the files under `dir` (subdirectories included),
/// by kind: RocksDB's write-ahead log files (`wal`), and the files that
/// hold the state and the log (`tables`: table and blob files, manifest,
/// options, info log, and anything else).
fn disk_use(dir: &std::path::Path) -> BTreeMap<&'static str, u64> {
    let mut kinds = BTreeMap::from([("tables", 0), ("wal", 0)]);
    // A file RocksDB deletes meanwhile is skipped.
    for entry in std::fs::read_dir(dir).expect("data dir").flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if meta.is_dir() {
            for (kind, bytes) in disk_use(&entry.path()) {
                *kinds.entry(kind).or_default() += bytes;
            }
            continue;
        }
        let wal = entry.path().extension().is_some_and(|ext| ext == "log");
        *kinds.entry(if wal { "wal" } else { "tables" }).or_default() += meta.len();
    }
    kinds
}

/// The most the leader's WAL may hold once writes stop: the live file
/// and the recycled ones, each up to `WAL_BYTES_MAX` plus the write that
/// passed it (a batch of appended entries or of applied ones, here at
/// most 16 of 256 KiB).
const WAL_SETTLED_BYTES_MAX: u64 =
    (1 + WAL_FILES_RECYCLED as u64) * (WAL_BYTES_MAX + (16 * LARGE_VALUE_BYTES) as u64);

// Goal: a follower catches up on a large state (over 64 MiB) by a snapshot
// streamed from the leader's state itself, holds every value whole, and
// the leader kept no copy of the state to compact or to send. Method:
// kill a follower, commit 320 incompressible values of 256 KiB (the leader
// compacts every 100 entries), restart it, wait until it applied the
// leader's commit index, compare every value; the leader's raft_state
// holds under 64 KiB; its table and blob files (everything but the WAL)
// at most 1.3x the live data (the records of every column family: the
// state, and the log's tail not yet compacted, which followers may still
// need); its WAL within its configured bound, which is independent of the
// data's size (`WAL_SETTLED_BYTES_MAX`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_catches_up_on_a_large_state_by_snapshot() {
    let mut cluster = TestCluster::start(3, large_state_options).await;
    let writers = (0..8)
        .map(|writer| {
            (writer..LARGE_VALUES)
                .step_by(8)
                .map(|i| RegisterCommand::Put {
                    key: format!("big-{i}").into(),
                    value: large_value(i).into(),
                })
                .collect()
        })
        .collect();
    let deadline = Duration::from_secs(60);
    let (leader, follower) = catch_up_after_missing(&mut cluster, writers, deadline).await;
    let leader_first = cluster.node(leader).handle.status().first_index;
    assert!(leader_first.0 > 200, "the leader compacted its log");
    assert!(
        cluster.node(follower).handle.status().first_index.0 > 200,
        "the follower's log starts after a snapshot"
    );
    let leader_db = &cluster.node(leader).db;
    let live_bytes: u64 = ["data", "meta", "raft_log", "raft_state"]
        .iter()
        .map(|name| column_family_bytes(leader_db, name))
        .sum();
    assert!(live_bytes >= (LARGE_VALUES * LARGE_VALUE_BYTES) as u64);
    let state_bytes = column_family_bytes(leader_db, "raft_state");
    assert!(
        state_bytes < 64 << 10,
        "the leader's raft_state holds {state_bytes} bytes"
    );
    // Dropped log entries give their space back on a thread of the
    // storage's own, and RocksDB deletes obsolete files in the background:
    // the bound holds once they are done.
    let leader_dir = cluster.data_dir(leader);
    let started = tokio::time::Instant::now();
    loop {
        let disk = disk_use(&leader_dir);
        let (tables, wal) = (disk["tables"], disk["wal"]);
        let shown = format!(
            "{tables} bytes of tables ({:.2}x the {live_bytes} bytes of live data), \
             {wal} bytes of WAL (bound {WAL_SETTLED_BYTES_MAX})",
            tables as f64 / live_bytes as f64
        );
        if tables * 10 <= live_bytes * 13 && wal <= WAL_SETTLED_BYTES_MAX {
            eprintln!("the leader's data dir: {shown}");
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the leader's data dir stayed over its bounds for {DEADLINE:?}: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reader = &cluster.node(follower).reader;
    for i in 0..LARGE_VALUES {
        let value = reader
            .get(format!("big-{i}").as_bytes())
            .expect("read")
            .unwrap_or_else(|| panic!("big-{i} missing on the follower"));
        assert!(value == large_value(i), "big-{i} differs on the follower");
    }
}

// Goal: a corrupted log entry is detected on restart, named, and stops
// the node instead of being skipped. Method: kill a node, flip one byte of
// a stored entry, restart: the start fails with a corruption error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupted_log_entry_is_detected_on_restart() {
    let mut cluster = TestCluster::start(3, fast_options).await;
    cluster.wait_for_leader(DEADLINE).await;
    for i in 0..20 {
        cluster.put(&format!("k{i}"), "v", DEADLINE).await;
    }
    let victim = NodeId(1);
    cluster.wait_replicated("k19", "v", DEADLINE).await;
    cluster.kill(victim).await;
    let corrupted_index = flip_byte_of_an_entry(&cluster.data_dir(victim));
    match cluster.restart(victim).await {
        Err(raft::core::Error::Storage(StorageError::Corruption { index, .. })) => {
            assert_eq!(index.0, corrupted_index)
        }
        other => panic!("restart over a corrupted entry must fail with Corruption, got {other:?}"),
    }
}

/// Flips one payload byte of the last stored log entry; returns its index.
fn flip_byte_of_an_entry(dir: &std::path::Path) -> u64 {
    let names = ["default", "raft_log", "raft_state", "data", "meta"];
    let db =
        rocksdb::DB::open_cf(&rocksdb::Options::default(), dir, names).expect("open the data dir");
    let log = db.cf_handle("raft_log").expect("raft_log column family");
    let (key, mut value) = db
        .iterator_cf(&log, rocksdb::IteratorMode::End)
        .next()
        .expect("one entry")
        .expect("readable");
    let last = value.len() - 1;
    value[last] ^= 0x01;
    db.put_cf(&log, &key, &value).expect("write back");
    u64::from_be_bytes(key[..8].try_into().expect("8-byte key"))
}

// Goal: the group changes membership under load without losing writes:
// add a fourth node as learner, promote it once caught up, remove an old
// voter. Method: a writer keeps putting through the leader while the
// changes apply; afterwards every acknowledged key is on the new node and
// every member agrees on the membership.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_changes_under_load_lose_no_write() {
    use raft::core::ConfChange;
    let mut cluster = TestCluster::start(3, fast_options).await;
    let leader = cluster.wait_for_leader(DEADLINE).await;
    let handle = cluster.node(leader).handle.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (handle, stop) = (handle.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("load{i}");
                let command = RegisterCommand::Put {
                    key: key.clone().into(),
                    value: "x".into(),
                };
                if handle.propose(command.encode()).await.is_ok() {
                    acknowledged.push(key);
                }
                i += 1;
            }
            acknowledged
        })
    };
    cluster.add_joiner(NodeId(4)).await;
    handle
        .propose_conf_change(ConfChange::AddLearner(NodeId(4)))
        .await
        .expect("learner added");
    wait_for("the learner is promoted", DEADLINE, || async {
        handle
            .propose_conf_change(ConfChange::PromoteLearner(NodeId(4)))
            .await
            .is_ok()
    })
    .await;
    let removed = (1..=3)
        .map(NodeId)
        .find(|&id| id != leader)
        .expect("a follower");
    handle
        .propose_conf_change(ConfChange::RemoveNode(removed))
        .await
        .expect("voter removed");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acknowledged = writer.await.expect("writer");
    assert!(
        !acknowledged.is_empty(),
        "writes went through during the changes"
    );
    cluster.kill(removed).await;
    let last = acknowledged.last().expect("not empty").clone();
    cluster.wait_replicated(&last, "x", DEADLINE).await;
    for key in &acknowledged {
        assert_eq!(
            cluster.local_value(NodeId(4), key).as_deref(),
            Some("x"),
            "{key} on the new node"
        );
    }
    let expected: std::collections::BTreeSet<NodeId> =
        (1..=4).map(NodeId).filter(|&id| id != removed).collect();
    wait_for("every member sees the new membership", DEADLINE, || async {
        cluster
            .running()
            .all(|(_, node)| node.handle.status().membership.voters == expected)
    })
    .await;
}
