//! The deployment files (`deploy/`) against the servers: every metric the
//! alert rules and the Grafana dashboard name is one the servers export,
//! and Prometheus accepts the configuration and the rules (`promtool`,
//! from Debian's `prometheus` package, which `.ci/run` installs; the check
//! says so and passes when it is absent).

use std::collections::BTreeSet;
use std::process::Command;

use kv_tests::deploy::{deploy_file, metric_names};

fn exported() -> BTreeSet<&'static str> {
    raft::metrics::NODE_METRICS
        .iter()
        .chain(raft::metrics::TRANSPORT_METRICS)
        .chain(shardkv::metrics::GROUP_METRICS)
        .chain(shardctrler::metrics::CONTROLLER_METRICS)
        .copied()
        .collect()
}

// Goal: an alert or a panel never watches a series no server exports
// (it would stay silent or empty forever).
#[test]
fn every_metric_the_rules_and_the_dashboard_name_is_exported() {
    let exported = exported();
    for file in ["alerts.yml", "grafana/kv.json"] {
        let text = std::fs::read_to_string(deploy_file(file)).expect("the file reads");
        let named = metric_names(&text);
        assert!(named.len() >= 5, "{file} names only {named:?}");
        let unknown: Vec<&String> = named
            .iter()
            .filter(|name| !exported.contains(name.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics no server exports: {unknown:?}"
        );
    }
}

// Goal: Prometheus accepts the scrape configuration and the alert rules.
#[test]
fn promtool_accepts_the_configuration_and_the_rules() {
    if Command::new("promtool").arg("--version").output().is_err() {
        eprintln!("promtool is not installed (Debian: apt-get install prometheus); not checked");
        return;
    }
    for (what, file) in [("config", "prometheus.yml"), ("rules", "alerts.yml")] {
        let output = Command::new("promtool")
            .args(["check", what])
            .arg(deploy_file(file))
            .output()
            .expect("promtool runs");
        assert!(
            output.status.success(),
            "promtool check {what} {file}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
