//! The byte formats of everything [`RocksStorage`](super::RocksStorage)
//! writes: keys, and crc32-framed records (log entries, hard state,
//! snapshot records, the saved membership and snapshot data chunks).
//!
//! A record is `crc32 (4 bytes, big-endian) | payload`, the crc32
//! (crc32fast) covering the whole payload. Integers are big-endian.
//!
//! Invariants:
//! - Every decoder checks the crc32 before it reads a field, and reports a
//!   mismatch or any malformed byte as [`StorageError::Corruption`] naming
//!   the index and where the record lives; nothing is silently skipped
//!   (DESIGN.md "Raft", durability).
//! - A record names its own position (an entry its index, a chunk its
//!   offset) and decoding checks it against the key, so a value stored
//!   under the wrong key is reported as corruption too.
//! - Log keys are big-endian indexes, so RocksDB's bytewise key order is
//!   log order and a range of indexes is a range of keys.

use bytes::Bytes;

use crate::core::{
    Entry, EntryKind, HardState, LogIndex, Membership, NodeId, SnapshotMeta, StorageError, Term,
};

/// The size of the crc32 that starts every record.
const CRC_BYTES: usize = 4;

/// The prefix of snapshot chunk keys in `raft_state`; the snapshot id and
/// the chunk's byte offset follow, both big-endian.
const CHUNK_KEY_PREFIX: &[u8] = b"snapshot_chunk/";

/// Returns the key of the log entry at `index`: the index, big-endian.
pub(crate) fn index_key(index: LogIndex) -> [u8; 8] {
    index.0.to_be_bytes()
}

/// Returns the index a log key names, or `None` if it is not 8 bytes.
pub(crate) fn decode_index_key(key: &[u8]) -> Option<LogIndex> {
    Some(LogIndex(u64::from_be_bytes(key.try_into().ok()?)))
}

/// Returns the key of the chunk of snapshot `snapshot_id` starting at
/// `offset`.
pub(crate) fn chunk_key(snapshot_id: u64, offset: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(CHUNK_KEY_PREFIX.len() + 16);
    key.extend_from_slice(CHUNK_KEY_PREFIX);
    key.extend_from_slice(&snapshot_id.to_be_bytes());
    key.extend_from_slice(&offset.to_be_bytes());
    key
}

/// Returns the offset a chunk key of `snapshot_id` names, or `None` if the
/// key belongs to another snapshot or is malformed.
pub(crate) fn decode_chunk_key(snapshot_id: u64, key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(CHUNK_KEY_PREFIX)?;
    let (id, offset) = rest.split_at_checked(8)?;
    if u64::from_be_bytes(id.try_into().ok()?) != snapshot_id {
        return None;
    }
    Some(u64::from_be_bytes(offset.try_into().ok()?))
}

/// Returns a [`StorageError::Corruption`].
pub(crate) fn corruption(index: LogIndex, location: &str, detail: String) -> StorageError {
    StorageError::Corruption {
        index,
        location: location.to_string(),
        detail,
    }
}

/// Builds one record: reserves the crc32, appends fields, then fills it in.
struct RecordWriter(Vec<u8>);

impl RecordWriter {
    fn with_capacity(payload_bytes: usize) -> RecordWriter {
        let mut buffer = Vec::with_capacity(CRC_BYTES + payload_bytes);
        buffer.extend_from_slice(&[0; CRC_BYTES]);
        RecordWriter(buffer)
    }

    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    fn bytes(&mut self, value: &[u8]) {
        self.0.extend_from_slice(value);
    }

