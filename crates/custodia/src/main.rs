//! The `custodia` command: `serve`, `keys`, `ledger`, `audit`, `index`, `retention`, `backup`,
//! `bench`.

mod backup;
mod ledger;
mod master_key;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use custodia_core::{RoleName, TenantId};
use custodia_engine::{CheckpointPolicy, Clock, Engine, EngineConfig, LedgerConfig, SystemClock};
use custodia_policy::Policies;
use custodia_server::{AppState, ServerConfig};
use custodia_vault::Keyring;

/// Custodia: a privacy-first customer data platform. Every command has its own --help; exit
/// codes: 0 ok, 1 failure, 2 usage error.
#[derive(Parser)]
#[command(name = "custodia", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API.
    Serve(Box<ServeArgs>),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Verify the consent ledger and its proofs offline.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Verify the access log offline.
    #[command(subcommand)]
    Audit(ledger::AuditCommand),
    /// Rebuild the search index from the store (offline).
    #[command(subcommand)]
    Index(IndexCommand),
    /// Apply the retention policies now (the server also does it on a timer).
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Offline backups of the data directory and, apart, of the key store, with a manifest;
    /// verify and restore them.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Measure throughput against the building blocks' own limits.
    #[command(subcommand)]
    Bench(custodia_bench::BenchCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key on a data directory not held by a running server; prints the key alone
    /// on stdout (only its hash is stored).
    Create(KeysCreateArgs),
    /// Root-key rotation, with the server stopped: re-wrap every live subject key (and each
    /// tenant secret) under a new root key, in place.
    ///
    /// Stop the server first: it holds the key store while it runs, and this command refuses to
    /// open a key store in use. The new key is read from --new-master-key-file, or generated and
    /// printed alone on stdout. Afterwards start the server with the new key and retire the old
    /// one: it opens nothing current, and key-store copies made before open nothing without it.
    Rotate(KeysRotateArgs),
}

#[derive(Subcommand)]
enum IndexCommand {
    /// Rebuild every tenant's search index from the store, from scratch (on a data directory not
    /// held by a running server). Shows progress on a terminal.
    Rebuild(RetentionRunArgs),
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// One retention sweep of every tenant, on a data directory not held by a running server;
    /// prints a JSON report per tenant.
    Run(RetentionRunArgs),
}

#[derive(Args)]
struct RetentionRunArgs {
    #[command(flatten)]
    dirs: Dirs,
}

#[derive(Args)]
struct KeysRotateArgs {
    #[command(flatten)]
    dirs: Dirs,
    /// A file holding the new root key (base64 of 32 bytes). Without it a new key is generated
    /// and printed alone on stdout.
    #[arg(long)]
    new_master_key_file: Option<PathBuf>,
}

