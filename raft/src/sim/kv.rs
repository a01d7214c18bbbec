//! The replicated application the simulator runs on each node: a key/value
//! register map with Put, Append and Get, encoded into log entries.
//!
//! Invariant: `applied` is the index of the last entry applied to `values`
//! (or of the snapshot they were restored from).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::core::LogIndex;

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

/// The state machine of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvState {
    /// The values.
    pub values: BTreeMap<String, String>,
    /// The index of the last entry applied.
    pub applied: LogIndex,
}

impl KvState {
    /// Applies one committed entry's payload.
    pub fn apply(&mut self, index: LogIndex, data: &[u8]) {
        assert!(
            index > self.applied,
            "entry {index} applied after {}",
            self.applied
        );
        self.applied = index;
        match KvCommand::decode(data) {
            Some((_, KvCommand::Put { key, value })) => {
                self.values.insert(key, value);
            }
            Some((_, KvCommand::Append { key, value })) => {
                self.values.entry(key).or_default().push_str(&value);
            }
            None => {}
        }
    }

    /// Returns the value of `key` (empty if missing).
    pub fn get(&self, key: &str) -> String {
        self.values.get(key).cloned().unwrap_or_default()
    }

    /// Encodes the state as snapshot data.
    pub fn encode(&self) -> Bytes {
        let mut buffer = Vec::new();
        buffer.extend_from_slice(&self.applied.0.to_be_bytes());
        for (key, value) in &self.values {
            put_string(&mut buffer, key);
            put_string(&mut buffer, value);
        }
        Bytes::from(buffer)
    }

    /// Decodes snapshot data written by [`KvState::encode`].
    ///
    /// # Panics
    /// Panics on malformed data: the simulator's storage never corrupts.
    pub fn decode(data: &[u8]) -> KvState {
        if data.is_empty() {
            return KvState::default();
        }
        let applied = LogIndex(u64::from_be_bytes(data[..8].try_into().expect("8 bytes")));
        let mut cursor = &data[8..];
        let mut values = BTreeMap::new();
        while !cursor.is_empty() {
            let key = take_string(&mut cursor).expect("well-formed snapshot key");
            let value = take_string(&mut cursor).expect("well-formed snapshot value");
            values.insert(key, value);
        }
        KvState { values, applied }
    }
}
