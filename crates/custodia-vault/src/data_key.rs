//! Per-subject data keys and the envelope format of everything sealed under them.

use std::fmt;

use custodia_core::{LengthPrefixed, SubjectId, TenantId};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::VaultError;
use crate::primitives::{
    KEY_LEN, NONCE_LEN, TAG_LEN, aes_gcm_open_in_place, aes_gcm_seal_in_place, fill_random,
};

/// The format version byte that opens every sealed value.
pub const SEAL_FORMAT_VERSION: u8 = 1;

/// Bytes that [`DataKey::seal`] adds to a plaintext: version byte, nonce and tag.
pub const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// Where a sealed value belongs. The ciphertext is bound to all three, so it cannot be moved to
/// another tenant, subject, or field / record kind:
/// `AAD = lp("custodia-data") ‖ lp(tenant) ‖ lp(subject bytes) ‖ lp(kind) ‖ lp([format version])`.
#[derive(Clone, Copy, Debug)]
pub struct Aad<'a> {
    /// The tenant the subject belongs to.
    pub tenant: &'a TenantId,
    /// The subject whose data key seals the value.
    pub subject: SubjectId,
    /// The field or record kind (`"trait:email"`, `"event"`, ...), chosen by the caller.
    pub kind: &'a str,
}

impl Aad<'_> {
    fn encode(&self, version: u8) -> Vec<u8> {
        LengthPrefixed::new()
            .part("custodia-data")
            .part(self.tenant.as_str())
            .part(self.subject.to_bytes())
            .part(self.kind)
            .part([version])
            .into_bytes()
    }
}

/// A subject's 256-bit data key (DEK). Everything personal about the subject is sealed under it;
/// destroying its wrapped copy in the key store makes all of it unreadable (crypto-shredding).
///
/// Zeroized on drop; `Debug` prints `[redacted]`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey {
    bytes: [u8; KEY_LEN],
}

impl DataKey {
    /// A fresh random key that lives only in memory. Keys that must outlive the process come from
    /// [`TenantVault::create_data_key`](crate::TenantVault::create_data_key), which also stores
    /// them.
    pub fn generate() -> Result<DataKey, VaultError> {
        let mut key = DataKey::zeroed();
        fill_random(&mut key.bytes)?;
        Ok(key)
    }

    pub(crate) fn zeroed() -> DataKey {
        DataKey {
            bytes: [0; KEY_LEN],
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    pub(crate) fn as_bytes_mut(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.bytes
    }

    /// Seals `plaintext` with AES-256-GCM under a random 96-bit nonce.
    ///
    /// Output: `[version = 1][12-byte nonce][ciphertext ‖ 16-byte tag]`, bound to `aad`.
    pub fn seal(&self, aad: &Aad<'_>, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        // Sized up front so the plaintext copied in is encrypted where it lies and no
        // reallocation leaves a plaintext copy in freed memory.
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.push(SEAL_FORMAT_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let aad_bytes = aad.encode(SEAL_FORMAT_VERSION);
        match aes_gcm_seal_in_place(&self.bytes, &nonce, &aad_bytes, &mut out[1 + NONCE_LEN..]) {
            Ok(tag) => {
                out.extend_from_slice(&tag);
                Ok(out)
            }
            Err(e) => {
                out.zeroize();
                Err(e)
            }
        }
    }

    /// Opens what [`DataKey::seal`] produced for the same `aad`. Every failure — input too short,
    /// unknown version, wrong key, wrong associated data, any changed byte — is the same
    /// [`VaultError::Crypto`].
    pub fn open(&self, aad: &Aad<'_>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        if sealed.len() < SEAL_OVERHEAD || sealed[0] != SEAL_FORMAT_VERSION {
            return Err(VaultError::Crypto);
        }
        let (nonce, rest) = sealed[1..].split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut nonce_array = [0u8; NONCE_LEN];
        nonce_array.copy_from_slice(nonce);
        let mut tag_array = [0u8; TAG_LEN];
        tag_array.copy_from_slice(tag);
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let aad_bytes = aad.encode(SEAL_FORMAT_VERSION);
        aes_gcm_open_in_place(
            &self.bytes,
            &nonce_array,
            &aad_bytes,
            &mut buffer,
            &tag_array,
        )?;
        Ok(buffer)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
