//! The Segment-compatible ingestion calls: `POST /v1/identify`, `/v1/track`, `/v1/page`,
//! `/v1/screen`, `/v1/group`, `/v1/alias` and `/v1/batch`. The api key comes as Bearer, as the
//! HTTP Basic user name (what the Segment and RudderStack SDKs send) or as the body's `writeKey`.

use axum::Json;
use axum::extract::State;
use custodia_core::{ErrorCode, Personal};
use custodia_engine::{
    AliasInput, BatchItem, BatchOutcome, EventCall, GroupInput, IdentifyInput, IdentifyOutcome,
    TrackInput, TrackOutcome,
};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::openapi::schema::AnyOfBuilder;
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::extract::Ingest;
use crate::{AppError, AppState, Problem};

/// `POST /v1/identify`.
pub async fn identify(
    State(state): State<AppState>,
    Ingest { caller, body }: Ingest,
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
    Ingest { caller, body }: Ingest,
) -> Result<Json<TrackOutcome>, AppError> {
    caller.require(custodia_core::Operation::Ingest)?;
    let input = with_context_policy(&state, TrackInput::from_json(&body, "")?);
    let outcome = state
        .run(move |engine| engine.track(&caller, &input))
        .await?;
    Ok(Json(outcome))
}

/// `POST /v1/page`: stored as the event `Page Viewed`.
pub async fn page(state: State<AppState>, ingest: Ingest) -> Result<Json<TrackOutcome>, AppError> {
    view(state, ingest, EventCall::Page).await
}

/// `POST /v1/screen`: stored as the event `Screen Viewed`.
pub async fn screen(
    state: State<AppState>,
    ingest: Ingest,
) -> Result<Json<TrackOutcome>, AppError> {
    view(state, ingest, EventCall::Screen).await
}

async fn view(
    State(state): State<AppState>,
    Ingest { caller, body }: Ingest,
    call: EventCall,
) -> Result<Json<TrackOutcome>, AppError> {
    caller.require(custodia_core::Operation::Ingest)?;
    let input = with_context_policy(&state, TrackInput::from_page_json(&body, "", call)?);
    let outcome = state
        .run(move |engine| engine.track(&caller, &input))
        .await?;
    Ok(Json(outcome))
}

/// `POST /v1/group`.
pub async fn group(
    State(state): State<AppState>,
    Ingest { caller, body }: Ingest,
) -> Result<Json<IdentifyOutcome>, AppError> {
    caller.require(custodia_core::Operation::Ingest)?;
    let input = GroupInput::from_json(&body, "")?;
    let outcome = state
        .run(move |engine| engine.group(&caller, &input))
        .await?;
    Ok(Json(outcome))
}

/// `POST /v1/alias`.
pub async fn alias(
    State(state): State<AppState>,
    Ingest { caller, body }: Ingest,
) -> Result<Json<IdentifyOutcome>, AppError> {
    caller.require(custodia_core::Operation::Ingest)?;
    let input = AliasInput::from_json(&body, "")?;
    let outcome = state
        .run(move |engine| engine.alias(&caller, &input))
        .await?;
    Ok(Json(outcome))
}

/// Drops an event's context when the server is configured so (`--event-context drop`).
fn with_context_policy(state: &AppState, mut input: TrackInput) -> TrackInput {
    if !state.0.config.keep_event_context {
        input.context = Personal(Map::new());
    }
    input
}

/// Top-level fields of a Segment batch that Custodia accepts and ignores besides `batch`
/// (RudderStack's Node SDK adds the batch's `timestamp`).
const BATCH_COMMON: &[&str] = &[
    "context",
    "integrations",
    "sentAt",
    "writeKey",
    "metadata",
    "timestamp",
];

/// The message types of the Segment spec.
const KNOWN_TYPES: &[&str] = &["identify", "track", "page", "screen", "group", "alias"];

