//! The simulated application: any pure state machine ([`SimMachine`]) the
//! simulator replicates, and its database on each node.
//!
//! - [`SimMachine`]: what an application gives the simulator: apply a
//!   committed payload, read its state in chunks, write chunks back, and a
//!   digest to compare states. The register map of [`crate::sim::kv`] is
//!   one; the shard controller's state machine is another.
//! - [`AppState`]: a machine with its applied index and the durable restore
//!   mark, which refuses any write out of order (an entry after a gap, a
//!   chunk that does not continue the restore under way).
//! - [`AppStore`]: the live and the durable state of one node. The state
//!   lives in the same database as the Raft log (one write-ahead log), so
//!   it survives a process crash, and a power failure loses exactly the
//!   application writes made after the node's last synced write (a synced
//!   persist, a compaction, a saved membership), as
//!   [`MemStorage::lose_unsynced`](crate::storage::MemStorage::lose_unsynced)
//!   does for the log.
//!
//! Invariants:
//! - Outside a restore, `applied` is the index of the last entry applied to
//!   the machine (or of the snapshot it was restored from).
//! - During a restore (`restoring` set), `applied` is 0 and the machine
//!   holds exactly the chunks before `restoring.next_cursor`.
//! - `durable` is `live` as of the last [`AppStore::sync`]: replaying
//!   `unsynced`, in order, on `durable` gives `live`. Writes are never
//!   reordered: a power failure loses a suffix of them.

use std::fmt::Debug;

use bytes::Bytes;

use crate::core::{LogIndex, RestorePoint, SnapshotChunk, Term};

/// A pure, deterministic application the simulator replicates: every
/// replica that applies the same payloads in the same order holds an equal
/// state, and its state is its snapshot (read in chunks by cursor, written
/// back chunk by chunk). A cluster starts every node from one blank
/// machine it is given (`M::default()` when there is one), so a machine
/// may carry identity the log does not, such as its group's id.
pub trait SimMachine: Clone + Debug + PartialEq + 'static {
    /// Applies one committed entry's payload; a payload the application
    /// does not know (a new leader's empty entry, a membership change)
    /// changes nothing.
    fn apply(&mut self, index: LogIndex, data: &[u8]);

    /// Drops the whole state (keeping the identity the machine was made
    /// with): a restore begins.
    fn clear(&mut self);

    /// Writes one chunk of a restore (already checked to continue the
    /// restore under way); refuses a malformed chunk without changing
    /// anything.
    fn write_chunk(&mut self, chunk: &SnapshotChunk) -> Result<(), String>;

    /// Completes a restore after its last chunk was written.
    fn finish_restore(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// Reads the chunk at `cursor` (empty: the beginning), at most
    /// `bytes_max` bytes but never empty unless the state is: returns its
    /// data, the next chunk's cursor and whether it is the last one;
    /// `None` if `cursor` is not one this application makes.
    fn read_chunk(&self, cursor: &[u8], bytes_max: u64) -> Option<(Bytes, Bytes, bool)>;

    /// Returns a digest of the state: equal states have equal digests, and
    /// a state that differs has another one but with negligible chance.
    fn digest(&self) -> u64;
}

/// Reads the chunk at `cursor` of `encoded`, a machine's whole state
/// encoded once, for a machine whose chunks are byte ranges of it: the
/// cursor is a byte offset (8 bytes, big-endian; empty is 0), and the
/// chunk is at most `bytes_max` bytes (at least one). `None` for a cursor
/// that is not such an offset within `encoded`. See
/// [`SimMachine::read_chunk`].
pub fn read_byte_range(
    encoded: &Bytes,
    cursor: &[u8],
    bytes_max: u64,
) -> Option<(Bytes, Bytes, bool)> {
    let start = usize::try_from(decode_offset(cursor)?).ok()?;
    if start > encoded.len() {
        return None;
    }
    let length = usize::try_from(bytes_max.max(1)).unwrap_or(usize::MAX);
    let end = start.saturating_add(length).min(encoded.len());
    let next = Bytes::copy_from_slice(&(end as u64).to_be_bytes());
    Some((encoded.slice(start..end), next, end == encoded.len()))
}

