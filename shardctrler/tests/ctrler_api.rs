//! The `kv.v1.ShardCtrler` wire contract of a three-replica controller of
//! real processes: at-most-once replies, refusals as `INVALID_ARGUMENT`,
//! leader-only queries with a leader hint, the Watch stream, and the
//! metrics on `/metrics`.

mod harness;

use harness::{Cluster, DEADLINE, groups, servers, wait_for};
use proto::kv::v1 as pb;
use raft::observability::http_get;
use tonic::Code;

const SHARDS: u32 = 10;

/// Sends one request to the current leader and returns its refusal, or
/// `None` if it was accepted. A reply that is not `OK` (the replica lost
/// leadership meanwhile) is sent again to the new leader, a bounded
/// number of times.
macro_rules! refusal {
    ($cluster:expr, |$raw:ident| $call:expr) => {{
        let mut outcome = None;
        for _ in 0..20 {
            let mut $raw = $cluster.raw($cluster.wait_for_leader().await).await;
            match $call.await {
                Err(status) => {
                    outcome = Some(Some(status));
                    break;
                }
                Ok(reply) if reply.get_ref().status != pb::Status::Ok as i32 => continue,
                Ok(_) => {
                    outcome = Some(None);
                    break;
                }
            }
        }
        outcome.expect("a leader answered within 20 attempts")
    }};
}

fn join_request(gids: &[u64], client_id: u64, seq: u64) -> pb::JoinRequest {
    pb::JoinRequest {
        groups: gids
            .iter()
            .map(|gid| {
                let list = pb::ServerList {
                    servers: servers(*gid),
                };
                (*gid, list)
            })
            .collect(),
        client_id,
        seq,
    }
}

// Goal: a repeated (client_id, seq) gets the first answer and applies
// nothing, refusals included; an older seq is refused (DESIGN.md "Public
// API"). Method: raw requests to the leader, repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_request_gets_its_first_answer() {
    let cluster = Cluster::start(SHARDS).await;
    let mut raw = cluster.raw(cluster.wait_for_leader().await).await;
    let first = raw.join(join_request(&[1], 77, 1)).await.expect("join");
    let again = raw.join(join_request(&[1], 77, 1)).await.expect("repeat");
    assert_eq!(first.get_ref(), again.get_ref());
    assert_eq!(first.get_ref().config.as_ref().map(|c| c.num), Some(1));
    let leave = pb::LeaveRequest {
        gids: vec![9],
        client_id: 77,
        seq: 2,
    };
    let refused = raw.leave(leave.clone()).await.expect_err("unknown gid");
    assert_eq!(refused.code(), Code::InvalidArgument);
    raw.join(join_request(&[9], 88, 1)).await.expect("join 9");
    let refused_again = raw.leave(leave).await.expect_err("recorded refusal");
    assert_eq!(refused_again.message(), refused.message());
    let stale = raw
        .join(join_request(&[5], 77, 1))
        .await
        .expect_err("stale");
    assert_eq!(stale.code(), Code::InvalidArgument);
    let latest = raw
        .query(pb::QueryRequest { num: -1 })
        .await
        .expect("query");
    assert_eq!(latest.get_ref().config.as_ref().map(|c| c.num), Some(2));
}

