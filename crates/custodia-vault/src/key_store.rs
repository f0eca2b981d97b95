//! The key store: one file per tenant that holds the tenant secret and every subject's data key,
//! wrapped, in fixed-size slots that erasure overwrites in place.
//!
//! # File format (version 1)
//!
//! `<keys_dir>/<tenant>.keys` is a 128-byte header followed by 128-byte slots; slot `i` starts at
//! byte `128 + 128 * i`. Integers are big-endian. Both sizes divide 512, so no slot or header
//! straddles a disk sector or a page.
//!
//! Header:
//!
//! | offset | length | field                                                               |
//! |-------:|-------:|---------------------------------------------------------------------|
//! |      0 |      8 | magic `CSTDKEYS`                                                    |
//! |      8 |      2 | store format version, `1`                                           |
//! |     10 |      2 | slot length, `128`                                                  |
//! |     12 |      1 | tenant secret wrap version, `1`                                     |
//! |     13 |      3 | zero                                                                |
//! |     16 |      8 | id of the root key whose wrapping key wraps the tenant secret       |
//! |     24 |     12 | nonce                                                               |
//! |     36 |     48 | wrapped tenant secret: AES-256-GCM ciphertext (32) ‖ tag (16)       |
//! |     84 |      8 | id of the root key whose wrapping key the counter counts            |
//! |     92 |      8 | wrap counter: encryptions done by that wrapping key (u64)           |
//! |    100 |     28 | zero (reserved)                                                     |
//!
//! Slot:
//!
//! | offset | length | field                                                               |
//! |-------:|-------:|---------------------------------------------------------------------|
//! |      0 |      1 | state: `0` free, `1` live                                           |
//! |      1 |      1 | slot format version, `1`                                            |
//! |      2 |     16 | subject id (a random UUID, not personal data)                       |
//! |     18 |      8 | id of the root key whose wrapping key wraps the data key            |
//! |     26 |     12 | nonce                                                               |
//! |     38 |     48 | wrapped data key: AES-256-GCM ciphertext (32) ‖ tag (16)            |
//! |     86 |     42 | zero                                                                |
//!
//! A free slot is 128 zero bytes. Associated data of the wraps:
//! tenant secret `lp("custodia-tenant-secret") ‖ lp(tenant) ‖ lp(root key id) ‖ lp([1])`,
//! data key `lp("custodia-dek") ‖ lp(tenant) ‖ lp(subject id) ‖ lp(root key id) ‖ lp([1])`.
//!
//! # Behaviour
//!
//! - The file is created whole (written to a temporary name, synced, then hard-linked into place),
//!   so a crash never leaves a half-written header under the real name.
//! - An exclusive `flock` on the open file keeps a second process (or a second `Vault`) out.
//! - Opening scans all slots into a map subject → slot. A trailing partial slot (a crash during an
//!   append, never acknowledged) is cut off, and a free slot with stray bytes (a crash during an
//!   erasure) is zeroed again.
//! - A new key takes the lowest free slot or is appended; the header's wrap counter is updated in
//!   the same step and both are synced before the key is handed out.
//! - Destroying a key overwrites its whole slot with zeros in place and syncs before returning.
//!   On copy-on-write file systems and flash storage that is best effort; root-key rotation is the
//!   backstop (design.md, "Keys live apart from data").

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use custodia_core::{LengthPrefixed, SubjectId, TenantId};
use zeroize::Zeroize;

use crate::durable::{sync_dir, write_new_file};
use crate::primitives::{
    KEY_LEN, NONCE_LEN, SecretKey, TAG_LEN, aes_gcm_open_in_place, aes_gcm_seal_in_place,
    fill_random, hkdf_sha256, random_array,
};
use crate::{DataKey, Keyring, RootKeyId, VaultError};

/// Magic bytes that open every key store file.
pub(crate) const MAGIC: [u8; 8] = *b"CSTDKEYS";
/// The key store format version this code reads and writes.
pub(crate) const STORE_VERSION: u16 = 1;
/// Length of the header.
pub(crate) const HEADER_LEN: usize = 128;
/// Length of every slot.
pub(crate) const SLOT_LEN: usize = 128;
/// The slot format version, also bound into the data-key wrap's associated data.
pub(crate) const SLOT_VERSION: u8 = 1;
/// The tenant-secret wrap version, also bound into its associated data.
pub(crate) const TENANT_SECRET_VERSION: u8 = 1;
/// Encryptions one wrapping key may do before it must be rotated: far below the 2^32 that
/// NIST SP 800-38D allows one key with random 96-bit nonces.
pub(crate) const WRAP_LIMIT: u64 = 1 << 31;

