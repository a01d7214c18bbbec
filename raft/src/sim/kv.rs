//! The register map the simulator replicates by default: Put, Append and
//! Get on string keys, encoded into log entries; a [`SimMachine`]. Its
//! state is also its snapshot (issue 15 §2): a leader reads a pinned copy
//! in chunks of whole records ordered by key, and a follower writes the
//! chunks straight into its map.
//!
//! Invariants:
//! - A chunk cursor is a key: a chunk holds the records with keys from its
//!   cursor (inclusive) up to its next cursor (exclusive), in key order; a
//!   chunk breaking that is refused, never written.
//! - `digest` is the [`StateDigest`] of `values`, kept up to date by every
//!   write (so the reference state's digest costs nothing per entry).

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use crate::core::{LogIndex, SnapshotChunk};
use crate::sim::app::SimMachine;

/// A write the simulated clients propose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvCommand {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Appends `value` to `key`'s value (missing reads as empty).
    Append {
        /// The key.
        key: String,
        /// The suffix.
        value: String,
    },
}

impl KvCommand {
    /// Encodes the command with the id of the operation it carries.
    pub fn encode(&self, operation_id: u64) -> Bytes {
        let (tag, key, value) = match self {
            KvCommand::Put { key, value } => (b'P', key, value),
            KvCommand::Append { key, value } => (b'A', key, value),
        };
        let mut buffer = Vec::with_capacity(14 + key.len() + value.len());
        buffer.push(tag);
        buffer.extend_from_slice(&operation_id.to_be_bytes());
        put_string(&mut buffer, key);
        put_string(&mut buffer, value);
        Bytes::from(buffer)
    }

    /// Decodes an entry payload; `None` for anything else (e.g. the empty
    /// entry of a new leader).
    pub fn decode(data: &[u8]) -> Option<(u64, KvCommand)> {
        let (&tag, rest) = data.split_first()?;
        let operation_id = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let mut cursor = &rest[8..];
        let key = take_string(&mut cursor)?;
        let value = take_string(&mut cursor)?;
        match tag {
            b'P' => Some((operation_id, KvCommand::Put { key, value })),
            b'A' => Some((operation_id, KvCommand::Append { key, value })),
            _ => None,
        }
    }
}

fn put_string(buffer: &mut Vec<u8>, text: &str) {
    buffer.extend_from_slice(&(text.len() as u32).to_be_bytes());
    buffer.extend_from_slice(text.as_bytes());
}

fn take_string(cursor: &mut &[u8]) -> Option<String> {
    let length = u32::from_be_bytes(cursor.get(..4)?.try_into().ok()?) as usize;
    let text = String::from_utf8(cursor.get(4..4 + length)?.to_vec()).ok()?;
    *cursor = &cursor[4 + length..];
    Some(text)
}

/// Returns the encoded size of one (key, value) record, in bytes.
fn record_size_bytes(key: &str, value: &str) -> u64 {
    8 + key.len() as u64 + value.len() as u64
}

/// The register map one node replicates; its digest follows every write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvState {
    /// The values.
    values: BTreeMap<String, String>,
    /// The digest of `values`.
    digest: StateDigest,
}

impl SimMachine for KvState {
    fn apply(&mut self, _index: LogIndex, data: &[u8]) {
        match KvCommand::decode(data) {
            Some((_, KvCommand::Put { key, value })) => {
                self.digest.put(&key, &value);
                self.values.insert(key, value);
            }
            Some((_, KvCommand::Append { key, value })) => {
                self.digest.append(&key, &value);
                self.values.entry(key).or_default().push_str(&value);
            }
            None => {}
        }
    }

    fn clear(&mut self) {
        *self = KvState::default();
    }

    /// Writes the records of `chunk`: keys from its cursor (inclusive) up
    /// to its next cursor (exclusive, unless it is the last), in order.
    fn write_chunk(&mut self, chunk: &SnapshotChunk) -> Result<(), String> {
        let records = decode_records(&chunk.data)
            .ok_or_else(|| format!("malformed chunk at cursor {:?}", chunk.cursor))?;
        let in_range = |key: &str| {
            key.as_bytes() >= &chunk.cursor[..]
                && (chunk.last || key.as_bytes() < &chunk.next_cursor[..])
        };
        let ordered = records.windows(2).all(|pair| pair[0].0 < pair[1].0);
        if !ordered || !records.iter().all(|(key, _)| in_range(key)) {
            return Err(format!(
                "chunk at cursor {:?} holds records outside [{:?}, {:?}) or out of order",
                chunk.cursor, chunk.cursor, chunk.next_cursor
            ));
        }
        for (key, value) in records {
            self.digest.put(&key, &value);
            self.values.insert(key, value);
        }
        Ok(())
    }

    fn read_chunk(&self, cursor: &[u8], bytes_max: u64) -> Option<(Bytes, Bytes, bool)> {
        self.read_records(cursor, bytes_max)
    }

