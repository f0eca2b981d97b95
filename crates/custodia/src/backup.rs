//! `custodia backup create | verify | restore`: offline backups of the data directory and,
//! apart, of the key store, each with a manifest (every file's size and SHA-256) that `verify`
//! checks and `restore` checks again while copying back.
//!
//! A backup is taken with the server stopped: `create` takes the lock a running server holds
//! (the store's, or every tenant key file's) for the whole copy, and refuses when it cannot.
//! An online backup (while the server runs) is not there yet.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Subcommand};
use custodia_engine::{Clock, SystemClock};
use custodia_vault::Sha256Stream;
use serde_json::{Value, json};

use crate::UsageError;
use crate::master_key::resolved;

/// The manifest's format; `verify` and `restore` refuse any other.
pub const FORMAT: &str = "custodia-backup/1";
/// The manifest's file name in a backup directory.
pub const MANIFEST: &str = "manifest.json";

/// Backups of the data directory and of the key store.
#[derive(Subcommand)]
pub enum BackupCommand {
    /// Back up the data directory (`--data-dir`) or, apart, the key store (`--keys-dir`) into
    /// a new directory `--out`, with the server stopped: `OUT/data/` or `OUT/keys/` and
    /// `OUT/manifest.json`. Exit 2 when the server (or another command) holds the directory.
    Create(CreateArgs),
    /// Recompute every file's SHA-256 against the manifest; list missing, changed and extra
    /// files. Exit 0 when everything matches, 1 otherwise.
    Verify(VerifyArgs),
    /// Verify a backup, then copy it into `--data-dir` or `--keys-dir` (which must not exist or
    /// be empty).
    Restore(RestoreArgs),
}

/// Options of `backup create`.
#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["data_dir", "keys_dir"])))]
pub struct CreateArgs {
    /// Back up this data directory (store, ledger, access log, search index).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Back up this key store (key files and tombstone lists), apart from the data.
    #[arg(long)]
    keys_dir: Option<PathBuf>,
    /// The new backup directory: must not exist or be empty, and must not be inside a data
    /// directory or a key store.
    #[arg(long)]
    out: PathBuf,
}

/// Options of `backup verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The backup directory (holding manifest.json).
    dir: PathBuf,
}

/// Options of `backup restore`.
#[derive(Args)]
#[command(group(ArgGroup::new("target").required(true).args(["data_dir", "keys_dir"])))]
pub struct RestoreArgs {
    /// The backup directory (holding manifest.json).
    dir: PathBuf,
    /// Restore a data-directory backup here (must not exist or be empty).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Restore a key-store backup here (must not exist or be empty).
    #[arg(long)]
    keys_dir: Option<PathBuf>,
}

/// What a backup holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Data,
    Keys,
}

impl Kind {
    /// The manifest's `kind` and the payload's directory in the backup.
    fn name(self) -> &'static str {
        match self {
            Kind::Data => "data",
            Kind::Keys => "keys",
        }
    }

    fn from_name(name: &str) -> Option<Kind> {
        match name {
            "data" => Some(Kind::Data),
            "keys" => Some(Kind::Keys),
            _ => None,
        }
    }

    fn option(self) -> &'static str {
        match self {
            Kind::Data => "--data-dir",
            Kind::Keys => "--keys-dir",
        }
    }
}

/// Runs a backup command.
pub fn run(cmd: BackupCommand) -> anyhow::Result<()> {
    match cmd {
        BackupCommand::Create(args) => match (args.data_dir, args.keys_dir) {
            (Some(dir), None) => create(Kind::Data, &dir, &args.out),
            (None, Some(dir)) => create(Kind::Keys, &dir, &args.out),
            // clap's group allows exactly one.
            _ => Err(UsageError("give --data-dir or --keys-dir".to_owned()).into()),
        },
        BackupCommand::Verify(args) => verify(&args.dir),
        BackupCommand::Restore(args) => match (args.data_dir, args.keys_dir) {
            (Some(dir), None) => restore(&args.dir, Kind::Data, &dir),
            (None, Some(dir)) => restore(&args.dir, Kind::Keys, &dir),
            _ => Err(UsageError("give --data-dir or --keys-dir".to_owned()).into()),
        },
    }
}

fn usage(message: String) -> anyhow::Error {
    UsageError(message).into()
}

/// One file of a backup.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileEntry {
    size: u64,
    sha256: [u8; 32],
}

