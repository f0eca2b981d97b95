//! Webhook witnesses: every new checkpoint of every tenant's ledger is `POST`ed as its signed note
//! (`text/plain`) to each configured URL, so a party outside the operator's control holds the
//! checkpoints and would notice a rewritten or rolled-back log. A failed push is logged and
//! retried with the next checkpoint tick; only a tree size newer than the last one a witness
//! accepted is sent. What each witness last accepted, and when, is kept for the console's ledger
//! screen (`GET /v1/ledger/witnesses`), in memory: after a restart it says "not since start".

use std::collections::HashMap;
use std::time::Duration;

use custodia_core::{TenantId, Timestamp};
use custodia_engine::{Clock, SystemClock};
use custodia_ledger::Checkpoint;

use crate::AppState;

/// The largest tree size each witness accepted of each log (by its origin: a tenant has two
/// logs), and when.
#[derive(Default)]
pub(crate) struct Pushed(HashMap<(String, String), (u64, Timestamp)>);

impl Pushed {
    /// What the witness at `url` last accepted of the log `origin`.
    pub(crate) fn accepted(&self, url: &str, origin: &str) -> Option<(u64, Timestamp)> {
        self.0.get(&(url.to_owned(), origin.to_owned())).copied()
    }
}

/// A witness URL as the console may show it: scheme, host, port and path; never a user name, a
/// password or a query (which may carry a token).
pub(crate) fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}/{path}")
}

/// Sends the checkpoints each witness has not accepted yet.
pub(crate) async fn push(state: &AppState, checkpoints: Vec<(TenantId, Checkpoint)>) {
    let pushed = &state.0.witnesses;
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
                    .accepted(url, &checkpoint.origin)
                    .map_or(0, |(size, _)| size);
                if checkpoint.tree_size > last {
                    due.push((
                        url.clone(),
                        tenant.clone(),
                        checkpoint.origin.clone(),
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
            .filter_map(|(url, tenant, origin, size, note)| {
                let result = agent
                    .post(&url)
                    .header("Content-Type", "text/plain; charset=utf-8")
                    .header("X-Custodia-Tenant", tenant.as_str())
                    .send(note.as_bytes());
                match result {
                    Ok(_) => Some((url, tenant, origin, size)),
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
    let now = SystemClock.now();
    for (url, tenant, origin, size) in sent {
        tracing::info!(tenant = %tenant, tree_size = size, "checkpoint sent to witness");
        pushed.0.insert((url, origin), (size, now));
    }
}
