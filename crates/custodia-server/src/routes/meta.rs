//! Operational routes and the purposes list.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::extract::Auth;
use crate::{AppError, AppState};

/// The answer of `GET /healthz` (200 and 503).
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(inline)]
    pub status: HealthStatus,
    /// Why the store cannot flush: files and the operating system's error, never data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the operator should do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// Whether the server is healthy.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Unavailable,
}

/// `GET /healthz`: the process answers and the store flushes. If the store cannot flush (after a
/// write failure the storage engine keeps refusing until it is reopened), 503 with the reason:
/// the server does not recover from that by itself, a restart does. The reason names files and
/// the operating system's error, never data.
pub async fn healthz(State(state): State<AppState>) -> Response {
    let engine = state.engine().clone();
    let flushed = tokio::task::spawn_blocking(move || engine.flush()).await;
    let reason = match flushed {
        Ok(Ok(())) => {
            let healthy = Health {
                status: HealthStatus::Ok,
                reason: None,
                action: None,
            };
            return Json(healthy).into_response();
        }
        Ok(Err(e)) => {
            let full = e.code() == custodia_core::ErrorCode::InsufficientStorage;
            if full {
                state.0.metrics.insufficient_storage();
            }
            format!(
                "{e}{}",
                if full {
                    "; free space on the data directory's disk"
                } else {
                    ""
                }
            )
        }
        Err(join) => format!("the store flush did not finish: {join}"),
    };
    tracing::error!(reason = %reason, "health check failed");
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        Json(Health {
            status: HealthStatus::Unavailable,
            reason: Some(reason),
            action: Some(
                "restart the server (after freeing disk space if the disk is full)".to_owned(),
            ),
        }),
    )
        .into_response()
}

/// Pending search purges and queued search updates counted at most, so that a scrape stays
/// cheap.
const PURGES_COUNTED: usize = 10_000;

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    let tenant = custodia_core::TenantId::default_tenant();
    let (store_bytes, n_keys, key_age, purges, queued, (copy_facts, copy_bytes)) = state
        .run(move |engine| {
            Ok((
                engine.store_size_on_disk(),
                engine.n_data_keys(&tenant)?,
                crate::root_key_age(engine)?,
                engine.pending_search_purges(&tenant, PURGES_COUNTED)?,
                engine.pending_search_updates(&tenant, PURGES_COUNTED)?,
                engine.analytics_copy_footprint(),
            ))
        })
        .await?;
    let rotation_due = key_age > state.0.config.key_rotation_interval;
    let uptime = state.0.started.elapsed().as_secs_f64();
    let text = state.0.metrics.render(&[
        (
            "custodia_store_bytes",
            "Bytes the store occupies on disk.",
            store_bytes as f64,
        ),
        (
            "custodia_subject_keys",
            "Live subject data keys of the default tenant.",
            n_keys as f64,
        ),
        (
            "custodia_root_key_age_seconds",
            "Seconds since the root key was last rotated.",
            key_age.as_secs_f64(),
        ),
        (
            "custodia_root_key_rotation_due",
            "1 when the root key is older than the configured rotation interval.",
            if rotation_due { 1.0 } else { 0.0 },
        ),
        (
            "custodia_search_purges_pending",
            "Erased subjects of the default tenant whose search-index segments still wait to be compacted (counted up to 10000).",
            purges as f64,
        ),
        (
            "custodia_search_updates_pending",
            "Writes of the default tenant that the search indexer has not indexed yet (counted up to 10000): how far search lags behind.",
            queued as f64,
        ),
        (
            "custodia_analytics_copy_facts",
            "Facts held by the in-memory analytics copies that are ready (0 while they are built).",
            copy_facts as f64,
        ),
        (
            "custodia_analytics_copy_bytes",
            "Bytes of memory held by the in-memory analytics copies that are ready.",
            copy_bytes as f64,
        ),
        (
            "custodia_uptime_seconds",
            "Seconds since the server started.",
            uptime,
        ),
    ]);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// `GET /openapi.json`.
pub async fn openapi() -> Json<Value> {
    Json(crate::openapi_document())
}

