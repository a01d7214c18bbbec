//! Cross-crate integration tests (in `tests/`): controllers and replica
//! groups started together, in process, over real gRPC and RocksDB.
//!
//! The library holds what the test files share: the in-process cluster
//! with its fault-injecting transport ([`harness`]) and the recording and
//! checking of concurrent clients' histories ([`history`]), and the
//! deployment files as the tests read them ([`deploy`]).

pub mod deploy;
pub mod harness;
pub mod history;
