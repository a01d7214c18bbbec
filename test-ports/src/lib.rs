//! Loopback ports for tests that start servers (and restart them on the
//! same address).
//!
//! A port the kernel picks for `bind("127.0.0.1:0")` lies in its ephemeral
//! range, the same range outgoing connections take their local ports
//! from. Between a test releasing such a port and its server binding it
//! (or binding it again after a restart), a client connection of any test
//! running alongside can take it, and the server fails with `AddrInUse`.
//!
//! Invariants:
//! - Every port handed out lies in [`PORTS`], below Linux's default
//!   ephemeral range (32768-60999), so no outgoing connection is ever
//!   given one.
//! - No port is handed out twice in one process, so tests running at once
//!   in one test binary never share a port.
//! - Every port was free when handed out: all the ports of one call were
//!   bound together, then released.

use std::net::TcpListener;
use std::sync::Mutex;

/// The ports handed out: below Linux's default ephemeral range.
pub const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// The next port to try; `None` until the first call.
static NEXT: Mutex<Option<u16>> = Mutex::new(None);

/// Returns `count` distinct free loopback ports in [`PORTS`].
///
/// Panics if [`PORTS`] has fewer than `count` free ports left.
pub fn free_ports(count: usize) -> Vec<u16> {
    let mut next = NEXT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let span = PORTS.end - PORTS.start;
    // Each process starts at its own place (from its pid), so test
    // binaries running at once rarely probe the same ports.
    let mut port = next.unwrap_or(PORTS.start + (std::process::id() % u32::from(span)) as u16);
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..span {
        if listeners.len() == count {
            break;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            listeners.push(listener);
        }
        port = if port + 1 >= PORTS.end {
            PORTS.start
        } else {
            port + 1
        };
    }
    assert_eq!(listeners.len(), count, "no {count} free ports in {PORTS:?}");
    *next = Some(port);
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("a bound address").port())
        .collect()
}

/// Returns `count` distinct free loopback addresses (`127.0.0.1:port`),
/// ports as [`free_ports`] hands them out.
pub fn free_addresses(count: usize) -> Vec<String> {
    free_ports(count)
        .into_iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test, so no other test moves the cursor while it runs.
    #[test]
    fn ports_are_distinct_free_below_the_ephemeral_range_and_skip_bound_ones() {
        let first = free_ports(50);
        let second = free_ports(50);
        let mut all: Vec<u16> = first.iter().chain(&second).copied().collect();
        assert!(all.iter().all(|port| PORTS.contains(port)), "{all:?}");
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 100, "a port was handed out twice");
        for &port in &first {
            TcpListener::bind(("127.0.0.1", port)).expect("a handed-out port is free");
        }

        // Point the cursor at a port something holds: it is passed over.
        let taken = first[0];
        let _holder = TcpListener::bind(("127.0.0.1", taken)).expect("free");
        *NEXT.lock().expect("not poisoned") = Some(taken);
        let given = free_ports(3);
        assert!(!given.contains(&taken), "{given:?} holds the bound {taken}");

        let address = free_addresses(1).remove(0);
        let parsed: std::net::SocketAddr = address.parse().expect("an address");
        assert!(parsed.ip().is_loopback(), "{address}");
    }
}
