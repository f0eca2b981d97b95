//! One tenant's keys: its key store of subject data keys and the sub-keys derived from its tenant
//! secret for pseudonyms, blind indexes and look-up hashes.

use std::fmt;
use std::path::Path;

use custodia_core::{LengthPrefixed, Pseudonym, SubjectId, TenantId};
use zeroize::Zeroizing;

use crate::key_store::KeyStore;
use crate::primitives::{SecretKey, hkdf_sha256, hmac_sha256};
use crate::tombstones::Tombstones;
use crate::{DataKey, Keyring, SigningKey, VaultError};

/// Bytes of a blind index: 16-bit buckets.
///
/// A blind index is deterministic, so it leaks which records share a value and how often a value
/// occurs. Truncating it, as CipherSweet does, makes distinct values share buckets: an index entry
/// then says only "one of the values in this bucket", and a look-up returns candidates that the
/// caller decrypts and compares exactly. CipherSweet sizes the index so that each bucket is
/// expected to hold at least two distinct values, i.e. `2^bits ≤ population / 2`, while keeping
/// the candidate list short enough to decrypt on each look-up.
///
/// With 16 bits there are 65,536 buckets: a tenant with one million e-mail addresses has about
/// 15 per bucket, so a look-up decrypts about 15 candidates; from about 130,000 distinct values up
/// every bucket is expected to be shared. A small tenant gets mostly unshared buckets and so little
/// protection from truncation — its values are still hidden by the key (the index is keyed, so it
/// cannot be brute-forced without it), but equality and frequency show. docs/security.md states
/// this leakage. The size is one constant so that it can grow with a tenant later; changing it
/// means rebuilding the stored indexes.
pub const BLIND_INDEX_BYTES: usize = 2;

/// A field that has a blind index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlindField {
    /// An e-mail address, normalized by [`normalize_email`](crate::normalize_email).
    Email,
    /// A phone number in E.164, normalized by [`normalize_phone`](crate::normalize_phone).
    Phone,
}

impl BlindField {
    /// The name bound into the index: `"email"` or `"phone"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BlindField::Email => "email",
            BlindField::Phone => "phone",
        }
    }
}

/// A truncated, keyed blind index of a normalized value; several values share each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlindIndex(pub [u8; BLIND_INDEX_BYTES]);

/// Bytes of a search token: 128 bits, so distinct tokens practically never collide in the index
/// (search wants exact term matches; unlike the blind index there is no candidate re-check).
pub const SEARCH_TOKEN_BYTES: usize = 16;

/// A keyed hash of one normalized search token (or prefix) of one field: the only form in which
/// personal-data words enter the search index.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SearchToken(pub [u8; SEARCH_TOKEN_BYTES]);

impl fmt::Debug for SearchToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SearchToken(")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(")")
    }
}

/// A full keyed hash of an exact id (`userId`, `anonymousId`) for look-ups.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LookupHash(pub [u8; 32]);

impl fmt::Debug for LookupHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keyed, so printing it reveals nothing without the tenant's look-up key.
        f.write_str("LookupHash(")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(")")
    }
}

/// The long-lived sub-keys of a tenant, each `HKDF-SHA256(tenant secret, salt "custodia/v1",
/// info lp(label) ‖ lp(tenant))` with its own label. They depend on the tenant secret, not on the
/// root key, so a root-key rotation leaves pseudonyms, blind indexes and look-up hashes unchanged.
pub(crate) struct TenantKeys {
    pseudonym: SecretKey,
    blind_index: SecretKey,
    lookup: SecretKey,
    log_signing: SecretKey,
    search: SecretKey,
}

impl TenantKeys {
    pub(crate) fn derive(secret: &SecretKey, tenant: &TenantId) -> Result<TenantKeys, VaultError> {
        let derive = |label: &str| {
            let info = LengthPrefixed::new()
                .part(label)
                .part(tenant.as_str())
                .into_bytes();
            hkdf_sha256(secret.as_bytes(), &info)
        };
        Ok(TenantKeys {
            pseudonym: derive("pseudonym")?,
            blind_index: derive("blind-index")?,
            lookup: derive("lookup")?,
            log_signing: derive("log-signing")?,
            search: derive("search-token")?,
        })
    }

    pub(crate) fn pseudonym(&self, tenant: &TenantId, subject: SubjectId) -> Pseudonym {
        let input = LengthPrefixed::new()
            .part(tenant.as_str())
            .part(subject.to_bytes());
        let mac = hmac_sha256(&self.pseudonym, input.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&mac[..16]);
        Pseudonym(out)
    }

    pub(crate) fn blind_index(
        &self,
        tenant: &TenantId,
        field: BlindField,
        normalized: &str,
    ) -> BlindIndex {
        // The value is personal data: its encoded copy is wiped after use.
        let input = Zeroizing::new(
            LengthPrefixed::new()
                .part(tenant.as_str())
                .part(field.as_str())
                .part(normalized)
                .into_bytes(),
        );
        let mac = hmac_sha256(&self.blind_index, &input);
        let mut out = [0u8; BLIND_INDEX_BYTES];
        out.copy_from_slice(&mac[..BLIND_INDEX_BYTES]);
        BlindIndex(out)
    }

