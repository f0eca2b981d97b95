//! A file-backed, append-only Merkle log in one directory.
//!
//! # On-disk format (version 1)
//!
//! Plain append-only files; all integers big-endian.
//!
//! | file           | content                                                                                   |
//! |----------------|-------------------------------------------------------------------------------------------|
//! | `format`       | the line `custodia-merkle-log 1\n`, written when the directory is initialised              |
//! | `entries`      | one record per entry, in sequence order: `u32 len ‖ len bytes` (len ≤ [`MAX_ENTRY_LEN`])   |
//! | `offsets`      | one `u64` per entry: the byte position of its record in `entries` (entry 0 at 0; entry i+1 right after entry i) |
//! | `hashes`       | every complete-subtree hash, 32 bytes each, in the order they complete (below)            |
//! | `checkpoints`  | one record per signed checkpoint, oldest first: `u32 len ‖ len bytes of signed-note text` |
//! | `verifier-key` | the checkpoints' verifier key `<name>+<hex id>+<base64 key>\n`, written at the first checkpoint if absent |
//!
//! **`hashes`.** Node (level L, index i) is the root of the complete subtree over leaves
//! `[i·2^L, (i+1)·2^L)`; level 0 holds the leaf hashes `SHA-256(0x00 ‖ entry)`. Appending entry
//! `j` stores its leaf hash and then, bottom-up, the hash of every subtree that leaf completes
//! (one per trailing 1-bit of `j`), so the file grows by `1 + trailing_ones(j)` hashes per entry
//! and node (L, i) sits at hash position `count((i+1)·2^L − 1) + L`, where `count(n) = 2n −
//! popcount(n)` is the number of hashes stored for `n` entries (the dense order of Crosby &
//! Wallach and of Go's `sumdb/tlog`). A tree of `n` entries is covered by exactly `count(n)`
//! hashes, and any root or proof needs at most O(log n) of them, read by position.
//!
//! **The lock.** `open` takes an exclusive `flock` on `entries` for the life of the `Log`;
//! a second opener gets [`LedgerError::Locked`].
//!
//! # Durability
//!
//! An append writes, in this order, the new records at the end of `entries`, their positions at
//! the end of `offsets` and their hashes at the end of `hashes`, calling `sync_data` on each file
//! before writing the next; it returns (acknowledges) only after the last sync. A checkpoint is
//! appended to `checkpoints` and synced before it is returned. The `verifier-key` file is written
//! to a temporary file, synced and renamed into place. After an I/O error the `Log` refuses further writes
//! ([`LedgerError::Poisoned`]); reopening recovers.
//!
//! # Creation
//!
//! A new log directory is built next to its final place (`.<name>.creating-<pid>-<n>`, every
//! file and the directory synced), renamed into place and the parent synced: the directory either
//! does not exist or is a complete empty log, also when the disk fills up or the process dies
//! during creation. `open` removes leftover temporary directories, and recreates a directory that
//! is clearly an interrupted creation of an older version (the data files empty, `format` missing
//! or torn, no `verifier-key`) instead of refusing it as corrupt forever.
//!
//! # Recovery (at `open`)
//!
//! Because of that order, a crash can leave only unacknowledged tails: `offsets` never points
//! past synced records, and `hashes` never covers entries whose offsets are not synced. `open`
//! takes as the tree size the largest `n` that all files agree on —
//! `n ≤ len(offsets)/8`, `count(n) ≤ len(hashes)/32`, and the last entry's record complete in
//! `entries` and starting where the previous one ends — and cuts every file back to exactly `n`
//! entries:
//!
//! | torn state after a crash during...      | what `open` does                                          |
//! |-----------------------------------------|-----------------------------------------------------------|
//! | writing `entries` (partial record)      | cuts the tail of `entries` past the last entry in `offsets` |
//! | writing `offsets` (partial `u64`)       | cuts `offsets` to whole `u64`s and to the entries `hashes` covers; cuts `entries` to match |
//! | writing `hashes` (partial group)        | cuts `hashes` to `count(n)` for the entries fully hashed, and the other files to those entries |
//! | writing `checkpoints` (partial record)  | cuts the incomplete record                                |
//!
//! The same rule also copes with an `entries` file cut short from outside (the entries whose
//! records are gone are dropped from all files). What `open` never does is cut below the latest
//! stored checkpoint: a log shorter than a checkpoint it signed was truncated or rolled back, and
//! `open` fails with [`LedgerError::BehindCheckpoint`] without touching anything. The bytes cut,
//! if any, are reported by [`Log::recovery`].
//!
//! Recovery assumes the file system does not show unwritten (zero-filled) extensions after a
//! crash, which holds for ext4 (`data=ordered`), XFS and btrfs; [`crate::verify_dir`] would name any
//! entry or node it got wrong.

