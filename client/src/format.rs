//! Renderings of a configuration for people (a table of shards per group)
//! and for scripts (JSON with the field names of `kv.v1.Config`).
//!
//! Invariant: both renderings are deterministic: groups in ascending gid
//! order, shards in ascending order.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use proto::kv::v1 as pb;
use serde_json::{Value, json};

/// Returns `config` as JSON: `{"num", "shards", "groups": {"gid": [addr]}}`,
/// the shape of `kv.v1.Config` in proto3 JSON (map keys are strings).
pub fn config_json(config: &pb::Config) -> Value {
    let groups: BTreeMap<String, Vec<String>> = config
        .groups
        .iter()
        .map(|(gid, list)| (gid.to_string(), list.servers.clone()))
        .collect();
    json!({
        "num": config.num,
        "shards": config.shards,
        "groups": groups,
    })
}

/// Returns `config` as a table: a header line, then one row per group with
/// its shard count, its shards (as ranges) and its servers; unassigned
/// shards (gid 0) get a row of their own.
pub fn config_table(config: &pb::Config) -> String {
    let mut shards_by_gid: BTreeMap<u64, Vec<u32>> =
        config.groups.keys().map(|gid| (*gid, Vec::new())).collect();
    for (shard, gid) in (0u32..).zip(&config.shards) {
        shards_by_gid.entry(*gid).or_default().push(shard);
    }
    let mut table = format!(
        "config {}: {} shards, {} groups\n",
        config.num,
        config.shards.len(),
        config.groups.len()
    );
    let _ = writeln!(
        table,
        "{:<8} {:>6}  {:<24} SERVERS",
        "GID", "COUNT", "SHARDS"
    );
    for (gid, shards) in &shards_by_gid {
        let name = if *gid == 0 {
            "0 (none)".to_string()
        } else {
            gid.to_string()
        };
        let servers = config
            .groups
            .get(gid)
            .map(|list| list.servers.join(","))
            .unwrap_or_else(|| "-".to_string());
        let ranges = shard_ranges(shards);
        let _ = writeln!(
            table,
            "{name:<8} {:>6}  {ranges:<24} {servers}",
            shards.len()
        );
    }
    table
}

/// Returns a byte count for people: `512 B`, `3.4 KiB`, `12.0 MiB`,
/// `1.50 GiB`.
pub fn byte_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let exact = bytes as f64;
    if exact < KIB {
        format!("{bytes} B")
    } else if exact < KIB * KIB {
        format!("{:.1} KiB", exact / KIB)
    } else if exact < KIB * KIB * KIB {
        format!("{:.1} MiB", exact / (KIB * KIB))
    } else {
        format!("{:.2} GiB", exact / (KIB * KIB * KIB))
    }
}

/// Returns ascending shard numbers as ranges: `0-3,8,10-12`; `-` if none.
pub fn shard_ranges(shards: &[u32]) -> String {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for &shard in shards {
        match ranges.last_mut() {
            Some((_, end)) if shard == *end + 1 => *end = shard,
            _ => ranges.push((shard, shard)),
        }
    }
    if ranges.is_empty() {
        return "-".to_string();
    }
    ranges
        .iter()
        .map(|(start, end)| {
            if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> pb::Config {
        let mut config = pb::Config {
            num: 3,
            shards: vec![1, 1, 2, 2, 1, 0],
            ..Default::default()
        };
        config.groups.insert(
            1,
            pb::ServerList {
                servers: vec!["a:1".into(), "a:2".into()],
            },
        );
        config.groups.insert(
            2,
            pb::ServerList {
                servers: vec!["b:1".into()],
            },
        );
        config
    }

    #[test]
    fn shard_ranges_compress_runs() {
        assert_eq!(shard_ranges(&[0, 1, 2, 3, 8, 10, 11, 12]), "0-3,8,10-12");
        assert_eq!(shard_ranges(&[]), "-");
        assert_eq!(shard_ranges(&[5]), "5");
    }

    #[test]
    fn byte_sizes_read_in_the_largest_fitting_unit() {
        assert_eq!(byte_size(0), "0 B");
        assert_eq!(byte_size(1023), "1023 B");
        assert_eq!(byte_size(3 * 1024 + 512), "3.5 KiB");
        assert_eq!(byte_size(12 << 20), "12.0 MiB");
        assert_eq!(byte_size(3 << 29), "1.50 GiB");
    }

    // The table lists every group with its shards and servers, and the
    // unassigned shards apart.
    #[test]
    fn table_lists_groups_in_gid_order() {
        let table = config_table(&sample());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "config 3: 6 shards, 2 groups");
        assert!(lines[2].starts_with("0 (none)"), "{table}");
        assert!(
            lines[3].starts_with('1') && lines[3].contains("0-1,4"),
            "{table}"
        );
        assert!(lines[3].ends_with("a:1,a:2"), "{table}");
        assert!(
            lines[4].starts_with('2') && lines[4].contains("2-3"),
            "{table}"
        );
    }

    // JSON keeps the proto field names; map keys are strings.
    #[test]
    fn json_has_the_proto_field_names() {
        let value = config_json(&sample());
        assert_eq!(value["num"], 3);
        assert_eq!(value["shards"][2], 2);
        assert_eq!(value["groups"]["1"][1], "a:2");
    }
}
