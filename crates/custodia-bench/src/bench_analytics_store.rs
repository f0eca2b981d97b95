//! `custodia bench analytics --store`: the analytics queries as `custodia serve` answers them,
//! over a projection held in a store on disk (sled or fjall, `--store-engine`), and what keeping
//! the projection costs ingest.
//!
//! The queries: [`Engine::kpis`] and [`Engine::segments`] read every fact from the store, ask the
//! access decision about each subject (consent record and flags read from the store), then
//! compute; the same two over HTTP on loopback add routing, the blocking-pool hop and JSON. The
//! projection is bulk-loaded with the store's own write batches, in the record formats ingest
//! writes (a fact per event, a consent record per subject from the ledger view), because loading
//! 10 M events through `track` would take most of an hour; ingest is measured on its own below.
//!
//! The ingest overhead: the same `track` calls, in batches, once as `Order Completed` (which
//! writes an analytics fact in the event's write batch, and into the in-memory copy) and once as
//! `Order Noted` (same properties, no fact), alternating rounds on one engine.
//!
//! After the store queries, the in-memory copy is built as `custodia serve` builds it at start-up,
//! and the queries are timed again from it, beside a plain pass over its fact columns.

use std::time::{Duration, Instant};

use anyhow::Context;
use custodia_analytics::{Fact, Params, compute_kpis};
use custodia_core::{EventId, Pseudonym, PurposeId, TenantId};
use custodia_engine::{
    AnalyticsConfig, BatchItem, Caller, Clock, Engine, IdentifyInput, SystemClock, TrackInput,
};
use custodia_store::{
    ConsentRecord, ConsentState, DEFAULT_STORE_CACHE_BYTES, Store, StoreEngine, WriteBatch,
};
use serde_json::{Value, json};

use super::super::bench_search::{ProcessMemory, mebibytes};
use super::super::{LoopbackServer, app_key, http_agent, open_engine_with, role_caller};
use super::median_row;

/// Records per bulk-load batch: ingest's size. (sled 0.34 holds far more memory while applying
/// large batches: 20,000-record batches took 5.5 GiB of RSS for 2 M facts, 1,000-record ones a
/// few hundred MiB.)
const LOAD_BATCH: usize = 1_000;
/// Track calls per engine batch in the ingest comparison (the erasure benchmark's batch size).
const TRACK_BATCH: usize = 500;
/// Rounds of each kind in the ingest comparison; the table gives the median.
const INGEST_ROUNDS: usize = 5;

/// Options of the store part.
pub(super) struct StoreRun<'a> {
    pub(super) subjects: &'a [(Pseudonym, Vec<Fact>)],
    pub(super) params: &'a Params,
    pub(super) runs: usize,
    /// Every n-th subject has withdrawn its `analytics` consent (0: nobody).
    pub(super) withdrawn_every: usize,
    /// Events per kind in the ingest comparison.
    pub(super) ingest_events: usize,
    /// The store's page cache for the queries.
    pub(super) store_cache_bytes: u64,
    /// The storage engine of every store the run writes.
    pub(super) store_engine: StoreEngine,
}

