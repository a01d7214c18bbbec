//! Shared generators for the property tests: random admin operations from a
//! few clients, including bad input and retries, and a driver that turns
//! them into numbered requests.

#![allow(dead_code)] // Each test binary uses a different part.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use shardctrler::{Command, Config, ControllerState, GroupId, Request, ShardId};

/// The largest gid the generators use; with up to 12 shards, some sequences
/// have more groups than shards.
pub const GID_MAX: u64 = 12;

/// One admin action of a random sequence.
#[derive(Debug, Clone)]
pub enum Op {
    /// Join these gids (0 included, to exercise refusals).
    Join {
        client_id: u64,
        gids: BTreeSet<u64>,
        empty_servers: bool,
    },
    /// Leave these gids, in order, repeats allowed.
    Leave { client_id: u64, gids: Vec<u64> },
    /// Leave groups picked from the latest configuration (repeats allowed).
    LeaveExisting {
        client_id: u64,
        picks: Vec<prop::sample::Index>,
    },
    /// Move a shard (possibly out of range) to a gid (possibly unknown).
    Move {
        client_id: u64,
        shard: u32,
        gid: u64,
    },
    /// Move a shard to a group picked from the latest configuration.
    MoveExisting {
        client_id: u64,
        shard: u32,
        pick: prop::sample::Index,
    },
    /// Send the client's last request again.
    Retry { client_id: u64 },
}

/// Returns a strategy for one operation of clients 1 to 3 over shards
/// `0..=shard_count` (one past the end, to exercise refusals).
pub fn op_strategy(shard_count: u32) -> impl Strategy<Value = Op> {
    let client = 1u64..=3;
    // Gid 0 is always refused: draw it rarely so most requests do something.
    let gid = prop_oneof![1 => Just(0u64), 15 => 1u64..=GID_MAX];
    prop_oneof![
        4 => (client.clone(), proptest::collection::btree_set(gid.clone(), 0..4), proptest::bool::weighted(0.05))
            .prop_map(|(client_id, gids, empty_servers)| Op::Join { client_id, gids, empty_servers }),
        1 => (client.clone(), proptest::collection::vec(gid.clone(), 0..=2))
            .prop_map(|(client_id, gids)| Op::Leave { client_id, gids }),
        3 => (client.clone(), proptest::collection::vec(any::<prop::sample::Index>(), 1..=3))
            .prop_map(|(client_id, picks)| Op::LeaveExisting { client_id, picks }),
        1 => (client.clone(), 0..=shard_count, gid)
            .prop_map(|(client_id, shard, gid)| Op::Move { client_id, shard, gid }),
        2 => (client.clone(), 0..shard_count.max(1), any::<prop::sample::Index>())
            .prop_map(|(client_id, shard, pick)| Op::MoveExisting { client_id, shard, pick }),
        1 => client.prop_map(|client_id| Op::Retry { client_id }),
    ]
}

/// Returns a strategy for a shard count and a sequence of operations.
pub fn sequence_strategy() -> impl Strategy<Value = (u32, Vec<Op>)> {
    (1u32..=12).prop_flat_map(|shard_count| {
        (
            Just(shard_count),
            proptest::collection::vec(op_strategy(shard_count), 0..40),
        )
    })
}

/// Returns the servers of a group in the generated sequences.
pub fn servers(gid: u64) -> Vec<String> {
    vec![format!("g{gid}-a:7000"), format!("g{gid}-b:7000")]
}

/// Numbers each client's requests and remembers its last one for retries.
#[derive(Default)]
pub struct Driver {
    last: BTreeMap<u64, Request>,
}

impl Driver {
    /// Returns the request `op` sends given the `latest` configuration, or
    /// `None` for a retry by a client that has sent nothing yet.
    pub fn request(&mut self, op: &Op, latest: &Config) -> Option<Request> {
        let gids: Vec<GroupId> = latest.groups.keys().copied().collect();
        // With no groups, a pick names gid 0, which is refused.
        let pick = |index: &prop::sample::Index| {
            if gids.is_empty() {
                GroupId(0)
            } else {
                *index.get(&gids)
            }
        };
        let (client_id, command) = match op {
            Op::Retry { client_id } => return self.last.get(client_id).cloned(),
            Op::Join {
                client_id,
                gids,
                empty_servers,
            } => {
                let groups = gids.iter().map(|gid| {
                    let list = if *empty_servers {
                        vec![]
                    } else {
                        servers(*gid)
                    };
                    (GroupId(*gid), list)
                });
                (
                    *client_id,
                    Command::Join {
                        groups: groups.collect(),
                    },
                )
            }
            Op::Leave { client_id, gids } => {
                let gids = gids.iter().map(|gid| GroupId(*gid)).collect();
                (*client_id, Command::Leave { gids })
            }
            Op::LeaveExisting { client_id, picks } => {
                let gids = picks.iter().map(pick).collect();
                (*client_id, Command::Leave { gids })
            }
            Op::Move {
                client_id,
                shard,
                gid,
            } => {
                let command = Command::Move {
                    shard: ShardId(*shard),
                    gid: GroupId(*gid),
                };
                (*client_id, command)
            }
            Op::MoveExisting {
                client_id,
                shard,
                pick: index,
            } => {
                let command = Command::Move {
                    shard: ShardId(*shard),
                    gid: pick(index),
                };
                (*client_id, command)
            }
        };
        let seq = self.last.get(&client_id).map_or(1, |last| last.seq + 1);
        let request = Request {
            client_id,
            seq,
            timestamp_ms: 0,
            command,
        };
        self.last.insert(client_id, request.clone());
        Some(request)
    }
}

/// Returns the state after applying `ops` to a fresh state.
pub fn run(shard_count: u32, ops: &[Op]) -> ControllerState {
    let mut state = ControllerState::new(shard_count);
    let mut driver = Driver::default();
    for op in ops {
        if let Some(request) = driver.request(op, state.latest()) {
            let _ = state.apply(request);
        }
    }
    state
}

/// Returns the gids of a configuration's groups.
pub fn group_ids(config: &Config) -> BTreeSet<GroupId> {
    config.groups.keys().copied().collect()
}