    pub(crate) fn lookup_hash(&self, tenant: &TenantId, kind: &str, value: &str) -> LookupHash {
        let input = Zeroizing::new(
            LengthPrefixed::new()
                .part(tenant.as_str())
                .part(kind)
                .part(value)
                .into_bytes(),
        );
        LookupHash(hmac_sha256(&self.lookup, &input))
    }

    pub(crate) fn search_token(&self, tenant: &TenantId, field: &str, token: &str) -> SearchToken {
        let input = Zeroizing::new(
            LengthPrefixed::new()
                .part(tenant.as_str())
                .part(field)
                .part(token)
                .into_bytes(),
        );
        let mac = hmac_sha256(&self.search, &input);
        let mut out = [0u8; SEARCH_TOKEN_BYTES];
        out.copy_from_slice(&mac[..SEARCH_TOKEN_BYTES]);
        SearchToken(out)
    }
}

/// One tenant's keys: derived look-up keys and the locked key store of subject data keys.
///
/// Shared as `Arc<TenantVault>`; every method takes `&self` and is safe to call from many threads.
pub struct TenantVault {
    tenant: TenantId,
    keys: TenantKeys,
    store: KeyStore,
    tombstones: Tombstones,
}

impl TenantVault {
    pub(crate) fn open(
        keys_dir: &Path,
        tenant: &TenantId,
        keyring: &Keyring,
    ) -> Result<TenantVault, VaultError> {
        let (store, secret) = KeyStore::open(keys_dir, tenant, keyring)?;
        let keys = TenantKeys::derive(&secret, tenant)?;
        Ok(TenantVault {
            tenant: tenant.clone(),
            keys,
            store,
            tombstones: Tombstones::new(keys_dir, tenant),
        })
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The subject's pseudonym: the first 16 bytes of
    /// `HMAC-SHA256(pseudonym key, lp(tenant) ‖ lp(subject id bytes))`.
    pub fn pseudonym(&self, subject: SubjectId) -> Pseudonym {
        self.keys.pseudonym(&self.tenant, subject)
    }

    /// `HMAC-SHA256(blind-index key, lp(tenant) ‖ lp(field) ‖ lp(normalized))` truncated to
    /// [`BLIND_INDEX_BYTES`], so that several subjects share a bucket (CipherSweet-style); the
    /// caller decrypts the candidates and compares exactly. `normalized` must come from
    /// [`normalize_email`](crate::normalize_email) or [`normalize_phone`](crate::normalize_phone).
    pub fn blind_index(&self, field: BlindField, normalized: &str) -> BlindIndex {
        self.keys.blind_index(&self.tenant, field, normalized)
    }

    /// The full 32-byte `HMAC-SHA256(lookup key, lp(tenant) ‖ lp(kind) ‖ lp(value))`, for exact ids
    /// such as `userId` or `anonymousId`.
    pub fn lookup_hash(&self, kind: &str, value: &str) -> LookupHash {
        self.keys.lookup_hash(&self.tenant, kind, value)
    }

    /// `HMAC-SHA256(search key, lp(tenant) ‖ lp(field) ‖ lp(token))` truncated to
    /// [`SEARCH_TOKEN_BYTES`]: a term of the search index. The search key is its own HKDF sub-key,
    /// apart from the blind-index key, so that index terms cannot be joined with blind indexes
    /// (and the two can have different lengths and rotation). `field` names what the token is
    /// (e.g. `"name"`, `"name/prefix"`); `token` is already normalized by the search crate.
    pub fn search_token(&self, field: &str, token: &str) -> SearchToken {
        self.keys.search_token(&self.tenant, field, token)
    }

    /// Generates a random data key for the subject, wraps it (AES-256-GCM) under the tenant's
    /// wrapping key, writes it to a slot of the key file and syncs it before returning.
    ///
    /// Fails with [`VaultError::DataKeyExists`] if the subject already has a key and with
    /// [`VaultError::WrapLimit`] once the wrapping key's encryption budget is spent.
    pub fn create_data_key(&self, subject: SubjectId) -> Result<DataKey, VaultError> {
        self.store.create(subject)
    }

    /// [`create_data_key`](Self::create_data_key) for several subjects with one sync of the key
    /// file for all of them (a group commit's new subjects). All or none.
    pub fn create_data_keys(&self, subjects: &[SubjectId]) -> Result<(), VaultError> {
        self.store.create_many(subjects)
    }

    /// The key the subject's records are sealed under: its data key, or once an erasure kept
    /// records under a legal hold and retired the data key, its hold key.
    /// [`VaultError::KeyNotFound`] if it has neither. A slot that does not unwrap is an error for
    /// this subject only.
    pub fn data_key(&self, subject: SubjectId) -> Result<DataKey, VaultError> {
        match self.store.get(subject) {
            Err(VaultError::KeyNotFound) => self.store.get(hold_key_id(subject)),
            found => found,
        }
    }

    /// The subject's own data key, never the hold key; [`VaultError::KeyNotFound`] once retired.
    pub fn primary_data_key(&self, subject: SubjectId) -> Result<DataKey, VaultError> {
        self.store.get(subject)
    }

    /// The subject's hold key, created (written and synced) if it has none yet: the fresh key an
    /// erasure that keeps records under a legal hold re-seals them with, so that the data key
    /// every earlier copy of the records is sealed under can be destroyed.
    pub fn hold_key(&self, subject: SubjectId) -> Result<DataKey, VaultError> {
        match self.store.get(hold_key_id(subject)) {
            Err(VaultError::KeyNotFound) => self.store.create(hold_key_id(subject)),
            found => found,
        }
    }

    /// The subject's hold key if it has one (never creates it).
    pub fn existing_hold_key(&self, subject: SubjectId) -> Result<Option<DataKey>, VaultError> {
        match self.store.get(hold_key_id(subject)) {
            Ok(key) => Ok(Some(key)),
            Err(VaultError::KeyNotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the subject has a hold key.
    pub fn has_hold_key(&self, subject: SubjectId) -> Result<bool, VaultError> {
        Ok(self.existing_hold_key(subject)?.is_some())
    }

    /// Crypto-shredding of the subject's data key only (its slot overwritten in place with
    /// zeros and synced), leaving a hold key. `Ok(true)` if a key was destroyed.
    pub fn retire_data_key(&self, subject: SubjectId) -> Result<bool, VaultError> {
        self.store.destroy(subject)
    }

    /// Crypto-shredding: overwrites the subject's slots (data key and hold key) in place with
    /// zeros and syncs. `Ok(true)` if a key was destroyed, `Ok(false)` if the subject had none.
    pub fn destroy_data_key(&self, subject: SubjectId) -> Result<bool, VaultError> {
        let primary = self.store.destroy(subject)?;
        let hold = self.store.destroy(hold_key_id(subject))?;
        Ok(primary || hold)
    }

    /// The number of live data keys.
    /// The Ed25519 key that signs the checkpoints of the tenant's log `log` (`"ledger"`,
    /// `"audit"`): seed = HKDF-SHA256(log-signing key, lp(log)). Stable across root-key rotations.
    pub fn log_signing_key(&self, log: &str) -> Result<SigningKey, VaultError> {
        let info = LengthPrefixed::new().part(log).into_bytes();
        let seed = hkdf_sha256(self.keys.log_signing.as_bytes(), &info)?;
        SigningKey::from_seed(seed.as_bytes())
    }

    /// Root-key rotation for this tenant: re-wraps the tenant secret and every live data key
    /// under the keyring's current root key, in place, and syncs. Returns the number of wraps
    /// redone (0 when everything already was under the current key). Afterwards the previous root
    /// keys open nothing in this file, and copies of the file made before open nothing without
    /// them.
    pub fn rotate_wrapping(&self) -> Result<u64, VaultError> {
        self.store.rotate()
    }

    /// Puts an erased subject on the tenant's tombstone list (beside the key store, synced), so
    /// that a restored data backup can be cleaned of it.
    pub fn add_tombstone(
        &self,
        subject: SubjectId,
        at: custodia_core::Timestamp,
    ) -> Result<(), VaultError> {
        self.tombstones.add(subject, at)
    }

    /// The tenant's tombstones: erased subjects and when they were erased, oldest first.
    pub fn tombstones(&self) -> Result<Vec<(SubjectId, custodia_core::Timestamp)>, VaultError> {
        self.tombstones.list()
    }

    /// Number of live subject data keys.
    pub fn n_data_keys(&self) -> usize {
        self.store.len()
    }

    #[cfg(test)]
    pub(crate) fn key_store(&self) -> &KeyStore {
        &self.store
    }

    /// Every secret this tenant vault holds in memory, for tests that look for leaks.
    #[cfg(test)]
    pub(crate) fn secrets_for_tests(&self) -> Vec<[u8; 32]> {
        let mut secrets = vec![
            *self.keys.pseudonym.as_bytes(),
            *self.keys.blind_index.as_bytes(),
            *self.keys.lookup.as_bytes(),
            *self.keys.log_signing.as_bytes(),
            *self.keys.search.as_bytes(),
        ];
        secrets.extend(self.store.wrap_keys_for_tests());
        secrets
    }
}

impl fmt::Debug for TenantVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantVault")
            .field("tenant", &self.tenant)
            .field("key_store", &self.store.path())
            .finish_non_exhaustive()
    }
}

/// The key-store id of a subject's hold key: the first 16 bytes of
/// SHA-256(lp("custodia-hold-key") ‖ subject id), marked as a version-8 (custom) UUID, so it never
/// equals a random (version-4) subject id.
pub(crate) fn hold_key_id(subject: SubjectId) -> SubjectId {
    let input = LengthPrefixed::new()
        .part("custodia-hold-key")
        .part(subject.to_bytes())
        .into_bytes();
    let digest = crate::sha256(&input);
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id[6] = (id[6] & 0x0f) | 0x80;
    id[8] = (id[8] & 0x3f) | 0x80;
    SubjectId::from_bytes(id)
}
