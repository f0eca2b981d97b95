//! Extractors that turn every malformed request into the app's own problem+json: the JSON body,
//! the bearer key, the query parameters and path ids.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use custodia_core::{ErrorCode, SubjectId};
use custodia_engine::Caller;
use serde_json::Value;

use crate::{AppError, AppState};

/// A JSON body: `application/json`, within the size limit, syntactically valid. The shape is
/// checked by the engine's input parsers, which name the field at fault. A body sent with
/// `Content-Encoding: gzip` (RudderStack's default) is decompressed first, and the size limit
/// applies to the decompressed bytes as well, so a small "zip bomb" gets 413.
pub struct AppJson(pub Value);

impl<S> FromRequest<S> for AppJson
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<AppJson, AppError> {
        let max_body = AppState::from_ref(state).0.config.max_body_bytes;
        read_json(req, state, max_body, false).await.map(AppJson)
    }
}

/// A JSON body whose fields are all optional: as [`AppJson`], except that an empty body (with
/// or without a content type) is the empty object, so `curl -X POST` needs no `-d '{}'`.
pub struct OptionalJson(pub Value);

impl<S> FromRequest<S> for OptionalJson
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<OptionalJson, AppError> {
        let max_body = AppState::from_ref(state).0.config.max_body_bytes;
        read_json(req, state, max_body, true)
            .await
            .map(OptionalJson)
    }
}

/// The content codings a request body may arrive in.
enum Coding {
    Identity,
    Gzip,
}

fn content_coding(headers: &axum::http::HeaderMap) -> Result<Coding, AppError> {
    let mut coding = Coding::Identity;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let value = value.to_str().unwrap_or("?");
        for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if token.eq_ignore_ascii_case("identity") {
                continue;
            }
            if (token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip"))
                && matches!(coding, Coding::Identity)
            {
                coding = Coding::Gzip;
                continue;
            }
            // The coding name is a protocol token, not personal data; bound its length anyway.
            let shown: String = token.chars().take(32).collect();
            return Err(AppError::new(
                ErrorCode::UnsupportedMediaType,
                format!("content encoding \"{shown}\" is not supported; send gzip or identity"),
                Some("Content-Encoding".to_owned()),
            ));
        }
    }
    Ok(coding)
}

fn too_large() -> AppError {
    AppError::new(
        ErrorCode::PayloadTooLarge,
        "the body is larger than the limit",
        None,
    )
}

/// Decompresses a gzip body, refusing it as soon as the output passes `max_bytes`.
fn gunzip(compressed: &[u8], max_bytes: usize) -> Result<Vec<u8>, AppError> {
    use std::io::Read;
    let decoder = flate2::read::MultiGzDecoder::new(compressed);
    let mut out = Vec::new();
    // One byte more than the limit tells "exactly at the limit" from "over it".
    decoder
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| {
            AppError::new(
                ErrorCode::MalformedJson,
                "the body is not valid gzip",
                Some("Content-Encoding".to_owned()),
            )
        })?;
    if out.len() > max_bytes {
        return Err(too_large());
    }
    Ok(out)
}

/// Reads a JSON body; with `empty_is_object`, an empty body is `{}` whatever its content type.
async fn read_json<S: Send + Sync>(
    req: Request,
    state: &S,
    max_body: usize,
    empty_is_object: bool,
) -> Result<Value, AppError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
    if !is_json && !empty_is_object {
        return Err(unsupported_media_type());
    }
    let coding = content_coding(req.headers())?;
    let bytes = Bytes::from_request(req, state)
        .await
        .map_err(body_unreadable)?;
    let bytes = match coding {
        Coding::Identity => bytes,
        Coding::Gzip => Bytes::from(gunzip(&bytes, max_body)?),
    };
    if empty_is_object && bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    if !is_json {
        return Err(unsupported_media_type());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        // Only the position: serde_json's message may quote the input.
        AppError::new(
            ErrorCode::MalformedJson,
            format!("invalid JSON at line {} column {}", e.line(), e.column()),
            None,
        )
    })
}

/// The answer to a body that could not be read whole: too slow, too large or broken off.
pub(crate) fn body_unreadable(rejection: axum::extract::rejection::BytesRejection) -> AppError {
    if crate::conn::is_body_timeout(&rejection) {
        AppError::new(
            ErrorCode::RequestTimeout,
            "the body was not complete within the server's body read timeout",
            None,
        )
    } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        AppError::new(ErrorCode::MalformedJson, "the body could not be read", None)
    }
}

fn unsupported_media_type() -> AppError {
    AppError::new(
        ErrorCode::UnsupportedMediaType,
        "the body must be application/json",
        None,
    )
}

fn unauthenticated() -> AppError {
    AppError::new(
        ErrorCode::Unauthenticated,
        "send an api key as Authorization: Bearer <key> or as the Basic user name",
        None,
    )
}

