//! What the benches read from server processes: an HTTP GET of `/metrics`
//! or `/readyz`, samples of a metric in the Prometheus text format, and a
//! process's peak resident set size (`VmHWM` in `/proc/PID/status`), which
//! can be reset between the phases of a bench.

use std::io::{Read, Write};
use std::time::Duration;

/// Fetches `path` from the HTTP server at `address` (`host:port`) and
/// returns the status code and the body.
///
/// # Errors
///
/// Any I/O error, or a response that is not HTTP.
fn http_get(address: &str, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let socket = address
        .parse()
        .map_err(|_| std::io::Error::other(format!("`{address}` is not IP:PORT")))?;
    let mut stream = std::net::TcpStream::connect_timeout(&socket, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    Ok((code, body.to_string()))
}

/// Returns whether the server whose HTTP address is `address` answers
/// `/readyz` with 200 (it knows a leader).
pub fn ready(address: &str) -> bool {
    matches!(
        http_get(address, "/readyz", Duration::from_secs(2)),
        Ok((200, _))
    )
}

/// Returns the `/metrics` page of the server at `address`, or `None` if it
/// did not answer.
pub fn metrics(address: &str) -> Option<String> {
    match http_get(address, "/metrics", Duration::from_secs(5)) {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

/// Returns the sum of the samples of metric `name` in `page` whose labels
/// include every `key="value"` of `labels`, or `None` if none matched.
pub fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut sum = None;
    for line in page.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = if let Some(rest) = rest.strip_prefix('{') {
            let Some((label_text, value)) = rest.split_once('}') else {
                continue;
            };
            (label_text, value)
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue;
        };
        let matches = labels
            .iter()
            .all(|(key, want)| label_text.contains(&format!("{key}=\"{want}\"")));
        if !matches {
            continue;
        }
        if let Some(value) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *sum.get_or_insert(0.0) += value;
        }
    }
    sum
}

/// Returns the peak resident set size of process `pid`, in bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

/// Returns the resident set size of process `pid` now, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

/// Resets the peak RSS of process `pid` to its current RSS (writing 5 to
/// `/proc/PID/clear_refs`, Linux 4.0 and later), so the next
/// [`peak_rss_bytes`] covers only what follows. Returns whether it could.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Returns the value in KiB of the `/proc/PID/status` line starting with
/// `field`.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Returns the CPU time the threads of process `pid` have run so far, in
/// seconds, as the scheduler counts it (`/proc/PID/task/*/schedstat`, in
/// nanoseconds); `None` if the process is gone or the kernel keeps no
/// such count.
///
/// Not `/proc/PID/stat`'s user and system times: those are charged in
/// whole clock ticks to whichever thread runs at each tick, and a process
/// that wakes briefly and often (a Raft node at rest) was charged ten
/// times what it ran (28 against 300 ms per second for an idle group, on
/// 2026-12-06). A thread that ends takes its count with it: compare
/// readings of servers whose threads live as long as they do.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let counts: Vec<u64> = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .collect();
    if counts.is_empty() {
        return None;
    }
    Some(counts.iter().sum::<u64>() as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Samples are matched by name (not by prefix) and by every label asked.
    #[test]
    fn samples_match_name_and_labels() {
        let page = "# TYPE shardkv_shards gauge\n\
                    shardkv_shards{group=\"1\",node=\"2\",state=\"serving\"} 60\n\
                    shardkv_shards{group=\"1\",node=\"2\",state=\"pulling\"} 4\n\
                    shardkv_shards_other{state=\"serving\"} 9\n\
                    shardkv_config_num 3\n";
        assert_eq!(
            sample(page, "shardkv_shards", &[("state", "serving")]),
            Some(60.0)
        );
        assert_eq!(sample(page, "shardkv_shards", &[]), Some(64.0));
        assert_eq!(sample(page, "shardkv_config_num", &[]), Some(3.0));
        assert_eq!(
            sample(page, "shardkv_shards", &[("state", "sending")]),
            None
        );
        assert_eq!(sample(page, "absent", &[]), None);
    }

    // This process's own peak RSS is readable and at least its RSS.
    #[test]
    fn own_peak_rss_is_readable() {
        let pid = std::process::id();
        let peak = peak_rss_bytes(pid).expect("VmHWM");
        assert!(peak >= rss_bytes(pid).expect("VmRSS") / 2);
    }

    // The CPU time counted grows with the CPU this process spends, to
    // well under a clock tick.
    #[test]
    fn cpu_time_counts_what_runs() {
        let pid = std::process::id();
        let before = cpu_seconds(pid).expect("schedstat");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut spins = 0u64;
        while cpu_seconds(pid).expect("schedstat") - before < 0.002 {
            assert!(
                std::time::Instant::now() < deadline,
                "no CPU counted in 30 s"
            );
            spins = std::hint::black_box(spins + 1);
        }
        assert!(cpu_seconds(pid).expect("schedstat") - before < 1.0);
    }
}
