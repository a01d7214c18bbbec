//! Unit tests of [`ControllerState::apply`]'s at-most-once sessions and of its
//! validation: every retry gets the first reply without applying again, and
//! every kind of bad admin input is refused with the history unchanged
//! (DESIGN.md, "Sharding and configurations", "Clients and semantics").

use std::collections::BTreeMap;

use super::tests::{
    ADMIN, SHARD_COUNT, Tester, join_command, leave_command, move_command, servers,
};
use super::{ControllerState, SERVERS_PER_GROUP_MAX};
use crate::command::{Command, Request};
use crate::error::AdminError;
use crate::types::{ConfigNum, GroupId, ShardId};

fn request(client_id: u64, seq: u64, command: Command) -> Request {
    Request {
        client_id,
        seq,
        timestamp_ms: 0,
        command,
    }
}

// A retried Join returns the configuration it created the first time, even
// after other clients created newer ones, and creates nothing new.
#[test]
fn retried_request_returns_first_reply_and_applies_once() {
    let mut state = ControllerState::new(SHARD_COUNT);
    let first = state.apply(request(7, 1, join_command(&[1])));
    assert_eq!(first.as_ref().map(|config| config.num), Ok(ConfigNum(1)));
    state
        .apply(request(8, 1, join_command(&[2])))
        .expect("another client joins");
    let history = state.history().to_vec();
    let retry = state.apply(request(7, 1, join_command(&[1])));
    assert_eq!(retry, first);
    assert_eq!(state.history(), history.as_slice());
    // The retry is recognized by (client, seq): even a different body is not
    // applied, since a client never reuses a seq for another command.
    let odd_retry = state.apply(request(7, 1, leave_command(&[1])));
    assert_eq!(odd_retry, first);
    assert_eq!(state.history(), history.as_slice());
}

// A refused request records its error: a retry gets the same error even if
// the request would now succeed, so a reply never changes under a retry.
#[test]
fn retried_refused_request_gets_the_same_error() {
    let mut state = ControllerState::new(SHARD_COUNT);
    let refused = state.apply(request(7, 1, leave_command(&[5])));
    assert_eq!(refused, Err(AdminError::UnknownGroup { gid: GroupId(5) }));
    state
        .apply(request(8, 1, join_command(&[5])))
        .expect("another client joins group 5");
    let history = state.history().to_vec();
    assert_eq!(state.apply(request(7, 1, leave_command(&[5]))), refused);
    assert_eq!(state.history(), history.as_slice());
    let session = state.session(7).expect("session recorded");
    assert_eq!(session.last_seq, 1);
    assert_eq!(
        &session.reply,
        &Err(AdminError::UnknownGroup { gid: GroupId(5) })
    );
    // The client's next request executes normally.
    assert!(state.apply(request(7, 2, leave_command(&[5]))).is_ok());
}

// A request older than the client's last one has lost its reply: it is
// refused as stale, not applied, and leaves the session as it was.
#[test]
fn stale_request_is_refused_and_not_recorded() {
    let mut state = ControllerState::new(SHARD_COUNT);
    state
        .apply(request(7, 1, join_command(&[1])))
        .expect("join");
    state
        .apply(request(7, 2, join_command(&[2])))
        .expect("join");
    let before = state.clone();
    assert_eq!(
        state.apply(request(7, 1, join_command(&[3]))),
        Err(AdminError::StaleRequest {
            client_id: 7,
            seq: 1,
            last_seq: 2
        })
    );
    assert_eq!(state, before);
}

// Client id 0 and seq 0 are never used by a client; they are refused without
// creating a session.
#[test]
fn zero_client_id_or_seq_is_refused_without_a_session() {
    let mut state = ControllerState::new(SHARD_COUNT);
    let before = state.clone();
    for (client_id, seq) in [(0, 1), (7, 0), (0, 0)] {
        assert_eq!(
            state.apply(request(client_id, seq, join_command(&[1]))),
            Err(AdminError::InvalidSession { client_id, seq })
        );
    }
    assert_eq!(state, before);
}

// Sessions are per client: equal seqs of different clients are different
// requests, and a client may skip sequence numbers.
#[test]
fn sessions_are_per_client_and_accept_gaps() {
    let mut state = ControllerState::new(SHARD_COUNT);
    state
        .apply(request(7, 1, join_command(&[1])))
        .expect("join 1");
    state
        .apply(request(8, 1, join_command(&[2])))
        .expect("join 2");
    state
        .apply(request(7, 5, join_command(&[3])))
        .expect("join 3");
    assert_eq!(state.latest().num, ConfigNum(3));
    assert_eq!(state.session_count(), 2);
    assert_eq!(state.session(7).map(|s| s.last_seq), Some(5));
}

/// Returns a tester with groups 1 and 2 joined.
fn two_group_tester() -> Tester {
    let mut tester = Tester::new();
    tester.join(&[1, 2]);
    tester
}

