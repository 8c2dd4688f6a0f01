//! The HTTP API: intake (submissions, webhooks), runs, health.
//!
//! Accepted means stored: every 202 is answered only after the submission is in the store (and its tarball on
//! disk, synced). Errors are `ApiError` JSON sentences with the right status.

use crate::auth;
use crate::pipeline::Pipeline;
use crate::store::{NewRun, SourceKind};
use airlock_cli::api::{ApiError, RunState, SubmissionAccepted};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::Notify;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    /// Wakes the worker when a run is queued.
    pub wake: Arc<Notify>,
}

/// An API error: status plus the sentence the caller reads.
pub struct HttpError(StatusCode, ApiError);

impl HttpError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        HttpError(
            status,
            ApiError {
                error: message.into(),
                code: code.into(),
            },
        )
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    fn internal(e: impl std::fmt::Display) -> Self {
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
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/submissions", post(submit))
        .route("/api/v1/hooks/github", post(github_hook))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}", get(get_run))
        .route("/api/v1/runs/{id}/cancel", post(cancel_run))
        .fallback(|| async {
            HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

fn bearer_team(state: &AppState, headers: &HeaderMap) -> Result<String, HttpError> {
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
    auth::team_for_token(&state.pipeline.config.teams, token.trim())
        .map(str::to_string)
        .ok_or_else(|| {
            unauthorized("this token is not known to the gate; ask an operator for a team token")
        })
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

fn new_run_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// `POST /api/v1/submissions`: multipart with `repository`, `commit`, `branch`, `author`, optional `commit_time`,
/// and the gzip tarball as `source`.
async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Result<Response, HttpError> {
    let team = bearer_team(&state, &headers)?;
    let id = new_run_id();
    let sources = state.pipeline.config.sources_dir();
    std::fs::create_dir_all(&sources).map_err(HttpError::internal)?;
    let final_path = sources.join(format!("{id}.tar.gz"));
    let partial_path = sources.join(format!(".{id}.partial"));
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
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial_path);
        return Err(e);
    }
    let commit_time = match fields.get("commit_time") {
        Some(t) => Some(t.trim().parse::<i64>().map_err(|_| {
            HttpError::bad_request(format!("`commit_time` must be unix seconds, got {t:?}"))
        })?),
        None => None,
    };
    std::fs::rename(&partial_path, &final_path).map_err(HttpError::internal)?;
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
    if let Err(e) = state.pipeline.store.insert_run(&run).await {
        let _ = std::fs::remove_file(&final_path);
        return Err(HttpError::internal(e));
    }
    tracing::info!(run = %id, team = %run.team, "submission accepted");
    state.wake.notify_one();
    Ok(accepted(&id))
}

#[derive(Deserialize)]
struct PushEvent {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    repository: PushRepository,
    #[serde(default)]
    pusher: Option<Named>,
    #[serde(default)]
    deleted: bool,
}

#[derive(Deserialize)]
struct PushRepository {
    clone_url: String,
    #[serde(default)]
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

/// `POST /api/v1/hooks/github`: a push event, signed with the shared secret.
async fn github_hook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let secret = state
        .pipeline
        .config
        .webhooks
        .github_secret
        .as_deref()
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::NOT_FOUND,
                "not_configured",
                "GitHub webhooks are not configured on this gate",
            )
        })?;
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::UNAUTHORIZED,
                "unsigned",
                "the delivery has no X-Hub-Signature-256 header",
            )
        })?;
    if !auth::verify_github_signature(secret, &body, signature) {
        return Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "X-Hub-Signature-256 does not match the body for the configured secret",
        ));
    }
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if event == "ping" {
        return Ok((StatusCode::OK, Json(serde_json::json!({"pong": true}))).into_response());
    }
    if event != "push" {
        return Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"ignored": format!("event {event:?}")})),
        )
            .into_response());
    }
    let push: PushEvent = parse_json(&body, "the push event")?;
    if push.deleted || push.after.chars().all(|c| c == '0') {
        return Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"ignored": "branch deletion"})),
        )
            .into_response());
    }
    if push.after.len() < 7 || !push.after.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(HttpError::bad_request(format!(
            "`after` is not a commit id: {:?}",
            push.after
        )));
    }
    let delivery = headers
        .get("x-github-delivery")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| format!("push:{}:{}", push.repository.clone_url, push.after));
    let id = new_run_id();
    let run = NewRun {
        id: id.clone(),
        app: String::new(),
        team: String::new(),
        source_kind: SourceKind::Git,
        source_ref: push.repository.clone_url.clone(),
        repository: push
            .repository
            .full_name
            .clone()
            .unwrap_or_else(|| push.repository.clone_url.clone()),
        commit: push.after.clone(),
        branch: push
            .git_ref
            .strip_prefix("refs/heads/")
            .unwrap_or(&push.git_ref)
            .to_string(),
        author: push.pusher.map(|p| p.name).unwrap_or_default(),
        commit_time: None,
    };
    match state
        .pipeline
        .store
        .insert_delivery_run(&delivery, &run)
        .await
        .map_err(HttpError::internal)?
    {
        Some(existing) => Ok((
            StatusCode::OK,
            Json(SubmissionAccepted {
                status_url: format!("/api/v1/runs/{existing}"),
                run_id: existing,
                state: RunState::Queued,
            }),
        )
            .into_response()),
        None => {
            tracing::info!(run = %id, delivery = %delivery, "webhook accepted");
            state.wake.notify_one();
            Ok(accepted(&id))
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
struct RunsQuery {
    app: Option<String>,
}

async fn list_runs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RunsQuery>,
) -> Result<Response, HttpError> {
    let team = bearer_team(&state, &headers)?;
    let runs = state
        .pipeline
        .store
        .list_runs(q.app.as_deref(), Some(&team), 100)
        .await
        .map_err(HttpError::internal)?;
    Ok(Json(serde_json::json!({ "runs": runs })).into_response())
}

async fn get_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let team = bearer_team(&state, &headers)?;
    let not_found = || {
        HttpError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("run {id} does not exist"),
        )
    };
    let view = match state.pipeline.store.run_view(&id).await {
        Ok(v) => v,
        Err(crate::store::StoreError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(HttpError::internal(e)),
    };
    // Webhook runs get their team at fetch; until then any team may look. Otherwise a team sees only its runs.
    if !view.team.is_empty() && view.team != team {
        return Err(not_found());
    }
    Ok(Json(view).into_response())
}

async fn cancel_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let team = bearer_team(&state, &headers)?;
    let view = state.pipeline.store.run_view(&id).await.map_err(|_| {
        HttpError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("run {id} does not exist"),
        )
    })?;
    if !view.team.is_empty() && view.team != team {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("run {id} does not exist"),
        ));
    }
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
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"run_id": id, "cancel_requested": true})),
    )
        .into_response())
}
