//! Benches of the whole store run as processes on loopback, and what
//! they share:
//!
//! - [`store`]: the stores `kvbench` drives (ours, or etcd) behind one
//!   interface.
//! - [`etcd`]: a 3-member etcd cluster started as child processes, the
//!   reference `compare-etcd` measures against.
//! - [`cluster`]: a local cluster of release binaries (three `shardctrler`
//!   replicas, groups of three `shardkv` or `raft-node` replicas) started
//!   as child processes in a temporary directory, joined through the
//!   controller, killed and removed when dropped.
//! - [`fill`]: the values the benches load and read back, and the
//!   concurrent writers that load them.
//! - [`kvbench_run`]: one run of `kvbench` and the figures kept from it.
//! - [`probe`]: what the benches read from the processes: `/metrics`
//!   samples, `/readyz`, peak RSS from `/proc`.
//! - `src/bin/migration-bench.rs`: a shard set of 256 MiB and 1 GiB moved
//!   between groups (time, MiB/s, peak RSS of both groups).
//! - `src/bin/restart-bench.rs`: replicas killed and started again on
//!   data of each size (time until they serve, peak RSS).
//! - `src/bin/kvbench.rs`: closed-loop load on either store.
//! - `src/bin/data-path-bench.rs`: `kvbench` against one `shardkv` group
//!   and against one `raft-node` group joined as a group, alternating.
//! - `src/bin/compare-etcd.rs`: `kvbench` against our cluster and against
//!   etcd on the same machine, alternating.
//!
//! Errors are `anyhow`: this crate is bench tooling, a failure ends the
//! run with its cause.

pub mod cluster;
pub mod etcd;
pub mod fill;
pub mod kvbench_run;
pub mod probe;
pub mod store;

/// Runs a bench binary's `run` to completion on a tokio runtime made by
/// `runtime` (current-thread for a bench that only drives child
/// processes, multi-thread for one that also loads the store in process)
/// and returns the process's exit code: success, or failure with the
/// error and its causes printed under the bench's `name`.
pub fn block_on_main(
    name: &str,
    mut runtime: tokio::runtime::Builder,
    run: impl std::future::Future<Output = anyhow::Result<()>>,
) -> std::process::ExitCode {
    let runtime = runtime.enable_all().build().expect("tokio runtime");
    match runtime.block_on(run) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Formats bytes as whole MiB (`123 MiB`), or `?` where unknown.
pub fn mib_of(bytes: Option<u64>) -> String {
    bytes.map_or("?".into(), |b| format!("{} MiB", b >> 20))
}

/// Returns the median of `values` (the upper one of an even count), or
/// `None` for none. NaNs sort last.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

/// Returns in how many runs `a` was no higher than `b`, pairing the
/// runs by position (each pair measured one after the other): a verdict on
/// medians that holds in most pairs is the systems' difference, one that
/// holds in about half is the machine's noise.
pub fn pairs_no_higher(a: &[f64], b: &[f64]) -> usize {
    a.iter().zip(b).filter(|(a, b)| a <= b).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The median of an odd count is the middle value whatever the order.
    #[test]
    fn median_is_the_middle_value() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[5.0]), Some(5.0));
        assert_eq!(median(&[]), None);
    }

    // Pairs go by position, a tie counts as no higher, and a run without
    // its pair is not counted.
    #[test]
    fn pairs_no_higher_counts_each_pair_by_position() {
        assert_eq!(pairs_no_higher(&[1.0, 3.0, 2.0], &[2.0, 1.0, 2.0]), 2);
        assert_eq!(pairs_no_higher(&[5.0, 1.0], &[4.0]), 0);
        assert_eq!(pairs_no_higher(&[], &[]), 0);
    }
}