    fn membership(&mut self, membership: &Membership) {
        for set in [&membership.voters, &membership.learners] {
            self.u64(set.len() as u64);
            for node in set {
                self.u64(node.0);
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        let crc = crc32fast::hash(&self.0[CRC_BYTES..]);
        self.0[..CRC_BYTES].copy_from_slice(&crc.to_be_bytes());
        self.0
    }
}

/// Reads the fields of one record whose crc32 was checked; errors are the
/// detail of a corruption.
struct RecordReader<'a>(&'a [u8]);

impl<'a> RecordReader<'a> {
    /// Checks the crc32 of `record` and returns a reader of its payload.
    fn open(record: &'a [u8]) -> Result<RecordReader<'a>, String> {
        let Some((stored, payload)) = record.split_first_chunk::<CRC_BYTES>() else {
            return Err(format!(
                "record of {} bytes is shorter than its crc32",
                record.len()
            ));
        };
        let expected = u32::from_be_bytes(*stored);
        let actual = crc32fast::hash(payload);
        if expected != actual {
            return Err(format!(
                "crc32 mismatch: expected {expected:#010x}, actual {actual:#010x}"
            ));
        }
        Ok(RecordReader(payload))
    }

    fn u8(&mut self) -> Result<u8, String> {
        let (&value, rest) = self.0.split_first().ok_or("record truncated")?;
        self.0 = rest;
        Ok(value)
    }

    fn u64(&mut self) -> Result<u64, String> {
        let (value, rest) = self.0.split_first_chunk::<8>().ok_or("record truncated")?;
        self.0 = rest;
        Ok(u64::from_be_bytes(*value))
    }

    fn nodes(&mut self) -> Result<Vec<NodeId>, String> {
        let count = self.u64()?;
        if count > (self.0.len() / 8) as u64 {
            return Err(format!("node count {count} exceeds the record"));
        }
        (0..count).map(|_| self.u64().map(NodeId)).collect()
    }

    fn membership(&mut self) -> Result<Membership, String> {
        let voters = self.nodes()?;
        let learners = self.nodes()?;
        Ok(Membership {
            voters: voters.into_iter().collect(),
            learners: learners.into_iter().collect(),
        })
    }

    /// Returns the rest of the payload.
    fn rest(self) -> &'a [u8] {
        self.0
    }

    /// Fails if bytes are left over.
    fn finish(self) -> Result<(), String> {
        match self.0.len() {
            0 => Ok(()),
            extra => Err(format!("{extra} unexpected trailing bytes")),
        }
    }
}

/// Returns the stored form of `entry`: term, index, kind, data.
pub(crate) fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut record = RecordWriter::with_capacity(17 + entry.data.len());
    record.u64(entry.term.0);
    record.u64(entry.index.0);
    record.u8(match entry.kind {
        EntryKind::Normal => 0,
        EntryKind::ConfChange => 1,
    });
    record.bytes(&entry.data);
    record.finish()
}

/// Decodes the entry stored under the key of `index` in `location`.
///
/// # Errors
/// [`StorageError::Corruption`] naming `index` if the crc32 does not match,
/// the record is malformed or it holds another index.
pub(crate) fn decode_entry(
    index: LogIndex,
    location: &str,
    record: &[u8],
) -> Result<Entry, StorageError> {
    let decode = || -> Result<Entry, String> {
        let mut reader = RecordReader::open(record)?;
        let term = Term(reader.u64()?);
        let stored_index = LogIndex(reader.u64()?);
        let kind = match reader.u8()? {
            0 => EntryKind::Normal,
            1 => EntryKind::ConfChange,
            other => return Err(format!("unknown entry kind {other}")),
        };
        if stored_index != index {
            return Err(format!("record holds index {stored_index}"));
        }
        Ok(Entry {
            term,
            index,
            kind,
            data: Bytes::copy_from_slice(reader.rest()),
        })
    };
    decode().map_err(|detail| corruption(index, location, detail))
}

/// Returns the stored form of a hard state: term, vote (flag and node),
/// commit.
pub(crate) fn encode_hard_state(hard_state: &HardState) -> Vec<u8> {
    let mut record = RecordWriter::with_capacity(25);
    record.u64(hard_state.term.0);
    record.u8(u8::from(hard_state.vote.is_some()));
    record.u64(hard_state.vote.map_or(0, |node| node.0));
    record.u64(hard_state.commit.0);
    record.finish()
}

/// Decodes a hard state stored in `location`.
///
/// # Errors
/// [`StorageError::Corruption`] (at index 0) if the record is bad.
pub(crate) fn decode_hard_state(location: &str, record: &[u8]) -> Result<HardState, StorageError> {
    let decode = || -> Result<HardState, String> {
        let mut reader = RecordReader::open(record)?;
        let term = Term(reader.u64()?);
        let has_vote = reader.u8()?;
        let node = NodeId(reader.u64()?);
        let commit = LogIndex(reader.u64()?);
        reader.finish()?;
        let vote = match has_vote {
            0 => None,
            1 => Some(node),
            other => return Err(format!("bad vote flag {other}")),
        };
        Ok(HardState { term, vote, commit })
    };
    decode().map_err(|detail| corruption(LogIndex(0), location, detail))
}

