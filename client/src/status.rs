//! The cluster's status for `kvctl status`: the latest configuration, and
//! what every replica of every group reports about itself (role, term,
//! leader, indexes, the configuration it applied, its shards' states and
//! the moves under way), as a table or JSON.
//!
//! Invariant: a replica that does not answer within the attempt timeout is
//! shown as unreachable; it never fails the whole status.

use std::collections::BTreeMap;
use std::time::Duration;

use proto::kv::v1 as pb;
use proto::shardkv::v1::group_admin_client::GroupAdminClient;
use proto::shardkv::v1::{GroupStatusReply, GroupStatusRequest, ShardStateKind, ShardStateRecord};
use serde_json::{Value, json};
use tonic::transport::Endpoint;

use crate::format::{byte_size, shard_ranges};

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

/// The bytes each group's leader reports installed, by group and shard
/// being pulled: how far each move has come.
type Installed = BTreeMap<(u64, u32), u64>;

/// Returns the bytes installed of each shard being pulled, as each group's
/// leader reports them.
fn installed_by_leaders(groups: &[(u64, Vec<ReplicaStatus>)]) -> Installed {
    let mut installed = Installed::new();
    for (gid, replicas) in groups {
        if let Some(reply) = leader_reply(replicas) {
            for (shard, bytes) in &reply.installed_bytes {
                installed.insert((*gid, *shard), *bytes);
            }
        }
    }
    installed
}

