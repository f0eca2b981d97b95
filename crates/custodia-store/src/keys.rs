//! The key layout: which bytes name which record. This is a persisted format; a change to a
//! key's layout takes a new tag byte, never a reinterpretation of an old one.
//!
//! Notation: `‖` is concatenation; `lp(x)` is the length of `x` as a u32, big-endian, then the
//! bytes of `x`; ids are their 16 raw bytes (`SubjectId::to_bytes`, `EventId::to_bytes`, so
//! UUID v7 event ids sort by time); hashes are their 32 raw bytes.
//!
//! | tag    | key                                                                    | value                  |
//! |--------|------------------------------------------------------------------------|------------------------|
//! | `b'S'` | `'S' ‖ lp(tenant) ‖ subject(16)`                                       | subject record         |
//! | `b'L'` | `'L' ‖ lp(tenant) ‖ kind(1) ‖ keyed_hash(32)`                          | look-up value          |
//! | `b'B'` | `'B' ‖ lp(tenant) ‖ lp(field) ‖ lp(bucket) ‖ subject(16)`              | blind-index value      |
//! | `b'E'` | `'E' ‖ lp(tenant) ‖ subject(16) ‖ event(16)`                           | event record           |
//! | `b'M'` | `'M' ‖ lp(tenant) ‖ merged_subject(16)`                                | merge record           |
//! | `b'C'` | `'C' ‖ lp(tenant) ‖ pseudonym(16) ‖ lp(purpose)`                       | consent state          |
//! | `b'H'` | `'H' ‖ lp(tenant) ‖ pseudonym(16) ‖ seq(u64 BE)`                       | `01` (history index)   |
//! | `b'F'` | `'F' ‖ lp(tenant) ‖ pseudonym(16)`                                    | subject flags          |
//! | `b'X'` | `'X' ‖ lp(tenant) ‖ keyed_hash(32)`                                    | suppression entry      |
//! | `b'A'` | `'A' ‖ lp(tenant) ‖ pseudonym(16) ‖ event(16)`                       | analytics fact (old, repacked on open) |
//! | `b'N'` | `'N' ‖ lp(tenant) ‖ pseudonym(16) ‖ chunk(16)`                       | packed analytics facts |
//! | `b'Q'` | `'Q' ‖ lp(tenant) ‖ seq(u64 BE) ‖ subject(16)`                       | `01` (search queue)    |
//! | `b'P'` | `'P' ‖ lp(tenant) ‖ pseudonym(16)`                                    | subject(16)            |
//! | `b'U'` | `'U' ‖ lp(tenant) ‖ pseudonym(16)`                                    | `01` (search purge due)|
//! | `b'R'` | `'R' ‖ lp(tenant) ‖ request_id(16)`                                   | DSR record (engine's)  |
//! | `b'I'` | `'I' ‖ lp(tenant) ‖ keyed_hash(32)`                                    | idempotency entry      |
//! | `b'J'` | `'J' ‖ lp(tenant) ‖ seen_at(u64 BE µs) ‖ keyed_hash(32)`               | `01` (expiry index)    |
//! | `b'K'` | `'K' ‖ lp(api_key_id)`                                                 | API key record         |
//! | `b'G'` | `'G' ‖ lp(name)`                                                       | the caller's own bytes |
//!
//! The value encodings are documented in `records.rs`. Look-up kinds are `1` = `user_id`,
//! `2` = `anonymous_id`.
//!
//! Why the tenant is length-prefixed: with a bare tenant, every key of tenant `"ab"` would also
//! start with the prefix of tenant `"a"`, and a prefix scan for `"a"` would leak `"ab"`'s
//! entries. With `lp(tenant)` the prefix of one tenant is never a prefix of another's. The same
//! holds for the blind-index field and bucket. The fixed-size ids after the variable parts keep
//! the entries of one prefix (the subjects of a tenant, the events of a subject, the subjects of
//! a bucket) contiguous and sorted by id.
//!
//! Consent state and the consent-history index are views of the tenant's consent ledger, keyed by
//! the subject's pseudonym (the only subject id the ledger carries); both can be rebuilt from it.
//!
//! Subject flags (restriction, objection, legal hold, erased-with-hold) are a view of the
//! ledger as well, keyed by pseudonym. Suppression entries hold the keyed look-up hash of a
//! `userId` whose owner asked, with an erasure, never to be stored again.
//!
//! API keys and metadata are global: an API key names its tenant inside its record, and it is
//! looked up before the tenant is known.

use custodia_core::{ApiKeyId, EventId, Pseudonym, PurposeId, SubjectId, TenantId};

use crate::codec::{Reader, Writer};
use crate::{LookupKind, StoreError};

