//! Conversions between the public `kv.v1` messages and the controller's
//! own types (DESIGN.md "Public API").
//!
//! Invariant: conversion from the wire never refuses input. Bad input (an
//! empty list, gid 0, a shard out of range) is carried through unchanged, so
//! that `ControllerState::apply` refuses it the same way on every replica and
//! records the refusal in the client's session.

use std::collections::{BTreeMap, HashMap};

use proto::kv::v1 as pb;

use crate::command::{Command, Request};
use crate::types::{Config, GroupId, ShardId};

/// Returns the wire form of `config`.
pub fn config_to_proto(config: &Config) -> pb::Config {
    pb::Config {
        num: config.num.0,
        shards: config.shards.iter().map(|gid| gid.0).collect(),
        groups: config
            .groups
            .iter()
            .map(|(gid, servers)| {
                let list = pb::ServerList {
                    servers: servers.clone(),
                };
                (gid.0, list)
            })
            .collect(),
    }
}

/// Returns the log request of a Join.
pub fn join_request(request: pb::JoinRequest) -> Request {
    Request {
        client_id: request.client_id,
        seq: request.seq,
        command: Command::Join {
            groups: groups_from_proto(request.groups),
        },
    }
}

/// Returns the log request of a Leave.
pub fn leave_request(request: pb::LeaveRequest) -> Request {
    Request {
        client_id: request.client_id,
        seq: request.seq,
        command: Command::Leave {
            gids: request.gids.into_iter().map(GroupId).collect(),
        },
    }
}

/// Returns the log request of a Move.
pub fn move_request(request: pb::MoveRequest) -> Request {
    Request {
        client_id: request.client_id,
        seq: request.seq,
        command: Command::Move {
            shard: ShardId(request.shard),
            gid: GroupId(request.gid),
        },
    }
}

/// Returns the groups of a Join in gid order.
fn groups_from_proto(groups: HashMap<u64, pb::ServerList>) -> BTreeMap<GroupId, Vec<String>> {
    groups
        .into_iter()
        .map(|(gid, list)| (GroupId(gid), list.servers))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The wire form keeps every field: numbers, the shard table and the
    // server lists by gid.
    #[test]
    fn config_round_trips_to_the_wire_form() {
        let mut config = Config::initial(3);
        config.num = crate::types::ConfigNum(4);
        config
            .groups
            .insert(GroupId(7), vec!["a:1".into(), "b:2".into()]);
        config.shards = vec![GroupId(7); 3];
        let wire = config_to_proto(&config);
        assert_eq!(wire.num, 4);
        assert_eq!(wire.shards, vec![7, 7, 7]);
        assert_eq!(wire.groups[&7].servers, vec!["a:1", "b:2"]);
    }

    // Bad input crosses unchanged, for the state machine to refuse.
    #[test]
    fn bad_input_is_carried_through_unchanged() {
        let request = move_request(pb::MoveRequest {
            shard: 99,
            gid: 0,
            client_id: 5,
            seq: 1,
        });
        assert_eq!(
            request.command,
            Command::Move {
                shard: ShardId(99),
                gid: GroupId(0)
            }
        );
        let request = leave_request(pb::LeaveRequest {
            gids: vec![],
            client_id: 5,
            seq: 2,
        });
        assert_eq!(request.command, Command::Leave { gids: vec![] });
    }
}
