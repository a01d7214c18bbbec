//! The binary encodings of [`Request`] (a Raft log entry) and
//! [`ControllerState`] (a snapshot), written with std only.
//!
//! This module owns the byte format; docs/shardctrler.md repeats it for
//! readers outside the code. Integrity (crc32) is the Raft storage layer's
//! job (DESIGN.md, "Raft"); this layer only has to be unambiguous.
//!
//! Primitives: integers are fixed-width little endian (`u8`, `u16`, `u32`,
//! `u64`, `i64` as two's complement); a count or a string length is a `u64`;
//! a string is its length then its UTF-8 bytes. A map is its count then its
//! entries in strictly ascending key order.
//!
//! ```text
//! request  := "SCRQ" version:u16=2 client_id:u64 seq:u64 timestamp_ms:u64 command
//! command  := 1 groups                      -- Join
//!           | 2 count:u64 gid:u64*          -- Leave (order kept, repeats allowed)
//!           | 3 shard:u32 gid:u64           -- Move
//! groups   := count:u64 (gid:u64 count:u64 string*)*
//! snapshot := "SCSN" version:u16=2 shard_count:u32
//!             count:u64 config*  count:u64 (client_id:u64 session)*
//! config   := num:u64 gid:u64{shard_count} groups
//! session  := last_seq:u64 (0 num:u64 | 1 admin_error) used_ms:u64
//! config_record  := "SCCF" version:u16=1 shard_count:u32 config
//! session_record := "SCSS" version:u16=2 session
//! ```
//!
//! Version 1 of requests, snapshots and session records had no time: a
//! request without `timestamp_ms`, a session without `used_ms`. They are
//! still read (the time is 0), so a data dir or a log written by an older
//! build opens; this build writes version 2 only.
//!
//! The two records are what the server stores per configuration and per
//! client in RocksDB (`store_rocks.rs`), so an applied entry writes only
//! what it changed.
//!
//! Admin error tags are listed in [`encode_admin_error`].
//!
//! Invariants:
//!
//! - Decoding never panics and never allocates more than the input can
//!   fill: every count is checked against the bytes left before allocating.
//! - The encoding is canonical: if `decode(bytes)` of the current version
//!   succeeds, encoding the result gives `bytes` back (no trailing bytes,
//!   no unordered or repeated map keys, no unknown tags).
//! - A version is never reinterpreted: a new layout gets a new version, and
//!   old versions stay readable.

use std::collections::BTreeMap;

use crate::command::{Command, Request};
use crate::error::{AdminError, DecodeError};
use crate::state_machine::{ControllerState, RecordedReply, Session};
use crate::types::{Config, ConfigNum, GroupId, ShardId};

/// The magic that opens an encoded request.
const REQUEST_MAGIC: [u8; 4] = *b"SCRQ";
/// The magic that opens an encoded snapshot.
const SNAPSHOT_MAGIC: [u8; 4] = *b"SCSN";
/// The magic that opens a stored configuration record.
const CONFIG_MAGIC: [u8; 4] = *b"SCCF";
/// The magic that opens a stored session record.
const SESSION_MAGIC: [u8; 4] = *b"SCSS";
/// The request format this build writes; it reads 1 too.
const REQUEST_VERSION: u16 = 2;
/// The snapshot format this build writes; it reads 1 too.
const SNAPSHOT_VERSION: u16 = 2;
/// The configuration record format.
const CONFIG_VERSION: u16 = 1;
/// The session record format this build writes; it reads 1 too.
const SESSION_VERSION: u16 = 2;
/// The first version whose requests carry a time and whose sessions a last
/// use.
const TIMED_VERSION: u16 = 2;

const COMMAND_JOIN: u8 = 1;
const COMMAND_LEAVE: u8 = 2;
const COMMAND_MOVE: u8 = 3;
const REPLY_OK: u8 = 0;
const REPLY_ERR: u8 = 1;

