//! `POST /v1/admin/backups`: an online backup of the data directory or, apart, of the key store,
//! taken by the running server while it holds every writer at the write gate (admin role).
//!
//! The copying is the binary's (`custodia backup`), handed to the server as an
//! [`OnlineBackup`]: the same code writes offline and online backups and their manifests.

use std::path::{Path, PathBuf};
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use custodia_core::{ErrorCode, Operation};
use custodia_engine::{Engine, EngineError};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::extract::{AppJson, Auth};
use crate::{AppError, AppState};

/// What an online backup copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupWhat {
    /// The data directory: store, ledgers, access logs.
    Data,
    /// The key store: key files, tombstone lists, `root-key-since`.
    Keys,
}

/// Why an online backup was not taken.
#[derive(Debug)]
pub enum BackupError {
    /// `out` is unusable (not new or empty, inside the data directory or the key store); the
    /// message says why. Nothing was written.
    BadOut(String),
    /// The engine refused or failed (another backup runs; writes did not pause in time).
    Engine(EngineError),
    /// Copying failed; the message is for the server's log.
    Failed(String),
}

/// Takes an online backup: checks `out`, pauses the engine's writers
/// ([`Engine::pause_writes`]), copies, writes the manifest. Returns a summary for the answer.
pub trait OnlineBackup: Send + Sync + 'static {
    /// Takes one backup of `what` into `out` (an absolute path).
    fn take(
        &self,
        engine: &Engine,
        what: BackupWhat,
        out: &Path,
    ) -> Result<BackupSummary, BackupError>;
}

/// The answer of `POST /v1/admin/backups` (201): what was written and how long writes waited.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackupSummary {
    /// The backup's directory.
    pub out: String,
    /// `data` or `keys`.
    pub kind: String,
    /// How many files it holds (the manifest besides).
    pub n_files: usize,
    /// Their size in bytes.
    pub bytes: u64,
    /// How long writers were held while the files were copied.
    pub writes_paused_ms: u64,
    /// For a data backup: each tenant's consent ledger as copied (`{"tree_size", "root",
    /// "checkpoints"}`, or `{"error"}`), by tenant.
    #[schema(value_type = Option<Object>)]
    pub ledgers: Option<Value>,
    /// The same for the access logs.
    #[schema(value_type = Option<Object>)]
    pub access_logs: Option<Value>,
}

fn invalid(field: &str, message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::InvalidField, message, Some(field.to_owned()))
}

/// Takes an online backup; answers with the backup's summary (files, bytes, log positions and how
/// long writes were held).
pub async fn create(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AppJson(body): AppJson,
) -> Result<(StatusCode, Json<BackupSummary>), AppError> {
    caller.require(Operation::ManageKeys)?;
    let obj = body
        .as_object()
        .ok_or_else(|| invalid("/", "must be a JSON object"))?;
    if let Some(unknown) = obj.keys().find(|k| *k != "out" && *k != "what") {
        return Err(invalid(&format!("/{unknown}"), "unknown field"));
    }
    let out = obj
        .get("out")
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| invalid("/out", "must be a path"))?;
    if !out.is_absolute() {
        return Err(invalid("/out", "must be an absolute path"));
    }
    let what = match obj.get("what").map(Value::as_str) {
        None | Some(Some("data")) => BackupWhat::Data,
        Some(Some("keys")) => BackupWhat::Keys,
        Some(_) => return Err(invalid("/what", "must be `data` or `keys`")),
    };
    let Some(taker) = state.0.online_backup.clone() else {
        return Err(AppError::new(
            ErrorCode::NotFound,
            "online backups are not available in this server",
            None,
        ));
    };
    let engine = state.engine().clone();
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || taker.take(&engine, what, &out))
        .await
        .map_err(|join| AppError::internal(format!("backup task failed: {join}")))?;
    match result {
        Ok(summary) => {
            let seconds = started.elapsed().as_secs_f64();
            let paused = summary.writes_paused_ms as f64 / 1000.0;
            state.0.metrics.backup_taken(seconds, paused);
            tracing::info!(
                by = %caller.key_id,
                what = ?what,
                seconds,
                writes_paused_seconds = paused,
                "online backup taken"
            );
            Ok((StatusCode::CREATED, Json(summary)))
        }
        Err(BackupError::BadOut(message)) => Err(invalid("/out", message)),
        Err(BackupError::Engine(e)) => Err(AppError::from(e)),
        Err(BackupError::Failed(cause)) => Err(AppError::internal(cause)),
    }
}
