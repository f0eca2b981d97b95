//! custodia-search: full-text search over customer profiles without plaintext on disk.
//!
//! Architecture invariant: this is the only crate that names tantivy, and no personal-data word
//! reaches the index in plaintext. A word enters the index only as the keyed hash
//! `hex(search_token(F, t))` of its normalized token `t` in text field `F` (see
//! [`TenantVault::search_token`](custodia_vault::TenantVault::search_token)), and for type-ahead
//! each prefix `p` of `t` (up to [`normalize::MAX_PREFIX_CHARS`] characters) as
//! `hex(search_token("F/prefix", p))` in a separate index field, so that prefix hits score below
//! whole words. A document stores only the subject's pseudonym; facets that are not personal
//! data (segment, tier, journey stage, country, granted consents) are indexed in plain text for
//! exact filtering. A query is normalized by the same [`normalize::tokens`] and hashed with the
//! same key, so matching and BM25 ranking work on hashes alone.
//!
//! # What the index files reveal
//!
//! Someone holding the index files, but not the tenant's key, learns:
//!
//! - **Token equality and frequency per field.** The hash is deterministic, so documents that
//!   share a token in a field share a term: the files show which subjects share a (hidden)
//!   surname or city and how common each one is. Frequency analysis against a public name
//!   distribution can guess the most common ones (the most frequent name term is likely the
//!   most frequent surname of the region).
//! - **Prefix equality.** Prefix terms show which tokens share their first 1, 2, … characters,
//!   and so hint at token lengths and at how tokens cluster alphabetically.
//! - **Document lengths.** BM25 keeps each document's number of word terms and of prefix terms
//!   (coarsely quantized), which tracks how much text a profile has.
//! - **Facet values**, which are plain by design, and the pseudonyms, which are what the ledger
//!   and analytics carry anyway.
//!
//! It does not learn any word without the key: a hash cannot be inverted or brute-forced
//! offline, because it is an HMAC under the tenant's search key. Words of different fields give
//! unrelated terms, since the field name is part of the hashed input, and so do words of
//! different tenants. docs/security.md is where this leakage is stated for operators.
//!
//! # Why the search key is not the blind-index key
//!
//! The vault derives the search key as its own HKDF sub-key. Both hashes take
//! `lp(tenant) ‖ lp(field) ‖ lp(value)`; under one key, the search term of a value would be its
//! blind index followed by 112 more bits. Anyone with both the store and the index files could
//! then join them, and the long term would single out the value within a blind-index bucket,
//! undoing the truncation that gives blind indexes their ambiguity. Separate keys make the two
//! unlinkable, and let each be rotated or re-sized without touching the other.
//!
//! # Erasure
//!
//! Deleting a document only marks it deleted; its terms stay in its segment until a merge.
//! [`SearchIndex::purge`] therefore deletes, commits, merges every segment that held the
//! subject (including replaced versions of its document) and deletes the files no longer in
//! use, so that afterwards no index file contains a term only that subject had. Deleted files
//! may still linger in free blocks of the file system, as with any store.

mod doc;
mod error;
pub mod generate;
mod index;
pub mod normalize;

pub use doc::{Facet, SearchDoc, SearchHit, SearchQuery, SearchResults, TextField};
pub use error::SearchError;
pub use index::{MAX_LIMIT, SearchIndex};

#[cfg(test)]
mod tests;