/// Appends little-endian primitives to a byte vector.
#[derive(Default)]
struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    fn u16(&mut self, value: u16) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn i64(&mut self, value: i64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn count(&mut self, count: usize) {
        // usize is at most 64 bits on every target we build for.
        self.u64(count as u64);
    }

    fn string(&mut self, value: &str) {
        self.count(value.len());
        self.bytes.extend_from_slice(value.as_bytes());
    }

    fn header(&mut self, magic: [u8; 4], version: u16) {
        self.bytes.extend_from_slice(&magic);
        self.u16(version);
    }
}

/// Reads little-endian primitives from a byte slice, failing with a
/// [`DecodeError`] instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    /// Invariant: `offset <= bytes.len()`.
    offset: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, offset: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], DecodeError> {
        if length > self.remaining() {
            return Err(DecodeError::Truncated {
                offset: self.offset,
                needed: length - self.remaining(),
            });
        }
        let slice = &self.bytes[self.offset..self.offset + length];
        self.offset += length;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// Reads a count of items each at least `item_bytes_min` long, refusing
    /// one the remaining input cannot hold (so callers may preallocate).
    fn count(&mut self, item_bytes_min: usize) -> Result<usize, DecodeError> {
        let count = self.u64()?;
        let remaining = self.remaining();
        let fits = usize::try_from(count).ok().filter(|count| {
            count
                .checked_mul(item_bytes_min)
                .is_some_and(|bytes| bytes <= remaining)
        });
        fits.ok_or_else(|| {
            // Only reached when count * item_bytes_min > remaining.
            let shortfall = u128::from(count) * item_bytes_min as u128 - remaining as u128;
            DecodeError::Truncated {
                offset: self.offset,
                needed: usize::try_from(shortfall).unwrap_or(usize::MAX),
            }
        })
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let length = self.count(1)?;
        let offset = self.offset;
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::InvalidUtf8 { offset })
    }

    /// Reads a header of `expected` magic and a version from 1 to
    /// `newest`; returns the version.
    fn header(&mut self, expected: [u8; 4], newest: u16) -> Result<u16, DecodeError> {
        let found: [u8; 4] = self.array()?;
        if found != expected {
            return Err(DecodeError::BadMagic { expected, found });
        }
        let version = self.u16()?;
        if !(1..=newest).contains(&version) {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: newest,
            });
        }
        Ok(version)
    }

    fn unknown_tag(&self, kind: &'static str, tag: u8) -> DecodeError {
        DecodeError::UnknownTag {
            kind,
            tag,
            offset: self.offset - 1,
        }
    }

    fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }
}

/// Returns the log-entry encoding of `request`.
pub(crate) fn encode_request(request: &Request) -> Vec<u8> {
    let mut writer = Writer::default();
    writer.header(REQUEST_MAGIC, REQUEST_VERSION);
    writer.u64(request.client_id);
    writer.u64(request.seq);
    writer.u64(request.timestamp_ms);
    match &request.command {
        Command::Join { groups } => {
            writer.u8(COMMAND_JOIN);
            encode_groups(&mut writer, groups);
        }
        Command::Leave { gids } => {
            writer.u8(COMMAND_LEAVE);
            writer.count(gids.len());
            for gid in gids {
                writer.u64(gid.0);
            }
        }
        Command::Move { shard, gid } => {
            writer.u8(COMMAND_MOVE);
            writer.u32(shard.0);
            writer.u64(gid.0);
        }
    }
    writer.bytes
}

/// Decodes exactly one request written by [`encode_request`].
pub(crate) fn decode_request(bytes: &[u8]) -> Result<Request, DecodeError> {
    let mut reader = Reader::new(bytes);
    let version = reader.header(REQUEST_MAGIC, REQUEST_VERSION)?;
    let client_id = reader.u64()?;
    let seq = reader.u64()?;
    let timestamp_ms = match version {
        TIMED_VERSION.. => reader.u64()?,
        _ => 0,
    };
    let command = match reader.u8()? {
        COMMAND_JOIN => Command::Join {
            groups: decode_groups(&mut reader)?,
        },
        COMMAND_LEAVE => {
            let count = reader.count(8)?;
            let mut gids = Vec::with_capacity(count);
            for _ in 0..count {
                gids.push(GroupId(reader.u64()?));
            }
            Command::Leave { gids }
        }
        COMMAND_MOVE => Command::Move {
            shard: ShardId(reader.u32()?),
            gid: GroupId(reader.u64()?),
        },
        tag => return Err(reader.unknown_tag("command", tag)),
    };
    reader.finish()?;
    Ok(Request {
        client_id,
        seq,
        command,
        timestamp_ms,
    })
}

