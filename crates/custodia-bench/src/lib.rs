//! The benchmarks behind `custodia bench <what>`: each measures a capability next to the limits
//! of the building blocks underneath, in the same run. The binary embeds [`BenchCommand`] and
//! hands it to [`run`].
//!
//! `bench ingest` (here): identify + track throughput in-process and over HTTP on loopback,
//! measured in the same run as the limits of the building blocks underneath (sled writes with the
//! same flush policy, key-store slot writes, AES-256-GCM seals, HMAC-SHA256 blind indexes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use custodia_core::{RoleName, SubjectId, TenantId};
use custodia_engine::{
    Caller, Engine, EngineConfig, IdentifyInput, NewApiKey, SystemClock, TrackInput,
};
use custodia_policy::Policies;
use custodia_server::{AppState, ServerConfig};
use custodia_store::{KvBackend, KvOp, SledBackend};
use custodia_vault::{Aad, BlindField, Keyring, RootKey, Vault};
use serde_json::{Value, json};

mod bench_analytics;
mod bench_erasure;
mod bench_keys;
mod bench_ledger;
mod bench_search;

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Ingestion throughput against the building blocks' limits.
    Ingest(IngestArgs),
    /// Consent ledger: durable appends, verification, proofs at scale, checkpoints, consent
    /// decisions and checks.
    Ledger(LedgerArgs),
    /// Search index: indexing throughput, size, memory and query latency.
    Search(bench_search::SearchArgs),
    /// Root-key rotation of a key store with many subject keys.
    Rotate(bench_keys::RotateArgs),
    /// Analytics KPIs and segments over an in-memory projection.
    Analytics(bench_analytics::AnalyticsArgs),
    /// Erasure of a subject with many events.
    Erasure(bench_erasure::ErasureArgs),
}

/// Options of `bench ledger`.
#[derive(Args)]
pub struct LedgerArgs {
    /// Entries in the large log that proofs and verification run over.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) entries: u64,
    /// Durable single-entry appends to time.
    #[arg(long, default_value_t = 2_000)]
    pub(crate) appends: usize,
    /// Concurrent clients for the grouped appends and the engine measurements.
    #[arg(long, default_value_t = 8)]
    pub(crate) concurrency: usize,
}

/// Options of `bench ingest`.
#[derive(Args)]
pub struct IngestArgs {
    /// Customers to create per measurement (each: one identify and one track).
    #[arg(long, default_value_t = 2_000)]
    n: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

/// Runs a benchmark command.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Ingest(args) => ingest(args),
        BenchCommand::Ledger(args) => bench_ledger::run(args),
        BenchCommand::Search(args) => bench_search::run(args),
        BenchCommand::Rotate(args) => bench_keys::run(args),
        BenchCommand::Analytics(args) => bench_analytics::run(args),
        BenchCommand::Erasure(args) => bench_erasure::run(args),
    }
}

pub(crate) struct Row {
    pub(crate) what: String,
    pub(crate) n: usize,
    pub(crate) elapsed: Duration,
}

impl Row {
    pub(crate) fn per_second(&self) -> f64 {
        self.n as f64 / self.elapsed.as_secs_f64()
    }
}

