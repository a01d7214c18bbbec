//! Cross-crate integration test harness (later issues).
