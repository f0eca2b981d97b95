//! `custodia bench search`: indexing throughput, index size, process memory and query latency of
//! the keyed-hash search index over synthetic profiles, measured in the same run as the limit of
//! its building block, HMAC-SHA256 token hashing.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use custodia_core::TenantId;
use custodia_search::normalize::{MAX_TOKENS_PER_FIELD, field_tokens, prefixes};
use custodia_search::{SearchIndex, generate};
use custodia_vault::{Keyring, RootKey, Vault};

use super::{Row, print_rows, time};

/// Options of `bench search`.
#[derive(Args)]
pub struct SearchArgs {
    /// Synthetic profiles to index.
    #[arg(long, default_value_t = 20_000)]
    profiles: u64,
    /// Queries to time once everything is indexed.
    #[arg(long, default_value_t = 1_000)]
    queries: u64,
}

/// Profiles indexed between two commits.
const COMMIT_EVERY: u64 = 10_000;

/// Hits asked for per query (a result page).
const QUERY_LIMIT: usize = 20;

/// Subjects purged (one per call) from the full index at the end.
const PURGES: u64 = 3;

/// Profiles whose terms are hashed for the token-hashing limit.
const HASH_SAMPLE_PROFILES: u64 = 10_000;

/// Runs `bench search`.
pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    let n_profiles = args.profiles.max(1);
    let dir = tempfile::tempdir()?;
    eprintln!(
        "custodia bench search: profiles={n_profiles}, queries={}, {} cores",
        args.queries,
        cores()
    );
    let vault = Vault::open(&dir.path().join("keys"), Keyring::new(RootKey::generate()?))?;
    let tenant = vault.tenant(&TenantId::default_tenant())?;
    let index_dir = dir.path().join("index");
    let index = SearchIndex::open(&index_dir, Arc::clone(&tenant))?;
    let memory_before = ProcessMemory::read()?;

    // Indexing. Profiles are generated a chunk at a time outside the timer, so the figure is
    // what the index costs (hashing, tantivy's buffering and segment writes, commits), not the
    // synthetic data.
    let mut indexing = Duration::ZERO;
    let mut commits = Duration::ZERO;
    let mut next = 0u64;
    while next < n_profiles {
        let end = (next + COMMIT_EVERY).min(n_profiles);
        let docs: Vec<_> = (next..end).map(generate::profile).collect();
        let started = Instant::now();
        for doc in &docs {
            index.upsert(doc)?;
        }
        let committing = Instant::now();
        index.commit(end)?;
        commits += committing.elapsed();
        indexing += started.elapsed();
        next = end;
        if next.is_multiple_of(100_000) {
            eprintln!(
                "  indexed {next} profiles, {:.0}/s so far",
                next as f64 / indexing.as_secs_f64()
            );
        }
    }
    anyhow::ensure!(
        index.num_docs() == n_profiles,
        "the index holds {} documents, not {n_profiles}",
        index.num_docs()
    );
    let n = usize::try_from(n_profiles)?;
    let mut rows = vec![Row {
        what: format!("index profiles (upsert + commit every {COMMIT_EVERY}), 1 thread"),
        n,
        elapsed: indexing,
    }];
    eprintln!("  {:<58} {:>12.0}/s", rows[0].what, rows[0].per_second());
    let index_bytes = dir_size(&index_dir)?;
    let memory_indexed = ProcessMemory::read()?;

    // Queries, against the committed index.
    let mut latencies = Vec::new();
    let mut hits = 0usize;
    let mut matched = 0usize;
    for query_idx in 0..args.queries {
        let query = generate::query(query_idx, n_profiles, QUERY_LIMIT);
        let started = Instant::now();
        let results = index.search(&query)?;
        latencies.push(started.elapsed());
        hits += results.hits.len();
        matched += results.total;
    }
    let memory_queried = ProcessMemory::read()?;

    // Erasure's share: deleting one subject's document (what the erasure waits for), then the
    // compaction that rewrites every segment that held it (the indexer's, in the background).
    let mut deletes = Vec::new();
    let mut purges = Vec::new();
    let n_purges = PURGES.min(n_profiles);
    for purge_idx in 0..n_purges {
        let profile_idx = purge_idx * (n_profiles / n_purges);
        let pseudonym = generate::pseudonym(profile_idx);
        let started = Instant::now();
        index.delete(&[pseudonym])?;
        deletes.push(started.elapsed());
        let started = Instant::now();
        index.compact(&[pseudonym])?;
        purges.push(started.elapsed());
    }
    anyhow::ensure!(
        index.num_docs() + n_purges == n_profiles,
        "the purges left {} documents",
        index.num_docs()
    );

    // The building block: the keyed hash of every term. A profile's terms are its whole tokens
    // and each token's type-ahead prefixes, hashed as the index does.
    let sample = HASH_SAMPLE_PROFILES.min(n_profiles);
    let mut terms: Vec<(&'static str, String)> = Vec::new();
    for profile_idx in 0..sample {
        let doc = generate::profile(profile_idx);
        let mut n_tokens = [0usize; custodia_search::TextField::ALL.len()];
        for (field, value) in &doc.text {
            for token in field_tokens(*field, value) {
                let n_field_tokens = &mut n_tokens[*field as usize];
                if *n_field_tokens == MAX_TOKENS_PER_FIELD {
                    break;
                }
                *n_field_tokens += 1;
                for prefix in prefixes(&token) {
                    terms.push((field.prefix_name(), prefix.to_owned()));
                }
                terms.push((field.as_str(), token));
            }
        }
    }
    let hashes_per_profile = terms.len() as f64 / sample as f64;
    let rounds = (2_000_000 / terms.len().max(1)).max(1);
    let hashing = time(
        "limit: HMAC-SHA256 search token (vault.search_token)",
        rounds * terms.len(),
        || {
            for _ in 0..rounds {
                for (field, token) in &terms {
                    std::hint::black_box(tenant.search_token(field, token));
                }
            }
            Ok(())
        },
    )?;
    let hashing_bound = hashing.per_second() / hashes_per_profile;
    rows.push(hashing);
    drop(index);

    print_rows(&rows);
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| profiles indexed | {n_profiles} |");
    // `upsert` hashes in the caller's thread and queues the document; tantivy's writer thread
    // indexes it meanwhile, and `commit` waits for that thread to catch up before it writes.
    println!(
        "| of the indexing time: in upsert (hashing, queueing) / waiting in commit | {:.1} s / {:.1} s ({} commits) |",
        (indexing - commits).as_secs_f64(),
        commits.as_secs_f64(),
        n_profiles.div_ceil(COMMIT_EVERY)
    );
    println!("| keyed hashes per profile (words + prefixes) | {hashes_per_profile:.1} |");
    println!(
        "| hashing bound on indexing (hash rate / hashes per profile) | {hashing_bound:.0} profiles/s |"
    );
    println!(
        "| index size on disk | {} ({:.0} bytes/profile) |",
        mebibytes(index_bytes),
        index_bytes as f64 / n_profiles as f64
    );
    println!(
        "| process RSS before indexing | {} |",
        mebibytes(memory_before.rss_bytes)
    );
    println!(
        "| process RSS after indexing / after queries | {} / {} |",
        mebibytes(memory_indexed.rss_bytes),
        mebibytes(memory_queried.rss_bytes)
    );
    println!(
        "| process peak RSS (VmHWM) | {} |",
        mebibytes(memory_queried.peak_rss_bytes)
    );
    if !latencies.is_empty() {
        let n_queries = latencies.len();
        println!(
            "| mean hits returned / matched per query | {:.1} / {:.1} |",
            hits as f64 / n_queries as f64,
            matched as f64 / n_queries as f64
        );
        println!();
        println!("| latency | samples | p50 | p99 |");
        println!("|---|---:|---:|---:|");
        let (p50, p99) = percentiles(latencies);
        println!(
            "| search, top {QUERY_LIMIT} with total count, 1 client | {n_queries} | {:.3} ms | {:.3} ms |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    let ms = |durations: &[Duration]| -> String {
        durations
            .iter()
            .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!();
    println!(
        "delete one subject's document (delete, commit), {} calls: {}",
        deletes.len(),
        ms(&deletes)
    );
    println!(
        "then compact it away (merge its segments, collect files), {} calls: {}",
        purges.len(),
        ms(&purges)
    );
    Ok(())
}

/// The number of cores this process may use.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(1)
}

/// Median and 99th percentile of `samples` (nearest rank); `samples` must not be empty.
pub(crate) fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}

/// The process's resident memory, from `/proc/self/status` (Linux).
pub(crate) struct ProcessMemory {
    /// `VmRSS`: resident now, including mapped index files that were touched.
    pub(crate) rss_bytes: u64,
    /// `VmHWM`: the most that was ever resident.
    pub(crate) peak_rss_bytes: u64,
}

impl ProcessMemory {
    pub(crate) fn read() -> anyhow::Result<ProcessMemory> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        let kib = |name: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .ok_or_else(|| anyhow::anyhow!("no {name} in /proc/self/status"))?;
            let value = line.trim().trim_end_matches("kB").trim();
            Ok(value.parse::<u64>()? * 1024)
        };
        Ok(ProcessMemory {
            rss_bytes: kib("VmRSS:")?,
            peak_rss_bytes: kib("VmHWM:")?,
        })
    }
}

/// `bytes` in MiB, for the tables.
pub(crate) fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The total size of the files under `dir`.
pub(crate) fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        total += if metadata.is_dir() {
            dir_size(&entry.path())?
        } else {
            metadata.len()
        };
    }
    Ok(total)
}
