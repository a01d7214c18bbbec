//! The deployment files of `deploy/` as the tests read them: their paths,
//! and the metric names the alert rules and the dashboard mention.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Returns the path of `name` under `deploy/`.
pub fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(name)
}

/// Returns the metric names `text` mentions: words starting with a
/// server's metric prefix, a histogram's `_bucket`, `_sum` and `_count`
/// series counted as the histogram.
pub fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| {
            ["raft_", "shardkv_", "shardctrler_"]
                .iter()
                .any(|prefix| word.starts_with(prefix))
        })
        .map(|word| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(word)
                .to_string()
        })
        .collect()
}

/// Returns the metric names the alert rules (`deploy/alerts.yml`) use.
pub fn alert_metric_names() -> BTreeSet<String> {
    let rules = std::fs::read_to_string(deploy_file("alerts.yml")).expect("alerts.yml reads");
    metric_names(&rules)
}
