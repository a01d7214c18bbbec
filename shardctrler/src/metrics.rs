//! Metric names of the shard controller (STYLE.md F), described at startup
//! by [`describe`]. Every series carries the labels `group` (the
//! controller's Raft group, 0) and `node`, as every server's series do; the
//! request series add `op` (`join`, `leave`, `move`, `query`, `watch`) and
//! the counter adds `status` (see [`status_label`](crate::service)).
//!
//! The raft crate's metrics (`raft_*`) come with the node; these cover the
//! controller's own state and its public API.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

use crate::server::CONTROLLER_GROUP;

/// Gauge: the number of the latest configuration this replica applied.
pub const SHARDCTRLER_CONFIG_NUM: &str = "shardctrler_config_num";
/// Gauge: the groups in the latest configuration this replica applied.
pub const SHARDCTRLER_GROUPS: &str = "shardctrler_groups";
/// Counter: requests answered, by `op` and `status`.
pub const SHARDCTRLER_REQUESTS_TOTAL: &str = "shardctrler_requests_total";
/// Histogram: time to answer a request, by `op`, in seconds.
pub const SHARDCTRLER_REQUEST_DURATION_SECONDS: &str = "shardctrler_request_duration_seconds";

/// Every metric name above, for tests that scrape `/metrics`.
pub const CONTROLLER_METRICS: &[&str] = &[
    SHARDCTRLER_CONFIG_NUM,
    SHARDCTRLER_GROUPS,
    SHARDCTRLER_REQUESTS_TOTAL,
    SHARDCTRLER_REQUEST_DURATION_SECONDS,
];

/// Describes every controller metric (unit and help text) to the recorder.
pub fn describe() {
    describe_gauge!(
        SHARDCTRLER_CONFIG_NUM,
        "The number of the latest configuration this replica applied."
    );
    describe_gauge!(
        SHARDCTRLER_GROUPS,
        "The replica groups in the latest configuration this replica applied."
    );
    describe_counter!(
        SHARDCTRLER_REQUESTS_TOTAL,
        "Controller requests answered, by operation and outcome."
    );
    describe_histogram!(
        SHARDCTRLER_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time to answer a controller request, by operation."
    );
}

/// The value of the `group` label on every controller series: the
/// controller's Raft group, [`CONTROLLER_GROUP`], in decimal.
pub(crate) const GROUP_LABEL: &str = Decimal::of(CONTROLLER_GROUP).as_str();

/// A number's decimal digits, written at compile time, so a label derived
/// from a constant is itself a constant (`&'static str`).
struct Decimal {
    /// Room for `u64::MAX`, right-aligned.
    digits: [u8; 20],
    /// Invariant: `digits[start..]` are the number's ASCII digits.
    start: usize,
}

impl Decimal {
    /// Returns the decimal digits of `value`.
    const fn of(mut value: u64) -> Decimal {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        Decimal { digits, start }
    }

    /// Returns the digits as text.
    const fn as_str(&self) -> &str {
        match std::str::from_utf8(self.digits.split_at(self.start).1) {
            Ok(text) => text,
            Err(_) => panic!("decimal digits are ASCII"),
        }
    }
}

/// Sets the configuration gauges of `node` from its latest configuration.
pub(crate) fn observe_config(node: u64, num: u64, groups: usize) {
    let node = node.to_string();
    metrics::gauge!(SHARDCTRLER_CONFIG_NUM, "group" => GROUP_LABEL, "node" => node.clone())
        .set(num as f64);
    metrics::gauge!(SHARDCTRLER_GROUPS, "group" => GROUP_LABEL, "node" => node).set(groups as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    // The label is the controller's group in decimal, for any group id.
    #[test]
    fn the_group_label_is_the_controller_group() {
        assert_eq!(GROUP_LABEL, CONTROLLER_GROUP.to_string());
        for value in [0, 7, 10, 1203, u64::MAX] {
            assert_eq!(Decimal::of(value).as_str(), value.to_string());
        }
    }
}
