//! End-to-end tests live in `tests/e2e.rs`; this library holds nothing.
