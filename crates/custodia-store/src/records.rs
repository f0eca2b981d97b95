//! The stored records and their versioned value encodings. These are persisted formats: an old
//! version must stay readable, so a change adds a new version byte and a new decoder branch.
//!
//! The key of each record (see `keys.rs`) holds its tenant and ids; the value does not repeat
//! them, and decoding takes them from the key. Notation: `‖` is concatenation, integers are
//! big-endian, `lp(x)` is the length of `x` as a u32 then the bytes of `x`, times are `i64`
//! microseconds since the Unix epoch, ids are their 16 raw bytes. Every value opens with its
//! format-version byte; a decoder refuses unknown versions, truncation and trailing bytes.
//!
//! - Subject record, version 1:
//!   `0x01 ‖ created_at(i64) ‖ updated_at(i64) ‖ lp(sealed_profile)
//!   ‖ n_lookups(u32) ‖ n_lookups × (kind(1) ‖ keyed_hash(32))
//!   ‖ n_blind(u32) ‖ n_blind × (lp(field, UTF-8) ‖ lp(bucket))`
//! - Event record, version 1: `0x01 ‖ received_at(i64) ‖ lp(sealed)`
//! - Merge record, version 1: `0x01 ‖ into_subject(16) ‖ at(i64) ‖ n_events_moved(u64)`
//! - API key record, version 1:
//!   `0x01 ‖ lp(tenant) ‖ lp(role) ‖ secret_hash(32) ‖ created_at(i64) ‖ revoked(1: 0 or 1)`
//! - Subject flags, version 1: `0x01 ‖ bits(1) ‖ since(i64) ‖ seq(u64)`; bit 0 restricted, bit 1
//!   objected, bit 2 legal hold, bit 3 erased with data kept under a legal obligation
//! - Suppression entry, version 1: `0x01 ‖ since(i64)`
//! - Look-up value, version 1: `0x01 ‖ subject(16)`
//! - Blind-index value, version 1: `0x01` (the key says everything; the byte leaves room for
//!   a later version to add data)
//!
//! Look-up kinds are encoded as `1` = `user_id`, `2` = `anonymous_id`.

use std::fmt;

use custodia_core::{
    ApiKeyId, EventId, Pseudonym, PurposeId, RoleName, SubjectId, TenantId, Timestamp,
};

use crate::StoreError;
use crate::codec::{Reader, Writer};

/// The format version that this build writes for every record kind.
const VERSION_1: u8 = 1;

/// Which external id a look-up hash stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LookupKind {
    /// The app's own id for a known customer (Segment's `userId`).
    UserId,
    /// The app's id for a visitor before sign-in (Segment's `anonymousId`).
    AnonymousId,
}

impl LookupKind {
    /// The snake_case name: `"user_id"` or `"anonymous_id"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LookupKind::UserId => "user_id",
            LookupKind::AnonymousId => "anonymous_id",
        }
    }

    /// The persisted byte (in keys and in subject records).
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            LookupKind::UserId => 1,
            LookupKind::AnonymousId => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<LookupKind> {
        match byte {
            1 => Some(LookupKind::UserId),
            2 => Some(LookupKind::AnonymousId),
            _ => None,
        }
    }
}

impl fmt::Display for LookupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A data subject as stored: ids, times, the sealed profile and the index entries that point at
/// the subject. The store never sees the profile in the clear.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectRecord {
    /// The subject's tenant.
    pub tenant: TenantId,
    /// The subject's random id.
    pub id: SubjectId,
    /// When the subject was first stored.
    pub created_at: Timestamp,
    /// When the subject was last changed.
    pub updated_at: Timestamp,
    /// The profile (traits and external ids), sealed by the vault under the subject's data key.
    pub sealed_profile: Vec<u8>,
    /// The keyed look-up hashes that point at this subject, so an update or erasure can remove them.
    pub lookups: Vec<(LookupKind, [u8; 32])>,
    /// The blind-index buckets that hold this subject: (field, bucket bytes).
    pub blind: Vec<(String, Vec<u8>)>,
}

