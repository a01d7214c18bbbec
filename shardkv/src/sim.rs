//! The group's state machine under the deterministic simulator (feature
//! `sim`): the real [`GroupMachine`] over [`MemData`], applying the real
//! encoded [`GroupCommand`]s, as a [`SimMachine`] that Raft groups of the
//! simulator replicate. The whole migration protocol runs on it in
//! `kv-tests`' migration simulation (the controller's machine is there
//! too; this crate does not know the controller).
//!
//! The snapshot is the state in the encodings the server stores: the
//! table record (`store_rocks::table_record`), then one `ShardChunk`
//! message per shard with data or sessions, each length-prefixed, read in
//! byte ranges.
//!
//! Invariants:
//! - The machine keeps its group's id and shard count through `clear` (a
//!   restore), as a server keeps its `--gid`.
//! - A chunk cursor is a byte offset (8 bytes, big-endian; empty is 0)
//!   into the encoding; `restore` holds exactly the bytes of the chunks
//!   written so far, so a chunk that does not start at its length is
//!   refused.
//! - `encoded` caches the encoding of `machine`, dropped by every change;
//!   it never takes part in equality, and the digest is a hash of it.

use std::cell::OnceCell;
use std::hash::{DefaultHasher, Hash, Hasher};

use bytes::{Buf, Bytes};
use prost::Message;
use proto::config::{GroupId, ShardId};
use proto::shardkv::v1 as pb;
use raft::core::{LogIndex, SnapshotChunk};
use raft::sim::app::{SimMachine, append_byte_range, read_byte_range};

use crate::codec::{chunk_from_proto, chunk_to_proto};
use crate::machine::{GroupCommand, GroupMachine, MemData, ShardChunk, ShardData};
use crate::store_rocks::{decode_table, table_record};

/// One replica's group state, as the simulator holds it.
#[derive(Clone, Debug)]
pub struct GroupSimMachine {
    gid: GroupId,
    shard_count: u32,
    machine: GroupMachine<MemData>,
    /// The snapshot bytes of the restore under way.
    restore: Vec<u8>,
    encoded: OnceCell<Bytes>,
}

impl PartialEq for GroupSimMachine {
    fn eq(&self, other: &GroupSimMachine) -> bool {
        self.machine == other.machine && self.restore == other.restore
    }
}

impl GroupSimMachine {
    /// Returns the blank machine of group `gid` with `shard_count` shards.
    pub fn new(gid: GroupId, shard_count: u32) -> GroupSimMachine {
        GroupSimMachine {
            gid,
            shard_count,
            machine: GroupMachine::new(gid, shard_count, MemData::default()),
            restore: Vec::new(),
            encoded: OnceCell::new(),
        }
    }

    /// Returns the group's machine.
    pub fn machine(&self) -> &GroupMachine<MemData> {
        &self.machine
    }

    /// Returns the snapshot encoding of the state, encoded once per change.
    fn encoded(&self) -> &Bytes {
        self.encoded.get_or_init(|| encode(&self.machine))
    }
}

/// Encodes the machine: the table record, then each shard's records and
/// sessions, each message prefixed by its length (4 bytes, big-endian).
fn encode(machine: &GroupMachine<MemData>) -> Bytes {
    let mut out = Vec::new();
    push_framed(&mut out, &table_record(machine));
    for index in 0..machine.table().config().shard_count() {
        let shard = ShardId(index as u32);
        let records: Vec<(Bytes, Bytes)> = machine
            .data()
            .shard(shard)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let sessions = machine.sessions_of(shard);
        if records.is_empty() && sessions.is_empty() {
            continue;
        }
        let chunk = ShardChunk {
            shard,
            num: machine.table().config().num,
            cursor: Bytes::new(),
            next_cursor: Bytes::new(),
            records,
            sessions,
            last: true,
        };
        push_framed(&mut out, &chunk_to_proto(&chunk).encode_to_vec());
    }
    Bytes::from(out)
}

fn push_framed(out: &mut Vec<u8>, message: &[u8]) {
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
}

/// Decodes what [`encode`] wrote for group `gid`.
fn decode(
    gid: GroupId,
    shard_count: u32,
    mut bytes: &[u8],
) -> Result<GroupMachine<MemData>, String> {
    let mut next = || -> Result<Option<Vec<u8>>, String> {
        if bytes.is_empty() {
            return Ok(None);
        }
        if bytes.len() < 4 {
            return Err(format!("{} trailing bytes", bytes.len()));
        }
        let length = bytes.get_u32() as usize;
        if bytes.len() < length {
            return Err(format!(
                "a message of {length} bytes with {} left",
                bytes.len()
            ));
        }
        let (message, rest) = bytes.split_at(length);
        bytes = rest;
        Ok(Some(message.to_vec()))
    };
    let table = next()?.ok_or("no table record")?;
    let (table, installing) =
        decode_table(&table, gid, shard_count).map_err(|error| error.to_string())?;
    let mut data = MemData::default();
    let mut sessions = Vec::new();
    while let Some(raw) = next()? {
        let wire = pb::ShardChunk::decode(&raw[..]).map_err(|error| error.to_string())?;
        let chunk = chunk_from_proto(wire);
        for (key, value) in chunk.records {
            data.put(chunk.shard, key, value);
        }
        for (client, session) in chunk.sessions {
            sessions.push((chunk.shard, client, session));
        }
    }
    Ok(GroupMachine::from_parts(
        shard_count,
        table,
        sessions,
        installing,
        data,
    ))
}