const SLOT_FREE: u8 = 0;
const SLOT_LIVE: u8 = 1;
const WRAPPED_LEN: usize = KEY_LEN + TAG_LEN;

const H_MAGIC: usize = 0;
const H_VERSION: usize = 8;
const H_SLOT_LEN: usize = 10;
const H_SECRET_VERSION: usize = 12;
const H_SECRET_ROOT_ID: usize = 16;
const H_SECRET_NONCE: usize = 24;
const H_SECRET_WRAPPED: usize = 36;
/// Offset of the counter's root key id; the counter follows it.
pub(crate) const H_COUNTER_ROOT_ID: usize = 84;
/// Offset of the wrap counter.
pub(crate) const H_COUNTER: usize = 92;
const H_END: usize = 100;

const S_STATE: usize = 0;
const S_VERSION: usize = 1;
const S_SUBJECT: usize = 2;
const S_ROOT_ID: usize = 18;
const S_NONCE: usize = 26;
/// Offset of the wrapped key in a slot.
pub(crate) const S_WRAPPED: usize = 38;
const S_END: usize = 86;

// The layout tables above, checked at compile time.
const _: () = {
    assert!(H_SECRET_NONCE == H_SECRET_ROOT_ID + 8);
    assert!(H_SECRET_WRAPPED == H_SECRET_NONCE + NONCE_LEN);
    assert!(H_COUNTER_ROOT_ID == H_SECRET_WRAPPED + WRAPPED_LEN);
    assert!(H_COUNTER == H_COUNTER_ROOT_ID + 8);
    assert!(H_END == H_COUNTER + 8 && H_END <= HEADER_LEN);
    assert!(S_ROOT_ID == S_SUBJECT + 16);
    assert!(S_NONCE == S_ROOT_ID + 8);
    assert!(S_WRAPPED == S_NONCE + NONCE_LEN);
    assert!(S_END == S_WRAPPED + WRAPPED_LEN && S_END <= SLOT_LEN);
    assert!(512 % HEADER_LEN == 0 && 512 % SLOT_LEN == 0);
};

/// Slots read per positioned read while scanning.
const SCAN_CHUNK_SLOTS: usize = 512;

/// Byte offset of slot `slot_idx`.
pub(crate) fn slot_offset(slot_idx: u64) -> u64 {
    HEADER_LEN as u64 + slot_idx * SLOT_LEN as u64
}

/// A key wrapped under a tenant's wrapping key.
struct Wrapped {
    root_id: RootKeyId,
    nonce: [u8; NONCE_LEN],
    sealed: [u8; WRAPPED_LEN],
}

/// The tenant's wrapping keys, one per root key in the keyring:
/// `HKDF-SHA256(root key, salt "custodia/v1", info lp("wrap") ‖ lp(tenant))`.
struct WrapKeys {
    current_id: RootKeyId,
    current: SecretKey,
    previous: Vec<(RootKeyId, SecretKey)>,
}

impl WrapKeys {
    fn derive(keyring: &Keyring, tenant: &TenantId) -> Result<WrapKeys, VaultError> {
        let info = LengthPrefixed::new()
            .part("wrap")
            .part(tenant.as_str())
            .into_bytes();
        let mut current = None;
        let mut previous = Vec::new();
        for root in keyring.keys() {
            let key = hkdf_sha256(root.as_bytes(), &info)?;
            if root.id() == keyring.current_id() {
                current = Some(key);
            } else {
                previous.push((root.id(), key));
            }
        }
        // `Keyring::keys` always yields the current key, so `current` is set; the error arm only
        // keeps this free of a panic.
        let current = current.ok_or(VaultError::Crypto)?;
        Ok(WrapKeys {
            current_id: keyring.current_id(),
            current,
            previous,
        })
    }

    fn get(&self, id: RootKeyId) -> Option<&SecretKey> {
        if id == self.current_id {
            return Some(&self.current);
        }
        self.previous
            .iter()
            .find(|(key_id, _)| *key_id == id)
            .map(|(_, key)| key)
    }