impl SubjectRecord {
    /// The version-1 value (layout in the module documentation).
    pub(crate) fn encode_value(&self) -> Result<Vec<u8>, StoreError> {
        let mut writer = Writer::with_capacity(
            1 + 8 + 8 + 4 + self.sealed_profile.len() + 4 + 33 * self.lookups.len() + 4,
        );
        writer
            .u8(VERSION_1)
            .i64(self.created_at.unix_micros())
            .i64(self.updated_at.unix_micros())
            .lp(&self.sealed_profile, "sealed profile")
            .count(self.lookups.len(), "look-up list");
        for (kind, hash) in &self.lookups {
            writer.u8(kind.to_byte()).raw(hash);
        }
        writer.count(self.blind.len(), "blind-index list");
        for (field, bucket) in &self.blind {
            writer
                .lp(field.as_bytes(), "blind-index field name")
                .lp(bucket, "blind-index bucket");
        }
        writer.finish()
    }

    /// Decodes a value stored under the key of `tenant` and `id`.
    pub(crate) fn decode_value(
        tenant: TenantId,
        id: SubjectId,
        value: &[u8],
    ) -> Result<SubjectRecord, StoreError> {
        let mut reader = Reader::new(value, "subject record");
        reader.version(VERSION_1)?;
        let created_at = Timestamp::from_unix_micros(reader.i64()?);
        let updated_at = Timestamp::from_unix_micros(reader.i64()?);
        let sealed_profile = reader.lp()?.to_vec();
        let n_lookups = reader.count(33)?;
        let mut lookups = Vec::with_capacity(n_lookups);
        for _ in 0..n_lookups {
            let kind = LookupKind::from_byte(reader.u8()?).ok_or_else(|| reader.corrupt())?;
            lookups.push((kind, reader.array::<32>()?));
        }
        let n_blind = reader.count(8)?;
        let mut blind = Vec::with_capacity(n_blind);
        for _ in 0..n_blind {
            let field = reader.lp_str()?.to_owned();
            blind.push((field, reader.lp()?.to_vec()));
        }
        reader.finish()?;
        Ok(SubjectRecord {
            tenant,
            id,
            created_at,
            updated_at,
            sealed_profile,
            lookups,
            blind,
        })
    }
}

impl fmt::Debug for SubjectRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Lengths and kinds only: the profile is ciphertext and the hashes and buckets are keyed
        // hashes of personal data, none of which belongs in a log.
        let lookup_kinds: Vec<LookupKind> = self.lookups.iter().map(|(kind, _)| *kind).collect();
        let blind_fields: Vec<&str> = self.blind.iter().map(|(field, _)| field.as_str()).collect();
        f.debug_struct("SubjectRecord")
            .field("tenant", &self.tenant)
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("sealed_profile_len", &self.sealed_profile.len())
            .field("lookup_kinds", &lookup_kinds)
            .field("blind_fields", &blind_fields)
            .finish()
    }
}

/// An event as stored: ids, the time it was received and its sealed payload.
#[derive(Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The tenant of the event's subject.
    pub tenant: TenantId,
    /// The subject the event belongs to.
    pub subject: SubjectId,
    /// The event's UUID v7 id, which orders a subject's events by time.
    pub id: EventId,
    /// When the event was received.
    pub received_at: Timestamp,
    /// The event (name, properties, context), sealed by the vault under the subject's data key.
    pub sealed: Vec<u8>,
}

impl EventRecord {
    /// The version-1 value (layout in the module documentation).
    pub(crate) fn encode_value(&self) -> Result<Vec<u8>, StoreError> {
        Writer::with_capacity(1 + 8 + 4 + self.sealed.len())
            .u8(VERSION_1)
            .i64(self.received_at.unix_micros())
            .lp(&self.sealed, "sealed event")
            .finish()
    }

