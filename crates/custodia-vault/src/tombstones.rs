//! The tombstone list: the random ids of erased subjects, kept beside the key store (not in the
//! data directory) so that a restored data backup cannot bring an erased person back — the engine
//! replays the list after opening the data.
//!
//! `<keys_dir>/<tenant>.tombstones` is a sequence of 24-byte records, `subject id (16) ‖ erased_at
//! (i64 µs, big-endian)`, appended and synced before the erasure is acknowledged. The ids are
//! random (never derived from personal data), so the list holds no personal data. A trailing
//! partial record (a crash during an append) is ignored and cut off on the next append.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use custodia_core::{SubjectId, TenantId, Timestamp};

use crate::VaultError;
use crate::durable::sync_parent_dir;

const RECORD_LEN: usize = 24;

/// One tenant's tombstone file.
pub(crate) struct Tombstones {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl Tombstones {
    pub(crate) fn new(keys_dir: &Path, tenant: &TenantId) -> Tombstones {
        Tombstones {
            path: keys_dir.join(format!("{}.tombstones", tenant.as_str())),
            file: Mutex::new(None),
        }
    }

    /// Appends `subject` and syncs.
    pub(crate) fn add(&self, subject: SubjectId, at: Timestamp) -> Result<(), VaultError> {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let file = match guard.take() {
            Some(file) => guard.insert(file),
            None => {
                let existed = self.path.exists();
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600)
                    .open(&self.path)
                    .map_err(|e| VaultError::io(&self.path, e))?;
                if !existed {
                    sync_parent_dir(&self.path).map_err(|e| VaultError::io(&self.path, e))?;
                }
                guard.insert(file)
            }
        };
        let len = file
            .metadata()
            .map_err(|e| VaultError::io(&self.path, e))?
            .len();
        let whole = len - len % RECORD_LEN as u64;
        let mut record = [0u8; RECORD_LEN];
        record[..16].copy_from_slice(&subject.to_bytes());
        record[16..].copy_from_slice(&at.unix_micros().to_be_bytes());
        file.write_all_at(&record, whole)
            .and_then(|()| file.set_len(whole + RECORD_LEN as u64))
            .and_then(|()| file.sync_data())
            .map_err(|e| VaultError::io(&self.path, e))
    }

    /// Every tombstone, oldest first.
    pub(crate) fn list(&self) -> Result<Vec<(SubjectId, Timestamp)>, VaultError> {
        let mut bytes = Vec::new();
        match File::open(&self.path) {
            Ok(mut file) => {
                file.read_to_end(&mut bytes)
                    .map_err(|e| VaultError::io(&self.path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(VaultError::io(&self.path, e)),
        }
        Ok(bytes
            .chunks_exact(RECORD_LEN)
            .map(|record| {
                let mut id = [0u8; 16];
                id.copy_from_slice(&record[..16]);
                let mut at = [0u8; 8];
                at.copy_from_slice(&record[16..]);
                (
                    SubjectId::from_bytes(id),
                    Timestamp::from_unix_micros(i64::from_be_bytes(at)),
                )
            })
            .collect())
    }
}