    /// Wraps `key` under the current wrapping key; `aad` must name `self.current_id`.
    fn wrap(&self, aad: &[u8], key: &[u8; KEY_LEN]) -> Result<Wrapped, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let mut sealed = [0u8; WRAPPED_LEN];
        sealed[..KEY_LEN].copy_from_slice(key);
        match aes_gcm_seal_in_place(self.current.as_bytes(), &nonce, aad, &mut sealed[..KEY_LEN]) {
            Ok(tag) => {
                sealed[KEY_LEN..].copy_from_slice(&tag);
                Ok(Wrapped {
                    root_id: self.current_id,
                    nonce,
                    sealed,
                })
            }
            Err(e) => {
                sealed.zeroize();
                Err(e)
            }
        }
    }

    /// Unwraps into `out`: `UnknownRootKey` if the keyring lacks the key, `Crypto` if the wrap
    /// does not open.
    fn unwrap(
        &self,
        wrapped: &Wrapped,
        aad: &[u8],
        out: &mut [u8; KEY_LEN],
    ) -> Result<(), VaultError> {
        let key = self
            .get(wrapped.root_id)
            .ok_or(VaultError::UnknownRootKey {
                id: wrapped.root_id,
            })?;
        out.copy_from_slice(&wrapped.sealed[..KEY_LEN]);
        let tag: [u8; TAG_LEN] = read_array(&wrapped.sealed, KEY_LEN);
        let opened = aes_gcm_open_in_place(key.as_bytes(), &wrapped.nonce, aad, out, &tag);
        if opened.is_err() {
            out.zeroize();
        }
        opened
    }
}

fn tenant_secret_aad(tenant: &TenantId, root_id: RootKeyId) -> Vec<u8> {
    LengthPrefixed::new()
        .part("custodia-tenant-secret")
        .part(tenant.as_str())
        .part(root_id.0)
        .part([TENANT_SECRET_VERSION])
        .into_bytes()
}

fn data_key_aad(tenant: &TenantId, subject: SubjectId, root_id: RootKeyId) -> Vec<u8> {
    LengthPrefixed::new()
        .part("custodia-dek")
        .part(tenant.as_str())
        .part(subject.to_bytes())
        .part(root_id.0)
        .part([SLOT_VERSION])
        .into_bytes()
}

/// `N` bytes of `raw` from `offset`. Every caller passes an offset from the layout constants,
/// which the compile-time checks above keep inside the header or slot.
fn read_array<const N: usize>(raw: &[u8], offset: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&raw[offset..offset + N]);
    out
}

struct Header {
    secret: Wrapped,
    counter_root_id: RootKeyId,
    counter: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut raw = [0u8; HEADER_LEN];
        raw[H_MAGIC..H_MAGIC + 8].copy_from_slice(&MAGIC);
        raw[H_VERSION..H_VERSION + 2].copy_from_slice(&STORE_VERSION.to_be_bytes());
        raw[H_SLOT_LEN..H_SLOT_LEN + 2].copy_from_slice(&(SLOT_LEN as u16).to_be_bytes());
        raw[H_SECRET_VERSION] = TENANT_SECRET_VERSION;
        raw[H_SECRET_ROOT_ID..H_SECRET_ROOT_ID + 8].copy_from_slice(&self.secret.root_id.0);
        raw[H_SECRET_NONCE..H_SECRET_NONCE + NONCE_LEN].copy_from_slice(&self.secret.nonce);
        raw[H_SECRET_WRAPPED..H_SECRET_WRAPPED + WRAPPED_LEN].copy_from_slice(&self.secret.sealed);
        raw[H_COUNTER_ROOT_ID..H_END]
            .copy_from_slice(&encode_counter(self.counter_root_id, self.counter));
        raw
    }

    fn decode(raw: &[u8; HEADER_LEN]) -> Result<Header, &'static str> {
        if raw[H_MAGIC..H_MAGIC + 8] != MAGIC {
            return Err("not a key store file (bad magic)");
        }
        if u16::from_be_bytes(read_array(raw, H_VERSION)) != STORE_VERSION {
            return Err("unsupported key store version");
        }
        if usize::from(u16::from_be_bytes(read_array(raw, H_SLOT_LEN))) != SLOT_LEN {
            return Err("unexpected slot length");
        }
        if raw[H_SECRET_VERSION] != TENANT_SECRET_VERSION {
            return Err("unsupported tenant secret version");
        }
        Ok(Header {
            secret: Wrapped {
                root_id: RootKeyId(read_array(raw, H_SECRET_ROOT_ID)),
                nonce: read_array(raw, H_SECRET_NONCE),
                sealed: read_array(raw, H_SECRET_WRAPPED),
            },
            counter_root_id: RootKeyId(read_array(raw, H_COUNTER_ROOT_ID)),
            counter: u64::from_be_bytes(read_array(raw, H_COUNTER)),
        })
    }
}