fn encode_groups(writer: &mut Writer, groups: &BTreeMap<GroupId, Vec<String>>) {
    writer.count(groups.len());
    for (gid, servers) in groups {
        writer.u64(gid.0);
        writer.count(servers.len());
        for server in servers {
            writer.string(server);
        }
    }
}

fn decode_groups(reader: &mut Reader<'_>) -> Result<BTreeMap<GroupId, Vec<String>>, DecodeError> {
    // A group is at least its gid and its server count.
    let count = reader.count(16)?;
    let mut groups = BTreeMap::new();
    let mut previous: Option<GroupId> = None;
    for _ in 0..count {
        let offset = reader.offset;
        let gid = GroupId(reader.u64()?);
        if previous.is_some_and(|previous| previous >= gid) {
            return Err(DecodeError::UnorderedKeys { offset });
        }
        previous = Some(gid);
        let server_count = reader.count(8)?;
        let mut servers = Vec::with_capacity(server_count);
        for _ in 0..server_count {
            servers.push(reader.string()?);
        }
        groups.insert(gid, servers);
    }
    Ok(groups)
}

/// Returns the snapshot encoding of `state`.
pub(crate) fn encode_snapshot(state: &ControllerState) -> Vec<u8> {
    let mut writer = Writer::default();
    writer.header(SNAPSHOT_MAGIC, SNAPSHOT_VERSION);
    writer.u32(state.shard_count());
    writer.count(state.history().len());
    for config in state.history() {
        encode_config(&mut writer, config);
    }
    writer.count(state.session_count());
    for (client_id, session) in state.sessions() {
        writer.u64(client_id);
        encode_session(&mut writer, session);
    }
    writer.bytes
}

/// Writes a configuration as its number, its shard table and its groups.
fn encode_config(writer: &mut Writer, config: &Config) {
    writer.u64(config.num.0);
    for gid in &config.shards {
        writer.u64(gid.0);
    }
    encode_groups(writer, &config.groups);
}

/// Writes a session as its last seq, its recorded reply and its last use.
fn encode_session(writer: &mut Writer, session: &Session) {
    writer.u64(session.last_seq);
    match &session.reply {
        Ok(num) => {
            writer.u8(REPLY_OK);
            writer.u64(num.0);
        }
        Err(error) => {
            writer.u8(REPLY_ERR);
            encode_admin_error(writer, error);
        }
    }
    writer.u64(session.used_ms);
}

/// Decodes exactly one snapshot written by [`encode_snapshot`] and checks
/// the state's invariants.
pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<ControllerState, DecodeError> {
    let mut reader = Reader::new(bytes);
    let version = reader.header(SNAPSHOT_MAGIC, SNAPSHOT_VERSION)?;
    let shard_count = reader.u32()?;
    let history = decode_history(&mut reader, shard_count)?;
    let sessions = decode_sessions(&mut reader, version)?;
    reader.finish()?;
    ControllerState::from_parts(shard_count, history, sessions)
}

fn decode_history(reader: &mut Reader<'_>, shard_count: u32) -> Result<Vec<Config>, DecodeError> {
    // A configuration is at least its number, its shard table and its group count.
    let shard_bytes = (shard_count as usize).saturating_mul(8);
    let count = reader.count(shard_bytes.saturating_add(16))?;
    let mut history = Vec::with_capacity(count);
    for _ in 0..count {
        history.push(decode_config(reader, shard_count)?);
    }
    Ok(history)
}

/// Reads a configuration written by [`encode_config`].
fn decode_config(reader: &mut Reader<'_>, shard_count: u32) -> Result<Config, DecodeError> {
    let num = ConfigNum(reader.u64()?);
    let mut shards = Vec::with_capacity(shard_count as usize);
    for _ in 0..shard_count {
        shards.push(GroupId(reader.u64()?));
    }
    let groups = decode_groups(reader)?;
    Ok(Config {
        num,
        shards,
        groups,
    })
}