/// `GET /v1/purposes` (any key).
pub async fn purposes(State(state): State<AppState>, Auth(_caller): Auth) -> Json<Purposes> {
    let engine = state.engine();
    Json(Purposes {
        purposes: purpose_views(engine),
        policy_version: engine.policies().version().to_owned(),
        policy_hash: engine.policy_hash().to_owned(),
    })
}

/// Every purpose of the policies in force, as clients and customers see them.
pub(crate) fn purpose_views(engine: &custodia_engine::Engine) -> Vec<PurposeView> {
    let policies = engine.policies();
    policies
        .purposes()
        .iter()
        .map(|p| {
            let retention_days = policies.retention_days(p);
            PurposeView {
                id: p.id.clone(),
                name: p.name.clone(),
                description: p.description.clone(),
                lawful_basis: p.lawful_basis,
                requires_consent: p.requires_consent,
                categories: p.categories.clone(),
                retention: format!("P{retention_days}D"),
                retention_days,
                recipients: p.recipients.clone(),
                consent_expiry_days: p.consent_expiry_days,
                translations: p
                    .translations
                    .iter()
                    .map(|(lang, t)| (lang.clone(), t.into()))
                    .collect(),
            }
        })
        .collect()
}

/// The answer of `GET /v1/purposes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Purposes {
    /// Every purpose of the policies in force.
    pub purposes: Vec<PurposeView>,
    /// The policies' version label.
    pub policy_version: String,
    /// SHA-256 of the policy text in force, hex: what consent entries point at.
    pub policy_hash: String,
}

/// One purpose of processing, as shown to clients and customers.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurposeView {
    /// The id to name in `purpose=` and in consent decisions.
    pub id: custodia_core::PurposeId,
    /// The short name shown to customers.
    pub name: String,
    /// The text shown to customers.
    pub description: String,
    /// The lawful basis (GDPR Art. 6(1)).
    pub lawful_basis: custodia_core::LawfulBasis,
    /// Whether processing needs a current consent grant.
    pub requires_consent: bool,
    /// The data categories the purpose uses.
    pub categories: Vec<String>,
    /// How long data is used for the purpose, as an ISO 8601 duration (`P365D`).
    pub retention: String,
    /// The same in days.
    pub retention_days: u32,
    /// Who else receives data for the purpose; empty: nobody outside the controller.
    pub recipients: Vec<String>,
    /// For consent-based purposes: days after which a grant lapses.
    pub consent_expiry_days: Option<u32>,
    /// The name, description and recipients in other languages, by language code (`fr`), as
    /// the policies word them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub translations: BTreeMap<String, TranslationView>,
}

/// A purpose's wording in another language.
#[derive(Debug, Serialize, ToSchema)]
pub struct TranslationView {
    /// The name.
    pub name: String,
    /// The description.
    pub description: String,
    /// The recipients, in the same order as the original, when translated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<String>>,
}

impl From<&custodia_policy::Translation> for TranslationView {
    fn from(t: &custodia_policy::Translation) -> Self {
        TranslationView {
            name: t.name.clone(),
            description: t.description.clone(),
            recipients: t.recipients.clone(),
        }
    }
}

/// The answer of `GET /v1/me`: the calling key and what its role allows.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The key's public id (never the secret).
    pub key_id: String,
    /// The tenant the key belongs to.
    pub tenant: String,
    /// The key's role.
    pub role: String,
    /// What the role is for.
    pub description: String,
    /// The operations the role may perform (`dsr_queue`, `ledger`, ...).
    pub operations: Vec<String>,
    /// The purposes the role may name in `purpose=`.
    pub purposes: Vec<String>,
}

/// `GET /v1/me`: the calling key's id, role, and what the role may do, so a client (the
/// console) can show its user what they may do and hide what they may not. Any valid key may
/// ask; the answer holds no personal data and not the secret.
pub async fn me(Auth(caller): Auth) -> Json<Me> {
    let role = &caller.role;
    Json(Me {
        key_id: caller.key_id.to_string(),
        tenant: caller.tenant.as_str().to_owned(),
        role: role.name.as_str().to_owned(),
        description: role.description.clone(),
        operations: role
            .operations
            .iter()
            .map(|o| o.as_str().to_owned())
            .collect(),
        purposes: role
            .purposes
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
    })
}