/// Runs the store part and prints its tables.
pub(super) fn run(opts: StoreRun<'_>) -> anyhow::Result<()> {
    let StoreRun {
        subjects,
        params,
        runs,
        withdrawn_every,
        ingest_events,
        store_cache_bytes,
        store_engine,
    } = opts;
    let total: usize = subjects.iter().map(|(_, facts)| facts.len()).sum();
    let dir = tempfile::tempdir_in(".").context("temporary directory under ./")?;

    // The projection alone on disk: the facts loaded into a store of their own, then dropped.
    let facts_only_bytes = {
        let path = dir.path().join("facts-only");
        load(&path, store_engine, subjects, withdrawn_every, false)?;
        wait_until_unlocked(&path);
        let bytes = super::super::bench_search::dir_size(&path)?;
        std::fs::remove_dir_all(&path)?;
        bytes
    };
    // The same facts written as ingest writes them: in time order across all subjects, so each
    // subject's chunk is written again with each of its facts.
    let (ingest_order_bytes, ingest_order_load) = {
        let path = dir.path().join("facts-ingest-order");
        let started = Instant::now();
        load_in_time_order(&path, store_engine, subjects)?;
        let elapsed = started.elapsed();
        wait_until_unlocked(&path);
        let bytes = super::super::bench_search::dir_size(&path)?;
        std::fs::remove_dir_all(&path)?;
        (bytes, elapsed)
    };

    // Bulk load: facts and consent records in the formats ingest and the ledger view write.
    let started = Instant::now();
    let withdrawn = load(
        &dir.path().join("data/store"),
        store_engine,
        subjects,
        withdrawn_every,
        true,
    )?;
    let loaded = started.elapsed();
    eprintln!(
        "  (bulk-loaded {total} facts and {} consent records into {store_engine} in {:.1} s)",
        subjects.len(),
        loaded.as_secs_f64()
    );

    let engine = open_engine_with(dir.path(), store_cache_bytes, store_engine)?;
    // The engine's settings are the in-memory run's: default k and lifespan, the same rates.
    engine.configure_analytics(AnalyticsConfig {
        k_anonymity: params.k_anonymity(),
        expected_lifespan_years: params.expected_lifespan_years(),
        rates: params.rates().cloned(),
        ..AnalyticsConfig::default()
    });
    let store_bytes = super::super::bench_search::dir_size(&dir.path().join("data/store"))?;
    let compliance = role_caller(&engine, "compliance")?;
    let (from, to) = (params.period_from(), params.period_to());

    // The expected answer: the in-memory computation over the subjects the engine should keep.
    let kept: Vec<(Pseudonym, &[Fact])> = subjects
        .iter()
        .enumerate()
        .filter(|(idx, _)| !is_withdrawn(*idx, withdrawn_every))
        .map(|(_, (p, facts))| (*p, facts.as_slice()))
        .collect();
    let expected = compute_kpis(kept.iter().copied(), withdrawn, params);
    drop(kept);

    let mut rows = Vec::new();
    let memory_before = ProcessMemory::read()?;
    // The first query after opening reads the store from disk.
    let started = Instant::now();
    engine.kpis(&compliance, from, to)?;
    rows.push(super::super::Row {
        what: "engine kpis, first query after opening the store".to_owned(),
        n: total,
        elapsed: started.elapsed(),
    });
    let mut answer = None;
    rows.push(median_row(
        "engine kpis: store scan + decision per subject + compute",
        total,
        runs,
        || answer = Some(engine.kpis(&compliance, from, to)),
    ));
    let kpis = answer.take().context("no run")??;
    anyhow::ensure!(
        kpis == expected,
        "the engine's KPIs differ from the in-memory computation over the consenting subjects"
    );
    let mut answer = None;
    rows.push(median_row(
        "engine segments: store scan + decision per subject + compute",
        total,
        runs,
        || answer = Some(engine.segments(&compliance)),
    ));
    let segments = answer.take().context("no run")??;
    anyhow::ensure!(
        segments.excluded_for_consent == withdrawn,
        "segments left out {} subjects, not {withdrawn}",
        segments.excluded_for_consent
    );
    let memory_queries = ProcessMemory::read()?;

    // Over HTTP on loopback.
    let server = LoopbackServer::start(engine.clone())?;
    let key = engine.create_api_key(&TenantId::default_tenant(), &"compliance".parse()?)?;
    let bearer = format!("Bearer {}", key.secret.expose());
    let agent = http_agent();
    let get = |path: &str| -> anyhow::Result<Value> {
        Ok(agent
            .get(&format!("{}{path}", server.base))
            .header("Authorization", &bearer)
            .call()
            .with_context(|| format!("GET {path}"))?
            .body_mut()
            .read_json()?)
    };
    let kpis_path = format!("/v1/analytics/kpis?from={from}&to={to}");
    let mut answer = None;
    rows.push(median_row(
        "HTTP GET /v1/analytics/kpis",
        total,
        runs,
        || answer = Some(get(&kpis_path)),
    ));
    let over_http = answer.take().context("no run")??;
    anyhow::ensure!(
        over_http == serde_json::to_value(&kpis)?,
        "the KPIs over HTTP differ from the engine's"
    );
    let mut answer = None;
    rows.push(median_row(
        "HTTP GET /v1/analytics/segments",
        total,
        runs,
        || answer = Some(get("/v1/analytics/segments")),
    ));
    let over_http = answer.take().context("no run")??;
    anyhow::ensure!(
        over_http["excluded_for_consent"] == json!(withdrawn),
        "the segments over HTTP left out a different number of subjects"
    );

    // The in-memory copy, as `custodia serve` starts it: built in the background, then used.
    let started = Instant::now();
    engine.start_analytics_copies()?;
    anyhow::ensure!(
        engine.wait_for_analytics_copies(Duration::from_secs(3_600)),
        "the in-memory copy was not built within an hour"
    );
    rows.push(super::super::Row {
        what: "in-memory copy: built from the store (after a start, in the background)".to_owned(),
        n: total,
        elapsed: started.elapsed(),
    });
    let (copy_facts, copy_bytes) = engine.analytics_copy_footprint();
    let mut answer = None;
    rows.push(median_row(
        "engine kpis from the in-memory copy",
        total,
        runs,
        || answer = Some(engine.kpis(&compliance, from, to)),
    ));
    anyhow::ensure!(
        answer.take().context("no run")?? == expected,
        "the KPIs from the in-memory copy differ from the in-memory computation"
    );
    let dashboard_path = format!("{kpis_path}&compare=previous&series=week");
    let mut answer = None;
    rows.push(median_row(
        "HTTP GET /v1/analytics/kpis?compare=previous&series=week (copy)",
        total,
        runs,
        || answer = Some(get(&dashboard_path)),
    ));
    let over_http = answer.take().context("no run")??;
    anyhow::ensure!(
        over_http["customers"] == serde_json::to_value(&kpis)?["customers"],
        "the dashboard's KPIs differ from the engine's"
    );
    rows.push(median_row(
        "HTTP GET /v1/analytics/segments (copy)",
        total,
        runs,
        || {
            let _ = std::hint::black_box(get("/v1/analytics/segments"));
        },
    ));
    let tenant = TenantId::default_tenant();
    rows.push(median_row(
        "limit: plain pass over the copy's fact columns (kind, time, amount)",
        total,
        runs,
        || {
            let _ = std::hint::black_box(engine.analytics_copy_plain_pass(&tenant, from, to));
        },
    ));
    server.stop()?;
    drop(engine);

    // The building block: the same scan of the store, decoding every fact, nothing else.
    let (store, _) = Store::open(
        &dir.path().join("data/store"),
        store_engine,
        store_cache_bytes,
    )?;
    let tenant = TenantId::default_tenant();
    rows.push(median_row(
        "limit: scan + decode every fact from the same store",
        total,
        runs,
        || {
            let _ = std::hint::black_box(scan(&store, &tenant));
        },
    ));
    let (n_scanned, _) = scan(&store, &tenant)?;
    anyhow::ensure!(n_scanned == total, "scanned {n_scanned} facts, not {total}");
    drop(store);

    for row in &rows {
        eprintln!("  {:<62} {:>9.3} s", row.what, row.elapsed.as_secs_f64());
    }
    println!();
    super::super::print_table(
        &format!(
            "| query (median of {runs} runs unless first), {store_engine} store on disk, {} MiB cache | facts | seconds | facts per second |",
            store_cache_bytes / (1024 * 1024)
        ),
        &rows,
    );
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    println!(
        "| subjects in the projection / left out for consent | {} / {withdrawn} |",
        subjects.len()
    );
    println!(
        "| bulk load (store write batches of {LOAD_BATCH}, one flush) | {:.1} s |",
        loaded.as_secs_f64()
    );
    println!(
        "| store on disk (facts + consent records; after the engine's background work settled) | {} ({:.1} bytes/fact) |",
        mebibytes(store_bytes),
        store_bytes as f64 / total.max(1) as f64
    );
    println!(
        "| the projection alone on disk (a store of the facts only) | {} ({:.1} bytes/fact) |",
        mebibytes(facts_only_bytes),
        facts_only_bytes as f64 / total.max(1) as f64
    );
    println!(
        "| the projection alone on disk, written in time order across subjects as ingest writes it ({:.1} s) | {} ({:.1} bytes/fact) |",
        ingest_order_load.as_secs_f64(),
        mebibytes(ingest_order_bytes),
        ingest_order_bytes as f64 / total.max(1) as f64
    );
    println!(
        "| in-memory copy: facts / memory | {copy_facts} / {} ({:.1} bytes/fact) |",
        mebibytes(copy_bytes as u64),
        copy_bytes as f64 / copy_facts.max(1) as f64
    );
    println!(
        "| process RSS before / after the engine queries | {} / {} |",
        mebibytes(memory_before.rss_bytes),
        mebibytes(memory_queries.rss_bytes)
    );
    drop(dir);

    ingest_overhead(ingest_events, store_engine)
}

