//! Ed25519 signing keys for the tamper-evident logs (the consent ledger, the access log): each log
//! of each tenant signs its checkpoints with its own key, derived from the tenant secret, so the
//! verifier key stays the same across root-key rotations.

use std::fmt;

use ring::signature::{self, Ed25519KeyPair, KeyPair};
use zeroize::Zeroizing;

use crate::VaultError;

/// Length of an Ed25519 public key.
pub const ED25519_PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const ED25519_SIGNATURE_LEN: usize = 64;

/// An Ed25519 signing key. The seed is wiped on drop; `Debug` shows the public key only.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: [u8; ED25519_PUBLIC_KEY_LEN],
}

impl SigningKey {
    /// The key whose RFC 8032 seed is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Result<SigningKey, VaultError> {
        let seed = Zeroizing::new(*seed);
        let pair =
            Ed25519KeyPair::from_seed_unchecked(seed.as_ref()).map_err(|_| VaultError::Crypto)?;
        let mut public = [0u8; ED25519_PUBLIC_KEY_LEN];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(SigningKey { pair, public })
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; ED25519_PUBLIC_KEY_LEN] {
        self.public
    }

    /// Signs `message` (Ed25519, RFC 8032: deterministic).
    pub fn sign(&self, message: &[u8]) -> [u8; ED25519_SIGNATURE_LEN] {
        let mut out = [0u8; ED25519_SIGNATURE_LEN];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(public ")?;
        for byte in self.public {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(")")
    }
}

/// Whether `sig` is a valid Ed25519 signature of `message` under `public_key`.
pub fn verify_ed25519(
    public_key: &[u8; ED25519_PUBLIC_KEY_LEN],
    message: &[u8],
    sig: &[u8; ED25519_SIGNATURE_LEN],
) -> bool {
    signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(message, sig)
        .is_ok()
}
