//! `Idempotency-Key` on every write: the answer a write gave, kept under a keyed hash of the
//! key so that a retry is answered with it instead of being applied again.
//!
//! Entries share the store's idempotency table (and its expiry window and pruning) with
//! `messageId`s and consent `decision_id`s, in a look-up-hash domain of their own. An entry
//! holds the keyed hash of the key (the store key), a keyed fingerprint of the request (method,
//! path and a SHA-256 of the body, hashed again under the tenant's look-up key: an unkeyed hash
//! of a body with personal data would outlive an erasure and could be confirmed by guessing), the
//! status and the answer's body. The HTTP layer stores only answers of routes that answer ids,
//! times, counts and ledger metadata (never traits, never a secret); see docs/security.md.

use custodia_store::WriteBatch;

use crate::{Caller, Engine, EngineError};

/// The look-up-hash domain of `Idempotency-Key` values.
const KEY_KIND: &str = "http_idempotency_key";
/// The look-up-hash domain of request fingerprints.
const REQUEST_KIND: &str = "http_idempotency_request";
/// Format version of a kept answer: `01 ‖ fingerprint(32) ‖ status(u16 BE) ‖ body`.
const ANSWER_VERSION: u8 = 1;

/// One `Idempotency-Key` applied to one request, as keyed hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdempotencySlot {
    /// Keyed hash of the tenant and the key: where the answer is kept.
    pub key_hash: [u8; 32],
    /// Keyed hash of the request the key was sent with.
    fingerprint: [u8; 32],
}

/// An answer kept for a key. The body holds ids, times and counts only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptAnswer {
    /// The HTTP status the first request got.
    pub status: u16,
    /// The body it got.
    pub body: Vec<u8>,
}

/// What the store knows of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriorUse {
    /// Not used within the window: apply the request.
    Unused,
    /// Used for the same request: answer this, apply nothing.
    SameRequest(KeptAnswer),
    /// Used for another request (other method, path or body): refuse.
    OtherRequest,
}

impl Engine {
    /// The slot of `key` sent with this request by `caller`'s tenant.
    pub fn idempotency_slot(
        &self,
        caller: &Caller,
        key: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<IdempotencySlot, EngineError> {
        let keys = self.keys(&caller.tenant)?;
        let body_hash = custodia_vault::sha256(body);
        let body_hex: String = body_hash.iter().map(|b| format!("{b:02x}")).collect();
        Ok(IdempotencySlot {
            key_hash: keys.lookup_hash(KEY_KIND, key).0,
            fingerprint: keys
                .lookup_hash(REQUEST_KIND, &format!("{method}\n{path}\n{body_hex}"))
                .0,
        })
    }

    /// What was answered before under `slot`'s key, within the idempotency window. Prunes a
    /// bounded number of expired entries first, so the table stays bounded.
    pub fn idempotency_prior(
        &self,
        caller: &Caller,
        slot: &IdempotencySlot,
    ) -> Result<PriorUse, EngineError> {
        self.prune_idempotency(&caller.tenant)?;
        let Some((seen_at, kept)) = self.store.idempotency(&caller.tenant, &slot.key_hash)? else {
            return Ok(PriorUse::Unused);
        };
        // Pruning is bounded per call: an entry past the window that is still there is unused.
        if seen_at < self.idempotency_window_start() {
            return Ok(PriorUse::Unused);
        }
        let (fingerprint, answer) = decode_answer(&kept)?;
        if fingerprint != slot.fingerprint {
            return Ok(PriorUse::OtherRequest);
        }
        Ok(PriorUse::SameRequest(answer))
    }

    /// Keeps the answer given under `slot`'s key; durable when it returns.
    pub fn keep_idempotent_answer(
        &self,
        caller: &Caller,
        slot: &IdempotencySlot,
        answer: &KeptAnswer,
    ) -> Result<(), EngineError> {
        let mut value = Vec::with_capacity(1 + 32 + 2 + answer.body.len());
        value.push(ANSWER_VERSION);
        value.extend_from_slice(&slot.fingerprint);
        value.extend_from_slice(&answer.status.to_be_bytes());
        value.extend_from_slice(&answer.body);
        let mut batch = WriteBatch::new();
        if let Some((seen_at, _)) = self.store.idempotency(&caller.tenant, &slot.key_hash)? {
            // An expired entry not pruned yet: replace it, time index included.
            batch.delete_idempotency(&caller.tenant, &slot.key_hash, seen_at);
        }
        batch.put_idempotency(&caller.tenant, &slot.key_hash, self.clock.now(), &value);
        self.store.write(batch)?;
        self.store.flush()?;
        Ok(())
    }
}

fn decode_answer(kept: &[u8]) -> Result<([u8; 32], KeptAnswer), EngineError> {
    let corrupt = || EngineError::Corrupt("idempotency entry");
    let (&version, rest) = kept.split_first().ok_or_else(corrupt)?;
    if version != ANSWER_VERSION || rest.len() < 34 {
        return Err(corrupt());
    }
    let (fingerprint, rest) = rest.split_at(32);
    let (status, body) = rest.split_at(2);
    Ok((
        fingerprint.try_into().map_err(|_| corrupt())?,
        KeptAnswer {
            status: u16::from_be_bytes([status[0], status[1]]),
            body: body.to_vec(),
        },
    ))
}

#[cfg(test)]
mod tests;