pub(crate) fn time<F: FnOnce() -> anyhow::Result<()>>(
    what: &str,
    n: usize,
    f: F,
) -> anyhow::Result<Row> {
    let started = Instant::now();
    f()?;
    let row = Row {
        what: what.to_owned(),
        n,
        elapsed: started.elapsed(),
    };
    eprintln!("  {:<58} {:>12.0}/s", row.what, row.per_second());
    Ok(row)
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

fn track_body(i: usize, run: &str) -> Value {
    json!({
        "userId": format!("bench-{run}-{i}"),
        "event": "Order Completed",
        "properties": {
            "order_id": format!("O-{i}"),
            "total": 42.5,
            "currency": "EUR",
            "products": [{"product_id": "sku-1", "name": "Tea", "price": 8.5, "quantity": 5}],
        }
    })
}

fn open_engine(dir: &std::path::Path) -> anyhow::Result<Arc<Engine>> {
    open_engine_with_cache(dir, custodia_store::DEFAULT_STORE_CACHE_BYTES)
}

/// [`open_engine`] with a store page cache of `store_cache_bytes`.
fn open_engine_with_cache(
    dir: &std::path::Path,
    store_cache_bytes: u64,
) -> anyhow::Result<Arc<Engine>> {
    let engine = Engine::open(EngineConfig {
        data_dir: dir.join("data"),
        keys_dir: dir.join("keys"),
        store_cache_bytes,
        keyring: Keyring::new(RootKey::generate()?),
        policies: Policies::builtin(),
        clock: Arc::new(SystemClock),
        ledger: custodia_engine::LedgerConfig::default(),
        min_free_bytes: custodia_engine::DEFAULT_MIN_FREE_BYTES,
    })?;
    Ok(Arc::new(engine))
}

/// An API key of `role` in the default tenant, and the caller it authenticates as.
pub(crate) fn role_caller(engine: &Engine, role: &str) -> anyhow::Result<Caller> {
    let role = role
        .parse::<RoleName>()
        .map_err(|_| anyhow::anyhow!("role {role}"))?;
    let key = engine.create_api_key(&TenantId::default_tenant(), &role)?;
    Ok(engine.authenticate(key.secret.expose())?)
}

/// Splits `0..n` over `threads` threads running `f(i)`.
pub(crate) fn parallel<F>(n: usize, threads: usize, f: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> anyhow::Result<()> + Send + Sync,
{
    let threads = threads.max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                scope.spawn(move || (t..n).step_by(threads).try_for_each(f))
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .map_err(|_| anyhow::anyhow!("bench thread panicked"))?
        })
    })
}

fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let n = args.n;
    let c = args.concurrency;
    let dir = tempfile::tempdir()?;
    eprintln!(
        "custodia bench ingest: n={n}, concurrency={c}, {} cores",
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
    );
    let mut rows = Vec::new();

    // The engine, in-process.
    let engine = open_engine(dir.path())?;
    let (key, caller) = app_key(&engine)?;
    let inputs = |run: &str| -> anyhow::Result<Vec<(IdentifyInput, TrackInput)>> {
        (0..n)
            .map(|i| {
                Ok((
                    IdentifyInput::from_json(&identify_body(i, run), "")?,
                    TrackInput::from_json(&track_body(i, run), "")?,
                ))
            })
            .collect()
    };
    let serial = inputs("serial")?;
    rows.push(time("engine identify, new customer (1 client)", n, || {
        serial
            .iter()
            .try_for_each(|(id, _)| engine.identify(&caller, id).map(drop).map_err(Into::into))
    })?);
    rows.push(time("engine track, Order Completed (1 client)", n, || {
        serial
            .iter()
            .try_for_each(|(_, tr)| engine.track(&caller, tr).map(drop).map_err(Into::into))
    })?);
    let concurrent = inputs("concurrent")?;
    rows.push(time(
        &format!("engine identify + track ({c} clients), calls"),
        2 * n,
        || {
            parallel(n, c, |i| {
                engine.identify(&caller, &concurrent[i].0)?;
                engine.track(&caller, &concurrent[i].1)?;
                Ok(())
            })
        },
    )?);

    // Over HTTP on loopback.
    let server = LoopbackServer::start(engine.clone())?;
    let bearer = format!("Bearer {}", key.secret.expose());
    let agent = http_agent();
    let post = |path: &str, body: &Value| -> anyhow::Result<()> {
        agent
            .post(&format!("{}{path}", server.base))
            .header("Authorization", &bearer)
            .send_json(body)
            .with_context(|| format!("POST {path}"))?;
        Ok(())
    };
    rows.push(time(
        &format!("HTTP identify + track ({c} clients), calls"),
        2 * n,
        || {
            parallel(n, c, |i| {
                post("/v1/identify", &identify_body(i, "http"))?;
                post("/v1/track", &track_body(i, "http"))
            })
        },
    )?);
    server.stop()?;
    drop(engine);

    // The building blocks, in the same run.
    let value = vec![0xA5u8; 420];
    let sled = SledBackend::open(&dir.path().join("raw-sled"))?;
    rows.push(time("sled put + flush per write (1 client)", n, || {
        (0..n).try_for_each(|i| {
            sled.apply(vec![KvOp::Put {
                key: (i as u64).to_be_bytes().to_vec(),
                value: value.clone(),
            }])?;
            sled.flush().map_err(Into::into)
        })
    })?);
    rows.push(time(
        &format!("sled put + flush per write ({c} clients)"),
        n,
        || {
            parallel(n, c, |i| {
                sled.apply(vec![KvOp::Put {
                    key: ((n + i) as u64).to_be_bytes().to_vec(),
                    value: value.clone(),
                }])?;
                sled.flush().map_err(Into::into)
            })
        },
    )?);
    let vault = Vault::open(
        &dir.path().join("raw-keys"),
        Keyring::new(RootKey::generate()?),
    )?;
    let tenant = TenantId::default_tenant();
    let keys = vault.tenant(&tenant)?;
    let subjects: Vec<SubjectId> = (0..n)
        .map(|_| Ok(SubjectId::from_random(custodia_vault::random_array()?)))
        .collect::<anyhow::Result<_>>()?;
    rows.push(time(
        "key store: create subject key (slot write + sync)",
        n,
        || {
            subjects
                .iter()
                .try_for_each(|s| keys.create_data_key(*s).map(drop).map_err(Into::into))
        },
    )?);
    let data_key = keys.data_key(subjects[0])?;
    let aad = Aad {
        tenant: &tenant,
        subject: subjects[0],
        kind: "profile",
    };
    let m = n * 50;
    rows.push(time("AES-256-GCM seal, 420-byte record", m, || {
        (0..m).try_for_each(|_| data_key.seal(&aad, &value).map(drop).map_err(Into::into))
    })?);
    rows.push(time("HMAC-SHA256 blind index", m, || {
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

    print_rows(&rows);
    Ok(())
}

/// Prints the rows as a Markdown table.
pub(crate) fn print_rows(rows: &[Row]) {
    print_table("| measurement | operations | seconds | per second |", rows);
}

/// Prints the rows as a Markdown table under `header` (four columns: what, n, seconds, rate).
pub(crate) fn print_table(header: &str, rows: &[Row]) {
    println!("{header}");
    println!("|---|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {:.3} | {:.0} |",
            row.what,
            row.n,
            row.elapsed.as_secs_f64(),
            row.per_second()
        );
    }
}

/// An API key of role `app` in the default tenant, and the caller it authenticates as.
pub(crate) fn app_key(engine: &Engine) -> anyhow::Result<(NewApiKey, Caller)> {
    let role = "app"
        .parse::<RoleName>()
        .map_err(|_| anyhow::anyhow!("role"))?;
    let key = engine.create_api_key(&TenantId::default_tenant(), &role)?;
    let caller = engine.authenticate(key.secret.expose())?;
    Ok((key, caller))
}

/// Creates `n` customers `<prefix><i>` with a name only; their subject ids.
pub(crate) fn customers(
    engine: &Engine,
    caller: &Caller,
    prefix: &str,
    n: usize,
) -> anyhow::Result<Vec<SubjectId>> {
    (0..n)
        .map(|i| {
            let body = json!({"userId": format!("{prefix}{i}"), "traits": {"name": "Bench"}});
            let input = IdentifyInput::from_json(&body, "")?;
            Ok(engine.identify(caller, &input)?.subject_id)
        })
        .collect()
}

/// A blocking HTTP client that treats error statuses as errors.
pub(crate) fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(true)
        .build()
        .into()
}

/// The real server on a free loopback port, without rate limits: a benchmark is one key sending
/// as fast as it can.
pub(crate) struct LoopbackServer {
    runtime: tokio::runtime::Runtime,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl LoopbackServer {
    /// Starts serving `engine`.
    pub(crate) fn start(engine: Arc<Engine>) -> anyhow::Result<LoopbackServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let base = format!("http://{}", listener.local_addr()?);
        let config = ServerConfig {
            rate_limit: custodia_server::RateLimit {
                per_second: 0.0,
                burst: 0.0,
            },
            ..ServerConfig::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(custodia_server::serve(
            listener,
            AppState::new(engine, config),
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(LoopbackServer {
            runtime,
            base,
            stop,
            task,
        })
    }

    /// Stops the server the way SIGTERM does and waits for it.
    pub(crate) fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.runtime.block_on(self.task)??;
        Ok(())
    }
}
