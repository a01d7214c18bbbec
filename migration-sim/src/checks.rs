//! The migration protocol's promises, checked on the groups' committed
//! states ([`crate::committed`]) after every step, and at the end of a
//! seed once every fault has healed.
//!
//! After every step:
//! - one server per shard: at most one group serves a shard (`Serving` or
//!   `Cleaning` in a configuration that gives it the shard);
//! - no shard lost: a shard whose data some group has held is held by some
//!   group (`Serving`, `Sending` or `Cleaning`) from then on;
//! - sessions travel: the group serving a shard holds, for every client,
//!   a session at least as recent as the client's last acknowledged write
//!   in that shard;
//! - each write applies at most once: no group executes a client write
//!   (each writes a unique value) that any group executed before;
//! - no acknowledged write lost: the value of a key at the group serving
//!   it holds every acknowledged write executed since the key's last Put
//!   (the [`WriteLedger`]);
//! - pull progress is true: the bytes a group reports installed for a
//!   shard it pulls are the bytes of that shard's records it holds (what
//!   `kvctl status` shows as moved).
//!
//! At the end, after healing ([`converged`]): every group at the latest
//! configuration; every shard `Serving` at its owner; no group holding
//! data or sessions of a shard it does not hold (every moved shard
//! deleted at its old owner). Then [`check_history`]: no value holds a
//! write twice, and the clients' history, with a final read of every key,
//! is linearizable.

use std::collections::{BTreeMap, BTreeSet};

use linearizability::{CheckResult, KvOutput, Operation, check_kv_history};
use proto::config::{Config, GroupId, ShardId};
use raft::sim::invariants::Violation;
use shardctrler::sim::SIM_SHARDS;
use shardkv::machine::ShardData;
use shardkv::shards::ShardState;

use bytes::Bytes;

use crate::clients::{KvClients, shard_of};
use crate::committed::{Committed, Executed};

/// The linearizability search budget per key.
const SEARCH_BUDGET: u64 = 2_000_000;

fn violation(invariant: &'static str, detail: String) -> Violation {
    Violation { invariant, detail }
}

fn shards() -> impl Iterator<Item = ShardId> {
    (0..SIM_SHARDS).map(ShardId)
}

/// What the step checks remember between steps.
#[derive(Debug, Default)]
pub struct StepChecks {
    /// Shards whose data some group has held.
    held_ever: BTreeSet<ShardId>,
    /// Every write executed and acknowledged.
    pub ledger: WriteLedger,
}

/// The client writes every group executed, in the order each key got
/// them (one group serves a key at a time), and those acknowledged.
///
/// Invariant: `since_put[key]` holds the values executed on `key` since
/// its last Put (that Put's included); `required[key]` those of them
/// acknowledged.
#[derive(Debug, Default)]
pub struct WriteLedger {
    executed: BTreeSet<Bytes>,
    since_put: BTreeMap<Bytes, BTreeSet<Bytes>>,
    required: BTreeMap<Bytes, BTreeSet<Bytes>>,
    /// Writes executed on each key.
    versions: BTreeMap<Bytes, u64>,
    /// The group, key version and value length last checked, by key.
    checked: BTreeMap<Bytes, (GroupId, u64, usize)>,
}

impl WriteLedger {
    /// Records a write a group executed; refuses one executed before.
    pub fn executed(&mut self, gid: GroupId, write: Executed) -> Result<(), Violation> {
        if !self.executed.insert(write.value.clone()) {
            return Err(violation(
                "each write applies at most once",
                format!(
                    "group {gid} executed the write of {:?} to key {:?} again",
                    write.value, write.key
                ),
            ));
        }
        *self.versions.entry(write.key.clone()).or_insert(0) += 1;
        let since_put = self.since_put.entry(write.key.clone()).or_default();
        if write.put {
            since_put.clear();
            self.required.remove(&write.key);
        }
        since_put.insert(write.value);
        Ok(())
    }

    /// Records an acknowledged write: its value must stay in the key's
    /// value until a later Put.
    pub fn acknowledged(&mut self, key: Bytes, value: Bytes) {
        if self
            .since_put
            .get(&key)
            .is_some_and(|values| values.contains(&value))
        {
            self.required.entry(key).or_default().insert(value);
        }
    }

