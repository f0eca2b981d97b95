//! custodia-server: placeholder while the crate is written.
