//! Prometheus text metrics: requests by route and status, their latency, operations refused for a
//! full disk, and store gauges.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// (method, matched route, status).
type RequestKey = (String, String, u16);

/// Request counters: count and seconds spent, by request key.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RequestKey, (u64, f64)>>,
    /// Operations refused because the disk was full (`insufficient_storage`).
    insufficient_storage: AtomicU64,
    /// The last online backup: seconds it took, seconds writes were held.
    last_backup: Mutex<Option<(f64, f64)>>,
}

impl Metrics {
    /// Counts one request.
    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default();
        entry.0 += 1;
        entry.1 += elapsed.as_secs_f64();
    }

    /// Counts one operation refused because the disk was full.
    pub fn insufficient_storage(&self) {
        self.insufficient_storage.fetch_add(1, Ordering::Relaxed);
    }

    /// Records an online backup: how long it took and how long writes were held.
    pub fn backup_taken(&self, seconds: f64, writes_paused_seconds: f64) {
        *self.last_backup.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((seconds, writes_paused_seconds));
    }

    /// Renders the counters and the given gauges in the Prometheus text format.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP custodia_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE custodia_http_requests_total counter\n");
        let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((method, route, status), (count, _)) in map.iter() {
            let _ = writeln!(
                out,
                "custodia_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP custodia_http_request_seconds_sum Time spent answering HTTP requests.\n",
        );
        out.push_str("# TYPE custodia_http_request_seconds_sum counter\n");
        for ((method, route, status), (_, seconds)) in map.iter() {
            let _ = writeln!(
                out,
                "custodia_http_request_seconds_sum{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {seconds}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP custodia_insufficient_storage_total Operations refused because the data directory's disk was full.\n# TYPE custodia_insufficient_storage_total counter\ncustodia_insufficient_storage_total {}",
            self.insufficient_storage.load(Ordering::Relaxed)
        );
        let last_backup = *self.last_backup.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seconds, paused)) = last_backup {
            let _ = writeln!(
                out,
                "# HELP custodia_backup_seconds How long the last online backup took.\n# TYPE custodia_backup_seconds gauge\ncustodia_backup_seconds {seconds}\n# HELP custodia_backup_writes_paused_seconds How long the last online backup held every writer.\n# TYPE custodia_backup_writes_paused_seconds gauge\ncustodia_backup_writes_paused_seconds {paused}"
            );
        }
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}