/// Where the data and the keys are.
#[derive(Args, Clone)]
struct Dirs {
    /// The data directory (only ciphertext and keyed hashes).
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// The key store, kept apart from the data directory.
    #[arg(long, default_value = "./keys")]
    keys_dir: PathBuf,
    /// A file holding the root key (base64 of 32 bytes), outside the data directory and the key
    /// store. `CUSTODIA_MASTER_KEY` takes precedence.
    #[arg(long)]
    master_key_file: Option<PathBuf>,
    /// The policies directory; when the default does not exist, the built-in policies apply.
    #[arg(long, default_value = "./policies")]
    policies: PathBuf,
    /// The store's page cache in MiB. Analytics scans every event: at 10 M events a KPI query
    /// took about a minute with 256 and 22–30 s with 4096 (docs/performance.md).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    store_cache_mb: u64,
    /// The storage engine of a new store: `sled` or `fjall` (docs/operations.md, "Choosing
    /// the storage engine"). A store already in the data directory keeps the engine that
    /// wrote it.
    #[arg(long, default_value_t)]
    store_engine: custodia_engine::StoreEngine,
    /// A PostgreSQL database to hold the store instead of DATA_DIR/store, as libpq's URL
    /// (`postgres://USER:PASSWORD@HOST:PORT/DB?...`; give one with a password in
    /// CUSTODIA_STORE_URL, since a command line shows in `ps`). The ledgers, the search index
    /// and the key store stay files. One server per database schema at a time (docs/scale.md).
    #[arg(
        long = "store",
        env = "CUSTODIA_STORE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    store_url: Option<String>,
    /// Free space (MiB) that store writes leave on the data directory's file system: below it,
    /// writes answer 507 `insufficient_storage` and change nothing, and succeed again once space
    /// is freed (0 turns the reserve off; docs/operations.md, "A full disk").
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(0..=1_048_576))]
    min_free_mb: u64,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    dirs: Dirs,
    /// Address to listen on: HOST:PORT or a bare HOST (port 8080); HOST is an IP address or a
    /// name such as localhost. Port 0 picks a free port (the real address is logged).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    listen: Listen,
    /// Load a small demo shop on first start; without a root key, create one in
    /// ./custodia-master.key (for trying Custodia out, not for production).
    #[arg(long)]
    demo: bool,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Seconds a client has from a request's first byte (or from connecting) to the end of its
    /// headers; then the connection is closed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_read_timeout: u64,
    /// Seconds a client has from a request's headers to the end of its body; then it gets
    /// 408 request_timeout.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_read_timeout: u64,
    /// Seconds a connection may stay open with no request in flight and no byte moving (between
    /// kept-alive requests, or with an answer the client does not read).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout: u64,
    /// Most connections open at once; more wait in the listen queue until one closes.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Seconds SIGTERM/SIGINT wait for open connections to finish their requests; then they are
    /// dropped, and the store is flushed either way.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    shutdown_timeout: u64,
    /// Prefix of the ledgers' checkpoint origins (`<prefix>/<tenant>/ledger`); give each
    /// deployment its own, e.g. its host name.
    #[arg(long, default_value = "custodia.local")]
    ledger_origin: String,
    /// Also hand every checkpoint to an outside witness: `dir:PATH` (a directory, e.g. a mount the
    /// operator cannot rewrite) or `webhook:http://HOST/PATH` (a POST of the signed note). May be
    /// given several times; at most one directory.
    #[arg(long, value_parser = parse_witness)]
    checkpoint_witness: Vec<Witness>,
    /// Sign a checkpoint once this many entries were appended since the last one.
    #[arg(long, default_value_t = 64)]
    checkpoint_every: u64,
    /// Sign a checkpoint of every ledger that grew at this interval, in seconds.
    #[arg(long, default_value_t = 30)]
    checkpoint_interval: u64,
    /// Sustained requests per second per API key (0 turns limiting off); more answer 429. It
    /// keeps one key (leaked, or a client in a loop) from taking the whole server from the others.
    #[arg(long, default_value_t = custodia_server::RateLimit::default().per_second)]
    rate_limit: f64,
    /// Requests an API key may make at once after being idle.
    #[arg(long, default_value_t = custodia_server::RateLimit::default().burst)]
    rate_limit_burst: f64,
    /// Run the retention sweep every this many hours (0: only on demand).
    #[arg(long, default_value_t = 24)]
    retention_interval_hours: u64,
    /// Remind (log line and `/metrics`) once the root key is older than this many days: the bound
    /// on how long an erased subject's key survives in key-store backups.
    #[arg(long, default_value_t = 30)]
    key_rotation_days: u64,
    /// Where one-time codes of data-subject requests go: `dir:PATH` (one JSON file per message,
    /// outside the data directory) or `webhook:http://HOST/PATH`.
    #[arg(long, default_value = "dir:./outbox", value_parser = parse_outbox)]
    outbox: OutboxArg,
    /// Analytics: smallest number of subjects a published figure may rest on (at least 1).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    analytics_k: u64,
    /// Analytics: the currency of orders and refunds that name none (ISO 4217 code).
    #[arg(long, default_value = "EUR", value_parser = parse_currency)]
    default_currency: custodia_analytics::Currency,
    /// Analytics: exchange rates to a base currency, a JSON file
    /// `{"base": "EUR", "rates": {"USD": 0.92}}`, for combined money figures.
    #[arg(long)]
    exchange_rates: Option<PathBuf>,
    /// What happens to an event's `context` (`ip`, `userAgent`, `locale`, `campaign`, `page`,
    /// ...): `keep` seals it with the event like its properties; `drop` stores none of it.
    #[arg(long, default_value = "keep", value_parser = ["keep", "drop"])]
    event_context: String,
    /// How many days a `messageId`, a consent `decision_id` or an `Idempotency-Key` is
    /// remembered: a retry within this window is acknowledged with the original answer and
    /// stored once.
    #[arg(long, default_value_t = custodia_engine::DEFAULT_IDEMPOTENCY_DAYS, value_parser = clap::value_parser!(u32).range(1..=366))]
    idempotency_days: u32,
}