/// Returns `state: shards` for each state a replica holds shards in, and
/// the moves under way (`shard 3 pulling: from group 1, 2.0 MiB
/// installed`); a move's bytes are those its new owner installed.
fn shard_summary(reply: &GroupStatusReply, installed: &Installed) -> (String, Vec<String>) {
    let mut by_state: Vec<(&'static str, Vec<u32>)> = Vec::new();
    let mut moves = Vec::new();
    for record in &reply.shards {
        let name = state_name(record.kind);
        match by_state.iter_mut().find(|(state, _)| *state == name) {
            Some((_, shards)) => shards.push(record.shard),
            None => by_state.push((name, vec![record.shard])),
        }
        let (direction, bytes) = match name {
            "pulling" => ("from", reply.installed_bytes.get(&record.shard)),
            "sending" => ("to", installed.get(&(record.gid, record.shard))),
            "cleaning" => ("cleaning at", None),
            _ => continue,
        };
        let progress = bytes.map_or(String::new(), |bytes| {
            format!(", {} installed", byte_size(*bytes))
        });
        moves.push(format!(
            "shard {} {name}: {direction} group {}{progress}",
            record.shard, record.gid
        ));
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

/// Returns the answer of the replica among `replicas` that answered as
/// the group's leader, if one did.
fn leader_reply(replicas: &[ReplicaStatus]) -> Option<&GroupStatusReply> {
    replicas
        .iter()
        .filter_map(|replica| replica.reply.as_ref().ok())
        .find(|reply| reply.role == "leader")
}

/// Returns the commit index of the group's leader among `replicas`, if
/// one of them answered as the leader.
fn leader_commit(replicas: &[ReplicaStatus]) -> Option<u64> {
    leader_reply(replicas).map(|reply| reply.commit)
}

/// Returns how many entries the group's leader has committed that the
/// replica of `reply` has not applied yet; `None` without a leader.
fn lag(reply: &GroupStatusReply, leader_commit: Option<u64>) -> Option<u64> {
    leader_commit.map(|commit| commit.saturating_sub(reply.applied))
}

/// Renders the status as a table.
pub fn status_table(config: &pb::Config, groups: &[(u64, Vec<ReplicaStatus>)]) -> String {
    let installed = installed_by_leaders(groups);
    let mut out = format!(
        "config {}: {} shards, {} groups\n",
        config.num,
        config.shards.len(),
        config.groups.len()
    );
    for (gid, replicas) in groups {
        out.push_str(&format!("\ngroup {gid}\n"));
        out.push_str(&format!(
            "  {:<22} {:<10} {:>6} {:>9} {:>6} {:>7}  SHARDS\n",
            "REPLICA", "ROLE", "TERM", "APPLIED", "LAG", "CONFIG"
        ));
        let commit = leader_commit(replicas);
        let mut moves = Vec::new();
        for replica in replicas {
            match &replica.reply {
                Ok(reply) => {
                    let (summary, replica_moves) = shard_summary(reply, &installed);
                    let role = if reply.restoring {
                        "restoring"
                    } else {
                        &reply.role
                    };
                    let lag = lag(reply, commit).map_or("-".to_string(), |lag| lag.to_string());
                    out.push_str(&format!(
                        "  {:<22} {:<10} {:>6} {:>9} {lag:>6} {:>7}  {summary}\n",
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

/// Returns one shard's state as JSON; a shard being pulled carries the
/// bytes installed so far.
fn shard_json(reply: &GroupStatusReply, record: &ShardStateRecord) -> Value {
    let mut shard = json!({
        "shard": record.shard,
        "state": state_name(record.kind),
        "group": record.gid,
    });
    if let Some(bytes) = reply.installed_bytes.get(&record.shard) {
        shard["installed_bytes"] = json!(bytes);
    }
    shard
}

/// Renders the status as one JSON object.
pub fn status_json(config: &pb::Config, groups: &[(u64, Vec<ReplicaStatus>)]) -> Value {
    let groups: Vec<Value> = groups
        .iter()
        .map(|(gid, replicas)| {
            let commit = leader_commit(replicas);
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
                        "lag": lag(reply, commit),
                        "config": reply.config_num,
                        "shards": reply
                            .shards
                            .iter()
                            .map(|record| shard_json(reply, record))
                            .collect::<Vec<_>>(),
                    }),
                    Err(why) => json!({ "address": replica.address, "error": why }),
                })
                .collect();
            json!({ "gid": gid, "replicas": replicas })
        })
        .collect();
    json!({ "config": config.num, "shards": config.shards.len(), "groups": groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: each replica's lag is the entries its group's leader has
    // committed that it has not applied, and unknown without a leader.
    #[test]
    fn a_replica_lags_by_what_the_leader_committed_and_it_has_not_applied() {
        let mut leader = replica(1, "leader", Vec::new());
        let mut behind = replica(1, "follower", Vec::new());
        if let (Ok(leader), Ok(behind)) = (&mut leader.reply, &mut behind.reply) {
            (leader.commit, leader.applied) = (100, 100);
            (behind.commit, behind.applied) = (95, 90);
        }
        let config = pb::Config {
            num: 2,
            ..Default::default()
        };
        let groups = vec![
            (1, vec![leader, behind]),
            (2, vec![replica(2, "follower", Vec::new())]),
        ];
        let table = status_table(&config, &groups);
        let line = |address: &str| {
            table
                .lines()
                .find(|line| line.contains(address))
                .map(|line| {
                    line.split_whitespace()
                        .nth(4)
                        .unwrap_or_default()
                        .to_string()
                })
        };
        assert_eq!(line("127.0.0.1:106").as_deref(), Some("0"), "{table}");
        assert_eq!(line("127.0.0.1:108").as_deref(), Some("10"), "{table}");
        assert_eq!(line("127.0.0.1:208").as_deref(), Some("-"), "{table}");
        let json = status_json(&config, &groups);
        assert_eq!(json["groups"][0]["replicas"][1]["lag"], 10);
        assert!(json["groups"][1]["replicas"][0]["lag"].is_null());
    }

    fn replica(gid: u64, role: &str, shards: Vec<ShardStateRecord>) -> ReplicaStatus {
        ReplicaStatus {
            address: format!("127.0.0.1:{gid}0{}", role.len()),
            reply: Ok(GroupStatusReply {
                gid,
                role: role.into(),
                config_num: 2,
                shards,
                ..Default::default()
            }),
        }
    }

    fn state(shard: u32, kind: ShardStateKind, gid: u64) -> ShardStateRecord {
        ShardStateRecord {
            shard,
            kind: kind as i32,
            gid,
        }
    }

    // Goal: a move under way shows the bytes its new owner has installed,
    // on the new owner's line and on the old holder's, as the new owner's
    // leader reports them (a follower may lag behind it).
    #[test]
    fn a_move_shows_the_bytes_its_new_owner_installed() {
        let sending = vec![state(3, ShardStateKind::Sending, 2)];
        let pulling = vec![state(3, ShardStateKind::Pulling, 1)];
        let mut leader = replica(2, "leader", pulling.clone());
        let mut follower = replica(2, "follower", pulling);
        if let (Ok(leader), Ok(follower)) = (&mut leader.reply, &mut follower.reply) {
            leader.installed_bytes.insert(3, 12 << 20);
            follower.installed_bytes.insert(3, 1 << 20);
        }
        let groups = vec![
            (1, vec![replica(1, "leader", sending)]),
            (2, vec![follower, leader]),
        ];
        let config = pb::Config {
            num: 2,
            shards: vec![1, 1, 1, 2],
            ..Default::default()
        };
        let table = status_table(&config, &groups);
        assert!(
            table.contains("moving: shard 3 sending: to group 2, 12.0 MiB installed"),
            "{table}"
        );
        assert!(
            table.contains("moving: shard 3 pulling: from group 1, 12.0 MiB installed"),
            "{table}"
        );
        let json = status_json(&config, &groups);
        assert_eq!(
            json["groups"][1]["replicas"][1]["shards"][0]["installed_bytes"],
            12 << 20
        );
        let sending = &json["groups"][0]["replicas"][0]["shards"][0];
        assert_eq!(sending["state"], "sending");
        assert!(sending.get("installed_bytes").is_none(), "{sending}");
    }
}
