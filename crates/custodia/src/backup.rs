//! `custodia backup create | verify | restore`: offline backups of the data directory and,
//! apart, of the key store, each with a manifest (every file's size and SHA-256) that `verify`
//! checks and `restore` checks again while copying back.
//!
//! Offline, `create` takes the lock a running server holds (the store's, or every tenant key
//! file's) for the whole copy, and refuses when the server runs. Online, `create --server`
//! asks the running server (`POST /v1/admin/backups`) to take the backup itself with
//! [`ServerBackup`]: only the server can hold its writers back (the engine's write gate) while
//! it copies, and it copies the store entry by entry into a new store rather than copying the
//! files of its open one. Then the command verifies what was written.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Subcommand};
use custodia_engine::{Clock, Engine, StoreEngine, SystemClock};
use custodia_server::{BackupError, BackupSummary, BackupWhat, OnlineBackup};
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
#[command(group(ArgGroup::new("source").required(true).args(["data_dir", "keys_dir", "server"])))]
pub struct CreateArgs {
    /// Back up this data directory (store, ledger, access log, search index).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Back up this key store (key files and tombstone lists), apart from the data.
    #[arg(long)]
    keys_dir: Option<PathBuf>,
    /// Online: the running server at this URL (`http://127.0.0.1:8080`) takes the backup into
    /// `--out` (an absolute path on its machine) while holding its writers back; then this
    /// command verifies it (when `--out` is on this machine too).
    #[arg(long)]
    server: Option<String>,
    /// With `--server`: back up the key store rather than the data directory.
    #[arg(long, requires = "server")]
    keys: bool,
    /// With `--server`: the environment variable holding an admin API key.
    #[arg(long, requires = "server", default_value = "CUSTODIA_API_KEY")]
    api_key_env: String,
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
        BackupCommand::Create(args) => match (args.data_dir, args.keys_dir, args.server) {
            (Some(dir), None, None) => create(Kind::Data, &dir, &args.out),
            (None, Some(dir), None) => create(Kind::Keys, &dir, &args.out),
            (None, None, Some(server)) => create_online(
                &server,
                &args.api_key_env,
                if args.keys { Kind::Keys } else { Kind::Data },
                &args.out,
            ),
            // clap's group allows exactly one.
            _ => Err(UsageError("give --data-dir, --keys-dir or --server".to_owned()).into()),
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

    let payload = out.join(kind.name());
    create_private_dir(out)?;
    create_private_dir(&payload)?;
    let entries = copy_tree(source, &payload, |_| true)?;
    let manifest = write_manifest(kind, out, &payload, &entries, None)?;

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

/// Copies every file under `source` that `include` accepts (by `/`-separated relative path)
/// into `payload`, hashing on the way, and syncs the directories.
fn copy_tree(
    source: &Path,
    payload: &Path,
    include: impl Fn(&str) -> bool,
) -> anyhow::Result<BTreeMap<String, FileEntry>> {
    let mut dirs = BTreeSet::from([payload.to_path_buf()]);
    let mut entries = BTreeMap::new();
    for (rel, path) in walk(source)? {
        if !include(&rel) {
            continue;
        }
        let to = payload.join(&rel);
        make_parents(payload, &to, &mut dirs)?;
        let entry = copy_hashed(&path, &to)?;
        entries.insert(rel, entry);
    }
    for dir in &dirs {
        sync_dir(dir)?;
    }
    Ok(entries)
}

/// Writes `OUT/manifest.json` for the files in `entries` (copied into `payload`), with the log
/// positions of a data backup and, for an online one, `online`'s fields; returns the manifest.
fn write_manifest(
    kind: Kind,
    out: &Path,
    payload: &Path,
    entries: &BTreeMap<String, FileEntry>,
    online: Option<Value>,
) -> anyhow::Result<Value> {
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
            manifest["ledgers"] = logs_summary(payload, "ledger");
            manifest["access_logs"] = logs_summary(payload, "audit");
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
    if let Some(Value::Object(fields)) = online {
        for (name, value) in fields {
            if name == "not_included" {
                if let (Some(list), Some(more)) = (manifest[&name].as_array_mut(), value.as_array())
                {
                    list.extend(more.iter().cloned());
                }
            } else {
                manifest[&name] = value;
            }
        }
    }
    let tmp = out.join(format!("{MANIFEST}.tmp"));
    let mut text = serde_json::to_string_pretty(&manifest)?;
    text.push('\n');
    crate::master_key::write_private(&tmp, text.as_bytes())?;
    std::fs::rename(&tmp, out.join(MANIFEST))
        .with_context(|| format!("cannot write {}", out.join(MANIFEST).display()))?;
    sync_dir(out)?;
    Ok(manifest)
}

/// How long an online backup waits for the writes under way before it gives up (they hold the
/// gate for one request's write each, milliseconds).
const MAX_WAIT_FOR_WRITERS: Duration = Duration::from_secs(10);

/// The online backup the server takes (`POST /v1/admin/backups`): the same copy and manifest as
/// offline, taken while the engine holds every writer back.
///
/// The data backup copies the store entry by entry into a new store (`data/store/`), and the
/// ledgers and access logs as files; it leaves out the search index, which tantivy merges and
/// deletes files of on its own threads (no file copy of a live index is safe) and which is
/// rebuilt from the store (`custodia index rebuild`) after a restore.
pub struct ServerBackup;

impl OnlineBackup for ServerBackup {
    fn take(
        &self,
        engine: &Engine,
        what: BackupWhat,
        out: &Path,
    ) -> Result<BackupSummary, BackupError> {
        let kind = match what {
            BackupWhat::Data => Kind::Data,
            BackupWhat::Keys => Kind::Keys,
        };
        let bad_out = |e: anyhow::Error| match e.downcast::<UsageError>() {
            Ok(usage) => BackupError::BadOut(usage.0),
            Err(e) => BackupError::Failed(format!("{e:#}")),
        };
        check_not_inside_custodia_dirs("out", out).map_err(bad_out)?;
        check_empty_or_missing("out", out).map_err(bad_out)?;
        let failed = |e: anyhow::Error| BackupError::Failed(format!("{e:#}"));

        let payload = out.join(kind.name());
        let paused = engine
            .pause_writes(MAX_WAIT_FOR_WRITERS)
            .map_err(BackupError::Engine)?;
        let pause_started = Instant::now();
        let copied = (|| -> anyhow::Result<BTreeMap<String, FileEntry>> {
            create_private_dir(out)?;
            create_private_dir(&payload)?;
            match kind {
                Kind::Data => {
                    let store = payload.join("store");
                    create_private_dir(&store)?;
                    paused
                        .copy_store_to(&store)
                        .context("cannot copy the store")?;
                    // The store is copied above, into an embedded store even when the live
                    // one is in PostgreSQL, so the backup leaves out the file saying so.
                    let mut entries = copy_tree(paused.data_dir(), &payload, |rel| {
                        !rel.starts_with("store/")
                            && !rel.starts_with("search/")
                            && rel != custodia_engine::POSTGRES_MARKER
                    })?;
                    for (rel, path) in walk(&store)? {
                        entries.insert(format!("store/{rel}"), hash_file(&path)?);
                    }
                    Ok(entries)
                }
                Kind::Keys => copy_tree(paused.keys_dir(), &payload, |_| true),
            }
        })();
        let waited = paused.waited();
        drop(paused);
        let held = waited + pause_started.elapsed();
        let entries = copied.map_err(failed)?;
        tracing::info!(
            kind = kind.name(),
            writes_paused_ms = held.as_millis() as u64,
            waited_for_writers_ms = waited.as_millis() as u64,
            "online backup copied; writers go on"
        );
        let mut online = json!({
            "online": true,
            "writes_paused_ms": held.as_millis() as u64,
        });
        if kind == Kind::Data {
            online["not_included"] = json!([
                "the search index: rebuild it with `custodia index rebuild` after restoring",
            ]);
        }
        let manifest =
            write_manifest(kind, out, &payload, &entries, Some(online)).map_err(failed)?;
        Ok(BackupSummary {
            out: out.display().to_string(),
            kind: kind.name().to_owned(),
            n_files: entries.len(),
            bytes: entries.values().map(|e| e.size).sum::<u64>(),
            writes_paused_ms: held.as_millis() as u64,
            ledgers: manifest.get("ledgers").cloned(),
            access_logs: manifest.get("access_logs").cloned(),
        })
    }
}

/// `backup create --server`: asks the running server for the backup, then verifies it.
fn create_online(server: &str, api_key_env: &str, kind: Kind, out: &Path) -> anyhow::Result<()> {
    let api_key = std::env::var(api_key_env)
        .map_err(|_| usage(format!("--api-key-env: {api_key_env} is not set")))?;
    if !out.is_absolute() {
        return Err(usage(format!(
            "--out {}: give an absolute path (the server writes it)",
            out.display()
        )));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}/v1/admin/backups", server.trim_end_matches('/'));
    let mut response = agent
        .post(&url)
        .header("Authorization", &format!("Bearer {api_key}"))
        .send_json(json!({"out": out.display().to_string(), "what": kind.name()}))
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("cannot read the answer of {url}"))?;
    if status != 201 {
        let detail = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| {
                let detail = v.get("detail")?.as_str()?.to_owned();
                Some(match v.get("field").and_then(Value::as_str) {
                    Some(field) => format!("{field}: {detail}"),
                    None => detail,
                })
            })
            .unwrap_or(body);
        if (400..500).contains(&status) {
            return Err(usage(format!(
                "the server refused the backup ({status}): {detail}"
            )));
        }
        bail!("the server failed to take the backup ({status}): {detail}");
    }
    let summary: Value = serde_json::from_str(&body).context("the answer is not JSON")?;
    println!(
        "online backup of the {} written by the server to {}: {} files, {} bytes, writes held {} ms",
        match kind {
            Kind::Data => "data directory",
            Kind::Keys => "key store",
        },
        out.display(),
        summary["n_files"],
        summary["bytes"],
        summary["writes_paused_ms"],
    );
    if out.join(MANIFEST).is_file() {
        verify(out)
    } else {
        println!(
            "{} is not on this machine: run `custodia backup verify` where it is",
            out.display()
        );
        Ok(())
    }
}