fn create(kind: Kind, source: &Path, out: &Path) -> anyhow::Result<()> {
    if !source.is_dir() {
        return Err(usage(format!(
            "{} {}: no such directory",
            kind.option(),
            source.display()
        )));
    }
    let source_resolved = resolved(source);
    let out_resolved = resolved(out);
    if out_resolved.starts_with(&source_resolved) || source_resolved.starts_with(&out_resolved) {
        return Err(usage(format!(
            "--out {} must be outside {} {}",
            out.display(),
            kind.option(),
            source.display()
        )));
    }
    check_not_inside_custodia_dirs("--out", out)?;
    check_empty_or_missing("--out", out)?;

    // Held until the copy is done: no server or other command can open the directory meanwhile.
    let _locks = lock(kind, source)?;

    let files = walk(source)?;
    let payload = out.join(kind.name());
    create_private_dir(out)?;
    create_private_dir(&payload)?;
    let mut dirs = BTreeSet::from([out.to_path_buf(), payload.clone()]);
    let mut entries = BTreeMap::new();
    for (rel, path) in &files {
        let to = payload.join(rel);
        make_parents(&payload, &to, &mut dirs)?;
        let entry = copy_hashed(path, &to)?;
        entries.insert(rel.clone(), entry);
    }
    for dir in &dirs {
        sync_dir(dir)?;
    }

    let mut manifest = json!({
        "format": FORMAT,
        "kind": kind.name(),
        "created_at": SystemClock.now().to_string(),
        "custodia_version": env!("CARGO_PKG_VERSION"),
        "files": entries.iter().map(|(path, e)| json!({
            "path": path,
            "size": e.size,
            "sha256": hex::encode(e.sha256),
        })).collect::<Vec<_>>(),
    });
    match kind {
        Kind::Data => {
            manifest["ledgers"] = logs_summary(&payload, "ledger");
            manifest["access_logs"] = logs_summary(&payload, "audit");
            manifest["not_included"] = json!([
                "the key store (--keys-dir): back it up apart, with `custodia backup create --keys-dir`",
                "the root key",
            ]);
        }
        Kind::Keys => {
            manifest["tombstone_lists"] = entries
                .keys()
                .filter(|p| p.ends_with(".tombstones"))
                .cloned()
                .collect::<Vec<_>>()
                .into();
            manifest["not_included"] = json!([
                "the data directory (--data-dir): back it up apart, with `custodia backup create --data-dir`",
                "the root key",
            ]);
        }
    }
    let tmp = out.join(format!("{MANIFEST}.tmp"));
    let mut text = serde_json::to_string_pretty(&manifest)?;
    text.push('\n');
    crate::master_key::write_private(&tmp, text.as_bytes())?;
    std::fs::rename(&tmp, out.join(MANIFEST))
        .with_context(|| format!("cannot write {}", out.join(MANIFEST).display()))?;
    sync_dir(out)?;

    let bytes: u64 = entries.values().map(|e| e.size).sum();
    println!(
        "backup of {} {} written to {}: {}, {bytes} bytes",
        kind.option(),
        source.display(),
        out.display(),
        crate::ledger::counted(entries.len() as u64, "file", "files"),
    );
    if kind == Kind::Data {
        for (label, key) in [("ledger", "ledgers"), ("access log", "access_logs")] {
            if let Some(logs) = manifest[key].as_object() {
                for (tenant, summary) in logs {
                    match summary.get("error").and_then(Value::as_str) {
                        Some(error) => eprintln!("warning: {label} {tenant}: {error}"),
                        None => println!(
                            "{label} {tenant}: tree size {}, root {}",
                            summary["tree_size"], summary["root"]
                        ),
                    }
                }
            }
        }
    }
    Ok(())
}

