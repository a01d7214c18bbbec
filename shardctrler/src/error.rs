//! Errors of the shard controller (STYLE.md D).
//!
//! This module owns two enums, kept apart because callers act on them
//! differently:
//!
//! - [`AdminError`]: an expected refusal of a request or query. It is a reply
//!   value: the state machine records it in the client's session, it travels
//!   in snapshots, and the service maps it to gRPC `INVALID_ARGUMENT`
//!   (DESIGN.md, "Public API"). Invariant: every variant has a fixed wire
//!   tag in `codec.rs`; a new variant gets a new tag, a tag is never reused.
//! - [`DecodeError`]: bytes that are not a valid encoding (a corrupt log
//!   entry or snapshot). For the server this is fatal: it stops loudly.

use thiserror::Error;

use crate::types::{GroupId, ShardId};

/// Why the controller refused a Join, Leave, Move or Query. A refused request
/// changes no configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdminError {
    /// A Join named no groups.
    #[error("join names no groups")]
    EmptyJoin,
    /// A Leave named no groups.
    #[error("leave names no groups")]
    EmptyLeave,
    /// A Join, Leave or Move named gid 0, which means "unassigned".
    #[error("gid 0 is reserved for unassigned shards and names no group")]
    ReservedGid,
    /// A Join named a group that is already in the latest configuration.
    #[error("group {gid} is already present")]
    GroupAlreadyPresent {
        /// The gid that is already present.
        gid: GroupId,
    },
    /// A Join gave a group no servers.
    #[error("group {gid} has an empty server list")]
    EmptyServerList {
        /// The gid whose server list is empty.
        gid: GroupId,
    },
    /// A Join gave a group an empty server address.
    #[error("group {gid} lists an empty server address")]
    EmptyServerAddress {
        /// The gid whose server list holds an empty address.
        gid: GroupId,
    },
    /// A Join gave a group more servers than a replica group may have.
    #[error("group {gid} lists {count} servers: at most {max} are allowed")]
    TooManyServers {
        /// The gid with too many servers.
        gid: GroupId,
        /// How many servers it listed.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// A Join gave a group an address that is not `host:port`.
    #[error(
        "group {gid} lists server address {address:?}, which is not host:port (host: a DNS \
         name, a dotted-decimal IPv4 address or a bracketed IPv6 address, not 0.0.0.0 or \
         [::]; port: 1 to 65535 without leading zeros)"
    )]
    BadServerAddress {
        /// The gid whose server list holds the address.
        gid: GroupId,
        /// The address, [`shortened`](crate::address::shortened).
        address: String,
    },
    /// A Join listed one address twice: in one group, in two joining
    /// groups, or in a joining group and a present one.
    #[error("server address {address:?} {}", listed_twice(*.gid, *.listed_by))]
    DuplicateServerAddress {
        /// The address, [`shortened`](crate::address::shortened).
        address: String,
        /// The joining group that lists it again.
        gid: GroupId,
        /// The group that lists it first (present groups first, then
        /// joining ones in gid order); `gid` itself if it lists it twice.
        listed_by: GroupId,
    },
    /// A Leave or Move named a group that is not in the latest configuration.
    #[error("group {gid} is not present")]
    UnknownGroup {
        /// The gid that is not present.
        gid: GroupId,
    },
    /// A Leave named the same group more than once.
    #[error("group {gid} is named more than once")]
    DuplicateGroup {
        /// The gid named more than once.
        gid: GroupId,
    },
    /// A Move named a shard outside `0..shard_count`.
    #[error("shard {shard} is out of range: the shard count is {shard_count}")]
    ShardOutOfRange {
        /// The shard named.
        shard: ShardId,
        /// The cluster's shard count.
        shard_count: u32,
    },
    /// A Query asked for a negative number other than -1.
    #[error("configuration number {num} is invalid: ask for -1 (latest) or a number >= 0")]
    InvalidConfigNum {
        /// The number asked for.
        num: i64,
    },
    /// A request carried client id 0 or sequence number 0, which no client
    /// uses (DESIGN.md: ids are non-zero, `seq` starts at 1).
    #[error("client id {client_id} with seq {seq}: both must be non-zero")]
    InvalidSession {
        /// The client id of the request.
        client_id: u64,
        /// The sequence number of the request.
        seq: u64,
    },
    /// A request older than the client's last answered one: its reply is no
    /// longer kept, and the client has already moved on.
    #[error(
        "request {seq} of client {client_id} is older than its last answered request {last_seq}"
    )]
    StaleRequest {
        /// The client id of the request.
        client_id: u64,
        /// The sequence number of the request.
        seq: u64,
        /// The last sequence number answered for this client.
        last_seq: u64,
    },
}

/// Says who lists a duplicate address: the joining group `gid` itself, or
/// `listed_by` before it.
fn listed_twice(gid: GroupId, listed_by: GroupId) -> String {
    if gid == listed_by {
        format!("is listed twice by group {gid}")
    } else {
        format!("of group {gid} is already listed by group {listed_by}")
    }
}

/// Why bytes could not be decoded as a request or a snapshot. Decoding never
/// panics: every malformed input ends here.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("input truncated: {needed} more bytes needed at offset {offset}")]
    Truncated {
        /// Where the missing bytes should start.
        offset: usize,
        /// How many more bytes were needed.
        needed: usize,
    },
    /// The first four bytes are not the expected record magic.
    #[error("bad magic {found:?}, expected {expected:?}")]
    BadMagic {
        /// The magic of the record type being decoded.
        expected: [u8; 4],
        /// The bytes found instead.
        found: [u8; 4],
    },
    /// The format version is not one this build reads.
    #[error("unsupported format version {found}, this build reads version {supported}")]
    UnsupportedVersion {
        /// The version in the input.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// A tag byte names no known variant.
    #[error("unknown {kind} tag {tag} at offset {offset}")]
    UnknownTag {
        /// What the tag selects (command, reply, error).
        kind: &'static str,
        /// The tag found.
        tag: u8,
        /// Where the tag is.
        offset: usize,
    },
    /// A string is not valid UTF-8.
    #[error("string at offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Where the string's bytes start.
        offset: usize,
    },
    /// Map keys are not in strictly ascending order, so the encoding is not
    /// canonical (maps are written in key order, without duplicates).
    #[error("map keys out of order at offset {offset}")]
    UnorderedKeys {
        /// Where the offending key is.
        offset: usize,
    },
    /// Bytes remain after the record ended.
    #[error("{count} trailing bytes after the record")]
    TrailingBytes {
        /// How many bytes remain.
        count: usize,
    },
    /// The bytes are well formed but the state breaks an invariant of
    /// `ControllerState`.
    #[error("decoded state is invalid: {reason}")]
    InvalidState {
        /// The first broken invariant.
        reason: String,
    },
}

/// Why a controller replica could not start: the replica runtime's error,
/// which every server shares (each variant has its exit code).
pub use raft::replica::StartError;