// Goal: bad admin input is refused with INVALID_ARGUMENT and a message, and
// changes nothing (DESIGN.md "Sharding and configurations").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_admin_input_is_refused_and_changes_nothing() {
    let cluster = Cluster::start(SHARDS).await;
    let mut ck = cluster.client();
    let joined = ck.join(groups(&[1])).await.expect("join 1");
    let mut empty_servers = join_request(&[2], 5, 4);
    empty_servers.groups.insert(2, pb::ServerList::default());
    let mut no_port = join_request(&[2], 5, 9);
    no_port.groups.insert(
        2,
        pb::ServerList {
            servers: vec!["g2-a".into()],
        },
    );
    // Group 1's first address again, for group 2.
    let mut taken = join_request(&[2], 5, 10);
    taken.groups.insert(
        2,
        pb::ServerList {
            servers: vec![servers(1)[0].clone()],
        },
    );
    let refusals = [
        refusal!(cluster, |raw| raw.join(join_request(&[1], 5, 1))),
        refusal!(cluster, |raw| raw.join(join_request(&[0], 5, 2))),
        refusal!(cluster, |raw| raw.join(join_request(&[], 5, 3))),
        refusal!(cluster, |raw| raw.join(empty_servers.clone())),
        refusal!(cluster, |raw| raw.leave(pb::LeaveRequest {
            gids: vec![3],
            client_id: 5,
            seq: 5,
        })),
        refusal!(cluster, |raw| raw.r#move(pb::MoveRequest {
            shard: SHARDS,
            gid: 1,
            client_id: 5,
            seq: 6,
        })),
        refusal!(cluster, |raw| raw.join(join_request(&[2], 0, 1))),
        refusal!(cluster, |raw| raw.query(pb::QueryRequest { num: -2 })),
        refusal!(cluster, |raw| raw.join(no_port.clone())),
        refusal!(cluster, |raw| raw.join(taken.clone())),
    ];
    // What each refusal's message must name (the kind of bad input).
    let named = [
        "already present",
        "gid 0",
        "no groups",
        "empty server list",
        "not present",
        "out of range",
        "must be non-zero",
        "-2",
        "not host:port",
        "already listed by group 1",
    ];
    for (index, (refusal, named)) in refusals.into_iter().zip(named).enumerate() {
        let status = refusal.unwrap_or_else(|| panic!("request {index} was accepted"));
        assert_eq!(status.code(), Code::InvalidArgument, "request {index}");
        assert!(
            status.message().contains(named),
            "request {index}: {:?} does not say {named:?}",
            status.message()
        );
    }
    assert_eq!(ck.query(-1).await.expect("latest"), joined);
}

// Goal: only the leader answers Query; a follower says WRONG_LEADER and
// names the leader's host:port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_redirects_queries_to_the_leader() {
    let cluster = Cluster::start(SHARDS).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.follower().await;
    let mut raw = cluster.raw(follower).await;
    wait_for("the follower to know the leader", DEADLINE, || {
        let mut raw = raw.clone();
        let expected = cluster.grpc[leader].clone();
        async move {
            let reply = raw.query(pb::QueryRequest { num: -1 }).await;
            reply.is_ok_and(|reply| {
                let reply = reply.into_inner();
                reply.status == pb::Status::WrongLeader as i32 && reply.leader_hint == expected
            })
        }
    })
    .await;
    let reply = raw.join(join_request(&[1], 6, 1)).await.expect("join");
    assert_eq!(reply.get_ref().status, pb::Status::WrongLeader as i32);
    assert_eq!(reply.get_ref().leader_hint, cluster.grpc[leader]);
}

// Goal: Watch streams every configuration from `from_num` in order, those
// committed before the call and those after, from any replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_each_configuration_as_it_commits() {
    let cluster = Cluster::start(SHARDS).await;
    let mut ck = cluster.client();
    ck.join(groups(&[1])).await.expect("join 1");
    let mut raw = cluster.raw(cluster.follower().await).await;
    let mut stream = raw
        .watch(pb::WatchRequest { from_num: 1 })
        .await
        .expect("watch")
        .into_inner();
    let mut created = vec![ck.query(1).await.expect("config 1")];
    created.push(ck.join(groups(&[2])).await.expect("join 2"));
    created.push(ck.move_shard(0, 2).await.expect("move"));
    created.push(ck.leave(vec![1]).await.expect("leave 1"));
    for expected in &created {
        let next = tokio::time::timeout(DEADLINE, stream.message())
            .await
            .expect("a configuration in time")
            .expect("stream healthy")
            .expect("stream open");
        assert_eq!(&next, expected);
    }
}

// Goal: every documented controller metric is exported, next to the raft
// ones. Method: a few requests, then scrape the leader's /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_exported() {
    let cluster = Cluster::start(SHARDS).await;
    let mut ck = cluster.client();
    ck.join(groups(&[1])).await.expect("join");
    ck.query(-1).await.expect("query");
    let leader = cluster.wait_for_leader().await;
    let body = http_get(&cluster.http[leader], "/metrics", DEADLINE).expect("GET /metrics");
    for name in shardctrler::metrics::CONTROLLER_METRICS {
        assert!(body.contains(name), "{name} missing from /metrics:\n{body}");
    }
    assert!(
        body.contains("shardctrler_config_num{group=\"0\",node=\""),
        "{body}"
    );
    assert!(
        body.contains("shardctrler_requests_total{group=\"0\",node=\""),
        "{body}"
    );
    assert!(body.contains("raft_term"), "{body}");
}
