//! The controller's state machine as the simulator replicates it: the real
//! [`ControllerState`] applying the real encoded [`Request`]s, its snapshot
//! the real snapshot encoding read in byte ranges (as the server's
//! `EncodedSnapshot` is), and a digest that follows every write.
//!
//! Invariants:
//! - `digest` is a function of `state` alone: the history folded in order
//!   (one more configuration folded in by each `apply` that makes one)
//!   with the sessions' hashes summed (order-free, summed anew by each
//!   `apply`: the simulated admins are few), recomputed whole after a
//!   restore.
//! - A chunk cursor is a byte offset (8 bytes, big-endian; empty is 0) into
//!   the snapshot encoding; `restore` holds exactly the bytes of the chunks
//!   written so far, so a chunk that does not start at its length is
//!   refused.
//! - `encoded` caches the encoding of `state` and is dropped by every
//!   change; it never takes part in equality.

use std::cell::OnceCell;
use std::hash::{DefaultHasher, Hash, Hasher};

use bytes::Bytes;
use raft::core::{LogIndex, SnapshotChunk};
use raft::sim::app::{SimMachine, append_byte_range, read_byte_range};

use crate::Request;
use crate::state_machine::{ControllerState, Session};
use crate::types::Config;

/// The shard count of the simulated controller (the lab's).
pub const SIM_SHARDS: u32 = 10;

/// One replica's controller state, as the simulator holds it.
#[derive(Clone, Debug)]
pub struct CtrlerMachine {
    state: ControllerState,
    /// The snapshot bytes of the restore under way.
    restore: Vec<u8>,
    history_digest: u64,
    sessions_digest: u64,
    encoded: OnceCell<Bytes>,
}

impl Default for CtrlerMachine {
    fn default() -> CtrlerMachine {
        CtrlerMachine::from_state(ControllerState::new(SIM_SHARDS))
    }
}

impl PartialEq for CtrlerMachine {
    fn eq(&self, other: &CtrlerMachine) -> bool {
        self.state == other.state && self.restore == other.restore
    }
}

impl CtrlerMachine {
    /// Returns a machine holding `state`, its digest computed whole.
    fn from_state(state: ControllerState) -> CtrlerMachine {
        let history_digest = state.history().iter().fold(0, fold_config);
        let sessions_digest = sessions_digest(&state);
        CtrlerMachine {
            state,
            restore: Vec::new(),
            history_digest,
            sessions_digest,
            encoded: OnceCell::new(),
        }
    }

    /// Returns the controller state.
    pub fn state(&self) -> &ControllerState {
        &self.state
    }

    /// Returns the snapshot encoding of the state, encoded once per change.
    fn encoded(&self) -> &Bytes {
        self.encoded
            .get_or_init(|| Bytes::from(self.state.encode_snapshot()))
    }
}

impl SimMachine for CtrlerMachine {
    fn apply(&mut self, _index: LogIndex, data: &[u8]) {
        let Ok(request) = Request::decode(data) else {
            return;
        };
        let configs = self.state.history().len();
        let _reply = self.state.apply(request);
        self.encoded = OnceCell::new();
        if self.state.history().len() > configs {
            self.history_digest = fold_config(self.history_digest, self.state.latest());
        }
        // A request may touch, record or expire sessions: a handful of
        // admins' sessions are summed anew.
        self.sessions_digest = sessions_digest(&self.state);
    }

    fn clear(&mut self) {
        *self = CtrlerMachine::default();
    }

    fn write_chunk(&mut self, chunk: &SnapshotChunk) -> Result<(), String> {
        append_byte_range(&mut self.restore, chunk)
    }

    fn finish_restore(&mut self) -> Result<(), String> {
        let state = ControllerState::decode_snapshot(&self.restore)
            .map_err(|error| format!("restored snapshot does not decode: {error}"))?;
        *self = CtrlerMachine::from_state(state);
        Ok(())
    }

    fn read_chunk(&self, cursor: &[u8], bytes_max: u64) -> Option<(Bytes, Bytes, bool)> {
        read_byte_range(self.encoded(), cursor, bytes_max)
    }

    fn digest(&self) -> u64 {
        mix(self.history_digest ^ mix(self.sessions_digest))
    }
}

/// Folds one more configuration into the history's digest.
fn fold_config(digest: u64, config: &Config) -> u64 {
    let mut hasher = DefaultHasher::new();
    config.num.hash(&mut hasher);
    config.shards.hash(&mut hasher);
    config.groups.hash(&mut hasher);
    mix(digest ^ hasher.finish())
}

