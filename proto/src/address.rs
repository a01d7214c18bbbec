//! The syntax of a server's gRPC address, shared by every side of the API
//! (a Join's server addresses, `--peers`, the clients' server lists;
//! docs/shardctrler.md, "Validation"): `host:port`, where host is a DNS
//! name, a dotted-decimal IPv4 address or a bracketed IPv6 address (neither
//! unspecified), and port is 1 to 65535 in decimal without leading zeros.
//!
//! Invariants: the check is pure and deterministic, so every controller
//! replica refuses the same Joins; it does not resolve names (a container
//! still starting is fine). A host the resolver would read as a number in
//! another spelling (`010.0.0.1`, `2130706433`, `0x7f.1`) is refused, so an
//! address dials what it says. [`duplicate_key`] gives the same key to
//! every spelling of one endpoint that the check accepts.

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

/// Returns the key under which a valid address is compared with others:
/// names in lower case (DNS ignores case), IPv6 addresses in their
/// canonical form. Two accepted addresses reach the same endpoint by the
/// same spelling only if their keys are equal.
pub fn duplicate_key(address: &str) -> String {
    if let Some((host, port)) = address.rsplit_once(':')
        && let Some(ip) = bracketed_ipv6(host)
    {
        return format!("[{ip}]:{port}");
    }
    address.to_ascii_lowercase()
}

/// Returns `address` cut to [`ADDRESS_IN_ERROR_CHARS_MAX`] characters,
/// marked with `...` when cut.
pub fn shortened(address: &str) -> String {
    match address.char_indices().nth(ADDRESS_IN_ERROR_CHARS_MAX) {
        Some((cut, _)) => format!("{}...", &address[..cut]),
        None => address.to_string(),
    }
}

/// A decimal port of 1 to 65535, digits only, no leading zero.
fn is_valid_port(port: &str) -> bool {
    !port.starts_with('0')
        && port.len() <= 5
        && port.bytes().all(|byte| byte.is_ascii_digit())
        && port.parse::<u16>().is_ok()
}

fn is_valid_host(host: &str) -> bool {
    if host.starts_with('[') {
        return bracketed_ipv6(host).is_some_and(|ip| !ip.is_unspecified());
    }
    if looks_numeric(host) {
        return host
            .parse::<Ipv4Addr>()
            .is_ok_and(|ip| !ip.is_unspecified());
    }
    is_valid_dns_name(host)
}

/// Returns the IPv6 address of a `[...]` host (no zone id).
fn bracketed_ipv6(host: &str) -> Option<Ipv6Addr> {
    host.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// Whether the resolver would read `host` as an IPv4 address (the
/// `inet_aton` forms: one to four parts, each decimal, octal or `0x` hex).
fn looks_numeric(host: &str) -> bool {
    host.split('.').all(|part| {
        let digits = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X"));
        match digits {
            Some(hex) => hex.bytes().all(|byte| byte.is_ascii_hexdigit()),
            None => !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit()),
        }
    })
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

    /// Returns a DNS name of `bytes` (193 to 255) bytes: labels of 63
    /// bytes and a shorter last one.
    fn name_of_bytes(bytes: usize) -> String {
        let name = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(bytes - 192));
        assert_eq!(name.len(), bytes);
        name
    }

    #[test]
    fn accepts_names_and_addresses_with_a_port() {
        for address in [
            "localhost:7000",
            "kv-group-1.example.com:443",
            "deploy_kv_1:7100",
            "10.0.0.1:65535",
            "[::1]:1",
            "[2001:db8::7]:7000",
            "KV-1.Example:7000",
            "_:80",
            "kv.1.example:80",
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
            "localhost:080",
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
            "kv.example.:80",
            "[::1]",
            "[fe80::1%eth0]:80",
            "0.0.0.0:80",
            "[::]:80",
            "010.0.0.1:80",
            "1.2.3:80",
            "2130706433:80",
            "0x7f.1:80",
            "127.000.000.001:80",
            "é.example:80",
            &format!("{}:80", "a".repeat(64)),
            &format!("{}:80", ["abc"; 64].join(".")),
            // One byte past the longest DNS name.
            &format!("{}:80", name_of_bytes(254)),
        ] {
            assert!(!is_valid_server_address(address), "{address}");
        }
    }

    #[test]
    fn a_name_of_253_bytes_is_the_longest_accepted() {
        let name = name_of_bytes(253);
        assert!(is_valid_server_address(&format!("{name}:80")));
    }

    #[test]
    fn spellings_of_one_endpoint_share_a_duplicate_key() {
        assert_eq!(
            duplicate_key("KV-1.Example:7000"),
            duplicate_key("kv-1.example:7000")
        );
        assert_eq!(duplicate_key("[0:0::1]:80"), duplicate_key("[::0001]:80"));
        assert_eq!(duplicate_key("[::1]:80"), "[::1]:80");
        assert_ne!(duplicate_key("kv-1:7000"), duplicate_key("kv-1:7001"));
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
