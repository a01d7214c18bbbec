//! Unit tests of the message conversion: every body kind survives the round
//! trip through its wire form unchanged, and every kind of malformed wire
//! message is refused with its own error instead of a panic.

use bytes::Bytes;
use proto::raft::v1 as pb;
use proto::raft::v1::message::Body;

use super::{message_from_proto, message_to_proto};
use crate::core::{
    ConfChange, Entry, EntryKind, LogIndex, Membership, Message, MessageBody, NodeId, SnapshotMeta,
    Term,
};
use crate::transport::error::ConvertError;

fn entries() -> Vec<Entry> {
    vec![
        Entry {
            term: Term(3),
            index: LogIndex(8),
            kind: EntryKind::Normal,
            data: Bytes::from_static(b"put x 1"),
        },
        Entry {
            term: Term(4),
            index: LogIndex(9),
            kind: EntryKind::ConfChange,
            data: ConfChange::AddLearner(NodeId(4)).encode(),
        },
        Entry {
            term: Term(4),
            index: LogIndex(10),
            kind: EntryKind::Normal,
            data: Bytes::new(),
        },
    ]
}

fn snapshot_chunk() -> MessageBody {
    let data = Bytes::from(vec![7u8; 4096]);
    let mut membership = Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]);
    membership.learners.insert(NodeId(9));
    MessageBody::SnapshotChunk {
        meta: SnapshotMeta {
            index: LogIndex(100),
            term: Term(5),
            membership,
        },
        cursor: Bytes::from_static(b"key-0042"),
        next_cursor: Bytes::from_static(b"key-0099\0"),
        crc32: crc32fast::hash(&data),
        data,
        last: true,
    }
}

/// Returns one body of every kind, with both flag values where a flag
/// changes the meaning.
fn every_body() -> Vec<MessageBody> {
    vec![
        MessageBody::RequestVote {
            last_index: LogIndex(10),
            last_term: Term(4),
            pre_vote: true,
            leadership_transfer: false,
        },
        MessageBody::RequestVote {
            last_index: LogIndex(0),
            last_term: Term(0),
            pre_vote: false,
            leadership_transfer: true,
        },
        MessageBody::VoteResponse {
            pre_vote: true,
            granted: false,
            commit: LogIndex(12),
            commit_term: Term(4),
        },
        MessageBody::VoteResponse {
            pre_vote: false,
            granted: true,
            commit: LogIndex(0),
            commit_term: Term(0),
        },
        MessageBody::AppendEntries {
            prev_index: LogIndex(7),
            prev_term: Term(3),
            entries: entries(),
            commit: LogIndex(9),
        },
        MessageBody::AppendEntries {
            prev_index: LogIndex(10),
            prev_term: Term(4),
            entries: Vec::new(),
            commit: LogIndex(10),
        },
        MessageBody::AppendResponse {
            rejected: true,
            index: LogIndex(12),
            hint_index: LogIndex(9),
            hint_term: Term(2),
        },
        MessageBody::Heartbeat {
            commit: LogIndex(10),
            read_round: 42,
        },
        MessageBody::HeartbeatResponse { read_round: 42 },
        snapshot_chunk(),
        MessageBody::SnapshotChunkResponse {
            snapshot_index: LogIndex(100),
            snapshot_term: Term(5),
            next_cursor: Bytes::from_static(b"key-0099\0"),
        },
        MessageBody::TimeoutNow,
    ]
}

fn message(body: MessageBody) -> Message {
    Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(5),
        body,
    }
}

// Goal: conversion loses nothing. Method: convert each kind to its wire
// form and back, and also through prost encoding, and compare.
#[test]
fn every_body_kind_round_trips() {
    use prost::Message as _;
    for body in every_body() {
        let original = message(body);
        let wire = message_to_proto(original.clone());
        let encoded = wire.encode_to_vec();
        let decoded =
            pb::Message::decode(encoded.as_slice()).expect("prost decodes its own output");
        assert_eq!(message_from_proto(wire), Ok(original.clone()));
        assert_eq!(message_from_proto(decoded), Ok(original));
    }
}

#[test]
fn missing_body_is_refused() {
    let wire = pb::Message {
        from: 1,
        to: 2,
        term: 1,
        body: None,
    };
    assert_eq!(message_from_proto(wire), Err(ConvertError::MissingBody));
}

#[test]
fn node_id_zero_is_refused() {
    let mut wire = message_to_proto(message(MessageBody::TimeoutNow));
    wire.from = 0;
    assert_eq!(
        message_from_proto(wire.clone()),
        Err(ConvertError::ZeroNodeId { field: "from" })
    );
    wire.from = 1;
    wire.to = 0;
    assert_eq!(
        message_from_proto(wire),
        Err(ConvertError::ZeroNodeId { field: "to" })
    );
}