mod create;
mod layout;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::merkle::{self, Frontier};
use crate::{Checkpoint, Hash, LedgerError, NoteSigner, VerifierKey};

use layout::VERIFIER_KEY;
pub use layout::latest_witness_copy;
#[cfg(test)]
pub(crate) use layout::stored_hash_index;
pub(crate) use layout::{
    CHECKPOINTS, ENTRIES, FORMAT, FORMAT_LINE, HASHES, HashFile, MAX_CHECKPOINT_LEN, OFFSETS,
    entries_covered, read_exact_at, read_u32_at, read_u64_at, stored_hash_count,
};

/// The largest entry a log accepts (1 MiB); consent entries are well under 100 KiB.
pub const MAX_ENTRY_LEN: usize = 1 << 20;

/// What `open` had to cut to bring the files back to the last state they all agree on (zero
/// everywhere after a clean shutdown).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Entries present in `offsets` or `hashes` but dropped (incomplete or never fully written).
    pub dropped_entries: u64,
    /// Bytes cut from the end of `entries`.
    pub entries_bytes: u64,
    /// Bytes cut from the end of `offsets`.
    pub offsets_bytes: u64,
    /// Bytes cut from the end of `hashes`.
    pub hashes_bytes: u64,
    /// Bytes cut from the end of `checkpoints`.
    pub checkpoints_bytes: u64,
}

impl Recovery {
    /// True if nothing was cut.
    pub fn is_clean(&self) -> bool {
        *self == Recovery::default()
    }
}

/// The open files of a log directory.
struct Files {
    entries: File,
    offsets: File,
    hashes: File,
    checkpoints: File,
}

/// What only the writer touches; guarded by `Log::writer`.
struct Writer {
    frontier: Frontier,
    entries_len: u64,
    checkpoints_len: u64,
    latest: Option<Checkpoint>,
    /// The `verifier-key` file's key, once read or written.
    verifier_key: Option<VerifierKey>,
    poisoned: bool,
}

/// Appends waiting for the current group commit to finish.
#[derive(Default)]
struct Queue {
    writing: bool,
    next_ticket: u64,
    pending: Vec<(u64, Vec<Vec<u8>>)>,
    done: HashMap<u64, Result<u64, LedgerError>>,
}

/// A file-backed, append-only Merkle log in one directory (see the module documentation for the
/// format). The consent ledger is one per tenant under `DATA/ledger/<tenant>/`, the access log
/// one per tenant under `DATA/audit/<tenant>/`.
///
/// `Send + Sync`; every method takes `&self`. Reads run in parallel with each other and with
/// appends (positioned reads of the immutable prefix); appends and checkpoints are serialized,
/// and appends that arrive while one is being written are committed together (group commit).
pub struct Log {
    dir: PathBuf,
    files: Files,
    /// Entries acknowledged so far; readers never look past it.
    tree_size: AtomicU64,
    /// `Writer::poisoned`, readable without waiting for a write in progress: callers ask before
    /// every append (the engine, to reopen a failed log), and the writer lock is held across a
    /// batch's syncs.
    poisoned: AtomicBool,
    writer: Mutex<Writer>,
    queue: Mutex<Queue>,
    queue_changed: Condvar,
    witness_dir: Mutex<Option<PathBuf>>,
    recovery: Recovery,
    /// Tests: how many more file writes of appends succeed; then each fails as on a full disk.
    #[cfg(test)]
    append_writes_left: AtomicU64,
}

