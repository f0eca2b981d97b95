//! Consent: `POST /v1/consents`, a subject's current consent per purpose, and its history with
//! inclusion proofs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use custodia_engine::{ConsentHistory, ConsentInput};
use serde_json::{Value, json};

use crate::extract::{AppJson, Auth, subject_id};
use crate::{AppError, AppState};

/// `POST /v1/consents`: records a decision in the ledger; 201 once it is durable. A decision
/// with a `decision_id`, or a request with an `Idempotency-Key` header, that was recorded before
/// answers the original entry (201 again) and appends nothing.
pub async fn record(
    State(state): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    AppJson(body): AppJson,
) -> Result<(StatusCode, Json<Value>), AppError> {
    caller.require(custodia_core::Operation::ConsentWrite)?;
    let input = ConsentInput::from_json(&body)?;
    let key = idempotency_key(&headers)?;
    let (outcome, _repeated) = state
        .run(move |engine| engine.record_consent_once(&caller, &input, key.as_deref()))
        .await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

/// The `Idempotency-Key` header, if sent: one, 1 to 256 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = || {
        AppError::new(
            custodia_core::ErrorCode::InvalidField,
            "send one Idempotency-Key of 1 to 256 visible ASCII characters",
            Some("Idempotency-Key".to_owned()),
        )
    };
    if values.next().is_some() {
        return Err(invalid());
    }
    let key = value.to_str().map_err(|_| invalid())?.trim();
    if key.is_empty() || key.len() > custodia_engine::MAX_IDEMPOTENCY_KEY_LEN {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

/// `GET /v1/subjects/{subject_id}/consents`: one row per purpose of the policies.
pub async fn state(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let id = subject_id(&raw_id)?;
    let purposes = state
        .run(move |engine| engine.consent_state(&caller, id))
        .await?;
    Ok(Json(json!({ "subject_id": id, "purposes": purposes })))
}

/// `GET /v1/subjects/{subject_id}/consents/history`: entries, inclusion proofs, checkpoint.
pub async fn history(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(raw_id): Path<String>,
) -> Result<Json<ConsentHistory>, AppError> {
    let id = subject_id(&raw_id)?;
    let history = state
        .run(move |engine| engine.consent_history(&caller, id))
        .await?;
    Ok(Json(history))
}
