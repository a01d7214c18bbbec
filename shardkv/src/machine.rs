//! The group's replicated state machine, pure (DESIGN.md "Reconfiguration
//! in a group", "Clients and semantics"): the shard table, the clients'
//! sessions kept per shard, and the data, applied entry by entry in log
//! order. The server runs it over RocksDB; tests and the simulator over
//! [`MemData`].
//!
//! Invariants:
//! - A write applies only to a shard the table serves (`Serving` or
//!   `Cleaning` in the current configuration), at most once per (client,
//!   seq) in that shard's sessions; a refused write changes nothing.
//! - A shard's sessions travel with it: installed with its data, deleted
//!   with it.
//! - An install chunk applies only to a shard `Pulling` in the chunk's
//!   configuration, and only at the position the previous chunk ended, so
//!   a repeated or stale chunk changes nothing.
//! - Sessions unused for longer than [`SESSION_TTL_MS`] at an entry's
//!   logged time are removed before the entry applies, on every replica
//!   alike.
//! - Every change to the sessions, the table or the install positions
//!   since the last [`GroupMachine::take_changes`] is in [`Changes`], so a
//!   store persists exactly what an entry changed, in the entry's batch
//!   (the data's changes go through [`ShardData`] itself).

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use proto::config::{ConfigNum, GroupId, ShardId};
use raft::session::{Executed, SESSION_TTL_MS, Session, SessionTable};

use crate::ops::{VALUE_BYTES_MAX, Write, WriteReply};
use crate::shards::{ConfigRefused, NextConfig, NotServed, ShardTable};

/// The group's stored data, by shard: RocksDB's `data` column family on a
/// server, a map in tests and the simulator.
pub trait ShardData {
    /// Returns the value of `key` in `shard`.
    fn get(&self, shard: ShardId, key: &[u8]) -> Option<Bytes>;
    /// Sets `key` in `shard`.
    fn put(&mut self, shard: ShardId, key: Bytes, value: Bytes);
    /// Removes `key` from `shard`.
    fn delete(&mut self, shard: ShardId, key: &[u8]);
    /// Removes every key of `shard`.
    fn delete_shard(&mut self, shard: ShardId);
}

/// [`ShardData`] in memory, ordered by shard then key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemData {
    entries: BTreeMap<(ShardId, Bytes), Bytes>,
}

impl MemData {
    /// Returns the keys and values of `shard`, in key order.
    pub fn shard(&self, shard: ShardId) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.shard_from(shard, &[])
    }

    /// Returns the keys and values of `shard` from `start` on, in key
    /// order.
    pub fn shard_from(
        &self,
        shard: ShardId,
        start: &[u8],
    ) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.entries
            .range((shard, Bytes::copy_from_slice(start))..)
            .take_while(move |((s, _), _)| *s == shard)
            .map(|((_, key), value)| (key, value))
    }
}

impl GroupMachine<MemData> {
    /// Reads the chunk of `shard` at `cursor` for its new owner `to` in
    /// move `num`, as the holder's transfer service does from RocksDB:
    /// `None` unless [`ShardTable::sends`] the shard to `to` in `num`.
    pub fn read_chunk(
        &self,
        to: GroupId,
        shard: ShardId,
        num: ConfigNum,
        cursor: &[u8],
        bytes_max: u64,
    ) -> Option<ShardChunk> {
        if !self.table.sends(shard, to, num) {
            return None;
        }
        let records = self
            .data
            .shard_from(shard, cursor)
            .map(|(key, value)| (key.clone(), value.clone()));
        let (records, next_cursor, last) = cut_chunk(records, cursor, bytes_max);
        Some(ShardChunk {
            shard,
            num,
            cursor: Bytes::copy_from_slice(cursor),
            next_cursor,
            records,
            sessions: if last {
                self.sessions_of(shard)
            } else {
                Vec::new()
            },
            last,
        })
    }
}

impl ShardData for MemData {
    fn get(&self, shard: ShardId, key: &[u8]) -> Option<Bytes> {
        self.entries
            .get(&(shard, Bytes::copy_from_slice(key)))
            .cloned()
    }

    fn put(&mut self, shard: ShardId, key: Bytes, value: Bytes) {
        self.entries.insert((shard, key), value);
    }

