//! Every replica is SIGKILLed under load and restarted: every
//! acknowledged append is present exactly once afterwards, and no append
//! is applied twice (clients retry the same `(client id, seq)` across the
//! crash). Groups run as three `shardkv` processes each; the controller is
//! a stand-in serving the configurations the test publishes: one group
//! owning every shard, or two groups with a move between them under way.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    KillOnDrop, SHARDS, free_addresses, serve_stand_in_controller, start_stand_in_controller,
};
use proto::kv::v1 as pb;
use proto::kv::v1::shard_kv_client::ShardKvClient;
use raft::observability::http_get;

const DEADLINE: Duration = Duration::from_secs(60);
const GID: u64 = 7;
/// Appends per client.
const APPENDS: u64 = 150;

/// The second group of the migration test.
const OTHER_GID: u64 = 8;

/// The three replicas' addresses and how to start them.
struct Group {
    gid: u64,
    listen: Vec<String>,
    http: Vec<String>,
    ctrler: String,
}

impl Group {
    /// Starts replica `index` on its data dir under `dir`.
    fn spawn(&self, dir: &Path, index: usize) -> KillOnDrop {
        let peers: Vec<String> = (1..)
            .zip(&self.listen)
            .map(|(id, address)| format!("{id}={address}"))
            .collect();
        let id = (index + 1).to_string();
        KillOnDrop(
            Command::new(env!("CARGO_BIN_EXE_shardkv"))
                .args(["--gid", &self.gid.to_string(), "--id", &id])
                .args(["--listen", &self.listen[index], "--http", &self.http[index]])
                .args(["--peers", &peers.join(","), "--ctrler", &self.ctrler])
                .args(["--tick-ms", "20", "--config-poll-ms", "20"])
                .arg("--data-dir")
                .arg(dir.join(format!("group-{}-{id}", self.gid)))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("shardkv starts"),
        )
    }