/// Returns the wire form of the append of [`entries`], for corrupting.
fn wire_append() -> (pb::Message, pb::AppendEntries) {
    let wire = message_to_proto(message(MessageBody::AppendEntries {
        prev_index: LogIndex(7),
        prev_term: Term(3),
        entries: entries(),
        commit: LogIndex(9),
    }));
    let Some(Body::AppendEntries(append)) = wire.body.clone() else {
        panic!("an append converts to an append");
    };
    (wire, append)
}

fn with_append(mut wire: pb::Message, append: pb::AppendEntries) -> pb::Message {
    wire.body = Some(Body::AppendEntries(append));
    wire
}

#[test]
fn unknown_entry_kind_is_refused() {
    let (wire, mut append) = wire_append();
    append.entries[1].kind = 7;
    assert_eq!(
        message_from_proto(with_append(wire, append)),
        Err(ConvertError::UnknownEntryKind { index: 9, value: 7 })
    );
}

#[test]
fn malformed_conf_change_entry_is_refused() {
    let (wire, mut append) = wire_append();
    append.entries[1].data = Bytes::from_static(b"\x05junk");
    assert_eq!(
        message_from_proto(with_append(wire.clone(), append.clone())),
        Err(ConvertError::MalformedConfChange { index: 9 })
    );
    append.entries[1].data = ConfChange::RemoveNode(NodeId(0)).encode();
    assert_eq!(
        message_from_proto(with_append(wire, append)),
        Err(ConvertError::MalformedConfChange { index: 9 })
    );
}

#[test]
fn entries_not_following_prev_index_are_refused() {
    let (wire, mut append) = wire_append();
    append.entries[2].index = 12;
    assert_eq!(
        message_from_proto(with_append(wire.clone(), append.clone())),
        Err(ConvertError::NonContiguousEntries {
            expected: 10,
            actual: 12
        })
    );
    append.prev_index = u64::MAX;
    assert!(matches!(
        message_from_proto(with_append(wire, append)),
        Err(ConvertError::NonContiguousEntries { .. })
    ));
}

fn wire_chunk() -> (pb::Message, pb::SnapshotChunk) {
    let wire = message_to_proto(message(snapshot_chunk()));
    let Some(Body::SnapshotChunk(chunk)) = wire.body.clone() else {
        panic!("a chunk converts to a chunk");
    };
    (wire, chunk)
}

fn with_chunk(mut wire: pb::Message, chunk: pb::SnapshotChunk) -> pb::Message {
    wire.body = Some(Body::SnapshotChunk(chunk));
    wire
}

#[test]
fn snapshot_chunk_without_meta_or_membership_is_refused() {
    let (wire, mut chunk) = wire_chunk();
    let mut no_membership = chunk.clone();
    if let Some(meta) = no_membership.meta.as_mut() {
        meta.membership = None;
    }
    assert_eq!(
        message_from_proto(with_chunk(wire.clone(), no_membership)),
        Err(ConvertError::MissingField {
            field: "snapshot_chunk.meta.membership"
        })
    );
    chunk.meta = None;
    assert_eq!(
        message_from_proto(with_chunk(wire, chunk)),
        Err(ConvertError::MissingField {
            field: "snapshot_chunk.meta"
        })
    );
}

#[test]
fn bad_membership_in_snapshot_is_refused() {
    let (wire, chunk) = wire_chunk();
    let with_membership = |voters: Vec<u64>, learners: Vec<u64>| {
        let mut chunk = chunk.clone();
        chunk.meta = chunk.meta.map(|meta| pb::SnapshotMeta {
            membership: Some(pb::Membership { voters, learners }),
            ..meta
        });
        message_from_proto(with_chunk(wire.clone(), chunk))
    };
    assert_eq!(
        with_membership(vec![1, 2], vec![2]),
        Err(ConvertError::DuplicateMember { node: 2 })
    );
    assert_eq!(
        with_membership(vec![1, 1], vec![]),
        Err(ConvertError::DuplicateMember { node: 1 })
    );
    assert_eq!(
        with_membership(vec![1, 0], vec![]),
        Err(ConvertError::ZeroNodeId {
            field: "membership.voters"
        })
    );
}

// A chunk whose crc32 does not match is carried as is: the core checks it
// and answers with the position it expects, which a transport-level refusal
// would prevent.
#[test]
fn snapshot_chunk_crc32_is_carried_unchecked() {
    let (wire, mut chunk) = wire_chunk();
    chunk.crc32 ^= 1;
    let converted = message_from_proto(with_chunk(wire, chunk.clone())).expect("well-formed");
    let MessageBody::SnapshotChunk { crc32, .. } = converted.body else {
        panic!("a chunk converts to a chunk");
    };
    assert_eq!(crc32, chunk.crc32);
}