    fn delete(&mut self, shard: ShardId, key: &[u8]) {
        self.entries.remove(&(shard, Bytes::copy_from_slice(key)));
    }

    fn delete_shard(&mut self, shard: ShardId) {
        let keys: Vec<(ShardId, Bytes)> = self
            .shard(shard)
            .map(|(key, _)| (shard, key.clone()))
            .collect();
        for key in keys {
            self.entries.remove(&key);
        }
    }
}

/// Cuts the chunk of a shard that starts at `cursor` from `records`, the
/// shard's keys and values in key order from `cursor` on: at most
/// `bytes_max` bytes of keys and values, but at least one record. Returns
/// the records, the next chunk's cursor (just past the last key taken, or
/// the first key left out) and whether nothing is left after it.
pub fn cut_chunk(
    records: impl Iterator<Item = (Bytes, Bytes)>,
    cursor: &[u8],
    bytes_max: u64,
) -> (Vec<(Bytes, Bytes)>, Bytes, bool) {
    let mut chunk: Vec<(Bytes, Bytes)> = Vec::new();
    let mut bytes = 0u64;
    for (key, value) in records {
        let size = (key.len() + value.len()) as u64;
        if !chunk.is_empty() && bytes + size > bytes_max {
            return (chunk, key, false);
        }
        bytes += size;
        chunk.push((key, value));
    }
    // Nothing is left: the next cursor is just past the last key taken.
    let next_cursor = match chunk.last() {
        Some((key, _)) => {
            let mut after = BytesMut::with_capacity(key.len() + 1);
            after.extend_from_slice(key);
            after.extend_from_slice(&[0]);
            after.freeze()
        }
        None => Bytes::copy_from_slice(cursor),
    };
    (chunk, next_cursor, true)
}

/// One chunk of a shard pulled from its previous holder, as the new
/// owner's log carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardChunk {
    /// The shard.
    pub shard: ShardId,
    /// The configuration the move belongs to.
    pub num: ConfigNum,
    /// Where the chunk starts (empty: the beginning).
    pub cursor: Bytes,
    /// Where the next chunk starts.
    pub next_cursor: Bytes,
    /// Keys and values, in key order.
    pub records: Vec<(Bytes, Bytes)>,
    /// The shard's client sessions (the last chunk carries them).
    pub sessions: Vec<(u64, Session<WriteReply>)>,
    /// Whether this is the last chunk.
    pub last: bool,
}

impl ShardChunk {
    /// Returns the bytes of the chunk's records: its keys and values.
    pub fn record_bytes(&self) -> u64 {
        self.records
            .iter()
            .map(|(key, value)| (key.len() + value.len()) as u64)
            .sum()
    }
}

/// How far the pull of one shard has come: where its next chunk starts,
/// and the bytes of records (keys and values) installed before it. Both
/// move only when a chunk that continues the pull applies, so every
/// replica holds the same position and it survives leader changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallPosition {
    /// Where the next chunk starts (empty: the beginning).
    pub cursor: Bytes,
    /// The bytes of records installed so far.
    pub bytes: u64,
}

/// One entry of the group's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupCommand {
    /// A client's write.
    Write {
        /// The client's session id.
        client_id: u64,
        /// The write's sequence number.
        seq: u64,
        /// The proposing leader's clock, ms since the Unix epoch.
        timestamp_ms: u64,
        /// The write.
        write: Write,
    },
    /// The next configuration.
    Config(NextConfig),
    /// A chunk of a shard being pulled.
    Install(ShardChunk),
    /// The new owner `to` installed `shard` as of `num`: delete it here.
    HandOver {
        /// The shard.
        shard: ShardId,
        /// Its new owner.
        to: GroupId,
        /// The configuration of the move.
        num: ConfigNum,
    },
    /// The previous holder deleted its copy of `shard` (move `num`).
    Cleaned {
        /// The shard.
        shard: ShardId,
        /// The configuration of the move.
        num: ConfigNum,
    },
}

/// Why a write was not applied (nothing changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteRefused {
    /// The shard is not served here now.
    NotServed(NotServed),
    /// Older than the client's last write in that shard: its reply is gone
    /// (the client moved on long ago).
    Stale {
        /// The client's last write.
        last_seq: u64,
    },
}

