//! Unit tests of the register map as its own snapshot: a state read in
//! chunks of any size and written back in order is the same state; a chunk
//! out of order, an entry applied during a restore or out of sequence is
//! refused; the incremental digest follows the full one.

use bytes::Bytes;

use super::*;
use crate::core::{SnapshotMeta, Term};
use crate::sim::app::{AppState, AppWrite};

fn state_of(pairs: &[(&str, &str)], applied: u64) -> AppState<KvState> {
    AppState::at(
        KvState::with_values(pairs.iter().copied()),
        LogIndex(applied),
    )
}

/// Reads `source` in chunks of `bytes_max` and returns them, last flagged.
fn chunks_of(source: &AppState<KvState>, bytes_max: u64) -> Vec<SnapshotChunk> {
    let meta = SnapshotMeta {
        index: source.applied,
        term: Term(3),
        membership: Default::default(),
    };
    let mut chunks = Vec::new();
    let mut cursor = Bytes::new();
    loop {
        let (data, next_cursor, last) = source
            .machine
            .read_chunk(&cursor, bytes_max)
            .expect("our cursor");
        chunks.push(SnapshotChunk {
            meta: meta.clone(),
            cursor: cursor.clone(),
            next_cursor: next_cursor.clone(),
            data,
            last,
        });
        if last {
            return chunks;
        }
        cursor = next_cursor;
    }
}

/// Restores `chunks` into `target` as the simulator's follower does.
fn restore(target: &mut AppState<KvState>, chunks: &[SnapshotChunk]) -> Result<(), String> {
    for chunk in chunks {
        if chunk.cursor.is_empty() {
            let (index, term) = (chunk.meta.index, chunk.meta.term);
            target.write(&AppWrite::BeginRestore { index, term })?;
        }
        let write = if chunk.last {
            AppWrite::FinishRestore(chunk.clone())
        } else {
            AppWrite::RestoreChunk(chunk.clone())
        };
        target.write(&write)?;
    }
    Ok(())
}

#[test]
fn a_state_read_in_chunks_of_any_size_restores_whole() {
    let source = state_of(
        &[("", "empty key"), ("a", "1"), ("b", ""), ("k10", "x.y.")],
        42,
    );
    for bytes_max in [1, 8, 16, 20, 64, 1 << 20] {
        let chunks = chunks_of(&source, bytes_max);
        let total: u64 = chunks.iter().map(|chunk| chunk.data.len() as u64).sum();
        assert_eq!(total, source.machine.records_size_bytes());
        for chunk in &chunks {
            let records = decode_records(&chunk.data).expect("well-formed");
            let whole = chunk.data.len() as u64 <= bytes_max || records.len() == 1;
            assert!(whole, "a chunk past {bytes_max} bytes holds one record");
        }
        let mut target = state_of(&[("stale", "gone")], 7);
        restore(&mut target, &chunks).expect("in order");
        assert_eq!(target, source, "chunks of {bytes_max} bytes");
    }
    let empty = AppState::<KvState>::default();
    let chunks = chunks_of(&empty, 16);
    assert_eq!(chunks.len(), 1);
    assert!(chunks[0].last && chunks[0].data.is_empty());
}

#[test]
fn a_chunk_that_does_not_continue_the_restore_is_refused() {
    let source = state_of(&[("a", "1"), ("b", "2"), ("c", "3")], 9);
    let chunks = chunks_of(&source, 1);
    assert_eq!(chunks.len(), 3);
    let mut skipping = AppState::<KvState>::default();
    let skipped = [chunks[0].clone(), chunks[2].clone()];
    assert!(restore(&mut skipping, &skipped).is_err());
    let mut repeating = AppState::<KvState>::default();
    let repeated = [chunks[0].clone(), chunks[0].clone()];
    // The second copy has an empty cursor: it begins the restore again.
    restore(&mut repeating, &repeated).expect("a restart is allowed");
    let mut other = AppState::<KvState>::default();
    let mut foreign = chunks[1].clone();
    foreign.meta.term = Term(4);
    assert!(restore(&mut other, &[chunks[0].clone(), foreign]).is_err());
    let mut unstarted = AppState::<KvState>::default();
    assert!(
        unstarted
            .write(&AppWrite::FinishRestore(chunks[2].clone()))
            .is_err()
    );
}

#[test]
fn entries_apply_in_order_and_never_during_a_restore() {
    let put = KvCommand::Put {
        key: "k".into(),
        value: "v".into(),
    }
    .encode(1);
    let mut state = state_of(&[], 4);
    let apply = |index| AppWrite::Apply {
        index: LogIndex(index),
        data: put.clone(),
    };
    assert!(state.write(&apply(6)).is_err());
    state.write(&apply(5)).expect("next index");
    assert_eq!(state.machine.get("k"), "v");
    let begin = AppWrite::BeginRestore {
        index: LogIndex(9),
        term: Term(2),
    };
    state.write(&begin).expect("begin");
    assert!(state.machine.values().is_empty() && state.applied == LogIndex(0));
    assert!(state.write(&apply(1)).is_err());
}

#[test]
fn the_incremental_digest_follows_the_full_one() {
    let commands = [
        ("a", "x", false),
        ("b", "y", true),
        ("a", "z", true),
        ("c", "", false),
        ("a", "w", false),
        ("b", "yy", true),
    ];
    let mut state = state_of(&[], 1);
    for (at, &(key, value, append)) in commands.iter().enumerate() {
        let (key, value) = (key.to_string(), value.to_string());
        let command = if append {
            KvCommand::Append { key, value }
        } else {
            KvCommand::Put { key, value }
        };
        let data = command.encode(at as u64);
        let index = state.applied.next();
        state
            .write(&AppWrite::Apply { index, data })
            .expect("in order");
        let values = state.machine.values();
        let full = KvState::with_values(values.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(full.digest(), state.machine.digest());
    }
    let mut other = state.machine.values().clone();
    other.insert("a".into(), "different".into());
    let other = KvState::with_values(other.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert_ne!(other.digest(), state.machine.digest());
}
