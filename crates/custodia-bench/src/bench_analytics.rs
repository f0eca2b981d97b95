//! `custodia bench analytics`: KPIs and RFM / journey segments over a deterministic synthetic
//! projection held in memory, and the projection's storage format (encode + decode of every
//! fact), measured in the same run as the limit of a plain pass over the same facts.

use std::time::{Duration, Instant};

use clap::Args;
use custodia_analytics::{
    Currency, Fact, FactKind, Params, RateTable, compute_kpis, compute_segments,
};
use custodia_core::{Pseudonym, Timestamp};

use super::bench_search::{ProcessMemory, cores, mebibytes};

/// Options of `bench analytics`.
#[derive(Args)]
pub struct AnalyticsArgs {
    /// Subjects in the projection.
    #[arg(long, default_value_t = 100_000)]
    subjects: u64,
    /// Facts in the projection, spread at random over the subjects.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Runs of each computation; the table gives the median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Also load the projection into a store on disk and time the queries as `custodia
    /// serve` answers them (engine and HTTP), and the ingest overhead of the projection.
    #[arg(long)]
    store: bool,
    /// With `--store`: every n-th subject has withdrawn its analytics consent (0: nobody).
    #[arg(long, default_value_t = 10)]
    withdrawn_every: usize,
    /// With `--store`: track calls of each kind in the ingest comparison.
    #[arg(long, default_value_t = 50_000)]
    ingest_events: usize,
    /// With `--store`: the store's page cache for the queries, in MiB (the server's
    /// `--store-cache-mb`).
    #[arg(long, default_value_t = 256)]
    store_cache_mb: u64,
    /// With `--store`: the storage engine (the server's `--store-engine`).
    #[arg(long, default_value_t)]
    store_engine: custodia_store::StoreEngine,
}

#[path = "bench_analytics_store.rs"]
mod store;

/// The end of the period and the `now` of recency: 2026-11-24T00:00:00Z.
const NOW_MICROS: i64 = 1_795_478_400_000_000;
const DAY_MICROS: i64 = 86_400_000_000;
/// Facts fall in the three years before [`NOW_MICROS`]; the KPI period is the last of them.
const HISTORY_DAYS: i64 = 3 * 365;
const PERIOD_DAYS: i64 = 365;