/// Locks a mutex, going on after a panic elsewhere: every guarded state stays consistent
/// between statements that could panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LedgerError::io(dir, e))
}

fn open_rw(path: &Path) -> Result<File, LedgerError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| LedgerError::io(path, e))
}

fn file_len(file: &File, path: &Path) -> Result<u64, LedgerError> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| LedgerError::io(path, e))
}

fn cut(file: &File, path: &Path, len: u64) -> Result<(), LedgerError> {
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| LedgerError::io(path, e))
}

impl Log {
    /// Opens the log in `dir`, creating the directory and an empty log if needed. Takes the
    /// directory's lock ([`LedgerError::Locked`] if another `Log` holds it) and recovers from a
    /// crash during an append (module documentation, "Recovery"). Keeps in memory only the right
    /// edge of the tree (one hash per set bit of the size) and the latest checkpoint.
    ///
    /// A new log is created atomically, and leftovers of an interrupted creation are cleaned up
    /// first (module documentation, "Creation").
    pub fn open(dir: &Path) -> Result<Log, LedgerError> {
        Self::open_with(dir, None)
    }

    /// [`Log::open`], and a log created by this call (or one whose `verifier-key` file is
    /// missing or empty) gets `verifier_key` in its `verifier-key` file, written as part of the
    /// atomic creation.
    pub fn open_with_verifier_key(
        dir: &Path,
        verifier_key: &VerifierKey,
    ) -> Result<Log, LedgerError> {
        Self::open_with(dir, Some(verifier_key))
    }

