//! The end-to-end test crate. The tests live in `e2e/` (one test binary with modules); this
//! library is empty.