/// A snapshot as stored: its metadata, the id under which its data chunks
/// are keyed and the size of that data. Describes both the installed
/// snapshot and one being staged (whose size is then the bytes received).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SnapshotRecord {
    /// The snapshot's metadata.
    pub(crate) meta: SnapshotMeta,
    /// The id in the keys of its chunks; 0 when there are none.
    pub(crate) id: u64,
    /// The total size of its data (received so far, when staging).
    pub(crate) size_bytes: u64,
}

/// Returns the stored form of a snapshot record: id, size, index, term,
/// membership.
pub(crate) fn encode_snapshot(snapshot: &SnapshotRecord) -> Vec<u8> {
    let mut record = RecordWriter::with_capacity(64);
    record.u64(snapshot.id);
    record.u64(snapshot.size_bytes);
    record.u64(snapshot.meta.index.0);
    record.u64(snapshot.meta.term.0);
    record.membership(&snapshot.meta.membership);
    record.finish()
}

/// Decodes a snapshot record stored in `location`.
///
/// # Errors
/// [`StorageError::Corruption`] (at index 0, the index being unreadable)
/// if the record is bad.
pub(crate) fn decode_snapshot(
    location: &str,
    record: &[u8],
) -> Result<SnapshotRecord, StorageError> {
    let decode = || -> Result<SnapshotRecord, String> {
        let mut reader = RecordReader::open(record)?;
        let id = reader.u64()?;
        let size_bytes = reader.u64()?;
        let index = LogIndex(reader.u64()?);
        let term = Term(reader.u64()?);
        let membership = reader.membership()?;
        reader.finish()?;
        Ok(SnapshotRecord {
            meta: SnapshotMeta {
                index,
                term,
                membership,
            },
            id,
            size_bytes,
        })
    };
    decode().map_err(|detail| corruption(LogIndex(0), location, detail))
}

/// Returns the stored form of a membership as of `index`.
pub(crate) fn encode_membership(index: LogIndex, membership: &Membership) -> Vec<u8> {
    let mut record = RecordWriter::with_capacity(32);
    record.u64(index.0);
    record.membership(membership);
    record.finish()
}

/// Decodes a membership and the index it is as of, stored in `location`.
///
/// # Errors
/// [`StorageError::Corruption`] (at index 0) if the record is bad.
pub(crate) fn decode_membership(
    location: &str,
    record: &[u8],
) -> Result<(LogIndex, Membership), StorageError> {
    let decode = || -> Result<(LogIndex, Membership), String> {
        let mut reader = RecordReader::open(record)?;
        let index = LogIndex(reader.u64()?);
        let membership = reader.membership()?;
        reader.finish()?;
        Ok((index, membership))
    };
    decode().map_err(|detail| corruption(LogIndex(0), location, detail))
}

/// Returns the stored form of a snapshot data chunk: its offset, then the
/// bytes.
pub(crate) fn encode_chunk(offset: u64, data: &[u8]) -> Vec<u8> {
    let mut record = RecordWriter::with_capacity(8 + data.len());
    record.u64(offset);
    record.bytes(data);
    record.finish()
}

/// Returns the data of the chunk of the snapshot at `snapshot_index`
/// stored under the key of `offset` in `location`.
///
/// # Errors
/// [`StorageError::Corruption`] naming the snapshot index if the crc32
/// does not match, the record is malformed or it holds another offset.
pub(crate) fn decode_chunk<'a>(
    snapshot_index: LogIndex,
    offset: u64,
    location: &str,
    record: &'a [u8],
) -> Result<&'a [u8], StorageError> {
    let decode = || -> Result<&'a [u8], String> {
        let mut reader = RecordReader::open(record)?;
        let stored_offset = reader.u64()?;
        if stored_offset != offset {
            return Err(format!(
                "chunk record holds offset {stored_offset}, key says {offset}"
            ));
        }
        Ok(reader.rest())
    };
    decode().map_err(|detail| {
        corruption(
            snapshot_index,
            location,
            format!("snapshot chunk at offset {offset}: {detail}"),
        )
    })
}

#[cfg(test)]
#[path = "codec_test.rs"]
mod codec_test;