    /// Decodes a value stored under the key of `tenant`, `subject` and `id`.
    pub(crate) fn decode_value(
        tenant: TenantId,
        subject: SubjectId,
        id: EventId,
        value: &[u8],
    ) -> Result<EventRecord, StoreError> {
        let mut reader = Reader::new(value, "event record");
        reader.version(VERSION_1)?;
        let received_at = Timestamp::from_unix_micros(reader.i64()?);
        let sealed = reader.lp()?.to_vec();
        reader.finish()?;
        Ok(EventRecord {
            tenant,
            subject,
            id,
            received_at,
            sealed,
        })
    }
}

impl fmt::Debug for EventRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventRecord")
            .field("tenant", &self.tenant)
            .field("subject", &self.subject)
            .field("id", &self.id)
            .field("received_at", &self.received_at)
            .field("sealed_len", &self.sealed.len())
            .finish()
    }
}

/// The trace of a merge: subject `merged` was folded into subject `into`, so requests for the
/// merged id can name the survivor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeRecord {
    /// The tenant of both subjects.
    pub tenant: TenantId,
    /// The subject that no longer exists on its own.
    pub merged: SubjectId,
    /// The surviving subject.
    pub into: SubjectId,
    /// When the merge happened.
    pub at: Timestamp,
    /// How many events moved from `merged` to `into`.
    pub n_events_moved: u64,
}

impl MergeRecord {
    /// The version-1 value (layout in the module documentation).
    pub(crate) fn encode_value(&self) -> Result<Vec<u8>, StoreError> {
        Writer::with_capacity(1 + 16 + 8 + 8)
            .u8(VERSION_1)
            .raw(&self.into.to_bytes())
            .i64(self.at.unix_micros())
            .u64(self.n_events_moved)
            .finish()
    }

    /// Decodes a value stored under the key of `tenant` and `merged`.
    pub(crate) fn decode_value(
        tenant: TenantId,
        merged: SubjectId,
        value: &[u8],
    ) -> Result<MergeRecord, StoreError> {
        let mut reader = Reader::new(value, "merge record");
        reader.version(VERSION_1)?;
        let into = SubjectId::from_bytes(reader.array()?);
        let at = Timestamp::from_unix_micros(reader.i64()?);
        let n_events_moved = reader.u64()?;
        reader.finish()?;
        Ok(MergeRecord {
            tenant,
            merged,
            into,
            at,
            n_events_moved,
        })
    }
}

/// An API key as stored: its public id, its tenant and role, and a hash of its secret half.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The public half of the key.
    pub id: ApiKeyId,
    /// The tenant the key acts for.
    pub tenant: TenantId,
    /// The role that decides what the key may do.
    pub role: RoleName,
    /// The hash of the secret half (the secret itself is never stored).
    pub secret_hash: [u8; 32],
    /// When the key was created.
    pub created_at: Timestamp,
    /// Whether the key was revoked; a revoked key authenticates nothing.
    pub revoked: bool,
}

impl ApiKeyRecord {
    /// The version-1 value (layout in the module documentation).
    pub(crate) fn encode_value(&self) -> Result<Vec<u8>, StoreError> {
        let tenant = self.tenant.as_str().as_bytes();
        let role = self.role.as_str().as_bytes();
        Writer::with_capacity(1 + 4 + tenant.len() + 4 + role.len() + 32 + 8 + 1)
            .u8(VERSION_1)
            .lp(tenant, "tenant id")
            .lp(role, "role name")
            .raw(&self.secret_hash)
            .i64(self.created_at.unix_micros())
            .u8(u8::from(self.revoked))
            .finish()
    }

    /// Decodes a value stored under the key of `id`.
    pub(crate) fn decode_value(id: ApiKeyId, value: &[u8]) -> Result<ApiKeyRecord, StoreError> {
        let mut reader = Reader::new(value, "api key record");
        reader.version(VERSION_1)?;
        let tenant = reader.lp_str()?.parse().map_err(|_| reader.corrupt())?;
        let role = reader.lp_str()?.parse().map_err(|_| reader.corrupt())?;
        let secret_hash = reader.array()?;
        let created_at = Timestamp::from_unix_micros(reader.i64()?);
        let revoked = match reader.u8()? {
            0 => false,
            1 => true,
            _ => return Err(reader.corrupt()),
        };
        reader.finish()?;
        Ok(ApiKeyRecord {
            id,
            tenant,
            role,
            secret_hash,
            created_at,
            revoked,
        })
    }
}