/// Runs `bench analytics`.
pub fn run(args: AnalyticsArgs) -> anyhow::Result<()> {
    let n_subjects = args.subjects.max(1);
    let n_facts = args.events;
    let runs = args.runs.max(1);
    eprintln!(
        "custodia bench analytics: subjects={n_subjects}, events={n_facts}, runs={runs}, {} cores",
        cores()
    );
    let memory_before = ProcessMemory::read()?;
    let started = Instant::now();
    let subjects = projection(n_subjects, n_facts);
    let n_with_facts = subjects.len();
    let total = usize::try_from(n_facts)?;
    eprintln!(
        "  (generated {n_facts} facts of {n_with_facts} subjects in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let memory_generated = ProcessMemory::read()?;

    let now = Timestamp::from_unix_micros(NOW_MICROS);
    let params = Params::new(now.plus_days(-PERIOD_DAYS), now)?.with_rates(
        RateTable::new(Currency::EUR)
            .with_rate(Currency::USD, 0.92)?
            .with_rate(Currency::GBP, 1.17)?,
    );
    let pairs = || subjects.iter().map(|(p, facts)| (*p, facts.as_slice()));

    let mut rows = Vec::new();
    let mut kpis = None;
    rows.push(median_row(
        "compute_kpis (period: last 365 days)",
        total,
        runs,
        || {
            kpis = Some(compute_kpis(pairs(), 0, &params));
        },
    ));
    let mut segments = None;
    rows.push(median_row(
        "compute_segments (RFM + journey, fixed cuts)",
        total,
        runs,
        || {
            segments = Some(compute_segments(pairs(), 0, &params));
        },
    ));
    if let (Some(kpis), Some(segments)) = (&kpis, &segments) {
        eprintln!(
            "  (customers {:?}, repeat purchase rate {:?}, NPS {:?}, suppressed cells {})",
            kpis.customers,
            kpis.repeat_purchase_rate,
            kpis.nps,
            kpis.suppressed.len() + segments.suppressed.len()
        );
    }

    // The projection's storage format: every fact encoded, then decoded and compared.
    let mut encoded: Vec<Vec<u8>> = Vec::with_capacity(total);
    let started = Instant::now();
    for (_, facts) in &subjects {
        encoded.extend(facts.iter().map(Fact::encode_stored));
    }
    rows.push(super::Row {
        what: "Fact::encode_stored, every fact".to_owned(),
        n: total,
        elapsed: started.elapsed(),
    });
    let encoded_bytes: usize = encoded.iter().map(Vec::len).sum();
    let mut decoded: Vec<Fact> = Vec::with_capacity(total);
    let started = Instant::now();
    let pseudonyms = subjects
        .iter()
        .flat_map(|(p, facts)| std::iter::repeat_n(*p, facts.len()));
    for (pseudonym, bytes) in pseudonyms.zip(&encoded) {
        decoded.push(Fact::decode_stored(pseudonym, bytes)?);
    }
    rows.push(super::Row {
        what: "Fact::decode_stored, every fact".to_owned(),
        n: total,
        elapsed: started.elapsed(),
    });
    anyhow::ensure!(
        decoded
            .iter()
            .eq(subjects.iter().flat_map(|(_, facts)| facts.iter())),
        "a fact did not survive encode + decode"
    );
    drop((encoded, decoded));

    // The building block: one pass over the same facts, summing what the KPIs sum.
    rows.push(median_row(
        "limit: plain pass over the facts (sum amounts, count kinds)",
        total,
        runs,
        || {
            std::hint::black_box(plain_sum(&subjects));
        },
    ));

    for row in &rows {
        eprintln!("  {:<58} {:>12.0}/s", row.what, row.per_second());
    }
    super::print_table(
        &format!(
            "| measurement (median of {runs} runs where repeated) | facts | seconds | facts per second |"
        ),
        &rows,
    );
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| subjects with facts | {n_with_facts} |");
    println!(
        "| facts in memory (size_of Fact = {} bytes) | {} |",
        std::mem::size_of::<Fact>(),
        mebibytes((total * std::mem::size_of::<Fact>()) as u64)
    );
    println!(
        "| encoded projection | {} ({:.1} bytes/fact) |",
        mebibytes(encoded_bytes as u64),
        encoded_bytes as f64 / total.max(1) as f64
    );
    println!(
        "| process RSS before / after generating | {} / {} |",
        mebibytes(memory_before.rss_bytes),
        mebibytes(memory_generated.rss_bytes)
    );
    println!(
        "| process peak RSS (VmHWM) | {} |",
        mebibytes(ProcessMemory::read()?.peak_rss_bytes)
    );
    if args.store {
        store::run(store::StoreRun {
            subjects: &subjects,
            params: &params,
            runs,
            withdrawn_every: args.withdrawn_every,
            ingest_events: args.ingest_events,
            store_cache_bytes: args.store_cache_mb.max(1) * 1024 * 1024,
            store_engine: args.store_engine,
        })?;
    }
    Ok(())
}

/// Times `f` `runs` times; the row holds the median.
fn median_row<F: FnMut()>(what: &str, n: usize, runs: usize, mut f: F) -> super::Row {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    samples.sort();
    super::Row {
        what: what.to_owned(),
        n,
        elapsed: samples[samples.len() / 2],
    }
}

/// The deterministic projection: `n_facts` facts spread at random over `n_subjects` subjects
/// (subjects that drew none are left out), in pseudonym order as the store and the engine's
/// in-memory copy hand them over, each subject's facts in time order. The mix per 100
/// facts: 35 product views, 15 cart additions, 8 checkouts, 22 orders, 3 refunds, 6 NPS answers,
/// 4 reviews, 7 identifies; money is 70 % EUR, 20 % USD, 10 % GBP.
fn projection(n_subjects: u64, n_facts: u64) -> Vec<(Pseudonym, Vec<Fact>)> {
    let mut rng = SplitMix64(0x616e_616c_7974_6963);
    let mut counts = vec![0u32; usize::try_from(n_subjects).unwrap_or(usize::MAX)];
    for _ in 0..n_facts {
        counts[rng.below(n_subjects) as usize] += 1;
    }
    let first_day = NOW_MICROS - HISTORY_DAYS * DAY_MICROS;
    let mut subjects = counts
        .into_iter()
        .enumerate()
        .filter(|(_, count)| *count > 0)
        .map(|(subject_idx, count)| {
            let mut rng = SplitMix64(subject_idx as u64);
            let mut pseudonym = [0u8; 16];
            pseudonym[..8].copy_from_slice(&rng.next().to_be_bytes());
            pseudonym[8..].copy_from_slice(&rng.next().to_be_bytes());
            let pseudonym = Pseudonym(pseudonym);
            let mut facts: Vec<Fact> = (0..count)
                .map(|_| Fact {
                    pseudonym,
                    time: Timestamp::from_unix_micros(
                        first_day + rng.below((HISTORY_DAYS * DAY_MICROS) as u64) as i64,
                    ),
                    kind: kind(&mut rng),
                })
                .collect();
            facts.sort_by_key(|fact| fact.time);
            (pseudonym, facts)
        })
        .collect::<Vec<_>>();
    subjects.sort_unstable_by_key(|(pseudonym, _)| *pseudonym);
    subjects
}

fn kind(rng: &mut SplitMix64) -> FactKind {
    let currency = |rng: &mut SplitMix64| match rng.below(10) {
        0..=6 => Currency::EUR,
        7 | 8 => Currency::USD,
        _ => Currency::GBP,
    };
    match rng.below(100) {
        0..35 => FactKind::ProductViewed,
        35..50 => FactKind::ProductAdded,
        50..58 => FactKind::CheckoutStarted,
        58..80 => FactKind::Order {
            amount_minor: 500 + rng.below(29_500) as i64,
            currency: currency(rng),
        },
        80..83 => FactKind::Refund {
            amount_minor: 500 + rng.below(9_500) as i64,
            currency: currency(rng),
        },
        83..89 => FactKind::Nps {
            score: rng.below(11) as u8,
        },
        89..93 => FactKind::Review {
            rating: 1 + rng.below(5) as u8,
        },
        _ => FactKind::Identified,
    }
}

/// Order and refund totals per currency and counts of NPS answers and other facts: a single pass
/// that reads every fact, with none of the grouping, periods or suppression of the KPIs.
fn plain_sum(subjects: &[(Pseudonym, Vec<Fact>)]) -> ([i128; 3], u64, u64) {
    let mut net = [0i128; 3];
    let mut nps = 0u64;
    let mut other = 0u64;
    for (_, facts) in subjects {
        for fact in facts {
            match fact.kind {
                FactKind::Order {
                    amount_minor,
                    currency,
                } => net[currency_idx(currency)] += i128::from(amount_minor),
                FactKind::Refund {
                    amount_minor,
                    currency,
                } => net[currency_idx(currency)] -= i128::from(amount_minor),
                FactKind::Nps { score } => nps += u64::from(score),
                _ => other += 1,
            }
        }
    }
    (net, nps, other)
}

fn currency_idx(currency: Currency) -> usize {
    if currency == Currency::EUR {
        0
    } else if currency == Currency::USD {
        1
    } else {
        2
    }
}

/// SplitMix64: small, seedable, the same on every machine.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`); the modulo bias is irrelevant here.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
