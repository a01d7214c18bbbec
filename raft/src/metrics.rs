//! Metric names of the raft crate (STYLE F), described at startup by
//! [`describe`]. Every series carries the labels `group` and `node`;
//! `raft_proposals_total` adds `status`.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

// ---- Node state (derived by the driver after each Ready) ----

/// Gauge: the node's current term.
pub const RAFT_TERM: &str = "raft_term";
/// Gauge: 1 while the node leads, else 0.
pub const RAFT_IS_LEADER: &str = "raft_is_leader";
/// Gauge: the commit index.
pub const RAFT_COMMIT_INDEX: &str = "raft_commit_index";
/// Gauge: the applied index.
pub const RAFT_APPLIED_INDEX: &str = "raft_applied_index";
/// Gauge: entries in the log (not yet compacted).
pub const RAFT_LOG_ENTRIES: &str = "raft_log_entries";
/// Counter: proposals by outcome (`committed`, `dropped`, `rejected`).
pub const RAFT_PROPOSALS_TOTAL: &str = "raft_proposals_total";
/// Counter: AppendEntries messages sent.
pub const RAFT_APPEND_ENTRIES_SENT_TOTAL: &str = "raft_append_entries_sent_total";
/// Counter: snapshot transfers started to lagging followers.
pub const RAFT_SNAPSHOT_SENT_TOTAL: &str = "raft_snapshot_sent_total";
/// Counter: snapshots received and installed.
pub const RAFT_SNAPSHOT_RECEIVED_TOTAL: &str = "raft_snapshot_received_total";
/// Counter: bytes of snapshot chunks read for followers.
pub const RAFT_SNAPSHOT_SENT_BYTES_TOTAL: &str = "raft_snapshot_sent_bytes_total";
/// Counter: bytes of snapshot chunks restored from the leader.
pub const RAFT_SNAPSHOT_RECEIVED_BYTES_TOTAL: &str = "raft_snapshot_received_bytes_total";
/// Histogram: duration of each synced write (one per Ready), seconds.
pub const RAFT_FSYNC_DURATION_SECONDS: &str = "raft_fsync_duration_seconds";
/// Counter: times this node became leader.
pub const RAFT_LEADER_CHANGES_TOTAL: &str = "raft_leader_changes_total";

/// Every metric name above, for tests that scrape `/metrics`.
pub const NODE_METRICS: &[&str] = &[
    RAFT_TERM,
    RAFT_IS_LEADER,
    RAFT_COMMIT_INDEX,
    RAFT_APPLIED_INDEX,
    RAFT_LOG_ENTRIES,
    RAFT_PROPOSALS_TOTAL,
    RAFT_APPEND_ENTRIES_SENT_TOTAL,
    RAFT_SNAPSHOT_SENT_TOTAL,
    RAFT_SNAPSHOT_RECEIVED_TOTAL,
    RAFT_SNAPSHOT_SENT_BYTES_TOTAL,
    RAFT_SNAPSHOT_RECEIVED_BYTES_TOTAL,
    RAFT_FSYNC_DURATION_SECONDS,
    RAFT_LEADER_CHANGES_TOTAL,
];

/// Describes every raft metric (unit and help text) to the recorder.
pub fn describe() {
    describe_gauge!(RAFT_TERM, "The node's current Raft term.");
    describe_gauge!(
        RAFT_IS_LEADER,
        "1 while the node is its group's leader, else 0."
    );
    describe_gauge!(RAFT_COMMIT_INDEX, "The highest log index known committed.");
    describe_gauge!(
        RAFT_APPLIED_INDEX,
        "The highest log index applied to the state machine."
    );
    describe_gauge!(RAFT_LOG_ENTRIES, "Entries in the log not yet compacted.");
    describe_counter!(
        RAFT_PROPOSALS_TOTAL,
        "Proposals by outcome: committed, dropped or rejected."
    );
    describe_counter!(
        RAFT_APPEND_ENTRIES_SENT_TOTAL,
        "AppendEntries messages sent to followers."
    );
    describe_counter!(
        RAFT_SNAPSHOT_SENT_TOTAL,
        "Snapshot transfers started to lagging followers."
    );
    describe_counter!(
        RAFT_SNAPSHOT_RECEIVED_TOTAL,
        "Snapshots received from the leader and installed."
    );
    describe_counter!(
        RAFT_SNAPSHOT_SENT_BYTES_TOTAL,
        Unit::Bytes,
        "Bytes of snapshot chunks read from the state for followers."
    );
    describe_counter!(
        RAFT_SNAPSHOT_RECEIVED_BYTES_TOTAL,
        Unit::Bytes,
        "Bytes of snapshot chunks restored from the leader."
    );
    describe_histogram!(
        RAFT_FSYNC_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of each synced write of a Ready (group commit)."
    );
    describe_counter!(RAFT_LEADER_CHANGES_TOTAL, "Times this node became leader.");
    describe_transport();
}

// ---- Transport (counted by `crate::transport`; AppendEntries sent are
// counted by the driver, above, when it hands messages to the transport) ----

/// Counter: outgoing messages the transport dropped (no address for the
/// peer, the peer's queue full, or the peer removed with messages queued).
/// `node` is the sender.
pub const RAFT_MESSAGES_DROPPED_TOTAL: &str = "raft_messages_dropped_total";
/// Counter: received messages dropped because the node's inbound channel was
/// full. `node` is the recipient.
pub const RAFT_INBOUND_MESSAGES_DROPPED_TOTAL: &str = "raft_inbound_messages_dropped_total";

/// Every transport metric name, for tests that scrape `/metrics`.
pub const TRANSPORT_METRICS: &[&str] = &[
    RAFT_MESSAGES_DROPPED_TOTAL,
    RAFT_INBOUND_MESSAGES_DROPPED_TOTAL,
];

/// Describes the transport's metrics (called by [`describe`]).
pub fn describe_transport() {
    describe_counter!(
        RAFT_MESSAGES_DROPPED_TOTAL,
        "Outgoing Raft messages dropped by the transport: unknown peer, full peer queue, or peer removed."
    );
    describe_counter!(
        RAFT_INBOUND_MESSAGES_DROPPED_TOTAL,
        "Received Raft messages dropped because the node's inbound queue was full."
    );
}
