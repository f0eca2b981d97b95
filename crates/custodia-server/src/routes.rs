//! The router: every route of api.md that exists so far, and the middleware around them.

mod admin;
mod analytics;
pub(crate) mod backup;
mod consents;
mod console;
mod docs;
mod dsr;
mod ingest;
mod ledger;
mod meta;
mod operations;
mod privacy;
mod rights;
pub(crate) mod roles;
mod subjects;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use custodia_core::ErrorCode;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

pub use dsr::WebhookOutbox;
pub(crate) use meta::{Health, Me};

/// The answer types of the handlers that build their own, for the OpenAPI document's schemas.
pub(crate) mod answers {
    pub(crate) use super::admin::{KeyCreated, Merges};
    pub(crate) use super::consents::ConsentState;
    pub(crate) use super::dsr::{DsrQueue, DsrReceived, DsrVerified};
    pub(crate) use super::ingest::BatchAnswer;
    pub(crate) use super::ledger::{EntryList, Witnesses};
    pub(crate) use super::meta::Purposes;
    pub(crate) use super::operations::{ApiKeys, PoliciesView, RootKeyView};
    pub(crate) use super::rights::Lifted;
    pub(crate) use super::subjects::{ProfileUpdated, Subjects};
}

use crate::{AppError, AppState};

/// What a route returns, for the test that every personal-data route demands a purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Returns personal data: takes `purpose=`.
    PersonalRead,
    /// Writes personal data; returns ids only.
    PersonalWrite,
    /// The consent record itself (state, history, ledger): read under the `consent_read` or
    /// `ledger` operation rather than for a processing purpose; subjects appear by id or
    /// pseudonym, evidence stays sealed.
    ConsentRecord,
    /// Returns no personal data.
    Other,
}