/// Appends a chunk [`read_byte_range`] read to `restore`, the bytes of the
/// chunks written so far; refuses (changing nothing) a malformed cursor or
/// a chunk that does not start at `restore`'s length.
pub fn append_byte_range(restore: &mut Vec<u8>, chunk: &SnapshotChunk) -> Result<(), String> {
    let offset = decode_offset(&chunk.cursor)
        .ok_or_else(|| format!("malformed cursor {:?}", chunk.cursor))?;
    if offset != restore.len() as u64 {
        return Err(format!(
            "chunk at byte {offset} written after {} bytes",
            restore.len()
        ));
    }
    restore.extend_from_slice(&chunk.data);
    Ok(())
}

/// Decodes a byte-offset cursor (empty: the beginning).
fn decode_offset(cursor: &[u8]) -> Option<u64> {
    match cursor {
        [] => Some(0),
        bytes => Some(u64::from_be_bytes(bytes.try_into().ok()?)),
    }
}

/// One write of the application to its database, in the order it was
/// made: what a power failure may lose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppWrite {
    /// Applies the committed entry at `index` carrying `data`.
    Apply {
        /// The entry's index.
        index: LogIndex,
        /// The entry's payload.
        data: Bytes,
    },
    /// Drops the state and marks it as being restored from the snapshot
    /// `(index, term)`, from its beginning.
    BeginRestore {
        /// The snapshot's index.
        index: LogIndex,
        /// The snapshot's term.
        term: Term,
    },
    /// Writes a chunk of the restore under way that is not its last.
    RestoreChunk(SnapshotChunk),
    /// Writes the last chunk, drops the mark and makes the snapshot's
    /// index the applied index.
    FinishRestore(SnapshotChunk),
}

/// A machine with its applied index and restore mark.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppState<M> {
    /// The application's own state.
    pub machine: M,
    /// The index of the last entry applied (0 while restoring).
    pub applied: LogIndex,
    /// The restore under way, durably marked with the state: the snapshot
    /// and the position of the next chunk it needs.
    pub restoring: Option<RestorePoint>,
}

impl<M: SimMachine> AppState<M> {
    /// Returns a state that applied every entry up to `applied`.
    pub fn at(machine: M, applied: LogIndex) -> AppState<M> {
        AppState {
            machine,
            applied,
            restoring: None,
        }
    }

    /// Makes one write; returns why it cannot be made (an entry out of
    /// order, a chunk that does not continue the restore) without changing
    /// anything.
    pub fn write(&mut self, write: &AppWrite) -> Result<(), String> {
        match write {
            AppWrite::Apply { index, data } => {
                if let Some(point) = &self.restoring {
                    return Err(format!(
                        "entry {index} applied while restoring the snapshot at {}",
                        point.index
                    ));
                }
                if *index != self.applied.next() {
                    return Err(format!("entry {index} applied after {}", self.applied));
                }
                self.machine.apply(*index, data);
                self.applied = *index;
                Ok(())
            }
            AppWrite::BeginRestore { index, term } => {
                self.machine.clear();
                self.applied = LogIndex(0);
                self.restoring = Some(RestorePoint::beginning(*index, *term));
                Ok(())
            }
            AppWrite::RestoreChunk(chunk) => {
                self.check_continues(chunk)?;
                self.machine.write_chunk(chunk)?;
                let point = self.restoring.as_mut().expect("checked above");
                point.next_cursor = chunk.next_cursor.clone();
                Ok(())
            }
            AppWrite::FinishRestore(chunk) => {
                self.check_continues(chunk)?;
                let before = self.machine.clone();
                self.machine.write_chunk(chunk)?;
                if let Err(why) = self.machine.finish_restore() {
                    self.machine = before;
                    return Err(why);
                }
                self.restoring = None;
                self.applied = chunk.meta.index;
                Ok(())
            }
        }
    }

    /// Checks that `chunk` continues the restore under way: same snapshot,
    /// starting where the last chunk ended.
    fn check_continues(&self, chunk: &SnapshotChunk) -> Result<(), String> {
        let Some(point) = &self.restoring else {
            return Err(format!(
                "a chunk of the snapshot at {} arrived with no restore under way",
                chunk.meta.index
            ));
        };
        if (point.index, point.term) != (chunk.meta.index, chunk.meta.term)
            || point.next_cursor != chunk.cursor
        {
            return Err(format!(
                "chunk of snapshot ({}, {}) at cursor {:?} does not continue the restore of ({}, {}) at {:?}",
                chunk.meta.index,
                chunk.meta.term,
                chunk.cursor,
                point.index,
                point.term,
                point.next_cursor
            ));
        }
        Ok(())
    }
}

