//! Tests of the sequence lock: a read overlapped by a change gives
//! nothing, a dropped change keeps reads failing until the next one
//! publishes, under a racing writer every read that succeeds saw a value
//! that matches the storage it read, and a subscriber learns of each
//! publication once the value is in place.

use std::sync::atomic::AtomicBool;
use std::sync::{Barrier, Mutex};

use super::*;

#[test]
fn a_read_gives_the_value_published_last() {
    let (mut publisher, published) = publish(1u64);
    assert_eq!(published.read(|value| *value), Some(1));
    publisher.begin().publish(2);
    assert_eq!(published.read(|value| *value), Some(2));
}

#[test]
fn a_subscriber_is_told_of_each_publication_and_not_of_a_begin() {
    let (mut publisher, published) = publish(1u64);
    let mut changes = published.subscribe();
    assert!(!changes.has_changed().expect("publisher alive"));
    let change = publisher.begin();
    assert!(
        !changes.has_changed().expect("publisher alive"),
        "a change under way has published nothing"
    );
    change.publish(2);
    assert!(changes.has_changed().expect("publisher alive"));
    changes.borrow_and_update();
    assert_eq!(
        published.read(|value| *value),
        Some(2),
        "in place when told"
    );
    assert!(
        !changes.has_changed().expect("publisher alive"),
        "told once"
    );
}

#[test]
fn a_read_overlapped_by_a_change_gives_nothing() {
    let (mut publisher, published) = publish(1u64);
    let during = publisher.begin();
    assert_eq!(
        published.read(|value| *value),
        None,
        "a change is under way"
    );
    during.publish(2);
    assert_eq!(
        published.read(|value| {
            // A whole change, begun and published while this read runs.
            publisher.begin().publish(3);
            *value
        }),
        None
    );
    assert_eq!(published.read(|value| *value), Some(3));
}

#[test]
fn a_dropped_change_keeps_reads_failing_until_the_next_publishes() {
    let (mut publisher, published) = publish(1u64);
    drop(publisher.begin());
    assert_eq!(published.read(|value| *value), None);
    let next = publisher.begin();
    assert_eq!(published.read(|value| *value), None);
    next.publish(2);
    assert_eq!(published.read(|value| *value), Some(2));
}

/// A writer thread changes a "storage" cell and the published value
/// together, the way the group store writes a batch and publishes its
/// table; readers on other threads read both. A read that succeeds must
/// have seen the value that matches the storage it read.
#[test]
fn every_successful_read_matches_the_storage_it_read() {
    const CHANGES: u64 = 20_000;
    let storage = Arc::new(Mutex::new(0u64));
    let (mut publisher, published) = publish(0u64);
    let done = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Barrier::new(3));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (storage, published) = (Arc::clone(&storage), published.clone());
            let (done, started) = (Arc::clone(&done), Arc::clone(&started));
            std::thread::spawn(move || {
                let read_both = || published.read(|value| (*value, *storage.lock().expect("lock")));
                let mut mismatches = Vec::new();
                started.wait();
                while !done.load(Ordering::Acquire) {
                    if let Some((value, stored)) = read_both()
                        && value != stored
                    {
                        mismatches.push((value, stored));
                    }
                }
                (read_both(), mismatches)
            })
        })
        .collect();
    started.wait();
    for next in 1..=CHANGES {
        let change = publisher.begin();
        *storage.lock().expect("lock") = next;
        std::thread::yield_now();
        change.publish(next);
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        let (last, mismatches) = reader.join().expect("reader");
        assert_eq!(
            last,
            Some((CHANGES, CHANGES)),
            "the read after the writer ended"
        );
        assert!(
            mismatches.is_empty(),
            "{} reads used a value that did not match storage, first (value, storage) {:?}",
            mismatches.len(),
            mismatches[0]
        );
    }
}
