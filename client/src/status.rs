//! The cluster's status for `kvctl status`: the latest configuration, and
//! what every replica of every group reports about itself (role, term,
//! leader, indexes, the configuration it applied, its shards' states and
//! the moves under way), as a table or JSON.
//!
//! Invariant: a replica that does not answer within the attempt timeout is
//! shown as unreachable; it never fails the whole status.

use std::time::Duration;

use proto::kv::v1 as pb;
use proto::shardkv::v1::group_admin_client::GroupAdminClient;
use proto::shardkv::v1::{GroupStatusReply, GroupStatusRequest, ShardStateKind};
use serde_json::{Value, json};
use tonic::transport::Endpoint;

use crate::format::shard_ranges;

/// One replica's answer, or why there is none.
pub struct ReplicaStatus {
    /// The replica's `host:port`.
    pub address: String,
    /// What it reported.
    pub reply: Result<GroupStatusReply, String>,
}

/// Asks every replica of every group of `config` for its status.
pub async fn replica_statuses(
    config: &pb::Config,
    timeout: Duration,
) -> Vec<(u64, Vec<ReplicaStatus>)> {
    let mut groups = Vec::new();
    for (gid, servers) in sorted_groups(config) {
        let mut replicas = Vec::new();
        for address in servers {
            let reply = ask(&address, timeout).await;
            replicas.push(ReplicaStatus { address, reply });
        }
        groups.push((gid, replicas));
    }
    groups
}

fn sorted_groups(config: &pb::Config) -> Vec<(u64, Vec<String>)> {
    let mut groups: Vec<(u64, Vec<String>)> = config
        .groups
        .iter()
        .map(|(gid, list)| (*gid, list.servers.clone()))
        .collect();
    groups.sort();
    groups
}

/// Asks one replica, within `timeout`.
async fn ask(address: &str, timeout: Duration) -> Result<GroupStatusReply, String> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|error| error.to_string())?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint
        .connect()
        .await
        .map_err(|error| format!("unreachable: {error}"))?;
    GroupAdminClient::new(channel)
        .status(GroupStatusRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
}

/// Returns a state's name.
fn state_name(kind: i32) -> &'static str {
    match ShardStateKind::try_from(kind) {
        Ok(ShardStateKind::Serving) => "serving",
        Ok(ShardStateKind::Pulling) => "pulling",
        Ok(ShardStateKind::Sending) => "sending",
        Ok(ShardStateKind::Cleaning) => "cleaning",
        _ => "unknown",
    }
}

/// Returns `state: shards` for each state a replica holds shards in, and
/// the moves under way (`pulling 3 from 1`).
fn shard_summary(reply: &GroupStatusReply) -> (String, Vec<String>) {
    let mut by_state: Vec<(&'static str, Vec<u32>)> = Vec::new();
    let mut moves = Vec::new();
    for record in &reply.shards {
        let name = state_name(record.kind);
        match by_state.iter_mut().find(|(state, _)| *state == name) {
            Some((_, shards)) => shards.push(record.shard),
            None => by_state.push((name, vec![record.shard])),
        }
        let direction = match name {
            "pulling" => Some("from"),
            "sending" => Some("to"),
            "cleaning" => Some("cleaning at"),
            _ => None,
        };
        if let Some(direction) = direction {
            moves.push(format!(
                "shard {} {name}: {direction} group {}",
                record.shard, record.gid
            ));
        }
    }
    let summary = by_state
        .iter()
        .map(|(state, shards)| format!("{state} {}", shard_ranges(shards)))
        .collect::<Vec<_>>()
        .join("; ");
    (
        if summary.is_empty() {
            "-".into()
        } else {
            summary
        },
        moves,
    )
}

/// Renders the status as a table.
pub fn status_table(config: &pb::Config, groups: &[(u64, Vec<ReplicaStatus>)]) -> String {
    let mut out = format!(
        "config {}: {} shards, {} groups\n",
        config.num,
        config.shards.len(),
        config.groups.len()
    );
    for (gid, replicas) in groups {
        out.push_str(&format!("\ngroup {gid}\n"));
        out.push_str(&format!(
            "  {:<22} {:<10} {:>6} {:>9} {:>7}  SHARDS\n",
            "REPLICA", "ROLE", "TERM", "APPLIED", "CONFIG"
        ));
        let mut moves = Vec::new();
        for replica in replicas {
            match &replica.reply {
                Ok(reply) => {
                    let (summary, replica_moves) = shard_summary(reply);
                    let role = if reply.restoring {
                        "restoring"
                    } else {
                        &reply.role
                    };
                    out.push_str(&format!(
                        "  {:<22} {:<10} {:>6} {:>9} {:>7}  {summary}\n",
                        replica.address, role, reply.term, reply.applied, reply.config_num
                    ));
                    if reply.role == "leader" {
                        moves = replica_moves;
                    }
                }
                Err(why) => out.push_str(&format!("  {:<22} {why}\n", replica.address)),
            }
        }
        for line in moves {
            out.push_str(&format!("  moving: {line}\n"));
        }
    }
    out
}

/// Renders the status as one JSON object.
pub fn status_json(config: &pb::Config, groups: &[(u64, Vec<ReplicaStatus>)]) -> Value {
    let groups: Vec<Value> = groups
        .iter()
        .map(|(gid, replicas)| {
            let replicas: Vec<Value> = replicas
                .iter()
                .map(|replica| match &replica.reply {
                    Ok(reply) => json!({
                        "address": replica.address,
                        "node": reply.node,
                        "role": reply.role,
                        "restoring": reply.restoring,
                        "term": reply.term,
                        "leader": reply.leader,
                        "commit": reply.commit,
                        "applied": reply.applied,
                        "config": reply.config_num,
                        "shards": reply.shards.iter().map(|record| json!({
                            "shard": record.shard,
                            "state": state_name(record.kind),
                            "group": record.gid,
                        })).collect::<Vec<_>>(),
                    }),
                    Err(why) => json!({ "address": replica.address, "error": why }),
                })
                .collect();
            json!({ "gid": gid, "replicas": replicas })
        })
        .collect();
    json!({ "config": config.num, "shards": config.shards.len(), "groups": groups })
}
