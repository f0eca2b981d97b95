//! `custodia bench erasure`: erasing a subject with many events through the engine (sled store,
//! key store and ledger on disk), measured in the same run as its building block, reading all of
//! that subject's events back (which is also what an access export does with them).

use std::time::{Duration, Instant};

use clap::Args;
use custodia_core::{Operation, SubjectId, TenantId};
use custodia_engine::{BatchItem, Caller, Engine, ErasureOptions, IdentifyInput, TrackInput};
use serde_json::{Value, json};

use super::bench_search::{cores, percentiles};
use super::{app_key, open_engine, role_caller};

/// Options of `bench erasure`.
#[derive(Args)]
pub struct ErasureArgs {
    /// Events of each erased subject.
    #[arg(long, default_value_t = 2_000)]
    events: usize,
    /// Subjects to fill and erase, one after the other.
    #[arg(long, default_value_t = 3)]
    subjects: usize,
}

/// Track calls per batch while filling a subject.
const BATCH: usize = 500;

/// Events per page when reading back: the engine's largest page (`MAX_EVENT_PAGE`, which the
/// engine does not export).
const PAGE: usize = 500;

/// Runs `bench erasure`.
pub fn run(args: ErasureArgs) -> anyhow::Result<()> {
    let n_events = args.events.max(1);
    let n_subjects = args.subjects.max(1);
    eprintln!(
        "custodia bench erasure: events={n_events}, subjects={n_subjects}, {} cores",
        cores()
    );
    let dir = tempfile::tempdir()?;
    let engine = open_engine(dir.path())?;
    let (_, app) = app_key(&engine)?;
    let admin = role_caller(&engine, "admin")?;

    let started = Instant::now();
    let subjects: Vec<SubjectId> = (0..n_subjects)
        .map(|subject_idx| fill(&engine, &app, subject_idx, n_events))
        .collect::<anyhow::Result<_>>()?;
    // `custodia serve` indexes queued subjects in the background; here the queue is drained
    // before anything is timed, so each subject's search document is in the index and erasure
    // purges it as it would in production.
    while engine.index_pending(&TenantId::default_tenant())? > 0 {}
    let filled = started.elapsed();
    eprintln!(
        "  (ingested and indexed {} events in batches of {BATCH} in {:.1} s, {:.0}/s)",
        n_subjects * n_events,
        filled.as_secs_f64(),
        (n_subjects * n_events) as f64 / filled.as_secs_f64()
    );

    let grant = engine.grant(&app, Operation::ReadProfile, Some("order_fulfillment"))?;
    let mut reads = Vec::new();
    let mut erasures = Vec::new();
    for (subject_idx, subject) in subjects.iter().enumerate() {
        let started = Instant::now();
        let mut n_read = 0;
        let mut cursor: Option<String> = None;
        loop {
            let page = engine.events(&grant, *subject, cursor.as_deref(), PAGE)?;
            n_read += page.events.len();
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        reads.push(started.elapsed());
        anyhow::ensure!(n_read == n_events, "read {n_read} events, not {n_events}");

        let started = Instant::now();
        let outcome = engine.erase(&admin, *subject, &ErasureOptions::default())?;
        erasures.push(started.elapsed());
        let n_erased: u64 = outcome.erased.iter().map(|e| e.records).sum();
        anyhow::ensure!(
            outcome.key_destroyed && n_erased == n_events as u64 + 1,
            "erasure removed {n_erased} records (key destroyed: {})",
            outcome.key_destroyed
        );
        anyhow::ensure!(
            engine.events(&grant, *subject, None, 1).is_err(),
            "the erased subject's events are still readable"
        );
        eprintln!(
            "  subject {subject_idx}: read all {n_events} events {:>9.1} ms, erase {:>9.1} ms",
            ms(reads[subject_idx]),
            ms(erasures[subject_idx])
        );
    }

    println!("| subject | events | read all events back (ms) | erase (ms) |");
    println!("|---:|---:|---:|---:|");
    for (subject_idx, (read, erase)) in reads.iter().zip(&erasures).enumerate() {
        println!(
            "| {subject_idx} | {n_events} | {:.1} | {:.1} |",
            ms(*read),
            ms(*erase)
        );
    }
    let (read_p50, _) = percentiles(reads);
    let (erase_p50, _) = percentiles(erasures);
    println!();
    println!("| figure (median over subjects) | value |");
    println!("|---|---:|");
    println!(
        "| erase a subject with {n_events} events | {:.1} ms ({:.0} events/s) |",
        ms(erase_p50),
        n_events as f64 / erase_p50.as_secs_f64()
    );
    println!(
        "| building block: read all {n_events} events back (pages of {PAGE}, decrypted, access log synced per page) | {:.1} ms ({:.0} events/s) |",
        ms(read_p50),
        n_events as f64 / read_p50.as_secs_f64()
    );
    Ok(())
}

/// Identifies subject `subject_idx` and records `n_events` events for it (views, cart additions,
/// page views and feedback: no purchases, so no legal hold keeps any of them and erasure deletes
/// everything and destroys the key).
fn fill(
    engine: &Engine,
    app: &Caller,
    subject_idx: usize,
    n_events: usize,
) -> anyhow::Result<SubjectId> {
    let user_id = format!("erase-{subject_idx}");
    let identify = json!({"userId": user_id, "traits": {
        "email": format!("erase{subject_idx}@example.com"),
        "firstName": "Bench",
        "lastName": format!("Subject {subject_idx}"),
        "address": {"city": "Berlin", "country": "DE", "street": "Example Street 1"},
    }});
    let subject = engine
        .identify(app, &IdentifyInput::from_json(&identify, "")?)?
        .subject_id;
    let mut event_idx = 0;
    while event_idx < n_events {
        let end = (event_idx + BATCH).min(n_events);
        let items = (event_idx..end)
            .map(|i| {
                Ok(BatchItem::Track(TrackInput::from_json(
                    &event(&user_id, i),
                    "",
                )?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        engine.batch(app, &items)?;
        event_idx = end;
    }
    Ok(subject)
}

/// Event `i` of a subject: 6 in 10 product views, 2 page views, 1 cart addition, then an NPS
/// answer or a review in turn.
fn event(user_id: &str, i: usize) -> Value {
    let (name, properties) = match i % 10 {
        0..=5 => (
            "Product Viewed",
            json!({"product_id": format!("sku-{}", i % 500), "name": "Tea", "price": 8.5, "category": "Green tea"}),
        ),
        6 | 7 => (
            "Page Viewed",
            json!({"url": format!("https://shop.example/p/{i}"), "title": "Green tea", "referrer": "https://search.example/"}),
        ),
        8 => (
            "Product Added",
            json!({"product_id": format!("sku-{}", i % 500), "quantity": 1 + i % 3, "price": 8.5}),
        ),
        _ if i % 20 == 9 => ("NPS Answered", json!({"score": i % 11})),
        _ => (
            "Product Reviewed",
            json!({"product_id": format!("sku-{}", i % 500), "rating": 1 + i % 5, "review_body": "Lovely tea."}),
        ),
    };
    json!({"userId": user_id, "event": name, "properties": properties})
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
