//! [`RocksStorage`] answers term lookups from memory (the terms of its
//! entries kept as runs) and reads of its newest entries from a cache,
//! not from the stored entries. This model test drives it and
//! [`MemStorage`] through the same random appends (over suffixes, with new
//! terms), compactions and snapshot installs, and checks after each step
//! that both give every index the same term and every range the same
//! entries, and that a reopen of the RocksDB store gives the same again.

use proptest::prelude::*;

use super::*;

/// One step of the random history.
#[derive(Clone, Debug)]
enum Step {
    /// Appends `count` entries from `back` entries before the log's end
    /// (an append over a suffix when `back > 0`), in a new term if
    /// `new_term`.
    Append {
        back: u64,
        count: u64,
        new_term: bool,
    },
    /// Compacts up to the entry `back` entries before the log's end.
    Compact { back: u64 },
    /// Installs a snapshot `back` entries before the log's end (or
    /// `ahead` past it, if `ahead > 0`), with the stored entry's term, or
    /// with the current term when `other_term`.
    Install {
        back: u64,
        ahead: u64,
        other_term: bool,
    },
    /// Closes and reopens the RocksDB store.
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..4u64, 1..6u64, any::<bool>())
            .prop_map(|(back, count, new_term)| Step::Append { back, count, new_term }),
        2 => (0..8u64).prop_map(|back| Step::Compact { back }),
        1 => (0..8u64, 0..3u64, any::<bool>())
            .prop_map(|(back, ahead, other_term)| Step::Install { back, ahead, other_term }),
        1 => Just(Step::Reopen),
    ]
}

/// Each index with its term as a storage answers it (an error as `None`).
type Terms = Vec<(LogIndex, Option<Term>)>;

/// Every index's term from the compacted prefix to one past the log's
/// end, as the storage answers it.
fn terms(storage: &impl Storage) -> Terms {
    let (first, last) = (storage.first_index(), storage.last_index());
    (first.prev().0..=last.next().0)
        .map(|index| (LogIndex(index), storage.term(LogIndex(index)).ok()))
        .collect()
}

/// What a reader sees of the log: every index's term ([`terms`]) and the
/// entries from each index to the end, whole and with a byte limit of two
/// entries.
fn log_view(storage: &impl Storage) -> (Terms, Vec<Vec<Entry>>) {
    let (first, end) = (storage.first_index(), storage.last_index().next());
    let two_entries = 2 * entries(1..=1, 1)[0].size_bytes();
    let reads = (first.0..end.0)
        .flat_map(|low| {
            [u64::MAX, two_entries].map(|bytes_max| {
                storage
                    .entries(LogIndex(low), end, bytes_max)
                    .expect("entries within the log")
            })
        })
        .collect();
    (terms(storage), reads)
}

/// The index `back` entries before the log's end, not below the prefix.
fn before_end(storage: &impl Storage, back: u64) -> LogIndex {
    let prefix = storage.first_index().prev();
    LogIndex(storage.last_index().0.saturating_sub(back).max(prefix.0))
}

/// Applies `step` to `storage`; `term` is the newest term so far.
fn apply(storage: &mut impl Storage, step: &Step, term: &mut u64) {
    match *step {
        Step::Append {
            back,
            count,
            new_term,
        } => {
            *term += u64::from(new_term);
            let from = before_end(storage, back).next().0;
            let appended = entries(from..=from + count - 1, *term);
            append(storage, &appended).expect("append within the log");
        }
        Step::Compact { back } => {
            let index = before_end(storage, back);
            storage
                .compact(index, voters(&[1, 2, 3]))
                .expect("compaction within the log");
        }
        Step::Install {
            back,
            ahead,
            other_term,
        } => {
            let index = if ahead > 0 {
                LogIndex(storage.last_index().0 + ahead)
            } else {
                before_end(storage, back)
            };
            let stored = storage.term(index).ok();
            let snapshot_term = match stored {
                Some(stored) if !other_term => stored.0,
                _ => {
                    *term += 1;
                    *term
                }
            };
            let meta = snapshot_meta(index.0, snapshot_term, voters(&[1, 2, 3]));
            install(storage, &meta).expect("install");
        }
        Step::Reopen => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn recorded_terms_and_cached_entries_match_the_stored_log(steps in prop::collection::vec(step(), 1..40)) {
        let mut model = Fixture::<MemStorage>::new(voters(&[1, 2, 3]));
        let mut rocks = Fixture::<RocksStorage>::new(voters(&[1, 2, 3]));
        let (mut model_term, mut rocks_term) = (1, 1);
        for (number, step) in steps.iter().enumerate() {
            if matches!(step, Step::Reopen) {
                let before = log_view(&rocks.storage);
                rocks = rocks.restart();
                prop_assert_eq!(log_view(&rocks.storage), before, "step {}: reopened", number);
                continue;
            }
            apply(&mut model.storage, step, &mut model_term);
            apply(&mut rocks.storage, step, &mut rocks_term);
            prop_assert_eq!(
                log_view(&rocks.storage),
                log_view(&model.storage),
                "step {}: {:?}",
                number,
                step
            );
        }
    }
}
