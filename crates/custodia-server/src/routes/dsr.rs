//! Data-subject requests: the public side (`POST /v1/dsr`, `/verify`, status and export with the
//! request's own access token, and a consent request's `/consents`) and the compliance queue
//! (`GET /v1/dsr`).
//!
//! `POST /v1/dsr` needs no API key, so it is rate-limited per client address and per requester
//! (a hash of the e-mail address or user id), and answers 202 with the same body shape whether
//! the person is known or not.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use custodia_core::{ErrorCode, Personal, TenantId};
use custodia_engine::{
    BrowserContext, ConsentChoice, DsrAction, DsrCase, DsrDecision, DsrInput, DsrStatus, DsrView,
    OutboxMessage, PrivacyCenterConsents, PrivacyCenterDecision,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::extract::{AppJson, Auth, Params};
use crate::{AppError, AppState, RateLimit};

/// Requests per client address: thirty a minute, in bursts of thirty.
const PER_ADDRESS: RateLimit = RateLimit {
    per_second: 0.5,
    burst: 30.0,
};
/// Requests per requester: a few an hour.
const PER_REQUESTER: RateLimit = RateLimit {
    per_second: 1.0 / 600.0,
    burst: 3.0,
};

fn limit(state: &AppState, key: &str, limit: RateLimit) -> Result<(), AppError> {
    state
        .0
        .limiter
        .take(key, limit, Instant::now())
        .map_err(AppError::rate_limited)
}

/// The client's address, when the server knows it (not in in-process tests).
pub struct ClientAddr(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<ClientAddr, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(
                    || "unknown".to_owned(),
                    |ConnectInfo(addr)| addr.ip().to_string(),
                ),
        ))
    }
}

/// `POST /v1/dsr` (public).
pub async fn submit(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    AppJson(body): AppJson,
) -> Result<(StatusCode, Json<DsrReceived>), AppError> {
    limit(&state, &format!("dsr-ip:{client}"), PER_ADDRESS)?;
    let input = DsrInput::from_json(&body)?;
    limit(&state, &format!("dsr-who:{}", input.who()), PER_REQUESTER)?;
    let started = Instant::now();
    let request_id = state
        .run(move |engine| engine.dsr_submit(&TenantId::default_tenant(), &input))
        .await?;
    // Known and unknown requesters take about as long: pad the answer to a floor well above the
    // work either one needs, so the time does not tell them apart.
    let floor = Duration::from_millis(250);
    if let Some(rest) = floor.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(DsrReceived {
            request_id,
            status: DsrStatus::PendingVerification,
        }),
    ))
}

/// What the request says of the browser: its Global Privacy Control signal (`Sec-GPC: 1`) and
/// the evidence a consent decision keeps sealed (address, user agent).
fn browser_context(headers: &HeaderMap, client: &str) -> BrowserContext {
    let gpc = headers
        .get("sec-gpc")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "1");
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 1024 && !v.chars().any(char::is_control))
        .map(|v| Personal(v.to_owned()));
    let ip = (client != "unknown").then(|| Personal(client.to_owned()));
    BrowserContext {
        gpc,
        ip,
        user_agent,
    }
}

/// `POST /v1/dsr/{request_id}/verify` `{"code"}` (public). A consent request verified with
/// `Sec-GPC: 1` withdraws the sale/share purposes at once.
pub async fn verify(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Path(request_id): Path<String>,
    AppJson(body): AppJson,
) -> Result<Json<DsrVerified>, AppError> {
    limit(&state, &format!("dsr-ip:{client}"), PER_ADDRESS)?;
    let code = body
        .get("code")
        .and_then(Value::as_str)
        .filter(|c| (1..=32).contains(&c.len()))
        .map(str::to_owned)
        .ok_or_else(|| {
            AppError::new(
                ErrorCode::InvalidField,
                "must be the code from the message",
                Some("/code".into()),
            )
        })?;
    let browser = browser_context(&headers, &client);
    let (view, token) = state
        .run(move |engine| {
            engine.dsr_verify_from(&TenantId::default_tenant(), &request_id, &code, &browser)
        })
        .await?;
    Ok(Json(DsrVerified {
        request_id: view.request_id,
        status: view.status,
        access_token: token,
        outcome: view.outcome,
    }))
}

/// The answer of `POST /v1/dsr`: the same whether or not the person is known.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DsrReceived {
    /// The request's id.
    pub request_id: String,
    /// Always `pending_verification`.
    pub status: DsrStatus,
}

/// The answer of `POST /v1/dsr/{request_id}/verify`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DsrVerified {
    /// The request's id.
    pub request_id: String,
    /// Where it stands after the code was accepted.
    pub status: DsrStatus,
    /// The bearer token for `GET /v1/dsr/{request_id}` and its export; this request only.
    pub access_token: String,
    /// What was done, when the request was carried out at once.
    pub outcome: Option<Value>,
}