fn is_withdrawn(subject_idx: usize, every: usize) -> bool {
    every > 0 && subject_idx % every == every - 1
}

/// Waits (at most ten seconds) until the engine's background threads have let go of a store
/// just dropped, so that its files are complete.
fn wait_until_unlocked(path: &std::path::Path) {
    // Opened and closed again at once: only the wait matters, and a store that still will not
    // open shows in the size read next.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let Some(engine) = StoreEngine::found_in(path) else {
            return;
        };
        match engine.open(path, 16 * 1024 * 1024) {
            Err(custodia_store::StoreError::Locked) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => return,
        }
    }
}

/// Writes every fact in time order across the subjects, in store batches of `LOAD_BATCH`, as
/// ingest would over the shop's history (each batch touches a chunk per subject it names).
fn load_in_time_order(
    path: &std::path::Path,
    engine: StoreEngine,
    subjects: &[(Pseudonym, Vec<Fact>)],
) -> anyhow::Result<()> {
    let (store, _) = Store::open(path, engine, DEFAULT_STORE_CACHE_BYTES)?;
    let tenant = TenantId::default_tenant();
    let mut all: Vec<(custodia_core::Timestamp, usize, usize)> = subjects
        .iter()
        .enumerate()
        .flat_map(|(subject_idx, (_, facts))| {
            facts
                .iter()
                .enumerate()
                .map(move |(fact_idx, fact)| (fact.time, subject_idx, fact_idx))
        })
        .collect();
    all.sort_unstable();
    for page in all.chunks(LOAD_BATCH) {
        let mut batch = WriteBatch::new();
        for (_, subject_idx, fact_idx) in page {
            let (pseudonym, facts) = &subjects[*subject_idx];
            let fact = &facts[*fact_idx];
            batch.put_fact(
                &tenant,
                pseudonym,
                fact_event_id(fact, *fact_idx),
                fact.encode_stored(),
            );
        }
        store.write(batch)?;
    }
    store.flush()?;
    store.settle()?;
    Ok(())
}

