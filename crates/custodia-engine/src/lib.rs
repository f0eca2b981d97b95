//! custodia-engine: placeholder while the crate is written.