/// Takes the locks a running server holds: the store's (sled's `store/db`, fjall's
/// `store/lock`) or every tenant key file's. Fails with exit 2 when one is taken.
fn lock(kind: Kind, source: &Path) -> anyhow::Result<Vec<File>> {
    let paths: Vec<PathBuf> = match kind {
        Kind::Data => {
            let store = source.join("store");
            if source.join(custodia_engine::POSTGRES_MARKER).is_file() {
                return Err(usage(format!(
                    "--data-dir {}: its store is in PostgreSQL, which an offline backup cannot \
                     lock or copy: take the online backup (backup create --server), and back up \
                     the database with PostgreSQL's own tools (docs/scale.md, \"Backups\")",
                    source.display()
                )));
            }
            let Some(engine) = StoreEngine::found_in(&store) else {
                return Err(usage(format!(
                    "--data-dir {}: not a Custodia data directory (no store in store/)",
                    source.display()
                )));
            };
            vec![engine.lock_file(&store)]
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
                     locked): stop the server first, or take an online backup with --server (a \
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

/// Refuses a path inside a data directory (an ancestor holding a store in `store/`) or a key store (an
/// ancestor holding `<tenant>.keys` or `root-key-since`): a backup there would be copied along
/// with the next backup of that directory, and keys would travel with the data.
fn check_not_inside_custodia_dirs(option: &str, path: &Path) -> anyhow::Result<()> {
    let path = resolved(path);
    for dir in path.ancestors() {
        if StoreEngine::found_in(&dir.join("store")).is_some() {
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
