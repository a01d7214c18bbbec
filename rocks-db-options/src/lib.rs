//! Changes RocksDB's database-wide options on an open database.
//!
//! The `rocksdb` crate (0.25) wraps RocksDB's `SetOptions`, which changes
//! the options of a column family, but not `SetDBOptions`, which changes
//! those of the whole database (`max_total_wal_size`, for one): RocksDB
//! refuses such a name through `SetOptions` ("Extra option not
//! recognized"). [`set_db_options`] makes that one call through RocksDB's
//! C API. It is the project's only unsafe code, kept in this crate so the
//! rest of the workspace can forbid unsafe code outright.
//!
//! Invariant: an option change either applies whole or is refused with
//! RocksDB's reason; either way the database stays open and what it
//! stores is untouched (these options change when RocksDB flushes, not
//! what it holds).

use std::ffi::{CStr, CString, c_char, c_int};

use librocksdb_sys as ffi;
use rocksdb::{AsRawPtr, DB};

/// Why an option change did not apply.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SetOptionsError {
    /// A name or value holds a NUL byte, which the C API cannot carry.
    #[error("option text {0:?} holds a NUL byte")]
    Nul(String),
    /// More options than the C API's count can hold.
    #[error("{0} options in one change; at most {max} fit", max = c_int::MAX)]
    TooMany(usize),
    /// RocksDB refused the change (an unknown name, a value out of range,
    /// an option that cannot change while the database is open).
    #[error("RocksDB refused the option change: {0}")]
    Refused(String),
}

/// Sets each `(name, value)` of `options`, RocksDB's database-wide option
/// names and values as its OPTIONS file spells them (for example
/// `("max_total_wal_size", "67108864")`), on the open database `db`. RocksDB
/// records the change in a new OPTIONS file.
///
/// # Errors
/// [`SetOptionsError`]: a name or value RocksDB's C API cannot carry, or
/// RocksDB's refusal; nothing changed then.
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let db = rocksdb::DB::open_default(dir.path()).unwrap();
/// rocks_db_options::set_db_options(&db, &[("max_total_wal_size", "67108864")]).unwrap();
/// assert!(rocks_db_options::set_db_options(&db, &[("no_such_option", "1")]).is_err());
/// ```
pub fn set_db_options(db: &DB, options: &[(&str, &str)]) -> Result<(), SetOptionsError> {
    let count =
        c_int::try_from(options.len()).map_err(|_| SetOptionsError::TooMany(options.len()))?;
    let text = |text: &str| CString::new(text).map_err(|_| SetOptionsError::Nul(text.to_string()));
    let names = options
        .iter()
        .map(|(name, _)| text(name))
        .collect::<Result<Vec<_>, _>>()?;
    let values = options
        .iter()
        .map(|(_, value)| text(value))
        .collect::<Result<Vec<_>, _>>()?;
    let name_pointers: Vec<*const c_char> = names.iter().map(|name| name.as_ptr()).collect();
    let value_pointers: Vec<*const c_char> = values.iter().map(|value| value.as_ptr()).collect();
    let error = call_set_db_options(db, count, &name_pointers, &value_pointers);
    match error {
        None => Ok(()),
        Some(reason) => Err(SetOptionsError::Refused(reason)),
    }
}

/// Calls `rocksdb_set_db_options` with `count` names and values; returns
/// RocksDB's error message, if any.
#[allow(unsafe_code)]
fn call_set_db_options(
    db: &DB,
    count: c_int,
    names: &[*const c_char],
    values: &[*const c_char],
) -> Option<String> {
    debug_assert!(names.len() == values.len() && names.len() == count as usize);
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: `db` is borrowed for the whole call, so its handle stays
    // valid; `names` and `values` each hold `count` pointers to
    // NUL-terminated strings owned by the caller, alive past the call;
    // RocksDB copies what it keeps. `error` is left null or set to a
    // message RocksDB allocated, which is read and freed below only then.
    unsafe {
        ffi::rocksdb_set_db_options(
            db.as_raw_ptr(),
            count,
            names.as_ptr(),
            values.as_ptr(),
            &mut error,
        );
        if error.is_null() {
            return None;
        }
        let message = CStr::from_ptr(error).to_string_lossy().into_owned();
        ffi::rocksdb_free(error.cast());
        Some(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options_file_text(dir: &std::path::Path) -> String {
        let newest = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with("OPTIONS-"))
            })
            .max_by_key(|path| {
                let name = path.file_name().unwrap().to_str().unwrap();
                name["OPTIONS-".len()..].parse::<u64>().unwrap()
            })
            .expect("an OPTIONS file");
        std::fs::read_to_string(newest).unwrap()
    }

    // Goal: a database-wide option (one `SetOptions` refuses) changes on the
    // open database, as RocksDB's own OPTIONS file records.
    #[test]
    fn a_database_option_changes_on_the_open_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = DB::open_default(dir.path()).unwrap();
        assert!(
            db.set_options(&[("max_total_wal_size", "67108864")])
                .is_err()
        );
        set_db_options(&db, &[("max_total_wal_size", "67108864")]).unwrap();
        assert!(options_file_text(dir.path()).contains("max_total_wal_size=67108864"));
        set_db_options(&db, &[("max_total_wal_size", "16777216")]).unwrap();
        assert!(options_file_text(dir.path()).contains("max_total_wal_size=16777216"));
    }

    // Goal: a change RocksDB refuses, or cannot be carried, says why and
    // changes nothing.
    #[test]
    fn a_refused_change_says_why_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = DB::open_default(dir.path()).unwrap();
        set_db_options(&db, &[("max_total_wal_size", "33554432")]).unwrap();
        let refused = set_db_options(&db, &[("no_such_option", "1")]).unwrap_err();
        assert!(
            matches!(&refused, SetOptionsError::Refused(reason) if reason.contains("no_such_option")),
            "{refused}"
        );
        assert_eq!(
            set_db_options(&db, &[("max_total_wal_size", "16\0MiB")]),
            Err(SetOptionsError::Nul("16\0MiB".to_string()))
        );
        assert!(options_file_text(dir.path()).contains("max_total_wal_size=33554432"));
    }
}
