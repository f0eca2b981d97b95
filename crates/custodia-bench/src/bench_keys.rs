//! `custodia bench rotate`: root-key rotation of a key store holding many subject data keys
//! (every key unwrapped under the old root key's wrapping key and wrapped again under the new
//! one, in place), measured in the same run as the limits of its building blocks: AES-256-GCM
//! seals and opens of a 32-byte key, and 128-byte positioned reads and writes of the slots.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use clap::Args;
use custodia_core::{SubjectId, TenantId};
use custodia_vault::{Aad, DataKey, Keyring, RootKey, Vault};

use super::bench_search::cores;
use super::{Row, parallel, print_rows, time};

/// Options of `bench rotate`.
#[derive(Args)]
pub struct RotateArgs {
    /// Subject data keys in the key store that rotation re-wraps.
    #[arg(long, default_value_t = 20_000)]
    keys: usize,
    /// Threads creating the keys (each creation is synced; concurrent ones share syncs).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

/// The size of a key-store slot (`custodia-vault`'s key_store.rs: 128-byte slots after a
/// 128-byte header).
const SLOT_LEN: usize = 128;

/// Runs `bench rotate`.
pub fn run(args: RotateArgs) -> anyhow::Result<()> {
    let n = args.keys.max(1);
    let c = args.concurrency;
    let dir = tempfile::tempdir()?;
    let keys_dir = dir.path().join("keys");
    let tenant = TenantId::default_tenant();
    eprintln!(
        "custodia bench rotate: keys={n}, concurrency={c}, {} cores",
        cores()
    );
    let mut rows = Vec::new();

    // The key store to rotate, under the old root key. Creating a key is what ingestion of a new
    // customer does: wrap, write the slot, sync.
    let old = RootKey::generate()?;
    let old_copy = RootKey::from_base64(&old.to_base64())?;
    let subjects: Vec<SubjectId> = (0..n)
        .map(|_| Ok(SubjectId::from_random(custodia_vault::random_array()?)))
        .collect::<anyhow::Result<_>>()?;
    {
        let vault = Vault::open(&keys_dir, Keyring::new(old))?;
        let keys = vault.tenant(&tenant)?;
        rows.push(time(
            &format!("create subject key, synced ({c} clients)"),
            n,
            || {
                parallel(n, c, |i| {
                    keys.create_data_key(subjects[i])
                        .map(drop)
                        .map_err(Into::into)
                })
            },
        )?);
    }

    // Rotation: the process restarts with the new root key current and the old one previous.
    let new = RootKey::generate()?;
    let mut vault = None;
    rows.push(time(
        "open key store, old + new root key (scan slots), keys",
        n,
        || {
            let opened = Vault::open(&keys_dir, Keyring::new(new).with_previous(old_copy))?;
            opened.tenant(&tenant)?;
            vault = Some(opened);
            Ok(())
        },
    )?);
    let vault = vault.ok_or_else(|| anyhow::anyhow!("the key store did not open"))?;
    let keys = vault.tenant(&tenant)?;
    let mut rewrapped = 0;
    rows.push(time(
        "rotate_wrapping: unwrap + wrap + write each slot, one sync",
        n,
        || {
            rewrapped = keys.rotate_wrapping()?;
            Ok(())
        },
    )?);
    // The tenant secret is re-wrapped too.
    anyhow::ensure!(
        rewrapped == n as u64 + 1,
        "rotation re-wrapped {rewrapped} keys, not {}",
        n + 1
    );
    rows.push(time(
        "rotate_wrapping again (every slot current, nothing to wrap)",
        n,
        || {
            let again = keys.rotate_wrapping()?;
            anyhow::ensure!(again == 0, "a second rotation re-wrapped {again} keys");
            Ok(())
        },
    )?);
    keys.data_key(subjects[n / 2])?;
    let key_file = keys_dir.join(format!("{}.keys", tenant.as_str()));
    drop(keys);
    drop(vault);

    // The building blocks, in the same run.
    let data_key = DataKey::generate()?;
    let aad = Aad {
        tenant: &tenant,
        subject: subjects[0],
        kind: "dek",
    };
    let plain_key = [0x5Au8; 32];
    let m = n.max(200_000);
    let mut sealed = Vec::new();
    rows.push(time("limit: AES-256-GCM seal of 32 bytes", m, || {
        for _ in 0..m {
            sealed = data_key.seal(&aad, &plain_key)?;
        }
        Ok(())
    })?);
    rows.push(time("limit: AES-256-GCM open of 32 bytes", m, || {
        for _ in 0..m {
            std::hint::black_box(data_key.open(&aad, &sealed)?);
        }
        Ok(())
    })?);
    // Reads and writes of the real file's slots, as rotation does them (page cache, one sync).
    let file = OpenOptions::new().read(true).write(true).open(&key_file)?;
    let mut slot = [0u8; SLOT_LEN];
    rows.push(time(
        "limit: 128-byte pread + pwrite per slot, one sync",
        n,
        || {
            for slot_idx in 0..n as u64 {
                let offset = (SLOT_LEN as u64) * (1 + slot_idx);
                file.read_exact_at(&mut slot, offset)?;
                file.write_all_at(&slot, offset)?;
            }
            file.sync_data()?;
            Ok(())
        },
    )?);

    print_rows(&rows);
    let per_second = |what: &str| {
        rows.iter()
            .find(|row| row.what.starts_with(what))
            .map_or(0.0, Row::per_second)
    };
    let bound = 1.0
        / (1.0 / per_second("limit: AES-256-GCM seal")
            + 1.0 / per_second("limit: AES-256-GCM open")
            + 1.0 / per_second("limit: 128-byte"));
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| keys re-wrapped | {rewrapped} |");
    println!(
        "| building-block bound on rotation (1 / (1/seal + 1/open + 1/slot I/O)) | {bound:.0} keys/s |"
    );
    println!(
        "| key store file | {} |",
        super::bench_search::mebibytes(std::fs::metadata(&key_file)?.len())
    );
    Ok(())
}
