//! Cross-crate integration tests (in `tests/`): controllers and replica
//! groups started together, in process, over real gRPC and RocksDB.
