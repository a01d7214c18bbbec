//! The stored sessions against a model: runs of random session changes
//! (new records, removals), journaled or folded at random and whenever the
//! journal would pass a small budget, read back after every run as a
//! restart and a shard's move read them.

use std::collections::BTreeMap;

use proptest::prelude::*;
use raft::storage::RocksStorage;

use super::*;

/// One run's session changes, and whether the run changed the table.
type Run = (Vec<((u32, u64), Option<u64>)>, bool);

/// A session whose last seq is `seq`.
fn session(seq: u64) -> Session<WriteReply> {
    Session {
        last_seq: seq,
        reply: if seq.is_multiple_of(5) {
            WriteReply::ValueTooLong {
                length: seq as usize,
            }
        } else {
            WriteReply::Ok
        },
        used_ms: seq * 7,
    }
}

fn runs() -> impl Strategy<Value = Vec<Run>> {
    let change = (
        (0u32..3, 0u64..5),
        proptest::option::weighted(0.8, 1u64..1000),
    );
    let run = (
        proptest::collection::vec(change, 0..6),
        proptest::bool::weighted(0.05),
    );
    proptest::collection::vec(run, 1..80)
}

/// Writes `runs` through a journal of `bytes_max` bytes, checking after
/// each run that what is stored is the model; returns how many times the
/// journal was folded because it was full.
fn check_runs(runs: &[Run], bytes_max: usize) -> Result<usize, TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = RocksStorage::open(dir.path()).expect("open RocksDB");
    let db = storage.db();
    let mut journal = Journal::default();
    journal.set_bytes_max(bytes_max);
    let mut model: BTreeMap<(ShardId, u64), Session<WriteReply>> = BTreeMap::new();
    let mut full_folds = 0;
    for (index, (changes, table)) in runs.iter().enumerate() {
        let mut changed = BTreeMap::new();
        for &((shard, client), seq) in changes {
            let id = (ShardId(shard), client);
            match seq.map(session) {
                Some(new) => model.insert(id, new.clone()),
                None => model.remove(&id),
            };
            changed.insert(id, seq.map(session));
        }
        let before = journal.bytes();
        let mut batch = WriteBatch::default();
        journal.write(
            &db,
            &mut batch,
            LogIndex(index as u64 + 1),
            &changed,
            *table,
            |s, c| model.get(&(s, c)),
        );
        db.write(batch).expect("write");
        if !*table && !changed.is_empty() && journal.bytes() <= before {
            full_folds += 1;
        }
        prop_assert!(journal.bytes() <= bytes_max);
        if *table {
            prop_assert_eq!(journal.bytes(), 0, "a run that changes the table folds");
        }
        let (loaded, reloaded) = load(&db).expect("load");
        let expected: Vec<StoredSession> = model
            .iter()
            .map(|(&(shard, client), session)| (shard, client, session.clone()))
            .collect();
        prop_assert_eq!(&loaded, &expected, "after run {}", index + 1);
        prop_assert_eq!(reloaded.bytes(), journal.bytes());
        let view = db.snapshot();
        for shard in 0..3 {
            let shard = ShardId(shard);
            let stored = read_shard(&db, &view, shard).expect("read a shard");
            let modelled: Vec<(u64, Session<WriteReply>)> = model
                .iter()
                .filter(|((of, _), _)| *of == shard)
                .map(|(&(_, client), session)| (client, session.clone()))
                .collect();
            prop_assert_eq!(
                stored,
                modelled,
                "shard {} after run {}",
                shard.0,
                index + 1
            );
        }
        // A store that restarts here goes on with the journal it reads.
        journal = reloaded;
        journal.set_bytes_max(bytes_max);
    }
    Ok(full_folds)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn stored_sessions_are_the_records_overlaid_by_the_journal(runs in runs()) {
        check_runs(&runs, 400)?;
    }
}

#[test]
fn a_full_journal_is_folded() {
    let runs: Vec<Run> = (0..200)
        .map(|n| (vec![((n % 3, n as u64 % 5), Some(u64::from(n) + 1))], false))
        .collect();
    let full_folds = check_runs(&runs, 400).expect("matches the model");
    assert!(full_folds >= 5, "only {full_folds} folds of a full journal");
}

#[test]
fn a_fold_deletes_the_journal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = RocksStorage::open(dir.path()).expect("open RocksDB");
    let db = storage.db();
    let mut journal = Journal::default();
    let stored = session(3);
    let changes = BTreeMap::from([((ShardId(1), 9), Some(stored.clone()))]);
    for (index, fold) in [(1, false), (2, true)] {
        let mut batch = WriteBatch::default();
        journal.write(&db, &mut batch, LogIndex(index), &changes, fold, |_, _| {
            Some(&stored)
        });
        db.write(batch).expect("write");
    }
    let meta = db.cf_handle(CF_META).expect("meta");
    let mut records = db.raw_iterator_cf(meta);
    records.seek(JOURNAL_PREFIX);
    assert!(
        records
            .key()
            .is_none_or(|key| !key.starts_with(JOURNAL_PREFIX)),
        "a journal record outlived the fold"
    );
    assert_eq!(journal.bytes(), 0);
}
