//! What the operations screen of the console reads and does: the policies in force as the server
//! read them (`GET /v1/policies`, any key), the root key's age against the rotation interval
//! (`GET /v1/admin/root-key`), and the tenant's API keys (`GET /v1/admin/keys`, `DELETE
//! /v1/admin/keys/{key_id}`), for an admin. The retention sweep is `POST /v1/admin/retention/run`
//! (rights.rs).

use axum::Json;
use axum::extract::{Path, State};
use custodia_core::{LawfulBasis, Operation};
use custodia_engine::ApiKeyView;
use serde::Serialize;
use utoipa::ToSchema;

use super::meta::{PurposeView, TranslationView, purpose_views};
use crate::extract::Auth;
use crate::{AppError, AppState};

/// The answer of `GET /v1/policies`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoliciesView {
    /// The policies' version label.
    pub policy_version: String,
    /// SHA-256 of the policy text in force, hex: what consent entries point at.
    pub policy_hash: String,
    /// The purposes of processing (as `GET /v1/purposes` gives them).
    pub purposes: Vec<PurposeView>,
    /// The data categories with their retention and legal holds.
    pub categories: Vec<CategoryView>,
    /// The roles API keys carry.
    pub roles: Vec<RoleView>,
}

/// A data category.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryView {
    /// The id purposes refer to.
    pub id: String,
    /// The name shown to customers.
    pub name: String,
    /// The description shown to customers.
    pub description: String,
    /// How long its data is kept, in days.
    pub retention_days: u32,
    /// The traits that belong to it.
    pub traits: Vec<String>,
    /// The events that belong to it.
    pub events: Vec<String>,
    /// Whether traits named in no category belong to this one.
    pub default_for_traits: bool,
    /// What keeps its data past an erasure, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_hold: Option<LegalHoldView>,
    /// The name and description in other languages.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub translations: std::collections::BTreeMap<String, TranslationView>,
}

/// A legal obligation that keeps a category's data past an erasure (GDPR Art. 17(3)(b)).
#[derive(Debug, Serialize, ToSchema)]
pub struct LegalHoldView {
    /// The purpose the data is kept for.
    pub purpose: String,
    /// Its lawful basis (a legal obligation).
    pub lawful_basis: Option<LawfulBasis>,
    /// Why, as the erasure receipt quotes it.
    pub reason: String,
}

/// A role.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    /// Its name, given when a key is created.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The operations it may perform.
    pub operations: Vec<String>,
    /// The purposes it may name.
    pub purposes: Vec<String>,
}

/// `GET /v1/policies` (any key): the policies in force as the server read them at start.
pub async fn policies(State(state): State<AppState>, Auth(_caller): Auth) -> Json<PoliciesView> {
    let engine = state.engine();
    let policies = engine.policies();
    let categories = policies
        .categories()
        .iter()
        .map(|c| CategoryView {
            id: c.id.clone(),
            name: c.name.clone(),
            description: c.description.clone(),
            retention_days: c.retention_days,
            traits: c.traits.clone(),
            events: c.events.clone(),
            default_for_traits: c.default_for_traits,
            legal_hold: c.legal_hold.as_ref().map(|h| LegalHoldView {
                purpose: h.purpose.as_str().to_owned(),
                lawful_basis: policies.purpose(&h.purpose).map(|p| p.lawful_basis),
                reason: h.reason.clone(),
            }),
            translations: c
                .translations
                .iter()
                .map(|(lang, t)| (lang.clone(), t.into()))
                .collect(),
        })
        .collect();
    let roles = policies
        .roles()
        .iter()
        .map(|r| RoleView {
            name: r.name.as_str().to_owned(),
            description: r.description.clone(),
            operations: r.operations.iter().map(|o| o.as_str().to_owned()).collect(),
            purposes: r.purposes.iter().map(|p| p.as_str().to_owned()).collect(),
        })
        .collect();
    Json(PoliciesView {
        policy_version: policies.version().to_owned(),
        policy_hash: engine.policy_hash().to_owned(),
        purposes: purpose_views(engine),
        categories,
        roles,
    })
}

/// The answer of `GET /v1/admin/root-key`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RootKeyView {
    /// Seconds since the root key was created or last rotated.
    pub age_seconds: u64,
    /// The same in whole days.
    pub age_days: u64,
    /// The rotation interval the server was started with (`--key-rotation-days`), in days.
    pub rotation_interval_days: u64,
    /// Whether the key is older than the interval: rotate it (`custodia keys rotate`), since
    /// until then key-store backups older than the last erasures still hold those keys.
    pub rotation_due: bool,
}

/// `GET /v1/admin/root-key` (`manage_keys`).
pub async fn root_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<RootKeyView>, AppError> {
    caller.require(Operation::ManageKeys)?;
    let age = state.run(crate::root_key_age).await?;
    let interval = state.0.config.key_rotation_interval;
    Ok(Json(RootKeyView {
        age_seconds: age.as_secs(),
        age_days: age.as_secs() / 86_400,
        rotation_interval_days: interval.as_secs() / 86_400,
        rotation_due: age > interval,
    }))
}

/// The answer of `GET /v1/admin/keys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeys {
    /// The tenant's keys, oldest first; never a secret.
    pub keys: Vec<ApiKeyView>,
}

/// `GET /v1/admin/keys` (`manage_keys`).
pub async fn keys(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<ApiKeys>, AppError> {
    let keys = state.run(move |engine| engine.api_keys(&caller)).await?;
    Ok(Json(ApiKeys { keys }))
}

/// `DELETE /v1/admin/keys/{key_id}` (`manage_keys`): the key authenticates nothing from now on.
pub async fn revoke_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(key_id): Path<String>,
) -> Result<Json<ApiKeyView>, AppError> {
    let by = caller.key_id.clone();
    let view = state
        .run(move |engine| engine.revoke_api_key(&caller, &key_id))
        .await?;
    tracing::info!(key_id = %view.key_id, by = %by, "api key revoked");
    Ok(Json(view))
}
