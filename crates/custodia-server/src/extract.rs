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
/// checked by the engine's input parsers, which name the field at fault.
pub struct AppJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for AppJson {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<AppJson, AppError> {
        read_json(req, state, false).await.map(AppJson)
    }
}

/// A JSON body whose fields are all optional: as [`AppJson`], except that an empty body (with
/// or without a content type) is the empty object, so `curl -X POST` needs no `-d '{}'`.
pub struct OptionalJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for OptionalJson {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<OptionalJson, AppError> {
        read_json(req, state, true).await.map(OptionalJson)
    }
}

/// Reads a JSON body; with `empty_is_object`, an empty body is `{}` whatever its content type.
async fn read_json<S: Send + Sync>(
    req: Request,
    state: &S,
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
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if crate::conn::is_body_timeout(&rejection) {
            AppError::new(
                ErrorCode::RequestTimeout,
                "the body was not complete within the server's body read timeout",
                None,
            )
        } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::new(
                ErrorCode::PayloadTooLarge,
                "the body is larger than the limit",
                None,
            )
        } else {
            AppError::new(ErrorCode::MalformedJson, "the body could not be read", None)
        }
    })?;
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

fn unsupported_media_type() -> AppError {
    AppError::new(
        ErrorCode::UnsupportedMediaType,
        "the body must be application/json",
        None,
    )
}

/// The authenticated caller, from `Authorization: Bearer <api key>`.
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
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_owned())
            .ok_or_else(|| {
                AppError::new(
                    ErrorCode::Unauthenticated,
                    "send an api key as Authorization: Bearer <key>",
                    None,
                )
            })?;
        let state = AppState::from_ref(state);
        let caller = state.run(move |engine| engine.authenticate(&token)).await?;
        let limit = state.0.config.rate_limit;
        if let Err(wait) = state.0.limiter.take(
            &format!("key:{}", caller.key_id),
            limit,
            std::time::Instant::now(),
        ) {
            return Err(AppError::rate_limited(wait));
        }
        Ok(Auth(caller))
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
