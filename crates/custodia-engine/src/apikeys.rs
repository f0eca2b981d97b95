//! API keys: `cus_<key id>_<secret>`. The key id is public (it names the key in logs and in the
//! access log); of the secret only its SHA-256 is stored. A 256-bit random secret needs no slow
//! password hash: nothing about it can be guessed.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custodia_core::{ApiKeyId, RoleName, TenantId};
use custodia_store::{ApiKeyRecord, WriteBatch};

use crate::{Caller, Engine, EngineError};

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
        Ok(Caller {
            key_id: record.id,
            tenant: record.tenant,
            role: role.clone(),
            roles: crate::access::RoleDirectory(self.policies.clone()),
        })
    }
}
