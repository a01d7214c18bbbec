//! Conversion between the core's [`Message`] and its wire form,
//! `raft.v1.Message` (proto/proto/raft.proto).
//!
//! Invariants:
//! - `message_from_proto(message_to_proto(m)) == Ok(m)` for every message
//!   the core can produce (unit tests cover every body kind).
//! - Core to proto is total; proto to core is fallible and never panics: a
//!   peer's malformed message (missing body or sub-message, unknown enum
//!   value, node id 0, entries that do not follow `prev_index`, an
//!   undecodable membership change, a node listed twice in a membership)
//!   becomes a [`ConvertError`], so nothing the core would assert on reaches
//!   it.
//! - Snapshot chunks keep their crc32 as sent: the core checks it on receipt
//!   and answers a bad chunk with the position it expects.

use std::collections::BTreeSet;

use proto::raft::v1 as pb;
use proto::raft::v1::message::Body;

use crate::core::{
    ConfChange, Entry, EntryKind, LogIndex, Membership, Message, MessageBody, NodeId, SnapshotMeta,
    Term,
};
use crate::transport::error::ConvertError;

/// Returns the wire form of a core message.
pub fn message_to_proto(message: Message) -> pb::Message {
    pb::Message {
        from: message.from.0,
        to: message.to.0,
        term: message.term.0,
        body: Some(body_to_proto(message.body)),
    }
}

/// Returns the core message a peer sent, or why it is malformed.
pub fn message_from_proto(message: pb::Message) -> Result<Message, ConvertError> {
    let body = message.body.ok_or(ConvertError::MissingBody)?;
    Ok(Message {
        from: node_id(message.from, "from")?,
        to: node_id(message.to, "to")?,
        term: Term(message.term),
        body: body_from_proto(body)?,
    })
}

#[expect(
    clippy::too_many_lines,
    reason = "one field-for-field arm per message kind; splitting it hides the mapping"
)]
fn body_to_proto(body: MessageBody) -> Body {
    match body {
        MessageBody::RequestVote {
            last_index,
            last_term,
            pre_vote,
            leadership_transfer,
        } => Body::RequestVote(pb::RequestVote {
            last_index: last_index.0,
            last_term: last_term.0,
            pre_vote,
            leadership_transfer,
        }),
        MessageBody::VoteResponse {
            pre_vote,
            granted,
            commit,
            commit_term,
        } => Body::VoteResponse(pb::VoteResponse {
            pre_vote,
            granted,
            commit: commit.0,
            commit_term: commit_term.0,
        }),
        MessageBody::AppendEntries {
            prev_index,
            prev_term,
            entries,
            commit,
        } => Body::AppendEntries(pb::AppendEntries {
            prev_index: prev_index.0,
            prev_term: prev_term.0,
            entries: entries.into_iter().map(entry_to_proto).collect(),
            commit: commit.0,
        }),
        MessageBody::AppendResponse {
            rejected,
            index,
            hint_index,
            hint_term,
        } => Body::AppendResponse(pb::AppendResponse {
            rejected,
            index: index.0,
            hint_index: hint_index.0,
            hint_term: hint_term.0,
        }),
        MessageBody::Heartbeat { commit, read_round } => Body::Heartbeat(pb::Heartbeat {
            commit: commit.0,
            read_round,
        }),
        MessageBody::HeartbeatResponse { read_round } => {
            Body::HeartbeatResponse(pb::HeartbeatResponse { read_round })
        }
        MessageBody::SnapshotChunk {
            meta,
            cursor,
            next_cursor,
            data,
            crc32,
            last,
        } => Body::SnapshotChunk(pb::SnapshotChunk {
            meta: Some(snapshot_meta_to_proto(meta)),
            cursor,
            next_cursor,
            data,
            crc32,
            last,
        }),
        MessageBody::SnapshotChunkResponse {
            snapshot_index,
            snapshot_term,
            next_cursor,
        } => Body::SnapshotChunkResponse(pb::SnapshotChunkResponse {
            snapshot_index: snapshot_index.0,
            snapshot_term: snapshot_term.0,
            next_cursor,
        }),
        MessageBody::TimeoutNow => Body::TimeoutNow(pb::TimeoutNow {}),
    }
}

fn body_from_proto(body: Body) -> Result<MessageBody, ConvertError> {
    Ok(match body {
        Body::RequestVote(vote) => MessageBody::RequestVote {
            last_index: LogIndex(vote.last_index),
            last_term: Term(vote.last_term),
            pre_vote: vote.pre_vote,
            leadership_transfer: vote.leadership_transfer,
        },
        Body::VoteResponse(response) => MessageBody::VoteResponse {
            pre_vote: response.pre_vote,
            granted: response.granted,
            commit: LogIndex(response.commit),
            commit_term: Term(response.commit_term),
        },
        Body::AppendEntries(append) => append_from_proto(append)?,
        Body::AppendResponse(response) => MessageBody::AppendResponse {
            rejected: response.rejected,
            index: LogIndex(response.index),
            hint_index: LogIndex(response.hint_index),
            hint_term: Term(response.hint_term),
        },
        Body::Heartbeat(heartbeat) => MessageBody::Heartbeat {
            commit: LogIndex(heartbeat.commit),
            read_round: heartbeat.read_round,
        },
        Body::HeartbeatResponse(response) => MessageBody::HeartbeatResponse {
            read_round: response.read_round,
        },
        Body::SnapshotChunk(chunk) => MessageBody::SnapshotChunk {
            meta: snapshot_meta_from_proto(chunk.meta)?,
            cursor: chunk.cursor,
            next_cursor: chunk.next_cursor,
            data: chunk.data,
            crc32: chunk.crc32,
            last: chunk.last,
        },
        Body::SnapshotChunkResponse(response) => MessageBody::SnapshotChunkResponse {
            snapshot_index: LogIndex(response.snapshot_index),
            snapshot_term: Term(response.snapshot_term),
            next_cursor: response.next_cursor,
        },
        Body::TimeoutNow(pb::TimeoutNow {}) => MessageBody::TimeoutNow,
    })
}

