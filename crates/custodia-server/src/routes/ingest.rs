//! `POST /v1/identify`, `/v1/track` and `/v1/batch` (Segment-compatible).

use axum::Json;
use axum::extract::State;
use custodia_core::ErrorCode;
use custodia_engine::{BatchItem, IdentifyInput, IdentifyOutcome, TrackInput, TrackOutcome};
use serde_json::{Value, json};

use crate::extract::{AppJson, Auth};
use crate::{AppError, AppState};

/// `POST /v1/identify`.
pub async fn identify(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AppJson(body): AppJson,
) -> Result<Json<IdentifyOutcome>, AppError> {
    caller.require(custodia_core::Operation::Ingest)?;
    let input = IdentifyInput::from_json(&body, "")?;
    let outcome = state
        .run(move |engine| engine.identify(&caller, &input))
        .await?;
    Ok(Json(outcome))
}

/// `POST /v1/track`.
pub async fn track(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AppJson(body): AppJson,
) -> Result<Json<TrackOutcome>, AppError> {
    caller.require(custodia_core::Operation::Ingest)?;
    let input = TrackInput::from_json(&body, "")?;
    let outcome = state
        .run(move |engine| engine.track(&caller, &input))
        .await?;
    Ok(Json(outcome))
}

/// Top-level fields of a Segment batch that Custodia accepts and ignores besides `batch`.
const BATCH_COMMON: &[&str] = &["context", "integrations", "sentAt", "writeKey", "metadata"];

/// `POST /v1/batch`: every item is parsed and validated before anything is written, so one bad
/// item refuses the whole batch with `field` pointing at it.
pub async fn batch(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AppJson(body): AppJson,
) -> Result<Json<Value>, AppError> {
    caller.require(custodia_core::Operation::Ingest)?;
    let items = parse_batch(&body, state.0.config.max_batch_items)?;
    let outcomes = state
        .run(move |engine| engine.batch(&caller, &items))
        .await?;
    Ok(Json(json!({ "results": outcomes })))
}

fn invalid(field: impl Into<String>, detail: &str) -> AppError {
    AppError::new(ErrorCode::InvalidField, detail, Some(field.into()))
}

fn parse_batch(body: &Value, max_items: usize) -> Result<Vec<BatchItem>, AppError> {
    let obj = body
        .as_object()
        .ok_or_else(|| invalid("/", "must be a JSON object"))?;
    if let Some(unknown) = obj
        .keys()
        .find(|k| *k != "batch" && !BATCH_COMMON.contains(&k.as_str()))
    {
        return Err(invalid(format!("/{unknown}"), "unknown field"));
    }
    let list = obj
        .get("batch")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("/batch", "must be an array"))?;
    if list.is_empty() || list.len() > max_items {
        return Err(invalid(
            "/batch",
            &format!("must hold 1 to {max_items} items"),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let prefix = format!("/batch/{i}");
            match item.get("type").and_then(Value::as_str) {
                Some("identify") => Ok(BatchItem::Identify(IdentifyInput::from_json(
                    item, &prefix,
                )?)),
                Some("track") => Ok(BatchItem::Track(TrackInput::from_json(item, &prefix)?)),
                _ => Err(invalid(
                    format!("{prefix}/type"),
                    "must be \"identify\" or \"track\"",
                )),
            }
        })
        .collect()
}