/// The tag bytes that open every key: the first byte decides the record kind.
pub(crate) mod tag {
    /// Subject records.
    pub(crate) const SUBJECT: u8 = b'S';
    /// Exact look-ups of external ids by keyed hash.
    pub(crate) const LOOKUP: u8 = b'L';
    /// Blind-index bucket memberships.
    pub(crate) const BLIND: u8 = b'B';
    /// Events.
    pub(crate) const EVENT: u8 = b'E';
    /// Merge records.
    pub(crate) const MERGE: u8 = b'M';
    /// Current consent state per subject and purpose (a view of the ledger).
    pub(crate) const CONSENT: u8 = b'C';
    /// Ledger sequence numbers per subject (a view of the ledger).
    pub(crate) const HISTORY: u8 = b'H';
    /// Restriction / objection / legal-hold flags per subject (a view of the ledger).
    pub(crate) const FLAGS: u8 = b'F';
    /// Suppressed external ids (keyed hashes).
    pub(crate) const SUPPRESSION: u8 = b'X';
    /// The pseudonymized analytics projection.
    pub(crate) const FACT: u8 = b'A';
    /// The analytics projection, packed: chunks of one subject's facts.
    pub(crate) const FACT_CHUNK: u8 = b'N';
    /// Subjects whose search document must be rebuilt, in write order.
    pub(crate) const SEARCH_QUEUE: u8 = b'Q';
    /// Pseudonym → subject, so search hits (which carry pseudonyms only) resolve.
    pub(crate) const PSEUDONYM: u8 = b'P';
    /// Erased pseudonyms whose search-index segments still wait to be compacted.
    pub(crate) const SEARCH_PURGE: u8 = b'U';
    /// Data-subject requests.
    pub(crate) const DSR: u8 = b'R';
    /// Message ids and idempotency keys already applied (keyed hashes), with the original answer.
    pub(crate) const IDEMPOTENCY: u8 = b'I';
    /// The same entries in the order they were first seen, so expired ones are found by a scan.
    pub(crate) const IDEMPOTENCY_TIME: u8 = b'J';
    /// API keys.
    pub(crate) const API_KEY: u8 = b'K';
    /// Global metadata.
    pub(crate) const META: u8 = b'G';
}

/// `tag ‖ lp(tenant)`, the start of every tenant-scoped key.
fn tenant_scoped(tag: u8, tenant: &TenantId, extra_capacity: usize) -> Writer {
    let tenant = tenant.as_str().as_bytes();
    let mut writer = Writer::with_capacity(1 + 4 + tenant.len() + extra_capacity);
    writer.u8(tag).lp(tenant, "tenant id");
    writer
}

/// `'S' ‖ lp(tenant)`: all subjects of a tenant.
pub(crate) fn subject_prefix(tenant: &TenantId) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::SUBJECT, tenant, 0).finish()
}

/// `'S' ‖ lp(tenant) ‖ subject(16)`.
pub(crate) fn subject_key(tenant: &TenantId, id: SubjectId) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::SUBJECT, tenant, 16)
        .raw(&id.to_bytes())
        .finish()
}

/// `'L' ‖ lp(tenant) ‖ kind(1) ‖ keyed_hash(32)`.
pub(crate) fn lookup_key(
    tenant: &TenantId,
    kind: LookupKind,
    hash: &[u8; 32],
) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::LOOKUP, tenant, 33)
        .u8(kind.to_byte())
        .raw(hash)
        .finish()
}

/// `'B' ‖ lp(tenant) ‖ lp(field) ‖ lp(bucket)`: all subjects in one bucket.
pub(crate) fn blind_bucket_prefix(
    tenant: &TenantId,
    field: &str,
    bucket: &[u8],
) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::BLIND, tenant, 8 + field.len() + bucket.len() + 16)
        .lp(field.as_bytes(), "blind-index field name")
        .lp(bucket, "blind-index bucket")
        .finish()
}

/// `'B' ‖ lp(tenant) ‖ lp(field) ‖ lp(bucket) ‖ subject(16)`.
pub(crate) fn blind_key(
    tenant: &TenantId,
    field: &str,
    bucket: &[u8],
    subject: SubjectId,
) -> Result<Vec<u8>, StoreError> {
    let mut key = blind_bucket_prefix(tenant, field, bucket)?;
    key.extend_from_slice(&subject.to_bytes());
    Ok(key)
}

/// `'E' ‖ lp(tenant) ‖ subject(16)`: all events of a subject.
pub(crate) fn event_prefix(tenant: &TenantId, subject: SubjectId) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::EVENT, tenant, 32)
        .raw(&subject.to_bytes())
        .finish()
}

/// `'E' ‖ lp(tenant) ‖ subject(16) ‖ event(16)`.
pub(crate) fn event_key(
    tenant: &TenantId,
    subject: SubjectId,
    event: EventId,
) -> Result<Vec<u8>, StoreError> {
    let mut key = event_prefix(tenant, subject)?;
    key.extend_from_slice(&event.to_bytes());
    Ok(key)
}

