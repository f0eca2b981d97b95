//! Finding the root key: `CUSTODIA_MASTER_KEY`, `--master-key-file`, or (with `--demo` only) a
//! generated `./custodia-master.key`. The key never sits inside the data directory or the key
//! store: a backup of either must not carry the key that opens it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use custodia_vault::RootKey;

use crate::Dirs;

/// Where `--demo` keeps a generated root key.
pub const DEMO_MASTER_KEY_FILE: &str = "./custodia-master.key";

/// The root key for this run.
pub fn resolve(dirs: &Dirs, demo: bool) -> anyhow::Result<RootKey> {
    if let Ok(text) = std::env::var("CUSTODIA_MASTER_KEY") {
        return RootKey::from_base64(&text)
            .map_err(|e| anyhow::anyhow!("CUSTODIA_MASTER_KEY: {e}"));
    }
    if let Some(path) = &dirs.master_key_file {
        check_outside(path, dirs)?;
        return RootKey::read_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    if !demo {
        bail!(
            "no root key: set CUSTODIA_MASTER_KEY (base64 of 32 bytes) or pass --master-key-file \
             (or use --demo to try Custodia out with a generated key)"
        );
    }
    let path = PathBuf::from(DEMO_MASTER_KEY_FILE);
    check_outside(&path, dirs)?;
    if path.exists() {
        return RootKey::read_file(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let key =
        RootKey::create_file(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    tracing::warn!(
        file = DEMO_MASTER_KEY_FILE,
        "DEMO MODE: generated a root key in a local file (mode 0600); whoever reads it can decrypt \
         every profile. For production set CUSTODIA_MASTER_KEY from a secret manager"
    );
    Ok(key)
}

/// Refuses a key file inside the data directory or the key store.
fn check_outside(path: &Path, dirs: &Dirs) -> anyhow::Result<()> {
    let absolute = |p: &Path| -> PathBuf {
        let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        // Resolve links where the path exists, so a link cannot smuggle the key inside.
        p.canonicalize().unwrap_or(p)
    };
    let key = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            absolute(parent).join(path.file_name().unwrap_or_default())
        }
        _ => absolute(Path::new(".")).join(path),
    };
    for dir in [&dirs.data_dir, &dirs.keys_dir] {
        if key.starts_with(absolute(dir)) {
            bail!(
                "the root key file {} must not be inside {}: a backup of that directory would carry the key",
                path.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// Writes a new private file (mode 0600).
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}
