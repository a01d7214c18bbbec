//! CPU time of the benchmark's processes, read from `/proc/<pid>/stat`, so
//! a run can say where each write's CPU went (load generator, leader,
//! followers) without a profiler.
//!
//! The figures are user + system time of every thread of a process, live
//! or exited, in the kernel's `USER_HZ` ticks (100 per second on Linux's
//! mainstream architectures): 10 ms resolution, which a run of several
//! seconds at hundreds of milliseconds of CPU per second makes small.

use std::time::Duration;

/// Clock ticks per second of the times `/proc/<pid>/stat` reports.
const USER_HZ: u64 = 100;

/// Returns the CPU time (user + system) process `pid` used so far, or
/// `None` where `/proc` cannot tell (not Linux, process gone).
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// Parses utime + stime out of a `/proc/<pid>/stat` line. The command
/// name in parentheses may hold spaces and parentheses, so fields are
/// counted from the last `)`: state is the first field after it, utime
/// the 12th and stime the 13th.
fn parse_stat(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 1000 / USER_HZ))
}

/// CPU time of a set of processes, sampled at the start of a run.
pub struct CpuSample {
    start: Vec<Option<Duration>>,
}

impl CpuSample {
    /// Samples the CPU time of each of `pids` now.
    pub fn take(pids: &[u32]) -> CpuSample {
        CpuSample {
            start: pids.iter().map(|&pid| process_cpu(pid)).collect(),
        }
    }

    /// Returns the CPU each of `pids` (the same, in the same order) used
    /// since the sample, in microseconds per one of `operations`.
    pub fn micros_per_operation(&self, pids: &[u32], operations: u64) -> Vec<Option<f64>> {
        pids.iter()
            .zip(&self.start)
            .map(|(&pid, start)| {
                let used = process_cpu(pid)?.checked_sub((*start)?)?;
                Some(used.as_secs_f64() * 1e6 / operations.max(1) as f64)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_system_ticks_after_the_command_name() {
        // A command name with a space and a parenthesis, as `comm` allows.
        let line = "4242 (raft (x) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 130 0 0 20 0 9 0 12345 0 0";
        assert_eq!(parse_stat(line), Some(Duration::from_millis(3800)));
    }

    #[test]
    fn a_truncated_line_gives_none() {
        assert_eq!(parse_stat("4242 (raft) S 1 2 3"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_has_a_cpu_time() {
        assert!(
            process_cpu(std::process::id()).is_some(),
            "/proc/<own pid>/stat is readable on Linux"
        );
    }
}