/// What applying one entry did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A write's reply (a repeat gets the first one).
    Write(Result<WriteReply, WriteRefused>),
    /// Whether the configuration applied.
    Config(Result<(), ConfigRefused>),
    /// Whether the chunk was installed (false: repeated or stale).
    Install(bool),
    /// Whether the shard was deleted (false: repeated, stale or
    /// misdirected).
    HandOver(bool),
    /// Whether the move finished (false: repeated or stale).
    Cleaned(bool),
}

/// What applying entries changed besides the data, for a store to write
/// in the same batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Sessions written (`Some`) or removed (`None`), by shard and client.
    pub sessions: BTreeMap<(ShardId, u64), Option<Session<WriteReply>>>,
    /// Whether the shard table changed.
    pub table: bool,
    /// Whether the install positions changed.
    pub installing: bool,
}

impl Changes {
    /// Returns whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty() && !self.table && !self.installing
    }
}

/// One replica's group state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMachine<D> {
    shard_count: u32,
    table: ShardTable,
    sessions: SessionTable<ShardId, WriteReply>,
    /// For each shard being pulled, how far its pull has come.
    installing: BTreeMap<ShardId, InstallPosition>,
    data: D,
    /// Changes since the last `take_changes`.
    changes: Changes,
}

impl<D: ShardData> GroupMachine<D> {
    /// Returns the state of group `gid` before any configuration, over
    /// `data`.
    pub fn new(gid: GroupId, shard_count: u32, data: D) -> GroupMachine<D> {
        GroupMachine {
            shard_count,
            table: ShardTable::new(gid, shard_count),
            sessions: SessionTable::new(),
            installing: BTreeMap::new(),
            data,
            changes: Changes::default(),
        }
    }

    /// Returns a machine as a store read it back: `table`, the sessions
    /// by shard and client, the install positions, over `data`.
    pub fn from_parts(
        shard_count: u32,
        table: ShardTable,
        sessions: impl IntoIterator<Item = (ShardId, u64, Session<WriteReply>)>,
        installing: BTreeMap<ShardId, InstallPosition>,
        data: D,
    ) -> GroupMachine<D> {
        let mut table_of_sessions = SessionTable::new();
        for (shard, client, session) in sessions {
            table_of_sessions.insert(shard, client, session);
        }
        GroupMachine {
            shard_count,
            table,
            sessions: table_of_sessions,
            installing,
            data,
            changes: Changes::default(),
        }
    }

    /// Returns the data, to write to (a store takes its batch).
    pub fn data_mut(&mut self) -> &mut D {
        &mut self.data
    }

    /// Returns and forgets the changes made since the last call.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// Returns the install positions, by shard.
    pub fn installing(&self) -> &BTreeMap<ShardId, InstallPosition> {
        &self.installing
    }

    /// Records that the session of `client` in `shard` changed.
    fn session_changed(&mut self, shard: ShardId, client: u64) {
        let session = self.sessions.get(&shard, client).cloned();
        self.changes.sessions.insert((shard, client), session);
    }

    /// Returns the shard table.
    pub fn table(&self) -> &ShardTable {
        &self.table
    }

    /// Returns the data.
    pub fn data(&self) -> &D {
        &self.data
    }

    /// Returns `client`'s session in `shard`, if it has one.
    pub fn session(&self, shard: ShardId, client: u64) -> Option<&Session<WriteReply>> {
        self.sessions.get(&shard, client)
    }

    /// Returns the sessions of `shard`, by client.
    pub fn sessions_of(&self, shard: ShardId) -> Vec<(u64, Session<WriteReply>)> {
        self.sessions
            .iter()
            .filter(|(scope, _, _)| **scope == shard)
            .map(|(_, client, session)| (client, session.clone()))
            .collect()
    }

    /// Returns the shard of `key`.
    pub fn shard_of(&self, key: &[u8]) -> ShardId {
        ShardId(proto::shard_of_key(key, self.shard_count))
    }

    /// Reads `key` if its shard is served here.
    ///
    /// # Errors
    ///
    /// [`NotServed`] when the shard is not served here now.
    pub fn read(&self, key: &[u8]) -> Result<Option<Bytes>, NotServed> {
        let shard = self.shard_of(key);
        self.table.route(shard)?;
        Ok(self.data.get(shard, key))
    }

