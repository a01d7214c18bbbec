//! Leader failures under a stream of admin commands: a controller of three
//! `shardctrler` processes whose leader is killed with SIGKILL while
//! requests are in flight, twice, and restarted. The client retries each
//! request with the same `(client_id, seq)` at the next leader; the
//! controller must lose none and apply none twice.

mod harness;

use harness::{Cluster, groups};
use proto::kv::v1 as pb;

const SHARDS: u32 = 10;
const OPS: usize = 45;

/// Runs op `k` of the stream: a mix of Join, Leave and Move, each of which
/// creates exactly one configuration when applied once.
async fn run_op(ck: &mut client::CtrlerClient, k: usize) -> pb::Config {
    let gid = 100 + k as u64;
    let result = match k % 3 {
        0 => ck.join(groups(&[gid])).await,
        1 => ck.leave(vec![gid - 1]).await,
        _ => {
            ck.move_shard((k % SHARDS as usize) as u32, 1 + (k % 2) as u64)
                .await
        }
    };
    result.unwrap_or_else(|error| panic!("op {k} failed: {error}"))
}

// Goal: killing the leader mid-stream of admin commands loses none and
// applies none twice (issue 5, "What must show"). Method: one client runs
// 45 commands, each of which creates one configuration; the test kills the
// leader right after command 10 and again after 25 (restarting the
// first), while the next command is in flight. Every command must return, the returned numbers
// must be consecutive, the latest number must equal the number of commands
// (a duplicate would add one, a loss would leave a gap), and every replica
// must hold the same history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_mid_stream_loses_none_and_applies_none_twice() {
    let mut cluster = Cluster::start(SHARDS).await;
    let mut ck = cluster.client();
    let base = ck.join(groups(&[1, 2])).await.expect("join 1, 2");
    // The stream asks for a kill after commands 10 and 25 and starts the
    // next command at once, so the kill lands while it is in flight (or
    // just after it, on a fast machine); the command after that waits for
    // the kill, so both kills land before the stream ends.
    let (kill_sender, mut kill_requests) = tokio::sync::mpsc::unbounded_channel();
    let (killed_sender, mut kills_done) = tokio::sync::mpsc::unbounded_channel();
    let stream = tokio::spawn(async move {
        let mut returned = Vec::new();
        let mut kill_pending = false;
        for k in 0..OPS {
            let config = if kill_pending {
                let (config, killed) = tokio::join!(run_op(&mut ck, k), kills_done.recv());
                killed.expect("the test kills");
                config
            } else {
                run_op(&mut ck, k).await
            };
            returned.push(config);
            kill_pending = k == 10 || k == 25;
            if kill_pending {
                kill_sender.send(k).expect("the test listens");
            }
        }
        returned
    });
    let mut killed = Vec::new();
    while killed.len() < 2 {
        kill_requests.recv().await.expect("a kill request");
        let leader = cluster.wait_for_leader().await;
        cluster.kill(leader);
        killed.push(leader);
        killed_sender.send(()).expect("the stream waits");
        if killed.len() == 2 {
            cluster.restart(killed[0]);
        }
    }
    let returned = stream.await.expect("command stream");
    cluster.restart(killed[1]);
    for (k, config) in returned.iter().enumerate() {
        assert_eq!(config.num, base.num + 1 + k as u64, "op {k} config number");
    }
    let mut ck = cluster.client();
    let latest = ck.query(-1).await.expect("latest");
    assert_eq!(
        latest.num,
        base.num + OPS as u64,
        "one configuration per command"
    );
    for config in &returned {
        assert_eq!(&ck.query(config.num as i64).await.expect("query"), config);
    }
    let mut expected = vec![base.clone()];
    expected.extend(returned.iter().cloned());
    for replica in 0..harness::REPLICAS {
        let history = cluster.history_at(replica, latest.num).await;
        assert_eq!(
            history[base.num as usize..],
            expected[..],
            "replica {replica}"
        );
    }
}

// Goal: the whole controller survives every replica dying at once and
// resumes from its data dirs with its history and client sessions. Method:
// commands, kill all three, restart all, replay the last command's
// (client_id, seq): it must get its first answer, not a new configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_sessions_survive_killing_every_replica() {
    let mut cluster = Cluster::start(SHARDS).await;
    let leader = cluster.wait_for_leader().await;
    let mut raw = cluster.raw(leader).await;
    let mut ck = cluster.client();
    for gid in 1..=25 {
        ck.join(groups(&[gid])).await.expect("join");
    }
    let request = pb::MoveRequest {
        shard: 3,
        gid: 7,
        client_id: 4242,
        seq: 1,
    };
    let first = raw.r#move(request).await.expect("move").into_inner();
    assert_eq!(first.status, pb::Status::Ok as i32);
    for replica in 0..harness::REPLICAS {
        cluster.kill(replica);
    }
    for replica in 0..harness::REPLICAS {
        cluster.restart(replica);
    }
    let leader = cluster.wait_for_leader().await;
    let mut raw = cluster.raw(leader).await;
    let again = raw.r#move(request).await.expect("retry").into_inner();
    assert_eq!(
        again, first,
        "a retry after a restart gets its first answer"
    );
    let latest = cluster.client().query(-1).await.expect("latest");
    assert_eq!(latest.num, 26);
    assert_eq!(Some(&latest), first.config.as_ref());
}

// Goal: SIGTERM (docker stop, Ctrl-C) stops a replica cleanly, with exit
// status 0 and its database closed (RocksDB logs "Shutdown complete"), and
// a restarted group has every configuration. Method: two
// joins, SIGTERM each replica in turn, restart all, compare the latest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_each_replica_cleanly_and_loses_nothing() {
    let mut cluster = Cluster::start(SHARDS).await;
    let mut ck = cluster.client();
    ck.join(groups(&[1])).await.expect("join 1");
    let latest = ck.join(groups(&[2])).await.expect("join 2");
    for index in 0..3 {
        let status = cluster.terminate(index);
        assert!(
            status.success(),
            "replica {} exited with {status}",
            index + 1
        );
        let log = cluster.dir.path().join(format!("replica-{}", index + 1));
        let log = std::fs::read_to_string(log.join("LOG")).expect("RocksDB's LOG");
        assert!(
            log.contains("Shutdown complete"),
            "replica {} exited without closing its database",
            index + 1
        );
    }
    for index in 0..3 {
        cluster.restart(index);
    }
    assert_eq!(ck.query(-1).await.expect("latest after restart"), latest);
}