/// Takes the locks a running server holds: the store's (`store/db`, sled's lock) or every
/// tenant key file's. Fails with exit 2 when one is taken.
fn lock(kind: Kind, source: &Path) -> anyhow::Result<Vec<File>> {
    let paths: Vec<PathBuf> = match kind {
        Kind::Data => {
            let db = source.join("store").join("db");
            if !db.is_file() {
                return Err(usage(format!(
                    "--data-dir {}: not a Custodia data directory (no store/db)",
                    source.display()
                )));
            }
            vec![db]
        }
        Kind::Keys => {
            let mut keys: Vec<PathBuf> = std::fs::read_dir(source)
                .with_context(|| format!("cannot read {}", source.display()))?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "keys"))
                .collect();
            keys.sort();
            if keys.is_empty() {
                return Err(usage(format!(
                    "--keys-dir {}: not a Custodia key store (no <tenant>.keys file)",
                    source.display()
                )));
            }
            keys
        }
    };
    let mut locks = Vec::with_capacity(paths.len());
    for path in paths {
        let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => locks.push(file),
            Err(TryLockError::WouldBlock) => {
                return Err(usage(format!(
                    "{} is in use by a running server or another custodia command ({} is \
                     locked): stop the server first (an online backup is not available yet; a \
                     file-system snapshot of the whole directory also works)",
                    source.display(),
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(
                    anyhow::Error::new(e).context(format!("cannot lock {}", path.display()))
                );
            }
        }
    }
    Ok(locks)
}

/// Tree size and root of each tenant's log under `<payload>/<log>/`, verified with the verifier
/// key stored beside it; a log that does not verify is recorded with its error (the backup is
/// still taken: it may be the copy that is needed).
fn logs_summary(payload: &Path, log: &str) -> Value {
    let root = payload.join(log);
    let mut out = serde_json::Map::new();
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Value::Object(out);
    };
    let mut tenants: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| Some((e.file_name().to_str()?.to_owned(), e.path())))
        .collect();
    tenants.sort();
    for (tenant, dir) in tenants {
        let summary = std::fs::read_to_string(dir.join("verifier-key"))
            .map_err(|e| format!("cannot read its verifier-key: {e}"))
            .and_then(|text| {
                text.trim()
                    .parse::<custodia_ledger::VerifierKey>()
                    .map_err(|e| format!("invalid verifier-key: {e}"))
            })
            .and_then(|key| custodia_ledger::verify_dir(&dir, &key).map_err(|e| e.to_string()));
        out.insert(
            tenant,
            match summary {
                Ok(report) => json!({
                    "tree_size": report.n_entries,
                    "root": hex::encode(report.root),
                    "checkpoints": report.n_checkpoints,
                }),
                Err(error) => json!({ "error": error }),
            },
        );
    }
    Value::Object(out)
}

/// Refuses a path inside a data directory (an ancestor holding `store/db`) or a key store (an
/// ancestor holding `<tenant>.keys` or `root-key-since`): a backup there would be copied along
/// with the next backup of that directory, and keys would travel with the data.
fn check_not_inside_custodia_dirs(option: &str, path: &Path) -> anyhow::Result<()> {
    let path = resolved(path);
    for dir in path.ancestors() {
        if dir.join("store").join("db").is_file() {
            return Err(usage(format!(
                "{option} {} is inside the data directory {}: keep backups outside it",
                path.display(),
                dir.display()
            )));
        }
        let is_key_store = dir.join("root-key-since").is_file()
            || std::fs::read_dir(dir).is_ok_and(|mut entries| {
                entries.any(|e| {
                    e.is_ok_and(|e| {
                        e.path().extension().is_some_and(|x| x == "keys") && e.path().is_file()
                    })
                })
            });
        if is_key_store {
            return Err(usage(format!(
                "{option} {} is inside the key store {}: keep backups outside it",
                path.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Refuses a path that exists and is not an empty directory.
fn check_empty_or_missing(option: &str, path: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(path) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(usage(format!(
                    "{option} {} is not empty: give a new or empty directory",
                    path.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if path.exists() => Err(usage(format!(
            "{option} {} is not a directory",
            path.display()
        ))),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
    }
}

/// Every regular file under `root`, as (`/`-separated relative path, full path), sorted.
/// Symbolic links and special files are refused: a backup copies what is there, not what a
/// link points to.
fn walk(root: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), root.to_path_buf())];
    while let Some((prefix, dir)) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
            let path = entry.path();
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| anyhow::anyhow!("{}: the name is not UTF-8", path.display()))?;
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let file_type = std::fs::symlink_metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .file_type();
            if file_type.is_dir() {
                stack.push((rel, path));
            } else if file_type.is_file() {
                out.push((rel, path));
            } else {
                bail!(
                    "{}: not a regular file or directory (a symbolic link?); refusing to back it up",
                    path.display()
                );
            }
        }
    }
    out.sort();
    Ok(out)
}

fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// Creates the directories between `root` and the file `to`, noting each for a later sync.
fn make_parents(root: &Path, to: &Path, dirs: &mut BTreeSet<PathBuf>) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        for dir in parent.ancestors().take_while(|d| d.starts_with(root)) {
            dirs.insert(dir.to_path_buf());
        }
    }
    Ok(())
}

fn sync_dir(path: &Path) -> anyhow::Result<()> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", path.display()))
}

const CHUNK: usize = 1 << 20;

