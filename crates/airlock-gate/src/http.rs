//! The HTTP API: intake (submissions, webhooks), runs, health, readiness, metrics, the OpenAPI document.
//!
//! Accepted means stored: every 202 is answered only after the submission is in the store (and its tarball on
//! disk, synced). Errors are `ApiError` JSON sentences with the right status. Every state-changing call is
//! recorded in the hash-chained audit log (who, what, when, from where) before the answer is sent.
//!
//! Roles: a developer token submits and sees its own team's runs; operators see and cancel every team's runs;
//! routes marked *admin-only* (waivers, the audit export, rebases) need an admin token.

use crate::audit::AuditEntry;
use crate::auth::{self, Caller};
use crate::config::Role;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::store::{NewRun, RunFilter, SourceKind};
use crate::webhooks::{self, Host, Route};
use airlock_cli::api::{ApiError, RunState, SubmissionAccepted};
use axum::body::Bytes;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Multipart, Path, Query, Request,
    State,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    /// Wakes the worker when a run is queued.
    pub wake: Arc<Notify>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
}

/// The peer address of the connection ("from where" in the audit log), or `unknown` when the server was not
/// started with connect info (tests driving the router directly).
pub struct Peer(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "unknown".into()),
        ))
    }
}

/// An API error: status plus the sentence the caller reads.
pub struct HttpError(StatusCode, ApiError);

impl HttpError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        HttpError(
            status,
            ApiError {
                error: message.into(),
                code: code.into(),
            },
        )
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the gate could not do this: {e}"),
        )
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

/// The gate's router.
pub fn router(state: AppState) -> Router {
    let limit = state.pipeline.config.max_body_bytes;
    let hook_limit = state.pipeline.config.max_webhook_bytes;
    let hooks = Router::new()
        .route("/api/v1/hooks/github", post(github_hook))
        .route("/api/v1/hooks/gitlab", post(gitlab_hook))
        .route("/api/v1/hooks/gitea", post(gitea_hook))
        .layer(DefaultBodyLimit::max(hook_limit));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/api/v1/submissions", post(submit))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}", get(get_run))
        .route("/api/v1/runs/{id}/cancel", post(cancel_run))
        .route("/api/v1/runs/{id}/events", get(run_events))
        .route("/api/v1/audit", get(audit_export))
        .route("/api/v1/waivers", get(list_waivers).post(add_waiver))
        .route("/api/v1/rebases", post(crate::rebase::post_rebase))
        .route(
            "/api/v1/waivers/{key}",
            axum::routing::delete(remove_waiver),
        )
        .merge(crate::ui::router())
        .layer(DefaultBodyLimit::max(limit))
        .merge(hooks)
        .fallback(|| async {
            HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
        })
        .layer(axum::middleware::from_fn_with_state(
            Duration::from_secs(state.pipeline.config.body_read_timeout_secs.max(1)),
            body_deadline,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Gives every request `deadline` to be read and answered; past it the gate answers 408 and closes the connection.
///
/// Handlers read bodies themselves, so dropping the handler's future at the deadline stops the read: a client
/// that trickles its body holds the connection for at most `body_read_timeout_secs`. Whatever the handler had
/// started is cleaned up by its own drop guards (a submission's partial tarball), so nothing is kept. Server-sent
/// event streams are not cut: their handler answers at once and the stream runs after it.
pub async fn body_deadline(
    State(deadline): State<Duration>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request.uri().path().to_string();
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(%route, seconds = deadline.as_secs(), "request not read in time; answering 408");
            let mut response = HttpError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request was not received within {} seconds (body_read_timeout_secs); nothing was stored",
                    deadline.as_secs()
                ),
            )
            .into_response();
            // The rest of the body is never read: the connection cannot carry another request.
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            response
        }
    }
}

/// Removes a file when dropped unless disarmed: a submission cut off mid-upload (error, timeout, or the client
/// going away, all of which drop the handler) leaves no partial tarball behind.
struct RemoveOnDrop(Option<std::path::PathBuf>);