/// The event id a fact is stored under: its time and its place among its subject's facts.
fn fact_event_id(fact: &Fact, fact_idx: usize) -> EventId {
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&(fact_idx as u64).to_be_bytes());
    EventId::from_parts(fact.time.unix_millis(), random)
}

/// Writes every fact and, with `consents`, a consent record per subject; returns how many
/// subjects withdrew.
fn load(
    path: &std::path::Path,
    engine: StoreEngine,
    subjects: &[(Pseudonym, Vec<Fact>)],
    withdrawn_every: usize,
    consents: bool,
) -> anyhow::Result<u64> {
    let (store, _) = Store::open(path, engine, DEFAULT_STORE_CACHE_BYTES)?;
    let tenant = TenantId::default_tenant();
    let purpose: PurposeId = "analytics".parse()?;
    // Consent given a month ago: inside the purpose's 395-day expiry whenever this runs.
    let since = SystemClock.now().plus_days(-30);
    let mut batch = WriteBatch::new();
    let mut in_batch = 0;
    let mut withdrawn = 0;
    for (subject_idx, (pseudonym, facts)) in subjects.iter().enumerate() {
        let state = if is_withdrawn(subject_idx, withdrawn_every) {
            withdrawn += 1;
            ConsentState::Withdrawn
        } else {
            ConsentState::Granted
        };
        if consents {
            batch.put_consent(&ConsentRecord {
                tenant: tenant.clone(),
                subject: *pseudonym,
                purpose: purpose.clone(),
                state,
                since,
                seq: subject_idx as u64,
            });
        }
        for (fact_idx, fact) in facts.iter().enumerate() {
            batch.put_fact(
                &tenant,
                pseudonym,
                fact_event_id(fact, fact_idx),
                fact.encode_stored(),
            );
        }
        in_batch += 1 + facts.len();
        if in_batch >= LOAD_BATCH {
            store.write(std::mem::take(&mut batch))?;
            in_batch = 0;
        }
    }
    store.write(batch)?;
    store.flush()?;
    store.settle()?;
    Ok(withdrawn)
}

/// Reads and decodes every fact of the tenant a page at a time: (facts, sum of their times).
fn scan(store: &Store, tenant: &TenantId) -> anyhow::Result<(usize, i64)> {
    const PAGE: usize = 4_096;
    let mut n = 0;
    let mut sum = 0i64;
    let mut after = None;
    loop {
        let page = store.facts(tenant, after, PAGE)?;
        for (pseudonym, _, bytes) in &page {
            let fact = Fact::decode_stored(*pseudonym, bytes)?;
            sum = sum.wrapping_add(fact.time.unix_micros());
            n += 1;
        }
        after = page.last().map(|(p, e, _)| (*p, *e));
        if page.len() < PAGE {
            return Ok((n, sum));
        }
    }
}

