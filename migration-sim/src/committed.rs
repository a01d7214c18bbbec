//! Each group's committed state: the group's machine replaying, in log
//! order, the entries its replicas applied (every applied entry is
//! committed, and state machine safety, checked by the simulator, makes
//! every replica apply the same payload at an index). Unlike a replica's
//! state it never goes back: a power failure of every replica loses
//! applied state, never a committed entry.
//!
//! It also reports each client write it executes for the first time
//! ([`Executed`]), in log order, for the write ledger of the checks.
//!
//! Invariant: `machine` has applied exactly the entries up to `applied`,
//! and `pending` holds only entries after `applied + 1`'s gap.

use std::collections::BTreeMap;

use bytes::Bytes;
use proto::config::GroupId;
use raft::core::{EntryKind, LogIndex};
use raft::sim::cluster::NodeEvent;
use shardctrler::sim::SIM_SHARDS;
use shardkv::machine::{Applied, GroupCommand, GroupMachine, MemData};
use shardkv::ops::Write;

/// The bootstrap prefix every group's log starts with (no group command).
const BOOTSTRAP_INDEX: LogIndex = LogIndex(1);

/// A client write a group executed (not a repeat, not refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// The key written.
    pub key: Bytes,
    /// The value written (a Put's) or appended.
    pub value: Bytes,
    /// Whether it was a Put (it replaces what was appended before).
    pub put: bool,
}

/// One group's committed state.
#[derive(Clone, Debug)]
pub struct Committed {
    machine: GroupMachine<MemData>,
    applied: LogIndex,
    pending: BTreeMap<LogIndex, Bytes>,
    /// Writes executed since the last [`Committed::take_executed`].
    executed: Vec<Executed>,
    /// Shards installed whole (last chunks applied).
    pub installs: u64,
}

impl Committed {
    /// Returns the committed state of group `gid` before any entry.
    pub fn new(gid: GroupId) -> Committed {
        Committed {
            machine: GroupMachine::new(gid, SIM_SHARDS, MemData::default()),
            applied: BOOTSTRAP_INDEX,
            pending: BTreeMap::new(),
            executed: Vec::new(),
            installs: 0,
        }
    }

    /// Returns the committed machine.
    pub fn machine(&self) -> &GroupMachine<MemData> {
        &self.machine
    }

    /// Returns and forgets the writes executed since the last call.
    pub fn take_executed(&mut self) -> Vec<Executed> {
        std::mem::take(&mut self.executed)
    }

    /// Takes the entries the group's replicas applied, and applies those
    /// that continue the committed log.
    pub fn observe(&mut self, events: &[NodeEvent]) {
        for event in events {
            let NodeEvent::Applied { entry, .. } = event else {
                continue;
            };
            if entry.index <= self.applied {
                continue;
            }
            let payload = match entry.kind {
                EntryKind::Normal => entry.data.clone(),
                EntryKind::ConfChange => Bytes::new(),
            };
            self.pending.entry(entry.index).or_insert(payload);
        }
        while let Some(payload) = self.pending.remove(&self.applied.next()) {
            self.applied = self.applied.next();
            // A new leader's empty entry and membership changes carry no
            // group command.
            if let Ok(command) = GroupCommand::decode(payload) {
                self.apply(command);
            }
        }
    }

    /// Applies one command, counting and reporting what it did.
    fn apply(&mut self, command: GroupCommand) {
        let first_execution = match &command {
            GroupCommand::Write {
                client_id,
                seq,
                write,
                ..
            } => {
                let shard = self.machine.shard_of(write.key());
                let last = self
                    .machine
                    .sessions_of(shard)
                    .into_iter()
                    .find(|(client, _)| client == client_id)
                    .map_or(0, |(_, session)| session.last_seq);
                (last < *seq).then(|| write.clone())
            }
            GroupCommand::Install(chunk) if chunk.last => {
                self.installs += 1;
                None
            }
            _ => None,
        };
        let applied = self.machine.apply(command);
        self.machine.take_changes();
        if let (Some(write), Applied::Write(Ok(_))) = (first_execution, applied) {
            let (key, value, put) = match write {
                Write::Put { key, value } => (key, value, true),
                Write::Append { key, value } => (key, value, false),
                Write::Delete { key } => (key, Bytes::new(), true),
            };
            self.executed.push(Executed { key, value, put });
        }
    }
}
