//! Each group's committed state: the group's machine replaying, in log
//! order, the entries its replicas applied (every applied entry is
//! committed, and state machine safety, checked by the simulator, makes
//! every replica apply the same payload at an index). Unlike a replica's
//! state it never goes back: a power failure of every replica loses
//! applied state, never a committed entry.
//!
//! Invariant: `machine` has applied exactly the entries up to `applied`,
//! and `pending` holds only entries after `applied + 1`'s gap.

use std::collections::BTreeMap;

use bytes::Bytes;
use proto::config::GroupId;
use raft::core::{EntryKind, LogIndex};
use raft::sim::app::SimMachine;
use raft::sim::cluster::NodeEvent;
use shardctrler::sim::SIM_SHARDS;
use shardkv::machine::GroupCommand;
use shardkv::sim::GroupSimMachine;

/// The bootstrap prefix every group's log starts with (no group command).
const BOOTSTRAP_INDEX: LogIndex = LogIndex(1);

/// One group's committed state.
#[derive(Clone, Debug)]
pub struct Committed {
    machine: GroupSimMachine,
    applied: LogIndex,
    pending: BTreeMap<LogIndex, Bytes>,
    /// Shards installed whole (last chunks applied).
    pub installs: u64,
    /// Configurations applied.
    pub configs: u64,
}

impl Committed {
    /// Returns the committed state of group `gid` before any entry.
    pub fn new(gid: GroupId) -> Committed {
        Committed {
            machine: GroupSimMachine::new(gid, SIM_SHARDS),
            applied: BOOTSTRAP_INDEX,
            pending: BTreeMap::new(),
            installs: 0,
            configs: 0,
        }
    }

    /// Returns the committed machine.
    pub fn machine(&self) -> &shardkv::machine::GroupMachine<shardkv::machine::MemData> {
        self.machine.machine()
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
            match GroupCommand::decode(&payload) {
                Ok(GroupCommand::Install(chunk)) if chunk.last => self.installs += 1,
                Ok(GroupCommand::Config(_)) => self.configs += 1,
                _ => {}
            }
            self.machine.apply(self.applied, &payload);
        }
    }
}
