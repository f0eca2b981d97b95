//! `custodia bench ledger`: the consent ledger's durable appends (alone, concurrent, batched),
//! offline verification against raw SHA-256 node hashing in the same run, inclusion and
//! consistency proof latency over a large log, checkpoint signing, and consent decisions and
//! consent-checked reads through the engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use custodia_core::{Operation, Pseudonym, TenantId, Timestamp};
use custodia_engine::{ConsentInput, Engine};
use custodia_ledger::{LedgerEntry, Log, NoteSigner, Source, merkle};
use custodia_policy::Policies;
use serde_json::json;

use crate::{
    LedgerArgs, LoopbackServer, app_key, customers, http_agent, parallel, print_rows, time,
};

/// A consent entry of realistic size (about 150 bytes).
pub(crate) fn entry(n: u64) -> Vec<u8> {
    let mut attributes = std::collections::BTreeMap::new();
    attributes.insert("form_id".to_owned(), "newsletter-v3".to_owned());
    let mut pseudonym = [0u8; 16];
    pseudonym[..8].copy_from_slice(&n.to_be_bytes());
    LedgerEntry {
        time: Timestamp::from_unix_micros(1_800_000_000_000_000 + n as i64),
        tenant: TenantId::default_tenant(),
        subject: Some(Pseudonym(pseudonym)),
        kind: "consent.granted".to_owned(),
        purpose: Some("marketing_email".parse().expect("valid purpose id")),
        lawful_basis: Some(custodia_core::LawfulBasis::Consent),
        policy_hash: Some([7; 32]),
        source: Source {
            channel: Some("web".to_owned()),
            app: Some("checkout".to_owned()),
            gpc: None,
        },
        evidence: None,
        attributes,
    }
    .encode()
}

/// Median and 99th percentile of `samples`.
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}

