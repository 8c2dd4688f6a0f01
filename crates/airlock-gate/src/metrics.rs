//! `/metrics` in the Prometheus text format: runs by state, queue depth and step durations from the store (so
//! every replica reports the same totals), and webhook results counted by this process.

use crate::store::{Store, StoreError};
use airlock_cli::api::RunState;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds of the step-duration histogram, in milliseconds.
pub const STEP_BUCKETS_MS: [i64; 10] = [
    100, 500, 1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000,
];

/// Counters this process keeps.
#[derive(Default)]
pub struct Metrics {
    webhooks: Mutex<BTreeMap<(String, String), u64>>,
}

impl Metrics {
    /// Counts one webhook delivery of `host` that ended as `result` (`accepted`, `duplicate`, `ignored`,
    /// `bad_signature`, `unsigned`, `bad_request`, ...).
    pub fn webhook(&self, host: &str, result: &str) {
        if let Ok(mut m) = self.webhooks.lock() {
            *m.entry((host.to_string(), result.to_string())).or_insert(0) += 1;
        }
    }

    /// The whole exposition.
    pub async fn render(&self, store: &Store) -> Result<String, StoreError> {
        let mut out = String::new();
        let counts: BTreeMap<String, i64> = store.count_by_state().await?.into_iter().collect();
        out.push_str(
            "# HELP airlock_runs Runs in the store, by state.\n# TYPE airlock_runs gauge\n",
        );
        for state in RunState::ALL {
            let n = counts.get(state.as_str()).copied().unwrap_or(0);
            let _ = writeln!(out, "airlock_runs{{state=\"{state}\"}} {n}");
        }
        let depth = store.queue_depth().await?;
        out.push_str("# HELP airlock_queue_depth Runs waiting for a worker.\n# TYPE airlock_queue_depth gauge\n");
        let _ = writeln!(out, "airlock_queue_depth {depth}");

        out.push_str(
            "# HELP airlock_step_duration_seconds Duration of finished pipeline steps.\n\
             # TYPE airlock_step_duration_seconds histogram\n",
        );
        for h in store.step_duration_histogram(&STEP_BUCKETS_MS).await? {
            for (bound, n) in STEP_BUCKETS_MS.iter().zip(&h.buckets) {
                let _ = writeln!(
                    out,
                    "airlock_step_duration_seconds_bucket{{step=\"{}\",le=\"{}\"}} {n}",
                    h.step,
                    *bound as f64 / 1000.0
                );
            }
            let _ = writeln!(
                out,
                "airlock_step_duration_seconds_bucket{{step=\"{}\",le=\"+Inf\"}} {}",
                h.step, h.count
            );
            let _ = writeln!(
                out,
                "airlock_step_duration_seconds_sum{{step=\"{}\"}} {}",
                h.step,
                h.sum_ms as f64 / 1000.0
            );
            let _ = writeln!(
                out,
                "airlock_step_duration_seconds_count{{step=\"{}\"}} {}",
                h.step, h.count
            );
        }

        out.push_str(
            "# HELP airlock_webhook_deliveries_total Webhook deliveries received by this process, by result.\n\
             # TYPE airlock_webhook_deliveries_total counter\n",
        );
        if let Ok(m) = self.webhooks.lock() {
            for ((host, result), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "airlock_webhook_deliveries_total{{host=\"{host}\",result=\"{result}\"}} {n}"
                );
            }
        }
        Ok(out)
    }
}