/// The 16 header bytes from [`H_COUNTER_ROOT_ID`]: root key id, then counter.
fn encode_counter(root_id: RootKeyId, counter: u64) -> [u8; 16] {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&root_id.0);
    raw[8..].copy_from_slice(&counter.to_be_bytes());
    raw
}

struct LiveSlot {
    subject: SubjectId,
    wrapped: Wrapped,
}

enum Slot {
    /// State free; `clean` is false if bytes other than zero remain (an interrupted erasure).
    Free {
        clean: bool,
    },
    Live(LiveSlot),
}

impl LiveSlot {
    fn encode(&self) -> [u8; SLOT_LEN] {
        let mut raw = [0u8; SLOT_LEN];
        raw[S_STATE] = SLOT_LIVE;
        raw[S_VERSION] = SLOT_VERSION;
        raw[S_SUBJECT..S_SUBJECT + 16].copy_from_slice(&self.subject.to_bytes());
        raw[S_ROOT_ID..S_ROOT_ID + 8].copy_from_slice(&self.wrapped.root_id.0);
        raw[S_NONCE..S_NONCE + NONCE_LEN].copy_from_slice(&self.wrapped.nonce);
        raw[S_WRAPPED..S_WRAPPED + WRAPPED_LEN].copy_from_slice(&self.wrapped.sealed);
        raw
    }
}

impl Slot {
    fn decode(raw: &[u8]) -> Result<Slot, &'static str> {
        match raw[S_STATE] {
            SLOT_FREE => Ok(Slot::Free {
                clean: raw.iter().all(|&b| b == 0),
            }),
            SLOT_LIVE if raw[S_VERSION] == SLOT_VERSION => Ok(Slot::Live(LiveSlot {
                subject: SubjectId::from_bytes(read_array(raw, S_SUBJECT)),
                wrapped: Wrapped {
                    root_id: RootKeyId(read_array(raw, S_ROOT_ID)),
                    nonce: read_array(raw, S_NONCE),
                    sealed: read_array(raw, S_WRAPPED),
                },
            })),
            SLOT_LIVE => Err("unsupported slot version"),
            _ => Err("unknown slot state"),
        }
    }
}

/// What the open key store holds, mirrored in memory. Each field changes only after the file
/// write it mirrors succeeded.
struct State {
    /// Live subjects and their slots.
    slots: HashMap<SubjectId, u64>,
    /// Free slots below `n_slots`.
    free: BTreeSet<u64>,
    /// Slots in the file.
    n_slots: u64,
    /// The root key whose wrapping key `counter` counts.
    counter_root_id: RootKeyId,
    /// Encryptions done by that wrapping key.
    counter: u64,
}

/// One tenant's open, locked key store file.
pub(crate) struct KeyStore {
    tenant: TenantId,
    path: PathBuf,
    /// Holds the exclusive lock for as long as the store is open.
    file: File,
    wrap_keys: WrapKeys,
    state: Mutex<State>,
}

impl KeyStore {
    /// Opens (creating if missing) and locks `<keys_dir>/<tenant>.keys`, and unwraps the tenant
    /// secret, which is returned for the caller to derive the tenant's sub-keys from.
    pub(crate) fn open(
        keys_dir: &Path,
        tenant: &TenantId,
        keyring: &Keyring,
    ) -> Result<(KeyStore, SecretKey), VaultError> {
        let path = keys_dir.join(format!("{}.keys", tenant.as_str()));
        let wrap_keys = WrapKeys::derive(keyring, tenant)?;
        let file = open_or_create(keys_dir, &path, tenant, &wrap_keys)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(VaultError::KeyStoreLocked { path }),
            Err(TryLockError::Error(e)) => return Err(VaultError::io(&path, e)),
        }
        let corrupt = |detail| VaultError::KeyStoreCorrupt {
            path: path.clone(),
            detail,
        };

