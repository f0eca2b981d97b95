//! Identifier newtypes. None of them is derived from personal data.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// An id string that failed validation; it carries the kind of id, never the rejected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}")]
pub struct IdError {
    /// Which kind of id was expected (`"subject id"`, `"tenant id"`, ...).
    pub kind: &'static str,
}

/// A tenant (workspace). Every stored key and every derived key is scoped by one.
///
/// 1 to 32 characters of `[a-z0-9_-]`, starting with a letter or digit, so it is safe as a file
/// name in the key store.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// The tenant of the embedded default.
    pub fn default_tenant() -> TenantId {
        TenantId("default".to_owned())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TenantId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let ok_len = (1..=32).contains(&s.len());
        let ok_first = s
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok_len && ok_first && ok_chars {
            Ok(TenantId(s.to_owned()))
        } else {
            Err(IdError { kind: "tenant id" })
        }
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// The 16 bytes of the id, in their canonical (big-endian) order.
            pub fn to_bytes(self) -> [u8; 16] {
                *self.0.as_bytes()
            }

            /// Rebuilds an id from the bytes returned by `to_bytes`.
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                $name(Uuid::from_bytes(bytes))
            }

            /// The id as a UUID.
            pub fn as_uuid(self) -> Uuid {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                // Only the hyphenated form, so each id has one spelling.
                if s.len() != 36 {
                    return Err(IdError { kind: $kind });
                }
                Uuid::try_parse(s).map($name).map_err(|_| IdError { kind: $kind })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(
    /// A data subject: a random UUID v4, never derived from personal data.
    SubjectId,
    "subject id"
);

uuid_id!(
    /// An ingested event: a UUID v7, so ids sort by ingestion time and serve as cursors.
    EventId,
    "event id"
);

impl SubjectId {
    /// A v4 UUID from 16 random bytes (the caller supplies the randomness, so this crate does
    /// no I/O).
    pub fn from_random(random: [u8; 16]) -> SubjectId {
        SubjectId(uuid::Builder::from_random_bytes(random).into_uuid())
    }
}

impl EventId {
    /// A v7 UUID: milliseconds since the Unix epoch followed by random bits.
    pub fn from_parts(unix_millis: u64, random: [u8; 10]) -> EventId {
        EventId(uuid::Builder::from_unix_timestamp_millis(unix_millis, &random).into_uuid())
    }

    /// The next id after `self` in sort order, still a valid v7 UUID: the 62-bit random tail
    /// counts up (RFC 9562 §6.2, monotonic random). Used when two events fall in one millisecond,
    /// so ids keep ingestion order. `None` if the tail is exhausted (after 2^62 steps).
    pub fn successor(self) -> Option<EventId> {
        const TAIL: u128 = (1 << 62) - 1;
        let value = self.0.as_u128();
        if value & TAIL == TAIL {
            return None;
        }
        Some(EventId(Uuid::from_u128(value + 1)))
    }
}

/// The only subject identifier that the ledger, the search index and analytics carry:
/// a truncated HMAC of tenant and subject id under the pseudonym key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pseudonym(pub [u8; 16]);

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pseudonym({self})")
    }
}

impl Serialize for Pseudonym {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for Pseudonym {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).map_err(|_| IdError { kind: "pseudonym" })?;
        Ok(Pseudonym(out))
    }
}

/// The public half of an API key: 16 lower-case hex characters. It names the key in logs and in
/// the access log; the secret half is never stored, only its hash.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    /// Builds the id from 8 random bytes.
    pub fn from_random(random: [u8; 8]) -> ApiKeyId {
        ApiKeyId(hex::encode(random))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ApiKeyId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.len() == 16
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(ApiKeyId(s.to_owned()))
        } else {
            Err(IdError { kind: "api key id" })
        }
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyId({})", self.0)
    }
}