impl RemoveOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The caller of a bearer-token route, or 401 with what to do.
pub(crate) fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, HttpError> {
    let unauthorized = |m: &str| HttpError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            unauthorized(
                "no Authorization header: send `Authorization: Bearer TOKEN` (see `airlock login`)",
            )
        })?
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not text"))?;
    let token = value
        .strip_prefix("Bearer ")
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer TOKEN`"))?;
    auth::authenticate(&state.pipeline.config.teams, token.trim()).ok_or_else(|| {
        unauthorized("this token is not known to the gate; ask an operator for a team token")
    })
}

/// The caller, if its role is at least `role`; 403 naming the role needed otherwise.
pub(crate) fn require_role(
    state: &AppState,
    headers: &HeaderMap,
    role: Role,
) -> Result<Caller, HttpError> {
    let who = caller(state, headers)?;
    if who.role < role {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this needs a token with role {} or above; yours ({}) has role {}",
                role.as_str(),
                who.name,
                who.role.as_str()
            ),
        ));
    }
    Ok(who)
}

/// Appends to the audit log; a failure fails the request, since an unrecorded change must not look accepted.
#[allow(clippy::too_many_arguments)] // one call per audited route: the fields read better named at the call
pub(crate) async fn audit(
    state: &AppState,
    who: Option<&Caller>,
    actor: &str,
    peer: &Peer,
    action: &str,
    target: &str,
    outcome: &str,
    detail: String,
) -> Result<(), HttpError> {
    let entry = AuditEntry {
        actor: who
            .map(|c| c.name.clone())
            .unwrap_or_else(|| actor.to_string()),
        team: who.map(|c| c.team.clone()).unwrap_or_default(),
        role: who
            .map(|c| c.role.as_str().to_string())
            .unwrap_or_else(|| "webhook".into()),
        action: action.into(),
        target: target.into(),
        source_ip: peer.0.clone(),
        outcome: outcome.into(),
        detail,
    };
    state
        .pipeline
        .store
        .append_audit(&entry)
        .await
        .map(|_| ())
        .map_err(HttpError::internal)
}

/// `GET /readyz`: 200 when the store answers, 503 otherwise (take this replica out of the load balancer).
async fn readyz(State(state): State<AppState>) -> Response {
    match state.pipeline.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the store does not answer: {e}\n"),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus text exposition.
async fn metrics(State(state): State<AppState>) -> Result<Response, HttpError> {
    let text = state
        .metrics
        .render(&state.pipeline.store)
        .await
        .map_err(HttpError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

fn accepted(run_id: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(SubmissionAccepted {
            run_id: run_id.to_string(),
            status_url: format!("/api/v1/runs/{run_id}"),
            state: RunState::Queued,
        }),
    )
        .into_response()
}

/// `POST /api/v1/submissions`: multipart with `repository`, `commit`, `branch`, `author`, optional `commit_time`,
/// and the gzip tarball as `source`.
async fn submit(
    State(state): State<AppState>,
    peer: Peer,
    request: Request,
) -> Result<Response, HttpError> {
    let headers = request.headers().clone();
    let who = caller(&state, &headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("multipart/form-data") {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong_content_type",
            format!(
                "a submission must be `multipart/form-data` (the source tarball as part `source`), not {:?}",
                if content_type.is_empty() {
                    "no Content-Type"
                } else {
                    content_type
                }
            ),
        ));
    }
    let mut form = Multipart::from_request(request, &state)
        .await
        .map_err(|e| {
            HttpError::bad_request(format!(
                "the multipart body cannot be read: {}",
                e.body_text()
            ))
        })?;
    let team = who.team.clone();
    let id = crate::store::new_run_id();
    let sources = state.pipeline.config.sources_dir();
    std::fs::create_dir_all(&sources).map_err(HttpError::internal)?;
    let final_path = sources.join(format!("{id}.tar.gz"));
    let partial_path = sources.join(format!(".{id}.partial"));
    // From the first byte written until the run row is stored, an early return or a dropped request (408, the
    // client going away) removes the file: accepted means stored, refused means nothing kept.
    let mut partial_guard = RemoveOnDrop(Some(partial_path.clone()));
    let mut fields = std::collections::BTreeMap::new();
    let mut have_source = false;
    let result: Result<(), HttpError> = async {
        while let Some(mut field) = form
            .next_field()
            .await
            .map_err(|e| HttpError::bad_request(format!("the multipart body is malformed: {e}")))?
        {
            let name = field.name().unwrap_or("").to_string();
            if name == "source" {
                let mut file = std::fs::File::create(&partial_path).map_err(HttpError::internal)?;
                let mut first = true;
                while let Some(chunk) = field.chunk().await.map_err(|e| {
                    HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("reading `source`: {e}"))
                })? {
                    if first && !chunk.starts_with(&[0x1f, 0x8b]) {
                        return Err(HttpError::new(
                            StatusCode::UNSUPPORTED_MEDIA_TYPE,
                            "not_gzip",
                            "the `source` part is not a gzip tarball (it must start with the gzip magic bytes 1f 8b)",
                        ));
                    }
                    first = false;
                    file.write_all(&chunk).map_err(HttpError::internal)?;
                }
                if first {
                    return Err(HttpError::bad_request("the `source` part is empty"));
                }
                file.sync_all().map_err(HttpError::internal)?;
                have_source = true;
            } else if ["repository", "commit", "branch", "author", "commit_time", "app"].contains(&name.as_str()) {
                let text = field
                    .text()
                    .await
                    .map_err(|e| HttpError::bad_request(format!("reading field `{name}`: {e}")))?;
                if text.len() > 1024 {
                    return Err(HttpError::bad_request(format!("field `{name}` is longer than 1024 bytes")));
                }
                fields.insert(name, text);
            } else {
                return Err(HttpError::bad_request(format!(
                    "unknown form field `{name}` (expected source, repository, commit, branch, author, commit_time, app)"
                )));
            }
        }
        if !have_source {
            return Err(HttpError::bad_request("the form has no `source` part holding the gzip tarball"));
        }
        Ok(())
    }
    .await;
    result?;
    let commit_time = match fields.get("commit_time") {
        Some(t) => Some(t.trim().parse::<i64>().map_err(|_| {
            HttpError::bad_request(format!("`commit_time` must be unix seconds, got {t:?}"))
        })?),
        None => None,
    };
    check_app_team(&state, &who, &peer, &partial_path, fields.get("app")).await?;
    std::fs::rename(&partial_path, &final_path).map_err(HttpError::internal)?;
    partial_guard.disarm();
    let mut final_guard = RemoveOnDrop(Some(final_path.clone()));
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let run = NewRun {
        id: id.clone(),
        app: get("app"),
        team,
        source_kind: SourceKind::Tarball,
        source_ref: final_path.display().to_string(),
        repository: get("repository"),
        commit: get("commit"),
        branch: get("branch"),
        author: get("author"),
        commit_time,
    };
    state
        .pipeline
        .store
        .insert_run(&run)
        .await
        .map_err(HttpError::internal)?;
    final_guard.disarm();
    audit(
        &state,
        Some(&who),
        "",
        &peer,
        "run.submit",
        &id,
        "accepted",
        format!("{} {} at {}", run.repository, run.branch, run.commit),
    )
    .await?;
    tracing::info!(run = %id, team = %run.team, "submission accepted");
    state.wake.notify_one();
    Ok(accepted(&id))
}

/// Refuses, before anything is queued, a submission for an app of another team (403 with the sentence to act
/// on), instead of accepting it and rejecting it at fetch.
///
/// The app's team is what the tarball's `airlock.toml` declares, and an app name already owned elsewhere —
/// mapped to a team in the platform config, or published by a team before — stays that team's: a developer
/// cannot take over another team's app by declaring it their own. A tarball whose descriptor cannot be read
/// here is left to the fetch step, which names the problem precisely.
async fn check_app_team(
    state: &AppState,
    who: &Caller,
    peer: &Peer,
    tarball: &std::path::Path,
    app_field: Option<&String>,
) -> Result<(), HttpError> {
    let path = tarball.to_path_buf();
    let descriptor = tokio::task::spawn_blocking(move || descriptor_in_tarball(&path))
        .await
        .map_err(HttpError::internal)?;
    let app = descriptor
        .as_ref()
        .map(|d| d.name.clone())
        .or_else(|| app_field.cloned().filter(|a| !a.is_empty()));
    let Some(app) = app else {
        return Ok(());
    };
    let refusal = match &descriptor {
        Some(d) if d.team != who.team => Some((
            d.team.clone(),
            format!(
                "app {app:?} belongs to team {:?} (its airlock.toml says so), but this token ({}) is of team {:?}; \
                 submit with a token of team {:?}, or change `team` in airlock.toml if the app is yours",
                d.team, who.name, who.team, d.team
            ),
        )),
        _ => None,
    };
    let refusal = match refusal {
        Some(r) => Some(r),
        None => {
            let mapped = state
                .pipeline
                .config
                .webhooks
                .repositories
                .iter()
                .find(|r| r.app == app && r.team != who.team)
                .map(|r| (r.team.clone(), "the platform config maps it to that team"));
            let owner = match mapped {
                Some(m) => Some(m),
                None => state
                    .pipeline
                    .store
                    .app_owner(&app)
                    .await
                    .map_err(HttpError::internal)?
                    .filter(|t| *t != who.team)
                    .map(|t| (t, "that team has published it")),
            };
            owner.map(|(team, why)| {
                (
                    team.clone(),
                    format!(
                        "app {app:?} belongs to team {team:?} ({why}); a token of team {:?} ({}) cannot submit \
                         it: ask team {team:?} to submit it, or rename the app in airlock.toml",
                        who.team, who.name
                    ),
                )
            })
        }
    };
    let Some((owner, message)) = refusal else {
        return Ok(());
    };
    // A refused attempt on another team's app is worth an audit line: it is what a takeover attempt looks like.
    audit(
        state,
        Some(who),
        "",
        peer,
        "run.submit",
        &app,
        "refused",
        format!("app of team {owner}"),
    )
    .await?;
    Err(HttpError::new(StatusCode::FORBIDDEN, "wrong_team", message))
}

/// Decompressed bytes read at most while looking for `airlock.toml` in a submitted tarball; a bigger or odd
/// tarball is left to the fetch step and its unpacking limits.
const DESCRIPTOR_SCAN_LIMIT: u64 = 256 * 1024 * 1024;

/// The app and team declared by the `airlock.toml` at the root of a gzip tarball, if it has one.
fn descriptor_in_tarball(path: &std::path::Path) -> Option<DeclaredApp> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let gz =
        flate2::read::GzDecoder::new(std::io::BufReader::new(file)).take(DESCRIPTOR_SCAN_LIMIT);
    let mut archive = tar::Archive::new(gz);
    for entry in archive.entries().ok()? {
        let entry = entry.ok()?;
        let name = entry.path().ok()?.to_string_lossy().into_owned();
        if name.trim_start_matches("./") != airlock_descriptor::DESCRIPTOR_FILE
            || !entry.header().entry_type().is_file()
        {
            continue;
        }
        let mut text = String::new();
        entry
            .take(airlock_descriptor::MAX_DESCRIPTOR_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .ok()?;
        return declared_app(&text);
    }
    None
}

/// App name and team an `airlock.toml` declares. Read leniently (only `[app]`): a descriptor with other mistakes
/// still names its owner, and the fetch step reports those mistakes with their line.
fn declared_app(text: &str) -> Option<DeclaredApp> {
    let value: toml::Table = toml::from_str(text).ok()?;
    let app = value.get("app")?.as_table()?;
    Some(DeclaredApp {
        name: app.get("name")?.as_str()?.to_string(),
        team: app.get("team")?.as_str()?.to_string(),
    })
}

/// `[app] name` and `team` of a submitted descriptor.
struct DeclaredApp {
    name: String,
    team: String,
}

/// `POST /api/v1/hooks/github`: a push event, signed with `X-Hub-Signature-256`.
async fn github_hook(state: State<AppState>, peer: Peer, request: Request) -> Response {
    hook(state, peer, request, Host::GitHub).await
}

/// `POST /api/v1/hooks/gitlab`: a push or tag push event with the secret token in `X-Gitlab-Token`.
async fn gitlab_hook(state: State<AppState>, peer: Peer, request: Request) -> Response {
    hook(state, peer, request, Host::GitLab).await
}

/// `POST /api/v1/hooks/gitea`: a Gitea or Forgejo push event, signed with `X-Gitea-Signature`.
async fn gitea_hook(state: State<AppState>, peer: Peer, request: Request) -> Response {
    hook(state, peer, request, Host::Gitea).await
}

/// One webhook delivery of any host, counted in `/metrics` by how it ended.
async fn hook(State(state): State<AppState>, peer: Peer, request: Request, host: Host) -> Response {
    match hook_inner(&state, &peer, request, host).await {
        Ok((result, response)) => {
            state.metrics.webhook(host.as_str(), result);
            response
        }
        Err(e) => {
            state.metrics.webhook(host.as_str(), &e.1.code);
            e.into_response()
        }
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn hook_inner(
    state: &AppState,
    peer: &Peer,
    request: Request,
    host: Host,
) -> Result<(&'static str, Response), HttpError> {
    let hooks = &state.pipeline.config.webhooks;
    let not_configured = || {
        HttpError::new(
            StatusCode::NOT_FOUND,
            "not_configured",
            format!("{} webhooks are not configured on this gate", host.as_str()),
        )
    };
    let unsigned = |header: &str| {
        HttpError::new(
            StatusCode::UNAUTHORIZED,
            "unsigned",
            format!("the delivery has no {header} header"),
        )
    };
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    // Check the secret is configured before reading a byte of the body.
    let secret = match host {
        Host::GitHub => hooks.github_secret.as_deref(),
        Host::GitLab => hooks.gitlab_token.as_deref(),
        Host::Gitea => hooks.gitea_secret.as_deref(),
    }
    .ok_or_else(not_configured)?;
    // An unsigned delivery is refused as such (401) before anything about its form is judged.
    let auth_headers: &[&str] = match host {
        Host::GitHub => &["x-hub-signature-256"],
        Host::GitLab => &["x-gitlab-token"],
        Host::Gitea => &["x-gitea-signature", "x-forgejo-signature"],
    };
    if !auth_headers.iter().any(|h| headers.contains_key(*h)) {
        return Err(unsigned(match host {
            Host::GitHub => "X-Hub-Signature-256",
            Host::GitLab => "X-Gitlab-Token",
            Host::Gitea => "X-Gitea-Signature",
        }));
    }
    let content_type = header_text(&headers, "content-type").unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong_content_type",
            format!(
                "webhook deliveries must be `application/json`, not {:?} (set the content type to JSON in the \
                 webhook's settings)",
                if content_type.is_empty() {
                    "no Content-Type"
                } else {
                    content_type
                }
            ),
        ));
    }
    let limit = state.pipeline.config.max_webhook_bytes;
    let body: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the delivery is larger than the gate's limit of {limit} bytes (max_webhook_bytes)"
            ),
        )
    })?;
    let (event, delivery) = match host {
        Host::GitHub => {
            let sig = header_text(&headers, "x-hub-signature-256")
                .ok_or_else(|| unsigned("X-Hub-Signature-256"))?;
            if !auth::verify_github_signature(secret, &body, sig) {
                return Err(HttpError::new(
                    StatusCode::UNAUTHORIZED,
                    "bad_signature",
                    "X-Hub-Signature-256 does not match the body for the configured secret",
                ));
            }
            (
                header_text(&headers, "x-github-event").unwrap_or(""),
                header_text(&headers, "x-github-delivery"),
            )
        }
        Host::GitLab => {
            let token = header_text(&headers, "x-gitlab-token")
                .ok_or_else(|| unsigned("X-Gitlab-Token"))?;
            if !auth::verify_gitlab_token(secret, token) {
                return Err(HttpError::new(
                    StatusCode::UNAUTHORIZED,
                    "bad_signature",
                    "X-Gitlab-Token does not match the configured secret token",
                ));
            }
            (
                header_text(&headers, "x-gitlab-event").unwrap_or(""),
                header_text(&headers, "x-gitlab-event-uuid")
                    .or_else(|| header_text(&headers, "idempotency-key")),
            )
        }
        Host::Gitea => {
            let sig = header_text(&headers, "x-gitea-signature")
                .or_else(|| header_text(&headers, "x-forgejo-signature"))
                .ok_or_else(|| unsigned("X-Gitea-Signature"))?;
            if !auth::verify_gitea_signature(secret, &body, sig) {
                return Err(HttpError::new(
                    StatusCode::UNAUTHORIZED,
                    "bad_signature",
                    "X-Gitea-Signature does not match the body for the configured secret",
                ));
            }
            (
                header_text(&headers, "x-gitea-event")
                    .or_else(|| header_text(&headers, "x-forgejo-event"))
                    .unwrap_or(""),
                header_text(&headers, "x-gitea-delivery")
                    .or_else(|| header_text(&headers, "x-forgejo-delivery")),
            )
        }
    };
    let ignored = |why: String| {
        (
            "ignored",
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({ "ignored": why })),
            )
                .into_response(),
        )
    };
    if host == Host::GitHub && event == "ping" {
        return Ok((
            "ping",
            (StatusCode::OK, Json(serde_json::json!({"pong": true}))).into_response(),
        ));
    }
    let is_push = match host {
        Host::GitHub | Host::Gitea => event == "push",
        Host::GitLab => event == "Push Hook" || event == "Tag Push Hook",
    };
    if !is_push {
        return Ok(ignored(format!("event {event:?}")));
    }
    let push = webhooks::parse_push(host, &body)
        .map_err(|e| HttpError::bad_request(format!("the push event is not valid: {e}")))?;
    let mapping = match webhooks::route(hooks, &push) {
        Route::Ignore(why) => return Ok(ignored(why)),
        Route::Start(mapping) => mapping,
    };
    if push.after.len() < 7 || !push.after.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(HttpError::bad_request(format!(
            "`after` is not a commit id: {:?}",
            push.after
        )));
    }
    let delivery = format!(
        "{}:{}",
        host.as_str(),
        delivery
            .map(str::to_string)
            .unwrap_or_else(|| format!("push:{}:{}:{}", push.clone_url, push.git_ref, push.after))
    );
    let id = crate::store::new_run_id();
    let run = NewRun {
        id: id.clone(),
        app: mapping.map(|m| m.app.clone()).unwrap_or_default(),
        team: mapping.map(|m| m.team.clone()).unwrap_or_default(),
        source_kind: SourceKind::Git,
        source_ref: mapping
            .and_then(|m| m.clone_url.clone())
            .unwrap_or_else(|| push.clone_url.clone()),
        repository: push.full_name.clone(),
        commit: push.after.clone(),
        branch: push.short_ref().to_string(),
        author: push.pusher.clone(),
        commit_time: None,
    };
    // The audit entry is written in the same transaction as the run: an accepted delivery is always audited.
    let entry = AuditEntry {
        actor: format!("webhook:{}", host.as_str()),
        team: run.team.clone(),
        role: "webhook".into(),
        action: "webhook.push".into(),
        target: id.clone(),
        source_ip: peer.0.clone(),
        outcome: "accepted".into(),
        detail: format!(
            "{} {} at {} (delivery {delivery})",
            push.full_name, push.git_ref, push.after
        ),
    };
    match state
        .pipeline
        .store
        .record_delivery(&delivery, &run, &entry)
        .await
        .map_err(HttpError::internal)?
    {
        Some(existing) => Ok((
            "duplicate",
            (
                StatusCode::OK,
                Json(SubmissionAccepted {
                    status_url: format!("/api/v1/runs/{existing}"),
                    run_id: existing,
                    state: RunState::Queued,
                }),
            )
                .into_response(),
        )),
        None => {
            tracing::info!(run = %id, delivery = %delivery, host = host.as_str(), "webhook accepted");
            state.wake.notify_one();
            Ok(("accepted", accepted(&id)))
        }
    }
}

/// Parses a JSON body; the error names the field that was wrong and where (`after: invalid type ... at line 1 column 38`).
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, HttpError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." {
            String::new()
        } else {
            format!("field `{path}`: ")
        };
        HttpError::bad_request(format!("{what} is not valid: {field}{inner}"))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    app: Option<String>,
    team: Option<String>,
    state: Option<String>,
    limit: Option<i64>,
}

/// Reads `?app=&team=&state=&limit=` into a filter a caller may use: a developer's team filter is always its own.
pub(crate) fn runs_filter(
    who: &Caller,
    app: Option<String>,
    team: Option<String>,
    state: Option<String>,
    limit: Option<i64>,
) -> Result<RunFilter, HttpError> {
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let team = match (who.role, nonempty(team)) {
        (Role::Developer, Some(t)) if t != who.team => {
            return Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "a developer token sees only its own team's runs ({}), not team {t}'s",
                    who.team
                ),
            ));
        }
        (Role::Developer, _) => Some(who.team.clone()),
        (_, t) => t,
    };
    let state = match nonempty(state) {
        Some(s) => Some(s.parse::<RunState>().map_err(|_| {
            HttpError::bad_request(format!(
                "`state` must be one of {}, got {s:?}",
                RunState::ALL.map(|s| s.as_str()).join(", ")
            ))
        })?),
        None => None,
    };
    Ok(RunFilter {
        app: nonempty(app),
        team,
        state,
        limit: limit.unwrap_or(100),
    })
}

/// `GET /api/v1/runs?app=&team=&state=&limit=`: newest first; developers see their team's runs only.
async fn list_runs(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, HttpError> {
    let who = caller(&state, &headers)?;
    let Query(q) = q.map_err(|e| {
        HttpError::bad_request(format!("the query string is not valid: {}", e.body_text()))
    })?;
    let filter = runs_filter(&who, q.app, q.team, q.state, q.limit)?;
    let runs = state
        .pipeline
        .store
        .find_runs(&filter)
        .await
        .map_err(HttpError::internal)?;
    Ok(Json(serde_json::json!({ "runs": runs })).into_response())
}

/// The run, if the caller may see it; otherwise 404, so a token cannot probe other teams' run ids.
pub(crate) async fn visible_run(
    state: &AppState,
    who: &Caller,
    id: &str,
) -> Result<airlock_cli::api::RunView, HttpError> {
    let not_found = || {
        HttpError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("run {id} does not exist"),
        )
    };
    let view = match state.pipeline.store.run_view(id).await {
        Ok(v) => v,
        Err(crate::store::StoreError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(HttpError::internal(e)),
    };
    // An unmapped webhook run gets its team from airlock.toml at fetch; until then whoever has its id may look.
    if !view.team.is_empty() && !who.may_see_team(&view.team) {
        return Err(not_found());
    }
    Ok(view)
}

async fn get_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let who = caller(&state, &headers)?;
    Ok(Json(visible_run(&state, &who, &id).await?).into_response())
}

async fn cancel_run(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let who = caller(&state, &headers)?;
    visible_run(&state, &who, &id).await?;
    if !state
        .pipeline
        .store
        .request_cancel(&id)
        .await
        .map_err(HttpError::internal)?
    {
        return Err(HttpError::new(
            StatusCode::CONFLICT,
            "finished",
            format!("run {id} has already finished"),
        ));
    }
    audit(
        &state,
        Some(&who),
        "",
        &peer,
        "run.cancel",
        &id,
        "accepted",
        String::new(),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"run_id": id, "cancel_requested": true})),
    )
        .into_response())
}

/// `GET /api/v1/runs/{id}/events`: the run's progress as server-sent events. `state` when the run's state
/// changes, `step` when a step starts or ends (data: the step as JSON), and a last `end` event with the whole
/// run when it reaches a terminal state; then the stream closes.
async fn run_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let who = caller(&state, &headers)?;
    visible_run(&state, &who, &id).await?;
    struct Cursor {
        state: AppState,
        id: String,
        seen: std::collections::HashMap<String, String>,
        last_state: Option<RunState>,
        pending: std::collections::VecDeque<Event>,
        done: bool,
    }
    let cursor = Cursor {
        state,
        id,
        seen: Default::default(),
        last_state: None,
        pending: Default::default(),
        done: false,
    };
    let stream = futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(ev) = c.pending.pop_front() {
                return Some((Ok::<Event, std::convert::Infallible>(ev), c));
            }
            if c.done {
                return None;
            }
            let view = match c.state.pipeline.store.run_view(&c.id).await {
                Ok(v) => v,
                Err(e) => {
                    c.pending
                        .push_back(Event::default().event("error").data(e.to_string()));
                    c.done = true;
                    continue;
                }
            };
            for step in &view.steps {
                let key = format!("{:?}", step.state);
                if c.seen.get(&step.name) != Some(&key) {
                    c.seen.insert(step.name.clone(), key);
                    if let Ok(ev) = Event::default().event("step").json_data(step) {
                        c.pending.push_back(ev);
                    }
                }
            }
            if c.last_state != Some(view.state) {
                c.last_state = Some(view.state);
                c.pending
                    .push_back(Event::default().event("state").data(view.state.as_str()));
            }
            if view.state.is_terminal() {
                if let Ok(ev) = Event::default().event("end").json_data(&view) {
                    c.pending.push_back(ev);
                }
                c.done = true;
            } else if c.pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// `GET /api/v1/audit?after=SEQ&limit=N` (admin-only): audit entries as JSON lines, oldest first.
async fn audit_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, HttpError> {
    require_role(&state, &headers, Role::Admin)?;
    let Query(q) = q.map_err(|e| {
        HttpError::bad_request(format!("the query string is not valid: {}", e.body_text()))
    })?;
    let records = state
        .pipeline
        .store
        .audit_entries(
            q.after.unwrap_or(0),
            q.limit.unwrap_or(1000).clamp(1, 10_000),
        )
        .await
        .map_err(HttpError::internal)?;
    let mut out = String::new();
    for r in records {
        out.push_str(&serde_json::to_string(&r).map_err(HttpError::internal)?);
        out.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response())
}

/// The body of `POST /api/v1/waivers`: the fields of a `[[waiver]]` table of `waivers.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWaiver {
    id: String,
    package: String,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    app: Option<String>,
    expires: String,
    reason: String,
    approver: String,
}

