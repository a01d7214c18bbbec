//! Unit tests of the request and snapshot encodings: round trips, the exact
//! documented layout, and refusal of truncated and corrupted input. Random
//! inputs are covered by `tests/codec_props.rs`.

use std::collections::BTreeMap;

use crate::command::{Command, Request};
use crate::error::{AdminError, DecodeError};
use crate::state_machine::ControllerState;
use crate::types::{GroupId, ShardId};

fn every_command() -> Vec<Command> {
    let mut groups = BTreeMap::new();
    groups.insert(GroupId(1), vec!["a:1".to_string(), "é:2".to_string()]);
    groups.insert(GroupId(u64::MAX), vec![]);
    vec![
        Command::Join { groups },
        Command::Join {
            groups: BTreeMap::new(),
        },
        Command::Leave {
            gids: vec![GroupId(3), GroupId(3), GroupId(0)],
        },
        Command::Leave { gids: vec![] },
        Command::Move {
            shard: ShardId(u32::MAX),
            gid: GroupId(9),
        },
    ]
}

/// Returns a state whose sessions hold a success and every kind of recorded
/// error field layout.
fn sample_state() -> ControllerState {
    let mut state = ControllerState::new(4);
    let mut apply = |client_id, command| {
        let _ = state.apply(Request {
            client_id,
            seq: 1,
            command,
        });
    };
    let one_group = |gid: u64| Command::Join {
        groups: [(GroupId(gid), vec![format!("host-{gid}:1")])].into(),
    };
    apply(1, one_group(1));
    apply(2, one_group(2));
    apply(3, one_group(1));
    apply(4, Command::Leave { gids: vec![] });
    apply(
        5,
        Command::Move {
            shard: ShardId(9),
            gid: GroupId(1),
        },
    );
    apply(
        6,
        Command::Move {
            shard: ShardId(0),
            gid: GroupId(2),
        },
    );
    let many_servers = (0..20).map(|i| format!("h{i}:1")).collect();
    apply(
        7,
        Command::Join {
            groups: [(GroupId(3), many_servers)].into(),
        },
    );
    apply(
        8,
        Command::Join {
            groups: [(GroupId(3), vec!["no-port".into()])].into(),
        },
    );
    apply(
        9,
        Command::Join {
            groups: [(GroupId(3), vec!["host-1:1".into()])].into(),
        },
    );
    state
}

#[test]
fn requests_round_trip() {
    for (seq, command) in (1u64..).zip(every_command()) {
        let request = Request {
            client_id: u64::MAX - seq,
            seq,
            command,
        };
        assert_eq!(Request::decode(&request.encode()), Ok(request));
    }
}

#[test]
fn snapshots_round_trip() {
    for state in [
        ControllerState::new(0),
        ControllerState::new(64),
        sample_state(),
    ] {
        let bytes = state.encode_snapshot();
        assert_eq!(ControllerState::decode_snapshot(&bytes), Ok(state));
    }
}