fn latency_row(what: &str, samples: Vec<Duration>) -> String {
    let n = samples.len();
    let (p50, p99) = percentiles(samples);
    let line = format!(
        "| {what} | {n} | {:.3} µs | {:.3} µs |",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
    eprintln!(
        "  {what:<58} p50 {:>8.1} µs  p99 {:>8.1} µs",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
    line
}

/// Runs `bench ledger`.
pub fn run(args: LedgerArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let c = args.concurrency;
    eprintln!(
        "custodia bench ledger: entries={}, appends={}, concurrency={c}, {} cores",
        args.entries,
        args.appends,
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
    );
    let mut rows = Vec::new();
    let mut latencies = Vec::new();
    let signing_key = custodia_vault::SigningKey::from_seed(&custodia_vault::random_array()?)?;
    let signer = NoteSigner::new("bench.custodia.local/ledger", signing_key)?;

    // Durable appends.
    let small = Log::open(&dir.path().join("appends"))?;
    let n = args.appends;
    rows.push(time(
        "durable append, 1 entry per call (1 client)",
        n,
        || (0..n as u64).try_for_each(|i| small.append(&[entry(i)]).map(drop).map_err(Into::into)),
    )?);
    rows.push(time(
        &format!("durable append, 1 entry per call ({c} clients, grouped)"),
        n,
        || {
            parallel(n, c, |i| {
                small
                    .append(&[entry(i as u64)])
                    .map(drop)
                    .map_err(Into::into)
            })
        },
    )?);
    let batch: Vec<Vec<u8>> = (0..100).map(entry).collect();
    rows.push(time(
        "durable append, 100 entries per call, entries",
        n * 100,
        || (0..n).try_for_each(|_| small.append(&batch).map(drop).map_err(Into::into)),
    )?);

    // A large log: proofs and verification at scale.
    let big_dir = dir.path().join("big");
    let big = Log::open(&big_dir)?;
    let chunk = 10_000u64;
    let mut next = 0u64;
    let started = Instant::now();
    while next < args.entries {
        let count = chunk.min(args.entries - next);
        let entries: Vec<Vec<u8>> = (next..next + count).map(entry).collect();
        big.append(&entries)?;
        next += count;
    }
    eprintln!(
        "  (built a log of {} entries in {:.1} s)",
        args.entries,
        started.elapsed().as_secs_f64()
    );
    // A stored checkpoint, so verification checks a signature and a root too.
    big.checkpoint(&signer)?;
    rows.push(time(
        "checkpoint note signing (Ed25519), in memory",
        20_000,
        || {
            let root = big.root(args.entries)?;
            (0..20_000u64).for_each(|i| {
                std::hint::black_box(signer.sign(args.entries + i, &root));
            });
            Ok(())
        },
    )?);
    let size = big.tree_size();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next_random = move |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };
    let mut inclusion = Vec::new();
    let mut consistency = Vec::new();
    for _ in 0..10_000 {
        let seq = next_random(size);
        let started = Instant::now();
        std::hint::black_box(big.inclusion_proof(seq, size)?);
        inclusion.push(started.elapsed());
        let old = 1 + next_random(size - 1);
        let started = Instant::now();
        std::hint::black_box(big.consistency_proof(old, size)?);
        consistency.push(started.elapsed());
    }
    latencies.push(latency_row(
        &format!("inclusion proof at {size} entries"),
        inclusion,
    ));
    latencies.push(latency_row(
        &format!("consistency proof at {size} entries"),
        consistency,
    ));
    let key = signer.verifier_key();
    rows.push(time(
        "offline verification (verify_dir), entries",
        size as usize,
        || {
            custodia_ledger::verify_dir(&big_dir, &key)
                .map(drop)
                .map_err(|e| anyhow::anyhow!("{e}"))
        },
    )?);
    let left = merkle::leaf_hash(b"left");
    let right = merkle::leaf_hash(b"right");
    rows.push(time(
        "limit: raw SHA-256 node hashes (0x01 ‖ 32 ‖ 32)",
        2_000_000,
        || {
            let mut h = left;
            for _ in 0..2_000_000 {
                h = merkle::node_hash(&h, &right);
            }
            std::hint::black_box(h);
            Ok(())
        },
    )?);
    drop(big);

    // Through the engine: decisions and consent-checked reads.
    let engine = Arc::new(Engine::in_memory(
        &dir.path().join("engine"),
        Policies::builtin(),
        Arc::new(custodia_engine::SystemClock),
    )?);
    let (_, caller) = app_key(&engine)?;
    let n_subjects = 1_000;
    let subjects = customers(&engine, &caller, "c", n_subjects)?;
    let decisions: Vec<ConsentInput> = (0..n_subjects)
        .map(|i| {
            ConsentInput::from_json(&json!({"user_id": format!("c{i}"), "purpose": "marketing_email", "decision": "granted",
                "source": {"channel": "web"}, "evidence": {"ip": "203.0.113.9", "user_agent": "Bench/1.0"}}))
        })
        .collect::<Result<_, _>>()?;
    rows.push(time(
        &format!("consent decision, durable, with evidence ({c} clients)"),
        n_subjects,
        || {
            parallel(n_subjects, c, |i| {
                engine
                    .record_consent(&caller, &decisions[i])
                    .map(drop)
                    .map_err(Into::into)
            })
        },
    )?);
    let contract = engine.grant(&caller, Operation::ReadProfile, Some("order_fulfillment"))?;
    let consent = engine.grant(&caller, Operation::ReadProfile, Some("marketing_email"))?;
    let mut plain = Vec::new();
    let mut checked = Vec::new();
    for round in 0..10 {
        for (i, subject) in subjects.iter().enumerate() {
            let grant = if (i + round) % 2 == 0 {
                &contract
            } else {
                &consent
            };
            let started = Instant::now();
            std::hint::black_box(engine.profile(grant, *subject)?);
            if grant.purpose() == contract.purpose() {
                plain.push(started.elapsed())
            } else {
                checked.push(started.elapsed())
            }
        }
    }
    latencies.push(latency_row(
        "profile read, 1 client, contract purpose (access log synced per read)",
        plain,
    ));
    latencies.push(latency_row(
        "profile read, 1 client, consent purpose (+ consent check)",
        checked,
    ));

    // The access decision alone (pure function), and reads over HTTP with and without the access log.
    let policies = Policies::builtin();
    let role = policies
        .role(&"app".parse().map_err(|_| anyhow::anyhow!("role"))?)
        .cloned()
        .context("app role")?;
    let purpose = policies
        .purpose(
            &"marketing_email"
                .parse()
                .map_err(|_| anyhow::anyhow!("purpose"))?,
        )
        .cloned()
        .context("purpose")?;
    let mut decisions = Vec::with_capacity(100_000);
    for i in 0..100_000u32 {
        let status = if i % 2 == 0 {
            custodia_engine::ConsentStatus::Granted
        } else {
            custodia_engine::ConsentStatus::Withdrawn
        };
        let started = Instant::now();
        let _ = std::hint::black_box(custodia_engine::decide(
            &role,
            Operation::ReadProfile,
            &purpose,
            status,
            custodia_engine::SubjectFlags::default(),
        ));
        decisions.push(started.elapsed());
    }
    latencies.push(latency_row("access decision (pure function)", decisions));
    for record_reads in [true, false] {
        let label = if record_reads {
            "with the access log"
        } else {
            "without the access log"
        };
        let ledger = custodia_engine::LedgerConfig {
            record_reads,
            ..custodia_engine::LedgerConfig::default()
        };
        let engine = Arc::new(Engine::in_memory_with(
            &dir.path().join(format!("reads-{record_reads}")),
            Policies::builtin(),
            Arc::new(custodia_engine::SystemClock),
            ledger,
        )?);
        rows.push(http_reads(engine, 2_000, c, label)?);
    }

    print_rows(&rows);
    println!();
    println!("| latency | samples | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    for line in latencies {
        println!("{line}");
    }
    Ok(())
}

/// Profile reads over HTTP on loopback from `clients` threads, for the purpose customer_support.
fn http_reads(
    engine: Arc<Engine>,
    n: usize,
    clients: usize,
    label: &str,
) -> anyhow::Result<crate::Row> {
    let (key, caller) = app_key(&engine)?;
    let subjects = customers(&engine, &caller, "r", 100)?;
    let server = LoopbackServer::start(engine)?;
    let bearer = format!("Bearer {}", key.secret.expose());
    let agent = http_agent();
    let row = time(
        &format!("HTTP profile read, {label} ({clients} clients)"),
        n,
        || {
            parallel(n, clients, |i| {
                let subject = subjects[i % subjects.len()];
                agent
                    .get(&format!(
                        "{}/v1/subjects/{subject}?purpose=customer_support",
                        server.base
                    ))
                    .header("Authorization", &bearer)
                    .call()
                    .map(drop)
                    .map_err(|e| anyhow::anyhow!("GET profile: {e}"))
            })
        },
    )?;
    server.stop()?;
    Ok(row)
}
