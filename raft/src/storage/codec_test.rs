//! Unit tests of the record formats: every record round-trips, and any
//! damage (a flipped byte, a truncation, a record under the wrong key) is
//! reported as corruption naming the index and location.

use bytes::Bytes;

use super::*;

const LOCATION: &str = "test/raft_log";

fn entry(index: u64, kind: EntryKind, data: &'static [u8]) -> Entry {
    Entry {
        term: Term(7),
        index: LogIndex(index),
        kind,
        data: Bytes::from_static(data),
    }
}

fn membership() -> Membership {
    let mut membership = Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]);
    membership.learners.insert(NodeId(9));
    membership
}

fn assert_corruption(result: Result<impl std::fmt::Debug, StorageError>, index: LogIndex) {
    match result {
        Err(StorageError::Corruption {
            index: reported,
            location,
            ..
        }) => {
            assert_eq!(reported, index);
            assert_eq!(location, LOCATION);
        }
        other => panic!("expected corruption at {index}, got {other:?}"),
    }
}

#[test]
fn entries_round_trip() {
    for original in [
        entry(1, EntryKind::Normal, b""),
        entry(42, EntryKind::Normal, b"put k v"),
        entry(
            u64::MAX,
            EntryKind::ConfChange,
            b"\x00\x00\x00\x00\x00\x00\x00\x00\x04",
        ),
    ] {
        let record = encode_entry(&original);
        assert_eq!(
            decode_entry(original.index, LOCATION, &record).unwrap(),
            original
        );
    }
}

// Goal: the crc32 catches any single damaged byte. Method: flip every bit
// pattern of every byte of one encoded entry (the crc32 itself included)
// and require a corruption error naming the entry's index.
#[test]
fn every_single_byte_flip_of_an_entry_is_detected() {
    let original = entry(5, EntryKind::Normal, b"some payload bytes");
    let record = encode_entry(&original);
    for position in 0..record.len() {
        for mask in 1..=u8::MAX {
            let mut damaged = record.clone();
            damaged[position] ^= mask;
            assert_corruption(decode_entry(LogIndex(5), LOCATION, &damaged), LogIndex(5));
        }
    }
}

#[test]
fn crc_mismatch_names_expected_and_actual_crc() {
    let mut record = encode_entry(&entry(3, EntryKind::Normal, b"abc"));
    *record.last_mut().unwrap() ^= 1;
    let Err(StorageError::Corruption { detail, .. }) = decode_entry(LogIndex(3), LOCATION, &record)
    else {
        panic!("a flipped byte must be corruption");
    };
    assert!(detail.contains("expected 0x"), "{detail}");
    assert!(detail.contains("actual 0x"), "{detail}");
}

#[test]
fn truncated_and_misplaced_entries_are_corruption() {
    let record = encode_entry(&entry(8, EntryKind::Normal, b"xyz"));
    for length in 0..record.len() {
        assert_corruption(
            decode_entry(LogIndex(8), LOCATION, &record[..length]),
            LogIndex(8),
        );
    }
    // A valid record under the key of another index.
    assert_corruption(decode_entry(LogIndex(9), LOCATION, &record), LogIndex(9));
}

#[test]
fn unknown_entry_kind_is_corruption() {
    let mut record = RecordWriter::with_capacity(17);
    record.u64(1);
    record.u64(4);
    record.u8(7);
    assert_corruption(
        decode_entry(LogIndex(4), LOCATION, &record.finish()),
        LogIndex(4),
    );
}

#[test]
fn hard_state_round_trips() {
    for hard_state in [
        HardState::default(),
        HardState {
            term: Term(3),
            vote: Some(NodeId(2)),
            commit: LogIndex(17),
        },
    ] {
        let record = encode_hard_state(&hard_state);
        assert_eq!(decode_hard_state(LOCATION, &record).unwrap(), hard_state);
        let mut damaged = record.clone();
        damaged[10] ^= 0x40;
        assert_corruption(decode_hard_state(LOCATION, &damaged), LogIndex(0));
    }
}

#[test]
fn snapshot_meta_and_membership_round_trip() {
    for meta in [
        SnapshotMeta::default(),
        SnapshotMeta {
            index: LogIndex(100),
            term: Term(4),
            membership: membership(),
        },
    ] {
        let record = encode_snapshot_meta(&meta);
        assert_eq!(decode_snapshot_meta(LOCATION, &record).unwrap(), meta);
        for length in 0..record.len() {
            assert_corruption(
                decode_snapshot_meta(LOCATION, &record[..length]),
                LogIndex(0),
            );
        }
        for position in 0..record.len() {
            let mut damaged = record.clone();
            damaged[position] ^= 0x04;
            assert_corruption(decode_snapshot_meta(LOCATION, &damaged), LogIndex(0));
        }
    }

    let record = encode_membership(LogIndex(12), &membership());
    assert_eq!(
        decode_membership(LOCATION, &record).unwrap(),
        (LogIndex(12), membership())
    );
    let mut damaged = record.clone();
    damaged[5] ^= 1;
    assert_corruption(decode_membership(LOCATION, &damaged), LogIndex(0));
}

// Goal: a well-framed record with bytes left over after its fields (a
// record of another layout) is corruption, not silently half-read.
#[test]
fn trailing_bytes_in_a_state_record_are_corruption() {
    let mut record = RecordWriter::with_capacity(40);
    record.u64(5);
    record.u64(2);
    record.membership(&membership());
    record.u64(0);
    assert_corruption(
        decode_snapshot_meta(LOCATION, &record.finish()),
        LogIndex(0),
    );
}

#[test]
fn keys_sort_in_index_order() {
    assert!(index_key(LogIndex(255)) < index_key(LogIndex(256)));
    assert!(index_key(LogIndex(0)) < index_key(LogIndex(u64::MAX)));
    assert_eq!(
        decode_index_key(&index_key(LogIndex(99))),
        Some(LogIndex(99))
    );
    assert_eq!(decode_index_key(b"short"), None);
}