// Every strict prefix of a valid encoding is refused, never misread.
#[test]
fn truncated_input_is_refused() {
    let snapshot = sample_state().encode_snapshot();
    for length in 0..snapshot.len() {
        let outcome = ControllerState::decode_snapshot(&snapshot[..length]);
        assert!(outcome.is_err(), "prefix of {length} bytes decoded");
    }
    for command in every_command() {
        let request = Request {
            client_id: 1,
            seq: 1,
            command,
        }
        .encode();
        for length in 0..request.len() {
            assert!(Request::decode(&request[..length]).is_err());
        }
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut snapshot = sample_state().encode_snapshot();
    snapshot.push(0);
    assert_eq!(
        ControllerState::decode_snapshot(&snapshot),
        Err(DecodeError::TrailingBytes { count: 1 })
    );
}

/// Returns a one-group snapshot whose layout the corruption tests address
/// byte by byte (see the module documentation of `codec.rs`):
/// 0..6 header, 6..10 shard count 2, 10..18 config count 2,
/// 18..50 config 0 (num, 2 shards, 0 groups),
/// 50..109 config 1 (num 50..58, shards 58..74, group count 74..82, gid
/// 82..90, server count 90..98, length 98..106, "a:1" at 106..109),
/// 109..117 session count, 117..125 client, 125..133 seq, 133 reply tag,
/// 134..142 config num.
fn one_group_snapshot() -> Vec<u8> {
    let mut state = ControllerState::new(2);
    let groups = [(GroupId(1), vec!["a:1".to_string()])].into();
    let request = Request {
        client_id: 5,
        seq: 1,
        command: Command::Join { groups },
    };
    state.apply(request).expect("join");
    let bytes = state.encode_snapshot();
    assert_eq!(bytes.len(), 142, "layout changed: update the offsets");
    bytes
}

fn corrupted(offset: usize, value: u8) -> Result<ControllerState, DecodeError> {
    let mut bytes = one_group_snapshot();
    bytes[offset] = value;
    ControllerState::decode_snapshot(&bytes)
}

#[test]
fn corrupted_framing_is_refused() {
    assert!(matches!(
        corrupted(0, b'X'),
        Err(DecodeError::BadMagic { .. })
    ));
    assert_eq!(
        corrupted(4, 2),
        Err(DecodeError::UnsupportedVersion {
            found: 2,
            supported: 1
        })
    );
    assert_eq!(
        corrupted(106, 0xFF),
        Err(DecodeError::InvalidUtf8 { offset: 106 })
    );
    assert!(matches!(
        corrupted(133, 7),
        Err(DecodeError::UnknownTag {
            kind: "reply",
            tag: 7,
            offset: 133
        })
    ));
    // A config count no input could hold is refused before allocating.
    let mut bytes = one_group_snapshot();
    bytes[10..18].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        ControllerState::decode_snapshot(&bytes),
        Err(DecodeError::Truncated { .. })
    ));
    // A request is not a snapshot.
    let request = Request {
        client_id: 1,
        seq: 1,
        command: Command::Leave { gids: vec![] },
    };
    assert!(matches!(
        ControllerState::decode_snapshot(&request.encode()),
        Err(DecodeError::BadMagic { .. })
    ));
}

// Well-formed bytes that break a state invariant are refused too.
#[test]
fn corrupted_state_is_refused() {
    let cases = [
        (26, 1),  // configuration 0 has a shard on gid 1
        (50, 5),  // configuration 1 is numbered 5
        (58, 3),  // a shard on gid 3, which is not a group
        (82, 0),  // the group has gid 0
        (98, 0),  // an empty server address, misaligning the rest
        (125, 0), // a session with seq 0
        (134, 9), // a session reply naming configuration 9
    ];
    for (offset, value) in cases {
        let outcome = corrupted(offset, value);
        assert!(
            outcome.is_err(),
            "corruption at {offset} decoded: {outcome:?}"
        );
    }
    assert!(matches!(
        corrupted(58, 3),
        Err(DecodeError::InvalidState { .. })
    ));
}

#[test]
fn unordered_or_repeated_map_keys_are_refused() {
    let groups = [
        (GroupId(1), vec!["a".to_string()]),
        (GroupId(2), vec!["b".to_string()]),
    ];
    let request = Request {
        client_id: 1,
        seq: 1,
        command: Command::Join {
            groups: groups.into(),
        },
    };
    let mut bytes = request.encode();
    // Layout: header 0..6, client 6..14, seq 14..22, tag 22, count 23..31,
    // gid 31..39, servers 39..56, second gid 56..64.
    assert_eq!(bytes[56], 2);
    bytes[56] = 1;
    assert_eq!(
        Request::decode(&bytes),
        Err(DecodeError::UnorderedKeys { offset: 56 })
    );
}

#[test]
fn unknown_command_and_error_tags_are_refused() {
    let mut bytes = Request {
        client_id: 1,
        seq: 1,
        command: Command::Leave { gids: vec![] },
    }
    .encode();
    bytes[22] = 0;
    assert!(matches!(
        Request::decode(&bytes),
        Err(DecodeError::UnknownTag {
            kind: "command",
            ..
        })
    ));
    let mut state = ControllerState::new(1);
    let refused = state.apply(Request {
        client_id: 1,
        seq: 1,
        command: Command::Leave { gids: vec![] },
    });
    assert_eq!(refused, Err(AdminError::EmptyLeave));
    let mut bytes = state.encode_snapshot();
    let last = bytes.len() - 1;
    bytes[last] = 200;
    assert!(matches!(
        ControllerState::decode_snapshot(&bytes),
        Err(DecodeError::UnknownTag {
            kind: "admin error",
            tag: 200,
            ..
        })
    ));
}
