//! Property tests of the request and snapshot encodings.
//!
//! Goal: decoding inverts encoding, never panics on any input, and accepts
//! only canonical bytes. Method: proptest generates requests (arbitrary
//! strings and gids, bad input included), states from random admin
//! sequences, arbitrary byte strings, and single-byte corruptions of valid
//! encodings.

mod common;

use std::collections::BTreeMap;

use common::sequence_strategy;
use proptest::prelude::*;
use shardctrler::{Command, ControllerState, GroupId, Request, ShardId};

fn command_strategy() -> impl Strategy<Value = Command> {
    let gid = any::<u64>().prop_map(GroupId);
    let servers = proptest::collection::vec(".{0,12}", 0..3);
    prop_oneof![
        proptest::collection::btree_map(gid.clone(), servers, 0..4)
            .prop_map(|groups: BTreeMap<GroupId, Vec<String>>| Command::Join { groups }),
        proptest::collection::vec(gid.clone(), 0..4).prop_map(|gids| Command::Leave { gids }),
        (any::<u32>(), gid).prop_map(|(shard, gid)| Command::Move {
            shard: ShardId(shard),
            gid
        }),
    ]
}

fn request_strategy() -> impl Strategy<Value = Request> {
    (any::<u64>(), any::<u64>(), command_strategy()).prop_map(|(client_id, seq, command)| Request {
        client_id,
        seq,
        timestamp_ms: 0,
        command,
    })
}

proptest! {
    #[test]
    fn requests_round_trip(request in request_strategy()) {
        prop_assert_eq!(Request::decode(&request.encode()), Ok(request));
    }

    #[test]
    fn snapshots_round_trip((shard_count, ops) in sequence_strategy()) {
        let state = common::run(shard_count, &ops);
        prop_assert_eq!(ControllerState::decode_snapshot(&state.encode_snapshot()), Ok(state));
    }

    // Arbitrary bytes, with or without a valid header, never panic.
    #[test]
    fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..200)) {
        for magic in [&b""[..], b"SCRQ\x01\x00", b"SCSN\x01\x00"] {
            let bytes = [magic, &tail].concat();
            let _ = Request::decode(&bytes);
            let _ = ControllerState::decode_snapshot(&bytes);
        }
    }

    // A corrupted byte is refused, or the bytes are still a canonical
    // encoding of some valid value (for example a changed address).
    #[test]
    fn corrupted_snapshot_is_refused_or_canonical(
        (shard_count, ops) in sequence_strategy(),
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut bytes = common::run(shard_count, &ops).encode_snapshot();
        let offset = position.index(bytes.len());
        bytes[offset] = value;
        if let Ok(state) = ControllerState::decode_snapshot(&bytes) {
            prop_assert_eq!(state.encode_snapshot(), bytes);
        }
    }

    #[test]
    fn corrupted_request_is_refused_or_canonical(
        request in request_strategy(),
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut bytes = request.encode();
        let offset = position.index(bytes.len());
        bytes[offset] = value;
        // Canonical within the current version (2); a version 1 request
        // decodes too, and encodes as version 2.
        if let Ok(decoded) = Request::decode(&bytes)
            && bytes[4..6] == [2, 0]
        {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }

    // Every strict prefix of a snapshot is refused.
    #[test]
    fn truncated_snapshot_is_refused(
        (shard_count, ops) in sequence_strategy(),
        position in any::<prop::sample::Index>(),
    ) {
        let bytes = common::run(shard_count, &ops).encode_snapshot();
        let length = position.index(bytes.len());
        prop_assert!(ControllerState::decode_snapshot(&bytes[..length]).is_err());
    }
}
