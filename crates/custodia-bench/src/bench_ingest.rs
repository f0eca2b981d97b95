//! `custodia bench ingest`: durable identify and track at 1, 8, 64 and 256 concurrent clients,
//! in-process and over HTTP on loopback, next to the server's plain-HTTP ceiling, PostgreSQL +
//! pgcrypto doing the same work with the same concurrency (`postgres.rs`), consent decisions and
//! profile reads (access log on and off) at 64 clients, and the limits of the building blocks a
//! group committer would use (sled batch + flush, key-store slot writes + one sync, ledger batch
//! append, at 1/16/64/256 writes per flush), all in the same run, ending with the process's RSS.

use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Args;
use custodia_core::{SubjectId, TenantId};
use custodia_engine::{
    ConsentInput, Engine, EngineConfig, IdentifyInput, LedgerConfig, TrackInput,
};
use custodia_ledger::Log;
use custodia_policy::Policies;
use custodia_store::KvOp;
use custodia_vault::{Aad, BlindField, Keyring, RootKey, Vault};
use serde_json::{Value, json};

use super::bench_search::{ProcessMemory, cores, mebibytes, percentiles};
use super::{LoopbackServer, Row, app_key, customers, parallel, time};

mod postgres;
mod raw_http;
#[cfg(test)]
mod tests;

use postgres::{Baseline, Customer};
use raw_http::{Connection, Request};

/// Options of `bench ingest`.
#[derive(Args)]
pub struct IngestArgs {
    /// Calls per measurement (each identify measurement creates this many new customers).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..))]
    n: u32,
    /// Concurrent clients, a comma-separated list; every measurement runs once per entry.
    #[arg(long, alias = "concurrency", value_delimiter = ',', default_values_t = [1u32, 8, 64, 256],
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    clients: Vec<u32>,
    /// Concurrent clients of the consent-decision and profile-read measurements.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    consent_read_clients: u32,
    /// The PostgreSQL + pgcrypto baseline's server (e.g. `postgres://user@localhost/db`; it needs
    /// the pgcrypto extension and creates, then drops, two `custodia_bench_*` tables). Without it
    /// a throwaway cluster is made with `initdb` when that is on the PATH.
    #[arg(long)]
    postgres_url: Option<String>,
    /// Run without the PostgreSQL baseline.
    #[arg(long, conflicts_with = "postgres_url")]
    no_postgres: bool,
    /// The storage engine of the engine's store (the server's `--store-engine`).
    #[arg(long, default_value_t)]
    store_engine: custodia_store::StoreEngine,
    /// Keep the engine's store in PostgreSQL (the server's `--store`): a URL, or `baseline` for
    /// the baseline's own server (the throwaway cluster or `--postgres-url`). Each engine the
    /// run opens gets a fresh schema `custodia_bench_*` there, dropped at the end.
    #[arg(long, value_name = "URL|baseline")]
    store: Option<String>,
}

/// Writes per flush of the building blocks: what a group committer's batches would hold.
const PER_FLUSH: [usize; 4] = [1, 16, 64, 256];

pub(crate) const ENGINE_IDENTIFY: &str = "engine identify, new customer";
pub(crate) const ENGINE_TRACK: &str = "engine track, Order Completed";
pub(crate) const HTTP_HEALTHZ: &str = "HTTP GET /healthz (plain-HTTP ceiling)";
pub(crate) const HTTP_IDENTIFY: &str = "HTTP identify, new customer";
pub(crate) const HTTP_TRACK: &str = "HTTP track, Order Completed";
pub(crate) const PG_IDENTIFY: &str = "PostgreSQL identify, new customer";
pub(crate) const PG_TRACK: &str = "PostgreSQL track, Order Completed";
pub(crate) const ENGINE_CONSENT: &str = "engine consent decision with evidence";
pub(crate) const HTTP_CONSENT: &str = "HTTP consent decision with evidence";
pub(crate) const HTTP_READ_LOGGED: &str = "HTTP profile read, access log on";
pub(crate) const HTTP_READ_UNLOGGED: &str = "HTTP profile read, access log off";