        let file_len = file.metadata().map_err(|e| VaultError::io(&path, e))?.len();
        if file_len < HEADER_LEN as u64 {
            return Err(corrupt("the file is shorter than its header"));
        }
        let mut raw_header = [0u8; HEADER_LEN];
        file.read_exact_at(&mut raw_header, 0)
            .map_err(|e| VaultError::io(&path, e))?;
        let header = Header::decode(&raw_header).map_err(corrupt)?;

        let mut secret = SecretKey::zeroed();
        let aad = tenant_secret_aad(tenant, header.secret.root_id);
        match wrap_keys.unwrap(&header.secret, &aad, secret.as_bytes_mut()) {
            Ok(()) => {}
            Err(VaultError::UnknownRootKey { id }) => {
                return Err(VaultError::WrongRootKey { path, id });
            }
            Err(VaultError::Crypto) => {
                // The id matched, so the key is right and the header is not: damaged, or the
                // file of another tenant under this name.
                return Err(corrupt("the tenant secret does not unwrap"));
            }
            Err(e) => return Err(e),
        }

        let state = scan_slots(&file, &path, file_len, &header)?;
        let store = KeyStore {
            tenant: tenant.clone(),
            path,
            file,
            wrap_keys,
            state: Mutex::new(state),
        };
        Ok((store, secret))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, source: io::Error) -> VaultError {
        VaultError::io(&self.path, source)
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // `State` is changed only after the file write it mirrors succeeded, by map and set
        // updates that do not panic, so a lock poisoned by a panic elsewhere still guards a
        // consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Generates, wraps, stores and syncs a data key for `subject`.
    pub(crate) fn create(&self, subject: SubjectId) -> Result<DataKey, VaultError> {
        let data_key = DataKey::generate()?;
        let root_id = self.wrap_keys.current_id;
        let slot_idx = {
            let mut state = self.lock_state();
            if state.slots.contains_key(&subject) {
                return Err(VaultError::DataKeyExists);
            }
            let used = if state.counter_root_id == root_id {
                state.counter
            } else {
                0
            };
            if used >= WRAP_LIMIT {
                return Err(VaultError::WrapLimit);
            }
            let aad = data_key_aad(&self.tenant, subject, root_id);
            let wrapped = self.wrap_keys.wrap(&aad, data_key.as_bytes())?;

            // The counter goes to the file before the slot, so a crash in between over-counts
            // (harmless) rather than under-counts.
            self.file
                .write_all_at(&encode_counter(root_id, used + 1), H_COUNTER_ROOT_ID as u64)
                .map_err(|e| self.io_error(e))?;
            state.counter_root_id = root_id;
            state.counter = used + 1;

            let slot_idx = state.free.first().copied().unwrap_or(state.n_slots);
            let slot = LiveSlot { subject, wrapped };
            self.file
                .write_all_at(&slot.encode(), slot_offset(slot_idx))
                .map_err(|e| self.io_error(e))?;
            state.free.remove(&slot_idx);
            if slot_idx == state.n_slots {
                state.n_slots += 1;
            }
            state.slots.insert(subject, slot_idx);
            slot_idx
        };

        // Synced outside the lock so that concurrent creations share the file system's group
        // commit instead of queueing behind one another.
        if let Err(e) = self.file.sync_data() {
            let mut state = self.lock_state();
            // Undo, so the caller can retry: a key that may not be durable must not be used.
            if state.slots.get(&subject) == Some(&slot_idx)
                && self
                    .file
                    .write_all_at(&[0u8; SLOT_LEN], slot_offset(slot_idx))
                    .is_ok()
            {
                state.slots.remove(&subject);
                state.free.insert(slot_idx);
            }
            return Err(self.io_error(e));
        }
        Ok(data_key)
    }

    /// Generates, wraps and stores a data key for each of `subjects`, then syncs the file once:
    /// a group committer's keys for every subject its batch may create. All or none: on a
    /// failure no key of the call is left usable.
    pub(crate) fn create_many(&self, subjects: &[SubjectId]) -> Result<(), VaultError> {
        if subjects.is_empty() {
            return Ok(());
        }
        let root_id = self.wrap_keys.current_id;
        let written: Vec<u64> = {
            let mut state = self.lock_state();
            let mut unique = BTreeSet::new();
            if subjects
                .iter()
                .any(|s| state.slots.contains_key(s) || !unique.insert(*s))
            {
                return Err(VaultError::DataKeyExists);
            }
            let used = if state.counter_root_id == root_id {
                state.counter
            } else {
                0
            };
            let n = subjects.len() as u64;
            if used.saturating_add(n) > WRAP_LIMIT {
                return Err(VaultError::WrapLimit);
            }
            // Keys generated and wrapped before anything is written, so that a failure here
            // leaves the file as it was.
            let mut slots = Vec::with_capacity(subjects.len());
            for &subject in subjects {
                let data_key = DataKey::generate()?;
                let aad = data_key_aad(&self.tenant, subject, root_id);
                let wrapped = self.wrap_keys.wrap(&aad, data_key.as_bytes())?;
                slots.push(LiveSlot { subject, wrapped });
            }
            // The counter goes to the file before the slots, as in `create`.
            self.file
                .write_all_at(&encode_counter(root_id, used + n), H_COUNTER_ROOT_ID as u64)
                .map_err(|e| self.io_error(e))?;
            state.counter_root_id = root_id;
            state.counter = used + n;
            let mut written = Vec::with_capacity(subjects.len());
            for slot in slots {
                let subject = slot.subject;
                let slot_idx = state.free.first().copied().unwrap_or(state.n_slots);
                if let Err(e) = self
                    .file
                    .write_all_at(&slot.encode(), slot_offset(slot_idx))
                {
                    self.undo_slots(&mut state, subjects, &written);
                    return Err(self.io_error(e));
                }
                state.free.remove(&slot_idx);
                if slot_idx == state.n_slots {
                    state.n_slots += 1;
                }
                state.slots.insert(subject, slot_idx);
                written.push(slot_idx);
            }
            written
        };
        if let Err(e) = self.file.sync_data() {
            let mut state = self.lock_state();
            self.undo_slots(&mut state, subjects, &written);
            return Err(self.io_error(e));
        }
        Ok(())
    }

    /// Takes back the slots `create_many` wrote for the first `written.len()` of `subjects`: a
    /// key that may not be durable must not be used.
    fn undo_slots(&self, state: &mut State, subjects: &[SubjectId], written: &[u64]) {
        for (subject, &slot_idx) in subjects.iter().zip(written) {
            if state.slots.get(subject) == Some(&slot_idx)
                && self
                    .file
                    .write_all_at(&[0u8; SLOT_LEN], slot_offset(slot_idx))
                    .is_ok()
            {
                state.slots.remove(subject);
                state.free.insert(slot_idx);
            }
        }
    }

    /// Reads and unwraps the data key of `subject`.
    pub(crate) fn get(&self, subject: SubjectId) -> Result<DataKey, VaultError> {
        let mut raw = [0u8; SLOT_LEN];
        {
            // The read happens under the lock so it never sees a slot half rewritten by a
            // concurrent destroy or create.
            let state = self.lock_state();
            let slot_idx = *state.slots.get(&subject).ok_or(VaultError::KeyNotFound)?;
            self.file
                .read_exact_at(&mut raw, slot_offset(slot_idx))
                .map_err(|e| self.io_error(e))?;
        }
        let corrupt = |detail| VaultError::KeyStoreCorrupt {
            path: self.path.clone(),
            detail,
        };
        let slot = match Slot::decode(&raw).map_err(corrupt)? {
            Slot::Live(slot) if slot.subject == subject => slot,
            _ => {
                return Err(corrupt(
                    "a slot does not hold the subject it was indexed under",
                ));
            }
        };
        let mut data_key = DataKey::zeroed();
        let aad = data_key_aad(&self.tenant, subject, slot.wrapped.root_id);
        self.wrap_keys
            .unwrap(&slot.wrapped, &aad, data_key.as_bytes_mut())?;
        Ok(data_key)
    }

    /// Overwrites the slot of `subject` with zeros and syncs; `Ok(false)` if it had no key.
    pub(crate) fn destroy(&self, subject: SubjectId) -> Result<bool, VaultError> {
        // The lock is held through the sync: an erasure is rare, and the subject must stay
        // listed until its zeros are durable, so that a failed erasure can be retried.
        let mut state = self.lock_state();
        let Some(&slot_idx) = state.slots.get(&subject) else {
            return Ok(false);
        };
        self.file
            .write_all_at(&[0u8; SLOT_LEN], slot_offset(slot_idx))
            .and_then(|()| self.file.sync_data())
            .map_err(|e| self.io_error(e))?;
        state.slots.remove(&subject);
        state.free.insert(slot_idx);
        Ok(true)
    }

    /// Root-key rotation: re-wraps the tenant secret and every live data key that is not yet
    /// under the current root key's wrapping key, each in place, then syncs. Returns how many
    /// wraps were redone. Idempotent, so an interrupted rotation is finished by running it again;
    /// once it returned, no slot or header needs any key but the current root key.
    pub(crate) fn rotate(&self) -> Result<u64, VaultError> {
        let mut state = self.lock_state();
        let current = self.wrap_keys.current_id;
        let corrupt = |detail| VaultError::KeyStoreCorrupt {
            path: self.path.clone(),
            detail,
        };
        let mut used = if state.counter_root_id == current {
            state.counter
        } else {
            0
        };
        let mut rewrapped = 0u64;

        let mut raw_header = [0u8; HEADER_LEN];
        self.file
            .read_exact_at(&mut raw_header, 0)
            .map_err(|e| self.io_error(e))?;
        let mut header = Header::decode(&raw_header).map_err(corrupt)?;
        if header.secret.root_id != current {
            let mut secret = SecretKey::zeroed();
            let aad = tenant_secret_aad(&self.tenant, header.secret.root_id);
            self.wrap_keys
                .unwrap(&header.secret, &aad, secret.as_bytes_mut())?;
            header.secret = self
                .wrap_keys
                .wrap(&tenant_secret_aad(&self.tenant, current), secret.as_bytes())?;
            used += 1;
            rewrapped += 1;
        }

        let mut slots: Vec<(SubjectId, u64)> = state.slots.iter().map(|(s, i)| (*s, *i)).collect();
        slots.sort_by_key(|(_, slot_idx)| *slot_idx);
        for (subject, slot_idx) in slots {
            let mut raw = [0u8; SLOT_LEN];
            self.file
                .read_exact_at(&mut raw, slot_offset(slot_idx))
                .map_err(|e| self.io_error(e))?;
            let slot = match Slot::decode(&raw).map_err(corrupt)? {
                Slot::Live(slot) if slot.subject == subject => slot,
                _ => {
                    return Err(corrupt(
                        "a slot does not hold the subject it was indexed under",
                    ));
                }
            };
            if slot.wrapped.root_id == current {
                continue;
            }
            if used >= WRAP_LIMIT {
                return Err(VaultError::WrapLimit);
            }
            let mut data_key = DataKey::zeroed();
            let aad = data_key_aad(&self.tenant, subject, slot.wrapped.root_id);
            self.wrap_keys
                .unwrap(&slot.wrapped, &aad, data_key.as_bytes_mut())?;
            let wrapped = self.wrap_keys.wrap(
                &data_key_aad(&self.tenant, subject, current),
                data_key.as_bytes(),
            )?;
            let new_slot = LiveSlot { subject, wrapped };
            self.file
                .write_all_at(&new_slot.encode(), slot_offset(slot_idx))
                .map_err(|e| self.io_error(e))?;
            used += 1;
            rewrapped += 1;
        }

        header.counter_root_id = current;
        header.counter = used;
        self.file
            .write_all_at(&header.encode(), 0)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| self.io_error(e))?;
        state.counter_root_id = current;
        state.counter = used;
        Ok(rewrapped)
    }

    /// Live data keys.
    pub(crate) fn len(&self) -> usize {
        self.lock_state().slots.len()
    }

    /// The tenant's wrapping keys (for tests that look for leaks).
    #[cfg(test)]
    pub(crate) fn wrap_keys_for_tests(&self) -> Vec<[u8; KEY_LEN]> {
        let previous = self
            .wrap_keys
            .previous
            .iter()
            .map(|(_, key)| *key.as_bytes());
        std::iter::once(*self.wrap_keys.current.as_bytes())
            .chain(previous)
            .collect()
    }

    /// The slot holding `subject`'s key (for tests that inspect the file).
    #[cfg(test)]
    pub(crate) fn slot_of(&self, subject: SubjectId) -> Option<u64> {
        self.lock_state().slots.get(&subject).copied()
    }
}

