//! Custodia's HTTP API on axum: authentication, the purpose on every personal-data read, RFC 9457
//! problem+json errors, the routes of api.md, Prometheus metrics and the OpenAPI document.
//!
//! Architecture invariant: the server holds no crypto and no storage of its own. Handlers parse
//! and check the request, call `custodia-engine` on a blocking thread (sled and the key store do
//! file I/O), and shape the answer; the one place that maps error codes to HTTP statuses is
//! `error.rs`.

mod conn;
mod error;
mod extract;
mod idempotency;
mod metrics;
mod openapi;
mod rate_limit;
mod routes;
mod witness;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use custodia_engine::{Clock, Engine, EngineError};
use tokio::net::TcpListener;

pub use conn::ConnectionLimits;
pub use error::{AppError, Problem};
pub use openapi::{documented_routes, openapi_document};
pub use rate_limit::RateLimit;
pub use routes::backup::{BackupError, BackupSummary, BackupWhat, OnlineBackup};
pub use routes::{ROUTES, RouteKind, WebhookOutbox, router};

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Most items in one `POST /v1/batch`.
    pub max_batch_items: usize,
    /// Whether an event's `context` (`ip`, `userAgent`, `locale`, `campaign`, `page`, ...) is
    /// kept, sealed with the event like its properties, or dropped on arrival.
    pub keep_event_context: bool,
    /// How often the open ledgers that grew get a new signed checkpoint.
    pub checkpoint_interval: std::time::Duration,
    /// Requests per API key.
    pub rate_limit: RateLimit,
    /// Outside witnesses that receive every new checkpoint by `POST` (`http://` URLs).
    pub witness_webhooks: Vec<String>,
    /// How often the retention sweep runs over every tenant; `None`: only on demand.
    pub retention_interval: Option<std::time::Duration>,
    /// The root key should be rotated at least this often (a reminder in the log and `/metrics`).
    pub key_rotation_interval: std::time::Duration,
    /// Timeouts against slow clients, the connection limit and the shutdown deadline.
    pub connections: ConnectionLimits,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_body_bytes: 1024 * 1024,
            max_batch_items: 1_000,
            keep_event_context: true,
            checkpoint_interval: std::time::Duration::from_secs(30),
            rate_limit: RateLimit::default(),
            witness_webhooks: Vec::new(),
            retention_interval: Some(std::time::Duration::from_secs(24 * 3600)),
            key_rotation_interval: std::time::Duration::from_secs(30 * 86_400),
            connections: ConnectionLimits::default(),
        }
    }
}

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState(Arc<App>);

/// What the handlers share.
pub struct App {
    engine: Arc<Engine>,
    config: ServerConfig,
    metrics: metrics::Metrics,
    limiter: rate_limit::Limiter,
    /// `Idempotency-Key`s whose first request is being handled.
    in_flight: idempotency::InFlight,
    started: Instant,
    /// Takes `POST /v1/admin/backups`; `None`: the route answers 404.
    online_backup: Option<Arc<dyn OnlineBackup>>,
    /// What each webhook witness last accepted.
    witnesses: std::sync::Mutex<witness::Pushed>,
}

impl AppState {
    /// State over an engine.
    pub fn new(engine: Arc<Engine>, config: ServerConfig) -> AppState {
        AppState::build(engine, config, None)
    }

    /// State over an engine whose server takes online backups with `backup`.
    pub fn with_online_backup(
        engine: Arc<Engine>,
        config: ServerConfig,
        backup: Arc<dyn OnlineBackup>,
    ) -> AppState {
        AppState::build(engine, config, Some(backup))
    }

    fn build(
        engine: Arc<Engine>,
        config: ServerConfig,
        online_backup: Option<Arc<dyn OnlineBackup>>,
    ) -> AppState {
        AppState(Arc::new(App {
            engine,
            config,
            metrics: metrics::Metrics::default(),
            limiter: rate_limit::Limiter::default(),
            in_flight: idempotency::InFlight::default(),
            started: Instant::now(),
            online_backup,
            witnesses: std::sync::Mutex::default(),
        }))
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.0.engine
    }

    /// Runs an engine call on a blocking thread.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> Result<T, EngineError> + Send + 'static,
    {
        let engine = self.0.engine.clone();
        match tokio::task::spawn_blocking(move || f(&engine)).await {
            Ok(result) => result.map_err(|e| self.engine_error(e)),
            Err(join) => Err(AppError::internal(format!("blocking task failed: {join}"))),
        }
    }

