//! custodia-vault: placeholder while the crate is written.
