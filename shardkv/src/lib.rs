//! Replica group server (DESIGN.md "Reconfiguration in a group"): the
//! group's logic as pure parts under thin I/O shells, so the simulator can
//! run the migration protocol.
//!
//! - [`shards`]: the shards one group holds, their states (Serving,
//!   Pulling, Sending, Cleaning) and the transitions a new configuration
//!   and each step of a move make.
//!
//! The state machine over RocksDB, the migration service, the server and
//! the configuration follower come next (issue 17).

pub mod shards;
