//! custodia-policy: placeholder while the crate is written.
