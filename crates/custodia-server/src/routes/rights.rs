//! Acting on data subjects' rights (roles with the `dsr_queue` operation): erasure, restriction,
//! objection, legal holds, the retention sweep; and lifting a suppression (operators only).
//! None of these answers carries personal data: ids, categories, counts, ledger positions.

use axum::Json;
use axum::extract::{Path, State};
use custodia_core::{ErrorCode, Personal};
use custodia_engine::{ErasureOptions, ErasureOutcome, FlagChange, FlagsView, RetentionReport};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::extract::{AppJson, Auth, OptionalJson, subject_id};
use crate::{AppError, AppState};

fn object(body: &Value, allowed: &[&str]) -> Result<Map<String, Value>, AppError> {
    let obj = body.as_object().ok_or_else(|| {
        AppError::new(
            ErrorCode::InvalidField,
            "must be a JSON object",
            Some("/".into()),
        )
    })?;
    if let Some(unknown) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(AppError::new(
            ErrorCode::InvalidField,
            "unknown field",
            Some(format!("/{unknown}")),
        ));
    }
    Ok(obj.clone())
}

fn optional_bool(obj: &Map<String, Value>, name: &str) -> Result<Option<bool>, AppError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(AppError::new(
            ErrorCode::InvalidField,
            "must be true or false",
            Some(format!("/{name}")),
        )),
    }
}

/// A request id: short, plain text (it goes into ledger attributes).
fn optional_request_id(obj: &Map<String, Value>) -> Result<Option<String>, AppError> {
    match obj.get("request_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) =>
        {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(AppError::new(
            ErrorCode::InvalidField,
            "must be 1 to 64 letters, digits, '-', '_' or '.'",
            Some("/request_id".into()),
        )),
    }
}

/// `POST /v1/subjects/{subject_id}/erasure` `{"suppress"?, "request_id"?}` (no body: `{}`):
/// erases the subject and says what was erased and what a legal obligation keeps.
pub async fn erase(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(raw_id): Path<String>,
    OptionalJson(body): OptionalJson,
) -> Result<Json<ErasureOutcome>, AppError> {
    let id = subject_id(&raw_id)?;
    let obj = object(&body, &["suppress", "request_id"])?;
    let options = ErasureOptions {
        suppress: optional_bool(&obj, "suppress")?.unwrap_or(false),
        request_id: optional_request_id(&obj)?,
    };
    let outcome = state
        .run(move |engine| engine.erase(&caller, id, &options))
        .await?;
    Ok(Json(outcome))
}

/// `GET /v1/subjects/{subject_id}/erasure`: what an erasure would erase and keep now, and why;
/// changes nothing.
pub async fn erasure_preview(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(raw_id): Path<String>,
) -> Result<Json<custodia_engine::ErasurePreview>, AppError> {
    let id = subject_id(&raw_id)?;
    let preview = state
        .run(move |engine| engine.erasure_preview(&caller, id))
        .await?;
    Ok(Json(preview))
}

/// `GET /v1/subjects/{subject_id}/flags`.
pub async fn flags(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(raw_id): Path<String>,
) -> Result<Json<FlagsView>, AppError> {
    let id = subject_id(&raw_id)?;
    let flags = state.run(move |engine| engine.flags(&caller, id)).await?;
    Ok(Json(flags))
}

/// `PUT /v1/subjects/{subject_id}/flags` `{"restricted"?, "objected"?, "legal_hold"?,
/// "request_id"?}` (no body: `{}`, which changes nothing): each flag given and different from its
/// current value becomes a ledger entry.
pub async fn set_flags(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(raw_id): Path<String>,
    OptionalJson(body): OptionalJson,
) -> Result<Json<FlagsView>, AppError> {
    let id = subject_id(&raw_id)?;
    let obj = object(
        &body,
        &["restricted", "objected", "legal_hold", "request_id"],
    )?;
    let wanted = [
        (
            optional_bool(&obj, "restricted")?,
            FlagChange::Restrict,
            FlagChange::LiftRestriction,
        ),
        (
            optional_bool(&obj, "objected")?,
            FlagChange::Object,
            FlagChange::WithdrawObjection,
        ),
        (
            optional_bool(&obj, "legal_hold")?,
            FlagChange::PlaceLegalHold,
            FlagChange::LiftLegalHold,
        ),
    ];
    let request_id = optional_request_id(&obj)?;
    let flags = state
        .run(move |engine| {
            let current = engine.flags(&caller, id)?;
            let now = [current.restricted, current.objected, current.legal_hold];
            for ((want, on, off), is) in wanted.into_iter().zip(now) {
                match want {
                    Some(true) if !is => {
                        engine.change_flags(&caller, id, on, request_id.as_deref())?;
                    }
                    Some(false) if is => {
                        engine.change_flags(&caller, id, off, request_id.as_deref())?;
                    }
                    _ => {}
                }
            }
            engine.flags(&caller, id)
        })
        .await?;
    Ok(Json(flags))
}

/// `POST /v1/admin/retention/run`: one retention sweep of the caller's tenant, now.
pub async fn retention_run(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<RetentionReport>, AppError> {
    let report = state
        .run(move |engine| engine.retention_sweep(&caller))
        .await?;
    Ok(Json(report))
}

/// `POST /v1/admin/suppressions/lift` `{"user_id"}` (or `userId`): the person may be stored again.
pub async fn lift_suppression(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AppJson(body): AppJson,
) -> Result<Json<Lifted>, AppError> {
    let obj = custodia_engine::with_user_id(&object(&body, &["user_id", "userId"])?, "")?;
    let user_id = match obj.get("user_id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Personal(s.clone()),
        _ => {
            return Err(AppError::new(
                ErrorCode::InvalidField,
                "must be the userId, 1 to 256 characters",
                Some("/user_id".into()),
            ));
        }
    };
    let lifted = state
        .run(move |engine| engine.lift_suppression(&caller, &user_id))
        .await?;
    Ok(Json(Lifted { lifted }))
}

/// The answer of `POST /v1/admin/suppressions/lift`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Lifted {
    /// Whether the userId was suppressed (and is no longer).
    pub lifted: bool,
}