/// Calls timed one by one from concurrent clients.
pub(crate) struct Load {
    /// From the moment every client was connected and released to the last answer.
    pub(crate) elapsed: Duration,
    /// One per call.
    pub(crate) latencies: Vec<Duration>,
}

impl Load {
    pub(crate) fn calls(&self) -> usize {
        self.latencies.len()
    }

    pub(crate) fn per_second(&self) -> f64 {
        self.calls() as f64 / self.elapsed.as_secs_f64()
    }
}

/// One measurement at one concurrency.
pub(crate) struct Measured {
    pub(crate) what: &'static str,
    pub(crate) clients: usize,
    pub(crate) load: Load,
}

/// A building block at one batch size: `writes` writes in batches of `per_flush`, each batch
/// made durable once.
pub(crate) struct Block {
    pub(crate) what: &'static str,
    pub(crate) per_flush: usize,
    pub(crate) writes: usize,
    pub(crate) elapsed: Duration,
}

/// Everything one run measured.
pub(crate) struct Report {
    pub(crate) payload_bytes: usize,
    pub(crate) clients: Vec<usize>,
    pub(crate) runs: Vec<Measured>,
    pub(crate) blocks: Vec<Block>,
    pub(crate) limits: Vec<Row>,
    /// What the baseline was, or why there was none.
    pub(crate) baseline: String,
    /// Where the engine's store was (an embedded engine, or PostgreSQL).
    pub(crate) store: String,
    /// `/proc/loadavg` when the run started: the machine is shared, and a busy one shows here.
    pub(crate) load_average: String,
    pub(crate) memory_after_load: ProcessMemory,
    pub(crate) memory_at_end: ProcessMemory,
}

impl Report {
    pub(crate) fn find(&self, what: &str, clients: usize) -> Option<&Measured> {
        self.runs
            .iter()
            .find(|m| m.what == what && m.clients == clients)
    }

    fn rate(&self, what: &str, clients: usize) -> Option<f64> {
        self.find(what, clients).map(|m| m.load.per_second())
    }
}

/// Runs `bench ingest` and prints its tables.
pub fn run(args: IngestArgs) -> anyhow::Result<()> {
    let report = measure(&args)?;
    print!("{}", render(&report));
    Ok(())
}

fn identify_body(i: usize, run: &str) -> Value {
    json!({
        "userId": format!("bench-{run}-{i}"),
        "traits": {
            "email": format!("customer{i}.{run}@example.com"),
            "phone": format!("+49151{:08}", i),
            "firstName": "Bench",
            "lastName": format!("Customer {i}"),
            "address": {"city": "Berlin", "country": "DE", "street": "Example Street 1"},
        }
    })
}

/// An `Order Completed` with two products, about 400 bytes of JSON.
fn track_body(i: usize, run: &str) -> Value {
    json!({
        "userId": format!("bench-{run}-{i}"),
        "event": "Order Completed",
        "properties": {
            "order_id": format!("O-{run}-{i:08}"),
            "total": 59.4,
            "revenue": 49.92,
            "shipping": 4.9,
            "tax": 9.48,
            "currency": "EUR",
            "coupon": "WINTER10",
            "products": [
                {"product_id": "sku-1042", "sku": "TEA-GRN-250", "name": "Green Tea 250 g",
                 "category": "Tea", "price": 8.5, "quantity": 4},
                {"product_id": "sku-2211", "sku": "MUG-STN-01", "name": "Stoneware Mug",
                 "category": "Kitchen", "price": 16.0, "quantity": 1},
            ],
        }
    })
}

