//! [`ClientError`]: why a client call failed (STYLE.md D). Callers match on
//! the variant, never on the message: a refusal is final and retrying it
//! changes nothing; a deadline means the outcome of a write is unknown.

use thiserror::Error;

/// Why a call to the cluster failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// The server refused the request as invalid (gRPC `INVALID_ARGUMENT`):
    /// bad admin input, an unknown gid, ... Nothing changed.
    #[error("refused: {message}")]
    InvalidArgument {
        /// The server's explanation.
        message: String,
    },
    /// The caller's deadline passed before any server answered for good.
    /// A write may or may not have applied; it never applies twice.
    #[error("no answer within {millis} ms (last error: {last_error})")]
    DeadlineExceeded {
        /// The deadline, in milliseconds.
        millis: u64,
        /// What the last attempt ran into.
        last_error: String,
    },
    /// A server address is not `host:port`.
    #[error("invalid server address {address:?}: {reason}")]
    InvalidAddress {
        /// The address given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A server answered something this client does not understand or
    /// failed in a way retrying cannot fix (gRPC `INTERNAL`, an unknown
    /// status, a reply without its configuration).
    #[error("server error: {message}")]
    Server {
        /// What went wrong.
        message: String,
    },
}