/// The live and the durable state of one node's application.
#[derive(Clone, Debug)]
pub struct AppStore<M> {
    /// The state the node serves and applies to.
    live: AppState<M>,
    /// The state a power failure leaves.
    durable: AppState<M>,
    /// The writes made since the last sync, oldest first.
    unsynced: Vec<AppWrite>,
}

impl<M: SimMachine + Default> Default for AppStore<M> {
    fn default() -> AppStore<M> {
        AppStore::new(M::default())
    }
}

impl<M: SimMachine> AppStore<M> {
    /// Returns a fresh application holding `blank`, nothing applied.
    pub fn new(blank: M) -> AppStore<M> {
        let state = AppState::at(blank, LogIndex(0));
        AppStore {
            live: state.clone(),
            durable: state,
            unsynced: Vec::new(),
        }
    }

    /// Returns the live state.
    pub fn state(&self) -> &AppState<M> {
        &self.live
    }

    /// Returns the state as of the last synced write.
    pub fn durable_state(&self) -> &AppState<M> {
        &self.durable
    }

    /// Gives a fresh application the bootstrap state: its blank machine at
    /// `index` (the bootstrap prefix, which carries no application data),
    /// durably, as the servers write it when they bootstrap.
    pub fn bootstrap(&mut self, index: LogIndex) {
        assert!(
            self.live.applied == LogIndex(0)
                && self.live.restoring.is_none()
                && self.unsynced.is_empty(),
            "only a fresh application bootstraps"
        );
        self.live.applied = index;
        self.durable = self.live.clone();
    }

    /// Makes `write` on the live state; returns why it cannot be made
    /// (nothing is written then).
    pub fn write(&mut self, write: AppWrite) -> Result<(), String> {
        self.live.write(&write)?;
        self.unsynced.push(write);
        Ok(())
    }

    /// Makes every write so far durable (the node made a synced write).
    pub fn sync(&mut self) {
        for write in self.unsynced.drain(..) {
            self.durable
                .write(&write)
                .expect("a write the live state accepted replays on the durable state");
        }
        assert_eq!(
            (self.durable.applied, &self.durable.restoring),
            (self.live.applied, &self.live.restoring),
            "the durable state caught up with the live one"
        );
    }

    /// Loses the writes after the last sync (a power failure).
    pub fn lose_unsynced(&mut self) {
        self.unsynced.clear();
        self.live = self.durable.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::LogIndex;
    use crate::sim::kv::{KvCommand, KvState};

    fn apply(index: u64, value: &str) -> AppWrite {
        let command = KvCommand::Put {
            key: "k".into(),
            value: value.into(),
        };
        AppWrite::Apply {
            index: LogIndex(index),
            data: command.encode(index),
        }
    }

    // Goal: a power failure loses exactly the writes after the last sync,
    // and a refused write changes nothing.
    // Method: apply 2 and 3, sync, apply 4; losing the unsynced writes
    // leaves the state at 3; the live state then continues from there.
    #[test]
    fn a_power_failure_loses_the_writes_after_the_last_sync() {
        let mut app = AppStore::<KvState>::default();
        app.write(apply(1, "a")).expect("first");
        app.write(apply(2, "b")).expect("second");
        app.sync();
        app.write(apply(3, "c")).expect("third");
        assert!(app.write(apply(5, "e")).is_err());
        assert_eq!(app.state().machine.get("k"), "c");
        assert_eq!(app.durable_state().applied, LogIndex(2));
        app.lose_unsynced();
        assert_eq!(
            (app.state().applied, app.state().machine.get("k")),
            (LogIndex(2), "b".into())
        );
        app.write(apply(3, "d")).expect("after the failure");
        app.sync();
        assert_eq!(app.durable_state(), app.state());
        assert_eq!(app.durable_state().machine.get("k"), "d");
    }
}
