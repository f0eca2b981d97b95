//! custodia-store: placeholder while the crate is written.