/// `'F' ‖ lp(tenant) ‖ pseudonym(16)`.
pub(crate) fn flags_key(tenant: &TenantId, subject: &Pseudonym) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::FLAGS, tenant, 16)
        .raw(&subject.0)
        .finish()
}

/// `'R' ‖ lp(tenant)`: a tenant's data-subject requests.
pub(crate) fn dsr_prefix(tenant: &TenantId) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::DSR, tenant, 0).finish()
}

/// `'R' ‖ lp(tenant) ‖ request_id(16)`.
pub(crate) fn dsr_key(tenant: &TenantId, id: &[u8; 16]) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::DSR, tenant, 16).raw(id).finish()
}

/// `'Q' ‖ lp(tenant)`: a tenant's search queue.
pub(crate) fn queue_prefix(tenant: &TenantId) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::SEARCH_QUEUE, tenant, 0).finish()
}

/// `'Q' ‖ lp(tenant) ‖ seq(u64 BE) ‖ subject(16)`.
pub(crate) fn queue_key(
    tenant: &TenantId,
    seq: u64,
    subject: SubjectId,
) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::SEARCH_QUEUE, tenant, 24)
        .u64(seq)
        .raw(&subject.to_bytes())
        .finish()
}

/// `'P' ‖ lp(tenant) ‖ pseudonym(16)`.
pub(crate) fn pseudonym_key(
    tenant: &TenantId,
    pseudonym: &Pseudonym,
) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::PSEUDONYM, tenant, 16)
        .raw(&pseudonym.0)
        .finish()
}

/// `'U' ‖ lp(tenant)`: a tenant's pending search purges.
pub(crate) fn search_purge_prefix(tenant: &TenantId) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::SEARCH_PURGE, tenant, 0).finish()
}

/// `'U' ‖ lp(tenant) ‖ pseudonym(16)`.
pub(crate) fn search_purge_key(
    tenant: &TenantId,
    pseudonym: &Pseudonym,
) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::SEARCH_PURGE, tenant, 16)
        .raw(&pseudonym.0)
        .finish()
}

/// `'A'`: every fact of the first, unpacked projection (one record per fact), of every tenant.
/// Only read to repack it ([`crate::Store::repack_facts`]).
pub(crate) const OLD_FACT_PREFIX: &[u8] = &[tag::FACT];

/// The tag of packed fact chunks, for repacking old keys in place.
pub(crate) const FACT_CHUNK_TAG: u8 = tag::FACT_CHUNK;

/// `'N' ‖ lp(tenant)`: the whole analytics projection of a tenant.
pub(crate) fn fact_chunk_prefix(tenant: &TenantId) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::FACT_CHUNK, tenant, 0).finish()
}

/// `'N' ‖ lp(tenant) ‖ pseudonym(16)`: one subject's fact chunks.
pub(crate) fn subject_fact_chunk_prefix(
    tenant: &TenantId,
    subject: &Pseudonym,
) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::FACT_CHUNK, tenant, 32)
        .raw(&subject.0)
        .finish()
}

/// `'X' ‖ lp(tenant)`: every suppression entry of a tenant.
pub(crate) fn suppression_prefix(tenant: &TenantId) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::SUPPRESSION, tenant, 0).finish()
}

/// `'X' ‖ lp(tenant) ‖ keyed_hash(32)`.
pub(crate) fn suppression_key(tenant: &TenantId, hash: &[u8; 32]) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::SUPPRESSION, tenant, 32)
        .raw(hash)
        .finish()
}

/// `'I' ‖ lp(tenant) ‖ keyed_hash(32)`.
pub(crate) fn idempotency_key(tenant: &TenantId, hash: &[u8; 32]) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::IDEMPOTENCY, tenant, 32)
        .raw(hash)
        .finish()
}

/// `'J' ‖ lp(tenant)`: a tenant's idempotency entries by the time they were first seen.
pub(crate) fn idempotency_time_prefix(tenant: &TenantId) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::IDEMPOTENCY_TIME, tenant, 0).finish()
}

/// `'J' ‖ lp(tenant) ‖ seen_at(u64 BE µs) ‖ keyed_hash(32)`. Times before 1970 sort as 0.
pub(crate) fn idempotency_time_key(
    tenant: &TenantId,
    seen_at: custodia_core::Timestamp,
    hash: &[u8; 32],
) -> Result<Vec<u8>, StoreError> {
    let micros = u64::try_from(seen_at.unix_micros()).unwrap_or(0);
    tenant_scoped(tag::IDEMPOTENCY_TIME, tenant, 40)
        .raw(&micros.to_be_bytes())
        .raw(hash)
        .finish()
}

