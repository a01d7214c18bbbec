//! Client writes and the limits every key and value must keep (DESIGN.md
//! "Clients and semantics"): what the group's log carries for a client,
//! and the checks that refuse bad input before it reaches the log.
//!
//! Invariants:
//! - A write that passes [`Write::check`] never holds an empty key, a key
//!   past [`KEY_BYTES_MAX`] or a value past [`VALUE_BYTES_MAX`].
//! - An Append whose result would pass [`VALUE_BYTES_MAX`] is not refused
//!   here (the result depends on the stored value): applying it records
//!   [`WriteReply::ValueTooLong`] and changes nothing.

use bytes::Bytes;

/// The longest key, in bytes.
pub const KEY_BYTES_MAX: usize = 4 * 1024;
/// The longest value, in bytes (an Append's result included).
pub const VALUE_BYTES_MAX: usize = 1 << 20;

/// A client's write to one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Sets the key's value.
    Put {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
    },
    /// Appends to the key's value (a missing key reads as empty).
    Append {
        /// The key.
        key: Bytes,
        /// The suffix.
        value: Bytes,
    },
    /// Removes the key.
    Delete {
        /// The key.
        key: Bytes,
    },
}

/// Why a write or a read is refused before it reaches the log
/// (`INVALID_ARGUMENT`, with this message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    /// The key is empty.
    #[error("the key is empty")]
    EmptyKey,
    /// The key is too long.
    #[error("the key is {length} bytes, the limit is {KEY_BYTES_MAX}")]
    KeyTooLong {
        /// Its length.
        length: usize,
    },
    /// The value is too long.
    #[error("the value is {length} bytes, the limit is {VALUE_BYTES_MAX}")]
    ValueTooLong {
        /// Its length.
        length: usize,
    },
}

/// Checks a key against the limits.
///
/// # Errors
///
/// [`InvalidInput::EmptyKey`] or [`InvalidInput::KeyTooLong`].
pub fn check_key(key: &[u8]) -> Result<(), InvalidInput> {
    match key.len() {
        0 => Err(InvalidInput::EmptyKey),
        length if length > KEY_BYTES_MAX => Err(InvalidInput::KeyTooLong { length }),
        _ => Ok(()),
    }
}

impl Write {
    /// Returns the key written.
    pub fn key(&self) -> &Bytes {
        match self {
            Write::Put { key, .. } | Write::Append { key, .. } | Write::Delete { key } => key,
        }
    }

    /// Checks the key and the value against the limits.
    ///
    /// # Errors
    ///
    /// The first limit the write passes.
    pub fn check(&self) -> Result<(), InvalidInput> {
        check_key(self.key())?;
        match self {
            Write::Put { value, .. } | Write::Append { value, .. }
                if value.len() > VALUE_BYTES_MAX =>
            {
                Err(InvalidInput::ValueTooLong {
                    length: value.len(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// The reply a write got, recorded in its client's session so a retry
/// gets it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteReply {
    /// Applied.
    Ok,
    /// An Append whose result would pass [`VALUE_BYTES_MAX`]: nothing
    /// changed.
    ValueTooLong {
        /// The length the value would have had.
        length: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: each limit refuses exactly past it, naming the limit.
    #[test]
    fn every_limit_refuses_just_past_it() {
        let key = |length| Bytes::from(vec![b'k'; length]);
        let value = |length| Bytes::from(vec![b'v'; length]);
        let put = |key, value| Write::Put { key, value };
        assert_eq!(put(key(1), value(0)).check(), Ok(()));
        assert_eq!(put(key(0), value(1)).check(), Err(InvalidInput::EmptyKey));
        assert_eq!(
            put(key(KEY_BYTES_MAX), value(VALUE_BYTES_MAX)).check(),
            Ok(())
        );
        let long_key = put(key(KEY_BYTES_MAX + 1), value(1)).check();
        assert_eq!(
            long_key,
            Err(InvalidInput::KeyTooLong {
                length: KEY_BYTES_MAX + 1
            })
        );
        let long_value = Write::Append {
            key: key(1),
            value: value(VALUE_BYTES_MAX + 1),
        };
        let refused = long_value.check().expect_err("too long");
        assert!(refused.to_string().contains("1048576"), "{refused}");
        assert_eq!(
            Write::Delete { key: key(0) }.check(),
            Err(InvalidInput::EmptyKey)
        );
    }
}
