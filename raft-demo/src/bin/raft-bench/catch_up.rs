//! The catch-up benchmark: a follower that was down while the leader
//! wrote (and compacted) a state of a given size catches up by a snapshot
//! streamed from the leader's state. Prints the catch-up time and rate,
//! the peak RSS of leader and follower (flat in the state's size when the
//! transfer streams), and the leader's disk use against the live data (no
//! copy of the state is kept to compact or to send).

use std::time::{Duration, Instant};

use bytes::Bytes;
use proto::kv::v1::{PutRequest, Status as KvStatus};

use crate::{Group, find_leader, start_group};

/// Values are 1 MiB each.
const VALUE_BYTES: usize = 1 << 20;
/// Concurrent writers filling the state.
const WRITERS: usize = 8;
/// The longest a catch-up may take before the run fails.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(1800);

/// Returns value `n`: bytes no compression shrinks, its own for each `n`.
fn value(n: u64) -> Bytes {
    let mut state = (n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut bytes = Vec::with_capacity(VALUE_BYTES);
    while bytes.len() < VALUE_BYTES {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    Bytes::from(bytes)
}

/// Returns the value of the first sample of metric `name` node `address`
/// exports, if any.
fn gauge(address: &str, name: &str) -> Option<f64> {
    let body = raft::observability::http_get(address, "/metrics", Duration::from_secs(10)).ok()?;
    body.lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

/// Returns the peak resident set size of process `pid`, in bytes.
fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Returns the bytes of the files under `dir`, recursively.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Writes `count` values through `group`'s leader, `WRITERS` at a time.
async fn fill(group: &Group, leader: usize, count: u64) {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let address = group.grpc[leader].clone();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (next, address) = (next.clone(), address.clone());
            tokio::spawn(async move {
                let mut client = proto::kv::v1::shard_kv_client::ShardKvClient::connect(format!(
                    "http://{address}"
                ))
                .await
                .expect("connect to the leader")
                .max_decoding_message_size(8 << 20)
                .max_encoding_message_size(8 << 20);
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= count {
                        return;
                    }
                    let request = PutRequest {
                        key: Bytes::from(format!("value-{n:08}")),
                        value: value(n),
                        client_id: 0,
                        seq: 0,
                    };
                    let reply = client.put(request).await.expect("write");
                    assert_eq!(reply.get_ref().status, KvStatus::Ok as i32, "write {n}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
}

/// Runs the catch-up of a follower on a state of `mib` MiB and prints the
/// figures.
pub async fn run(base_port: u16, mib: u64) {
    let mut group = start_group(
        base_port,
        &["--compact-interval", "64", "--compact-keep", "16"],
    );
    let (_, leader) = find_leader(&group).await;
    let follower = (leader + 1) % 3;
    group.kill(follower);
    let filling = Instant::now();
    fill(&group, leader, mib).await;
    let fill_seconds = filling.elapsed().as_secs_f64();
    let target = gauge(&group.http[leader], "raft_commit_index").expect("leader commit index");
    let dir = group
        .dir
        .as_ref()
        .expect("a group has a dir")
        .path()
        .to_path_buf();
    let leader_disk = dir_bytes(&dir.join(format!("node-{}", leader + 1)));
    group.restart(follower);
    let started = Instant::now();
    loop {
        let applied = gauge(&group.http[follower], "raft_applied_index").unwrap_or(0.0);
        if applied >= target {
            break;
        }
        assert!(
            started.elapsed() < CATCH_UP_DEADLINE,
            "the follower did not catch up within {CATCH_UP_DEADLINE:?} ({applied} of {target})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let leader_disk_after = dir_bytes(&dir.join(format!("node-{}", leader + 1)));
    let received =
        gauge(&group.http[follower], "raft_snapshot_received_bytes_total").unwrap_or(0.0);
    let live = (mib * VALUE_BYTES as u64) as f64;
    let mib_of =
        |bytes: Option<u64>| bytes.map_or("unknown".to_string(), |b| format!("{} MiB", b >> 20));
    println!(
        "catch-up of {mib} MiB: {seconds:.1} s, {:.0} MiB/s ({:.0} MiB by snapshot); filled at {:.0} MiB/s",
        mib as f64 / seconds,
        received / f64::from(1 << 20),
        mib as f64 / fill_seconds,
    );
    println!(
        "    peak RSS: leader {}, follower {}; leader disk {:.0} MiB = {:.2}x the state's values \
         after the fill, {:.2}x after the catch-up (the log's uncompacted tail, up to 80 \
         entries, included)",
        mib_of(peak_rss_bytes(group.children[leader].id())),
        mib_of(peak_rss_bytes(group.children[follower].id())),
        leader_disk as f64 / f64::from(1 << 20),
        leader_disk as f64 / live,
        leader_disk_after as f64 / live,
    );
}
