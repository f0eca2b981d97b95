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