/// An outside witness of the ledgers' checkpoints.
#[derive(Clone, Debug)]
enum Witness {
    /// A directory that receives one file per checkpoint.
    Dir(PathBuf),
    /// A URL that receives a POST of each new checkpoint.
    Webhook(String),
}

/// Where to listen: the text as given and the addresses it resolved to (bound in turn until one
/// works, like `TcpListener::bind` of a host name).
#[derive(Clone, Debug)]
struct Listen {
    text: String,
    addrs: Vec<SocketAddr>,
}

/// The port of a `--listen` without one.
const DEFAULT_PORT: u16 = 8080;

fn parse_listen(text: &str) -> Result<Listen, String> {
    use std::net::{IpAddr, ToSocketAddrs};
    let addrs: Vec<SocketAddr> = if let Ok(addr) = text.parse::<SocketAddr>() {
        vec![addr]
    } else if let Ok(ip) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
        vec![SocketAddr::new(ip, DEFAULT_PORT)]
    } else {
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| format!("`{port}` is not a port number (0-65535)"))?,
            ),
            None => (text, DEFAULT_PORT),
        };
        if host.is_empty() {
            return Err("expected HOST:PORT or HOST, e.g. 127.0.0.1:8080 or localhost".to_owned());
        }
        (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
            .collect()
    };
    if addrs.is_empty() {
        return Err(format!("`{text}` resolves to no address"));
    }
    Ok(Listen {
        text: text.to_owned(),
        addrs,
    })
}

/// Where one-time codes of data-subject requests go.
#[derive(Clone, Debug)]
enum OutboxArg {
    /// One JSON file per message in this directory.
    Dir(PathBuf),
    /// A POST of each message to this `http://` URL.
    Webhook(String),
}

fn parse_outbox(text: &str) -> Result<OutboxArg, String> {
    if let Some(dir) = text.strip_prefix("dir:").filter(|d| !d.is_empty()) {
        return Ok(OutboxArg::Dir(PathBuf::from(dir)));
    }
    if let Some(url) = text
        .strip_prefix("webhook:")
        .filter(|u| u.starts_with("http://") && u.len() > "http://".len())
    {
        return Ok(OutboxArg::Webhook(url.to_owned()));
    }
    Err("expected dir:PATH or webhook:http://HOST/PATH".to_owned())
}

fn parse_currency(text: &str) -> Result<custodia_analytics::Currency, String> {
    text.parse()
        .map_err(|_| "not an ISO 4217 currency code such as EUR".to_owned())
}

fn parse_witness(text: &str) -> Result<Witness, String> {
    if let Some(path) = text.strip_prefix("dir:").filter(|p| !p.is_empty()) {
        return Ok(Witness::Dir(PathBuf::from(path)));
    }
    if let Some(url) = text.strip_prefix("webhook:") {
        if url.starts_with("http://") && url.len() > "http://".len() {
            return Ok(Witness::Webhook(url.to_owned()));
        }
        return Err(
            "a webhook witness takes an http:// URL (put a TLS relay in front for https)"
                .to_owned(),
        );
    }
    Err("expected dir:PATH or webhook:http://HOST/PATH".to_owned())
}

#[derive(Args)]
struct KeysCreateArgs {
    #[command(flatten)]
    dirs: Dirs,
    /// The role of the key, from the policies (app, compliance, admin, ...).
    #[arg(long)]
    role: String,
    /// The tenant the key belongs to.
    #[arg(long, default_value = "default")]
    tenant: String,
}