fn decode_sessions(
    reader: &mut Reader<'_>,
    version: u16,
) -> Result<BTreeMap<u64, Session>, DecodeError> {
    // A session is at least its client id, its seq and a reply tag.
    let count = reader.count(17)?;
    let mut sessions = BTreeMap::new();
    let mut previous: Option<u64> = None;
    for _ in 0..count {
        let offset = reader.offset;
        let client_id = reader.u64()?;
        if previous.is_some_and(|previous| previous >= client_id) {
            return Err(DecodeError::UnorderedKeys { offset });
        }
        previous = Some(client_id);
        sessions.insert(client_id, decode_session(reader, version)?);
    }
    Ok(sessions)
}

/// Reads a session written by [`encode_session`] (in `version`).
fn decode_session(reader: &mut Reader<'_>, version: u16) -> Result<Session, DecodeError> {
    let last_seq = reader.u64()?;
    let reply: RecordedReply = match reader.u8()? {
        REPLY_OK => Ok(ConfigNum(reader.u64()?)),
        REPLY_ERR => Err(decode_admin_error(reader)?),
        tag => return Err(reader.unknown_tag("reply", tag)),
    };
    let used_ms = match version {
        TIMED_VERSION.. => reader.u64()?,
        _ => 0,
    };
    Ok(Session {
        last_seq,
        reply,
        used_ms,
    })
}

/// Returns the stored record of one configuration (the `data` column
/// family of the server's RocksDB; see `store_rocks.rs`).
pub(crate) fn encode_config_record(config: &Config) -> Vec<u8> {
    let mut writer = Writer::default();
    writer.header(CONFIG_MAGIC, CONFIG_VERSION);
    // Shard tables are as long as the shard count, a u32 at bootstrap.
    writer.u32(config.shards.len() as u32);
    encode_config(&mut writer, config);
    writer.bytes
}

/// Decodes exactly one record written by [`encode_config_record`]. The
/// configuration's invariants are checked when the whole state is
/// assembled (`ControllerState::from_parts`).
pub(crate) fn decode_config_record(bytes: &[u8]) -> Result<Config, DecodeError> {
    let mut reader = Reader::new(bytes);
    reader.header(CONFIG_MAGIC, CONFIG_VERSION)?;
    let shard_count = reader.u32()?;
    if (shard_count as usize).saturating_mul(8) > reader.remaining() {
        return Err(DecodeError::Truncated {
            offset: reader.offset,
            needed: (shard_count as usize).saturating_mul(8) - reader.remaining(),
        });
    }
    let config = decode_config(&mut reader, shard_count)?;
    reader.finish()?;
    Ok(config)
}

/// Returns the stored record of one client session (the `meta` column
/// family; the client id is in the key).
pub(crate) fn encode_session_record(session: &Session) -> Vec<u8> {
    let mut writer = Writer::default();
    writer.header(SESSION_MAGIC, SESSION_VERSION);
    encode_session(&mut writer, session);
    writer.bytes
}

/// Decodes exactly one record written by [`encode_session_record`].
pub(crate) fn decode_session_record(bytes: &[u8]) -> Result<Session, DecodeError> {
    let mut reader = Reader::new(bytes);
    let version = reader.header(SESSION_MAGIC, SESSION_VERSION)?;
    let session = decode_session(&mut reader, version)?;
    reader.finish()?;
    Ok(session)
}