/// Every route: method, path, kind. The router and the OpenAPI document are both checked
/// against this table.
pub const ROUTES: &[(&str, &str, RouteKind)] = &[
    ("GET", "/healthz", RouteKind::Other),
    ("GET", "/metrics", RouteKind::Other),
    ("GET", "/openapi.json", RouteKind::Other),
    ("GET", "/v1/purposes", RouteKind::Other),
    ("GET", "/v1/me", RouteKind::Other),
    ("GET", "/v1/policies", RouteKind::Other),
    ("POST", "/v1/identify", RouteKind::PersonalWrite),
    ("POST", "/v1/track", RouteKind::PersonalWrite),
    ("POST", "/v1/batch", RouteKind::PersonalWrite),
    ("POST", "/v1/page", RouteKind::PersonalWrite),
    ("POST", "/v1/screen", RouteKind::PersonalWrite),
    ("POST", "/v1/group", RouteKind::PersonalWrite),
    ("POST", "/v1/alias", RouteKind::PersonalWrite),
    ("GET", "/v1/subjects", RouteKind::PersonalRead),
    ("GET", "/v1/subjects/{subject_id}", RouteKind::PersonalRead),
    (
        "PATCH",
        "/v1/subjects/{subject_id}",
        RouteKind::PersonalWrite,
    ),
    (
        "GET",
        "/v1/subjects/{subject_id}/events",
        RouteKind::PersonalRead,
    ),
    ("GET", "/v1/search", RouteKind::PersonalRead),
    ("POST", "/v1/admin/keys", RouteKind::Other),
    ("GET", "/v1/admin/keys", RouteKind::Other),
    ("DELETE", "/v1/admin/keys/{key_id}", RouteKind::Other),
    ("GET", "/v1/admin/root-key", RouteKind::Other),
    ("POST", "/v1/admin/backups", RouteKind::Other),
    ("POST", "/v1/dsr", RouteKind::PersonalWrite),
    ("GET", "/v1/dsr", RouteKind::Other),
    ("POST", "/v1/dsr/{request_id}/verify", RouteKind::Other),
    ("GET", "/v1/dsr/{request_id}", RouteKind::Other),
    ("GET", "/v1/dsr/{request_id}/export", RouteKind::Other),
    (
        "GET",
        "/v1/dsr/{request_id}/consents",
        RouteKind::ConsentRecord,
    ),
    (
        "POST",
        "/v1/dsr/{request_id}/consents",
        RouteKind::PersonalWrite,
    ),
    ("GET", "/v1/dsr/{request_id}/case", RouteKind::PersonalRead),
    (
        "POST",
        "/v1/dsr/{request_id}/carry-out",
        RouteKind::PersonalWrite,
    ),
    ("POST", "/v1/dsr/{request_id}/reject", RouteKind::Other),
    ("POST", "/v1/dsr/{request_id}/extend", RouteKind::Other),
    (
        "POST",
        "/v1/subjects/{subject_id}/erasure",
        RouteKind::Other,
    ),
    ("GET", "/v1/subjects/{subject_id}/erasure", RouteKind::Other),
    ("GET", "/v1/subjects/{subject_id}/flags", RouteKind::Other),
    ("PUT", "/v1/subjects/{subject_id}/flags", RouteKind::Other),
    ("POST", "/v1/admin/retention/run", RouteKind::Other),
    ("GET", "/v1/analytics/kpis", RouteKind::Other),
    ("GET", "/v1/analytics/segments", RouteKind::Other),
    ("POST", "/v1/admin/suppressions/lift", RouteKind::Other),
    ("GET", "/v1/audit/merges", RouteKind::Other),
    ("POST", "/v1/consents", RouteKind::PersonalWrite),
    (
        "GET",
        "/v1/subjects/{subject_id}/consents",
        RouteKind::ConsentRecord,
    ),
    (
        "GET",
        "/v1/subjects/{subject_id}/consents/history",
        RouteKind::ConsentRecord,
    ),
    ("GET", "/v1/ledger/checkpoint", RouteKind::ConsentRecord),
    ("GET", "/v1/ledger/public-key", RouteKind::Other),
    ("GET", "/v1/ledger/witnesses", RouteKind::Other),
    ("GET", "/v1/audit/access/witnesses", RouteKind::Other),
    ("GET", "/v1/ledger/entries", RouteKind::ConsentRecord),
    (
        "GET",
        "/v1/ledger/proof/inclusion",
        RouteKind::ConsentRecord,
    ),
    (
        "GET",
        "/v1/ledger/proof/consistency",
        RouteKind::ConsentRecord,
    ),
    ("GET", "/v1/audit/access", RouteKind::ConsentRecord),
    (
        "GET",
        "/v1/audit/access/checkpoint",
        RouteKind::ConsentRecord,
    ),
    ("GET", "/v1/audit/access/public-key", RouteKind::Other),
    ("GET", "/v1/audit/access/entries", RouteKind::ConsentRecord),
    (
        "GET",
        "/v1/audit/access/proof/inclusion",
        RouteKind::ConsentRecord,
    ),
    (
        "GET",
        "/v1/audit/access/proof/consistency",
        RouteKind::ConsentRecord,
    ),
];