/// The PostgreSQL form of `identify_body(i, run)`.
fn customer(i: usize, run: &str) -> Customer {
    let body = identify_body(i, run);
    let traits = &body["traits"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    Customer {
        user_id: text(&body["userId"]),
        email: text(&traits["email"]),
        phone: text(&traits["phone"]),
        first_name: text(&traits["firstName"]),
        last_name: text(&traits["lastName"]),
        address: traits["address"].to_string(),
    }
}

/// Where the engines of a run keep their stores: in their directory with an engine, or each in
/// a fresh schema of a PostgreSQL database.
enum StoreAt {
    Embedded(custodia_store::StoreEngine),
    Postgres(postgres::Schemas),
}

impl StoreAt {
    /// How the report names it.
    fn describe(&self) -> String {
        match self {
            StoreAt::Embedded(engine) => engine.to_string(),
            StoreAt::Postgres(_) => "PostgreSQL".to_owned(),
        }
    }
}

/// An engine in `dir` over a store as `store` says (durable, as `custodia serve` runs it).
fn open_engine(
    dir: &std::path::Path,
    ledger: LedgerConfig,
    store: &StoreAt,
) -> anyhow::Result<Arc<Engine>> {
    let (store_engine, store_url) = match store {
        StoreAt::Embedded(engine) => (*engine, None),
        StoreAt::Postgres(schemas) => (
            custodia_store::StoreEngine::default(),
            Some(schemas.fresh()?),
        ),
    };
    Ok(Arc::new(Engine::open(EngineConfig {
        data_dir: dir.join("data"),
        keys_dir: dir.join("keys"),
        store_cache_bytes: custodia_store::DEFAULT_STORE_CACHE_BYTES,
        store_engine,
        store_url,
        keyring: Keyring::new(RootKey::generate()?),
        policies: Policies::builtin(),
        clock: Arc::new(custodia_engine::SystemClock),
        ledger,
        min_free_bytes: custodia_engine::DEFAULT_MIN_FREE_BYTES,
    })?))
}

/// Runs `call(state, i)` for `i` in `0..n` from `clients` threads, each with its own `state`
/// (a connection) made by `connect` before the clock starts; every call is timed.
pub(crate) fn drive<S>(
    n: usize,
    clients: usize,
    connect: impl Fn() -> anyhow::Result<S> + Sync,
    call: impl Fn(&mut S, usize) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<Load> {
    let clients = clients.max(1);
    let start = Barrier::new(clients + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|t| {
                let (start, connect, call) = (&start, &connect, &call);
                scope.spawn(move || {
                    let state = connect();
                    start.wait();
                    let mut state = state?;
                    let mut latencies = Vec::with_capacity(n / clients + 1);
                    for i in (t..n).step_by(clients) {
                        let began = Instant::now();
                        call(&mut state, i)?;
                        latencies.push(began.elapsed());
                    }
                    anyhow::Ok(latencies)
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let mut latencies = Vec::with_capacity(n);
        for handle in handles {
            latencies.extend(
                handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("bench thread panicked"))??,
            );
        }
        Ok(Load {
            elapsed: began.elapsed(),
            latencies,
        })
    })
}

/// `requests[i]` over `clients` keep-alive connections to `addr`.
fn http(addr: SocketAddr, clients: usize, requests: &[Request]) -> anyhow::Result<Load> {
    drive(
        requests.len(),
        clients,
        || Connection::open(addr),
        |conn, i| conn.send(&requests[i]),
    )
}

fn measured(
    runs: &mut Vec<Measured>,
    what: &'static str,
    clients: usize,
    load: Load,
) -> anyhow::Result<()> {
    let (p50, p99) = percentiles(load.latencies.clone());
    eprintln!(
        "  {what:<44} {clients:>4} clients {:>10.0}/s  p50 {:>8.3} ms  p99 {:>8.3} ms",
        load.per_second(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    runs.push(Measured {
        what,
        clients,
        load,
    });
    Ok(())
}

/// Measures everything; prints progress on stderr.
pub(crate) fn measure(args: &IngestArgs) -> anyhow::Result<Report> {
    let n = args.n as usize;
    let clients: Vec<usize> = args.clients.iter().map(|&c| c as usize).collect();
    let fixed = args.consent_read_clients as usize;
    let most = clients.iter().copied().max().unwrap_or(1).max(fixed);
    let payload_bytes = serde_json::to_vec(&track_body(0, "engine-1"))?.len();
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned());
    eprintln!(
        "custodia bench ingest: n={n}, clients={clients:?}, {} cores, load average {load_average}, \
         track body {payload_bytes} bytes",
        cores()
    );

    // The baseline first, so that a broken one stops the run before the long part.
    let (baseline, baseline_note) = if args.no_postgres {
        (None, "none: --no-postgres".to_owned())
    } else if let Some(url) = &args.postgres_url {
        let baseline = Baseline::at_url(url)?;
        let note = baseline.describe.clone();
        (Some(baseline), note)
    } else if let Some(initdb) = custodia_pgcluster::find_initdb() {
        // Room for the engines' own connections when their store is on this server too.
        let baseline = Baseline::throwaway(&initdb, most + 40)?;
        let note = baseline.describe.clone();
        (Some(baseline), note)
    } else {
        let note = "none: neither --postgres-url nor `initdb` on the PATH. To compare, install \
                    PostgreSQL with pgcrypto (Debian: `apt-get install postgresql`) and put its \
                    bin directory on the PATH (e.g. /usr/lib/postgresql/15/bin), or pass \
                    --postgres-url postgres://USER@HOST/DB"
            .to_owned();
        eprintln!("  no PostgreSQL baseline in this run: {note}");
        (None, note)
    };

    let store = match args.store.as_deref() {
        None => StoreAt::Embedded(args.store_engine),
        Some("baseline") => {
            let url = baseline.as_ref().map(Baseline::url).ok_or_else(|| {
                anyhow::anyhow!("--store baseline needs the baseline: drop --no-postgres")
            })?;
            StoreAt::Postgres(postgres::Schemas::on(&url)?)
        }
        Some(url) => StoreAt::Postgres(postgres::Schemas::on(url)?),
    };
    eprintln!("  the engine's store: {}", store.describe());

    let dir = tempfile::tempdir()?;
    let mut runs = Vec::new();

    // The engine in-process: new customers, then an order each, per concurrency.
    let engine = open_engine(&dir.path().join("ingest"), LedgerConfig::default(), &store)?;
    let (key, caller) = app_key(&engine)?;
    for &c in &clients {
        let label = format!("engine-{c}");
        let identifies = (0..n)
            .map(|i| IdentifyInput::from_json(&identify_body(i, &label), ""))
            .collect::<Result<Vec<_>, _>>()?;
        let tracks = (0..n)
            .map(|i| TrackInput::from_json(&track_body(i, &label), ""))
            .collect::<Result<Vec<_>, _>>()?;
        let load = drive(
            n,
            c,
            || Ok(()),
            |_, i| {
                engine.identify(&caller, &identifies[i])?;
                Ok(())
            },
        )?;
        measured(&mut runs, ENGINE_IDENTIFY, c, load)?;
        let load = drive(
            n,
            c,
            || Ok(()),
            |_, i| {
                engine.track(&caller, &tracks[i])?;
                Ok(())
            },
        )?;
        measured(&mut runs, ENGINE_TRACK, c, load)?;
    }

    // The same over HTTP, with the ceiling of the same connections.
    let server = LoopbackServer::start(engine.clone())?;
    let addr: SocketAddr = server
        .base
        .trim_start_matches("http://")
        .parse()
        .map_err(|_| anyhow::anyhow!("server address {}", server.base))?;
    let token = key.secret.expose().to_owned();
    let post = |path: &str, body: &Value| -> anyhow::Result<Request> {
        Ok(Request::new(
            "POST",
            path,
            Some(&token),
            Some(&serde_json::to_vec(body)?),
        ))
    };
    for &c in &clients {
        let healthz: Vec<Request> = (0..4 * n)
            .map(|_| Request::new("GET", "/healthz", None, None))
            .collect();
        measured(&mut runs, HTTP_HEALTHZ, c, http(addr, c, &healthz)?)?;
        let label = format!("http-{c}");
        let identifies = (0..n)
            .map(|i| post("/v1/identify", &identify_body(i, &label)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        measured(&mut runs, HTTP_IDENTIFY, c, http(addr, c, &identifies)?)?;
        let tracks = (0..n)
            .map(|i| post("/v1/track", &track_body(i, &label)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        measured(&mut runs, HTTP_TRACK, c, http(addr, c, &tracks)?)?;
    }

    // The server indexes what was ingested for search in the background; its backlog is worked
    // off first, so that the next measurements do not share the CPU with it.
    let started = std::time::Instant::now();
    let n_indexed = engine.index_all_pending()?;
    eprintln!(
        "  search index caught up: {n_indexed} queued updates in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Consent decisions with evidence, for customers made above (one decision each).
    let consent = |run: &str, i: usize| {
        json!({"user_id": format!("bench-{run}-{i}"), "purpose": "marketing_email",
               "decision": "granted", "source": {"channel": "web", "app": "checkout"},
               "evidence": {"ip": "203.0.113.9", "user_agent": "Bench/1.0", "form_id": "checkout-v2"}})
    };
    let first = clients.first().copied().unwrap_or(1);
    let decisions = (0..n)
        .map(|i| ConsentInput::from_json(&consent(&format!("engine-{first}"), i)))
        .collect::<Result<Vec<_>, _>>()?;
    let load = drive(
        n,
        fixed,
        || Ok(()),
        |_, i| {
            engine.record_consent(&caller, &decisions[i])?;
            Ok(())
        },
    )?;
    measured(&mut runs, ENGINE_CONSENT, fixed, load)?;
    let decisions = (0..n)
        .map(|i| post("/v1/consents", &consent(&format!("http-{first}"), i)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    measured(
        &mut runs,
        HTTP_CONSENT,
        fixed,
        http(addr, fixed, &decisions)?,
    )?;
    let memory_after_load = ProcessMemory::read()?;
    server.stop()?;
    drop(engine);

    // Profile reads with the access log on and off (an engine setting), each on its own engine.
    for (record_reads, what) in [(true, HTTP_READ_LOGGED), (false, HTTP_READ_UNLOGGED)] {
        let ledger = LedgerConfig {
            record_reads,
            ..LedgerConfig::default()
        };
        let engine = open_engine(
            &dir.path().join(format!("reads-{record_reads}")),
            ledger,
            &store,
        )?;
        let (key, caller) = app_key(&engine)?;
        let subjects = customers(&engine, &caller, "r", 100)?;
        let server = LoopbackServer::start(engine.clone())?;
        let addr: SocketAddr = server
            .base
            .trim_start_matches("http://")
            .parse()
            .map_err(|_| anyhow::anyhow!("server address {}", server.base))?;
        let reads: Vec<Request> = (0..n)
            .map(|i| {
                let path = format!(
                    "/v1/subjects/{}?purpose=customer_support",
                    subjects[i % subjects.len()]
                );
                Request::new("GET", &path, Some(key.secret.expose()), None)
            })
            .collect();
        measured(&mut runs, what, fixed, http(addr, fixed, &reads)?)?;
        server.stop()?;
    }

    // PostgreSQL + pgcrypto, the same work at the same concurrencies.
    if let Some(baseline) = &baseline {
        for &c in &clients {
            let label = format!("pg-{c}");
            let customers = {
                let label = label.clone();
                move |i| customer(i, &label)
            };
            measured(
                &mut runs,
                PG_IDENTIFY,
                c,
                baseline.identify(n, c, customers)?,
            )?;
            let users = {
                let label = label.clone();
                move |i| format!("bench-{label}-{i}")
            };
            let payloads = move |i| track_body(i, &label).to_string();
            measured(
                &mut runs,
                PG_TRACK,
                c,
                baseline.track(n, c, users, payloads)?,
            )?;
        }
    }
    let (blocks, limits) = building_blocks(dir.path(), n, &store)?;
    let store_note = store.describe();
    // The store's schemas go first, while the baseline's server (which may hold them) runs.
    drop(store);
    drop(baseline);
    Ok(Report {
        payload_bytes,
        clients,
        runs,
        blocks,
        limits,
        baseline: baseline_note,
        store: store_note,
        load_average,
        memory_after_load,
        memory_at_end: ProcessMemory::read()?,
    })
}

/// The building blocks a group committer would use, at the batch sizes of [`PER_FLUSH`], one
/// client (a committer is one thread), plus the crypto limits.
fn building_blocks(
    dir: &std::path::Path,
    n: usize,
    store_at: &StoreAt,
) -> anyhow::Result<(Vec<Block>, Vec<Row>)> {
    let mut blocks = Vec::new();
    let value = vec![0xA5u8; 420];
    let (store, store_block): (Arc<dyn custodia_store::KvBackend>, _) = match store_at {
        StoreAt::Embedded(store_engine) => (
            store_engine.open(
                &dir.join(format!("raw-{store_engine}")),
                custodia_store::DEFAULT_STORE_CACHE_BYTES,
            )?,
            match store_engine {
                custodia_store::StoreEngine::Sled => "sled batch (420-byte values) + flush",
                custodia_store::StoreEngine::Fjall => "fjall batch (420-byte values) + flush",
            },
        ),
        StoreAt::Postgres(schemas) => (
            Arc::new(custodia_store::PostgresBackend::connect(
                &schemas.fresh()?,
                custodia_store::DEFAULT_STORE_CACHE_BYTES,
            )?),
            "PostgreSQL store batch (420-byte values), one transaction",
        ),
    };
    let mut next_key = 0u64;
    for per_flush in PER_FLUSH {
        block(&mut blocks, n, store_block, per_flush, || {
            let ops = (0..per_flush)
                .map(|_| {
                    next_key += 1;
                    KvOp::Put {
                        key: next_key.to_be_bytes().to_vec(),
                        value: value.clone(),
                    }
                })
                .collect();
            store.apply(ops)?;
            store.flush()?;
            Ok(())
        })?;
    }
    drop(store);

    // The key store's file: 128-byte slots written in place, one sync per batch (its own create
    // syncs per key; this is what one sync for a batch of new subjects would cost).
    std::fs::create_dir_all(dir.join("raw-keys"))?;
    let slots = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.join("raw-keys/slots"))?;
    let slot = [0x3Cu8; 128];
    let mut next_slot = 0u64;
    for per_flush in PER_FLUSH {
        block(
            &mut blocks,
            n,
            "key-store slots (128 bytes) + one sync",
            per_flush,
            || {
                for _ in 0..per_flush {
                    slots.write_all_at(&slot, 128 * next_slot)?;
                    next_slot += 1;
                }
                slots.sync_data()?;
                Ok(())
            },
        )?;
    }

    let ledger = Log::open(&dir.join("raw-ledger"))?;
    let mut next_entry = 0u64;
    for per_flush in PER_FLUSH {
        block(
            &mut blocks,
            n,
            "ledger append (~150-byte entries), synced",
            per_flush,
            || {
                let entries: Vec<Vec<u8>> = (0..per_flush as u64)
                    .map(|k| super::bench_ledger::entry(next_entry + k))
                    .collect();
                next_entry += per_flush as u64;
                ledger.append(&entries)?;
                Ok(())
            },
        )?;
    }
    drop(ledger);

    // The key store itself, and the crypto, as the earlier version of this benchmark measured.
    let mut limits = Vec::new();
    let vault = Vault::open(&dir.join("keys"), Keyring::new(RootKey::generate()?))?;
    let tenant = TenantId::default_tenant();
    let keys = vault.tenant(&tenant)?;
    let subjects: Vec<SubjectId> = (0..n.min(2_000))
        .map(|_| Ok(SubjectId::from_random(custodia_vault::random_array()?)))
        .collect::<anyhow::Result<_>>()?;
    let half = subjects.len() / 2;
    limits.push(time(
        "key store create_data_key (slot write + sync), 1 client",
        half,
        || {
            subjects[..half]
                .iter()
                .try_for_each(|s| keys.create_data_key(*s).map(drop).map_err(Into::into))
        },
    )?);
    let rest = &subjects[half..];
    limits.push(time(
        "key store create_data_key (slot write + sync), 64 clients",
        rest.len(),
        || {
            parallel(rest.len(), 64, |i| {
                keys.create_data_key(rest[i]).map(drop).map_err(Into::into)
            })
        },
    )?);
    let data_key = keys.data_key(subjects[0])?;
    let aad = Aad {
        tenant: &tenant,
        subject: subjects[0],
        kind: "profile",
    };
    let m = (40 * n).clamp(1_000, 200_000);
    limits.push(time("AES-256-GCM seal, 420-byte record", m, || {
        (0..m).try_for_each(|_| data_key.seal(&aad, &value).map(drop).map_err(Into::into))
    })?);
    limits.push(time("HMAC-SHA256 blind index", m, || {
        (0..m).for_each(|i| {
            std::hint::black_box(keys.blind_index(
                BlindField::Email,
                if i % 2 == 0 {
                    "a@example.com"
                } else {
                    "b@example.com"
                },
            ));
        });
        Ok(())
    })?);
    Ok((blocks, limits))
}

/// Times `flushes` calls of `write_batch` (each a batch of `per_flush` writes made durable), with
/// enough flushes for a stable figure: `n / per_flush`, at least 50, at most 2,000.
fn block(
    blocks: &mut Vec<Block>,
    n: usize,
    what: &'static str,
    per_flush: usize,
    mut write_batch: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let flushes = (n / per_flush).clamp(50, 2_000);
    let began = Instant::now();
    for _ in 0..flushes {
        write_batch()?;
    }
    let block = Block {
        what,
        per_flush,
        writes: flushes * per_flush,
        elapsed: began.elapsed(),
    };
    eprintln!(
        "  {what:<44} {per_flush:>4} per flush {:>10.0} writes/s",
        block.writes as f64 / block.elapsed.as_secs_f64()
    );
    blocks.push(block);
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".to_owned(),
    }
}

/// The report as Markdown tables.
pub(crate) fn render(report: &Report) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!(
        "{} cores, load average at start {}; track body: {} bytes of JSON; Custodia's store: \
         {}; baseline: {}",
        cores(),
        report.load_average,
        report.payload_bytes,
        report.store,
        report.baseline
    ));
    line(String::new());
    line("| measurement | clients | calls | calls/s | p50 ms | p99 ms |".to_owned());
    line("|---|---:|---:|---:|---:|---:|".to_owned());
    for m in &report.runs {
        let (p50, p99) = percentiles(m.load.latencies.clone());
        line(format!(
            "| {} | {} | {} | {:.0} | {} | {} |",
            m.what,
            m.clients,
            m.load.calls(),
            m.load.per_second(),
            ms(p50),
            ms(p99)
        ));
    }
    line(String::new());
    line(
        "| clients | HTTP track / healthz | HTTP track / PostgreSQL | engine track / PostgreSQL | \
         HTTP identify / PostgreSQL | engine identify / PostgreSQL | HTTP track / engine track |"
            .to_owned(),
    );
    line("|---:|---:|---:|---:|---:|---:|---:|".to_owned());
    for &c in &report.clients {
        let r = |what| report.rate(what, c);
        line(format!(
            "| {c} | {} | {} | {} | {} | {} | {} |",
            ratio(r(HTTP_TRACK), r(HTTP_HEALTHZ)),
            ratio(r(HTTP_TRACK), r(PG_TRACK)),
            ratio(r(ENGINE_TRACK), r(PG_TRACK)),
            ratio(r(HTTP_IDENTIFY), r(PG_IDENTIFY)),
            ratio(r(ENGINE_IDENTIFY), r(PG_IDENTIFY)),
            ratio(r(HTTP_TRACK), r(ENGINE_TRACK)),
        ));
    }
    line(String::new());
    line(
        "| building block (1 thread) | writes per flush | writes | writes/s | flushes/s |"
            .to_owned(),
    );
    line("|---|---:|---:|---:|---:|".to_owned());
    for b in &report.blocks {
        let seconds = b.elapsed.as_secs_f64();
        line(format!(
            "| {} | {} | {} | {:.0} | {:.0} |",
            b.what,
            b.per_flush,
            b.writes,
            b.writes as f64 / seconds,
            (b.writes / b.per_flush) as f64 / seconds
        ));
    }
    line(String::new());
    line("| limit | operations | seconds | per second |".to_owned());
    line("|---|---:|---:|---:|".to_owned());
    for row in &report.limits {
        line(format!(
            "| {} | {} | {:.3} | {:.0} |",
            row.what,
            row.n,
            row.elapsed.as_secs_f64(),
            row.per_second()
        ));
    }
    line(String::new());
    line(
        "| process memory (this process: engine, server and load generator) | RSS | peak RSS |"
            .to_owned(),
    );
    line("|---|---:|---:|".to_owned());
    for (when, memory) in [
        (
            "after the ingest and consent runs",
            &report.memory_after_load,
        ),
        ("at the end", &report.memory_at_end),
    ] {
        line(format!(
            "| {when} | {} | {} |",
            mebibytes(memory.rss_bytes),
            mebibytes(memory.peak_rss_bytes)
        ));
    }
    out
}
