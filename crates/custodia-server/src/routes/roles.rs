//! The role check, before anything else of a request is looked at: a key whose role may not use a
//! route is answered `403 role_not_permitted` (naming the roles that may) whatever its body, query
//! or path holds, so a wrong role never learns which inputs would have been valid.
//!
//! The handlers and the engine check the role again (defence in depth); this table only makes the
//! refusal come first. A test keeps it in step with `ROUTES`.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use custodia_core::Operation;

use crate::extract::Auth;
use crate::{AppError, AppState};

/// The operation each route needs of the caller's role: method, route template, operation.
pub const NEEDS: &[(&str, &str, Operation)] = &[
    ("POST", "/v1/identify", Operation::Ingest),
    ("POST", "/v1/track", Operation::Ingest),
    ("POST", "/v1/batch", Operation::Ingest),
    ("POST", "/v1/page", Operation::Ingest),
    ("POST", "/v1/screen", Operation::Ingest),
    ("POST", "/v1/group", Operation::Ingest),
    ("POST", "/v1/alias", Operation::Ingest),
    ("GET", "/v1/subjects", Operation::ReadProfile),
    ("GET", "/v1/subjects/{subject_id}", Operation::ReadProfile),
    (
        "PATCH",
        "/v1/subjects/{subject_id}",
        Operation::WriteProfile,
    ),
    (
        "GET",
        "/v1/subjects/{subject_id}/events",
        Operation::ReadProfile,
    ),
    ("GET", "/v1/search", Operation::Search),
    ("POST", "/v1/admin/keys", Operation::ManageKeys),
    ("GET", "/v1/admin/keys", Operation::ManageKeys),
    ("DELETE", "/v1/admin/keys/{key_id}", Operation::ManageKeys),
    ("GET", "/v1/admin/root-key", Operation::ManageKeys),
    ("POST", "/v1/admin/backups", Operation::ManageKeys),
    ("GET", "/v1/dsr", Operation::DsrQueue),
    ("GET", "/v1/dsr/{request_id}/case", Operation::DsrQueue),
    (
        "POST",
        "/v1/dsr/{request_id}/carry-out",
        Operation::DsrQueue,
    ),
    ("POST", "/v1/dsr/{request_id}/reject", Operation::DsrQueue),
    ("POST", "/v1/dsr/{request_id}/extend", Operation::DsrQueue),
    (
        "POST",
        "/v1/subjects/{subject_id}/erasure",
        Operation::DsrQueue,
    ),
    (
        "GET",
        "/v1/subjects/{subject_id}/erasure",
        Operation::DsrQueue,
    ),
    (
        "GET",
        "/v1/subjects/{subject_id}/flags",
        Operation::DsrQueue,
    ),
    (
        "PUT",
        "/v1/subjects/{subject_id}/flags",
        Operation::DsrQueue,
    ),
    ("POST", "/v1/admin/retention/run", Operation::DsrQueue),
    ("GET", "/v1/analytics/kpis", Operation::Analytics),
    ("GET", "/v1/analytics/segments", Operation::Analytics),
    ("POST", "/v1/admin/suppressions/lift", Operation::ManageKeys),
    ("GET", "/v1/audit/merges", Operation::Audit),
    ("POST", "/v1/consents", Operation::ConsentWrite),
    (
        "GET",
        "/v1/subjects/{subject_id}/consents",
        Operation::ConsentRead,
    ),
    (
        "GET",
        "/v1/subjects/{subject_id}/consents/history",
        Operation::ConsentRead,
    ),
    ("GET", "/v1/ledger/checkpoint", Operation::Ledger),
    ("GET", "/v1/ledger/public-key", Operation::Ledger),
    ("GET", "/v1/ledger/witnesses", Operation::Ledger),
    ("GET", "/v1/audit/access/witnesses", Operation::Audit),
    ("GET", "/v1/ledger/entries", Operation::Ledger),
    ("GET", "/v1/ledger/proof/inclusion", Operation::Ledger),
    ("GET", "/v1/ledger/proof/consistency", Operation::Ledger),
    ("GET", "/v1/audit/access", Operation::Audit),
    ("GET", "/v1/audit/access/checkpoint", Operation::Audit),
    ("GET", "/v1/audit/access/public-key", Operation::Audit),
    ("GET", "/v1/audit/access/entries", Operation::Audit),
    ("GET", "/v1/audit/access/proof/inclusion", Operation::Audit),
    (
        "GET",
        "/v1/audit/access/proof/consistency",
        Operation::Audit,
    ),
];

/// Routes that need no operation of a role: public (health, metrics, the OpenAPI document, the
/// data-subject's own request routes) or open to every valid key (`/v1/purposes`). Only the test
/// reads it: with [`NEEDS`] it must list exactly the routes of `ROUTES`.
#[cfg(test)]
pub const OPEN: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/purposes"),
    // Any valid key may ask who it is; the answer is about the key, not about data.
    ("GET", "/v1/me"),
    // The policies in force are what every key works under; they hold no personal data.
    ("GET", "/v1/policies"),
    ("POST", "/v1/dsr"),
    ("POST", "/v1/dsr/{request_id}/verify"),
    ("GET", "/v1/dsr/{request_id}"),
    ("GET", "/v1/dsr/{request_id}/export"),
    ("GET", "/v1/dsr/{request_id}/consents"),
    ("POST", "/v1/dsr/{request_id}/consents"),
];

/// The operation a route needs, if it needs one.
pub fn operation_of(method: &str, route: &str) -> Option<Operation> {
    NEEDS
        .iter()
        .find(|(m, r, _)| *m == method && *r == route)
        .map(|(_, _, op)| *op)
}

/// Middleware: authenticates and checks the role of every route in [`NEEDS`] before the handler
/// reads anything; the caller it found is handed on to the handler's [`Auth`].
pub async fn require_role(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let needed = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|route| operation_of(req.method().as_str(), route.as_str()));
    let Some(op) = needed else {
        return next.run(req).await;
    };
    // Segment's and RudderStack's servers also take the key as a batch body's `writeKey` when no
    // header is sent: the ingestion extractor reads it from the body (and the engine checks the
    // role), so only a key sent in a header can be checked here.
    if op == Operation::Ingest
        && !req
            .headers()
            .contains_key(axum::http::header::AUTHORIZATION)
    {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let caller = match Auth::from_request_parts(&mut parts, &state).await {
        Ok(Auth(caller)) => caller,
        Err(refused) => return refused.into_response(),
    };
    if let Err(refused) = caller.require(op) {
        return AppError::from(refused).into_response();
    }
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, body)).await
}