/// Converts an append, checking that its entries follow `prev_index` one
/// index at a time (the core's log relies on it).
fn append_from_proto(append: pb::AppendEntries) -> Result<MessageBody, ConvertError> {
    let mut expected = append.prev_index;
    let mut entries = Vec::with_capacity(append.entries.len());
    for entry in append.entries {
        expected = expected
            .checked_add(1)
            .ok_or(ConvertError::NonContiguousEntries {
                expected: u64::MAX,
                actual: entry.index,
            })?;
        if entry.index != expected {
            return Err(ConvertError::NonContiguousEntries {
                expected,
                actual: entry.index,
            });
        }
        entries.push(entry_from_proto(entry)?);
    }
    Ok(MessageBody::AppendEntries {
        prev_index: LogIndex(append.prev_index),
        prev_term: Term(append.prev_term),
        entries,
        commit: LogIndex(append.commit),
    })
}

fn entry_to_proto(entry: Entry) -> pb::Entry {
    let kind = match entry.kind {
        EntryKind::Normal => pb::EntryKind::Normal,
        EntryKind::ConfChange => pb::EntryKind::ConfChange,
    };
    pb::Entry {
        term: entry.term.0,
        index: entry.index.0,
        kind: kind as i32,
        data: entry.data,
    }
}

fn entry_from_proto(entry: pb::Entry) -> Result<Entry, ConvertError> {
    let kind = match pb::EntryKind::try_from(entry.kind) {
        Ok(pb::EntryKind::Normal) => EntryKind::Normal,
        Ok(pb::EntryKind::ConfChange) => EntryKind::ConfChange,
        Err(_) => {
            return Err(ConvertError::UnknownEntryKind {
                index: entry.index,
                value: entry.kind,
            });
        }
    };
    // The core decodes membership changes when it applies them and treats
    // a bad one as its own bug, so a peer's must be checked here.
    if kind == EntryKind::ConfChange && !conf_change_is_valid(&entry.data) {
        return Err(ConvertError::MalformedConfChange { index: entry.index });
    }
    Ok(Entry {
        term: Term(entry.term),
        index: LogIndex(entry.index),
        kind,
        data: entry.data,
    })
}

fn conf_change_is_valid(data: &[u8]) -> bool {
    match ConfChange::decode(data) {
        Some(
            ConfChange::AddLearner(node)
            | ConfChange::PromoteLearner(node)
            | ConfChange::RemoveNode(node),
        ) => node.0 != 0,
        None => false,
    }
}

fn snapshot_meta_to_proto(meta: SnapshotMeta) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        index: meta.index.0,
        term: meta.term.0,
        membership: Some(pb::Membership {
            voters: meta.membership.voters.iter().map(|node| node.0).collect(),
            learners: meta.membership.learners.iter().map(|node| node.0).collect(),
        }),
    }
}

fn snapshot_meta_from_proto(meta: Option<pb::SnapshotMeta>) -> Result<SnapshotMeta, ConvertError> {
    let meta = meta.ok_or(ConvertError::MissingField {
        field: "snapshot_chunk.meta",
    })?;
    let membership = meta.membership.ok_or(ConvertError::MissingField {
        field: "snapshot_chunk.meta.membership",
    })?;
    let mut seen = BTreeSet::new();
    let voters = member_set(membership.voters, "membership.voters", &mut seen)?;
    let learners = member_set(membership.learners, "membership.learners", &mut seen)?;
    Ok(SnapshotMeta {
        index: LogIndex(meta.index),
        term: Term(meta.term),
        membership: Membership { voters, learners },
    })
}

/// Converts one list of a membership, refusing id 0 and any node already in
/// `seen` (which keeps voters and learners disjoint).
fn member_set(
    ids: Vec<u64>,
    field: &'static str,
    seen: &mut BTreeSet<u64>,
) -> Result<BTreeSet<NodeId>, ConvertError> {
    let mut members = BTreeSet::new();
    for id in ids {
        let node = node_id(id, field)?;
        if !seen.insert(id) {
            return Err(ConvertError::DuplicateMember { node: id });
        }
        members.insert(node);
    }
    Ok(members)
}

fn node_id(id: u64, field: &'static str) -> Result<NodeId, ConvertError> {
    if id == 0 {
        return Err(ConvertError::ZeroNodeId { field });
    }
    Ok(NodeId(id))
}

#[cfg(test)]
#[path = "convert_test.rs"]
mod tests;
