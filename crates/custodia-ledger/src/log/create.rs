//! Creating a log directory atomically, and cleaning up after a creation that was interrupted.
//!
//! A new log is built in a temporary sibling directory, `.<name>.creating-<pid>-<n>`: the
//! `format` line, the four empty data files and (if the caller knows it) the `verifier-key`, each
//! synced, then the temporary directory itself is synced, renamed to `<name>` and the parent is
//! synced. So `<name>` either does not exist or is a complete, empty log — a full disk or a crash
//! during creation can no longer leave a directory of empty files that no later `open` accepts.
//!
//! At `open`, before looking at `<name>`:
//! - a leftover temporary directory of an interrupted creation is removed (unless its creator
//!   still holds the lock on its `entries` file: a creation in progress elsewhere);
//! - a `<name>` that is clearly an interrupted creation by an older version — only the log's own
//!   file names, the four data files empty, `format` missing or a torn prefix of its line,
//!   `verifier-key` missing or empty — holds no entry and no checkpoint, and is removed and
//!   created again;
//! - an existing log whose `verifier-key` is missing or empty gets the caller's key, written to a
//!   temporary file, synced and renamed into place.
//!
//! Anything else that does not look like a log is left alone for `open` to refuse as `Corrupt`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::layout::VERIFIER_KEY;
use super::{CHECKPOINTS, ENTRIES, FORMAT, FORMAT_LINE, HASHES, OFFSETS, sync_dir};
use crate::{LedgerError, VerifierKey};

/// The four data files, empty in a new log.
const DATA_FILES: [&str; 4] = [ENTRIES, OFFSETS, HASHES, CHECKPOINTS];

/// Distinguishes temporary directories of one process.
static NEXT_TEMPORARY: AtomicU64 = AtomicU64::new(0);

#[cfg(test)]
thread_local! {
    /// Test hook: the file whose write fails (as on a full disk) during creation.
    pub(super) static FAIL_WRITING: std::cell::Cell<Option<&'static str>> =
        const { std::cell::Cell::new(None) };
}

/// What is at a log's path.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// Nothing, or an empty directory: create the log.
    Nothing,
    /// An interrupted creation of an older version: remove it, then create the log.
    Interrupted,
    /// A log (or something `open` will refuse): leave it to `open`.
    Existing,
}

/// Makes sure `dir` holds a log — created atomically if it did not — with `verifier_key` in its
/// `verifier-key` file if one is given and the file is missing or empty. Removes leftovers of
/// interrupted creations first (module documentation).
pub(super) fn ensure_created(
    dir: &Path,
    verifier_key: Option<&VerifierKey>,
) -> Result<(), LedgerError> {
    let (parent, name) = parent_and_name(dir)?;
    create_parent(&parent)?;
    remove_leftover_temporaries(&parent, &name)?;
    match inspect(dir)? {
        Found::Existing => {}
        Found::Interrupted => {
            remove_interrupted(dir)?;
            sync_dir(&parent)?;
            create(dir, &parent, &name, verifier_key)?;
        }
        Found::Nothing => create(dir, &parent, &name, verifier_key)?,
    }
    if let Some(key) = verifier_key {
        ensure_verifier_key(dir, key)?;
    }
    Ok(())
}

fn parent_and_name(dir: &Path) -> Result<(PathBuf, String), LedgerError> {
    let name =
        dir.file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| LedgerError::InvalidRange {
                detail: format!("{} does not name a log directory", dir.display()),
            })?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_owned()))
}

/// Creates the parent (and its ancestors) if needed, syncing each new directory's entry.
fn create_parent(parent: &Path) -> Result<(), LedgerError> {
    if parent.is_dir() {
        return Ok(());
    }
    if let Some(grandparent) = parent.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_parent(grandparent)?;
    }
    match fs::create_dir(parent) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && parent.is_dir() => return Ok(()),
        Err(e) => return Err(LedgerError::io(parent, e)),
    }
    match parent.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(grandparent) => sync_dir(grandparent),
        None => sync_dir(Path::new(".")),
    }
}

fn temporary_prefix(name: &str) -> String {
    format!(".{name}.creating-")
}

/// Removes `.<name>.creating-*` directories whose creator no longer holds their lock.
fn remove_leftover_temporaries(parent: &Path, name: &str) -> Result<(), LedgerError> {
    let prefix = temporary_prefix(name);
    let listing = fs::read_dir(parent).map_err(|e| LedgerError::io(parent, e))?;
    let mut removed = false;
    for item in listing {
        let item = item.map_err(|e| LedgerError::io(parent, e))?;
        if !item
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix))
        {
            continue;
        }
        let path = item.path();
        // A creation in progress (in this process or another) holds the lock on its `entries`.
        if let Ok(entries) = File::open(path.join(ENTRIES))
            && let Err(fs::TryLockError::WouldBlock) = entries.try_lock()
        {
            continue;
        }
        fs::remove_dir_all(&path).map_err(|e| LedgerError::io(&path, e))?;
        removed = true;
    }
    if removed {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Classifies what is at `dir`.
fn inspect(dir: &Path) -> Result<Found, LedgerError> {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(e) => return Err(LedgerError::io(dir, e)),
    };
    let mut names = Vec::new();
    for item in listing {
        let item = item.map_err(|e| LedgerError::io(dir, e))?;
        match item.file_name().into_string() {
            Ok(name) => names.push(name),
            // Not a name this crate writes: not an interrupted creation.
            Err(_) => return Ok(Found::Existing),
        }
    }
    if names.is_empty() {
        return Ok(Found::Nothing);
    }
    let known = |n: &str| n == FORMAT || n == VERIFIER_KEY || DATA_FILES.contains(&n);
    if !names.iter().all(|n| known(n)) {
        return Ok(Found::Existing);
    }
    let len_of = |name: &str| -> Result<Option<u64>, LedgerError> {
        let path = dir.join(name);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            // A directory or link where a file belongs: not ours to remove.
            Ok(_) => Ok(Some(u64::MAX)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LedgerError::io(path, e)),
        }
    };
    for name in DATA_FILES {
        if len_of(name)?.is_some_and(|len| len > 0) {
            return Ok(Found::Existing);
        }
    }
    if len_of(VERIFIER_KEY)?.is_some_and(|len| len > 0) {
        return Ok(Found::Existing);
    }
    let format_torn = match len_of(FORMAT)? {
        None => true,
        Some(len) if len >= FORMAT_LINE.len() as u64 => false,
        Some(_) => {
            let path = dir.join(FORMAT);
            let bytes = fs::read(&path).map_err(|e| LedgerError::io(path, e))?;
            FORMAT_LINE.starts_with(&bytes)
        }
    };
    Ok(if format_torn {
        Found::Interrupted
    } else {
        Found::Existing
    })
}

