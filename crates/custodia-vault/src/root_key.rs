//! Root keys from the operator, their public ids, and the keyring that holds the current root key
//! and the older ones still needed while a rotation runs.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use custodia_core::LengthPrefixed;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::VaultError;
use crate::durable::sync_parent_dir;
use crate::primitives::{KEY_LEN, fill_random, sha256};

/// The label hashed with a root key to give its id.
const ROOT_KEY_ID_LABEL: &str = "custodia root key id v1";

/// The largest root key file read; a base64 key is 44 characters.
const MAX_KEY_FILE_LEN: u64 = 1024;

/// The public name of a root key: the first 8 bytes of
/// `SHA-256(lp("custodia root key id v1") ‖ lp(key bytes))`.
///
/// It is stored next to everything a root key wraps, so a keyring can pick the right key during a
/// rotation and an operator can tell keys apart. The key is 256 random bits, so the id reveals
/// nothing about it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RootKeyId(pub [u8; 8]);

impl fmt::Display for RootKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RootKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootKeyId({self})")
    }
}

/// A 256-bit root key from the operator (`CUSTODIA_MASTER_KEY` or a key file).
///
/// It never encrypts data itself: per tenant it only derives the wrapping key (see the crate
/// documentation). Zeroized on drop; `Debug` prints only its id.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RootKey {
    bytes: [u8; KEY_LEN],
    #[zeroize(skip)]
    id: RootKeyId,
}

impl RootKey {
    /// A fresh random root key.
    pub fn generate() -> Result<RootKey, VaultError> {
        let mut key = RootKey {
            bytes: [0; KEY_LEN],
            id: RootKeyId([0; 8]),
        };
        fill_random(&mut key.bytes)?;
        key.id = compute_id(&key.bytes);
        Ok(key)
    }

    /// Parses standard base64 (with padding) of exactly 32 bytes; surrounding whitespace is
    /// trimmed. The error never echoes the input.
    pub fn from_base64(text: &str) -> Result<RootKey, VaultError> {
        // Decoded into a fixed buffer with room to spare, so an over-long input is reported as
        // the wrong length rather than overflowing, and no heap copy of the key is left behind.
        let mut buffer = Zeroizing::new([0u8; 48]);
        let n_bytes = STANDARD
            .decode_slice(text.trim().as_bytes(), buffer.as_mut_slice())
            .map_err(|_| VaultError::InvalidRootKey)?;
        if n_bytes != KEY_LEN {
            return Err(VaultError::InvalidRootKey);
        }
        let mut key = RootKey {
            bytes: [0; KEY_LEN],
            id: RootKeyId([0; 8]),
        };
        key.bytes.copy_from_slice(&buffer[..KEY_LEN]);
        key.id = compute_id(&key.bytes);
        Ok(key)
    }

    /// The key as standard base64, in a string that is zeroized on drop.
    pub fn to_base64(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::with_capacity(48));
        STANDARD.encode_string(self.bytes, &mut text);
        text
    }

    /// Reads a key file holding the base64 key. Refuses a file that group or others may access
    /// (checked on the opened file, so the check and the read see the same file).
    pub fn read_file(path: &Path) -> Result<RootKey, VaultError> {
        let file = File::open(path).map_err(|e| VaultError::io(path, e))?;
        let mode = file
            .metadata()
            .map_err(|e| VaultError::io(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(VaultError::RootKeyFilePermissions {
                path: path.to_owned(),
            });
        }
        // Capacity for the whole allowed length plus one, so reading never reallocates and leaves
        // no stray copy of the key in freed memory.
        let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_LEN as usize + 1));
        file.take(MAX_KEY_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| VaultError::io(path, e))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| VaultError::InvalidRootKey)?;
        RootKey::from_base64(text)
    }

    /// Generates a key and writes it as base64 and a newline to a new file with mode 0600,
    /// then syncs the file and its directory. Refuses to overwrite an existing file.
    pub fn create_file(path: &Path) -> Result<RootKey, VaultError> {
        let key = RootKey::generate()?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| VaultError::io(path, e))?;
        let text = key.to_base64();
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all());
        drop(file);
        let synced = written.and_then(|()| sync_parent_dir(path));
        if let Err(e) = synced {
            // A half-written key file would make the next start fail, so it goes; the error
            // already reports the failure, and a failed removal changes nothing about it.
            let _ = std::fs::remove_file(path);
            return Err(VaultError::io(path, e));
        }
        Ok(key)
    }

    /// The key's public id.
    pub fn id(&self) -> RootKeyId {
        self.id
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootKey({})", self.id)
    }
}

fn compute_id(key: &[u8; KEY_LEN]) -> RootKeyId {
    let input = Zeroizing::new(
        LengthPrefixed::new()
            .part(ROOT_KEY_ID_LABEL)
            .part(key)
            .into_bytes(),
    );
    let digest = sha256(&input);
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    RootKeyId(id)
}

/// The current root key, which wraps everything new, plus older root keys that still open what
/// they wrapped while a rotation re-wraps it.
pub struct Keyring {
    current: RootKey,
    previous: Vec<RootKey>,
}

impl Keyring {
    /// A keyring with only the current key.
    pub fn new(current: RootKey) -> Keyring {
        Keyring {
            current,
            previous: Vec::new(),
        }
    }

    /// Adds an older key that may still be needed to unwrap. A key already in the keyring (same
    /// id) is not added twice.
    pub fn with_previous(mut self, old: RootKey) -> Keyring {
        if self.get(old.id()).is_none() {
            self.previous.push(old);
        }
        self
    }

    /// The id of the key that wraps everything new.
    pub fn current_id(&self) -> RootKeyId {
        self.current.id()
    }

    /// The ids of all keys, current first.
    pub fn ids(&self) -> impl Iterator<Item = RootKeyId> + '_ {
        self.keys().map(RootKey::id)
    }

    /// Whether the keyring holds the key with this id.
    pub fn contains(&self, id: RootKeyId) -> bool {
        self.get(id).is_some()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &RootKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }

    fn get(&self, id: RootKeyId) -> Option<&RootKey> {
        self.keys().find(|key| key.id() == id)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous: Vec<RootKeyId> = self.previous.iter().map(RootKey::id).collect();
        f.debug_struct("Keyring")
            .field("current", &self.current.id())
            .field("previous", &previous)
            .finish()
    }
}
