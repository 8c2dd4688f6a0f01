//! `airlock-agent run`: the reconcile loop over every configured environment, in order, every interval
//! plus jitter, and the `/healthz` and `/metrics` endpoints beside it.
//!
//! `/healthz` answers 200 once a cycle has finished and the last one is not older than three intervals;
//! 503 with the reason otherwise (starting, stalled, or the last cycle failed for every environment).
//! `/metrics` is the Prometheus text of [`Metrics`].

use crate::config::RunConfig;
use crate::metrics::Metrics;
use crate::sync::{Agent, SyncReport};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `/healthz` reports.
#[derive(Debug, Default)]
pub struct Health {
    last_cycle: Option<Instant>,
    last_error: Option<String>,
    stale_after: Duration,
}

/// State shared by the loop and the HTTP endpoints.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The health.
    pub health: Arc<Mutex<Health>>,
}

/// The router serving `/healthz` and `/metrics`.
pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

async fn healthz(State(shared): State<Shared>) -> impl IntoResponse {
    let health = shared.health.lock().unwrap_or_else(|p| p.into_inner());
    match (health.last_cycle, &health.last_error) {
        (None, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: no cycle finished yet\n".to_string(),
        ),
        (Some(_), Some(err)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("last cycle failed: {err}\n"),
        ),
        (Some(at), None) if at.elapsed() > health.stale_after => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "stalled: last cycle finished {}s ago\n",
                at.elapsed().as_secs()
            ),
        ),
        (Some(_), None) => (StatusCode::OK, "ok\n".to_string()),
    }
}

async fn metrics(State(shared): State<Shared>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.render(),
    )
}

/// A random duration in `[0, max]`, from the process's hash seed (no extra dependency needed for jitter).
pub fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let r = h.finish();
    Duration::from_nanos(r % (max.as_nanos().min(u64::MAX as u128) as u64 + 1))
}

/// Runs the loop forever (or until `cycles` cycles when given, for tests), calling `on_report` after each
/// environment's sync. Errors of one environment never stop the others or the loop.
pub async fn run_loop(
    config: &RunConfig,
    shared: Shared,
    cycles: Option<u64>,
    mut on_report: impl FnMut(&str, &Result<SyncReport, crate::AgentError>),
) -> Result<(), crate::AgentError> {
    let mut agents = Vec::new();
    for env in &config.environments {
        agents.push(Agent::new(env.clone(), shared.metrics.clone())?);
    }
    {
        let mut h = shared.health.lock().unwrap_or_else(|p| p.into_inner());
        h.stale_after = (config.interval + config.jitter) * 3;
    }
    let mut done = 0u64;
    loop {
        let mut errors = Vec::new();
        for agent in &mut agents {
            let result = agent.sync().await;
            if let Err(e) = &result {
                errors.push(format!("{}: {e}", agent.env()));
            }
            on_report(agent.env(), &result);
        }
        {
            let mut h = shared.health.lock().unwrap_or_else(|p| p.into_inner());
            h.last_cycle = Some(Instant::now());
            h.last_error =
                (errors.len() == agents.len() && !errors.is_empty()).then(|| errors.join("; "));
        }
        done += 1;
        if cycles.is_some_and(|c| done >= c) {
            return Ok(());
        }
        tokio::time::sleep(config.interval + jitter(config.jitter)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bound() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(5)) <= Duration::from_millis(5));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
