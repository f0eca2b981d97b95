//! Unit tests of the search crate, one module per capability, with the helpers they share.

mod disk;
mod lifecycle;
mod model;
mod normalize;
mod relevance;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use custodia_core::Pseudonym;
use custodia_vault::{Keyring, RootKey, TenantVault, Vault};
use tempfile::TempDir;

use crate::{SearchIndex, SearchQuery};

/// A tenant vault in its own temporary key directory, and a directory for indexes.
struct Fixture {
    vault: Arc<TenantVault>,
    /// Holds the key store; dropped last.
    _keys: TempDir,
    index_dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::for_tenant("acme")
    }

    fn for_tenant(tenant: &str) -> Fixture {
        let keys = tempfile::tempdir().unwrap();
        let vault = Vault::open(keys.path(), Keyring::new(RootKey::generate().unwrap())).unwrap();
        let vault = vault.tenant(&tenant.parse().unwrap()).unwrap();
        Fixture {
            vault,
            _keys: keys,
            index_dir: tempfile::tempdir().unwrap(),
        }
    }

    fn dir(&self) -> &Path {
        self.index_dir.path()
    }

    fn open(&self) -> SearchIndex {
        SearchIndex::open(self.dir(), self.vault.clone()).unwrap()
    }
}

/// A test pseudonym whose bytes are all `n`.
fn pseudonym(n: u8) -> Pseudonym {
    Pseudonym([n; 16])
}

/// The pseudonyms found for `text`, best first.
fn found(index: &SearchIndex, text: &str) -> Vec<Pseudonym> {
    index
        .search(&SearchQuery::text(text, 100))
        .unwrap()
        .hits
        .iter()
        .map(|hit| hit.pseudonym)
        .collect()
}

/// Every file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.push((path, bytes));
            }
        }
    }
    files
}

/// Whether `needle` occurs anywhere in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// The files under `dir` that contain `needle`.
fn files_containing(files: &[(PathBuf, Vec<u8>)], needle: &[u8]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|(_, bytes)| contains(bytes, needle))
        .map(|(path, _)| path.clone())
        .collect()
}