/// Opens the store file read-write, first creating it whole if it does not exist.
fn open_or_create(
    keys_dir: &Path,
    path: &Path,
    tenant: &TenantId,
    wrap_keys: &WrapKeys,
) -> Result<File, VaultError> {
    // Two rounds suffice: the file exists after `create_store_file`, whether this process or a
    // concurrent one made it; a third is only reached if someone deletes it meanwhile.
    for _ in 0..3 {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => return Ok(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_store_file(keys_dir, path, tenant, wrap_keys)?;
            }
            Err(e) => return Err(VaultError::io(path, e)),
        }
    }
    Err(VaultError::io(
        path,
        io::Error::new(
            io::ErrorKind::NotFound,
            "key store file removed while being created",
        ),
    ))
}

/// Writes a header with a fresh tenant secret to a temporary file, syncs it and hard-links it to
/// `path`. If another process linked its own file first, that one wins and this one is dropped.
fn create_store_file(
    keys_dir: &Path,
    path: &Path,
    tenant: &TenantId,
    wrap_keys: &WrapKeys,
) -> Result<(), VaultError> {
    let secret = SecretKey::random()?;
    let root_id = wrap_keys.current_id;
    let wrapped = wrap_keys.wrap(&tenant_secret_aad(tenant, root_id), secret.as_bytes())?;
    // The tenant secret's wrap is the wrapping key's first encryption.
    let header = Header {
        secret: wrapped,
        counter_root_id: root_id,
        counter: 1,
    };

    let suffix: [u8; 8] = random_array()?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let tmp_path = keys_dir.join(format!(".{}.keys.{suffix}.tmp", tenant.as_str()));
    let created = write_new_file(&tmp_path, &header.encode())
        .map_err(|e| VaultError::io(&tmp_path, e))
        .and_then(|()| match fs::hard_link(&tmp_path, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(VaultError::io(path, e)),
        });
    let removed = fs::remove_file(&tmp_path);
    created?;
    removed.map_err(|e| VaultError::io(&tmp_path, e))?;
    sync_dir(keys_dir).map_err(|e| VaultError::io(keys_dir, e))
}