    /// Applies one committed entry; entries carrying a time first expire
    /// idle sessions.
    pub fn apply(&mut self, command: GroupCommand) -> Applied {
        match command {
            GroupCommand::Write {
                client_id,
                seq,
                timestamp_ms,
                write,
            } => {
                for (shard, client) in self.sessions.expire(timestamp_ms, SESSION_TTL_MS) {
                    self.changes.sessions.insert((shard, client), None);
                }
                Applied::Write(self.write(client_id, seq, timestamp_ms, write))
            }
            GroupCommand::Config(next) => Applied::Config(self.configure(&next)),
            GroupCommand::Install(chunk) => Applied::Install(self.install(chunk)),
            GroupCommand::HandOver { shard, to, num } => {
                let handed = self.table.handed_over(shard, to, num);
                if handed {
                    self.data.delete_shard(shard);
                    for client in self.sessions.remove_scope(&shard) {
                        self.changes.sessions.insert((shard, client), None);
                    }
                    self.changes.table = true;
                }
                Applied::HandOver(handed)
            }
            GroupCommand::Cleaned { shard, num } => {
                let cleaned = self.table.cleaned(shard, num);
                self.changes.table |= cleaned;
                Applied::Cleaned(cleaned)
            }
        }
    }

    /// Applies a write at most once in its shard's sessions.
    fn write(
        &mut self,
        client_id: u64,
        seq: u64,
        now_ms: u64,
        write: Write,
    ) -> Result<WriteReply, WriteRefused> {
        let shard = self.shard_of(write.key());
        self.table.route(shard).map_err(WriteRefused::NotServed)?;
        let data = &mut self.data;
        let executed = self
            .sessions
            .execute_once(shard, client_id, seq, now_ms, || {
                execute(data, shard, write)
            });
        let session = match executed {
            Executed::New(session) | Executed::Repeat(session) => session.clone(),
            Executed::Stale { last_seq } => return Err(WriteRefused::Stale { last_seq }),
        };
        let reply = session.reply;
        self.changes
            .sessions
            .insert((shard, client_id), Some(session));
        Ok(reply)
    }
    /// Moves to the next configuration; each shard now pulled starts at
    /// the beginning.
    fn configure(&mut self, next: &NextConfig) -> Result<(), ConfigRefused> {
        self.table.apply_config(next)?;
        self.changes.table = true;
        self.changes.installing = true;
        self.installing = self
            .table
            .pulling()
            .map(|shard| (shard, InstallPosition::default()))
            .collect();
        Ok(())
    }

    /// Installs one chunk if it continues the pull of its shard.
    fn install(&mut self, chunk: ShardChunk) -> bool {
        let position = self.installing.get(&chunk.shard);
        let continues = position.is_some_and(|position| position.cursor == chunk.cursor)
            && chunk.num == self.table.config().num;
        if !continues {
            return false;
        }
        let shard = chunk.shard;
        let bytes = position.map_or(0, |position| position.bytes) + chunk.record_bytes();
        for (key, value) in chunk.records {
            self.data.put(shard, key, value);
        }
        for (client, session) in chunk.sessions {
            self.sessions.insert(shard, client, session);
            self.session_changed(shard, client);
        }
        self.changes.installing = true;
        if chunk.last {
            self.changes.table = true;
            self.installing.remove(&shard);
            let installed = self.table.installed(shard, chunk.num);
            debug_assert!(installed, "a shard being installed is Pulling");
        } else {
            let position = InstallPosition {
                cursor: chunk.next_cursor,
                bytes,
            };
            self.installing.insert(shard, position);
        }
        true
    }
}

/// Executes a write on `data`, in `shard`.
fn execute<D: ShardData>(data: &mut D, shard: ShardId, write: Write) -> WriteReply {
    match write {
        Write::Put { key, value } => data.put(shard, key, value),
        Write::Append { key, value } => {
            let old = data.get(shard, &key).unwrap_or_default();
            let length = old.len() + value.len();
            if length > VALUE_BYTES_MAX {
                return WriteReply::ValueTooLong { length };
            }
            let mut joined = BytesMut::with_capacity(length);
            joined.extend_from_slice(&old);
            joined.extend_from_slice(&value);
            data.put(shard, key, joined.freeze());
        }
        Write::Delete { key } => data.delete(shard, &key),
    }
    WriteReply::Ok
}

#[cfg(test)]
#[path = "machine_test.rs"]
mod tests;
