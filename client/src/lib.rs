//! Client library and kvctl (later issue).