    fn open_with(dir: &Path, verifier_key: Option<&VerifierKey>) -> Result<Log, LedgerError> {
        create::ensure_created(dir, verifier_key)?;
        let path = |name: &str| dir.join(name);

        let entries = open_rw(&path(ENTRIES))?;
        match entries.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(LedgerError::Locked {
                    path: dir.to_owned(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(LedgerError::io(path(ENTRIES), e)),
        }
        let files = Files {
            entries,
            offsets: open_rw(&path(OFFSETS))?,
            hashes: open_rw(&path(HASHES))?,
            checkpoints: open_rw(&path(CHECKPOINTS))?,
        };
        Self::check_format(dir)?;

        let entries_len = file_len(&files.entries, &path(ENTRIES))?;
        let offsets_len = file_len(&files.offsets, &path(OFFSETS))?;
        let hashes_len = file_len(&files.hashes, &path(HASHES))?;
        let checkpoints_len = file_len(&files.checkpoints, &path(CHECKPOINTS))?;

        // The tree size all files agree on.
        let by_offsets = offsets_len / 8;
        let by_hashes = entries_covered(hashes_len / 32);
        let mut size = by_offsets.min(by_hashes);
        let mut end = Self::record_end(dir, &files, size, entries_len)?;
        while end.is_none() && size > 0 {
            size -= 1;
            end = Self::record_end(dir, &files, size, entries_len)?;
        }
        let new_entries_len = end.unwrap_or(0);

        let (mut stored, new_checkpoints_len) =
            scan_checkpoints(&files.checkpoints, &path(CHECKPOINTS), checkpoints_len)?;
        let latest = stored.pop();
        if let Some(latest) = &latest
            && latest.tree_size > size
        {
            return Err(LedgerError::BehindCheckpoint {
                tree_size: size,
                checkpoint_size: latest.tree_size,
            });
        }

        let recovery = Recovery {
            dropped_entries: by_offsets.max(by_hashes) - size,
            entries_bytes: entries_len - new_entries_len,
            offsets_bytes: offsets_len - 8 * size,
            hashes_bytes: hashes_len - 32 * stored_hash_count(size),
            checkpoints_bytes: checkpoints_len - new_checkpoints_len,
        };
        if recovery.entries_bytes > 0 {
            cut(&files.entries, &path(ENTRIES), new_entries_len)?;
        }
        if recovery.offsets_bytes > 0 {
            cut(&files.offsets, &path(OFFSETS), 8 * size)?;
        }
        if recovery.hashes_bytes > 0 {
            cut(&files.hashes, &path(HASHES), 32 * stored_hash_count(size))?;
        }
        if recovery.checkpoints_bytes > 0 {
            cut(&files.checkpoints, &path(CHECKPOINTS), new_checkpoints_len)?;
        }

        let frontier = Frontier::load(
            &HashFile {
                file: &files.hashes,
                path: path(HASHES),
            },
            size,
        )?;
        Ok(Log {
            dir: dir.to_owned(),
            files,
            tree_size: AtomicU64::new(size),
            poisoned: AtomicBool::new(false),
            writer: Mutex::new(Writer {
                frontier,
                entries_len: new_entries_len,
                checkpoints_len: new_checkpoints_len,
                latest,
                verifier_key: None,
                poisoned: false,
            }),
            queue: Mutex::new(Queue::default()),
            queue_changed: Condvar::new(),
            witness_dir: Mutex::new(None),
            recovery,
            #[cfg(test)]
            append_writes_left: AtomicU64::new(u64::MAX),
        })
    }

    /// Checks the `format` file (which `create::ensure_created` wrote for a new log).
    fn check_format(dir: &Path) -> Result<(), LedgerError> {
        let format_path = dir.join(FORMAT);
        match fs::read(&format_path) {
            Ok(bytes) if bytes == FORMAT_LINE => Ok(()),
            Ok(_) => Err(LedgerError::Corrupt {
                path: format_path,
                detail: "not a custodia-merkle-log 1 directory".to_owned(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(LedgerError::Corrupt {
                path: format_path,
                detail: "missing, but the directory holds log files".to_owned(),
            }),
            Err(e) => Err(LedgerError::io(format_path, e)),
        }
    }

    /// Where the records of the first `size` entries end in `entries`, if entry `size − 1` is
    /// complete and starts where entry `size − 2` ends; `None` if it is torn. `Some(0)` for 0.
    fn record_end(
        dir: &Path,
        files: &Files,
        size: u64,
        entries_len: u64,
    ) -> Result<Option<u64>, LedgerError> {
        let offsets_path = dir.join(OFFSETS);
        let entries_path = dir.join(ENTRIES);
        // End of the record at `start`, if it fits in the file.
        let end_of = |start: u64| -> Result<Option<u64>, LedgerError> {
            if start.checked_add(4).is_none_or(|e| e > entries_len) {
                return Ok(None);
            }
            let len = read_u32_at(&files.entries, &entries_path, start)?;
            let end = start + 4 + u64::from(len);
            Ok((len as usize <= MAX_ENTRY_LEN && end <= entries_len).then_some(end))
        };
        if size == 0 {
            return Ok(Some(0));
        }
        let last = read_u64_at(&files.offsets, &offsets_path, 8 * (size - 1))?;
        let expected_start = if size == 1 {
            0
        } else {
            let previous = read_u64_at(&files.offsets, &offsets_path, 8 * (size - 2))?;
            match end_of(previous)? {
                Some(end) => end,
                None => return Ok(None),
            }
        };
        if last != expected_start {
            return Ok(None);
        }
        end_of(last)
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What `open` cut to recover from a crash (all zero after a clean shutdown).
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Whether an earlier write failed, so that this `Log` refuses writes until it is reopened
    /// ([`LedgerError::Poisoned`]).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// The number of acknowledged entries.
    pub fn tree_size(&self) -> u64 {
        self.tree_size.load(Ordering::Acquire)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The stored nodes, for the crate's cross-check tests.
    #[cfg(test)]
    pub(crate) fn hash_file_for_tests(&self) -> HashFile<'_> {
        self.hash_file()
    }

    fn hash_file(&self) -> HashFile<'_> {
        HashFile {
            file: &self.files.hashes,
            path: self.path(HASHES),
        }
    }

    /// Appends `entries` (opaque bytes, each at most [`MAX_ENTRY_LEN`]) in order, numbered from
    /// the current tree size, and returns the number of the first. Durable before it returns
    /// (module documentation, "Durability"); O(log n) hashing per entry. Concurrent callers are
    /// serialized, and those that arrive during a write are committed together in the next one.
    /// An empty `entries` writes nothing and returns the current tree size.
    pub fn append(&self, entries: &[Vec<u8>]) -> Result<u64, LedgerError> {
        if let Some(entry) = entries.iter().find(|e| e.len() > MAX_ENTRY_LEN) {
            return Err(LedgerError::EntryTooLarge {
                len: entry.len(),
                max: MAX_ENTRY_LEN,
            });
        }
        if entries.is_empty() {
            return Ok(self.tree_size());
        }
        let mut queue = lock(&self.queue);
        let mut ticket = None;
        loop {
            if let Some(result) = ticket.and_then(|t| queue.done.remove(&t)) {
                return result;
            }
            if !queue.writing {
                // Lead a group commit: this caller's entries (unless another leader already
                // queued them) and everything queued meanwhile.
                queue.writing = true;
                let queued = std::mem::take(&mut queue.pending);
                drop(queue);
                let mut batch: Vec<&[Vec<u8>]> = Vec::with_capacity(queued.len() + 1);
                if ticket.is_none() {
                    batch.push(entries);
                }
                batch.extend(queued.iter().map(|(_, e)| e.as_slice()));
                let mut results = self.write_batch(&batch).into_iter();
                let own = if ticket.is_none() {
                    results.next()
                } else {
                    None
                };
                queue = lock(&self.queue);
                queue.writing = false;
                for ((t, _), result) in queued.iter().zip(results) {
                    queue.done.insert(*t, result);
                }
                self.queue_changed.notify_all();
                if let Some(result) = own {
                    return result;
                }
            } else {
                if ticket.is_none() {
                    let t = queue.next_ticket;
                    queue.next_ticket += 1;
                    queue.pending.push((t, entries.to_vec()));
                    ticket = Some(t);
                }
                queue = self
                    .queue_changed
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        }
    }

    /// Writes one group commit; one result per request, in order.
    fn write_batch(&self, batch: &[&[Vec<u8>]]) -> Vec<Result<u64, LedgerError>> {
        let mut writer = lock(&self.writer);
        if writer.poisoned {
            return vec![Err(LedgerError::Poisoned); batch.len()];
        }
        let start_size = writer.frontier.size();
        let start_entries_len = writer.entries_len;
        let n_new: usize = batch.iter().map(|r| r.len()).sum();
        let mut records = Vec::new();
        let mut offsets = Vec::with_capacity(8 * n_new);
        let mut hashes = Vec::with_capacity(32 * 2 * n_new);
        let mut frontier = writer.frontier.clone();
        let mut position = start_entries_len;
        let mut firsts = Vec::with_capacity(batch.len());
        for request in batch {
            firsts.push(frontier.size());
            for entry in request.iter() {
                offsets.extend_from_slice(&position.to_be_bytes());
                // `append` refused entries over MAX_ENTRY_LEN, so the length fits in a u32.
                let len = entry.len() as u32;
                records.extend_from_slice(&len.to_be_bytes());
                records.extend_from_slice(entry);
                position += 4 + u64::from(len);
                frontier.push(merkle::leaf_hash(entry), |_, _, hash| {
                    hashes.extend_from_slice(hash)
                });
            }
        }
        let written = self
            .write_synced(&self.files.entries, ENTRIES, &records, start_entries_len)
            .and_then(|()| {
                self.write_synced(&self.files.offsets, OFFSETS, &offsets, 8 * start_size)
            })
            .and_then(|()| {
                self.write_synced(
                    &self.files.hashes,
                    HASHES,
                    &hashes,
                    32 * stored_hash_count(start_size),
                )
            });
        match written {
            Ok(()) => {
                let new_size = frontier.size();
                writer.frontier = frontier;
                writer.entries_len = position;
                self.tree_size.store(new_size, Ordering::Release);
                firsts.into_iter().map(Ok).collect()
            }
            Err(e) => {
                writer.poisoned = true;
                self.poisoned.store(true, Ordering::Release);
                vec![Err(e); batch.len()]
            }
        }
    }

    fn write_synced(
        &self,
        file: &File,
        name: &str,
        bytes: &[u8],
        offset: u64,
    ) -> Result<(), LedgerError> {
        #[cfg(test)]
        if self
            .append_writes_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return Err(LedgerError::io(
                self.path(name),
                std::io::Error::from(std::io::ErrorKind::StorageFull),
            ));
        }
        file.write_all_at(bytes, offset)
            .and_then(|()| file.sync_data())
            .map_err(|e| LedgerError::io(self.path(name), e))
    }

    fn check_seq(&self, seq: u64) -> Result<u64, LedgerError> {
        let tree_size = self.tree_size();
        if seq >= tree_size {
            return Err(LedgerError::NotFound {
                what: "entry",
                value: seq,
                tree_size,
            });
        }
        Ok(tree_size)
    }

    fn check_tree_size(&self, size: u64) -> Result<(), LedgerError> {
        let tree_size = self.tree_size();
        if size > tree_size {
            return Err(LedgerError::NotFound {
                what: "tree size",
                value: size,
                tree_size,
            });
        }
        Ok(())
    }

    fn offset_of(&self, seq: u64) -> Result<u64, LedgerError> {
        read_u64_at(&self.files.offsets, &self.path(OFFSETS), 8 * seq)
    }

    /// Reads the record at `offset` in `entries`.
    fn record_at(&self, offset: u64) -> Result<Vec<u8>, LedgerError> {
        let path = self.path(ENTRIES);
        let len = read_u32_at(&self.files.entries, &path, offset)? as usize;
        if len > MAX_ENTRY_LEN {
            return Err(LedgerError::Corrupt {
                path,
                detail: format!("record at byte {offset} claims {len} bytes"),
            });
        }
        let mut bytes = vec![0u8; len];
        read_exact_at(&self.files.entries, &path, &mut bytes, offset + 4)?;
        Ok(bytes)
    }

    /// Entry `seq`; [`LedgerError::NotFound`] past the end.
    pub fn entry(&self, seq: u64) -> Result<Vec<u8>, LedgerError> {
        self.check_seq(seq)?;
        self.record_at(self.offset_of(seq)?)
    }

    /// Up to `limit` entries from `from` on, with their numbers; empty when `from` is at or past
    /// the end.
    pub fn entries(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, LedgerError> {
        let tree_size = self.tree_size();
        if from >= tree_size || limit == 0 {
            return Ok(Vec::new());
        }
        let to = tree_size.min(from.saturating_add(limit as u64));
        let mut out = Vec::with_capacity((to - from) as usize);
        let mut position = self.offset_of(from)?;
        for seq in from..to {
            let bytes = self.record_at(position)?;
            position += 4 + bytes.len() as u64;
            out.push((seq, bytes));
        }
        Ok(out)
    }

    /// The stored leaf hash of entry `seq`.
    pub fn leaf_hash(&self, seq: u64) -> Result<Hash, LedgerError> {
        use crate::merkle::NodeSource;
        self.check_seq(seq)?;
        self.hash_file().node(0, seq)
    }

    /// The root of the tree of the first `tree_size` entries, from stored complete-subtree
    /// hashes: O(log n) reads, no rebuild.
    pub fn root(&self, tree_size: u64) -> Result<Hash, LedgerError> {
        self.check_tree_size(tree_size)?;
        merkle::root_from_nodes(&self.hash_file(), tree_size)
    }

    /// The inclusion proof of entry `seq` in the tree of the first `tree_size` entries
    /// (RFC 9162 §2.1.3), from stored hashes in O(log n) reads.
    pub fn inclusion_proof(&self, seq: u64, tree_size: u64) -> Result<Vec<Hash>, LedgerError> {
        self.check_tree_size(tree_size)?;
        if seq >= tree_size {
            return Err(LedgerError::InvalidRange {
                detail: format!("entry {seq} is not in a tree of size {tree_size}"),
            });
        }
        merkle::inclusion_from_nodes(&self.hash_file(), seq, tree_size)
    }

    /// The consistency proof from the tree of `size1` entries to the tree of `size2`
    /// (RFC 9162 §2.1.4), from stored hashes in O(log n) reads. Empty when `size1` is 0 or equal
    /// to `size2`.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, LedgerError> {
        self.check_tree_size(size2)?;
        if size1 > size2 {
            return Err(LedgerError::InvalidRange {
                detail: format!("tree size {size1} is larger than {size2}"),
            });
        }
        merkle::consistency_from_nodes(&self.hash_file(), size1, size2)
    }

    /// Signs a checkpoint of the current tree size and root with `signer`, stores it (synced)
    /// and copies it to the witness directory if one is set. If the size equals the latest
    /// stored checkpoint's, returns that one unchanged (and makes sure the witness has it).
    ///
    /// The first checkpoint writes the signer's verifier key to `verifier-key` if the file is
    /// absent; a signer whose key differs from that file's is refused
    /// ([`LedgerError::WrongSigner`]), so all checkpoints of a log verify with one key.
    pub fn checkpoint(&self, signer: &NoteSigner) -> Result<Checkpoint, LedgerError> {
        let mut writer = lock(&self.writer);
        if writer.poisoned {
            return Err(LedgerError::Poisoned);
        }
        self.check_verifier_key(&mut writer, signer)?;
        let size = writer.frontier.size();
        if let Some(latest) = &writer.latest
            && latest.tree_size == size
        {
            let latest = latest.clone();
            drop(writer);
            self.copy_to_witness(&latest)?;
            return Ok(latest);
        }
        let checkpoint = signer.sign(size, &writer.frontier.root());
        let text = checkpoint.to_text();
        let mut record = Vec::with_capacity(4 + text.len());
        // A checkpoint text is a few hundred bytes (one signature line), far below u32::MAX.
        record.extend_from_slice(&(text.len() as u32).to_be_bytes());
        record.extend_from_slice(text.as_bytes());
        let offset = writer.checkpoints_len;
        if let Err(e) = self.write_synced(&self.files.checkpoints, CHECKPOINTS, &record, offset) {
            writer.poisoned = true;
            self.poisoned.store(true, Ordering::Release);
            return Err(e);
        }
        writer.checkpoints_len += record.len() as u64;
        writer.latest = Some(checkpoint.clone());
        drop(writer);
        self.copy_to_witness(&checkpoint)?;
        Ok(checkpoint)
    }

    /// Compares the signer's key with the `verifier-key` file, writing the file if absent.
    fn check_verifier_key(
        &self,
        writer: &mut Writer,
        signer: &NoteSigner,
    ) -> Result<(), LedgerError> {
        let key = signer.verifier_key();
        if writer.verifier_key.is_none() {
            let path = self.path(VERIFIER_KEY);
            let stored = match fs::read_to_string(&path) {
                // An empty file (a write of an older version interrupted by a full disk) pins
                // no key: write it as if it were absent.
                Ok(text) if text.is_empty() => {
                    create::replace_file(&self.dir, VERIFIER_KEY, format!("{key}\n").as_bytes())?;
                    key.clone()
                }
                Ok(text) => text
                    .strip_suffix('\n')
                    .unwrap_or(&text)
                    .parse::<VerifierKey>()
                    .map_err(|e| LedgerError::Corrupt {
                        path: path.clone(),
                        detail: e.to_string(),
                    })?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    create::replace_file(&self.dir, VERIFIER_KEY, format!("{key}\n").as_bytes())?;
                    key.clone()
                }
                Err(e) => return Err(LedgerError::io(path, e)),
            };
            writer.verifier_key = Some(stored);
        }
        match &writer.verifier_key {
            Some(stored) if *stored != key => Err(LedgerError::WrongSigner {
                expected: stored.to_string(),
                found: key.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Writes `checkpoint` to the witness directory (if set) as
    /// `<origin-safe-name>-<tree size>.checkpoint`, atomically (temporary file, sync, rename,
    /// directory sync). An existing file with the same text is left alone; one with a different
    /// text is a [`LedgerError::WitnessConflict`].
    fn copy_to_witness(&self, checkpoint: &Checkpoint) -> Result<(), LedgerError> {
        let Some(dir) = lock(&self.witness_dir).clone() else {
            return Ok(());
        };
        fs::create_dir_all(&dir).map_err(|e| LedgerError::io(&dir, e))?;
        let name = layout::witness_file_name(&checkpoint.origin, checkpoint.tree_size);
        let path = dir.join(&name);
        let text = checkpoint.to_text();
        match fs::read(&path) {
            Ok(existing) if existing == text.as_bytes() => return Ok(()),
            Ok(_) => return Err(LedgerError::WitnessConflict { path }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(LedgerError::io(path, e)),
        }
        let temporary = dir.join(format!(".{name}.tmp"));
        let _ = fs::remove_file(&temporary);
        write_file_synced(&temporary, text.as_bytes())?;
        fs::rename(&temporary, &path).map_err(|e| LedgerError::io(&path, e))?;
        sync_dir(&dir)
    }

    /// The latest stored checkpoint.
    pub fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, LedgerError> {
        Ok(lock(&self.writer).latest.clone())
    }

    /// When the latest checkpoint was stored (the checkpoints file's last write); `None` before
    /// the first.
    pub fn latest_checkpoint_at(&self) -> Result<Option<std::time::SystemTime>, LedgerError> {
        if lock(&self.writer).latest.is_none() {
            return Ok(None);
        }
        let path = self.path(CHECKPOINTS);
        let modified = self
            .files
            .checkpoints
            .metadata()
            .and_then(|m| m.modified())
            .map_err(|e| LedgerError::io(&path, e))?;
        Ok(Some(modified))
    }

    /// Every stored checkpoint, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, LedgerError> {
        let len = lock(&self.writer).checkpoints_len;
        Ok(scan_checkpoints(&self.files.checkpoints, &self.path(CHECKPOINTS), len)?.0)
    }

    /// Sets (or clears) the witness directory: every later checkpoint is also written to
    /// `<dir>/<origin-safe-name>-<tree_size>.checkpoint`, where the safe name is the origin with
    /// every character outside `[A-Za-z0-9._-]` replaced by `_`.
    pub fn set_witness_dir(&self, dir: Option<PathBuf>) {
        *lock(&self.witness_dir) = dir;
    }
}

/// Creates `path` (mode 0600) with `bytes`, synced.
fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<(), LedgerError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| LedgerError::io(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| LedgerError::io(path, e))
}

/// The complete checkpoint records in the first `len` bytes of the checkpoints file, oldest
/// first, and where they end (a torn last record — a crash during `checkpoint` — is left out, for
/// `open` to cut). A complete record that is not a checkpoint is `Corrupt`.
pub(crate) fn scan_checkpoints(
    file: &File,
    path: &Path,
    len: u64,
) -> Result<(Vec<Checkpoint>, u64), LedgerError> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos + 4 <= len {
        let record_len = read_u32_at(file, path, pos)?;
        if record_len > MAX_CHECKPOINT_LEN {
            return Err(LedgerError::Corrupt {
                path: path.to_owned(),
                detail: format!("checkpoint record at byte {pos} claims {record_len} bytes"),
            });
        }
        if pos + 4 + u64::from(record_len) > len {
            break;
        }
        let mut text = vec![0u8; record_len as usize];
        read_exact_at(file, path, &mut text, pos + 4)?;
        let checkpoint = std::str::from_utf8(&text)
            .ok()
            .and_then(|t| Checkpoint::parse(t).ok())
            .ok_or_else(|| LedgerError::Corrupt {
                path: path.to_owned(),
                detail: format!("checkpoint record at byte {pos} is not a checkpoint"),
            })?;
        out.push(checkpoint);
        pos += 4 + u64::from(record_len);
    }
    Ok((out, pos))
}

#[cfg(test)]
mod tests;
