//! Consent-ledger entries and their one canonical byte encoding.
//!
//! Leaf hashes — and so every root, proof and signed checkpoint — are computed over these bytes,
//! so the layout below is fixed. A change is a new version byte with its own decoder, never an
//! edit of version 1. All integers are big-endian; "str" fields are UTF-8.
//!
//! | # | field            | encoding                                   | rule                                               |
//! |---|------------------|--------------------------------------------|----------------------------------------------------|
//! | 1 | version          | u8 = `0x01`                                | any other value is rejected                        |
//! | 2 | time             | i64                                        | microseconds since the Unix epoch, UTC             |
//! | 3 | tenant           | u8 n ‖ n bytes                             | a valid `TenantId` (1–32 of `[a-z0-9_-]`)          |
//! | 4 | subject          | u8 tag ‖ 16 bytes if tag = 1               | tag 0 = none, 1 = pseudonym                        |
//! | 5 | kind             | u8 n ‖ n bytes                             | 1–64 of `[a-z0-9_.]`                               |
//! | 6 | purpose          | u8 tag ‖ (u8 n ‖ n bytes) if tag = 1       | a valid `PurposeId`                                |
//! | 7 | lawful basis     | u8                                         | 0 none, 1 consent, 2 contract, 3 legal obligation, 4 vital interests, 5 public task, 6 legitimate interest |
//! | 8 | policy hash      | u8 tag ‖ 32 bytes if tag = 1               |                                                    |
//! | 9 | source channel   | u8 tag ‖ (u8 n ‖ n bytes) if tag = 1       | str of 1–64 bytes, no control characters           |
//! |10 | source app       | u8 tag ‖ (u8 n ‖ n bytes) if tag = 1       | same                                               |
//! |11 | source GPC       | u8                                         | 0 none, 1 false, 2 true                            |
//! |12 | evidence         | u8 tag ‖ (u32 n ‖ n bytes) if tag = 1      | opaque ciphertext, n ≤ 65 536                      |
//! |13 | attributes       | u8 count ‖ count × (u8 kn ‖ key ‖ u16 vn ‖ value) | count ≤ 64; keys 1–64 of `[a-z0-9_]`, strictly increasing bytewise; values str of ≤ 1024 bytes, no control characters |
//!
//! Nothing may follow field 13. Every tag byte is 0 or 1. Decoding rejects anything outside these
//! rules, so `decode(bytes) == Ok(e)` implies `e.encode() == bytes`; [`LedgerEntry::validate`]
//! states the same rules for values built in code, and `decode(e.encode()) == Ok(e)` holds exactly
//! when `e.validate()` does.
//!
//! The sequence number is not in the entry: it is the leaf index, assigned by the log.

use std::collections::BTreeMap;

use custodia_core::{LawfulBasis, Pseudonym, PurposeId, TenantId, Timestamp};

use crate::{Hash, LedgerError};

/// The version byte this crate writes.
pub const ENTRY_FORMAT_VERSION: u8 = 1;

const MAX_KIND_LEN: usize = 64;
const MAX_SOURCE_LEN: usize = 64;
const MAX_EVIDENCE_LEN: usize = 65_536;
const MAX_ATTRIBUTES: usize = 64;
const MAX_ATTRIBUTE_KEY_LEN: usize = 64;
const MAX_ATTRIBUTE_VALUE_LEN: usize = 1024;

/// Where a decision came from. Short, non-personal strings only (a channel name, an app id).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Source {
    /// The channel (`"web"`, `"email"`, `"support"`, ...).
    pub channel: Option<String>,
    /// The app or form that recorded it.
    pub app: Option<String>,
    /// The Global Privacy Control signal, if the request carried one.
    pub gpc: Option<bool>,
}

/// One consent-ledger entry (design.md "Consent ledger").
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LedgerEntry {
    /// When the decision was recorded.
    pub time: Timestamp,
    /// The tenant whose ledger holds it.
    pub tenant: TenantId,
    /// The subject, by pseudonym only; `None` for entries about no subject (`policy.published`).
    pub subject: Option<Pseudonym>,
    /// What happened: `consent.granted`, `consent.withdrawn`, `consent.expired`, `dsr.received`,
    /// `dsr.completed`, `erasure.completed`, `policy.published`, `subject.merged`, ...
    pub kind: String,
    /// The purpose the decision is about.
    pub purpose: Option<PurposeId>,
    /// The lawful basis the purpose rests on.
    pub lawful_basis: Option<LawfulBasis>,
    /// The hash of the policy version in force (the one the subject was shown).
    pub policy_hash: Option<Hash>,
    /// Channel, app and GPC signal.
    pub source: Source,
    /// Evidence (IP, user agent, form wording id) sealed by the caller under the subject's data
    /// key: opaque ciphertext here, unreadable once the key is destroyed.
    pub evidence: Option<Vec<u8>>,
    /// Kind-specific, non-personal details (`request_id`, `form_id`, `merged_into`, ...).
    pub attributes: BTreeMap<String, String>,
}

