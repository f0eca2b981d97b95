//! Pseudonymized, consent-filtered analytics: `GET /v1/analytics/kpis` and
//! `GET /v1/analytics/segments`. Aggregates only; small cells come back suppressed.

use axum::Json;
use axum::extract::State;
use custodia_analytics::{Kpis, Segments};
use custodia_core::{ErrorCode, Timestamp};
use custodia_engine::{Clock, SystemClock};

use crate::extract::{Auth, Params};
use crate::{AppError, AppState};

fn time(params: &Params, name: &str) -> Result<Option<Timestamp>, AppError> {
    params
        .get(name)
        .map(|raw| {
            Timestamp::parse_rfc3339(raw).ok_or_else(|| {
                AppError::new(
                    ErrorCode::InvalidField,
                    "must be an RFC 3339 time",
                    Some(name.to_owned()),
                )
            })
        })
        .transpose()
}

/// `GET /v1/analytics/kpis?from=&to=`: the period defaults to the year before now.
pub async fn kpis(
    State(state): State<AppState>,
    Auth(caller): Auth,
    params: Params,
) -> Result<Json<Kpis>, AppError> {
    let to = time(&params, "to")?.unwrap_or_else(|| SystemClock.now());
    let from = time(&params, "from")?.unwrap_or_else(|| to.plus_days(-365));
    let kpis = state
        .run(move |engine| engine.kpis(&caller, from, to))
        .await?;
    Ok(Json(kpis))
}

/// `GET /v1/analytics/segments`: RFM segments and journey stages as of now.
pub async fn segments(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<Segments>, AppError> {
    let segments = state.run(move |engine| engine.segments(&caller)).await?;
    Ok(Json(segments))
}