/// A mistake in how the command was called, found after parsing: exits 2 like clap's own usage
/// errors (README "Exit codes").
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl Command {
    /// The data and key directories the command opens, if it opens both.
    fn dirs(&self) -> Option<&Dirs> {
        match self {
            Command::Serve(args) => Some(&args.dirs),
            Command::Keys(KeysCommand::Create(args)) => Some(&args.dirs),
            Command::Keys(KeysCommand::Rotate(args)) => Some(&args.dirs),
            Command::Retention(RetentionCommand::Run(args)) => Some(&args.dirs),
            Command::Index(IndexCommand::Rebuild(args)) => Some(&args.dirs),
            Command::Ledger(_) | Command::Audit(_) | Command::Backup(_) | Command::Bench(_) => None,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(dirs) = cli.command.dirs()
        && let Err(e) = master_key::check_dirs_apart(dirs)
    {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    // A benchmark's own server would log every request; keep its output to the figures.
    let default_filter = if matches!(cli.command, Command::Bench(_)) {
        "warn"
    } else {
        "info"
    };
    init_logging(default_filter);
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Keys(KeysCommand::Create(args)) => keys_create(args),
        Command::Keys(KeysCommand::Rotate(args)) => keys_rotate(args),
        Command::Retention(RetentionCommand::Run(args)) => retention_run(args),
        Command::Index(IndexCommand::Rebuild(args)) => index_rebuild(args),
        Command::Ledger(cmd) => ledger::run(cmd),
        Command::Audit(cmd) => ledger::run_audit(cmd),
        Command::Backup(cmd) => backup::run(cmd),
        Command::Bench(cmd) => custodia_bench::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            // Errors name files, ids and rules, never personal data or key material.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("CUSTODIA_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    // A panic message may quote a value; log where it happened, not what it said.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        tracing::error!(location = location.as_deref().unwrap_or("unknown"), "panic");
    }));
}

fn load_policies(dir: &Path) -> anyhow::Result<Policies> {
    if dir == Path::new("./policies") && !dir.exists() {
        tracing::info!("no ./policies directory: using the built-in policies");
        return Ok(Policies::builtin());
    }
    // The error names file, line and problem.
    Policies::load_dir(dir).map_err(|e| anyhow::anyhow!("invalid policies: {e}"))
}

