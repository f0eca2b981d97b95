//! API keys: `cus_<key id>_<secret>`. The key id is public (it names the key in logs and in the
//! access log); of the secret only its SHA-256 is stored. A 256-bit random secret needs no slow
//! password hash: nothing about it can be guessed.
//!
//! An admin lists its tenant's keys (role, created, last used, revoked) and revokes one; a
//! revoked key authenticates nothing from the next request on. When a key was last used is kept
//! in memory at every request and written to the store's metadata (`api_key.<id>.last_used`,
//! i64 microseconds) at most once an hour per key, so the listing is exact for this process and
//! within the hour across restarts, at the cost of one small write per key per hour. When a key
//! was revoked is kept the same way (`api_key.<id>.revoked_at`), so the persisted key record
//! keeps its format.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custodia_core::{ApiKeyId, Operation, RoleName, TenantId, Timestamp};
use custodia_store::{ApiKeyRecord, WriteBatch};
use serde::Serialize;

use crate::{Caller, Engine, EngineError};

/// How often at most a key's last use is written to the store.
const LAST_USED_EVERY_MICROS: i64 = 3_600_000_000;

/// An API key as an admin sees it: never its secret, nor the secret's hash.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyView {
    /// The public id.
    pub key_id: String,
    /// The role it carries.
    pub role: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last authenticated a request (within the hour after a restart); absent: never
    /// since this was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<Timestamp>,
    /// Whether it was revoked (it then authenticates nothing).
    pub revoked: bool,
    /// When it was revoked, if it was revoked through the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
    /// Whether this is the key that asked.
    pub this_key: bool,
}

/// What the engine remembers of a key's use: last seen, last written.
#[derive(Default)]
pub(crate) struct KeyUse(
    std::sync::Mutex<std::collections::HashMap<ApiKeyId, (Timestamp, Timestamp)>>,
);

fn meta_name(id: &ApiKeyId, what: &str) -> String {
    format!("api_key.{id}.{what}")
}

const PREFIX: &str = "cus_";

/// The full secret text of an API key, shown to its owner once. Never printed by `Debug`.
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    /// The key as the client sends it in `Authorization: Bearer ...`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeySecret([redacted])")
    }
}

/// A freshly created key.
#[derive(Debug)]
pub struct NewApiKey {
    /// The public id.
    pub id: ApiKeyId,
    /// The role it carries.
    pub role: RoleName,
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// The secret text; only its hash is stored.
    pub secret: ApiKeySecret,
}

struct ParsedKey {
    id: ApiKeyId,
    secret: Vec<u8>,
}

impl FromStr for ParsedKey {
    type Err = EngineError;

    fn from_str(text: &str) -> Result<ParsedKey, EngineError> {
        let rest = text
            .strip_prefix(PREFIX)
            .ok_or(EngineError::Unauthenticated)?;
        let (id, secret) = rest.split_once('_').ok_or(EngineError::Unauthenticated)?;
        let id: ApiKeyId = id.parse().map_err(|_| EngineError::Unauthenticated)?;
        let secret = URL_SAFE_NO_PAD
            .decode(secret)
            .map_err(|_| EngineError::Unauthenticated)?;
        if secret.len() != 32 {
            return Err(EngineError::Unauthenticated);
        }
        Ok(ParsedKey { id, secret })
    }
}

impl Engine {
    /// Creates an API key for `tenant` with `role` (which must exist in the policies).
    pub fn create_api_key(
        &self,
        tenant: &TenantId,
        role: &RoleName,
    ) -> Result<NewApiKey, EngineError> {
        if self.policies.role(role).is_none() {
            return Err(EngineError::invalid("role", "no such role in the policies"));
        }
        let id = ApiKeyId::from_random(custodia_vault::random_array()?);
        let secret: [u8; 32] = custodia_vault::random_array()?;
        let record = ApiKeyRecord {
            id: id.clone(),
            tenant: tenant.clone(),
            role: role.clone(),
            secret_hash: custodia_vault::sha256(&secret),
            created_at: self.clock.now(),
            revoked: false,
        };
        let mut batch = WriteBatch::new();
        batch.put_api_key(&record);
        self.store.write(batch)?;
        self.store.flush()?;
        let text = format!("{PREFIX}{id}_{}", URL_SAFE_NO_PAD.encode(secret));
        Ok(NewApiKey {
            id,
            role: role.clone(),
            tenant: tenant.clone(),
            secret: ApiKeySecret(text),
        })
    }

    /// Resolves a bearer token to its caller; any mismatch is `Unauthenticated`, with no hint
    /// which part was wrong.
    pub fn authenticate(&self, token: &str) -> Result<Caller, EngineError> {
        let parsed: ParsedKey = token.parse()?;
        let record = self
            .store
            .api_key(&parsed.id)?
            .ok_or(EngineError::Unauthenticated)?;
        let hash = custodia_vault::sha256(&parsed.secret);
        if !custodia_vault::constant_time_eq(&hash, &record.secret_hash) || record.revoked {
            return Err(EngineError::Unauthenticated);
        }
        // A key whose role was removed from the policies opens nothing.
        let role = self
            .policies
            .role(&record.role)
            .ok_or(EngineError::Unauthenticated)?;
        self.note_key_use(&record.id);
        Ok(Caller {
            key_id: record.id,
            tenant: record.tenant,
            role: role.clone(),
            roles: crate::access::RoleDirectory(self.policies.clone()),
        })
    }
}