fn waiver_error(e: airlock_policy::PolicyError) -> HttpError {
    use airlock_policy::PolicyError as E;
    match e {
        E::InvalidWaiver { .. } => {
            HttpError::new(StatusCode::BAD_REQUEST, "invalid_waiver", e.to_string())
        }
        E::WaiverExists { .. } => {
            HttpError::new(StatusCode::CONFLICT, "waiver_exists", e.to_string())
        }
        E::WaiverInFile { .. } => {
            HttpError::new(StatusCode::CONFLICT, "waiver_in_file", e.to_string())
        }
        E::WaiverNotFound(_) => HttpError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
        other => HttpError::internal(other),
    }
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// `GET /api/v1/waivers`: every waiver (the reviewed file's and the API's) with its key, origin and whether it
/// applies today.
async fn list_waivers(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    // admin-only.
    require_role(&state, &headers, Role::Admin)?;
    let waivers = state.pipeline.waivers.list(today());
    Ok(Json(serde_json::json!({ "waivers": waivers })).into_response())
}

/// `POST /api/v1/waivers`: adds a waiver (expiry at most 90 days ahead, every field but team/app required); it
/// applies from the next gate step on and survives a restart. 201 with the listed waiver.
async fn add_waiver(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    // admin-only.
    let caller = require_role(&state, &headers, Role::Admin)?;
    let new: NewWaiver = parse_json(&body, "the waiver")?;
    let waiver = airlock_policy::Waiver {
        id: new.id,
        package: new.package,
        team: new.team,
        app: new.app,
        expires: new.expires,
        reason: new.reason,
        approver: new.approver,
    };
    let listed = state
        .pipeline
        .waivers
        .add(waiver, today())
        .map_err(waiver_error)?;
    tracing::info!(key = %listed.key, id = %listed.waiver.id, package = %listed.waiver.package,
                   approver = %listed.waiver.approver, by_team = %caller, "waiver added");
    let w = &listed.waiver;
    audit(
        &state,
        Some(&caller),
        "",
        &peer,
        "waiver.add",
        &listed.key,
        "accepted",
        format!(
            "{} for {}{}{} until {}, approved by {}: {}",
            w.id,
            w.package,
            w.team
                .as_deref()
                .map(|t| format!(" team {t}"))
                .unwrap_or_default(),
            w.app
                .as_deref()
                .map(|a| format!(" app {a}"))
                .unwrap_or_default(),
            w.expires,
            w.approver,
            w.reason
        ),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(listed)).into_response())
}

/// `DELETE /api/v1/waivers/{key}`: removes a waiver the API added (those of the reviewed file are removed there).
async fn remove_waiver(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Response, HttpError> {
    // admin-only.
    let caller = require_role(&state, &headers, Role::Admin)?;
    let removed = state.pipeline.waivers.remove(&key).map_err(waiver_error)?;
    tracing::info!(%key, id = %removed.id, package = %removed.package, by_team = %caller, "waiver removed");
    audit(
        &state,
        Some(&caller),
        "",
        &peer,
        "waiver.remove",
        &key,
        "accepted",
        format!(
            "{} for {} (expiring {}, approved by {})",
            removed.id, removed.package, removed.expires, removed.approver
        ),
    )
    .await?;
    Ok(Json(serde_json::json!({ "removed": key, "waiver": removed })).into_response())
}
