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

/// The file under the data directory that holds waivers added through `POST /api/v1/waivers`.
pub const API_WAIVERS_FILE: &str = "waivers-api.toml";

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
    // AIRLOCK_SIGNING_KEY_PEM (the key itself) wins over the key file; AIRLOCK_SIGNING_KEY_PASSWORD decrypts
    // a cosign encrypted key. Neither value is ever logged.
    let key = match airlock_sign::SigningKey::from_env(
        "AIRLOCK_SIGNING_KEY_PEM",
        "AIRLOCK_SIGNING_KEY_PASSWORD",
    )? {
        Some(key) => key,
        None => {
            let password =
                std::env::var_os("AIRLOCK_SIGNING_KEY_PASSWORD").map(|p| p.into_encoded_bytes());
            airlock_sign::SigningKey::load_with_password(&config.key_path(), password.as_deref())
                .with_context(|| {
                    format!("loading the signing key {}", config.key_path().display())
                })?
        }
    };
    let policies = airlock_policy::PolicySet::load(&config.policy_dir()).with_context(|| {
        format!(
            "loading gate policies from {}",
            config.policy_dir().display()
        )
    })?;
    let today = time::OffsetDateTime::now_utc().date();
    // The reviewed file (read-only here) plus the waivers the admin API added, kept under the data directory.
    let waivers = airlock_policy::WaiverBook::open(
        Some(&config.waivers_path()),
        &config.data_dir.join(API_WAIVERS_FILE),
        today,
    )
    .context("loading waivers")?;
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
        metrics: Arc::new(crate::metrics::Metrics::default()),
    });
    let server = tokio::spawn(async move {
        // Connect info gives the audit log the caller's address.
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
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
                // Every log line of the run, whichever crate writes it, carries the run id through this span.
                let span = tracing::info_span!("run", run = %id);
                if let Err(e) = tracing::Instrument::instrument(pipeline.process(&id), span).await {
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