/// The api key of the `Authorization` header, if there is one: `Bearer <key>`, or `Basic` with
/// `base64(key + ":")` as the Segment and RudderStack SDKs send it (a password, if any, is not
/// part of the key and is ignored; a key sent as the password with an empty user name is taken
/// too). Scheme names are case-insensitive (RFC 9110). Two headers are refused: which one counts
/// would be a guess.
fn header_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, AppError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AppError::new(
            ErrorCode::MalformedJson,
            "send one Authorization header",
            Some("Authorization".to_owned()),
        ));
    }
    let value = value.to_str().map_err(|_| unauthenticated())?.trim();
    let (scheme, credentials) = value.split_once(' ').ok_or_else(unauthenticated)?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Some(credentials.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .map_err(|_| unauthenticated())?;
        let text = String::from_utf8(decoded).map_err(|_| unauthenticated())?;
        let (user, password) = text.split_once(':').unwrap_or((text.as_str(), ""));
        let key = if user.is_empty() { password } else { user };
        return Ok(Some(key.to_owned()));
    }
    Err(unauthenticated())
}

/// Checks an api key and the key's rate limit.
async fn authorize(state: &AppState, token: String) -> Result<Caller, AppError> {
    if token.is_empty() {
        return Err(unauthenticated());
    }
    let caller = state.run(move |engine| engine.authenticate(&token)).await?;
    let limit = state.0.config.rate_limit;
    if let Err(wait) = state.0.limiter.take(
        &format!("key:{}", caller.key_id),
        limit,
        std::time::Instant::now(),
    ) {
        return Err(AppError::rate_limited(wait));
    }
    Ok(caller)
}

/// The authenticated caller, from `Authorization: Bearer <key>` or `Basic base64(key:)`.
pub struct Auth(pub Caller);

impl<S> FromRequestParts<S> for Auth
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Auth, AppError> {
        // The role check of the router authenticated this request already (and counted it
        // against the key's rate limit once).
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(Auth(caller.clone()));
        }
        let token = header_key(&parts.headers)?.ok_or_else(unauthenticated)?;
        let state = AppState::from_ref(state);
        Ok(Auth(authorize(&state, token).await?))
    }
}

/// RudderStack's Node SDK (3.x) gzips its batches and leaves the content type to its HTTP client,
/// which labels a compressed buffer `application/x-www-form-urlencoded`; RudderStack's own server
/// reads such a body as JSON. A form is never gzipped by a browser or an SDK, so on the ingestion
/// routes a gzip body labelled as a form is taken for the JSON it is (and still has to parse).
fn gzip_form_is_json(req: &mut Request) {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|mime| {
                mime.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if is_form && matches!(content_coding(req.headers()), Ok(Coding::Gzip)) {
        req.headers_mut().insert(
            header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
    }
}

/// An ingestion call: the caller and the JSON body. The key comes from the `Authorization`
/// header or, when no header is sent, from the body's `writeKey` field as Segment's and
/// RudderStack's servers accept it. With a header the key is checked before the body is read;
/// without one, a body that cannot be read or names no key is 401 (an unauthenticated caller
/// learns nothing about its body).
pub struct Ingest {
    /// Who called.
    pub caller: Caller,
    /// The body.
    pub body: Value,
}

impl<S> FromRequest<S> for Ingest
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request(mut req: Request, state: &S) -> Result<Ingest, AppError> {
        let app = AppState::from_ref(state);
        let max_body = app.0.config.max_body_bytes;
        gzip_form_is_json(&mut req);
        // The role check of the router authenticated a key sent in a header already.
        if let Some(caller) = req.extensions().get::<Caller>().cloned() {
            let body = read_json(req, state, max_body, false).await?;
            return Ok(Ingest { caller, body });
        }
        if let Some(token) = header_key(req.headers())? {
            let caller = authorize(&app, token).await?;
            let body = read_json(req, state, max_body, false).await?;
            return Ok(Ingest { caller, body });
        }
        let body = read_json(req, state, max_body, false)
            .await
            .map_err(|_| unauthenticated())?;
        let token = body
            .get("writeKey")
            .and_then(Value::as_str)
            .ok_or_else(unauthenticated)?
            .trim()
            .to_owned();
        let caller = authorize(&app, token).await?;
        Ok(Ingest { caller, body })
    }
}

/// Query parameters, each at most once.
pub struct Params(HashMap<String, String>);

impl Params {
    /// A parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Removes and returns a parameter's value.
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// A whole number parameter, with a default.
    pub fn usize_or(&self, name: &str, default: usize) -> Result<usize, AppError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                AppError::new(
                    ErrorCode::InvalidField,
                    "must be a whole number",
                    Some(name.to_owned()),
                )
            }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Params, AppError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::new(ErrorCode::MalformedJson, "malformed query string", None))?;
        let mut map = HashMap::new();
        for (name, value) in pairs {
            if map.insert(name.clone(), value).is_some() {
                return Err(AppError::new(
                    ErrorCode::InvalidField,
                    "parameter given more than once",
                    Some(name),
                ));
            }
        }
        Ok(Params(map))
    }
}

/// Parses a subject id from the path.
pub fn subject_id(raw: &str) -> Result<SubjectId, AppError> {
    raw.parse().map_err(|_| {
        AppError::new(
            ErrorCode::InvalidId,
            "not a subject id",
            Some("subject_id".to_owned()),
        )
    })
}