    /// Checks each key whose value or server changed since the last
    /// check: its server's value holds every acknowledged write since the
    /// key's last Put.
    fn check(&mut self, committed: &BTreeMap<GroupId, Committed>) -> Result<(), Violation> {
        for (key, required) in &self.required {
            let shard = shard_of(key);
            let Some((gid, group)) = committed
                .iter()
                .find(|(_, group)| group.machine().table().route(shard).is_ok())
            else {
                continue;
            };
            let value = group.machine().data().get(shard, key).unwrap_or_default();
            let version = self.versions.get(key).copied().unwrap_or(0);
            let seen = (*gid, version, value.len());
            if self.checked.get(key) == Some(&seen) {
                continue;
            }
            self.checked.insert(key.clone(), seen);
            let text = String::from_utf8_lossy(&value);
            let held: BTreeSet<&str> = text.split_terminator(';').collect();
            let lost = required.iter().find(|written| {
                let written = String::from_utf8_lossy(written);
                !held.contains(written.trim_end_matches(';'))
            });
            if let Some(lost) = lost {
                return Err(violation(
                    "no acknowledged write lost",
                    format!(
                        "group {gid} serves key {key:?} as {text:?} without the acknowledged write {lost:?}"
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl StepChecks {
    /// Checks the committed states after one step.
    pub fn check(
        &mut self,
        committed: &BTreeMap<GroupId, Committed>,
        clients: &KvClients,
    ) -> Result<(), Violation> {
        self.ledger.check(committed)?;
        for (gid, group) in committed {
            check_pull_progress(*gid, group)?;
        }
        for shard in shards() {
            let servers: Vec<GroupId> = committed
                .iter()
                .filter(|(_, group)| group.machine().table().route(shard).is_ok())
                .map(|(gid, _)| *gid)
                .collect();
            if servers.len() > 1 {
                return Err(violation(
                    "one server per shard",
                    format!(
                        "shard {shard} is served by groups {servers:?}: {}",
                        describe(committed, shard)
                    ),
                ));
            }
            let held = committed.values().any(|group| {
                matches!(
                    group.machine().table().state(shard),
                    Some(
                        ShardState::Serving
                            | ShardState::Sending { .. }
                            | ShardState::Cleaning { .. }
                    )
                )
            });
            if held {
                self.held_ever.insert(shard);
            } else if self.held_ever.contains(&shard) {
                return Err(violation(
                    "no shard lost",
                    format!(
                        "no group holds the data of shard {shard}: {}",
                        describe(committed, shard)
                    ),
                ));
            }
            if let Some(server) = servers.first() {
                check_sessions(*server, &committed[server], shard, clients)?;
            }
        }
        Ok(())
    }
}

/// Checks that each shard `group` pulls has installed exactly the bytes of
/// records it holds of that shard (a pulled shard starts empty, and only
/// its chunks write to it until it is installed).
fn check_pull_progress(gid: GroupId, group: &Committed) -> Result<(), Violation> {
    let machine = group.machine();
    for (shard, position) in machine.installing() {
        let held: usize = machine
            .data()
            .shard(*shard)
            .map(|(key, value)| key.len() + value.len())
            .sum();
        if position.bytes != held as u64 {
            return Err(violation(
                "pull progress is true",
                format!(
                    "group {gid} reports {} bytes of shard {shard} installed but holds {held}",
                    position.bytes
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that `server`, serving `shard`, holds every client's last
/// acknowledged write in it.
fn check_sessions(
    server: GroupId,
    group: &Committed,
    shard: ShardId,
    clients: &KvClients,
) -> Result<(), Violation> {
    let sessions: BTreeMap<u64, u64> = group
        .machine()
        .sessions_of(shard)
        .into_iter()
        .map(|(client, session)| (client, session.last_seq))
        .collect();
    for (&(client, acked_shard), &seq) in &clients.acked {
        if acked_shard != shard {
            continue;
        }
        let held = sessions.get(&client).copied().unwrap_or(0);
        if held < seq {
            return Err(violation(
                "sessions travel with their shard",
                format!(
                    "group {server} serves shard {shard} with client {client}'s session at seq {held}, \
                     but the client's write {seq} there was acknowledged"
                ),
            ));
        }
    }
    Ok(())
}

/// Describes every group's state of `shard`, for a violation.
fn describe(committed: &BTreeMap<GroupId, Committed>, shard: ShardId) -> String {
    committed
        .iter()
        .map(|(gid, group)| {
            let table = group.machine().table();
            format!(
                "group {gid} in configuration {}: {:?}",
                table.config().num,
                table.state(shard)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Describes each group's committed configuration and the shards it
/// holds that are not `Serving` (for a liveness failure).
pub fn describe_groups(committed: &BTreeMap<GroupId, Committed>) -> String {
    committed
        .iter()
        .map(|(gid, group)| {
            let table = group.machine().table();
            let moving: Vec<String> = table
                .states()
                .filter(|(_, state)| *state != ShardState::Serving)
                .map(|(shard, state)| format!("{shard}:{state:?}"))
                .collect();
            format!(
                "group {gid} at {} moving [{}]",
                table.config().num,
                moving.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Returns why the groups have not converged on `latest`, or `None` once
/// they have: every group at `latest`, every shard `Serving` at its owner,
/// parked shards (no owner) at one group, and no data or sessions of a
/// shard left at a group that does not hold it.
pub fn converged(committed: &BTreeMap<GroupId, Committed>, latest: &Config) -> Option<String> {
    for (gid, group) in committed {
        let machine = group.machine();
        let table = machine.table();
        if table.config().num != latest.num {
            return Some(format!(
                "group {gid} is at configuration {}, the latest is {}",
                table.config().num,
                latest.num
            ));
        }
        for shard in shards() {
            let owner = latest.owner(shard).unwrap_or(GroupId(0));
            let state = table.state(shard);
            let expected = match (owner == *gid, owner.is_unassigned()) {
                (true, _) => state == Some(ShardState::Serving),
                (false, true) => {
                    matches!(state, None | Some(ShardState::Sending { to: GroupId(0) }))
                }
                (false, false) => state.is_none(),
            };
            if !expected {
                return Some(format!(
                    "group {gid} holds shard {shard} as {state:?}, its owner is group {owner}"
                ));
            }
            let leftover = state.is_none()
                && (machine.data().shard(shard).next().is_some()
                    || !machine.sessions_of(shard).is_empty());
            if leftover {
                return Some(format!(
                    "group {gid} keeps data or sessions of shard {shard}, which it no longer holds"
                ));
            }
        }
    }
    None
}

/// Checks the clients' history once the groups converged: `final_reads`
/// (each key's value at its owner) are added as reads after everything
/// else; no value may hold one write twice, and the history must be
/// linearizable. Returns whether the search was inconclusive.
pub fn check_history(
    clients: &mut KvClients,
    final_reads: Vec<(String, String)>,
) -> Result<bool, Violation> {
    for (key, value) in final_reads {
        let call = clients.tick_clock();
        let ret = clients.tick_clock();
        clients.record(Operation {
            client: 0,
            key,
            input: linearizability::KvInput::Get,
            output: Some(KvOutput::Value(value)),
            call,
            ret: Some(ret),
        });
    }
    let history = clients.history();
    for operation in &history {
        if let Some(KvOutput::Value(value)) = &operation.output {
            let mut seen = BTreeSet::new();
            if let Some(twice) = value
                .split_terminator(';')
                .find(|token| !seen.insert(*token))
            {
                return Err(violation(
                    "each write applies at most once",
                    format!(
                        "key {} read {value:?}: write {twice} applied twice",
                        operation.key
                    ),
                ));
            }
        }
    }
    match check_kv_history(&history, SEARCH_BUDGET) {
        CheckResult::Ok => Ok(false),
        CheckResult::Inconclusive { .. } => Ok(true),
        CheckResult::Violation { key, operations } => Err(violation(
            "linearizability",
            format!(
                "history of key {key} is not linearizable ({} operations): {operations:?}",
                operations.len()
            ),
        )),
    }
}