/// Reads every slot into the in-memory state, repairing what a crash may have left behind.
fn scan_slots(
    file: &File,
    path: &Path,
    file_len: u64,
    header: &Header,
) -> Result<State, VaultError> {
    let corrupt = |detail| VaultError::KeyStoreCorrupt {
        path: path.to_owned(),
        detail,
    };
    let body_len = file_len - HEADER_LEN as u64;
    let n_slots = body_len / SLOT_LEN as u64;
    let torn_tail = !body_len.is_multiple_of(SLOT_LEN as u64);

    let mut slots = HashMap::new();
    let mut free = BTreeSet::new();
    let mut to_scrub = Vec::new();
    let mut chunk = vec![0u8; SCAN_CHUNK_SLOTS * SLOT_LEN];
    let mut first_idx = 0u64;
    while first_idx < n_slots {
        // Bounded by SCAN_CHUNK_SLOTS, so the conversion cannot truncate.
        let n_in_chunk = (n_slots - first_idx).min(SCAN_CHUNK_SLOTS as u64) as usize;
        let raw = &mut chunk[..n_in_chunk * SLOT_LEN];
        file.read_exact_at(raw, slot_offset(first_idx))
            .map_err(|e| VaultError::io(path, e))?;
        for (slot_idx, raw_slot) in (first_idx..).zip(raw.chunks_exact(SLOT_LEN)) {
            match Slot::decode(raw_slot).map_err(corrupt)? {
                Slot::Free { clean } => {
                    free.insert(slot_idx);
                    if !clean {
                        to_scrub.push(slot_idx);
                    }
                }
                Slot::Live(slot) => {
                    if slots.insert(slot.subject, slot_idx).is_some() {
                        return Err(corrupt("a subject has two slots"));
                    }
                }
            }
        }
        first_idx += n_in_chunk as u64;
    }

    // Repairs, under the lock: finish interrupted erasures, drop a partial append.
    for &slot_idx in &to_scrub {
        file.write_all_at(&[0u8; SLOT_LEN], slot_offset(slot_idx))
            .map_err(|e| VaultError::io(path, e))?;
    }
    if torn_tail {
        file.set_len(slot_offset(n_slots))
            .map_err(|e| VaultError::io(path, e))?;
    }
    if torn_tail || !to_scrub.is_empty() {
        file.sync_data().map_err(|e| VaultError::io(path, e))?;
    }

    Ok(State {
        slots,
        free,
        n_slots,
        counter_root_id: header.counter_root_id,
        counter: header.counter,
    })
}
