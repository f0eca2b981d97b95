//! Pseudonymized, consent-filtered analytics: `GET /v1/analytics/kpis` and
//! `GET /v1/analytics/segments`. Aggregates only; small cells come back suppressed.

use axum::Json;
use axum::extract::State;
use custodia_analytics::{Dashboard, DashboardRequest, Interval, Segments};
use custodia_core::{ErrorCode, Timestamp};
use custodia_engine::{Clock, SystemClock};

use crate::extract::{Auth, Params};
use crate::{AppError, AppState};

/// 0001-01-01T00:00:00Z, the earliest time RFC 3339 clients read: `0000-...` parses, but many
/// date-time parsers (Python's, JSON Schema validators) refuse year 0, and the period is echoed.
const YEAR_ONE: Timestamp = Timestamp::from_unix_micros(-62_135_596_800_000_000);

fn time(params: &Params, name: &str) -> Result<Option<Timestamp>, AppError> {
    params
        .get(name)
        .map(|raw| {
            Timestamp::parse_rfc3339(raw)
                .filter(|t| *t >= YEAR_ONE)
                .ok_or_else(|| {
                    AppError::new(
                        ErrorCode::InvalidField,
                        "must be an RFC 3339 time from the year 1 on",
                        Some(name.to_owned()),
                    )
                })
        })
        .transpose()
}

/// `compare` and `series`: what the dashboard asks for beside the period's KPIs.
fn dashboard_request(
    params: &Params,
    from: Timestamp,
    to: Timestamp,
) -> Result<DashboardRequest, AppError> {
    let compare_previous = match params.get("compare") {
        None => false,
        Some("previous") => true,
        Some(_) => {
            return Err(AppError::new(
                ErrorCode::InvalidField,
                "must be \"previous\"",
                Some("compare".to_owned()),
            ));
        }
    };
    // The previous period is echoed too, so it must start in a year clients read.
    let length = to.unix_micros().saturating_sub(from.unix_micros());
    if compare_previous && from.unix_micros().saturating_sub(length) < YEAR_ONE.unix_micros() {
        return Err(AppError::new(
            ErrorCode::InvalidField,
            "the previous period would start before the year 1",
            Some("compare".to_owned()),
        ));
    }
    let series = params
        .get("series")
        .map(|name| {
            Interval::parse(name).ok_or_else(|| {
                AppError::new(
                    ErrorCode::InvalidField,
                    "must be one of day, week, month",
                    Some("series".to_owned()),
                )
            })
        })
        .transpose()?;
    Ok(DashboardRequest {
        compare_previous,
        series,
    })
}

/// `GET /v1/analytics/kpis?from=&to=&compare=previous&series=day|week|month`: the period
/// defaults to the year before now; without `compare` and `series` the answer is the period's
/// KPIs alone, as it always was.
pub async fn kpis(
    State(state): State<AppState>,
    Auth(caller): Auth,
    params: Params,
) -> Result<Json<Dashboard>, AppError> {
    let to = time(&params, "to")?.unwrap_or_else(|| SystemClock.now());
    let from = time(&params, "from")?.unwrap_or_else(|| to.plus_days(-365).max(YEAR_ONE));
    let request = dashboard_request(&params, from, to)?;
    let dashboard = state
        .run(move |engine| engine.dashboard(&caller, from, to, request))
        .await?;
    Ok(Json(dashboard))
}

/// `GET /v1/analytics/segments`: RFM segments and journey stages as of now.
pub async fn segments(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<Segments>, AppError> {
    let segments = state.run(move |engine| engine.segments(&caller)).await?;
    Ok(Json(segments))
}
