//! A demo application on the `raft` crate, kept apart from the library so
//! no server compiles it: a replicated register map over RocksDB
//! ([`register`]), served over the public `kv.v1.ShardKv` API by one Raft
//! group without sharding (the `raft-node` binary, on the replica runtime
//! `raft::replica`), and `raft-bench`, the benchmark of a real 3-node
//! group of `raft-node` processes. Its tests run the Raft layer as real
//! nodes: in one process over loopback gRPC, and as processes killed with
//! SIGKILL.

pub mod register;
