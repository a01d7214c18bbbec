//! Unit tests of the group state machine: writes at most once per shard
//! session, refusals that change nothing, and a shard moved between two
//! groups with its data and its sessions.

use std::collections::BTreeMap;

use proto::config::Config;

use super::*;
use crate::ops::Write;
use crate::shards::ShardState;

const SHARDS: u32 = 4;

fn config(num: u64, owners: [u64; SHARDS as usize]) -> NextConfig {
    let shards: Vec<GroupId> = owners.iter().map(|&gid| GroupId(gid)).collect();
    let groups = shards
        .iter()
        .map(|gid| (*gid, vec![format!("g{}:1", gid.0)]))
        .collect();
    NextConfig {
        config: Config {
            num: ConfigNum(num),
            shards,
            groups,
        },
        holders: BTreeMap::new(),
    }
}

fn group(gid: u64, configs: &[[u64; SHARDS as usize]]) -> GroupMachine<MemData> {
    let mut machine = GroupMachine::new(GroupId(gid), SHARDS, MemData::default());
    for (index, owners) in configs.iter().enumerate() {
        let applied = machine.apply(GroupCommand::Config(config(index as u64 + 1, *owners)));
        assert_eq!(applied, Applied::Config(Ok(())));
    }
    machine
}

fn append(client_id: u64, seq: u64, key: &'static str, value: &'static str) -> GroupCommand {
    GroupCommand::Write {
        client_id,
        seq,
        timestamp_ms: 0,
        write: Write::Append {
            key: Bytes::from_static(key.as_bytes()),
            value: Bytes::from_static(value.as_bytes()),
        },
    }
}

fn value(machine: &GroupMachine<MemData>, key: &str) -> Option<Bytes> {
    machine.read(key.as_bytes()).expect("served")
}

// Goal: a write applies once per (client, seq): a repeat gets the first
// reply and changes nothing, an older one is refused as stale.
#[test]
fn a_write_applies_at_most_once() {
    let mut machine = group(1, &[[1; 4]]);
    assert_eq!(
        machine.apply(append(7, 1, "k", "a")),
        Applied::Write(Ok(WriteReply::Ok))
    );
    assert_eq!(
        machine.apply(append(7, 2, "k", "b")),
        Applied::Write(Ok(WriteReply::Ok))
    );
    assert_eq!(
        machine.apply(append(7, 2, "k", "b")),
        Applied::Write(Ok(WriteReply::Ok))
    );
    let stale = machine.apply(append(7, 1, "k", "a"));
    assert_eq!(
        stale,
        Applied::Write(Err(WriteRefused::Stale { last_seq: 2 }))
    );
    assert_eq!(value(&machine, "k"), Some(Bytes::from_static(b"ab")));
}

// Goal: a write to a shard not served here is refused and changes nothing,
// not even a session; an Append past the value limit is recorded.
#[test]
fn refused_writes_change_nothing() {
    let mut machine = group(1, &[[2; 4]]);
    let before = machine.clone();
    let refused = machine.apply(append(7, 1, "k", "a"));
    assert_eq!(
        refused,
        Applied::Write(Err(WriteRefused::NotServed(NotServed::WrongGroup)))
    );
    assert_eq!(machine, before);

    let mut machine = group(1, &[[1; 4]]);
    let big = Bytes::from(vec![b'v'; VALUE_BYTES_MAX]);
    let put = GroupCommand::Write {
        client_id: 7,
        seq: 1,
        timestamp_ms: 0,
        write: Write::Put {
            key: Bytes::from_static(b"k"),
            value: big.clone(),
        },
    };
    assert_eq!(machine.apply(put), Applied::Write(Ok(WriteReply::Ok)));
    let too_long = machine.apply(append(7, 2, "k", "!"));
    let expected = WriteReply::ValueTooLong {
        length: VALUE_BYTES_MAX + 1,
    };
    assert_eq!(too_long, Applied::Write(Ok(expected)));
    assert_eq!(value(&machine, "k"), Some(big));
    assert_eq!(
        machine.apply(append(7, 2, "k", "!")),
        Applied::Write(Ok(expected))
    );
}