fn lawful_basis_code(basis: Option<LawfulBasis>) -> u8 {
    match basis {
        None => 0,
        Some(LawfulBasis::Consent) => 1,
        Some(LawfulBasis::Contract) => 2,
        Some(LawfulBasis::LegalObligation) => 3,
        Some(LawfulBasis::VitalInterests) => 4,
        Some(LawfulBasis::PublicTask) => 5,
        Some(LawfulBasis::LegitimateInterest) => 6,
    }
}

fn lawful_basis_from_code(code: u8) -> Option<Option<LawfulBasis>> {
    Some(match code {
        0 => None,
        1 => Some(LawfulBasis::Consent),
        2 => Some(LawfulBasis::Contract),
        3 => Some(LawfulBasis::LegalObligation),
        4 => Some(LawfulBasis::VitalInterests),
        5 => Some(LawfulBasis::PublicTask),
        6 => Some(LawfulBasis::LegitimateInterest),
        _ => return None,
    })
}

fn is_valid_kind(kind: &str) -> bool {
    (1..=MAX_KIND_LEN).contains(&kind.len())
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

fn is_valid_source_text(text: &str) -> bool {
    (1..=MAX_SOURCE_LEN).contains(&text.len()) && !text.chars().any(char::is_control)
}

fn is_valid_attribute_key(key: &str) -> bool {
    (1..=MAX_ATTRIBUTE_KEY_LEN).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_valid_attribute_value(value: &str) -> bool {
    value.len() <= MAX_ATTRIBUTE_VALUE_LEN && !value.chars().any(char::is_control)
}

fn malformed(detail: &'static str) -> LedgerError {
    LedgerError::MalformedEntry { detail }
}

impl LedgerEntry {
    /// Checks the field rules of the module documentation (the ones the types do not already
    /// guarantee). Append only entries that pass: `decode` rejects the bytes of one that does not.
    pub fn validate(&self) -> Result<(), LedgerError> {
        if !is_valid_kind(&self.kind) {
            return Err(malformed("kind is not 1-64 of [a-z0-9_.]"));
        }
        for text in [&self.source.channel, &self.source.app]
            .into_iter()
            .flatten()
        {
            if !is_valid_source_text(text) {
                return Err(malformed(
                    "a source string is not 1-64 bytes without control characters",
                ));
            }
        }
        if self
            .evidence
            .as_ref()
            .is_some_and(|e| e.len() > MAX_EVIDENCE_LEN)
        {
            return Err(malformed("evidence is longer than 65536 bytes"));
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(malformed("more than 64 attributes"));
        }
        for (key, value) in &self.attributes {
            if !is_valid_attribute_key(key) {
                return Err(malformed("an attribute key is not 1-64 of [a-z0-9_]"));
            }
            if !is_valid_attribute_value(value) {
                return Err(malformed(
                    "an attribute value is longer than 1024 bytes or holds a control character",
                ));
            }
        }
        Ok(())
    }

    /// The canonical bytes (version 1). Meaningful for entries that pass [`validate`]
    /// (Self::validate); lengths of an invalid entry are clamped so that this never panics, and
    /// `decode` refuses the result.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.push(ENTRY_FORMAT_VERSION);
        out.extend_from_slice(&self.time.unix_micros().to_be_bytes());
        put_u8_str(&mut out, self.tenant.as_str());
        match &self.subject {
            None => out.push(0),
            Some(pseudonym) => {
                out.push(1);
                out.extend_from_slice(&pseudonym.0);
            }
        }
        put_u8_str(&mut out, &self.kind);
        match &self.purpose {
            None => out.push(0),
            Some(purpose) => {
                out.push(1);
                put_u8_str(&mut out, purpose.as_str());
            }
        }
        out.push(lawful_basis_code(self.lawful_basis));
        match &self.policy_hash {
            None => out.push(0),
            Some(hash) => {
                out.push(1);
                out.extend_from_slice(hash);
            }
        }
        for text in [&self.source.channel, &self.source.app] {
            match text {
                None => out.push(0),
                Some(text) => {
                    out.push(1);
                    put_u8_str(&mut out, text);
                }
            }
        }
        out.push(match self.source.gpc {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
        match &self.evidence {
            None => out.push(0),
            Some(evidence) => {
                out.push(1);
                let len = u32::try_from(evidence.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&evidence[..len as usize]);
            }
        }
        let count = u8::try_from(self.attributes.len()).unwrap_or(u8::MAX);
        out.push(count);
        for (key, value) in self.attributes.iter().take(usize::from(count)) {
            put_u8_str(&mut out, key);
            let value = value.as_bytes();
            let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&value[..usize::from(len)]);
        }
        out
    }

    /// Decodes canonical bytes; anything else (another version, trailing bytes, a bad tag, bad
    /// UTF-8, an unsorted or duplicate attribute key, a field outside its rules) is an error.
    /// Never panics.
    pub fn decode(bytes: &[u8]) -> Result<LedgerEntry, LedgerError> {
        let mut r = Reader { rest: bytes };
        match r.u8()? {
            ENTRY_FORMAT_VERSION => {}
            _ => return Err(malformed("unknown version")),
        }
        let time = Timestamp::from_unix_micros(i64::from_be_bytes(r.array()?));
        let tenant: TenantId = r
            .u8_str()?
            .parse()
            .map_err(|_| malformed("invalid tenant id"))?;
        let subject = match r.tag()? {
            false => None,
            true => Some(Pseudonym(r.array()?)),
        };
        let kind = r.u8_str()?;
        if !is_valid_kind(kind) {
            return Err(malformed("kind is not 1-64 of [a-z0-9_.]"));
        }
        let kind = kind.to_owned();
        let purpose = match r.tag()? {
            false => None,
            true => Some(
                r.u8_str()?
                    .parse::<PurposeId>()
                    .map_err(|_| malformed("invalid purpose id"))?,
            ),
        };
        let lawful_basis =
            lawful_basis_from_code(r.u8()?).ok_or(malformed("unknown lawful basis code"))?;
        let policy_hash = match r.tag()? {
            false => None,
            true => Some(r.array::<32>()?),
        };
        let mut texts = [None, None];
        for slot in &mut texts {
            if r.tag()? {
                let text = r.u8_str()?;
                if !is_valid_source_text(text) {
                    return Err(malformed(
                        "a source string is not 1-64 bytes without control characters",
                    ));
                }
                *slot = Some(text.to_owned());
            }
        }
        let [channel, app] = texts;
        let gpc = match r.u8()? {
            0 => None,
            1 => Some(false),
            2 => Some(true),
            _ => return Err(malformed("unknown gpc code")),
        };
        let evidence = match r.tag()? {
            false => None,
            true => {
                let len = u32::from_be_bytes(r.array()?) as usize;
                if len > MAX_EVIDENCE_LEN {
                    return Err(malformed("evidence is longer than 65536 bytes"));
                }
                Some(r.take(len)?.to_vec())
            }
        };
        let count = usize::from(r.u8()?);
        if count > MAX_ATTRIBUTES {
            return Err(malformed("more than 64 attributes"));
        }
        let mut attributes = BTreeMap::new();
        let mut previous: Option<&str> = None;
        for _ in 0..count {
            let key = r.u8_str()?;
            if !is_valid_attribute_key(key) {
                return Err(malformed("an attribute key is not 1-64 of [a-z0-9_]"));
            }
            if previous.is_some_and(|p| p >= key) {
                return Err(malformed(
                    "attribute keys are not strictly increasing (unsorted or duplicate)",
                ));
            }
            previous = Some(key);
            let len = usize::from(u16::from_be_bytes(r.array()?));
            let value = std::str::from_utf8(r.take(len)?)
                .map_err(|_| malformed("an attribute value is not UTF-8"))?;
            if !is_valid_attribute_value(value) {
                return Err(malformed(
                    "an attribute value is longer than 1024 bytes or holds a control character",
                ));
            }
            attributes.insert(key.to_owned(), value.to_owned());
        }
        if !r.rest.is_empty() {
            return Err(malformed("trailing bytes after the last field"));
        }
        Ok(LedgerEntry {
            time,
            tenant,
            subject,
            kind,
            purpose,
            lawful_basis,
            policy_hash,
            source: Source { channel, app, gpc },
            evidence,
            attributes,
        })
    }
}

/// Writes `u8 n ‖ bytes`, clamping at 255 bytes (only an entry that fails `validate` is that
/// long; see `encode`).
fn put_u8_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let len = u8::try_from(bytes.len()).unwrap_or(u8::MAX);
    out.push(len);
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

/// A cursor over untrusted bytes whose every read is checked.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LedgerError> {
        if self.rest.len() < n {
            return Err(malformed("truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LedgerError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, LedgerError> {
        Ok(self.take(1)?[0])
    }

    fn tag(&mut self) -> Result<bool, LedgerError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(malformed("a presence tag is neither 0 nor 1")),
        }
    }

    fn u8_str(&mut self) -> Result<&'a str, LedgerError> {
        let len = usize::from(self.u8()?);
        std::str::from_utf8(self.take(len)?).map_err(|_| malformed("a string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests;
