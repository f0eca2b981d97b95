//! The benchmarks behind `custodia bench <what>`: each measures a capability next to the limits
//! of the building blocks underneath, in the same run. The binary embeds [`BenchCommand`] and
//! hands it to [`run`].
//!
//! `lib.rs` holds what they share: timed rows, a scoped thread pool, the real server on a loopback
//! port, API keys and customers through the engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use custodia_core::{RoleName, SubjectId, TenantId};
use custodia_engine::{Caller, Engine, EngineConfig, IdentifyInput, NewApiKey, SystemClock};
use custodia_policy::Policies;
use custodia_server::{AppState, ServerConfig};
use custodia_vault::{Keyring, RootKey};
use serde_json::json;

mod bench_analytics;
mod bench_erasure;
mod bench_ingest;
mod bench_keys;
mod bench_ledger;
mod bench_search;

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Ingestion throughput against the building blocks' limits.
    Ingest(bench_ingest::IngestArgs),
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

/// Runs a benchmark command.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Ingest(args) => bench_ingest::run(args),
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

fn open_engine(dir: &std::path::Path) -> anyhow::Result<Arc<Engine>> {
    open_engine_with(
        dir,
        custodia_store::DEFAULT_STORE_CACHE_BYTES,
        custodia_store::StoreEngine::default(),
    )
}

/// [`open_engine`] with a store page cache of `store_cache_bytes`, and `store_engine` for a new
/// store.
fn open_engine_with(
    dir: &std::path::Path,
    store_cache_bytes: u64,
    store_engine: custodia_store::StoreEngine,
) -> anyhow::Result<Arc<Engine>> {
    let engine = Engine::open(EngineConfig {
        data_dir: dir.join("data"),
        keys_dir: dir.join("keys"),
        store_cache_bytes,
        store_engine,
        store_url: None,
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
