//! `custodia ledger verify | verify-proof | verify-consistency`: offline checks of the consent
//! ledger. None of them needs the root key or a running server: a verifier key (published by the
//! server at `GET /v1/ledger/public-key`) and the files are enough.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, Subcommand};
use custodia_ledger::{Checkpoint, Hash, VerifierKey, merkle};
use serde_json::Value;

/// Offline ledger verification.
#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Recompute every hash of the ledger files and check every stored checkpoint; exit 1 naming
    /// the first bad entry, node or checkpoint.
    Verify(VerifyArgs),
    /// Check that an entry is in the tree of a signed checkpoint (inclusion proof).
    VerifyProof(VerifyProofArgs),
    /// Check that a newer signed checkpoint extends an older one (consistency proof).
    VerifyConsistency(VerifyConsistencyArgs),
}

/// Options of `ledger verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The data directory (its `ledger/<tenant>/` directories are checked).
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Only this tenant's ledger (default: every tenant's).
    #[arg(long)]
    tenant: Option<String>,
    /// The verifier key to check signatures with (note format, from GET /v1/ledger/public-key):
    /// a file holding it, or the key text. Without it, the key stored beside the ledger is used:
    /// that proves the files agree with themselves; pinning a key published elsewhere proves they
    /// are the operator's.
    #[arg(long)]
    verifier_key: Option<String>,
}

/// Options of `audit verify`.
#[derive(Args)]
pub struct AuditVerifyArgs {
    /// The data directory (its `audit/<tenant>/` directories, the access logs, are checked).
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Only this tenant's access log (default: every tenant's).
    #[arg(long)]
    tenant: Option<String>,
    /// The access log's verifier key (note format, from GET /v1/audit/access/public-key): a file
    /// holding it, or the key text. Without it, the key stored beside the log is used: that
    /// proves the files agree with themselves; pinning a key published elsewhere proves they are
    /// the operator's.
    #[arg(long)]
    verifier_key: Option<String>,
}

/// Options of `ledger verify-proof`.
#[derive(Args)]
pub struct VerifyProofArgs {
    /// The signed checkpoint (note text), e.g. saved from GET /v1/ledger/checkpoint or the
    /// `checkpoint` of a consent history.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The verifier key (note format): a file holding it, or the key text.
    #[arg(long)]
    verifier_key: String,
    /// JSON with `seq`, the proof (`hashes` and `tree_size`, or an `inclusion_proof` object
    /// holding them) and, unless --entry is given, the entry's `bytes_b64`: an entry of a consent
    /// history works as it is.
    #[arg(long)]
    proof: PathBuf,
    /// The entry's canonical bytes (raw), if the proof JSON does not carry `bytes_b64`.
    #[arg(long)]
    entry: Option<PathBuf>,
}

/// Options of `ledger verify-consistency`.
#[derive(Args)]
pub struct VerifyConsistencyArgs {
    /// The older signed checkpoint.
    #[arg(long)]
    old: PathBuf,
    /// The newer signed checkpoint.
    #[arg(long)]
    new: PathBuf,
    /// The verifier key (note format): a file holding it, or the key text.
    #[arg(long)]
    verifier_key: String,
    /// JSON with `hashes`, as from GET /v1/ledger/proof/consistency.
    #[arg(long)]
    proof: PathBuf,
}

/// Runs a ledger command.
pub fn run(cmd: LedgerCommand) -> anyhow::Result<()> {
    match cmd {
        LedgerCommand::Verify(args) => verify(args, "ledger"),
        LedgerCommand::VerifyProof(args) => verify_proof(args),
        LedgerCommand::VerifyConsistency(args) => verify_consistency(args),
    }
}

/// A verifier key given as its text or as a file holding it (like the neighbouring options,
/// which all take files).
fn verifier_key(given: &str) -> anyhow::Result<VerifierKey> {
    if let Ok(key) = given.trim().parse() {
        return Ok(key);
    }
    let path = Path::new(given);
    if path.is_file() {
        return stored_verifier_key(path);
    }
    bail!("--verifier-key: neither a verifier key (name+hash+key) nor a readable file")
}

/// The verifier key in a file.
fn stored_verifier_key(path: &Path) -> anyhow::Result<VerifierKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("{}: invalid verifier key: {e}", path.display()))
}

/// `n` and the noun, singular for one.
pub(crate) fn counted(n: u64, singular: &str, plural: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {plural}")
    }
}

fn read_checkpoint(path: &Path, key: &VerifierKey) -> anyhow::Result<Checkpoint> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let checkpoint =
        Checkpoint::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if !checkpoint.verify(key) {
        bail!("{}: no valid signature by {}", path.display(), key.name);
    }
    Ok(checkpoint)
}

fn hashes(value: &Value) -> anyhow::Result<Vec<Hash>> {
    let list = value
        .get("hashes")
        .and_then(Value::as_array)
        .context("the proof has no `hashes` list")?;
    list.iter()
        .map(|h| {
            let mut out = [0u8; 32];
            let text = h.as_str().context("a proof hash is not a string")?;
            hex::decode_to_slice(text, &mut out).context("a proof hash is not 64 hex digits")?;
            Ok(out)
        })
        .collect()
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// `custodia audit ...`: the access log, which has the ledger's format.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute every hash of the access logs and check every stored checkpoint; exit 1 naming
    /// the first bad entry, node or checkpoint.
    Verify(AuditVerifyArgs),
}

/// Runs an audit command.
pub fn run_audit(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify(args) => verify(
            VerifyArgs {
                data_dir: args.data_dir,
                tenant: args.tenant,
                verifier_key: args.verifier_key,
            },
            "audit",
        ),
    }
}

