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

/// Environment variable holding the password of an encrypted signing key (for `keys generate --encrypt`
/// and for loading such a key).
pub const PASSWORD_ENV: &str = "AIRLOCK_SIGNING_KEY_PASSWORD";
/// Environment variable that may hold the signing key's PEM text itself instead of a file.
pub const PEM_ENV: &str = "AIRLOCK_SIGNING_KEY_PEM";

/// The password in [`PASSWORD_ENV`], if set (wiped when dropped).
pub fn password_from_env() -> Option<zeroize::Zeroizing<Vec<u8>>> {
    std::env::var_os(PASSWORD_ENV).map(|p| zeroize::Zeroizing::new(p.into_encoded_bytes()))
}

/// Loads the gate's signing key: the PEM text in [`PEM_ENV`] when set, else the configured key file; an
/// encrypted key is decrypted with [`PASSWORD_ENV`]. Errors name the variable or file, never key material
/// or the password.
pub fn load_signing_key(config: &GateConfig) -> anyhow::Result<airlock_sign::SigningKey> {
    if let Some(key) = airlock_sign::SigningKey::from_env(PEM_ENV, PASSWORD_ENV)? {
        return Ok(key);
    }
    let password = password_from_env();
    let path = config.key_path();
    airlock_sign::SigningKey::load_with_password(&path, password.as_ref().map(|p| p.as_slice()))
        .with_context(|| format!("loading the signing key {}", path.display()))
}

/// Loads everything the pipeline needs; fails with the path of whatever is missing or invalid.
pub async fn load_pipeline(config: GateConfig) -> anyhow::Result<Pipeline> {
    let store = Store::connect(&config.database_url())
        .await
        .context("opening the gate's store")?;
    let key = load_signing_key(&config)?;
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
    let header_timeout = Duration::from_secs(pipeline.config.header_read_timeout_secs.max(1));
    let server = tokio::spawn(serve(listener, app, header_timeout));
    let worker = tokio::spawn(run_worker(pipeline.clone(), wake));
    tracing::info!(%addr, "gate listening");
    Ok(RunningGate {
        addr,
        pipeline,
        server,
        worker,
    })
}

/// Accepts connections forever and serves each on its own task.
///
/// `axum::serve` gives hyper no timer, so hyper's header-read timeout never fires there: a client that trickles
/// its request line one byte at a time would hold a connection (and a task) for as long as it likes. Here each
/// connection gets the timer, and one whose headers take longer than `header_timeout` is closed. The body has its
/// own deadline ([`crate::http::body_deadline`]).
pub async fn serve(listener: tokio::net::TcpListener, app: axum::Router, header_timeout: Duration) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning, keep serving.
                tracing::error!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            // Connect info gives the audit log the caller's address.
            let service = hyper::service::service_fn(
                move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(remote));
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            builder.http2().timer(TokioTimer::new());
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(peer = %remote, error = %e, "connection ended with an error");
            }
        });
    }
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
