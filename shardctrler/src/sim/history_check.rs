//! The controller's end-of-seed check: replays the committed log (every
//! payload some node applied, by index) on a fresh [`ControllerState`] and
//! judges what happened against the controller's promises, independently
//! of how `apply` keeps them:
//!
//! - at most once, judged by a session model of its own: a new sequence
//!   number executes, the client's last one again gets its first reply and
//!   changes nothing, an older one is refused as stale and changes
//!   nothing; every attempt that answered a request answers with what its
//!   first execution gave;
//! - each execution does what the command asks of the configuration
//!   before it: a Join of absent groups, a Leave of present ones and a Move
//!   to a present group make configuration `num + 1` with exactly the
//!   groups asked for; anything else is refused and makes none;
//! - every configuration made by Join or Leave is balanced and moves as
//!   few shards as balance allows (`rebalance_check`); one made by Move
//!   changes exactly that shard's owner;
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
use crate::types::{Config, GroupId};
use crate::{AdminError, Command, Request};

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

/// Replays `applied` and checks the promises listed in the module doc.
pub fn check_admin_history(
    applied: &BTreeMap<LogIndex, Bytes>,
    answered: &[Answered],
    cluster: &Cluster<CtrlerMachine>,
) -> Result<(), Violation> {
    let mut state = ControllerState::new(SIM_SHARDS);
    let mut model = SessionModel::default();
    let mut replies: BTreeMap<LogIndex, RecordedReply> = BTreeMap::new();
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
        let (client, seq) = (request.client_id, request.seq);
        let command = request.command.clone();
        let before = state.latest().clone();
        let reply = state.apply(request).map(|config| config.num);
        let created = (state.latest().num != before.num).then(|| state.latest());
        let executed = model
            .judge(client, seq, &reply, created.is_some())
            .map_err(|why| violation("at_most_once", format!("index {index}: {why}")))?;
        if executed {
            check_execution(&before, created, &command, &reply)?;
        }
        replies.insert(index, reply);
    }
    for answer in answered {
        let first = model.first_reply(answer.client_id, answer.seq);
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

/// The sessions as the controller promises them, kept apart from its
/// code: per client, the last sequence number executed and the reply each
/// executed request got. (Sessions expire after an hour of logged time;
/// no seed runs that long, so none expires here.)
#[derive(Debug, Default)]
struct SessionModel {
    last_seq: BTreeMap<u64, u64>,
    first: BTreeMap<(u64, u64), RecordedReply>,
}

impl SessionModel {
    /// Judges one applied request: a new sequence number executes (returns
    /// true); the client's last one again is answered its first reply and
    /// changes nothing; an older one is refused as stale and changes
    /// nothing.
    fn judge(
        &mut self,
        client: u64,
        seq: u64,
        reply: &RecordedReply,
        created: bool,
    ) -> Result<bool, String> {
        let last = self.last_seq.get(&client).copied().unwrap_or(0);
        if seq > last {
            self.last_seq.insert(client, seq);
            self.first.insert((client, seq), reply.clone());
            return Ok(true);
        }
        if created {
            return Err(format!(
                "request {seq} of client {client}, whose last executed request is {last}, made a configuration"
            ));
        }
        let expected = if seq == last {
            self.first.get(&(client, seq)).cloned()
        } else {
            Some(Err(AdminError::StaleRequest {
                client_id: client,
                seq,
                last_seq: last,
            }))
        };
        if expected.as_ref() != Some(reply) {
            return Err(format!(
                "request {seq} of client {client} (last executed {last}) got {reply:?}, expected {expected:?}"
            ));
        }
        Ok(false)
    }

    /// Returns the reply `(client, seq)` got when it executed.
    fn first_reply(&self, client: u64, seq: u64) -> Option<&RecordedReply> {
        self.first.get(&(client, seq))
    }
}

/// Checks one executed request against what the controller promises from
/// the latest configuration `before`: a Join of absent groups, a Leave of
/// present ones and a Move to a present group succeed, making configuration
/// `before.num + 1` with exactly the groups asked, balanced and minimal (a
/// Move changing only its shard); anything else is refused and makes none.
fn check_execution(
    before: &Config,
    created: Option<&Config>,
    command: &Command,
    reply: &RecordedReply,
) -> Result<(), Violation> {
    let present = |gid: &GroupId| before.groups.contains_key(gid);
    let (allowed, groups) = match command {
        Command::Join { groups } => {
            let mut after = before.groups.clone();
            after.extend(groups.clone());
            (!groups.is_empty() && !groups.keys().any(present), after)
        }
        Command::Leave { gids } => {
            let mut after = before.groups.clone();
            gids.iter().for_each(|gid| {
                after.remove(gid);
            });
            let distinct = gids.iter().collect::<BTreeSet<_>>().len() == gids.len();
            (
                !gids.is_empty() && distinct && gids.iter().all(present),
                after,
            )
        }
        Command::Move { shard, gid } => {
            (shard.0 < SIM_SHARDS && present(gid), before.groups.clone())
        }
    };
    let on = |invariant, why: String| {
        violation(
            invariant,
            format!("{command:?} on configuration {}: {why}", before.num),
        )
    };
    match (allowed, created, reply) {
        (true, Some(after), Ok(num)) if *num == after.num && after.num == before.num.next() => {
            if after.groups != groups {
                let made: Vec<&GroupId> = after.groups.keys().collect();
                let asked: Vec<&GroupId> = groups.keys().collect();
                return Err(on(
                    "controller_semantics",
                    format!("made groups {made:?}, asked for {asked:?}"),
                ));
            }
            check_step(before, after, command).map_err(|why| on("balanced_minimal", why))
        }
        (false, None, Err(_)) => Ok(()),
        _ => Err(on(
            "controller_semantics",
            format!(
                "allowed: {allowed}, made {:?}, answered {reply:?}",
                created.map(|config| config.num)
            ),
        )),
    }
}

/// Checks the shard table of `after`, made by `command` from `before`.
fn check_step(before: &Config, after: &Config, command: &Command) -> Result<(), String> {
    match command {
        Command::Move { shard, gid } => {
            let moved = moved_count(&before.shards, &after.shards);
            match after.owner(*shard) == Some(*gid) && moved <= 1 {
                true => Ok(()),
                false => Err(format!(
                    "Move made {:?} from {:?}",
                    after.shards, before.shards
                )),
            }
        }
        Command::Join { .. } | Command::Leave { .. } => {
            let groups: BTreeSet<GroupId> = after.groups.keys().copied().collect();
            check_rebalanced(&before.shards, &after.shards, &groups)
        }
    }
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
                    held.session_count(),
                    replayed.history().len(),
                    replayed.session_count()
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
