//! Webhook witnesses: every new checkpoint of every tenant's ledger is `POST`ed as its signed note
//! (`text/plain`) to each configured URL, so a party outside the operator's control holds the
//! checkpoints and would notice a rewritten or rolled-back log. A failed push is logged and
//! retried with the next checkpoint tick; only a tree size newer than the last one a witness
//! accepted is sent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use custodia_core::TenantId;
use custodia_ledger::Checkpoint;

use crate::AppState;

/// The largest tree size each witness accepted, per tenant.
#[derive(Default)]
pub(crate) struct Pushed(HashMap<(String, TenantId), u64>);

/// Sends the checkpoints each witness has not accepted yet.
pub(crate) async fn push(
    state: &AppState,
    checkpoints: Vec<(TenantId, Checkpoint)>,
    pushed: &Mutex<Pushed>,
) {
    let urls = state.0.config.witness_webhooks.clone();
    if urls.is_empty() {
        return;
    }
    let mut due = Vec::new();
    {
        let pushed = pushed.lock().unwrap_or_else(|p| p.into_inner());
        for url in &urls {
            for (tenant, checkpoint) in &checkpoints {
                let last = pushed
                    .0
                    .get(&(url.clone(), tenant.clone()))
                    .copied()
                    .unwrap_or(0);
                if checkpoint.tree_size > last {
                    due.push((
                        url.clone(),
                        tenant.clone(),
                        checkpoint.tree_size,
                        checkpoint.to_text(),
                    ));
                }
            }
        }
    }
    if due.is_empty() {
        return;
    }
    let sent = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        due.into_iter()
            .filter_map(|(url, tenant, size, note)| {
                let result = agent
                    .post(&url)
                    .header("Content-Type", "text/plain; charset=utf-8")
                    .header("X-Custodia-Tenant", tenant.as_str())
                    .send(note.as_bytes());
                match result {
                    Ok(_) => Some((url, tenant, size)),
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, tree_size = size, error = %e, "witness did not take the checkpoint; retrying later");
                        None
                    }
                }
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut pushed = pushed.lock().unwrap_or_else(|p| p.into_inner());
    for (url, tenant, size) in sent {
        tracing::info!(tenant = %tenant, tree_size = size, "checkpoint sent to witness");
        pushed.0.insert((url, tenant), size);
    }
}