impl std::fmt::Debug for DsrVerified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DsrVerified")
            .field("request_id", &self.request_id)
            .field("status", &self.status)
            .field("access_token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// The answer of `GET /v1/dsr`: the queue.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DsrQueue {
    /// The requests, earliest deadline first.
    pub requests: Vec<DsrView>,
}

fn token(headers: &HeaderMap) -> Result<String, AppError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
        .ok_or_else(|| {
            AppError::new(
                ErrorCode::Unauthenticated,
                "send the request's access token as Authorization: Bearer <token>",
                None,
            )
        })
}

/// `GET /v1/dsr/{request_id}` with the request's access token.
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Result<Json<DsrView>, AppError> {
    let token = token(&headers)?;
    let view = state
        .run(move |engine| engine.dsr_status(&TenantId::default_tenant(), &request_id, &token))
        .await?;
    Ok(Json(view))
}

/// `GET /v1/dsr/{request_id}/export[?format=zip]` with the request's access token: the JSON
/// bundle, or (`format=zip`, for portability) a zip of the bundle and a CSV per table.
pub async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
    params: Params,
) -> Result<Response, AppError> {
    let token = token(&headers)?;
    let zip = match params.get("format") {
        None | Some("json") => false,
        Some("zip") => true,
        Some(_) => {
            return Err(AppError::new(
                ErrorCode::InvalidField,
                "must be json or zip",
                Some("format".into()),
            ));
        }
    };
    let bundle = state
        .run(move |engine| engine.dsr_export(&TenantId::default_tenant(), &request_id, &token))
        .await?;
    if !zip {
        return Ok(Json(bundle).into_response());
    }
    // The zip's tables are cut from the same bundle, as JSON.
    let bundle = serde_json::to_value(&bundle)
        .map_err(|_| AppError::new(ErrorCode::Internal, "the export could not be encoded", None))?;
    let bytes = export_zip(&bundle)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"custodia-export.zip\"",
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /v1/dsr/{request_id}/consents` with a consent request's access token: the
/// consent-based purposes with the person's current decision, and whether this request carried
/// the GPC signal.
pub async fn consents(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Result<Json<PrivacyCenterConsents>, AppError> {
    let token = token(&headers)?;
    let browser = browser_context(&headers, &client);
    let answer = state
        .run(move |engine| {
            engine.dsr_consents(&TenantId::default_tenant(), &request_id, &token, &browser)
        })
        .await?;
    Ok(Json(answer))
}

/// `POST /v1/dsr/{request_id}/consents` `{"purpose", "decision"}` with a consent request's
/// access token: one decision, recorded from the privacy center (with `Sec-GPC: 1`, as a GPC
/// decision that also withdraws every sale/share purpose).
pub async fn record_consent(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Path(request_id): Path<String>,
    AppJson(body): AppJson,
) -> Result<(StatusCode, Json<PrivacyCenterDecision>), AppError> {
    let token = token(&headers)?;
    let choice = ConsentChoice::from_json(&body)?;
    let browser = browser_context(&headers, &client);
    let decision = state
        .run(move |engine| {
            engine.dsr_record_consent(
                &TenantId::default_tenant(),
                &request_id,
                &token,
                &choice,
                &browser,
            )
        })
        .await?;
    Ok((StatusCode::CREATED, Json(decision)))
}

/// `GET /v1/dsr?status=&overdue=true` (compliance): the queue, earliest deadline first.
pub async fn queue(
    State(state): State<AppState>,
    Auth(caller): Auth,
    params: Params,
) -> Result<Json<DsrQueue>, AppError> {
    let status = params.get("status").map(str::to_owned);
    let overdue = match params.get("overdue") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(AppError::new(
                ErrorCode::InvalidField,
                "must be true or false",
                Some("overdue".into()),
            ));
        }
    };
    let requests = state
        .run(move |engine| engine.dsr_queue(&caller, status.as_deref(), overdue))
        .await?;
    Ok(Json(DsrQueue { requests }))
}

/// The compliance routes' answer for an unknown request id (the engine's "not found" names a
/// subject).
fn no_such_request(e: AppError) -> AppError {
    if e.is(ErrorCode::SubjectNotFound) {
        AppError::new(
            ErrorCode::NotFound,
            "no request with this id",
            Some("request_id".into()),
        )
    } else {
        e
    }
}

/// `GET /v1/dsr/{request_id}/case?purpose=` (compliance): the request's case file — what the
/// requester sent, the decisions' reasons, and its timeline with inclusion proofs.
pub async fn case(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(request_id): Path<String>,
    params: Params,
) -> Result<Json<DsrCase>, AppError> {
    let purpose = params.get("purpose").map(str::to_owned);
    let case = state
        .run(move |engine| engine.dsr_case(&caller, &request_id, purpose.as_deref()))
        .await
        .map_err(no_such_request)?;
    Ok(Json(case))
}

/// `POST /v1/dsr/{request_id}/carry-out` `{"reason", "traits"?}` (compliance).
pub async fn carry_out(
    state: State<AppState>,
    auth: Auth,
    path: Path<String>,
    body: AppJson,
) -> Result<Json<DsrView>, AppError> {
    decide(state, auth, path, body, DsrAction::CarryOut).await
}

/// `POST /v1/dsr/{request_id}/reject` `{"reason"}` (compliance).
pub async fn reject(
    state: State<AppState>,
    auth: Auth,
    path: Path<String>,
    body: AppJson,
) -> Result<Json<DsrView>, AppError> {
    decide(state, auth, path, body, DsrAction::Reject).await
}

/// `POST /v1/dsr/{request_id}/extend` `{"months", "reason"}` (compliance).
pub async fn extend(
    state: State<AppState>,
    auth: Auth,
    path: Path<String>,
    body: AppJson,
) -> Result<Json<DsrView>, AppError> {
    decide(state, auth, path, body, DsrAction::Extend).await
}

async fn decide(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(request_id): Path<String>,
    AppJson(body): AppJson,
    action: DsrAction,
) -> Result<Json<DsrView>, AppError> {
    let decision = DsrDecision::from_json(action, &body)?;
    let view = state
        .run(move |engine| engine.dsr_decide(&caller, &request_id, &decision))
        .await
        .map_err(no_such_request)?;
    Ok(Json(view))
}

/// The webhook outbox: a `POST` of the message JSON to an `http://` URL (put a TLS relay in
/// front for https), standing in for an e-mail gateway.
pub struct WebhookOutbox(pub String);

impl custodia_engine::Outbox for WebhookOutbox {
    fn deliver(&self, message: &OutboxMessage) -> Result<(), String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let body = json!({
            "to": message.to.expose(),
            "request_id": message.request_id,
            "code": message.code.expose(),
            "kind": message.kind,
        });
        agent
            .post(&self.0)
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .map(drop)
            // The error names the outbox, never the message.
            .map_err(|e| format!("outbox webhook: {e}"))
    }
}

