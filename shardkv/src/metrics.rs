//! Metric names of a group replica (STYLE.md F), described at startup by
//! [`describe`]. Every series carries `group` (the gid) and `node`: the
//! replica runtime's recorder adds them to every series of the process.
//! The request series add `op` (`get`, `put`, `append`, `delete`) and the
//! counter `status` (the reply's status, or `invalid_argument`, `error`).
//!
//! The raft crate's metrics (`raft_*`) come with the node; these cover the
//! group's shards, requests and moves.

use std::time::Duration;

use metrics::{Counter, Histogram, Unit, describe_counter, describe_gauge, describe_histogram};

use crate::shards::{ShardState, ShardTable};

/// Counter: requests answered, by `op` and `status`.
pub const SHARDKV_REQUESTS_TOTAL: &str = "shardkv_requests_total";
/// Histogram: time to answer a request, by `op`, in seconds.
pub const SHARDKV_REQUEST_DURATION_SECONDS: &str = "shardkv_request_duration_seconds";
/// Gauge: the shards this replica holds, by `state`.
pub const SHARDKV_SHARDS: &str = "shardkv_shards";
/// Gauge: the number of the configuration this replica applied.
pub const SHARDKV_CONFIG_NUM: &str = "shardkv_config_num";
/// Counter: bytes of shard data installed by moves into this group.
pub const SHARDKV_MIGRATION_BYTES_TOTAL: &str = "shardkv_migration_bytes_total";
/// Histogram: time from seeing a shard to pull to its installation, in
/// seconds (on the leader that drove it).
pub const SHARDKV_MIGRATION_DURATION_SECONDS: &str = "shardkv_migration_duration_seconds";
/// Gauge: shards being pulled into this group.
pub const SHARDKV_MIGRATIONS_IN_PROGRESS: &str = "shardkv_migrations_in_progress";
/// Gauge: bytes installed so far by the moves in progress.
pub const SHARDKV_MIGRATION_MOVED_BYTES: &str = "shardkv_migration_moved_bytes";
/// Gauge: RocksDB's estimate of the keys stored (all shards).
pub const SHARDKV_KEYS_ESTIMATE: &str = "shardkv_keys_estimate";
/// Gauge: RocksDB's estimate of the live data size, in bytes.
pub const SHARDKV_DATA_BYTES_ESTIMATE: &str = "shardkv_data_bytes_estimate";

/// Every metric name above, for tests that scrape `/metrics`.
pub const GROUP_METRICS: &[&str] = &[
    SHARDKV_REQUESTS_TOTAL,
    SHARDKV_REQUEST_DURATION_SECONDS,
    SHARDKV_SHARDS,
    SHARDKV_CONFIG_NUM,
    SHARDKV_MIGRATION_BYTES_TOTAL,
    SHARDKV_MIGRATION_DURATION_SECONDS,
    SHARDKV_MIGRATIONS_IN_PROGRESS,
    SHARDKV_MIGRATION_MOVED_BYTES,
    SHARDKV_KEYS_ESTIMATE,
    SHARDKV_DATA_BYTES_ESTIMATE,
];

/// Describes every group metric (unit and help text) to the recorder.
pub fn describe() {
    describe_counter!(
        SHARDKV_REQUESTS_TOTAL,
        "Client requests answered, by operation and outcome."
    );
    describe_histogram!(
        SHARDKV_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time to answer a client request, by operation."
    );
    describe_gauge!(SHARDKV_SHARDS, "Shards this replica holds, by state.");
    describe_gauge!(
        SHARDKV_CONFIG_NUM,
        "The number of the configuration this replica applied."
    );
    describe_counter!(
        SHARDKV_MIGRATION_BYTES_TOTAL,
        Unit::Bytes,
        "Bytes of shard data installed into this group by moves."
    );
    describe_histogram!(
        SHARDKV_MIGRATION_DURATION_SECONDS,
        Unit::Seconds,
        "Time from seeing a shard to pull to its installation."
    );
    describe_gauge!(
        SHARDKV_MIGRATIONS_IN_PROGRESS,
        "Shards being pulled into this group."
    );
    describe_gauge!(
        SHARDKV_MIGRATION_MOVED_BYTES,
        Unit::Bytes,
        "Bytes installed so far by the moves in progress."
    );
    describe_gauge!(
        SHARDKV_KEYS_ESTIMATE,
        "RocksDB's estimate of the keys stored."
    );
    describe_gauge!(
        SHARDKV_DATA_BYTES_ESTIMATE,
        Unit::Bytes,
        "RocksDB's estimate of the live data size."
    );
}