/// Reads `shard` of `source` as the chunks of a move: one record each, the
/// sessions with the last (empty) chunk.
fn chunks(source: &GroupMachine<MemData>, shard: ShardId, num: ConfigNum) -> Vec<ShardChunk> {
    let mut chunks = Vec::new();
    let mut cursor = Bytes::new();
    for (key, value) in source.data().shard(shard) {
        let mut next_cursor = key.to_vec();
        next_cursor.push(0);
        let next_cursor = Bytes::from(next_cursor);
        chunks.push(ShardChunk {
            shard,
            num,
            cursor: cursor.clone(),
            next_cursor: next_cursor.clone(),
            records: vec![(key.clone(), value.clone())],
            sessions: Vec::new(),
            last: false,
        });
        cursor = next_cursor;
    }
    chunks.push(ShardChunk {
        shard,
        num,
        cursor: cursor.clone(),
        next_cursor: cursor,
        records: Vec::new(),
        sessions: source.sessions_of(shard),
        last: true,
    });
    chunks
}

// Goal: a moved shard arrives with its data and its sessions (a write
// retried at the new owner is not applied twice), is served only once
// installed, and its old copy and sessions are deleted on the hand-over;
// repeated, stale and out-of-order steps change nothing.
#[test]
fn a_moved_shard_carries_its_data_and_sessions() {
    let owners = [[1; 4], [2; 4]];
    let mut one = group(1, &owners[..1]);
    let mut two = group(2, &owners[..1]);
    let key = "k";
    let shard = one.shard_of(key.as_bytes());
    one.apply(append(7, 1, key, "x"));
    one.apply(append(8, 1, "other", "y"));
    for machine in [&mut one, &mut two] {
        let applied = machine.apply(GroupCommand::Config(config(2, owners[1])));
        assert_eq!(applied, Applied::Config(Ok(())));
    }
    let not_ready = two.apply(append(7, 1, key, "x"));
    assert_eq!(
        not_ready,
        Applied::Write(Err(WriteRefused::NotServed(NotServed::NotReady)))
    );
    let num = ConfigNum(2);
    let chunks = chunks(&one, shard, num);
    assert!(chunks.len() >= 2, "records and the last chunk");
    let out_of_order = chunks[1].clone();
    assert_eq!(
        two.apply(GroupCommand::Install(out_of_order)),
        Applied::Install(false)
    );
    let mut stale = chunks[0].clone();
    stale.num = ConfigNum(1);
    assert_eq!(
        two.apply(GroupCommand::Install(stale)),
        Applied::Install(false)
    );
    for chunk in &chunks {
        assert_eq!(
            two.apply(GroupCommand::Install(chunk.clone())),
            Applied::Install(true)
        );
        assert_eq!(
            two.apply(GroupCommand::Install(chunk.clone())),
            Applied::Install(false)
        );
    }
    assert_eq!(
        two.table().state(shard),
        Some(ShardState::Cleaning { from: GroupId(1) })
    );
    assert_eq!(value(&two, key), Some(Bytes::from_static(b"x")));
    let retried = two.apply(append(7, 1, key, "x"));
    assert_eq!(retried, Applied::Write(Ok(WriteReply::Ok)));
    assert_eq!(
        value(&two, key),
        Some(Bytes::from_static(b"x")),
        "applied once"
    );

    let hand_over = GroupCommand::HandOver {
        shard,
        to: GroupId(2),
        num,
    };
    assert_eq!(one.apply(hand_over.clone()), Applied::HandOver(true));
    assert_eq!(one.apply(hand_over), Applied::HandOver(false));
    assert_eq!(one.data().shard(shard).count(), 0);
    assert!(one.sessions_of(shard).is_empty());
    let cleaned = GroupCommand::Cleaned { shard, num };
    assert_eq!(two.apply(cleaned.clone()), Applied::Cleaned(true));
    assert_eq!(two.apply(cleaned), Applied::Cleaned(false));
    assert_eq!(one.table().state(shard), None);
    assert_eq!(two.table().state(shard), Some(ShardState::Serving));
}

/// The sessions a store would hold had it written every change.
fn persisted(
    machine: &mut GroupMachine<MemData>,
    store: &mut BTreeMap<(ShardId, u64), Session<WriteReply>>,
) {
    for (key, session) in machine.take_changes().sessions {
        match session {
            Some(session) => store.insert(key, session),
            None => store.remove(&key),
        };
    }
}