/// `track` throughput with and without an analytics fact per event, and the difference.
fn ingest_overhead(n_events: usize, store_engine: StoreEngine) -> anyhow::Result<()> {
    let n_events = n_events.max(TRACK_BATCH);
    let dir = tempfile::tempdir_in(".").context("temporary directory under ./")?;
    let engine = open_engine_with(dir.path(), DEFAULT_STORE_CACHE_BYTES, store_engine)?;
    let (_, app) = app_key(&engine)?;
    let n_users = 100;
    for user_idx in 0..n_users {
        let identify = json!({"userId": format!("ingest-{user_idx}"), "traits": {
            "email": format!("ingest{user_idx}@example.com"),
            "firstName": "Bench",
        }});
        engine.identify(&app, &IdentifyInput::from_json(&identify, "")?)?;
    }
    // As `custodia serve` runs: every fact also goes into the in-memory analytics copy.
    engine.start_analytics_copies()?;
    anyhow::ensure!(
        engine.wait_for_analytics_copies(Duration::from_secs(60))
            && engine.analytics_copy_footprint().0 == n_users,
        "the in-memory copy of the ingest engine was not built"
    );
    let per_round = (n_events / INGEST_ROUNDS).max(TRACK_BATCH);
    let mut with_fact = Vec::new();
    let mut without_fact = Vec::new();
    for round in 0..INGEST_ROUNDS {
        // Alternate which kind goes first, so drift in the machine hits both alike.
        let kinds = if round % 2 == 0 {
            [("Order Completed", true), ("Order Noted", false)]
        } else {
            [("Order Noted", false), ("Order Completed", true)]
        };
        for (event, fact) in kinds {
            let elapsed = track_round(&engine, &app, event, per_round, n_users)?;
            if fact {
                with_fact.push(elapsed);
            } else {
                without_fact.push(elapsed);
            }
        }
    }
    // Count what the projection holds, from the store the engine wrote.
    drop(engine);
    let (store, _) = Store::open(
        &dir.path().join("data/store"),
        store_engine,
        DEFAULT_STORE_CACHE_BYTES,
    )?;
    let (facts, _) = scan(&store, &TenantId::default_tenant())?;
    drop(store);
    let expected = INGEST_ROUNDS * per_round + n_users;
    anyhow::ensure!(
        facts == expected,
        "the projection holds {facts} facts, not {expected} (an order fact per Order Completed and an identify fact per subject)"
    );
    with_fact.sort();
    without_fact.sort();
    let with_fact = with_fact[with_fact.len() / 2];
    let without_fact = without_fact[without_fact.len() / 2];
    let rate = |d: Duration| per_round as f64 / d.as_secs_f64();
    let overhead_us =
        (with_fact.as_secs_f64() - without_fact.as_secs_f64()) * 1e6 / per_round as f64;
    println!();
    println!(
        "| ingest, engine `batch` of {TRACK_BATCH} track calls, median of {INGEST_ROUNDS} rounds of {per_round} | events per second | µs per event |"
    );
    println!("|---|---:|---:|");
    println!(
        "| `Order Completed` (event + analytics fact) | {:.0} | {:.1} |",
        rate(with_fact),
        with_fact.as_secs_f64() * 1e6 / per_round as f64
    );
    println!(
        "| limit: `Order Noted`, same properties (event only) | {:.0} | {:.1} |",
        rate(without_fact),
        without_fact.as_secs_f64() * 1e6 / per_round as f64
    );
    println!(
        "| projection overhead per event | {:+.1} % | {overhead_us:+.1} |",
        (with_fact.as_secs_f64() / without_fact.as_secs_f64() - 1.0) * 100.0
    );
    Ok(())
}

/// One round: `n` track calls of `event` spread over the users, in engine batches.
fn track_round(
    engine: &Engine,
    app: &Caller,
    event: &str,
    n: usize,
    n_users: usize,
) -> anyhow::Result<Duration> {
    let items: Vec<Vec<BatchItem>> = (0..n)
        .collect::<Vec<_>>()
        .chunks(TRACK_BATCH)
        .map(|chunk| {
            chunk
                .iter()
                .map(|&i| {
                    let body = json!({
                        "userId": format!("ingest-{}", i % n_users),
                        "event": event,
                        "properties": {
                            "total": 10 + i % 90,
                            "currency": "EUR",
                            "products": [{"product_id": format!("sku-{}", i % 500), "price": 8.5, "quantity": 1}],
                        }
                    });
                    Ok(BatchItem::Track(TrackInput::from_json(&body, "")?))
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    for batch in &items {
        engine.batch(app, batch)?;
    }
    Ok(started.elapsed())
}
