//! Consent: `POST /v1/consents`, a subject's current consent per purpose, and its history with
//! inclusion proofs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use custodia_engine::{ConsentHistory, ConsentInput, PurposeConsent};
use serde::Serialize;
use serde_json::Value;

use crate::extract::{AppJson, Auth, subject_id};
use crate::{AppError, AppState};

/// `POST /v1/consents`: records a decision in the ledger; 201 once it is durable. A decision
/// with a `decision_id` that was recorded before answers the original entry (201 again) and
/// appends nothing; an `Idempotency-Key` header is handled by the layer around every write.
/// The body is a `ConsentOutcome` serialized (kept so for the replay), its schema in the document.
pub async fn record(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AppJson(body): AppJson,
) -> Result<(StatusCode, Json<Value>), AppError> {
    caller.require(custodia_core::Operation::ConsentWrite)?;
    let input = ConsentInput::from_json(&body)?;
    let (outcome, _repeated) = state
        .run(move |engine| engine.record_consent_once(&caller, &input))
        .await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

/// `GET /v1/subjects/{subject_id}/consents`: one row per purpose of the policies.
pub async fn state(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(raw_id): Path<String>,
) -> Result<Json<ConsentState>, AppError> {
    let id = subject_id(&raw_id)?;
    let purposes = state
        .run(move |engine| engine.consent_state(&caller, id))
        .await?;
    Ok(Json(ConsentState {
        subject_id: id,
        purposes,
    }))
}

/// The answer of `GET /v1/subjects/{subject_id}/consents`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsentState {
    /// The subject.
    pub subject_id: custodia_core::SubjectId,
    /// One row per purpose of the policies.
    pub purposes: Vec<PurposeConsent>,
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
