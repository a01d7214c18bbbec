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
            timestamp_ms: 0,
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
            timestamp_ms: 0,
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
            timestamp_ms: 0,
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
/// 134..142 config num, 142..150 last use.
fn one_group_snapshot() -> Vec<u8> {
    let mut state = ControllerState::new(2);
    let groups = [(GroupId(1), vec!["a:1".to_string()])].into();
    let request = Request {
        client_id: 5,
        seq: 1,
        timestamp_ms: 7,
        command: Command::Join { groups },
    };
    state.apply(request).expect("join");
    let bytes = state.encode_snapshot();
    assert_eq!(bytes.len(), 150, "layout changed: update the offsets");
    assert_eq!(bytes[142..150], 7u64.to_le_bytes());
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
        corrupted(4, 3),
        Err(DecodeError::UnsupportedVersion {
            found: 3,
            supported: 2
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
        timestamp_ms: 0,
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
        timestamp_ms: 0,
        command: Command::Join {
            groups: groups.into(),
        },
    };
    let mut bytes = request.encode();
    // Layout: header 0..6, client 6..14, seq 14..22, time 22..30, tag 30,
    // count 31..39, gid 39..47, servers 47..64, second gid 64..72.
    assert_eq!(bytes[64], 2);
    bytes[64] = 1;
    assert_eq!(
        Request::decode(&bytes),
        Err(DecodeError::UnorderedKeys { offset: 64 })
    );
}

#[test]
fn unknown_command_and_error_tags_are_refused() {
    let mut bytes = Request {
        client_id: 1,
        seq: 1,
        timestamp_ms: 0,
        command: Command::Leave { gids: vec![] },
    }
    .encode();
    bytes[30] = 0;
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
        timestamp_ms: 0,
        command: Command::Leave { gids: vec![] },
    });
    assert_eq!(refused, Err(AdminError::EmptyLeave));
    let mut bytes = state.encode_snapshot();
    // The session ends with the error's one-byte tag, then its last use.
    let tag = bytes.len() - 9;
    bytes[tag] = 200;
    assert!(matches!(
        ControllerState::decode_snapshot(&bytes),
        Err(DecodeError::UnknownTag {
            kind: "admin error",
            tag: 200,
            ..
        })
    ));
}

// Goal: what an older build wrote still opens: a version 1 request (no
// time) and a version 1 snapshot and session record (no last use) decode
// with time 0, and the current version round-trips its times.
#[test]
fn version_1_requests_snapshots_and_sessions_still_decode() {
    let request = Request {
        client_id: 4,
        seq: 2,
        timestamp_ms: 1_700_000_000_000,
        command: Command::Leave {
            gids: vec![GroupId(1)],
        },
    };
    let current = request.encode();
    assert_eq!(Request::decode(&current), Ok(request.clone()));
    let mut version_1 = current.clone();
    version_1[4..6].copy_from_slice(&1u16.to_le_bytes());
    version_1.drain(22..30);
    let decoded = Request::decode(&version_1).expect("version 1 request");
    assert_eq!(
        decoded,
        Request {
            timestamp_ms: 0,
            ..request
        }
    );

    let current = one_group_snapshot();
    let mut version_1 = current.clone();
    version_1[4..6].copy_from_slice(&1u16.to_le_bytes());
    version_1.truncate(142);
    let old = ControllerState::decode_snapshot(&version_1).expect("version 1 snapshot");
    let new = ControllerState::decode_snapshot(&current).expect("current snapshot");
    assert_eq!(old.history(), new.history());
    let (old_session, new_session) = (old.session(5).unwrap(), new.session(5).unwrap());
    assert_eq!((old_session.used_ms, new_session.used_ms), (0, 7));
    assert_eq!(
        (&old_session.reply, old_session.last_seq),
        (&new_session.reply, new_session.last_seq)
    );

    let record = crate::codec::encode_session_record(new_session);
    let mut version_1 = record.clone();
    version_1[4..6].copy_from_slice(&1u16.to_le_bytes());
    version_1.truncate(record.len() - 8);
    let decoded = crate::codec::decode_session_record(&version_1).expect("version 1 record");
    assert_eq!((decoded.last_seq, decoded.used_ms), (1, 0));
    assert_eq!(
        crate::codec::decode_session_record(&record).as_ref(),
        Ok(new_session)
    );
}
