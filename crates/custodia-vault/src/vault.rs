//! The vault: the keyring plus the key store directory, handing out one `TenantVault` per tenant.

use std::collections::HashMap;
use std::fmt;
use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use custodia_core::TenantId;

use crate::durable::sync_parent_dir;
use crate::{Keyring, TenantVault, VaultError};

/// The file in the key store directory that says since when the current root key is in use.
const ROOT_KEY_SINCE_FILE: &str = "root-key-since";

fn now_utc() -> custodia_core::Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    custodia_core::Timestamp::from_unix_micros(micros)
}

/// Entry point of the crate: holds the keyring and opens each tenant's key store on first use.
pub struct Vault {
    keys_dir: PathBuf,
    keyring: Keyring,
    tenants: Mutex<HashMap<TenantId, Arc<TenantVault>>>,
}

impl Vault {
    /// Opens the key store directory (creating it with mode 0o700 if missing).
    ///
    /// Tenant key stores are opened, and locked, lazily by [`Vault::tenant`].
    pub fn open(keys_dir: &Path, keyring: Keyring) -> Result<Vault, VaultError> {
        if !keys_dir.is_dir() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(keys_dir)
                .map_err(|e| VaultError::io(keys_dir, e))?;
            sync_parent_dir(keys_dir).map_err(|e| VaultError::io(keys_dir, e))?;
        }
        Ok(Vault {
            keys_dir: keys_dir.to_owned(),
            keyring,
            tenants: Mutex::new(HashMap::new()),
        })
    }

    /// The tenant's keys. On first use this opens and locks `<keys_dir>/<tenant>.keys`, creating
    /// it with a fresh random 256-bit tenant secret wrapped under the current root key if it does
    /// not exist. Cached: later calls return the same `Arc`.
    pub fn tenant(&self, tenant: &TenantId) -> Result<Arc<TenantVault>, VaultError> {
        // The map is only ever changed by one `insert` after a successful open, so a poisoned
        // lock still guards a consistent map.
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tenant_vault) = tenants.get(tenant) {
            return Ok(Arc::clone(tenant_vault));
        }
        let tenant_vault = Arc::new(TenantVault::open(&self.keys_dir, tenant, &self.keyring)?);
        tenants.insert(tenant.clone(), Arc::clone(&tenant_vault));
        Ok(tenant_vault)
    }

    /// Every tenant with a key store file in the directory, in name order.
    pub fn tenants(&self) -> Result<Vec<TenantId>, VaultError> {
        let entries =
            std::fs::read_dir(&self.keys_dir).map_err(|e| VaultError::io(&self.keys_dir, e))?;
        let mut tenants = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| VaultError::io(&self.keys_dir, e))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".keys")) else {
                continue;
            };
            // Temporary files start with a dot and are no tenant names.
            if let Ok(tenant) = stem.parse::<TenantId>() {
                tenants.push(tenant);
            }
        }
        tenants.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(tenants)
    }

    /// When the root key was last rotated (`custodia keys rotate`), or when this key store
    /// directory was first used if it never was: the start of the interval after which key-store
    /// backups stop mattering for erasure. Kept in `<keys_dir>/root-key-since` as RFC 3339 text.
    pub fn root_key_since(&self) -> Result<custodia_core::Timestamp, VaultError> {
        let path = self.keys_dir.join(ROOT_KEY_SINCE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => custodia_core::Timestamp::parse_rfc3339(text.trim()).ok_or_else(|| {
                VaultError::KeyStoreCorrupt {
                    path: path.clone(),
                    detail: "not an RFC 3339 time",
                }
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let now = now_utc();
                self.set_root_key_since(now)?;
                Ok(now)
            }
            Err(e) => Err(VaultError::io(&path, e)),
        }
    }

    /// Records that the root key was rotated at `at`.
    pub fn set_root_key_since(&self, at: custodia_core::Timestamp) -> Result<(), VaultError> {
        let path = self.keys_dir.join(ROOT_KEY_SINCE_FILE);
        let tmp = self.keys_dir.join(format!(".{ROOT_KEY_SINCE_FILE}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        crate::durable::write_new_file(&tmp, format!("{at}\n").as_bytes())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .and_then(|()| sync_parent_dir(&path))
            .map_err(|e| VaultError::io(&path, e))
    }

    /// The key store directory.
    pub fn keys_dir(&self) -> &Path {
        &self.keys_dir
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("keys_dir", &self.keys_dir)
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}