/// Removes an interrupted creation, unless someone holds its lock.
fn remove_interrupted(dir: &Path) -> Result<(), LedgerError> {
    let entries_path = dir.join(ENTRIES);
    let _lock = match File::open(&entries_path) {
        Ok(entries) => match entries.try_lock() {
            Ok(()) => Some(entries),
            Err(fs::TryLockError::WouldBlock) => {
                return Err(LedgerError::Locked {
                    path: dir.to_owned(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(LedgerError::io(entries_path, e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(LedgerError::io(entries_path, e)),
    };
    fs::remove_dir_all(dir).map_err(|e| LedgerError::io(dir, e))
}

/// Builds the log in a temporary sibling and renames it to `dir`. On failure the temporary
/// directory is removed (best effort; the next `open` removes what is left).
fn create(
    dir: &Path,
    parent: &Path,
    name: &str,
    verifier_key: Option<&VerifierKey>,
) -> Result<(), LedgerError> {
    let temporary = parent.join(format!(
        "{}{}-{}",
        temporary_prefix(name),
        std::process::id(),
        NEXT_TEMPORARY.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir(&temporary).map_err(|e| LedgerError::io(&temporary, e))?;
    let built = build(&temporary, verifier_key).and_then(|lock| {
        match fs::rename(&temporary, dir) {
            Ok(()) => {}
            // Another opener created the log meanwhile: use theirs.
            Err(e) => {
                if inspect(dir)? != Found::Existing {
                    return Err(LedgerError::io(dir, e));
                }
                let _ = fs::remove_dir_all(&temporary);
            }
        }
        sync_dir(parent)?;
        drop(lock);
        Ok(())
    });
    if built.is_err() {
        let _ = fs::remove_dir_all(&temporary);
    }
    built
}

/// Writes a new, empty log into `temporary` and syncs it; returns the locked `entries` file, which
/// marks the creation as in progress until it is dropped.
fn build(temporary: &Path, verifier_key: Option<&VerifierKey>) -> Result<File, LedgerError> {
    let entries = write_new(&temporary.join(ENTRIES), b"")?;
    entries
        .try_lock()
        .map_err(|e| LedgerError::io(temporary.join(ENTRIES), io::Error::other(e.to_string())))?;
    for name in [OFFSETS, HASHES, CHECKPOINTS] {
        write_new(&temporary.join(name), b"")?;
    }
    if let Some(key) = verifier_key {
        write_new(&temporary.join(VERIFIER_KEY), format!("{key}\n").as_bytes())?;
    }
    write_new(&temporary.join(FORMAT), FORMAT_LINE)?;
    sync_dir(temporary)?;
    Ok(entries)
}

/// Creates `path` (mode 0600, must not exist) with `bytes`, synced.
fn write_new(path: &Path, bytes: &[u8]) -> Result<File, LedgerError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| LedgerError::io(path, e))?;
    #[cfg(test)]
    if FAIL_WRITING.get().is_some_and(|name| path.ends_with(name)) {
        return Err(LedgerError::io(
            path,
            io::Error::from(io::ErrorKind::StorageFull),
        ));
    }
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| LedgerError::io(path, e))?;
    Ok(file)
}

/// Writes `bytes` to `dir/name` through a synced temporary file renamed into place, so the file
/// is either absent, as before, or complete.
pub(super) fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), LedgerError> {
    let temporary = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let _ = fs::remove_file(&temporary);
    let written = write_new(&temporary, bytes)
        .and_then(|_| fs::rename(&temporary, &path).map_err(|e| LedgerError::io(&path, e)));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written?;
    sync_dir(dir)
}

/// Writes the verifier key into an existing log whose `verifier-key` is missing or empty (an
/// older version wrote it after creating the log, without a temporary file).
fn ensure_verifier_key(dir: &Path, key: &VerifierKey) -> Result<(), LedgerError> {
    let path = dir.join(VERIFIER_KEY);
    match fs::metadata(&path) {
        Ok(m) if m.len() > 0 => Ok(()),
        Ok(_) => replace_file(dir, VERIFIER_KEY, format!("{key}\n").as_bytes()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            replace_file(dir, VERIFIER_KEY, format!("{key}\n").as_bytes())
        }
        Err(e) => Err(LedgerError::io(path, e)),
    }
}