    /// Waits until every replica is ready.
    async fn wait_ready(&self) {
        let started = Instant::now();
        for http in &self.http {
            loop {
                let ready = http_get(http, "/readyz", Duration::from_secs(1))
                    .is_ok_and(|response| response.contains(" 200 "));
                if ready {
                    break;
                }
                assert!(
                    started.elapsed() < DEADLINE,
                    "not ready within {DEADLINE:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Appends `value` to `key` as `(client, seq)` at any replica until one
/// applies it, or gives up when `stop` is set; returns whether applied.
async fn append(
    servers: &[String],
    client: u64,
    seq: u64,
    key: &str,
    value: &str,
    stop: &AtomicBool,
) -> bool {
    loop {
        for server in servers {
            let Ok(mut kv) = ShardKvClient::connect(format!("http://{server}")).await else {
                continue;
            };
            let request = pb::PutRequest {
                key: Bytes::copy_from_slice(key.as_bytes()),
                value: Bytes::copy_from_slice(value.as_bytes()),
                client_id: client,
                seq,
            };
            if let Ok(reply) = kv.append(request).await
                && reply.get_ref().status == pb::Status::Ok as i32
            {
                return true;
            }
        }
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Returns whether a replica of `group` applied configuration `num` or a
/// later one (its `shardkv_config_num` gauge).
fn applied_config(group: &Group, num: u64) -> bool {
    group.http.iter().any(|http| {
        http_get(http, "/metrics", Duration::from_secs(1)).is_ok_and(|body| {
            body.lines()
                .filter(|line| line.starts_with("shardkv_config_num"))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .any(|applied| applied >= num as f64)
        })
    })
}

/// Waits until a replica of `group` applied configuration `num`.
async fn wait_applied(group: &Group, num: u64) {
    let started = Instant::now();
    while !applied_config(group, num) {
        assert!(
            started.elapsed() < DEADLINE,
            "group {} never applied configuration {num}",
            group.gid
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Kills every replica and waits for each to be gone.
fn kill_all(replicas: &mut [KillOnDrop]) {
    for replica in replicas {
        let _ = replica.0.kill();
        let _ = replica.0.wait();
    }
}

/// Runs four writers appending `APPENDS` unique tokens each to `keys`
/// keys at any of `servers`, each starting no new append once `halt` is
/// set; returns their tasks (each yields its acknowledged appends) and the
/// count of acknowledgements so far.
fn start_writers(
    servers: &[String],
    keys: u64,
    stop: &Arc<AtomicBool>,
    halt: &Arc<AtomicBool>,
) -> (
    Vec<tokio::task::JoinHandle<Vec<Acked>>>,
    Arc<std::sync::atomic::AtomicU64>,
) {
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writers = (1..=4u64)
        .map(|client| {
            let (servers, stop) = (servers.to_vec(), Arc::clone(stop));
            let (acked, halt) = (Arc::clone(&acked), Arc::clone(halt));
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for seq in 1..=APPENDS {
                    if halt.load(Ordering::SeqCst) {
                        break;
                    }
                    let key = format!("k{}", (client + seq) % keys);
                    let token = format!("{client}.{seq};");
                    if !append(&servers, client, seq, &key, &token, &stop).await {
                        break;
                    }
                    acked.fetch_add(1, Ordering::SeqCst);
                    acknowledged.push(Acked {
                        client,
                        seq,
                        key,
                        token,
                    });
                }
                acknowledged
            })
        })
        .collect();
    (writers, acked)
}

/// An acknowledged append.
struct Acked {
    client: u64,
    seq: u64,
    key: String,
    token: String,
}

/// Sends an acknowledged append again, as a late duplicate, until a
/// replica answers it: OK (the recorded reply of the client's last write
/// in the shard) or `FAILED_PRECONDITION` (older than that: refused).
async fn resend(servers: &[String], append: &Acked) {
    let started = Instant::now();
    loop {
        for server in servers {
            let Ok(mut kv) = ShardKvClient::connect(format!("http://{server}")).await else {
                continue;
            };
            let request = pb::PutRequest {
                key: Bytes::copy_from_slice(append.key.as_bytes()),
                value: Bytes::copy_from_slice(append.token.as_bytes()),
                client_id: append.client,
                seq: append.seq,
            };
            match kv.append(request).await {
                Ok(reply) if reply.get_ref().status == pb::Status::Ok as i32 => return,
                Err(status) if status.code() == tonic::Code::FailedPrecondition => return,
                _ => {}
            }
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no replica answered a duplicate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that every acknowledged token appears exactly once in `values`.
fn assert_each_once(acknowledged: &[Acked], values: &[String]) {
    for append in acknowledged {
        let count: usize = values
            .iter()
            .map(|value| value.matches(append.token.as_str()).count())
            .sum();
        assert_eq!(count, 1, "{} appears {count} times", append.token);
    }
}

/// Reads `key` from whichever replica answers OK.
async fn get(servers: &[String], key: &str) -> String {
    let started = Instant::now();
    loop {
        for server in servers {
            let Ok(mut kv) = ShardKvClient::connect(format!("http://{server}")).await else {
                continue;
            };
            let request = pb::GetRequest {
                key: Bytes::copy_from_slice(key.as_bytes()),
            };
            if let Ok(reply) = kv.get(request).await
                && reply.get_ref().status == pb::Status::Ok as i32
            {
                return String::from_utf8_lossy(&reply.get_ref().value).into_owned();
            }
        }
        assert!(started.elapsed() < DEADLINE, "no replica served {key}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// Goal: acknowledged appends survive SIGKILL of every replica, each
// exactly once, and retried appends never apply twice. Method: four
// clients append unique tokens; every replica is killed mid-load and
// restarted; the clients retry each token with its `(client, seq)` until
// applied; then every append is sent again (a late duplicate, answered
// without applying) and every acknowledged token must appear exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_killing_every_replica_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut addresses = free_addresses(6);
    let http = addresses.split_off(3);
    let listen = addresses;
    let ctrler = start_stand_in_controller(Some((GID, listen.clone())));
    let group = Group {
        gid: GID,
        listen,
        http,
        ctrler,
    };
    let mut replicas: Vec<KillOnDrop> =
        (0..3).map(|index| group.spawn(dir.path(), index)).collect();
    group.wait_ready().await;

    let stop = Arc::new(AtomicBool::new(false));
    let halt = Arc::new(AtomicBool::new(false));
    let (writers, acked) = start_writers(&group.listen, 2, &stop, &halt);
    // Kill once the load runs, well before it ends.
    let started = Instant::now();
    while acked.load(Ordering::SeqCst) < 20 {
        assert!(started.elapsed() < DEADLINE, "no append was acknowledged");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    kill_all(&mut replicas);
    let at_kill = acked.load(Ordering::SeqCst);
    assert!(at_kill < 4 * APPENDS, "the kill came before the load ended");
    replicas = (0..3).map(|index| group.spawn(dir.path(), index)).collect();
    group.wait_ready().await;
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("a writer finishes"));
    }
    stop.store(true, Ordering::SeqCst);
    assert_eq!(
        acknowledged.len() as u64,
        4 * APPENDS,
        "every append was acknowledged in the end ({at_kill} before the kill)"
    );
    for append in &acknowledged {
        resend(&group.listen, append).await;
    }
    let values = [
        get(&group.listen, "k0").await,
        get(&group.listen, "k1").await,
    ];
    assert_each_once(&acknowledged, &values);
    drop(replicas);
}

// Goal: a shard move between groups survives SIGKILL of every replica of
// both groups: every acknowledged append is present exactly once
// afterwards, wherever its shard ended up, and retried appends never
// apply twice (the sessions travel with the shards). Method: group 7 owns
// every shard; four clients append unique tokens to keys of every shard
// at any replica of either group; once 20 are acknowledged the controller
// gives half the shards to group 8, and as soon as a replica of group 8
// applied that configuration (its pulls start) every replica of both
// groups is killed and restarted; the clients retry the token in flight
// until applied and start no other. Then every append is sent again (a
// late duplicate): the owner, old or new, must answer it without applying
// it a second time, which it can only do if the sessions moved with the
// shards (a client's last write in a moved shard was made at group 7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_survives_killing_every_replica_of_both_groups() {
    let dir = tempfile::tempdir().expect("temp dir");
    let controller = serve_stand_in_controller();
    let mut addresses = free_addresses(12);
    let groups: Vec<Group> = [GID, OTHER_GID]
        .into_iter()
        .map(|gid| {
            let listen: Vec<String> = addresses.drain(..3).collect();
            let http: Vec<String> = addresses.drain(..3).collect();
            Group {
                gid,
                listen,
                http,
                ctrler: controller.address.clone(),
            }
        })
        .collect();
    let servers_of = |group: &Group| (group.gid, group.listen.clone());
    controller.publish(&[GID; SHARDS as usize], &[servers_of(&groups[0])]);
    let spawn_all = || -> Vec<KillOnDrop> {
        groups
            .iter()
            .flat_map(|group| (0..3).map(|index| group.spawn(dir.path(), index)))
            .collect()
    };
    let mut replicas = spawn_all();
    for group in &groups {
        group.wait_ready().await;
    }

    let servers: Vec<String> = groups.iter().flat_map(|g| g.listen.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let halt = Arc::new(AtomicBool::new(false));
    let (writers, acked) = start_writers(&servers, 2 * u64::from(SHARDS), &stop, &halt);
    let started = Instant::now();
    while acked.load(Ordering::SeqCst) < 20 {
        assert!(started.elapsed() < DEADLINE, "no append was acknowledged");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let half = SHARDS as usize / 2;
    let mut shards = vec![OTHER_GID; half];
    shards.resize(SHARDS as usize, GID);
    controller.publish(&shards, &[servers_of(&groups[0]), servers_of(&groups[1])]);
    wait_applied(&groups[1], 2).await;
    kill_all(&mut replicas);
    halt.store(true, Ordering::SeqCst);
    let at_kill = acked.load(Ordering::SeqCst);
    assert!(at_kill < 4 * APPENDS, "the kill came before the load ended");
    replicas = spawn_all();
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("a writer finishes"));
    }
    stop.store(true, Ordering::SeqCst);
    assert!(
        acknowledged.len() as u64 >= at_kill,
        "every append in flight at the kill was acknowledged in the end"
    );
    for append in &acknowledged {
        resend(&servers, append).await;
    }
    let mut values = Vec::new();
    for key in 0..2 * SHARDS {
        values.push(get(&servers, &format!("k{key}")).await);
    }
    assert_each_once(&acknowledged, &values);
    drop(replicas);
}
