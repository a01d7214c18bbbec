//! Enforces that the core stays pure: no module under `src/core/` may use
//! I/O, threads, wall-clock time or unseeded randomness, nor reach into the
//! storage implementations (it reads through `core::storage::Storage`).

use std::fs;
use std::path::Path;

/// Words whose presence in a core source file breaks determinism.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "tonic",
    "rocksdb",
    "std::time",
    "std::thread",
    "thread_rng",
    "std::fs",
    "std::net",
    "crate::storage",
];

#[test]
fn core_uses_no_io_time_or_threads() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut violations = Vec::new();
    for entry in fs::read_dir(&directory).expect("src/core is readable") {
        let path = entry.expect("directory entry").path();
        if path
            .file_name()
            .is_some_and(|name| name == "purity_test.rs")
        {
            continue;
        }
        let source = fs::read_to_string(&path).expect("source is readable");
        for word in FORBIDDEN {
            if source.contains(word) {
                violations.push(format!("{} uses {word}", path.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "the raft core must stay pure: {violations:?}"
    );
}
