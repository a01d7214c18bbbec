//! The controller's end-of-seed check: replays the committed log (every
//! payload some node applied, by index) on a fresh [`ControllerState`] and
//! judges what happened against the controller's promises, independently
//! of how `apply` keeps them:
//!
//! - at most once: the entries of one `(client, seq)` create at most one
//!   configuration, and every attempt that answered a request answers with
//!   what its first execution gave (a configuration number or a refusal);
//! - every configuration made by Join or Leave is balanced and moves as
//!   few shards as balance allows (`rebalance_check`); one made by Move
//!   changes exactly that shard's owner and no group;
//! - every member of the converged group holds the replayed state: the
//!   same configuration history and sessions.
//!
//! Invariant: the replay covers indexes 2 up to the highest applied, with
//! no gap (index 1 is the bootstrap prefix, which carries no request).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use raft::core::LogIndex;
use raft::sim::cluster::Cluster;
use raft::sim::invariants::Violation;

use super::machine::{CtrlerMachine, SIM_SHARDS};
use crate::rebalance_check::{check_rebalanced, moved_count};
use crate::state_machine::{ControllerState, RecordedReply};
use crate::types::GroupId;
use crate::{Command, Request};

/// A finished request and the index whose entry answered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answered {
    /// The admin's session.
    pub client_id: u64,
    /// The request's sequence number.
    pub seq: u64,
    /// The index of the entry that answered it.
    pub index: LogIndex,
}

/// What the replay learned about one `(client, seq)`.
#[derive(Debug, Default)]
struct Executions {
    /// The reply of its first entry.
    first: Option<RecordedReply>,
    /// The configurations its entries created.
    created: Vec<u64>,
}

/// Replays `applied` and checks the promises listed in the module doc.
pub fn check_admin_history(
    applied: &BTreeMap<LogIndex, Bytes>,
    answered: &[Answered],
    cluster: &Cluster<CtrlerMachine>,
) -> Result<(), Violation> {
    let mut state = ControllerState::new(SIM_SHARDS);
    let mut replies: BTreeMap<LogIndex, RecordedReply> = BTreeMap::new();
    let mut executions: BTreeMap<(u64, u64), Executions> = BTreeMap::new();
    let mut expected = LogIndex(2);
    for (&index, payload) in applied.range(LogIndex(2)..) {
        if index != expected {
            return Err(violation(
                "controller_history",
                format!("no node applied index {expected}, yet one applied {index}"),
            ));
        }
        expected = index.next();
        let Ok(request) = Request::decode(payload) else {
            continue;
        };
        let key = (request.client_id, request.seq);
        let command = request.command.clone();
        let before = state.latest().clone();
        let reply = state.apply(request).map(|config| config.num);
        let execution = executions.entry(key).or_default();
        execution.first.get_or_insert_with(|| reply.clone());
        if state.latest().num != before.num {
            execution.created.push(state.latest().num.0);
            check_step(&before, state.latest(), &command)?;
        }
        replies.insert(index, reply);
    }
    for ((client, seq), execution) in &executions {
        if execution.created.len() > 1 {
            return Err(violation(
                "at_most_once",
                format!(
                    "request {seq} of client {client} was executed {} times: configurations {:?}",
                    execution.created.len(),
                    execution.created
                ),
            ));
        }
    }
    for answer in answered {
        let key = (answer.client_id, answer.seq);
        let first = executions.get(&key).and_then(|e| e.first.as_ref());
        let got = replies.get(&answer.index);
        if got.is_none() || got != first {
            return Err(violation(
                "at_most_once",
                format!(
                    "request {} of client {} was answered {got:?} by index {}, its first execution gave {first:?}",
                    answer.seq, answer.client_id, answer.index
                ),
            ));
        }
    }
    check_replicas(&state, expected.prev(), cluster)
}

/// Checks one configuration created by `command` from `before`.
fn check_step(
    before: &crate::Config,
    after: &crate::Config,
    command: &Command,
) -> Result<(), Violation> {
    let result = match command {
        Command::Move { shard, gid } => {
            let moved = moved_count(&before.shards, &after.shards);
            if after.owner(*shard) != Some(*gid) || moved > 1 || after.groups != before.groups {
                Err(format!(
                    "Move of shard {shard} to {gid} made {:?} from {:?}",
                    after, before
                ))
            } else {
                Ok(())
            }
        }
        Command::Join { .. } | Command::Leave { .. } => {
            let groups: BTreeSet<GroupId> = after.groups.keys().copied().collect();
            check_rebalanced(&before.shards, &after.shards, &groups)
        }
    };
    result.map_err(|why| {
        violation(
            "balanced_minimal",
            format!("configuration {}: {why}", after.num),
        )
    })
}

/// Checks every member of the converged group against the replay: one
/// that applied as far holds exactly the replayed state; one behind holds
/// a prefix of its history (configurations are append-only).
fn check_replicas(
    replayed: &ControllerState,
    replayed_to: LogIndex,
    cluster: &Cluster<CtrlerMachine>,
) -> Result<(), Violation> {
    let Some(leader) = cluster.leader() else {
        return Err(violation(
            "controller_history",
            "no leader after healing".into(),
        ));
    };
    let members = cluster
        .core(leader)
        .map(|core| core.status().membership)
        .unwrap_or_default();
    for member in members.members() {
        let Some(node) = cluster.nodes.get(&member) else {
            continue;
        };
        let held = node.state().machine.state();
        let history = held.history();
        let same = if node.state().applied == replayed_to {
            held == replayed
        } else {
            replayed.history().starts_with(history)
        };
        if !same {
            return Err(violation(
                "controller_history",
                format!(
                    "node {member} at {} holds {} configurations and {} sessions, the committed log up to {replayed_to} makes {} and {}",
                    node.state().applied,
                    history.len(),
                    held.sessions().len(),
                    replayed.history().len(),
                    replayed.sessions().len()
                ),
            ));
        }
        held.check_invariants()
            .map_err(|why| violation("controller_history", format!("node {member}: {why}")))?;
    }
    Ok(())
}

fn violation(invariant: &'static str, detail: String) -> Violation {
    Violation { invariant, detail }
}