/// Returns every session of the machine.
fn all_sessions(machine: &GroupMachine<MemData>) -> BTreeMap<(ShardId, u64), Session<WriteReply>> {
    (0..SHARDS)
        .map(ShardId)
        .flat_map(|shard| {
            machine
                .sessions_of(shard)
                .into_iter()
                .map(move |(client, session)| ((shard, client), session))
        })
        .collect()
}

// Goal: a store that writes only the changes each entry reports holds the
// machine's sessions after writes, repeats, expiry, an install and a
// hand-over. Method: replay the changes into a map after every entry.
#[test]
fn the_reported_changes_rebuild_the_sessions() {
    use raft::session::SESSION_TTL_MS;
    let owners = [[1; 4], [2; 4]];
    let (mut one, mut two) = (group(1, &owners[..1]), group(2, &owners[..1]));
    let (mut store_one, mut store_two) = (BTreeMap::new(), BTreeMap::new());
    persisted(&mut one, &mut store_one);
    assert!(
        two.take_changes().table,
        "a configuration changes the table"
    );
    for (client, key) in [(7, "a"), (8, "b"), (9, "c")] {
        one.apply(append(client, 1, key, "x"));
        one.apply(append(client, 1, key, "x"));
        persisted(&mut one, &mut store_one);
    }
    let late = GroupCommand::Write {
        client_id: 10,
        seq: 1,
        timestamp_ms: SESSION_TTL_MS + 1,
        write: Write::Delete {
            key: Bytes::from_static(b"d"),
        },
    };
    one.apply(late);
    persisted(&mut one, &mut store_one);
    assert_eq!(store_one.len(), 1, "three sessions expired, one written");
    assert_eq!(store_one, all_sessions(&one));
    for machine in [&mut one, &mut two] {
        machine.apply(GroupCommand::Config(config(2, owners[1])));
    }
    persisted(&mut one, &mut store_one);
    let shard = one.shard_of(b"d");
    for chunk in chunks(&one, shard, ConfigNum(2)) {
        assert_eq!(
            two.apply(GroupCommand::Install(chunk)),
            Applied::Install(true)
        );
    }
    persisted(&mut two, &mut store_two);
    assert_eq!(store_two, all_sessions(&two));
    let hand_over = GroupCommand::HandOver {
        shard,
        to: GroupId(2),
        num: ConfigNum(2),
    };
    assert_eq!(one.apply(hand_over), Applied::HandOver(true));
    let changes = one.take_changes();
    assert!(changes.table);
    for (key, session) in changes.sessions {
        assert!(session.is_none(), "the hand-over only removes sessions");
        store_one.remove(&key);
    }
    assert_eq!(store_one, all_sessions(&one));
    assert!(store_one.is_empty());
}

// Goal: a chunk never passes its byte bound unless one record alone does
// (then it holds exactly that record), the next cursor resumes exactly
// after it, and the last chunk says so.
#[test]
fn chunks_are_bounded_and_resume_where_they_stopped() {
    let record = |key: &str, value: &str| {
        (
            Bytes::copy_from_slice(key.as_bytes()),
            Bytes::copy_from_slice(value.as_bytes()),
        )
    };
    let records = vec![record("a", "12"), record("b", "1234567"), record("c", "1")];
    let (first, next, last) = cut_chunk(records.clone().into_iter(), b"", 5);
    assert_eq!(
        (first, next.as_ref(), last),
        (vec![records[0].clone()], &b"b"[..], false)
    );
    let (second, next, last) = cut_chunk(records[1..].iter().cloned(), b"b", 5);
    assert_eq!(
        (second, next.as_ref(), last),
        (vec![records[1].clone()], &b"c"[..], false)
    );
    let (third, next, last) = cut_chunk(records[2..].iter().cloned(), b"c", 5);
    assert_eq!(
        (third, next.as_ref(), last),
        (vec![records[2].clone()], &b"c\0"[..], true)
    );
    let (all, _, last) = cut_chunk(records.clone().into_iter(), b"", 1 << 20);
    assert_eq!((all, last), (records, true));
    let (empty, next, last) = cut_chunk(std::iter::empty(), b"x", 5);
    assert_eq!((empty.len(), next.as_ref(), last), (0, &b"x"[..], true));
}