    fn digest(&self) -> u64 {
        self.digest.value()
    }
}

impl KvState {
    /// Returns a map holding `pairs`.
    pub fn with_values<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> KvState {
        let mut state = KvState::default();
        for (key, value) in pairs {
            state.digest.put(key, value);
            state.values.insert(key.into(), value.into());
        }
        state
    }

    /// Returns the values.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// Returns the value of `key` (empty if missing).
    pub fn get(&self, key: &str) -> String {
        self.values.get(key).cloned().unwrap_or_default()
    }

    /// Reads the chunk of records starting at key `cursor` (empty: the
    /// beginning): whole records, at most `bytes_max` bytes of them but at
    /// least one. Returns the chunk's bytes, the next cursor (the first
    /// key left out; for the last chunk, its last key followed by a zero
    /// byte) and whether it is the last chunk; `None` if `cursor` is not a
    /// key this application makes.
    fn read_records(&self, cursor: &[u8], bytes_max: u64) -> Option<(Bytes, Bytes, bool)> {
        let start = std::str::from_utf8(cursor).ok()?;
        let mut data = Vec::new();
        let mut total = 0u64;
        let mut last_key: Option<&str> = None;
        let range = (Bound::Included(start), Bound::Unbounded);
        for (key, value) in self.values.range::<str, _>(range) {
            let size = record_size_bytes(key, value);
            if last_key.is_some() && total + size > bytes_max {
                return Some((
                    Bytes::from(data),
                    Bytes::copy_from_slice(key.as_bytes()),
                    false,
                ));
            }
            put_string(&mut data, key);
            put_string(&mut data, value);
            total += size;
            last_key = Some(key);
        }
        let next_cursor = match last_key {
            Some(key) => {
                let mut next = key.as_bytes().to_vec();
                next.push(0);
                Bytes::from(next)
            }
            None => Bytes::copy_from_slice(cursor),
        };
        Some((Bytes::from(data), next_cursor, true))
    }

    /// Returns the encoded size of all records, in bytes (what a snapshot
    /// transfer carries).
    pub fn records_size_bytes(&self) -> u64 {
        self.values
            .iter()
            .map(|(key, value)| record_size_bytes(key, value))
            .sum()
    }
}

/// Decodes the records of a chunk; `None` if malformed.
fn decode_records(data: &[u8]) -> Option<Vec<(String, String)>> {
    let mut cursor = data;
    let mut records = Vec::new();
    while !cursor.is_empty() {
        let key = take_string(&mut cursor)?;
        let value = take_string(&mut cursor)?;
        records.push((key, value));
    }
    Some(records)
}

/// The modulus of the value hashes: the Mersenne prime 2^61 - 1.
const DIGEST_MODULUS: u64 = (1 << 61) - 1;
/// The base of the value hashes.
const DIGEST_BASE: u64 = 1_000_003;

/// An order-independent digest of a register map that follows Put and
/// Append in time proportional to the write (not to the value), so the
/// invariants can keep the reference state's digest at every index.
///
/// Invariant: `total` is the wrapping sum of `entry_digest(key, hash)`
/// over `hashes`, where each hash is the polynomial hash of the key's
/// value (Horner's rule mod 2^61 - 1), which an Append extends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateDigest {
    hashes: BTreeMap<String, u64>,
    total: u64,
}

impl StateDigest {
    /// Appends `suffix` to `key`'s value.
    pub fn append(&mut self, key: &str, suffix: &str) {
        let old = self.hashes.get(key).copied();
        self.set(key, old, extend_hash(old.unwrap_or(0), suffix));
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: &str, value: &str) {
        let old = self.hashes.get(key).copied();
        self.set(key, old, extend_hash(0, value));
    }

    fn set(&mut self, key: &str, old: Option<u64>, hash: u64) {
        if let Some(old) = old {
            self.total = self.total.wrapping_sub(entry_digest(key, old));
        }
        self.total = self.total.wrapping_add(entry_digest(key, hash));
        self.hashes.insert(key.to_string(), hash);
    }

    /// Returns the digest.
    pub fn value(&self) -> u64 {
        self.total
    }
}

/// Returns the hash of a value extended by `suffix`.
fn extend_hash(hash: u64, suffix: &str) -> u64 {
    suffix.bytes().fold(hash, |hash, byte| {
        let next = u128::from(hash) * u128::from(DIGEST_BASE) + u128::from(byte) + 1;
        (next % u128::from(DIGEST_MODULUS)) as u64
    })
}

/// Mixes a key and its value's hash into one well-spread word.
fn entry_digest(key: &str, hash: u64) -> u64 {
    let key_hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, byte| {
        (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    splitmix64(key_hash ^ splitmix64(hash))
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
#[path = "kv_test.rs"]
mod kv_test;
