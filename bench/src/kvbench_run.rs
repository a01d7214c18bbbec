//! One run of the `kvbench` binary as a child process, and the figures
//! the comparison benches keep from its JSON: throughput, p50, p99,
//! errors, and the CPU time the servers spent per operation (from
//! `/proc`, steadier than throughput on a shared machine).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cluster::bin_dir;
use crate::probe;

/// One kvbench measurement.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Operations per second.
    pub ops_per_second: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// Operations that failed.
    pub errors: u64,
    /// CPU time the server processes used per operation, in
    /// microseconds. It includes the fill of a get run, the same for
    /// both sides: compare sides, not absolute figures.
    pub server_cpu_us: f64,
    /// CPU time the load generator (kvbench, client library included)
    /// used per operation, in microseconds.
    pub client_cpu_us: f64,
}

/// Returns the `kvbench` binary next to the running bench.
///
/// # Errors
///
/// If it was not built.
pub fn kvbench_binary() -> Result<PathBuf> {
    let kvbench = bin_dir()?.join("kvbench");
    if !kvbench.exists() {
        bail!(
            "{} not found next to the bench: build it first (cargo build --release -p kv-bench)",
            kvbench.display()
        );
    }
    Ok(kvbench)
}

/// Runs `kvbench` with `args` (its `--json` added) while measuring the
/// CPU time of the server processes `server_pids`, and returns the
/// figures.
///
/// # Errors
///
/// kvbench failing, or JSON without the figures.
pub fn run_kvbench(kvbench: &Path, args: &[String], server_pids: &[u32]) -> Result<Sample> {
    let cpu = || -> f64 {
        server_pids
            .iter()
            .filter_map(|&pid| probe::cpu_seconds(pid))
            .sum()
    };
    let cpu_before = cpu();
    let output = Command::new(kvbench)
        .env_remove("KV_CTRLER")
        .env_remove("KV_ETCD_ENDPOINTS")
        .args(args)
        .arg("--json")
        .output()
        .context("running kvbench")?;
    let cpu_used = cpu() - cpu_before;
    if !output.status.success() {
        bail!(
            "kvbench {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("kvbench's JSON")?;
    let number = |name: &str| {
        json[name]
            .as_f64()
            .with_context(|| format!("kvbench's JSON has no number `{name}`: {json}"))
    };
    let ops = number("ops")?;
    Ok(Sample {
        server_cpu_us: cpu_used * 1e6 / ops.max(1.0),
        ops_per_second: number("ops_per_second")?,
        p50_ms: number("p50_ms")?,
        p99_ms: number("p99_ms")?,
        errors: json["errors"].as_u64().unwrap_or(0),
        client_cpu_us: json["client_cpu_us_per_op"].as_f64().unwrap_or(f64::NAN),
    })
}