/// `POST /v1/batch`: every item of a known type is parsed and validated before anything is
/// written, so a bad item refuses the whole batch with `field` pointing at it. An item of a type
/// Custodia does not know (a newer SDK's) is refused alone: its entry in `results` is a problem
/// naming it, and the other items are stored. A repeated `messageId` answers the original result.
pub async fn batch(
    State(state): State<AppState>,
    Ingest { caller, body }: Ingest,
) -> Result<Json<BatchAnswer>, AppError> {
    caller.require(custodia_core::Operation::Ingest)?;
    let parsed = parse_batch(&body, state.0.config.max_batch_items)?;
    let keep_context = state.0.config.keep_event_context;
    let mut items = Vec::new();
    let mut slots = Vec::with_capacity(parsed.len());
    for entry in parsed {
        match entry {
            Entry::Item(mut item) => {
                if let BatchItem::Track(input) = &mut item
                    && !keep_context
                {
                    input.context = Personal(Map::new());
                }
                slots.push(None);
                items.push(item);
            }
            Entry::Refused(problem) => slots.push(Some(problem)),
        }
    }
    let outcomes = if items.is_empty() {
        Vec::new()
    } else {
        state
            .run(move |engine| engine.batch(&caller, &items))
            .await?
    };
    let mut outcomes = outcomes.into_iter();
    let results = slots
        .into_iter()
        .map(|slot| match slot {
            Some(problem) => Ok(BatchResult::Refused(problem)),
            None => outcomes
                .next()
                .map(BatchResult::Applied)
                .ok_or_else(|| AppError::internal("batch: fewer outcomes than items".to_owned())),
        })
        .collect::<Result<_, AppError>>()?;
    Ok(Json(BatchAnswer { results }))
}

/// The answer of `POST /v1/batch`.
#[derive(Serialize, ToSchema)]
pub struct BatchAnswer {
    /// One result per item, in order.
    pub results: Vec<BatchResult>,
}

/// The result of one batch item: what identify/group/alias or track/page/screen answer alone
/// (the original answer for a repeated `messageId`), or the problem of an item refused alone.
#[derive(Serialize)]
#[serde(untagged)]
pub enum BatchResult {
    /// The item was stored (or was a repeat of one stored before).
    Applied(BatchOutcome),
    /// The item was refused alone (an unknown type); the others were stored.
    Refused(Problem),
}

impl PartialSchema for BatchResult {
    fn schema() -> RefOr<Schema> {
        // anyOf, not oneOf: the two outcome shapes are open objects.
        let any_of = [
            IdentifyOutcome::name(),
            TrackOutcome::name(),
            "Problem".into(),
        ]
        .into_iter()
        .fold(AnyOfBuilder::new(), |builder, name| {
            builder.item(Ref::from_schema_name(name))
        });
        RefOr::T(Schema::AnyOf(any_of.build()))
    }
}

impl ToSchema for BatchResult {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((IdentifyOutcome::name().into(), IdentifyOutcome::schema()));
        schemas.push((TrackOutcome::name().into(), TrackOutcome::schema()));
        IdentifyOutcome::schemas(schemas);
        TrackOutcome::schemas(schemas);
    }
}

fn invalid(field: impl Into<String>, detail: &str) -> AppError {
    AppError::new(ErrorCode::InvalidField, detail, Some(field.into()))
}

/// One item of a batch: to apply, or refused alone (its problem body).
enum Entry {
    Item(BatchItem),
    Refused(Problem),
}

fn parse_batch(body: &Value, max_items: usize) -> Result<Vec<Entry>, AppError> {
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
            let entry = match item.get("type").and_then(Value::as_str) {
                Some("identify") => Entry::Item(BatchItem::Identify(IdentifyInput::from_json(
                    item, &prefix,
                )?)),
                Some("track") => {
                    Entry::Item(BatchItem::Track(TrackInput::from_json(item, &prefix)?))
                }
                Some("page") => Entry::Item(BatchItem::Track(TrackInput::from_page_json(
                    item,
                    &prefix,
                    EventCall::Page,
                )?)),
                Some("screen") => Entry::Item(BatchItem::Track(TrackInput::from_page_json(
                    item,
                    &prefix,
                    EventCall::Screen,
                )?)),
                Some("group") => {
                    Entry::Item(BatchItem::Group(GroupInput::from_json(item, &prefix)?))
                }
                Some("alias") => {
                    Entry::Item(BatchItem::Alias(AliasInput::from_json(item, &prefix)?))
                }
                Some(_) => {
                    let problem = invalid(
                        format!("{prefix}/type"),
                        &format!(
                            "unknown type; this item was not stored (known: {})",
                            KNOWN_TYPES.join(", ")
                        ),
                    );
                    Entry::Refused(problem.problem().clone())
                }
                None => {
                    return Err(invalid(
                        format!("{prefix}/type"),
                        "is required and must be a string",
                    ));
                }
            };
            Ok(entry)
        })
        .collect()
}
