//! Profiles: read, look up, change, and list events. Every read names a purpose.

use axum::Json;
use axum::extract::{Path, State};
use custodia_core::{ErrorCode, Operation, Personal, Timestamp};
use custodia_engine::{EngineError, EventPage, Lookup, Profile, TraitChanges};
use serde::Serialize;

use crate::extract::{AppJson, Auth, Params, subject_id};
use crate::{AppError, AppState};

/// Default and largest page of events.
const DEFAULT_EVENT_PAGE: usize = 50;

/// `GET /v1/subjects/{subject_id}?purpose=P`.
pub async fn read(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(raw_id): Path<String>,
    params: Params,
) -> Result<Json<Profile>, AppError> {
    let id = subject_id(&raw_id)?;
    let purpose = params.get("purpose").map(str::to_owned);
    let profile = state
        .run(move |engine| {
            let grant = engine.grant(&caller, Operation::ReadProfile, purpose.as_deref())?;
            engine.profile(&grant, id)
        })
        .await?;
    Ok(Json(profile))
}

/// `GET /v1/subjects?email=E&purpose=P` (or `phone=`, `user_id=` / `userId=`): exact look-up.
pub async fn look_up(
    State(state): State<AppState>,
    Auth(caller): Auth,
    mut params: Params,
) -> Result<Json<Subjects>, AppError> {
    let purpose = params.take("purpose");
    let mut keys = Vec::new();
    if let Some(v) = params.take("email") {
        keys.push(Lookup::Email(Personal(v)));
    }
    if let Some(v) = params.take("phone") {
        keys.push(Lookup::Phone(Personal(v)));
    }
    // `user_id` is documented; Segment's `userId` is accepted too (giving both is two keys).
    for name in [custodia_engine::USER_ID, custodia_engine::USER_ID_SEGMENT] {
        if let Some(v) = params.take(name) {
            keys.push(Lookup::UserId(Personal(v)));
        }
    }
    let by = match keys.len() {
        1 => keys.remove(0),
        _ => {
            return Err(AppError::new(
                ErrorCode::InvalidField,
                "give exactly one of email, phone or user_id",
                Some("email".to_owned()),
            ));
        }
    };
    let subjects = state
        .run(move |engine| {
            let grant = engine.grant(&caller, Operation::ReadProfile, purpose.as_deref())?;
            engine.lookup(&grant, &by)
        })
        .await?;
    Ok(Json(Subjects { subjects }))
}

/// The answer of a look-up: the subjects the key matches (usually one).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Subjects {
    /// Their profiles, narrowed to the purpose's data categories.
    pub subjects: Vec<Profile>,
}

/// The answer of `PATCH /v1/subjects/{subject_id}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProfileUpdated {
    /// The subject.
    pub subject_id: custodia_core::SubjectId,
    /// When the profile changed.
    pub updated_at: Timestamp,
}

/// `PATCH /v1/subjects/{subject_id}` with `{"traits": {...}}`; `null` removes a trait.
pub async fn patch(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(raw_id): Path<String>,
    AppJson(body): AppJson,
) -> Result<Json<ProfileUpdated>, AppError> {
    let id = subject_id(&raw_id)?;
    caller.require(Operation::WriteProfile)?;
    let changes = TraitChanges::from_json(&body)?;
    let updated_at: Timestamp = state
        .run(move |engine| engine.patch_profile(&caller, id, &changes))
        .await?;
    Ok(Json(ProfileUpdated {
        subject_id: id,
        updated_at,
    }))
}

/// `GET /v1/subjects/{subject_id}/events?purpose=P&limit=&cursor=`.
pub async fn events(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(raw_id): Path<String>,
    params: Params,
) -> Result<Json<EventPage>, AppError> {
    let id = subject_id(&raw_id)?;
    let purpose = params.get("purpose").map(str::to_owned);
    let cursor = params.get("cursor").map(str::to_owned);
    let limit = params.usize_or("limit", DEFAULT_EVENT_PAGE)?;
    let page = state
        .run(move |engine| {
            let grant = engine.grant(&caller, Operation::ReadProfile, purpose.as_deref())?;
            engine.events(&grant, id, cursor.as_deref(), limit)
        })
        .await?;
    Ok(Json(page))
}

/// `GET /v1/search?q=TEXT&purpose=P&limit=N[&tier=T]`: full-text search over keyed-hash tokens;
/// hits are subjects the purpose may process, best first.
pub async fn search(
    State(state): State<AppState>,
    Auth(caller): Auth,
    params: Params,
) -> Result<Json<custodia_engine::SearchPage>, AppError> {
    let purpose = params.get("purpose").map(str::to_owned);
    let tier = params.get("tier").map(str::to_owned);
    let text = params.get("q").map(|q| q.trim().to_owned());
    let limit = params.usize_or("limit", 10)?;
    let page = state
        .run(move |engine| {
            let grant = engine.grant(&caller, Operation::Search, purpose.as_deref())?;
            let text = match text {
                Some(q) if !q.is_empty() || tier.is_some() => q,
                _ => return Err(EngineError::invalid("q", "give the words to search for")),
            };
            engine.search(&grant, &text, tier.as_deref(), limit)
        })
        .await?;
    Ok(Json(page))
}
