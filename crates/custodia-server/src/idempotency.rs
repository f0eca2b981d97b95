//! `Idempotency-Key` on every write, in one layer around the handlers (after the role check), in
//! the manner of Stripe and draft-ietf-httpapi-idempotency-key-header:
//!
//! - the same key with the same request (method, path and query, body) within the idempotency
//!   window is answered with the first answer's status and body, marked `Idempotent-Replayed:
//!   true`, and the handler does not run again;
//! - the same key with another request: `422 idempotency_key_reused`, nothing applied;
//! - the same key while the first request is still being handled: `409
//!   idempotency_key_in_flight`, nothing applied;
//! - a key that is not 1 to 255 visible ASCII characters (optionally in double quotes, as the
//!   draft's structured-field string), or sent twice: `400 invalid_header`.
//!
//! Only successful (2xx) answers are kept: a refusal changed nothing, so running the request
//! again is what a retry should do. Keys are scoped by tenant and stored as keyed hashes (see
//! `custodia_engine::IdempotencySlot`). Routes whose answer must not be kept or which have no
//! API-key owner refuse the header instead (see [`support`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use custodia_core::ErrorCode;
use custodia_engine::{Caller, IdempotencySlot, KeptAnswer, PriorUse};

use crate::{AppError, AppState};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The answer header that marks a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest accepted key, in bytes.
pub const MAX_KEY_LEN: usize = 255;
/// Largest answer kept; write answers are ids and counts, far below it.
const MAX_KEPT_ANSWER: usize = 1024 * 1024;

/// The keys whose first request is being handled right now, by keyed hash.
#[derive(Default, Clone)]
pub struct InFlight(Arc<Mutex<HashSet<[u8; 32]>>>);

/// Holds a key in flight; lets go of it when dropped (answered, failed or cancelled).
pub(crate) struct Flight {
    set: InFlight,
    key_hash: [u8; 32],
}

impl InFlight {
    pub(crate) fn enter(&self, key_hash: [u8; 32]) -> Option<Flight> {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(key_hash).then(|| Flight {
            set: self.clone(),
            key_hash,
        })
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        let mut set = self.set.0.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(&self.key_hash);
    }
}

/// Whether a write route keeps answers for an `Idempotency-Key`, or why it refuses the header.
pub fn support(method: &str, route: &str) -> Result<(), &'static str> {
    if method == "POST" && route == "/v1/admin/keys" {
        return Err(
            "this route answers a new key's secret, which is never stored, so a retry \
                    could not be answered with it; send no Idempotency-Key and list the keys \
                    before creating another",
        );
    }
    if crate::routes::roles::operation_of(method, route).is_none() {
        return Err(
            "this route takes no API key, so an Idempotency-Key would have no owner; \
                    send none",
        );
    }
    Ok(())
}

/// Whether the route keeps answers for an `Idempotency-Key` (for the OpenAPI document).
pub fn accepts_key(method: &str, route: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH" | "DELETE") && support(method, route).is_ok()
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

fn invalid(detail: &str) -> AppError {
    AppError::new(
        ErrorCode::InvalidHeader,
        detail,
        Some("Idempotency-Key".to_owned()),
    )
}

/// The key of the request's `Idempotency-Key` header, if it has one.
fn key_of(headers: &axum::http::HeaderMap) -> Result<Option<String>, AppError> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed = || invalid("send one Idempotency-Key of 1 to 255 visible ASCII characters");
    if values.next().is_some() {
        return Err(malformed());
    }
    let raw = value.as_bytes();
    let key = match raw {
        [b'"', inner @ .., b'"'] => inner,
        _ => raw,
    };
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.iter().all(u8::is_ascii_graphic) {
        return Err(malformed());
    }
    Ok(Some(String::from_utf8_lossy(key).into_owned()))
}

/// Middleware: answers a retried write with its first answer; see the module documentation.
pub async fn idempotent(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !is_write(req.method()) {
        return next.run(req).await;
    }
    match handle(&state, req, next).await {
        Ok(response) => response,
        Err(refused) => refused.into_response(),
    }
}

async fn handle(state: &AppState, req: Request, next: Next) -> Result<Response, AppError> {
    let Some(key) = key_of(req.headers())? else {
        return Ok(next.run(req).await);
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    support(req.method().as_str(), &route).map_err(invalid)?;
    // The role check put the caller here; an ingestion call authenticated by a `writeKey` in
    // its body has none yet.
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return Err(invalid(
            "send the API key in the Authorization header with an Idempotency-Key",
        ));
    };
    let method = req.method().as_str().to_owned();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let (parts, body) = req.into_parts();
    // Read under the route's body limit, which travels in the request's extensions.
    let mut whole = Request::new(body);
    *whole.extensions_mut() = parts.extensions.clone();
    let bytes = Bytes::from_request(whole, state)
        .await
        .map_err(crate::extract::body_unreadable)?;

    let slot: IdempotencySlot = {
        let (caller, bytes) = (caller.clone(), bytes.clone());
        state
            .run(move |engine| engine.idempotency_slot(&caller, &key, &method, &path, &bytes))
            .await?
    };
    // In flight before looking: a second request that looks while the first one is between its
    // look and its keep would otherwise apply the write again.
    let Some(_flight) = state.0.in_flight.enter(slot.key_hash) else {
        return Err(AppError::new(
            ErrorCode::IdempotencyKeyInFlight,
            "a request with this Idempotency-Key is being processed; retry once it answered",
            Some("Idempotency-Key".to_owned()),
        ));
    };
    let prior = {
        let caller = caller.clone();
        state
            .run(move |engine| engine.idempotency_prior(&caller, &slot))
            .await?
    };
    match prior {
        PriorUse::Unused => {}
        PriorUse::SameRequest(answer) => return Ok(replay(answer)),
        PriorUse::OtherRequest => {
            return Err(AppError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used for another request (method, path or body); \
                 use a new key for a new request",
                Some("Idempotency-Key".to_owned()),
            ));
        }
    }

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !response.status().is_success() {
        return Ok(response);
    }
    let (mut answer_parts, answer_body) = response.into_parts();
    let answer_bytes = axum::body::to_bytes(answer_body, MAX_KEPT_ANSWER)
        .await
        .map_err(|_| AppError::internal("a write's answer could not be read to keep it"))?;
    let kept = KeptAnswer {
        status: answer_parts.status.as_u16(),
        body: answer_bytes.to_vec(),
    };
    // The write is done: its answer goes back even if keeping it failed (then a retry applies it
    // again, as without a key), and the failure is logged.
    let keep = state
        .run(move |engine| engine.keep_idempotent_answer(&caller, &slot, &kept))
        .await;
    if let Err(e) = keep {
        // Turning the error into a response logs a server error's cause; the response is dropped.
        drop(e.into_response());
        tracing::error!(
            "idempotent answer not kept: a retry with this key applies the write again"
        );
    }
    answer_parts.headers.remove(REPLAYED);
    Ok(Response::from_parts(answer_parts, Body::from(answer_bytes)))
}

fn replay(answer: KeptAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
