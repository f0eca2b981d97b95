//! Administration and audit: `POST /v1/admin/keys` (an admin creates an API key of its own
//! tenant) and `GET /v1/audit/merges` (which subjects identity resolution merged).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use custodia_core::{ErrorCode, Operation, RoleName};
use serde_json::{Value, json};

use crate::extract::{AppJson, Auth};
use crate::{AppError, AppState};

/// Creates a key; the secret is in this answer and nowhere else.
pub async fn create_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AppJson(body): AppJson,
) -> Result<(StatusCode, Json<Value>), AppError> {
    caller.require(Operation::ManageKeys)?;
    let obj = body.as_object().ok_or_else(|| {
        AppError::new(
            ErrorCode::InvalidField,
            "must be a JSON object",
            Some("/".into()),
        )
    })?;
    if let Some(unknown) = obj.keys().find(|k| *k != "role" && *k != "tenant") {
        return Err(AppError::new(
            ErrorCode::InvalidField,
            "unknown field",
            Some(format!("/{unknown}")),
        ));
    }
    let role: RoleName = obj
        .get("role")
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| {
            AppError::new(
                ErrorCode::InvalidField,
                "must name a role",
                Some("/role".into()),
            )
        })?;
    if let Some(tenant) = obj.get("tenant")
        && tenant.as_str() != Some(caller.tenant.as_str())
    {
        return Err(AppError::new(
            ErrorCode::RoleNotPermitted,
            "an admin creates keys of its own tenant only",
            Some("/tenant".into()),
        ));
    }
    let tenant = caller.tenant.clone();
    let key = state
        .run(move |engine| engine.create_api_key(&tenant, &role))
        .await?;
    tracing::info!(key_id = %key.id, role = %key.role, by = %caller.key_id, "api key created");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "key_id": key.id.as_str(),
            "role": key.role,
            "tenant": key.tenant.as_str(),
            "api_key": key.secret.expose(),
        })),
    ))
}

/// `GET /v1/audit/merges`: every merge of the caller's tenant, oldest first. Ids, times and counts
/// only: no personal data.
pub async fn merges(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<Value>, AppError> {
    let merges = state.run(move |engine| engine.merges(&caller)).await?;
    Ok(Json(json!({ "merges": merges })))
}
