//! Administration and audit: `POST /v1/admin/keys` (an admin creates an API key of its own
//! tenant) and `GET /v1/audit/merges` (which subjects identity resolution merged).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use custodia_core::{ErrorCode, Operation, RoleName};
use custodia_engine::MergeView;
use serde::Serialize;
use serde_json::Value;

use crate::extract::{AppJson, Auth};
use crate::{AppError, AppState};

/// Creates a key; the secret is in this answer and nowhere else.
pub async fn create_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AppJson(body): AppJson,
) -> Result<(StatusCode, Json<KeyCreated>), AppError> {
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
        Json(KeyCreated {
            key_id: key.id.as_str().to_owned(),
            role: key.role,
            tenant: key.tenant.as_str().to_owned(),
            api_key: key.secret.expose().to_owned(),
        }),
    ))
}

/// `GET /v1/audit/merges[?subject_id=]`: every merge of the caller's tenant, or those that made
/// one subject, oldest first. Ids, times and counts only: no personal data.
pub async fn merges(
    State(state): State<AppState>,
    Auth(caller): Auth,
    params: crate::extract::Params,
) -> Result<Json<Merges>, AppError> {
    let subject = match params.get("subject_id").filter(|s| !s.is_empty()) {
        Some(raw) => Some(crate::extract::subject_id(raw)?),
        None => None,
    };
    let merges = state
        .run(move |engine| engine.merges_of(&caller, subject))
        .await?;
    Ok(Json(Merges { merges }))
}

/// The answer of `POST /v1/admin/keys`: the only time the secret is shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyCreated {
    /// The key's public id: 16 lower-case hex digits.
    pub key_id: String,
    /// The role it carries.
    pub role: RoleName,
    /// The tenant it belongs to.
    pub tenant: String,
    /// The key itself (`cus_...`), to send as Bearer or Basic user name; only its hash is kept.
    pub api_key: String,
}

impl std::fmt::Debug for KeyCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCreated")
            .field("key_id", &self.key_id)
            .field("api_key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// The answer of `GET /v1/audit/merges`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Merges {
    /// Every merge of the caller's tenant, oldest first.
    pub merges: Vec<MergeView>,
}
