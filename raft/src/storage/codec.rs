//! The byte formats of everything [`RocksStorage`](super::RocksStorage)
//! writes: keys, and crc32-framed records (log entries, hard state, the
//! compacted prefix and the saved membership). No snapshot data is ever
//! encoded here: the application's column families are the snapshot.
//!
//! A record is `crc32 (4 bytes, big-endian) | payload`, the crc32
//! (crc32fast) covering the whole payload. Integers are big-endian.
//!
//! Invariants:
//! - Every decoder checks the crc32 before it reads a field, and reports a
//!   mismatch or any malformed byte as [`StorageError::Corruption`] naming
//!   the index and where the record lives; nothing is silently skipped
//!   (DESIGN.md "Raft", durability).
//! - An entry record names its own index and decoding checks it against
//!   the key, so an entry stored under the wrong key is reported as
//!   corruption too.
//! - Log keys are big-endian indexes, so RocksDB's bytewise key order is
//!   log order and a range of indexes is a range of keys.

use bytes::Bytes;

use crate::core::{
    Entry, EntryKind, HardState, LogIndex, Membership, NodeId, SnapshotMeta, StorageError, Term,
};

/// The size of the crc32 that starts every record.
const CRC_BYTES: usize = 4;

/// Returns the key of the log entry at `index`: the index, big-endian.
pub(crate) fn index_key(index: LogIndex) -> [u8; 8] {
    index.0.to_be_bytes()
}

/// Returns the index a log key names, or `None` if it is not 8 bytes.
pub(crate) fn decode_index_key(key: &[u8]) -> Option<LogIndex> {
    Some(LogIndex(u64::from_be_bytes(key.try_into().ok()?)))
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

/// Returns the stored form of the compacted prefix (the snapshot meta
/// [`Storage::snapshot_meta`](super::Storage::snapshot_meta) returns):
/// index, term, membership.
pub(crate) fn encode_snapshot_meta(meta: &SnapshotMeta) -> Vec<u8> {
    let mut record = RecordWriter::with_capacity(48);
    record.u64(meta.index.0);
    record.u64(meta.term.0);
    record.membership(&meta.membership);
    record.finish()
}

/// Decodes a compacted prefix stored in `location`.
///
/// # Errors
/// [`StorageError::Corruption`] (at index 0, the index being unreadable)
/// if the record is bad.
pub(crate) fn decode_snapshot_meta(
    location: &str,
    record: &[u8],
) -> Result<SnapshotMeta, StorageError> {
    let decode = || -> Result<SnapshotMeta, String> {
        let mut reader = RecordReader::open(record)?;
        let index = LogIndex(reader.u64()?);
        let term = Term(reader.u64()?);
        let membership = reader.membership()?;
        reader.finish()?;
        Ok(SnapshotMeta {
            index,
            term,
            membership,
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

#[cfg(test)]
#[path = "codec_test.rs"]
mod codec_test;
