//! The syntax of a replica's gRPC address in a Join (docs/shardctrler.md,
//! "Admin input"): `host:port`, where host is a DNS name, an IPv4 address
//! or a bracketed IPv6 address, and port is 1 to 65535.
//!
//! The check is pure and deterministic, so every controller replica refuses
//! the same Joins. It does not resolve names: a name that does not resolve
//! yet (a container still starting) is accepted.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest DNS name (RFC 1035, without the trailing dot).
const DNS_NAME_BYTES_MAX: usize = 253;
/// Longest label of a DNS name.
const DNS_LABEL_BYTES_MAX: usize = 63;
/// Characters of a refused address kept in an error: enough to recognise
/// it, without storing megabytes in a client's session.
pub const ADDRESS_IN_ERROR_CHARS_MAX: usize = 64;

/// Returns whether `address` is a valid `host:port`.
pub fn is_valid_server_address(address: &str) -> bool {
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    is_valid_port(port) && is_valid_host(host)
}

/// Returns `address` cut to [`ADDRESS_IN_ERROR_CHARS_MAX`] characters,
/// marked with `...` when cut.
pub fn shortened(address: &str) -> String {
    match address.char_indices().nth(ADDRESS_IN_ERROR_CHARS_MAX) {
        Some((cut, _)) => format!("{}...", &address[..cut]),
        None => address.to_string(),
    }
}

/// A decimal port of 1 to 65535, digits only.
fn is_valid_port(port: &str) -> bool {
    !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|byte| byte.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|port| port > 0)
}

fn is_valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok());
    }
    host.parse::<Ipv4Addr>().is_ok() || is_valid_dns_name(host)
}

/// Labels of letters, digits, `-` and `_` (container names use it), none
/// empty or starting or ending with `-`.
fn is_valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= DNS_NAME_BYTES_MAX
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= DNS_LABEL_BYTES_MAX
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_and_addresses_with_a_port() {
        for address in [
            "localhost:7000",
            "kv-group-1.example.com:443",
            "deploy_kv_1:7100",
            "10.0.0.1:65535",
            "[::1]:1",
            "[2001:db8::7]:7000",
            &format!("{}:80", "a".repeat(63)),
        ] {
            assert!(is_valid_server_address(address), "{address}");
        }
    }

    #[test]
    fn refuses_what_is_not_host_colon_port() {
        for address in [
            "",
            "localhost",
            "localhost:",
            ":7000",
            "localhost:0",
            "localhost:65536",
            "localhost:+80",
            "localhost:0080x",
            "local host:80",
            "-lead.example:80",
            "trail-.example:80",
            "a..b:80",
            "host.:80",
            "::1:80",
            "[::1:80",
            "[not-ip]:80",
            "http://host:80",
            "host:80/path",
            &format!("{}:80", "a".repeat(64)),
            &format!("{}:80", ["abc"; 64].join(".")),
        ] {
            assert!(!is_valid_server_address(address), "{address}");
        }
    }

    #[test]
    fn shortened_keeps_short_addresses_and_cuts_long_ones() {
        assert_eq!(shortened("host:80"), "host:80");
        let long = "é".repeat(100);
        let cut = shortened(&long);
        assert_eq!(cut.chars().count(), ADDRESS_IN_ERROR_CHARS_MAX + 3);
        assert!(cut.ends_with("..."));
    }
}