/// Sets the shard and configuration gauges from `table`.
pub(crate) fn observe_table(table: &ShardTable) {
    let mut counts = [0usize; 4];
    for (_, state) in table.states() {
        let slot = match state {
            ShardState::Serving => 0,
            ShardState::Pulling { .. } => 1,
            ShardState::Sending { .. } => 2,
            ShardState::Cleaning { .. } => 3,
        };
        counts[slot] += 1;
    }
    for (state, count) in ["serving", "pulling", "sending", "cleaning"]
        .iter()
        .zip(counts)
    {
        metrics::gauge!(SHARDKV_SHARDS, "state" => *state).set(count as f64);
    }
    metrics::gauge!(SHARDKV_MIGRATIONS_IN_PROGRESS).set(counts[1] as f64);
    metrics::gauge!(SHARDKV_CONFIG_NUM).set(table.config().num.0 as f64);
}

/// The `op` label of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Get,
    Put,
    Append,
    Delete,
}

impl Op {
    const ALL: [Op; 4] = [Op::Get, Op::Put, Op::Append, Op::Delete];

    fn label(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::Append => "append",
            Op::Delete => "delete",
        }
    }
}

/// The `status` label of an answered request: the reply's status, or how
/// the call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Ok,
    WrongLeader,
    WrongGroup,
    ShardNotReady,
    Timeout,
    InvalidArgument,
    Error,
}

impl Answer {
    const ALL: [Answer; 7] = [
        Answer::Ok,
        Answer::WrongLeader,
        Answer::WrongGroup,
        Answer::ShardNotReady,
        Answer::Timeout,
        Answer::InvalidArgument,
        Answer::Error,
    ];

    fn label(self) -> &'static str {
        match self {
            Answer::Ok => "ok",
            Answer::WrongLeader => "wrong_leader",
            Answer::WrongGroup => "wrong_group",
            Answer::ShardNotReady => "shard_not_ready",
            Answer::Timeout => "timeout",
            Answer::InvalidArgument => "invalid_argument",
            Answer::Error => "error",
        }
    }
}

/// The request series of one op: its duration histogram and a counter per
/// status.
struct OpSeries {
    duration: Histogram,
    answered: [Counter; Answer::ALL.len()],
}

/// The request series, registered once with the recorder installed at
/// startup: looking a labelled series up on every request (what the
/// macros do) took about 1 % of a leader's CPU under load (perf, put with
/// 64 clients). Every series exists from the start, at zero.
pub(crate) struct RequestMetrics {
    ops: [OpSeries; Op::ALL.len()],
}

impl RequestMetrics {
    /// Registers every request series with the current recorder.
    pub(crate) fn register() -> RequestMetrics {
        RequestMetrics {
            ops: Op::ALL.map(|op| OpSeries {
                duration: metrics::histogram!(SHARDKV_REQUEST_DURATION_SECONDS, "op" => op.label()),
                answered: Answer::ALL.map(|answer| {
                    metrics::counter!(
                        SHARDKV_REQUESTS_TOTAL,
                        "op" => op.label(),
                        "status" => answer.label()
                    )
                }),
            }),
        }
    }

    /// Counts one answered request.
    pub(crate) fn observe(&self, op: Op, answer: Answer, took: Duration) {
        let series = &self.ops[op as usize];
        series.answered[answer as usize].increment(1);
        series.duration.record(took.as_secs_f64());
    }
}