fn join_groups(groups: &[(u64, Vec<String>)]) -> Command {
    let groups: BTreeMap<GroupId, Vec<String>> = groups
        .iter()
        .map(|(gid, servers)| (GroupId(*gid), servers.clone()))
        .collect();
    Command::Join { groups }
}

/// Returns `count` distinct valid addresses.
fn numbered_servers(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("replica-{i}:7000")).collect()
}

/// Returns every kind of bad input with the error it must get, against the
/// state of [`two_group_tester`].
fn bad_inputs() -> Vec<(Command, AdminError)> {
    let mut inputs = bad_joins();
    inputs.extend(bad_join_addresses());
    inputs.extend(bad_leaves_and_moves());
    inputs
}

/// Returns every kind of bad Join but its addresses (see [`bad_inputs`]).
fn bad_joins() -> Vec<(Command, AdminError)> {
    use AdminError::*;
    let gid = GroupId;
    vec![
        (join_groups(&[]), EmptyJoin),
        (join_command(&[1]), GroupAlreadyPresent { gid: gid(1) }),
        (join_command(&[3, 2]), GroupAlreadyPresent { gid: gid(2) }),
        (join_command(&[0]), ReservedGid),
        (join_groups(&[(3, vec![])]), EmptyServerList { gid: gid(3) }),
        (
            join_groups(&[(3, vec![String::new()])]),
            EmptyServerAddress { gid: gid(3) },
        ),
        (
            join_groups(&[(3, servers(3)), (4, vec![])]),
            EmptyServerList { gid: gid(4) },
        ),
        (
            join_groups(&[(3, numbered_servers(SERVERS_PER_GROUP_MAX + 1))]),
            TooManyServers {
                gid: gid(3),
                count: SERVERS_PER_GROUP_MAX as u64 + 1,
                max: SERVERS_PER_GROUP_MAX as u64,
            },
        ),
    ]
}

/// Returns every kind of bad address in a Join (see [`bad_inputs`]).
fn bad_join_addresses() -> Vec<(Command, AdminError)> {
    use AdminError::*;
    let gid = GroupId;
    vec![
        (
            join_groups(&[(3, vec!["g3-a:7000".into(), "g3-b".into()])]),
            BadServerAddress {
                gid: gid(3),
                address: "g3-b".into(),
            },
        ),
        (
            join_groups(&[(3, vec![format!("{}:1", "h".repeat(300))])]),
            BadServerAddress {
                gid: gid(3),
                address: format!("{}...", "h".repeat(64)),
            },
        ),
        (
            join_groups(&[(3, vec!["g3-a:7000".into(), "g3-a:7000".into()])]),
            DuplicateServerAddress {
                address: "g3-a:7000".into(),
                gid: gid(3),
                listed_by: gid(3),
            },
        ),
        (
            join_groups(&[(3, vec![servers(2)[1].clone()])]),
            DuplicateServerAddress {
                address: servers(2)[1].clone(),
                gid: gid(3),
                listed_by: gid(2),
            },
        ),
        (
            join_groups(&[(3, servers(3)), (4, vec![servers(3)[0].clone()])]),
            DuplicateServerAddress {
                address: servers(3)[0].clone(),
                gid: gid(4),
                listed_by: gid(3),
            },
        ),
        (
            join_groups(&[(3, vec!["G2-A:7000".into()])]),
            DuplicateServerAddress {
                address: "G2-A:7000".into(),
                gid: gid(3),
                listed_by: gid(2),
            },
        ),
        // Addresses in list order, each group's before the next group.
        (
            join_groups(&[(3, vec![String::new(), "bad".into()])]),
            EmptyServerAddress { gid: gid(3) },
        ),
        (
            join_groups(&[(3, vec!["bad".into(), String::new()])]),
            BadServerAddress {
                gid: gid(3),
                address: "bad".into(),
            },
        ),
        (
            join_groups(&[(3, vec!["bad".into()]), (4, vec![])]),
            BadServerAddress {
                gid: gid(3),
                address: "bad".into(),
            },
        ),
    ]
}

/// Returns every kind of bad Leave and Move (see [`bad_inputs`]).
fn bad_leaves_and_moves() -> Vec<(Command, AdminError)> {
    use AdminError::*;
    let gid = GroupId;
    vec![
        (leave_command(&[]), EmptyLeave),
        (leave_command(&[0]), ReservedGid),
        (leave_command(&[7]), UnknownGroup { gid: gid(7) }),
        (leave_command(&[1, 7]), UnknownGroup { gid: gid(7) }),
        (leave_command(&[1, 1]), DuplicateGroup { gid: gid(1) }),
        (
            move_command(SHARD_COUNT, 1),
            ShardOutOfRange {
                shard: ShardId(SHARD_COUNT),
                shard_count: SHARD_COUNT,
            },
        ),
        (
            move_command(u32::MAX, 1),
            ShardOutOfRange {
                shard: ShardId(u32::MAX),
                shard_count: SHARD_COUNT,
            },
        ),
        (move_command(0, 0), ReservedGid),
        (move_command(0, 9), UnknownGroup { gid: gid(9) }),
    ]
}