/// One CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn csv_value(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => csv_field(s),
        other => csv_field(&other.to_string()),
    }
}

/// A CSV table: a header row, then one row per item with the named fields.
fn csv_table(columns: &[&str], rows: &[Value]) -> String {
    let mut out = columns.join(",");
    out.push_str("\r\n");
    for row in rows {
        let cells: Vec<String> = columns.iter().map(|c| csv_value(&row[*c])).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// The Art. 20 bundle as a zip: `export.json` (everything) plus one CSV per table — profile
/// traits, events, consent history.
pub(crate) fn export_zip(bundle: &Value) -> Result<Vec<u8>, AppError> {
    use std::io::Write as _;
    let traits: Vec<Value> = bundle["data"]["traits"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| json!({"trait": k, "value": v}))
                .collect()
        })
        .unwrap_or_default();
    let events: Vec<Value> = bundle["data"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let consents: Vec<Value> = bundle["consent_history"]["entries"]
        .as_array()
        .map(|entries| entries.iter().map(|e| e["entry"].clone()).collect())
        .unwrap_or_default();
    let files = [
        ("export.json", bundle.to_string()),
        ("profile.csv", csv_table(&["trait", "value"], &traits)),
        (
            "events.csv",
            csv_table(
                &[
                    "event_id",
                    "event",
                    "timestamp",
                    "received_at",
                    "properties",
                ],
                &events,
            ),
        ),
        (
            "consent_history.csv",
            csv_table(
                &[
                    "seq",
                    "time",
                    "kind",
                    "purpose",
                    "lawful_basis",
                    "leaf_hash",
                ],
                &consents,
            ),
        ),
    ];
    let failed = |_| AppError::internal("cannot build the export zip".to_owned());
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, text) in files {
        writer.start_file(name, options).map_err(failed)?;
        writer
            .write_all(text.as_bytes())
            .map_err(|_| AppError::internal("cannot build the export zip".to_owned()))?;
    }
    Ok(writer.finish().map_err(failed)?.into_inner())
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn the_portability_zip_holds_the_bundle_and_a_csv_per_table() {
        let bundle = json!({
            "data": {
                "traits": {"name": "Dana \"D\" Smith", "city": "Berlin, Mitte"},
                "events": [{"event_id": "e1", "event": "Order Completed", "received_at": "2026-11-24T12:00:00Z", "properties": {"total": 5}}],
            },
            "consent_history": {"entries": [{"entry": {"seq": 3, "kind": "consent.granted", "purpose": "marketing_email"}}]},
        });
        let bytes = export_zip(&bundle).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut read = |name: &str| {
            let mut text = String::new();
            archive
                .by_name(name)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            text
        };
        let profile = read("profile.csv");
        assert!(profile.starts_with("trait,value\r\n"));
        assert!(profile.contains("\"Berlin, Mitte\""));
        assert!(profile.contains("\"Dana \"\"D\"\" Smith\""));
        let events = read("events.csv");
        assert!(events.contains("e1,Order Completed,,2026-11-24T12:00:00Z,\"{\"\"total\"\":5}\""));
        assert!(read("consent_history.csv").contains("3,,consent.granted,marketing_email"));
        let json: Value = serde_json::from_str(&read("export.json")).unwrap();
        assert_eq!(json, bundle);
    }
}
