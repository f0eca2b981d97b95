//! The consent ledger for compliance: checkpoint, verifier key, entries, proofs.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use custodia_core::ErrorCode;
use custodia_engine::EntryView;
use serde_json::{Value, json};

use crate::extract::{Auth, Params};
use crate::{AppError, AppState};

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

/// `GET /v1/ledger/checkpoint`: the signed note, as text.
pub async fn checkpoint(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Response, AppError> {
    let note = state
        .run(move |engine| engine.ledger_checkpoint(&caller))
        .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

/// `GET /v1/ledger/public-key`: the verifier key (note format) and the raw key.
pub async fn public_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        state
            .run(move |engine| engine.ledger_public_key(&caller))
            .await?,
    ))
}

/// `GET /v1/ledger/entries?from=&limit=`.
pub async fn entries(
    State(state): State<AppState>,
    Auth(caller): Auth,
    params: Params,
) -> Result<Json<Value>, AppError> {
    let from = u64_param(&params, "from")?.unwrap_or(0);
    let limit = params.usize_or("limit", 100)?;
    let entries: Vec<EntryView> = state
        .run(move |engine| engine.ledger_entries(&caller, from, limit))
        .await?;
    Ok(Json(json!({ "entries": entries })))
}

/// `GET /v1/ledger/proof/inclusion?seq=&tree_size=`.
pub async fn inclusion(
    State(state): State<AppState>,
    Auth(caller): Auth,
    params: Params,
) -> Result<Json<Value>, AppError> {
    let seq = required(&params, "seq")?;
    let tree_size = u64_param(&params, "tree_size")?;
    Ok(Json(
        state
            .run(move |engine| engine.ledger_inclusion_proof(&caller, seq, tree_size))
            .await?,
    ))
}

/// `GET /v1/ledger/proof/consistency?from=&to=`.
pub async fn consistency(
    State(state): State<AppState>,
    Auth(caller): Auth,
    params: Params,
) -> Result<Json<Value>, AppError> {
    let from = required(&params, "from")?;
    let to = required(&params, "to")?;
    Ok(Json(
        state
            .run(move |engine| engine.ledger_consistency_proof(&caller, from, to))
            .await?,
    ))
}
