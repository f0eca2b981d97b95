//! The tamper-evident logs for compliance: the consent ledger (`/v1/ledger/...`) and the access log
//! (`/v1/audit/access/...`) have the same checkpoint, verifier-key, entries and proof routes; the
//! handlers below are written once per log kind through the `log_routes!` macro.

use axum::Json;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use custodia_core::ErrorCode;
use custodia_engine::{Caller, ConsistencyProof, EntryView, InclusionProof, LogKind, LogPublicKey};
use serde::Serialize;

use axum::extract::State;

use crate::extract::{Auth, Params};
use crate::{AppError, AppState};

/// A page of log entries: `GET /v1/ledger/entries`, `/v1/audit/access/entries` and
/// `/v1/audit/access`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EntryList {
    /// The entries, by sequence number.
    pub entries: Vec<EntryView>,
}

fn u64_param(params: &Params, name: &str) -> Result<Option<u64>, AppError> {
    match params.get(name) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            AppError::new(
                ErrorCode::InvalidField,
                "must be a whole number",
                Some(name.to_owned()),
            )
        }),
    }
}

fn required(params: &Params, name: &str) -> Result<u64, AppError> {
    u64_param(params, name)?.ok_or_else(|| {
        AppError::new(
            ErrorCode::InvalidField,
            "is required",
            Some(name.to_owned()),
        )
    })
}

/// `GET .../checkpoint`: the signed note, as text.
pub async fn checkpoint(
    kind: LogKind,
    state: AppState,
    caller: Caller,
) -> Result<Response, AppError> {
    let note = state
        .run(move |engine| engine.ledger_checkpoint(&caller, kind))
        .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

/// `GET .../public-key`: the verifier key (note format) and the raw key.
pub async fn public_key(
    kind: LogKind,
    state: AppState,
    caller: Caller,
) -> Result<Json<LogPublicKey>, AppError> {
    Ok(Json(
        state
            .run(move |engine| engine.ledger_public_key(&caller, kind))
            .await?,
    ))
}

/// `GET .../entries?from=&limit=`.
pub async fn entries(
    kind: LogKind,
    state: AppState,
    caller: Caller,
    params: Params,
) -> Result<Json<EntryList>, AppError> {
    let from = u64_param(&params, "from")?.unwrap_or(0);
    let limit = params.usize_or("limit", 100)?;
    let entries: Vec<EntryView> = state
        .run(move |engine| engine.ledger_entries(&caller, kind, from, limit))
        .await?;
    Ok(Json(EntryList { entries }))
}

/// `GET .../proof/inclusion?seq=&tree_size=`.
pub async fn inclusion(
    kind: LogKind,
    state: AppState,
    caller: Caller,
    params: Params,
) -> Result<Json<InclusionProof>, AppError> {
    let seq = required(&params, "seq")?;
    let tree_size = u64_param(&params, "tree_size")?;
    Ok(Json(
        state
            .run(move |engine| engine.ledger_inclusion_proof(&caller, kind, seq, tree_size))
            .await?,
    ))
}

/// `GET .../proof/consistency?from=&to=`.
pub async fn consistency(
    kind: LogKind,
    state: AppState,
    caller: Caller,
    params: Params,
) -> Result<Json<ConsistencyProof>, AppError> {
    let from = required(&params, "from")?;
    let to = required(&params, "to")?;
    Ok(Json(
        state
            .run(move |engine| engine.ledger_consistency_proof(&caller, kind, from, to))
            .await?,
    ))
}

/// The answer of `GET .../witnesses`: who else holds this log's checkpoints.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Witnesses {
    /// The log's name, as its checkpoints carry it.
    pub origin: String,
    /// How often the server signs a checkpoint of a log that grew, in seconds.
    pub checkpoint_interval_seconds: u64,
    /// When the latest checkpoint was signed; absent before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_signed_at: Option<custodia_core::Timestamp>,
    /// The witnesses the server was started with; empty: none (then only the browsers that
    /// remember a checkpoint, and whoever keeps copies, would notice a rewritten log).
    pub witnesses: Vec<WitnessView>,
}

/// One witness and the newest checkpoint of this log it holds.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WitnessView {
    /// `webhook` (checkpoints are POSTed to it) or `dir` (copied into a directory).
    pub kind: &'static str,
    /// The webhook's scheme, host and path (never a user, password or query), or `directory`.
    pub target: String,
    /// The largest tree size it accepted; absent: none since the server started (webhook) or
    /// none yet (directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_tree_size: Option<u64>,
    /// When.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_at: Option<custodia_core::Timestamp>,
}