/// Writes an admin error as its tag then its fields. The tags are part of the
/// format and never reused: 1 EmptyJoin, 2 EmptyLeave, 3 ReservedGid,
/// 4 GroupAlreadyPresent (gid), 5 EmptyServerList (gid), 6 EmptyServerAddress
/// (gid), 7 UnknownGroup (gid), 8 DuplicateGroup (gid), 9 ShardOutOfRange
/// (shard:u32, shard_count:u32), 10 InvalidConfigNum (num:i64),
/// 11 InvalidSession (client_id, seq), 12 StaleRequest (client_id, seq,
/// last_seq), 13 TooManyServers (gid, count, max), 14 BadServerAddress
/// (gid, address:string), 15 DuplicateServerAddress (address:string, gid,
/// listed_by). Unlisted fields are u64.
fn encode_admin_error(writer: &mut Writer, error: &AdminError) {
    match error {
        AdminError::EmptyJoin => writer.u8(1),
        AdminError::EmptyLeave => writer.u8(2),
        AdminError::ReservedGid => writer.u8(3),
        AdminError::GroupAlreadyPresent { gid } => encode_gid_error(writer, 4, *gid),
        AdminError::EmptyServerList { gid } => encode_gid_error(writer, 5, *gid),
        AdminError::EmptyServerAddress { gid } => encode_gid_error(writer, 6, *gid),
        AdminError::UnknownGroup { gid } => encode_gid_error(writer, 7, *gid),
        AdminError::DuplicateGroup { gid } => encode_gid_error(writer, 8, *gid),
        AdminError::ShardOutOfRange { shard, shard_count } => {
            writer.u8(9);
            writer.u32(shard.0);
            writer.u32(*shard_count);
        }
        AdminError::InvalidConfigNum { num } => {
            writer.u8(10);
            writer.i64(*num);
        }
        AdminError::InvalidSession { client_id, seq } => {
            writer.u8(11);
            writer.u64(*client_id);
            writer.u64(*seq);
        }
        AdminError::StaleRequest {
            client_id,
            seq,
            last_seq,
        } => {
            writer.u8(12);
            writer.u64(*client_id);
            writer.u64(*seq);
            writer.u64(*last_seq);
        }
        AdminError::TooManyServers { gid, count, max } => {
            encode_gid_error(writer, 13, *gid);
            writer.u64(*count);
            writer.u64(*max);
        }
        AdminError::BadServerAddress { gid, address } => {
            encode_gid_error(writer, 14, *gid);
            writer.string(address);
        }
        AdminError::DuplicateServerAddress {
            address,
            gid,
            listed_by,
        } => {
            writer.u8(15);
            writer.string(address);
            writer.u64(gid.0);
            writer.u64(listed_by.0);
        }
    }
}

fn encode_gid_error(writer: &mut Writer, tag: u8, gid: GroupId) {
    writer.u8(tag);
    writer.u64(gid.0);
}

/// Reads an admin error written by [`encode_admin_error`].
fn decode_admin_error(reader: &mut Reader<'_>) -> Result<AdminError, DecodeError> {
    let error = match reader.u8()? {
        1 => AdminError::EmptyJoin,
        2 => AdminError::EmptyLeave,
        3 => AdminError::ReservedGid,
        4 => AdminError::GroupAlreadyPresent {
            gid: GroupId(reader.u64()?),
        },
        5 => AdminError::EmptyServerList {
            gid: GroupId(reader.u64()?),
        },
        6 => AdminError::EmptyServerAddress {
            gid: GroupId(reader.u64()?),
        },
        7 => AdminError::UnknownGroup {
            gid: GroupId(reader.u64()?),
        },
        8 => AdminError::DuplicateGroup {
            gid: GroupId(reader.u64()?),
        },
        9 => AdminError::ShardOutOfRange {
            shard: ShardId(reader.u32()?),
            shard_count: reader.u32()?,
        },
        10 => AdminError::InvalidConfigNum { num: reader.i64()? },
        11 => AdminError::InvalidSession {
            client_id: reader.u64()?,
            seq: reader.u64()?,
        },
        12 => AdminError::StaleRequest {
            client_id: reader.u64()?,
            seq: reader.u64()?,
            last_seq: reader.u64()?,
        },
        13 => AdminError::TooManyServers {
            gid: GroupId(reader.u64()?),
            count: reader.u64()?,
            max: reader.u64()?,
        },
        14 => AdminError::BadServerAddress {
            gid: GroupId(reader.u64()?),
            address: reader.string()?,
        },
        15 => AdminError::DuplicateServerAddress {
            address: reader.string()?,
            gid: GroupId(reader.u64()?),
            listed_by: GroupId(reader.u64()?),
        },
        tag => return Err(reader.unknown_tag("admin error", tag)),
    };
    Ok(error)
}

#[cfg(test)]
#[path = "codec_test.rs"]
mod tests;