impl fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("role", &self.role)
            .field("secret_hash", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("revoked", &self.revoked)
            .finish()
    }
}

/// The version-1 look-up value: the subject the hash points at.
pub(crate) fn encode_lookup_value(subject: SubjectId) -> Vec<u8> {
    let mut value = Vec::with_capacity(17);
    value.push(VERSION_1);
    value.extend_from_slice(&subject.to_bytes());
    value
}

/// Decodes a look-up value.
pub(crate) fn decode_lookup_value(value: &[u8]) -> Result<SubjectId, StoreError> {
    let mut reader = Reader::new(value, "look-up entry");
    reader.version(VERSION_1)?;
    let subject = SubjectId::from_bytes(reader.array()?);
    reader.finish()?;
    Ok(subject)
}

/// The version-1 blind-index value: the version byte alone.
pub(crate) const BLIND_VALUE: &[u8] = &[VERSION_1];

/// Checks a blind-index value.
pub(crate) fn check_blind_value(value: &[u8]) -> Result<(), StoreError> {
    let mut reader = Reader::new(value, "blind-index entry");
    reader.version(VERSION_1)?;
    reader.finish()
}

#[cfg(test)]
mod tests;

/// Whether a subject currently agrees to a purpose, as the consent ledger last recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsentState {
    /// The latest decision granted the purpose.
    Granted,
    /// The latest decision withdrew it.
    Withdrawn,
}

impl ConsentState {
    fn to_byte(self) -> u8 {
        match self {
            ConsentState::Granted => 1,
            ConsentState::Withdrawn => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<ConsentState> {
        match byte {
            1 => Some(ConsentState::Granted),
            2 => Some(ConsentState::Withdrawn),
            _ => None,
        }
    }
}

/// The current consent of one subject (by pseudonym) for one purpose: a view of the consent
/// ledger, rebuildable from it.
///
/// Value, version 1: `01 ‖ state u8 (1 granted, 2 withdrawn) ‖ since i64 (µs) ‖ seq u64`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentRecord {
    /// The tenant.
    pub tenant: TenantId,
    /// The subject's pseudonym.
    pub subject: Pseudonym,
    /// The purpose.
    pub purpose: PurposeId,
    /// The latest decision.
    pub state: ConsentState,
    /// When it was made.
    pub since: Timestamp,
    /// Its ledger sequence number.
    pub seq: u64,
}

impl ConsentRecord {
    /// The version-1 value.
    pub(crate) fn encode_value(&self) -> Result<Vec<u8>, StoreError> {
        Writer::with_capacity(1 + 1 + 8 + 8)
            .u8(VERSION_1)
            .u8(self.state.to_byte())
            .i64(self.since.unix_micros())
            .u64(self.seq)
            .finish()
    }

    /// Decodes a value stored under the key of `tenant`, `subject` and `purpose`.
    pub(crate) fn decode_value(
        tenant: TenantId,
        subject: Pseudonym,
        purpose: PurposeId,
        value: &[u8],
    ) -> Result<ConsentRecord, StoreError> {
        let mut reader = Reader::new(value, "consent record");
        reader.version(VERSION_1)?;
        let state = ConsentState::from_byte(reader.u8()?).ok_or_else(|| reader.corrupt())?;
        let since = Timestamp::from_unix_micros(reader.i64()?);
        let seq = reader.u64()?;
        reader.finish()?;
        Ok(ConsentRecord {
            tenant,
            subject,
            purpose,
            state,
            since,
            seq,
        })
    }
}

/// What a subject asked for about processing in general, and holds placed on its data: a view of
/// the consent ledger (entries `processing.restricted`, `objection.recorded`, `legal_hold.placed`,
/// `erasure.completed`, and their reversals), rebuildable from it. Absent means all false.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectFlagsRecord {
    /// Processing restricted (GDPR Art. 18): only legal-obligation purposes may process.
    pub restricted: bool,
    /// Objected to processing on legitimate interests (Art. 21).
    pub objected: bool,
    /// A legal hold (litigation, an authority's order) keeps the subject's data from retention
    /// sweeps and erasure until it is lifted.
    pub legal_hold: bool,
    /// Erased, with data kept only for a legal obligation (Art. 17(3)(b)).
    pub erased_with_hold: bool,
    /// When the latest change was recorded.
    pub since: Timestamp,
    /// The ledger sequence number of the latest change.
    pub seq: u64,
}