    /// The answer to an engine error; counts the refusals for a full disk in `/metrics`.
    fn engine_error(&self, e: EngineError) -> AppError {
        if e.code() == custodia_core::ErrorCode::InsufficientStorage {
            self.0.metrics.insufficient_storage();
        }
        AppError::from(e)
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// for at most the shutdown timeout, drops the connections left, and flushes the store.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app: Router = router(state.clone());
    let ticker = tokio::spawn(checkpoint_ticker(state.clone()));
    let sweeper = tokio::spawn(retention_ticker(state.clone()));
    let indexer = tokio::spawn(indexer(state.clone()));
    accept_until(listener, app, state.0.config.connections, shutdown).await;
    ticker.abort();
    sweeper.abort();
    indexer.abort();
    // A last checkpoint covers everything appended before the stop.
    let flushed = state
        .run(|engine| {
            // What is queued for search goes into the index before the stop (after a crash the
            // queue is handled at the next start instead).
            engine.index_all_pending()?;
            let checkpoints = engine.checkpoint_open_ledgers()?;
            engine.flush()?;
            Ok(checkpoints)
        })
        .await;
    if let Ok(checkpoints) = &flushed {
        witness::push(&state, checkpoints.clone()).await;
    }
    if let Err(e) = flushed {
        tracing::error!(error = %e.problem().detail, "final flush failed");
        return Err(std::io::Error::other("final flush failed"));
    }
    Ok(())
}

/// Accepts connections until `shutdown` resolves (at most `max_connections` open at once), then
/// asks every connection to finish and, after `shutdown_timeout`, drops those still open.
async fn accept_until(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A free slot first: past the limit, clients wait in the kernel's listen queue.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(conn::serve_connection(
            stream,
            remote,
            app.clone(),
            limits,
            stop_rx.clone(),
            permit,
        ));
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    tracing::info!(
        open_connections = connections.len(),
        "shutting down: finishing requests in flight"
    );
    let _ = stop_tx.send(true);
    let finished = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            dropped = connections.len(),
            timeout_secs = limits.shutdown_timeout.as_secs_f64(),
            "shutdown timeout: dropping the connections still open"
        );
        connections.shutdown().await;
    }
}

/// Signs a checkpoint of every ledger that grew, every `checkpoint_interval`, and hands the
/// newest ones to the webhook witnesses.
async fn checkpoint_ticker(state: AppState) {
    let mut interval = tokio::time::interval(state.0.config.checkpoint_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match state.run(|engine| engine.checkpoint_open_ledgers()).await {
            Ok(checkpoints) => witness::push(&state, checkpoints).await,
            Err(e) => tracing::error!(error = %e.problem().detail, "periodic checkpoint failed"),
        }
    }
}

/// Keeps the search indexes in step with the store: handles the search queues a few times a
/// second (a write never waits for an index commit; after a crash the queue is still there).
async fn indexer(state: AppState) {
    let mut interval = tokio::time::interval(std::time::Duration::from_millis(250));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(e) = state.run(|engine| engine.index_all_pending()).await {
            tracing::error!(error = %e.problem().detail, "search indexing failed");
        }
    }
}

/// Runs the retention sweep over every tenant, every `retention_interval` (the first one an
/// interval after start), and reminds the operator when the root key is due for rotation.
async fn retention_ticker(state: AppState) {
    let rotation = state.0.config.key_rotation_interval;
    remind_rotation(&state, rotation).await;
    let Some(every) = state.0.config.retention_interval else {
        return;
    };
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let swept = state
            .run(|engine| {
                for tenant in engine.tenants()? {
                    engine.retention_sweep_as_system(&tenant)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = swept {
            tracing::error!(error = %e.problem().detail, "retention sweep failed");
        }
        remind_rotation(&state, rotation).await;
    }
}

/// A warning when the root key is older than the rotation interval.
async fn remind_rotation(state: &AppState, interval: std::time::Duration) {
    if let Ok(age) = state.run(root_key_age).await
        && age > interval
    {
        tracing::warn!(
            age_days = age.as_secs() / 86_400,
            interval_days = interval.as_secs() / 86_400,
            "the root key is due for rotation (custodia keys rotate): until then, key-store \
             backups older than the last erasures still hold those subjects' keys"
        );
    }
}

/// How long the current root key has been in use.
pub(crate) fn root_key_age(engine: &Engine) -> Result<std::time::Duration, EngineError> {
    let since = engine.root_key_since()?;
    let now = custodia_engine::SystemClock.now();
    let micros = (now.unix_micros() - since.unix_micros()).max(0);
    Ok(std::time::Duration::from_micros(micros as u64))
}

#[cfg(test)]
mod tests;