/// Verifies the logs under `<data dir>/<log>/<tenant>/`.
fn verify(args: VerifyArgs, log: &str) -> anyhow::Result<()> {
    let root = args.data_dir.join(log);
    let tenants: Vec<String> = match &args.tenant {
        Some(t) => vec![t.clone()],
        None => {
            let mut names: Vec<String> = std::fs::read_dir(&root)
                .with_context(|| format!("no ledger under {}", root.display()))?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                // `.<tenant>.creating-…`: a log being created (or a leftover that the server
                // removes at its next open), not a tenant.
                .filter(|name| !name.starts_with('.'))
                .collect();
            names.sort();
            names
        }
    };
    if tenants.is_empty() {
        bail!("no ledger under {}", root.display());
    }
    for tenant in tenants {
        let dir = root.join(&tenant);
        let key = match &args.verifier_key {
            Some(text) => verifier_key(text)?,
            None => stored_verifier_key(&dir.join("verifier-key"))?,
        };
        match custodia_ledger::verify_dir(&dir, &key) {
            Ok(report) => println!(
                "{log} {tenant}: ok: {}, {}, root {}",
                counted(report.n_entries, "entry", "entries"),
                counted(report.n_checkpoints as u64, "checkpoint", "checkpoints"),
                hex::encode(report.root)
            ),
            Err(failure) => bail!("{log} {tenant}: {failure}"),
        }
    }
    Ok(())
}

fn verify_proof(args: VerifyProofArgs) -> anyhow::Result<()> {
    let key = verifier_key(&args.verifier_key)?;
    let checkpoint = read_checkpoint(&args.checkpoint, &key)?;
    let json = read_json(&args.proof)?;
    let seq = json
        .get("seq")
        .and_then(Value::as_u64)
        .context("the proof has no `seq`")?;
    let proof = json.get("inclusion_proof").unwrap_or(&json);
    let tree_size = proof
        .get("tree_size")
        .and_then(Value::as_u64)
        .context("the proof has no `tree_size`")?;
    if tree_size != checkpoint.tree_size {
        bail!(
            "the proof is for tree size {tree_size}, the checkpoint for {}",
            checkpoint.tree_size
        );
    }
    let entry = match (&args.entry, json.get("bytes_b64").and_then(Value::as_str)) {
        (Some(path), _) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        (None, Some(b64)) => STANDARD.decode(b64).context("`bytes_b64` is not base64")?,
        (None, None) => bail!("give the entry with --entry or `bytes_b64` in the proof"),
    };
    let leaf = merkle::leaf_hash(&entry);
    if !merkle::verify_inclusion(&leaf, seq, tree_size, &hashes(proof)?, &checkpoint.root) {
        bail!(
            "entry {seq} is NOT in the tree of size {tree_size} signed by {}",
            key.name
        );
    }
    // The proof covers the bytes only: every other field of the saved JSON is a claim until it
    // is compared with what the bytes say.
    let verified = custodia_engine::EntryView::from_bytes(seq, &entry)
        .map_err(|e| anyhow::anyhow!("entry {seq}: the proven bytes are no ledger entry: {e}"))?;
    let verified = serde_json::to_value(&verified)?;
    check_claims(&json, &verified)?;
    println!(
        "ok: entry {seq} (leaf {}) is in the tree of size {tree_size} signed by {}",
        hex::encode(leaf),
        key.name
    );
    let mut shown = verified;
    if let Some(fields) = shown.as_object_mut() {
        fields.remove("bytes_b64");
    }
    println!("the proven entry says: {shown}");
    Ok(())
}

/// Fields of a saved entry that carry the proof rather than claims about the entry.
const PROOF_FIELDS: [&str; 3] = ["inclusion_proof", "hashes", "tree_size"];

/// Fails naming the first field of `saved` whose value the proven entry does not have.
fn check_claims(saved: &Value, verified: &Value) -> anyhow::Result<()> {
    let Some(saved) = saved.as_object() else {
        bail!("the proof JSON is not an object");
    };
    for (field, claimed) in saved {
        if PROOF_FIELDS.contains(&field.as_str()) {
            continue;
        }
        match verified.get(field) {
            Some(proven) if proven == claimed => {}
            // The API leaves out empty fields; a saved `null` claims the same.
            None if claimed.is_null() => {}
            Some(proven) => bail!(
                "field `{field}` of the saved entry does not match the proven bytes: it says \
                 {claimed}, the bytes say {proven}"
            ),
            None if is_entry_field(field) => bail!(
                "field `{field}` of the saved entry does not match the proven bytes: it says \
                 {claimed}, the bytes have none"
            ),
            None => bail!(
                "field `{field}` of the saved entry is not part of a ledger entry, so no proof \
                 covers it"
            ),
        }
    }
    Ok(())
}

/// Fields an entry may leave out when empty.
fn is_entry_field(field: &str) -> bool {
    ["subject", "purpose", "lawful_basis", "policy_hash"].contains(&field)
}

fn verify_consistency(args: VerifyConsistencyArgs) -> anyhow::Result<()> {
    let key = verifier_key(&args.verifier_key)?;
    let old = read_checkpoint(&args.old, &key)?;
    let new = read_checkpoint(&args.new, &key)?;
    let proof = hashes(&read_json(&args.proof)?)?;
    if !merkle::verify_consistency(old.tree_size, new.tree_size, &old.root, &new.root, &proof) {
        bail!(
            "the tree of size {} does NOT extend the tree of size {}",
            new.tree_size,
            old.tree_size
        );
    }
    println!(
        "ok: the tree of size {} extends the tree of size {} (both signed by {})",
        new.tree_size, old.tree_size, key.name
    );
    Ok(())
}
