//! Starting the gate: load keys, policies and store, spawn the queue worker, serve HTTP.

use crate::config::GateConfig;
use crate::http::{AppState, router};
use crate::pipeline::Pipeline;
use crate::store::Store;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// A running gate: its address and the handle of its server task.
pub struct RunningGate {
    pub addr: SocketAddr,
    pub pipeline: Arc<Pipeline>,
    pub server: tokio::task::JoinHandle<()>,
    pub worker: tokio::task::JoinHandle<()>,
}

/// Loads everything the pipeline needs; fails with the path of whatever is missing or invalid.
pub async fn load_pipeline(config: GateConfig) -> anyhow::Result<Pipeline> {
    let store = Store::connect(&config.database_url())
        .await
        .context("opening the gate's store")?;
    let key = airlock_sign::SigningKey::load(&config.key_path())
        .with_context(|| format!("loading the signing key {}", config.key_path().display()))?;
    let policies = airlock_policy::PolicySet::load(&config.policy_dir()).with_context(|| {
        format!(
            "loading gate policies from {}",
            config.policy_dir().display()
        )
    })?;
    let today = time::OffsetDateTime::now_utc().date();
    let waivers = if config.waivers_path().exists() {
        airlock_policy::load_waivers(&config.waivers_path(), today)
            .with_context(|| format!("loading waivers {}", config.waivers_path().display()))?
    } else {
        Vec::new()
    };
    Ok(Pipeline {
        config,
        store,
        key,
        policies,
        waivers,
    })
}

/// Binds the listener, starts the worker and the server.
pub async fn start(config: GateConfig) -> anyhow::Result<RunningGate> {
    let listen = config.listen.clone();
    let pipeline = Arc::new(load_pipeline(config).await?);
    if pipeline.store.is_sqlite() {
        // One process owns a SQLite store: whatever a previous process had leased was cut off by its exit.
        pipeline.store.release_all_leases().await?;
    }
    let wake = Arc::new(Notify::new());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let app = router(AppState {
        pipeline: pipeline.clone(),
        wake: wake.clone(),
    });
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    let worker = tokio::spawn(run_worker(pipeline.clone(), wake));
    tracing::info!(%addr, "gate listening");
    Ok(RunningGate {
        addr,
        pipeline,
        server,
        worker,
    })
}

/// Takes runs off the durable queue one at a time, forever.
pub async fn run_worker(pipeline: Arc<Pipeline>, wake: Arc<Notify>) {
    let owner = format!("worker-{}", uuid::Uuid::new_v4().simple());
    loop {
        match pipeline.store.claim_next(&owner, 15 * 60).await {
            Ok(Some(run)) => {
                let id = run.id.clone();
                if let Err(e) = pipeline.process(&id).await {
                    tracing::error!(run = %id, error = %format!("{e:#}"), "run interrupted; it will be retried");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                if let Err(e) = pipeline.store.release_lease(&id).await {
                    tracing::error!(run = %id, error = %e, "releasing lease");
                }
            }
            Ok(None) => {
                let _ = tokio::time::timeout(Duration::from_millis(500), wake.notified()).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "queue unavailable; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}