/// Returns the order-free sum of the sessions' hashes.
fn sessions_digest(state: &ControllerState) -> u64 {
    state.sessions().fold(0u64, |sum, (client, session)| {
        sum.wrapping_add(session_hash(client, session))
    })
}

/// Returns the hash of one client's session.
fn session_hash(client: u64, session: &Session) -> u64 {
    let mut hasher = DefaultHasher::new();
    client.hash(&mut hasher);
    session.last_seq.hash(&mut hasher);
    format!("{:?}", &session.reply).hash(&mut hasher);
    session.used_ms.hash(&mut hasher);
    mix(hasher.finish())
}

/// Spreads a word (splitmix64's finalizer).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use raft::core::{SnapshotMeta, Term};
    use raft::sim::app::{AppState, AppWrite};

    use super::*;
    use crate::Command;
    use crate::types::{GroupId, ShardId};

    fn join(client: u64, seq: u64, gid: u64) -> Request {
        let groups = BTreeMap::from([(GroupId(gid), vec![format!("10.0.0.{gid}:7000")])]);
        Request {
            client_id: client,
            seq,
            timestamp_ms: 0,
            command: Command::Join { groups },
        }
    }

    fn applied(requests: &[Request]) -> AppState<CtrlerMachine> {
        let mut state = AppState::at(CtrlerMachine::default(), LogIndex(1));
        for request in requests {
            let write = AppWrite::Apply {
                index: state.applied.next(),
                data: Bytes::from(request.encode()),
            };
            state.write(&write).expect("in order");
        }
        state
    }

    // Goal: the snapshot read in byte ranges of any size restores an equal
    // state with an equal digest; a chunk out of place is refused.
    #[test]
    fn a_state_read_in_chunks_restores_whole() {
        let moved = Request {
            client_id: 2,
            seq: 1,
            timestamp_ms: 0,
            command: Command::Move {
                shard: ShardId(3),
                gid: GroupId(1),
            },
        };
        let source = applied(&[join(1, 1, 1), join(1, 2, 2), moved]);
        let meta = SnapshotMeta {
            index: source.applied,
            term: Term(2),
            membership: Default::default(),
        };
        for bytes_max in [1, 7, 64, 1 << 20] {
            let mut target = applied(&[join(9, 1, 5)]);
            let begin = AppWrite::BeginRestore {
                index: meta.index,
                term: meta.term,
            };
            target.write(&begin).expect("begin");
            let mut cursor = Bytes::new();
            loop {
                let (data, next_cursor, last) = source
                    .machine
                    .read_chunk(&cursor, bytes_max)
                    .expect("our cursor");
                let chunk = SnapshotChunk {
                    meta: meta.clone(),
                    cursor: cursor.clone(),
                    next_cursor: next_cursor.clone(),
                    data,
                    last,
                };
                if last {
                    target.write(&AppWrite::FinishRestore(chunk)).expect("last");
                    break;
                }
                // A chunk not at the end of what was written: refused by the
                // machine itself (and before it, by the restore mark).
                let mut skipped = chunk.clone();
                skipped.cursor = next_cursor.clone();
                assert!(target.machine.clone().write_chunk(&skipped).is_err());
                assert!(target.write(&AppWrite::RestoreChunk(skipped)).is_err());
                target
                    .write(&AppWrite::RestoreChunk(chunk))
                    .expect("in order");
                cursor = next_cursor;
            }
            assert_eq!(target, source, "chunks of {bytes_max} bytes");
            assert_eq!(target.machine.digest(), source.machine.digest());
        }
    }

    // Goal: the digest kept by `apply` is the one computed whole, and
    // differs for a different history.
    #[test]
    fn the_digest_follows_the_state() {
        let state = applied(&[join(1, 1, 1), join(2, 1, 2), join(1, 2, 3)]);
        let whole = CtrlerMachine::from_state(state.machine.state().clone());
        assert_eq!(state.machine.digest(), whole.digest());
        let other = applied(&[join(1, 1, 1), join(2, 1, 2), join(1, 2, 4)]);
        assert_ne!(other.machine.digest(), state.machine.digest());
        let repeated = applied(&[join(1, 1, 1), join(2, 1, 2), join(2, 1, 2)]);
        let once = applied(&[join(1, 1, 1), join(2, 1, 2)]);
        assert_eq!(repeated.machine.digest(), once.machine.digest());
    }
}
