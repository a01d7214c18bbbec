//! Conversions from the public `kv.v1` requests to the controller's log
//! requests (DESIGN.md "Public API"); a configuration converts itself
//! (`Config::to_proto`, in `proto::config`).
//!
//! Invariant: conversion from the wire never refuses input. Bad input (an
//! empty list, gid 0, a shard out of range) is carried through unchanged, so
//! that `ControllerState::apply` refuses it the same way on every replica and
//! records the refusal in the client's session.

use std::collections::BTreeMap;

use proto::kv::v1 as pb;

use crate::command::{Command, Request};
use crate::types::{GroupId, ShardId};

/// Returns the log request of a Join.
pub fn join_request(request: pb::JoinRequest) -> Request {
    Request {
        client_id: request.client_id,
        seq: request.seq,
        timestamp_ms: 0,
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
        timestamp_ms: 0,
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
        timestamp_ms: 0,
        command: Command::Move {
            shard: ShardId(request.shard),
            gid: GroupId(request.gid),
        },
    }
}

/// Returns the groups of a Join in gid order.
fn groups_from_proto(groups: BTreeMap<u64, pb::ServerList>) -> BTreeMap<GroupId, Vec<String>> {
    groups
        .into_iter()
        .map(|(gid, list)| (GroupId(gid), list.servers))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