/// `GET .../witnesses`.
pub async fn witnesses(
    kind: LogKind,
    state: AppState,
    caller: Caller,
) -> Result<Json<Witnesses>, AppError> {
    let log = state
        .run(move |engine| engine.log_witness_copy(&caller, kind))
        .await?;
    let (origin, dir) = (log.origin, log.dir_copy);
    let mut witnesses = Vec::new();
    {
        let pushed = state.0.witnesses.lock().unwrap_or_else(|p| p.into_inner());
        for url in &state.0.config.witness_webhooks {
            let accepted = pushed.accepted(url, &origin);
            witnesses.push(WitnessView {
                kind: "webhook",
                target: crate::witness::shown_url(url),
                last_tree_size: accepted.map(|(size, _)| size),
                last_at: accepted.map(|(_, at)| at),
            });
        }
    }
    if let Some(copy) = dir {
        witnesses.push(WitnessView {
            kind: "dir",
            target: "directory".to_owned(),
            last_tree_size: copy.map(|(size, _)| size),
            last_at: copy.map(|(_, at)| at),
        });
    }
    Ok(Json(Witnesses {
        origin,
        checkpoint_interval_seconds: state.0.config.checkpoint_interval.as_secs(),
        checkpoint_signed_at: log.checkpoint_at,
        witnesses,
    }))
}

/// `GET /v1/audit/access?subject_id=&from=&to=&limit=`: who read whose data, for which purpose.
pub async fn access(
    State(state): State<AppState>,
    Auth(caller): Auth,
    params: Params,
) -> Result<Json<EntryList>, AppError> {
    let subject = match params.get("subject_id").filter(|s| !s.is_empty()) {
        Some(raw) => Some(crate::extract::subject_id(raw)?),
        None => None,
    };
    let time = |name: &str| -> Result<Option<custodia_core::Timestamp>, AppError> {
        match params.get(name).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(raw) => custodia_core::Timestamp::parse_rfc3339(raw)
                .map(Some)
                .ok_or_else(|| {
                    AppError::new(
                        ErrorCode::InvalidField,
                        "must be an RFC 3339 time",
                        Some(name.to_owned()),
                    )
                }),
        }
    };
    let (from, to) = (time("from")?, time("to")?);
    let limit = params.usize_or("limit", 100)?;
    let entries = state
        .run(move |engine| engine.access_entries(&caller, subject, from, to, limit))
        .await?;
    Ok(Json(EntryList { entries }))
}

/// Handlers of one log kind, for the router.
macro_rules! log_routes {
    ($module:ident, $kind:expr) => {
        /// The routes of one log kind.
        pub mod $module {
            use axum::Json;
            use axum::extract::State;
            use axum::response::Response;
            use custodia_engine::{ConsistencyProof, InclusionProof, LogPublicKey};

            use crate::extract::{Auth, Params};
            use crate::{AppError, AppState};

            /// `GET .../checkpoint`.
            pub async fn checkpoint(
                State(s): State<AppState>,
                Auth(c): Auth,
            ) -> Result<Response, AppError> {
                super::checkpoint($kind, s, c).await
            }

            /// `GET .../witnesses`.
            pub async fn witnesses(
                State(s): State<AppState>,
                Auth(c): Auth,
            ) -> Result<Json<super::Witnesses>, AppError> {
                super::witnesses($kind, s, c).await
            }

            /// `GET .../public-key`.
            pub async fn public_key(
                State(s): State<AppState>,
                Auth(c): Auth,
            ) -> Result<Json<LogPublicKey>, AppError> {
                super::public_key($kind, s, c).await
            }

            /// `GET .../entries`.
            pub async fn entries(
                State(s): State<AppState>,
                Auth(c): Auth,
                p: Params,
            ) -> Result<Json<super::EntryList>, AppError> {
                super::entries($kind, s, c, p).await
            }

            /// `GET .../proof/inclusion`.
            pub async fn inclusion(
                State(s): State<AppState>,
                Auth(c): Auth,
                p: Params,
            ) -> Result<Json<InclusionProof>, AppError> {
                super::inclusion($kind, s, c, p).await
            }

            /// `GET .../proof/consistency`.
            pub async fn consistency(
                State(s): State<AppState>,
                Auth(c): Auth,
                p: Params,
            ) -> Result<Json<ConsistencyProof>, AppError> {
                super::consistency($kind, s, c, p).await
            }
        }
    };
}

log_routes!(consent, custodia_engine::LogKind::Consent);
log_routes!(audit, custodia_engine::LogKind::Access);
