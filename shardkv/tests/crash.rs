//! Every replica of a group is SIGKILLed under load and restarted: every
//! acknowledged append is present exactly once afterwards, and no append
//! is applied twice (clients retry the same `(client id, seq)` across the
//! crash). The group runs as three `shardkv` processes; the controller is
//! a stand-in giving the group every shard.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{KillOnDrop, free_addresses, start_stand_in_controller};
use proto::kv::v1 as pb;
use proto::kv::v1::shard_kv_client::ShardKvClient;
use raft::observability::http_get;

const DEADLINE: Duration = Duration::from_secs(60);
const GID: u64 = 7;
/// Appends per client.
const APPENDS: u64 = 150;

/// The three replicas' addresses and how to start them.
struct Group {
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
                .args(["--gid", &GID.to_string(), "--id", &id])
                .args(["--listen", &self.listen[index], "--http", &self.http[index]])
                .args(["--peers", &peers.join(","), "--ctrler", &self.ctrler])
                .args(["--tick-ms", "20", "--config-poll-ms", "20"])
                .arg("--data-dir")
                .arg(dir.join(format!("replica-{id}")))
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
// applied; then every acknowledged token must appear exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_killing_every_replica_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut addresses = free_addresses(6);
    let http = addresses.split_off(3);
    let listen = addresses;
    let ctrler = start_stand_in_controller(Some((GID, listen.clone())));
    let group = Group {
        listen,
        http,
        ctrler,
    };
    let mut replicas: Vec<KillOnDrop> =
        (0..3).map(|index| group.spawn(dir.path(), index)).collect();
    group.wait_ready().await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writers: Vec<_> = (1..=4u64)
        .map(|client| {
            let (servers, stop) = (group.listen.clone(), Arc::clone(&stop));
            let acked = Arc::clone(&acked);
            tokio::spawn(async move {
                let key = format!("k{}", client % 2);
                let mut acknowledged = Vec::new();
                for seq in 1..=APPENDS {
                    let token = format!("{client}.{seq};");
                    if !append(&servers, client, seq, &key, &token, &stop).await {
                        break;
                    }
                    acked.fetch_add(1, Ordering::SeqCst);
                    acknowledged.push(token);
                }
                acknowledged
            })
        })
        .collect();
    // Kill once the load runs, well before it ends.
    let started = Instant::now();
    while acked.load(Ordering::SeqCst) < 20 {
        assert!(started.elapsed() < DEADLINE, "no append was acknowledged");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for replica in &mut replicas {
        let _ = replica.0.kill();
        let _ = replica.0.wait();
    }
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
    let values = [
        get(&group.listen, "k0").await,
        get(&group.listen, "k1").await,
    ];
    for token in &acknowledged {
        let count: usize = values
            .iter()
            .map(|value| value.matches(token.as_str()).count())
            .sum();
        assert_eq!(count, 1, "{token} appears {count} times");
    }
    drop(replicas);
}