/// Opens the data directory; `clock` is the system's unless `serve --demo` brings its own.
fn open_engine(
    dirs: &Dirs,
    demo: bool,
    ledger: LedgerConfig,
    clock: Option<Arc<dyn Clock>>,
) -> anyhow::Result<Engine> {
    let root = master_key::resolve(dirs, demo)?;
    let policies = load_policies(&dirs.policies)?;
    std::fs::create_dir_all(&dirs.data_dir)
        .with_context(|| format!("cannot create {}", dirs.data_dir.display()))?;
    Engine::open(EngineConfig {
        data_dir: dirs.data_dir.clone(),
        keys_dir: dirs.keys_dir.clone(),
        store_cache_bytes: dirs.store_cache_mb * 1024 * 1024,
        store_engine: dirs.store_engine,
        store_url: dirs.store_url.clone(),
        keyring: Keyring::new(root),
        policies,
        clock: clock.unwrap_or_else(|| Arc::new(SystemClock)),
        ledger,
        min_free_bytes: dirs.min_free_mb * 1024 * 1024,
    })
    .map_err(|e| anyhow::anyhow!("cannot open the data directory: {e}"))
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut witness_dirs = args.checkpoint_witness.iter().filter_map(|w| match w {
        Witness::Dir(dir) => Some(dir.clone()),
        Witness::Webhook(_) => None,
    });
    let witness_dir = witness_dirs.next();
    if witness_dirs.next().is_some() {
        bail!("give at most one dir: witness");
    }
    let witness_webhooks: Vec<String> = args
        .checkpoint_witness
        .iter()
        .filter_map(|w| match w {
            Witness::Webhook(url) => Some(url.clone()),
            Witness::Dir(_) => None,
        })
        .collect();
    if let OutboxArg::Dir(dir) = &args.outbox {
        let outbox = master_key::resolved(dir);
        for inside in [&args.dirs.data_dir, &args.dirs.keys_dir] {
            if outbox.starts_with(master_key::resolved(inside)) {
                return Err(UsageError(format!(
                    "--outbox: the outbox holds one-time codes; keep it outside {}",
                    inside.display()
                ))
                .into());
            }
        }
    }
    if let Some(witness) = &witness_dir {
        std::fs::create_dir_all(witness).with_context(|| {
            format!("cannot create the witness directory {}", witness.display())
        })?;
    }
    let ledger = LedgerConfig {
        origin_prefix: args.ledger_origin.clone(),
        witness_dir,
        checkpoints: CheckpointPolicy {
            every_entries: args.checkpoint_every.max(1),
        },
        // The server always records reads: the access log is not optional.
        record_reads: true,
    };
    let demo_clock = Arc::new(custodia_engine::DemoClock::default());
    let clock = args.demo.then(|| demo_clock.clone() as Arc<dyn Clock>);
    let engine = Arc::new(open_engine(&args.dirs, args.demo, ledger, clock)?);
    engine.configure_analytics(analytics_config(&args)?);
    let outbox: Arc<dyn custodia_engine::Outbox> = match &args.outbox {
        OutboxArg::Dir(dir) => Arc::new(custodia_engine::DirOutbox(dir.clone())),
        OutboxArg::Webhook(url) => Arc::new(custodia_server::WebhookOutbox(url.clone())),
    };
    engine.set_outbox(outbox);
    engine.set_idempotency_days(args.idempotency_days);
    if args.demo {
        load_demo(&engine, &demo_clock)?;
    }
    // Analytics queries read the store until the in-memory copy is built in the background.
    engine.start_analytics_copies()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen.addrs[..])
            .await
            .with_context(|| format!("cannot listen on {}", args.listen.text))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "listening on {addr}");
        let config = ServerConfig {
            max_body_bytes: args.max_body_bytes,
            keep_event_context: args.event_context == "keep",
            checkpoint_interval: std::time::Duration::from_secs(args.checkpoint_interval.max(1)),
            rate_limit: custodia_server::RateLimit {
                per_second: args.rate_limit.max(0.0),
                burst: args.rate_limit_burst.max(1.0),
            },
            witness_webhooks,
            retention_interval: (args.retention_interval_hours > 0)
                .then(|| std::time::Duration::from_secs(args.retention_interval_hours * 3600)),
            key_rotation_interval: std::time::Duration::from_secs(
                args.key_rotation_days.max(1) * 86_400,
            ),
            connections: custodia_server::ConnectionLimits {
                header_read_timeout: Duration::from_secs(args.header_read_timeout),
                body_read_timeout: Duration::from_secs(args.body_read_timeout),
                idle_timeout: Duration::from_secs(args.idle_timeout),
                max_connections: usize::try_from(args.max_connections)?,
                shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
            },
            ..ServerConfig::default()
        };
        let state = AppState::with_online_backup(engine, config, Arc::new(backup::ServerBackup));
        custodia_server::serve(listener, state, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("stop signal received");
}

/// Where `--demo` writes the demo API keys: beside the demo root key, outside data and keys.
const DEMO_KEYS_FILE: &str = "./custodia-demo-api-keys.txt";

fn load_demo(engine: &Engine, clock: &custodia_engine::DemoClock) -> anyhow::Result<()> {
    let tenant = TenantId::default_tenant();
    let Some(summary) = custodia_engine::load_demo(engine, &tenant, 300)? else {
        tracing::info!("demo data already loaded");
        return Ok(());
    };
    let n_requests = custodia_engine::load_demo_requests(engine, &tenant, clock)?;
    let mut lines = String::from(
        "# Demo API keys of Custodia (created with the demo data). Keep this file private.\n",
    );
    for role in ["app", "compliance", "admin"] {
        let role: RoleName = role.parse().map_err(|_| anyhow::anyhow!("bad role"))?;
        let key = engine.create_api_key(&tenant, &role)?;
        lines.push_str(&format!("{role}={}\n", key.secret.expose()));
    }
    master_key::write_private(Path::new(DEMO_KEYS_FILE), lines.as_bytes())?;
    tracing::info!(
        n_customers = summary.n_customers,
        n_events = summary.n_events,
        n_consents = summary.n_consents,
        n_requests,
        keys_file = DEMO_KEYS_FILE,
        "demo shop loaded; its api keys are in the keys file"
    );
    Ok(())
}