impl Engine {
    /// Remembers that `id` authenticated a request now; writes it to the store when the last
    /// written time is an hour old. A failed write is logged, never refuses the request.
    fn note_key_use(&self, id: &ApiKeyId) {
        let now = self.clock.now();
        let write = {
            let mut seen = self.key_use.0.lock().unwrap_or_else(|p| p.into_inner());
            let entry = seen.entry(id.clone()).or_insert_with(|| {
                let stored = self
                    .store
                    .meta(&meta_name(id, "last_used"))
                    .ok()
                    .flatten()
                    .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                    .map_or(Timestamp::from_unix_micros(i64::MIN), |b| {
                        Timestamp::from_unix_micros(i64::from_be_bytes(b))
                    });
                (stored, stored)
            });
            entry.0 = now;
            let due =
                now.unix_micros().saturating_sub(entry.1.unix_micros()) >= LAST_USED_EVERY_MICROS;
            if due {
                entry.1 = now;
            }
            due
        };
        if write {
            let mut batch = WriteBatch::new();
            batch.put_meta(
                &meta_name(id, "last_used"),
                &now.unix_micros().to_be_bytes(),
            );
            let _pass = self.write_pass();
            if let Err(e) = self.store.write(batch) {
                tracing::warn!(key_id = %id, error = %e, "could not record the key's last use");
            }
        }
    }

    fn stored_time(&self, id: &ApiKeyId, what: &str) -> Result<Option<Timestamp>, EngineError> {
        Ok(self
            .store
            .meta(&meta_name(id, what))?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(|b| Timestamp::from_unix_micros(i64::from_be_bytes(b))))
    }

    fn key_view(&self, caller: &Caller, record: &ApiKeyRecord) -> Result<ApiKeyView, EngineError> {
        let seen = self
            .key_use
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&record.id)
            .map(|(seen, _)| *seen);
        let last_used_at = match (seen, self.stored_time(&record.id, "last_used")?) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
        .filter(|t| t.unix_micros() != i64::MIN);
        Ok(ApiKeyView {
            key_id: record.id.to_string(),
            role: record.role.to_string(),
            created_at: record.created_at,
            last_used_at,
            revoked: record.revoked,
            revoked_at: self.stored_time(&record.id, "revoked_at")?,
            this_key: record.id == caller.key_id,
        })
    }

    /// The caller's tenant's API keys, oldest first (`manage_keys`).
    pub fn api_keys(&self, caller: &Caller) -> Result<Vec<ApiKeyView>, EngineError> {
        caller.require(Operation::ManageKeys)?;
        let mut records: Vec<ApiKeyRecord> = self
            .store
            .api_keys()?
            .into_iter()
            .filter(|r| r.tenant == caller.tenant)
            .collect();
        records.sort_by(|a, b| (a.created_at, a.id.as_str()).cmp(&(b.created_at, b.id.as_str())));
        records.iter().map(|r| self.key_view(caller, r)).collect()
    }

    /// Revokes one of the caller's tenant's keys (`manage_keys`): it authenticates nothing from
    /// the next request on. Revoking a revoked key changes nothing; the key that asks cannot
    /// revoke itself (another admin key, or `custodia keys create`, must do it, so that nobody
    /// locks the last admin out by a slip).
    pub fn revoke_api_key(&self, caller: &Caller, key_id: &str) -> Result<ApiKeyView, EngineError> {
        caller.require(Operation::ManageKeys)?;
        let not_found = || EngineError::NotFound {
            field: "key_id".to_owned(),
            message: "no key with this id in your tenant",
        };
        let id: ApiKeyId = key_id.parse().map_err(|_| not_found())?;
        let record = self
            .store
            .api_key(&id)?
            .filter(|r| r.tenant == caller.tenant)
            .ok_or_else(not_found)?;
        if id == caller.key_id {
            return Err(EngineError::Conflict {
                field: "key_id".to_owned(),
                message: "this is the key you are using; revoke it with another admin key"
                    .to_owned(),
            });
        }
        if !record.revoked {
            let mut batch = WriteBatch::new();
            batch.put_api_key(&ApiKeyRecord {
                revoked: true,
                ..record.clone()
            });
            batch.put_meta(
                &meta_name(&id, "revoked_at"),
                &self.clock.now().unix_micros().to_be_bytes(),
            );
            let _pass = self.write_pass();
            self.store.write(batch)?;
            self.store.flush()?;
        }
        let record = self.store.api_key(&id)?.ok_or_else(not_found)?;
        self.key_view(caller, &record)
    }
}

#[cfg(test)]
mod tests;