/// `'M' ‖ lp(tenant)`: all merge records of a tenant.
pub(crate) fn merge_prefix(tenant: &TenantId) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::MERGE, tenant, 0).finish()
}

/// `'M' ‖ lp(tenant) ‖ merged_subject(16)`.
pub(crate) fn merge_key(tenant: &TenantId, merged: SubjectId) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::MERGE, tenant, 16)
        .raw(&merged.to_bytes())
        .finish()
}

/// `'C' ‖ lp(tenant) ‖ pseudonym(16)`: the consent state of one subject for every purpose.
pub(crate) fn consent_prefix(
    tenant: &TenantId,
    subject: &Pseudonym,
) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::CONSENT, tenant, 16)
        .raw(&subject.0)
        .finish()
}

/// `'C' ‖ lp(tenant) ‖ pseudonym(16) ‖ lp(purpose)`.
pub(crate) fn consent_key(
    tenant: &TenantId,
    subject: &Pseudonym,
    purpose: &PurposeId,
) -> Result<Vec<u8>, StoreError> {
    let purpose = purpose.as_str().as_bytes();
    tenant_scoped(tag::CONSENT, tenant, 16 + 4 + purpose.len())
        .raw(&subject.0)
        .lp(purpose, "purpose id")
        .finish()
}

/// Reads the purpose back out of a consent key found under `consent_prefix` (`prefix_len` long).
pub(crate) fn parse_consent_key(key: &[u8], prefix_len: usize) -> Result<PurposeId, StoreError> {
    let rest = key.get(prefix_len..).ok_or(StoreError::Corrupt {
        what: "consent key",
    })?;
    let mut reader = Reader::new(rest, "consent key");
    let purpose = reader.lp_str()?.parse().map_err(|_| reader.corrupt())?;
    reader.finish()?;
    Ok(purpose)
}

/// `'H' ‖ lp(tenant) ‖ pseudonym(16)`: the ledger entries of one subject.
pub(crate) fn history_prefix(
    tenant: &TenantId,
    subject: &Pseudonym,
) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::HISTORY, tenant, 24)
        .raw(&subject.0)
        .finish()
}

/// `'H' ‖ lp(tenant) ‖ pseudonym(16) ‖ seq(u64 BE)`: big-endian, so entries sort by sequence.
pub(crate) fn history_key(
    tenant: &TenantId,
    subject: &Pseudonym,
    seq: u64,
) -> Result<Vec<u8>, StoreError> {
    tenant_scoped(tag::HISTORY, tenant, 24)
        .raw(&subject.0)
        .u64(seq)
        .finish()
}

/// Reads the sequence number back out of a history key found under `history_prefix`.
pub(crate) fn parse_history_key(key: &[u8], prefix_len: usize) -> Result<u64, StoreError> {
    match key.get(prefix_len..).map(<[u8; 8]>::try_from) {
        Some(Ok(seq)) => Ok(u64::from_be_bytes(seq)),
        _ => Err(StoreError::Corrupt {
            what: "consent history key",
        }),
    }
}

/// `'K'`: all API keys.
pub(crate) const API_KEY_PREFIX: &[u8] = &[tag::API_KEY];

/// `'K' ‖ lp(api_key_id)`.
pub(crate) fn api_key_key(id: &ApiKeyId) -> Result<Vec<u8>, StoreError> {
    let id = id.as_str().as_bytes();
    Writer::with_capacity(5 + id.len())
        .u8(tag::API_KEY)
        .lp(id, "api key id")
        .finish()
}

/// Reads the id back out of an API key's key.
pub(crate) fn parse_api_key_key(key: &[u8]) -> Result<ApiKeyId, StoreError> {
    let mut reader = Reader::new(key, "api key key");
    if reader.u8()? != tag::API_KEY {
        return Err(reader.corrupt());
    }
    let id = reader.lp_str()?.parse().map_err(|_| reader.corrupt())?;
    reader.finish()?;
    Ok(id)
}

/// `'G' ‖ lp(name)`.
pub(crate) fn meta_key(name: &str) -> Result<Vec<u8>, StoreError> {
    Writer::with_capacity(5 + name.len())
        .u8(tag::META)
        .lp(name.as_bytes(), "metadata name")
        .finish()
}

/// The 16-byte id that ends `key`, checking that `key` is exactly `prefix_len` + 16 bytes long
/// (the caller found it by a scan of that prefix, so the prefix itself matches).
pub(crate) fn trailing_id(
    key: &[u8],
    prefix_len: usize,
    what: &'static str,
) -> Result<[u8; 16], StoreError> {
    match key.get(prefix_len..).map(<[u8; 16]>::try_from) {
        Some(Ok(id)) => Ok(id),
        _ => Err(StoreError::Corrupt { what }),
    }
}