impl Default for SubjectFlagsRecord {
    fn default() -> SubjectFlagsRecord {
        SubjectFlagsRecord {
            restricted: false,
            objected: false,
            legal_hold: false,
            erased_with_hold: false,
            since: Timestamp::from_unix_micros(0),
            seq: 0,
        }
    }
}

impl SubjectFlagsRecord {
    /// Whether every flag is off.
    pub fn is_clear(&self) -> bool {
        !(self.restricted || self.objected || self.legal_hold || self.erased_with_hold)
    }

    pub(crate) fn encode_value(&self) -> Result<Vec<u8>, StoreError> {
        let bits = u8::from(self.restricted)
            | (u8::from(self.objected) << 1)
            | (u8::from(self.legal_hold) << 2)
            | (u8::from(self.erased_with_hold) << 3);
        Writer::with_capacity(1 + 1 + 8 + 8)
            .u8(VERSION_1)
            .u8(bits)
            .i64(self.since.unix_micros())
            .u64(self.seq)
            .finish()
    }

    pub(crate) fn decode_value(value: &[u8]) -> Result<SubjectFlagsRecord, StoreError> {
        let mut reader = Reader::new(value, "subject flags");
        reader.version(VERSION_1)?;
        let bits = reader.u8()?;
        if bits & !0b1111 != 0 {
            return Err(reader.corrupt());
        }
        let since = Timestamp::from_unix_micros(reader.i64()?);
        let seq = reader.u64()?;
        reader.finish()?;
        Ok(SubjectFlagsRecord {
            restricted: bits & 1 != 0,
            objected: bits & 2 != 0,
            legal_hold: bits & 4 != 0,
            erased_with_hold: bits & 8 != 0,
            since,
            seq,
        })
    }
}

pub(crate) fn encode_suppression_value(since: Timestamp) -> Vec<u8> {
    let mut value = Vec::with_capacity(9);
    value.push(VERSION_1);
    value.extend_from_slice(&since.unix_micros().to_be_bytes());
    value
}

pub(crate) fn decode_suppression_value(value: &[u8]) -> Result<Timestamp, StoreError> {
    let mut reader = Reader::new(value, "suppression entry");
    reader.version(VERSION_1)?;
    let since = Timestamp::from_unix_micros(reader.i64()?);
    reader.finish()?;
    Ok(since)
}

/// An idempotency entry: `01 ‖ seen_at(i64 BE µs) ‖ the original answer's bytes`.
pub(crate) fn encode_idempotency_value(seen_at: Timestamp, answer: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(9 + answer.len());
    value.push(VERSION_1);
    value.extend_from_slice(&seen_at.unix_micros().to_be_bytes());
    value.extend_from_slice(answer);
    value
}

pub(crate) fn decode_idempotency_value(value: &[u8]) -> Result<(Timestamp, Vec<u8>), StoreError> {
    if value.len() < 9 || value[0] != VERSION_1 {
        return Err(StoreError::Corrupt {
            what: "idempotency entry",
        });
    }
    let mut micros = [0u8; 8];
    micros.copy_from_slice(&value[1..9]);
    Ok((
        Timestamp::from_unix_micros(i64::from_be_bytes(micros)),
        value[9..].to_vec(),
    ))
}