/// Copies `from` to the new file `to` (same permissions), hashing on the way, and syncs it.
fn copy_hashed(from: &Path, to: &Path) -> anyhow::Result<FileEntry> {
    let mut input = File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let permissions = input
        .metadata()
        .with_context(|| format!("cannot read {}", from.display()))?
        .permissions();
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .with_context(|| format!("cannot create {}", to.display()))?;
    output
        .set_permissions(permissions)
        .with_context(|| format!("cannot set the mode of {}", to.display()))?;
    let mut hasher = Sha256Stream::default();
    let mut size = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = input
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", from.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output
            .write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", to.display()))?;
        size += n as u64;
    }
    output
        .sync_all()
        .with_context(|| format!("cannot sync {}", to.display()))?;
    Ok(FileEntry {
        size,
        sha256: hasher.finish(),
    })
}

fn hash_file(path: &Path) -> anyhow::Result<FileEntry> {
    let mut input = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256Stream::default();
    let mut size = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = input
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileEntry {
        size,
        sha256: hasher.finish(),
    })
}

/// A parsed manifest.
struct Manifest {
    kind: Kind,
    created_at: String,
    files: BTreeMap<String, FileEntry>,
}

/// Reads and checks `DIR/manifest.json`; every path must be relative and plain (no `..`), so
/// that a restore writes nowhere but its target.
fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {} (not a backup directory?)", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let bad = |what: &str| anyhow::anyhow!("{}: {what}", path.display());
    match value.get("format").and_then(Value::as_str) {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(bad(&format!(
                "unknown format `{other}` (expected {FORMAT})"
            )));
        }
        None => return Err(bad("no `format`")),
    }
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .and_then(Kind::from_name)
        .ok_or_else(|| bad("`kind` is not `data` or `keys`"))?;
    let created_at = value
        .get("created_at")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    let list = value
        .get("files")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no `files` list"))?;
    let mut files = BTreeMap::new();
    for (i, file) in list.iter().enumerate() {
        let rel = file
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(&format!("files[{i}]: no `path`")))?;
        let plain = !rel.is_empty()
            && Path::new(rel)
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
            && !rel.contains('\\');
        if !plain {
            return Err(bad(&format!(
                "files[{i}].path `{rel}` is not a plain relative path"
            )));
        }
        let size = file
            .get("size")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad(&format!("files[{i}]: no `size`")))?;
        let mut sha256 = [0u8; 32];
        file.get("sha256")
            .and_then(Value::as_str)
            .and_then(|h| hex::decode_to_slice(h, &mut sha256).ok())
            .ok_or_else(|| bad(&format!("files[{i}].sha256 is not 64 hex digits")))?;
        if files
            .insert(rel.to_owned(), FileEntry { size, sha256 })
            .is_some()
        {
            return Err(bad(&format!("files[{i}].path `{rel}` is listed twice")));
        }
    }
    Ok(Manifest {
        kind,
        created_at,
        files,
    })
}

/// What is wrong with a backup's files.
#[derive(Debug, Default)]
struct Problems {
    missing: Vec<String>,
    changed: Vec<String>,
    extra: Vec<String>,
}

impl Problems {
    fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.changed.is_empty() && self.extra.is_empty()
    }

    fn print(&self) {
        for path in &self.missing {
            println!("missing: {path}");
        }
        for path in &self.changed {
            println!("changed: {path}");
        }
        for path in &self.extra {
            println!("extra: {path}");
        }
    }

    fn summary(&self) -> String {
        format!(
            "{} missing, {} changed, {} extra",
            self.missing.len(),
            self.changed.len(),
            self.extra.len()
        )
    }
}

/// Compares the payload with the manifest.
fn check(dir: &Path, manifest: &Manifest) -> anyhow::Result<Problems> {
    let payload = dir.join(manifest.kind.name());
    let present: BTreeMap<String, PathBuf> = if payload.is_dir() {
        walk(&payload)?.into_iter().collect()
    } else {
        BTreeMap::new()
    };
    let mut problems = Problems::default();
    for (rel, expected) in &manifest.files {
        match present.get(rel) {
            None => problems.missing.push(rel.clone()),
            Some(path) => {
                if hash_file(path)? != *expected {
                    problems.changed.push(rel.clone());
                }
            }
        }
    }
    problems.extra = present
        .keys()
        .filter(|rel| !manifest.files.contains_key(*rel))
        .cloned()
        .collect();
    Ok(problems)
}