fn keys_create(args: KeysCreateArgs) -> anyhow::Result<()> {
    let role: RoleName = args
        .role
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid role name"))?;
    let tenant: TenantId = args
        .tenant
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid tenant id"))?;
    let engine = open_engine(&args.dirs, false, LedgerConfig::default(), None)?;
    if engine.policies().role(&role).is_none() {
        bail!("no role `{role}` in the policies");
    }
    let key = engine.create_api_key(&tenant, &role)?;
    println!("{}", key.secret.expose());
    Ok(())
}

fn retention_run(args: RetentionRunArgs) -> anyhow::Result<()> {
    let engine = open_engine(&args.dirs, false, LedgerConfig::default(), None)?;
    for tenant in engine.tenants()? {
        let report = engine.retention_sweep_as_system(&tenant)?;
        println!("{}", serde_json::to_string(&report)?);
    }
    // Profiles the sweep erased leave the search index files now, not at the next serve.
    engine.index_all_pending()?;
    engine.flush()?;
    Ok(())
}

fn keys_rotate(args: KeysRotateArgs) -> anyhow::Result<()> {
    let old = master_key::resolve(&args.dirs, false)?;
    let (new, print) = match &args.new_master_key_file {
        Some(path) => (
            custodia_vault::RootKey::read_file(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            false,
        ),
        None => (custodia_vault::RootKey::generate()?, true),
    };
    if new.id() == old.id() {
        bail!("the new root key is the current one");
    }
    let new_text = new.to_base64();
    if print {
        // Out before anything is re-wrapped under it: an interrupted rotation must not leave keys
        // wrapped under a root key nobody has.
        println!("{}", new_text.as_str());
    }
    let vault =
        custodia_vault::Vault::open(&args.dirs.keys_dir, Keyring::new(new).with_previous(old))
            .map_err(|e| anyhow::anyhow!("cannot open the key store: {e}"))?;
    let mut total = 0u64;
    for tenant in vault.tenants()? {
        let keys = vault
            .tenant(&tenant)
            .map_err(|e| anyhow::anyhow!("tenant {tenant}: {e}"))?;
        let n = keys.rotate_wrapping()?;
        tracing::info!(tenant = %tenant, rewrapped = n, live_keys = keys.n_data_keys(), "tenant re-wrapped");
        total += n;
    }
    vault.set_root_key_since(custodia_engine::SystemClock.now())?;
    tracing::info!(
        rewrapped = total,
        "rotation done: start the server with the new root key and retire the old one"
    );
    Ok(())
}

fn analytics_config(args: &ServeArgs) -> anyhow::Result<custodia_engine::AnalyticsConfig> {
    let rates = match &args.exchange_rates {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            )
        }
        None => None,
    };
    Ok(custodia_engine::AnalyticsConfig {
        default_currency: Some(args.default_currency),
        k_anonymity: usize::try_from(args.analytics_k)?,
        rates,
        ..custodia_engine::AnalyticsConfig::default()
    })
}

fn index_rebuild(args: RetentionRunArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let engine = open_engine(&args.dirs, false, LedgerConfig::default(), None)?;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    for tenant in engine.tenants()? {
        let started = std::time::Instant::now();
        let mut progress = |done: u64, total: u64| {
            if terminal {
                let width = 30;
                let filled = (done * width).checked_div(total).unwrap_or(width) as usize;
                eprint!(
                    "\r{tenant}: [{}{}] {done}/{total}",
                    "#".repeat(filled),
                    " ".repeat(width as usize - filled.min(width as usize))
                );
                let _ = std::io::stderr().flush();
            }
        };
        let n = engine.rebuild_index(&tenant, &mut progress)?;
        if terminal {
            eprintln!();
        }
        tracing::info!(tenant = %tenant, subjects = n, seconds = started.elapsed().as_secs_f64(), "search index rebuilt");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