/// The API's router over `state`.
pub fn router(state: AppState) -> Router {
    let max_body = state.0.config.max_body_bytes;
    Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/metrics", get(meta::metrics))
        .route("/openapi.json", get(meta::openapi))
        .route("/v1/purposes", get(meta::purposes))
        .route("/v1/me", get(meta::me))
        .route("/v1/identify", post(ingest::identify))
        .route("/v1/track", post(ingest::track))
        .route("/v1/batch", post(ingest::batch))
        .route("/v1/page", post(ingest::page))
        .route("/v1/screen", post(ingest::screen))
        .route("/v1/group", post(ingest::group))
        .route("/v1/alias", post(ingest::alias))
        .route("/v1/subjects", get(subjects::look_up))
        .route(
            "/v1/subjects/{subject_id}",
            get(subjects::read).patch(subjects::patch),
        )
        .route("/v1/subjects/{subject_id}/events", get(subjects::events))
        .route("/v1/search", get(subjects::search))
        .route(
            "/v1/admin/keys",
            post(admin::create_key).get(operations::keys),
        )
        .route(
            "/v1/admin/keys/{key_id}",
            axum::routing::delete(operations::revoke_key),
        )
        .route("/v1/admin/root-key", get(operations::root_key))
        .route("/v1/policies", get(operations::policies))
        .route("/v1/admin/backups", post(backup::create))
        .route("/v1/dsr", post(dsr::submit).get(dsr::queue))
        .route("/v1/dsr/{request_id}/verify", post(dsr::verify))
        .route("/v1/dsr/{request_id}", get(dsr::status))
        .route("/v1/dsr/{request_id}/export", get(dsr::export))
        .route(
            "/v1/dsr/{request_id}/consents",
            get(dsr::consents).post(dsr::record_consent),
        )
        .route("/v1/dsr/{request_id}/case", get(dsr::case))
        .route("/v1/dsr/{request_id}/carry-out", post(dsr::carry_out))
        .route("/v1/dsr/{request_id}/reject", post(dsr::reject))
        .route("/v1/dsr/{request_id}/extend", post(dsr::extend))
        .route(
            "/v1/subjects/{subject_id}/erasure",
            post(rights::erase).get(rights::erasure_preview),
        )
        .route(
            "/v1/subjects/{subject_id}/flags",
            get(rights::flags).put(rights::set_flags),
        )
        .route("/v1/admin/retention/run", post(rights::retention_run))
        .route("/v1/analytics/kpis", get(analytics::kpis))
        .route("/v1/analytics/segments", get(analytics::segments))
        .route(
            "/v1/admin/suppressions/lift",
            post(rights::lift_suppression),
        )
        .route("/v1/audit/merges", get(admin::merges))
        .route("/v1/consents", post(consents::record))
        .route("/v1/subjects/{subject_id}/consents", get(consents::state))
        .route(
            "/v1/subjects/{subject_id}/consents/history",
            get(consents::history),
        )
        .route("/v1/audit/access", get(ledger::access))
        .route(
            "/v1/audit/access/checkpoint",
            get(ledger::audit::checkpoint),
        )
        .route(
            "/v1/audit/access/public-key",
            get(ledger::audit::public_key),
        )
        .route("/v1/audit/access/entries", get(ledger::audit::entries))
        .route(
            "/v1/audit/access/proof/inclusion",
            get(ledger::audit::inclusion),
        )
        .route(
            "/v1/audit/access/proof/consistency",
            get(ledger::audit::consistency),
        )
        .route("/v1/ledger/checkpoint", get(ledger::consent::checkpoint))
        .route("/v1/ledger/witnesses", get(ledger::consent::witnesses))
        .route("/v1/audit/access/witnesses", get(ledger::audit::witnesses))
        .route("/v1/ledger/public-key", get(ledger::consent::public_key))
        .route("/v1/ledger/entries", get(ledger::consent::entries))
        .route(
            "/v1/ledger/proof/inclusion",
            get(ledger::consent::inclusion),
        )
        .route(
            "/v1/ledger/proof/consistency",
            get(ledger::consent::consistency),
        )
        .merge(privacy::pages())
        .merge(console::pages())
        .merge(docs::pages())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Inside the role check, which hands it the caller that owns the key.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::idempotency::idempotent,
        ))
        // Inside `observe`, so a refusal is logged and counted by its route too.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            roles::require_role,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), body_deadline))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                // The panic payload may quote data; it is not logged here (the binary's panic hook
                // logs the location only).
                use axum::response::IntoResponse;
                AppError::internal("handler panicked").into_response()
            },
        ))
        .with_state(state)
}

async fn not_found() -> AppError {
    AppError::new(ErrorCode::NotFound, "no such route", None)
}

async fn method_not_allowed() -> Response {
    use axum::response::IntoResponse;
    let mut response = AppError::new(
        ErrorCode::NotFound,
        "method not allowed on this route",
        None,
    )
    .into_response();
    *response.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// Gives the request body its deadline: a client that trickles its body out loses it
/// (`408 request_timeout`) instead of holding a handler.
async fn body_deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let within = state.0.config.connections.body_read_timeout;
    let req = req.map(|body| axum::body::Body::new(crate::conn::DeadlineBody::new(body, within)));
    next.run(req).await
}

/// Logs and counts each request by its route template: never the raw URI, whose query may hold
/// an e-mail address or a phone number.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    // Errors logged while handling the request carry its method and route.
    let span = tracing::info_span!("request", method = %method, route = %route);
    let response = next.run(req).instrument(span).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.0.metrics.record(&method, &route, status, elapsed);
    tracing::info!(
        method = %method,
        route = %route,
        status,
        micros = elapsed.as_micros() as u64,
        "request"
    );
    response
}
