//! Generated code of the project's protocol buffers and the few helpers
//! every side of the public API shares.
//!
//! - [`kv::v1`]: the public, stable API (DESIGN.md "Public API").
//! - [`raft::v1`]: the internal Raft peer protocol.
//! - [`shardkv::v1`]: the internal protocol of the replica groups (their
//!   log entries).
//! - [`address`]: the `host:port` syntax of a server address.
//! - [`config`]: the ids and the configuration value, and their wire form.
//! - [`shard_of_key`]: the shard of a key.

pub mod address;
pub mod config;

/// The public API, package `kv.v1`.
pub mod kv {
    /// Version 1 of the public API.
    #[allow(missing_docs, clippy::too_many_lines)]
    pub mod v1 {
        tonic::include_proto!("kv.v1");
    }
}

/// The internal Raft peer protocol, package `raft.v1`.
pub mod raft {
    /// Version 1 of the peer protocol.
    #[allow(missing_docs, clippy::too_many_lines)]
    pub mod v1 {
        tonic::include_proto!("raft.v1");
    }
}

/// The internal protocol of the replica groups, package `shardkv.v1`.
pub mod shardkv {
    /// Version 1 of the groups' protocol.
    #[allow(missing_docs, clippy::too_many_lines)]
    pub mod v1 {
        tonic::include_proto!("shardkv.v1");
    }
}

/// Returns the shard a key belongs to: `crc32(key) % shard_count`, with the
/// zlib CRC-32 that `crc32fast::hash` computes, so clients in any language
/// route alike.
///
/// # Panics
/// Panics if `shard_count` is zero: a configuration always has shards.
pub fn shard_of_key(key: &[u8], shard_count: u32) -> u32 {
    assert!(shard_count > 0, "shard count must be positive");
    crc32fast::hash(key) % shard_count
}

#[cfg(test)]
mod tests {
    use super::*;

    // The routing function is part of the public API: pin known values so a
    // change of hash function cannot slip through.
    #[test]
    fn shard_of_key_matches_zlib_crc32() {
        // zlib: crc32(b"123456789") == 0xCBF43926.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(shard_of_key(b"123456789", 64), 0xCBF4_3926 % 64);
        assert_eq!(shard_of_key(b"", 64), 0);
    }
}