fn verify(dir: &Path) -> anyhow::Result<()> {
    let manifest = read_manifest(dir)?;
    let problems = check(dir, &manifest)?;
    problems.print();
    if !problems.is_empty() {
        bail!("backup {}: NOT ok: {}", dir.display(), problems.summary());
    }
    let bytes: u64 = manifest.files.values().map(|e| e.size).sum();
    println!(
        "backup {}: ok: {} backup of {}, {}, {bytes} bytes",
        dir.display(),
        match manifest.kind {
            Kind::Data => "data-directory",
            Kind::Keys => "key-store",
        },
        manifest.created_at,
        crate::ledger::counted(manifest.files.len() as u64, "file", "files"),
    );
    Ok(())
}

fn restore(dir: &Path, kind: Kind, target: &Path) -> anyhow::Result<()> {
    let manifest = read_manifest(dir)?;
    if manifest.kind != kind {
        return Err(usage(format!(
            "{} holds a {} backup: restore it with {}",
            dir.display(),
            manifest.kind.name(),
            manifest.kind.option()
        )));
    }
    check_empty_or_missing(kind.option(), target)?;
    let target_resolved = resolved(target);
    if target_resolved.starts_with(resolved(dir)) {
        return Err(usage(format!(
            "{} {} is inside the backup {}",
            kind.option(),
            target.display(),
            dir.display()
        )));
    }
    check_not_inside_custodia_dirs(kind.option(), target)?;

    let problems = check(dir, &manifest)?;
    if !problems.is_empty() {
        problems.print();
        bail!(
            "backup {}: NOT ok ({}); nothing restored",
            dir.display(),
            problems.summary()
        );
    }

    // Copied beside the target first, then renamed into place: an interrupted restore leaves no
    // half-filled data directory that a server could start on.
    let parent = target_resolved
        .parent()
        .context("the target has no parent directory")?
        .to_path_buf();
    let name = target_resolved
        .file_name()
        .context("the target has no name")?
        .to_string_lossy()
        .into_owned();
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = parent.join(format!(".{name}.restoring-{}", std::process::id()));
    let result = restore_into(dir, &manifest, &staging);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if target_resolved.exists() {
        // Checked empty above.
        std::fs::remove_dir(&target_resolved)
            .with_context(|| format!("cannot replace {}", target.display()))?;
    }
    std::fs::rename(&staging, &target_resolved)
        .with_context(|| format!("cannot move the restored files to {}", target.display()))?;
    sync_dir(&parent)?;
    println!(
        "restored {} (backup of {}) into {}",
        crate::ledger::counted(manifest.files.len() as u64, "file", "files"),
        manifest.created_at,
        target.display()
    );
    match kind {
        Kind::Data => println!(
            "start the server with the LIVE key store and the current root key: opening the data \
             directory replays the tombstone lists; then run `custodia ledger verify` and \
             `custodia audit verify`"
        ),
        Kind::Keys => println!(
            "put the newest tombstone lists (<tenant>.tombstones) you have beside the restored \
             key files before starting the server"
        ),
    }
    Ok(())
}

/// Copies every file of the manifest into `staging`, checking each one's hash again on the way.
fn restore_into(dir: &Path, manifest: &Manifest, staging: &Path) -> anyhow::Result<()> {
    let payload = dir.join(manifest.kind.name());
    create_private_dir(staging)?;
    let mut dirs = BTreeSet::from([staging.to_path_buf()]);
    for (rel, expected) in &manifest.files {
        let to = staging.join(rel);
        make_parents(staging, &to, &mut dirs)?;
        let copied = copy_hashed(&payload.join(rel), &to)?;
        if copied != *expected {
            bail!("{rel} changed while it was restored; nothing restored");
        }
    }
    for dir in &dirs {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_with_path(rel: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let manifest = json!({
            "format": FORMAT,
            "kind": "data",
            "files": [{"path": rel, "size": 0, "sha256": hex::encode([0u8; 32])}],
        });
        std::fs::write(dir.path().join(MANIFEST), manifest.to_string()).unwrap();
        dir
    }

    #[test]
    fn a_manifest_path_leaving_the_backup_is_refused() {
        for rel in ["../outside", "/etc/passwd", "store/../../x", "", "a\\b"] {
            let dir = manifest_with_path(rel);
            let error = read_manifest(dir.path()).err().map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.contains("not a plain relative path")),
                "{rel}: {error:?}"
            );
        }
        assert!(read_manifest(manifest_with_path("store/db").path()).is_ok());
    }

    #[test]
    fn a_manifest_of_another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(MANIFEST),
            json!({"format": "custodia-backup/9", "kind": "data", "files": []}).to_string(),
        )
        .unwrap();
        let error = read_manifest(dir.path()).err().unwrap().to_string();
        assert!(error.contains("unknown format"), "{error}");
    }
}