// Every kind of bad admin input gets its error and changes no configuration;
// only the session records the refusal.
#[test]
fn bad_input_is_refused_and_changes_nothing() {
    for (command, expected) in bad_inputs() {
        let mut tester = two_group_tester();
        let history = tester.state.history().to_vec();
        let outcome = tester.try_apply(command.clone());
        assert_eq!(outcome, Err(expected.clone()), "command {command:?}");
        assert_eq!(tester.state.history(), history.as_slice(), "{command:?}");
        let session = tester.state.session(ADMIN).expect("session");
        assert_eq!(session.last_seq, tester.seq);
        assert_eq!(&session.reply, &Err(expected));
        tester.state.check_invariants().expect("invariants hold");
    }
}

#[test]
fn admin_errors_name_what_is_wrong() {
    let message = AdminError::ShardOutOfRange {
        shard: ShardId(12),
        shard_count: 10,
    }
    .to_string();
    assert!(
        message.contains("12") && message.contains("10"),
        "{message}"
    );
    let message = AdminError::UnknownGroup { gid: GroupId(7) }.to_string();
    assert!(message.contains('7'), "{message}");
    let message = AdminError::DuplicateServerAddress {
        address: "kv-1:7000".into(),
        gid: GroupId(4),
        listed_by: GroupId(2),
    }
    .to_string();
    assert!(
        message.contains("\"kv-1:7000\"")
            && message.contains("group 4 ")
            && message.ends_with("group 2"),
        "{message}"
    );
    let message = AdminError::DuplicateServerAddress {
        address: "kv-1:7000".into(),
        gid: GroupId(4),
        listed_by: GroupId(4),
    }
    .to_string();
    assert!(message.ends_with("listed twice by group 4"), "{message}");
}

// The largest group a Join may list is accepted, with every address kept.
#[test]
fn a_join_at_the_server_limit_is_accepted() {
    let mut tester = two_group_tester();
    let servers = numbered_servers(SERVERS_PER_GROUP_MAX);
    let config = tester.apply(join_groups(&[(3, servers.clone())]));
    assert_eq!(config.groups[&GroupId(3)], servers);
}

fn request_at(client_id: u64, seq: u64, command: Command, timestamp_ms: u64) -> Request {
    Request {
        timestamp_ms,
        ..request(client_id, seq, command)
    }
}

// Goal: sessions unused for longer than the TTL at a request's logged time
// are removed by that request, the others kept; a repeated request keeps
// its session alive; a client whose session expired starts afresh.
// Method: clients 7, 8 and 9 at logged times 0, 1 s and TTL; client 7
// repeats at TTL - 0.5 s; a request at TTL + 1.5 s removes client 8 only
// (idle TTL + 0.5 s; client 7 idle 2 s, client 9 idle 1.5 s).
#[test]
fn sessions_idle_past_the_ttl_expire_at_the_same_request_everywhere() {
    use raft::session::SESSION_TTL_MS as TTL;
    let mut state = ControllerState::new(SHARD_COUNT);
    let joined = state.apply(request_at(7, 1, join_command(&[1]), 0));
    state
        .apply(request_at(8, 1, join_command(&[2]), 1_000))
        .expect("client 8");
    state
        .apply(request_at(9, 1, move_command(0, 1), TTL))
        .expect("client 9");
    let repeat = state.apply_logged(request_at(7, 1, join_command(&[1]), TTL - 500));
    assert_eq!(repeat.reply, joined, "a repeat gets its first reply");
    assert_eq!(repeat.expired, Vec::<u64>::new());
    let mut replica = state.clone();
    let applied = state.apply_logged(request_at(10, 1, leave_command(&[9]), TTL + 1_500));
    assert_eq!(applied.expired, vec![8]);
    assert_eq!(state.session_count(), 3);
    assert!(state.session(8).is_none());
    assert_eq!(state.session(7).map(|s| s.used_ms), Some(TTL - 500));
    // Another replica applying the same entry removes the same sessions.
    replica
        .apply(request_at(10, 1, leave_command(&[9]), TTL + 1_500))
        .ok();
    assert_eq!(replica, state);
    // Client 8's old request now executes anew: its reply was forgotten.
    let history = state.history().len();
    let again = state.apply(request_at(8, 1, join_command(&[2]), TTL + 2_000));
    assert_eq!(
        again,
        Err(AdminError::GroupAlreadyPresent { gid: GroupId(2) })
    );
    assert_eq!(state.history().len(), history);
    assert_eq!(state.session(8).map(|s| s.last_seq), Some(1));
}