impl SimMachine for GroupSimMachine {
    fn apply(&mut self, _index: LogIndex, data: &[u8]) {
        // A new leader's empty entry and membership changes carry no
        // group command.
        let Ok(command) = GroupCommand::decode(data) else {
            return;
        };
        let _applied = self.machine.apply(command);
        self.machine.take_changes();
        self.encoded = OnceCell::new();
    }

    fn clear(&mut self) {
        *self = GroupSimMachine::new(self.gid, self.shard_count);
    }

    fn write_chunk(&mut self, chunk: &SnapshotChunk) -> Result<(), String> {
        append_byte_range(&mut self.restore, chunk)
    }

    fn finish_restore(&mut self) -> Result<(), String> {
        let machine = decode(self.gid, self.shard_count, &self.restore)
            .map_err(|why| format!("restored snapshot does not decode: {why}"))?;
        *self = GroupSimMachine::new(self.gid, self.shard_count);
        self.machine = machine;
        Ok(())
    }

    fn read_chunk(&self, cursor: &[u8], bytes_max: u64) -> Option<(Bytes, Bytes, bool)> {
        read_byte_range(self.encoded(), cursor, bytes_max)
    }

    fn digest(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.encoded().hash(&mut hasher);
        hasher.finish()
    }
}

#[cfg(test)]
mod tests {
    use raft::core::{SnapshotMeta, Term};
    use raft::sim::app::{AppState, AppWrite};

    use super::*;
    use crate::ops::Write;
    use crate::shards::NextConfig;
    use proto::config::{Config, ConfigNum};

    fn config_entry(num: u64, owner: u64) -> Bytes {
        let shards = vec![GroupId(owner); 4];
        let config = Config {
            num: ConfigNum(num),
            shards,
            groups: [(GroupId(owner), vec!["h:1".to_string()])].into(),
        };
        Bytes::from(
            GroupCommand::Config(NextConfig {
                config,
                holders: Default::default(),
            })
            .encode(),
        )
    }

    fn put(client: u64, seq: u64, key: &str) -> Bytes {
        let write = Write::Put {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::from_static(b"v"),
        };
        Bytes::from(
            GroupCommand::Write {
                client_id: client,
                seq,
                timestamp_ms: 1,
                write,
            }
            .encode(),
        )
    }

    // Goal: a snapshot read in small byte ranges restores an equal
    // machine (data, sessions, table) of the same group, and a chunk out
    // of place is refused.
    #[test]
    fn a_snapshot_read_in_pieces_restores_an_equal_machine() {
        let mut source = GroupSimMachine::new(GroupId(7), 4);
        source.apply(LogIndex(2), &config_entry(1, 7));
        for (seq, key) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            source.apply(LogIndex(3 + seq as u64), &put(9, seq as u64 + 1, key));
        }
        let stored: usize = (0..4)
            .map(|shard| source.machine().data().shard(ShardId(shard)).count())
            .sum();
        assert_eq!(stored, 5);
        let meta = SnapshotMeta {
            index: LogIndex(7),
            term: Term(1),
            membership: Default::default(),
        };
        let mut target = AppState::at(GroupSimMachine::new(GroupId(7), 4), LogIndex(0));
        target
            .write(&AppWrite::BeginRestore {
                index: meta.index,
                term: meta.term,
            })
            .expect("begins");
        let mut cursor = Bytes::new();
        loop {
            let (data, next, last) = source.read_chunk(&cursor, 7).expect("a chunk");
            let chunk = SnapshotChunk {
                meta: meta.clone(),
                cursor: cursor.clone(),
                next_cursor: next.clone(),
                data,
                last,
            };
            if last {
                target
                    .write(&AppWrite::FinishRestore(chunk))
                    .expect("finishes");
                break;
            }
            target
                .write(&AppWrite::RestoreChunk(chunk))
                .expect("continues");
            cursor = next;
        }
        assert_eq!(target.machine, source);
        assert_eq!(target.machine.digest(), source.digest());
        let mut wrong = GroupSimMachine::new(GroupId(7), 4);
        let (data, next, last) = source.read_chunk(&8u64.to_be_bytes(), 7).expect("a chunk");
        let out_of_place = SnapshotChunk {
            meta,
            cursor: Bytes::copy_from_slice(&8u64.to_be_bytes()),
            next_cursor: next,
            data,
            last,
        };
        assert!(wrong.write_chunk(&out_of_place).is_err());
    }
}
