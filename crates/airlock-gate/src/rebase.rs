//! Rebase as a release: put an app's published image on a newer approved base of the same lineage without
//! rebuilding it, then run scan, gate, sign and publish on the result, so it crosses the boundary as a new
//! release (next sequence, same commit and source, new image digest, attestations and manifests made anew).
//!
//! The layer surgery is `airlock_oci::rebase_image`; this module decides what may be rebased onto what and
//! records it. The rebased run is stored with its fetch and build steps already done (they are the rebase),
//! so the ordinary pipeline takes it from the scan on, and a restarted gate resumes it like any other run.
//!
//! Bases are named as the platform config names them: a stack's run image (its *lineage*, e.g. `static`, a
//! tag in the bases store), optionally pinned (`static@sha256:...`), or a bare digest in the bases store.

use crate::config::GateConfig;
use crate::pipeline::Pipeline;
use crate::store::{NewRun, RunFilter, RunRecord, StoreError};
use airlock_cli::api::RunState;
use airlock_oci::{Digest, OciLayout, RebaseReport};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

/// How long a rebase driven by the caller holds its run before a gate worker may take it over.
const LEASE_SECS: i64 = 15 * 60;

/// A base image as the platform names it: its lineage (the stack's run image name) and its digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BaseRef {
    /// The lineage: the run image name of the stack that approves it (empty when nothing names it).
    pub name: String,
    /// The base's manifest digest.
    pub digest: Digest,
}

impl std::fmt::Display for BaseRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name.is_empty() {
            write!(f, "{}", self.digest)
        } else {
            write!(f, "{}@{}", self.name, self.digest)
        }
    }
}

/// What to rebase, as the CLI and `POST /api/v1/rebases` take it.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RebaseRequest {
    /// The app whose newest published release is rebased.
    #[serde(default)]
    pub app: Option<String>,
    /// A published run to rebase instead of the app's newest.
    #[serde(default)]
    pub run: Option<String>,
    /// The base the image is on, when the gate cannot tell (default: the building run's record, then the
    /// image's `org.opencontainers.image.base.*` labels).
    #[serde(default)]
    pub from: Option<String>,
    /// The newer base: an approved run base of the same lineage.
    pub onto: String,
}

/// Why a rebase was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RebaseError {
    /// Neither an app nor a run was named.
    #[error("name what to rebase: an app or a run")]
    NothingNamed,
    /// The app has no published release.
    #[error("app {0:?} has no published release to rebase")]
    NoRelease(String),
    /// The named run is not a published release.
    #[error("run {run} is {state}: only a published release can be rebased")]
    NotPublished { run: String, state: String },
    /// A base reference that does not name an image of the bases store.
    #[error("base {reference:?}: {reason}")]
    Base { reference: String, reason: String },
    /// The platform does not allow this rebase (unapproved base, another lineage, nothing to do).
    #[error("{0}")]
    Refused(String),
    /// What the rebase needs from the earlier run is missing.
    #[error("run {run}: {message}")]
    Source { run: String, message: String },
    /// The gate's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing images failed.
    #[error("{context}: {source}")]
    Oci {
        context: String,
        source: airlock_oci::Error,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl RebaseError {
    /// Whether the request itself is at fault (refused, unknown base or app) rather than the gate.
    pub fn is_refusal(&self) -> bool {
        match self {
            RebaseError::Oci { source, .. } => {
                matches!(source, airlock_oci::Error::InvalidImage { .. })
            }
            RebaseError::Store(StoreError::NotFound(_)) => true,
            // What the earlier run left is missing or says nothing of its base: the request cannot be met as
            // asked (name the base with `from`, or rebase another release), the gate itself is fine.
            RebaseError::Source { .. } => true,
            RebaseError::Store(_) | RebaseError::Io { .. } => false,
            _ => true,
        }
    }
}

fn oci(context: impl Into<String>) -> impl FnOnce(airlock_oci::Error) -> RebaseError {
    let context = context.into();
    move |source| RebaseError::Oci { context, source }
}

/// A rebase recorded as a new run, ready for the pipeline's scan step.
#[derive(Clone, Debug, Serialize)]
pub struct PreparedRebase {
    /// The new run.
    pub run_id: String,
    /// The app.
    pub app: String,
    /// The published run whose image was rebased.
    pub from_run: String,
    /// That run's image.
    pub from_image: Digest,
    /// The rebased image (in the work store, and what the new release will carry).
    pub image: Digest,
    /// The base the image was on.
    pub old_base: BaseRef,
    /// The base it is on now.
    pub new_base: BaseRef,
    /// Base layers removed.
    pub old_base_layers: usize,
    /// Base layers put in their place.
    pub new_base_layers: usize,
    /// App layers kept unchanged.
    pub app_layers: usize,
}

/// How a rebase driven to the end went.
#[derive(Clone, Debug, Serialize)]
pub struct RebaseOutcome {
    /// What was rebased.
    pub rebase: PreparedRebase,
    /// The run's final state (`published` when the new release crossed the boundary).
    pub state: RunState,
    /// The new release's sequence, once allocated.
    pub sequence: Option<u64>,
    /// Why it was rejected or failed.
    pub error: Option<String>,
}

/// Resolves a base reference (`NAME`, `NAME@sha256:...` or `sha256:...`) in the bases store.
///
/// A name is the tag of the bases store (and the lineage); a bare digest takes the name of the stack that
/// approves it, or else of a bases-store tag pointing at it.
pub async fn resolve_base(config: &GateConfig, reference: &str) -> Result<BaseRef, RebaseError> {
    let bad = |reason: String| RebaseError::Base {
        reference: reference.to_string(),
        reason,
    };
    let bases = OciLayout::open(&config.bases_dir()).map_err(|e| {
        bad(format!(
            "the bases store {} cannot be opened: {e}",
            config.bases_dir().display()
        ))
    })?;
    let (name, lookup) = match reference.split_once('@') {
        Some((name, digest)) => (Some(name.to_string()), digest),
        None if reference.starts_with("sha256:") => (None, reference),
        None => (Some(reference.to_string()), reference),
    };
    if name.as_deref() == Some("") {
        return Err(bad("the name before '@' is empty".into()));
    }
    let image = airlock_oci::read_image(&bases, lookup).await.map_err(|e| {
        bad(format!(
            "not in the bases store {}: {e}",
            bases.path().display()
        ))
    })?;
    let name = match name {
        Some(n) => n,
        None => lineage_of(config, &bases, &image.digest).await,
    };
    Ok(BaseRef {
        name,
        digest: image.digest,
    })
}

/// The lineage of a base digest nothing named: the stack approving it, else a bases-store tag pointing at it.
async fn lineage_of(config: &GateConfig, bases: &OciLayout, digest: &Digest) -> String {
    if let Some(stack) = config.stacks.iter().find(|s| &s.run_image_digest == digest) {
        return stack.run_image.clone();
    }
    for tag in bases.list_tags_sync().unwrap_or_default() {
        if let Ok(image) = airlock_oci::read_image(bases, &tag).await
            && &image.digest == digest
        {
            return tag;
        }
    }
    String::new()
}

/// The base a run's image was built on: the run's build record, else the image's base labels.
async fn recorded_base(
    config: &GateConfig,
    run: &RunRecord,
    image_config: &airlock_oci::ImageConfig,
) -> Result<BaseRef, RebaseError> {
    let labels = image_config.config.labels.clone().unwrap_or_default();
    let digest = run
        .outputs
        .pointer("/build/base/digest")
        .and_then(Value::as_str)
        .or_else(|| labels.get(airlock_oci::BASE_DIGEST_LABEL).map(String::as_str))
        .ok_or_else(|| RebaseError::Source {
            run: run.id.clone(),
            message: format!(
                "neither the run nor its image ({} label) says which base it was built on; name it with `from`",
                airlock_oci::BASE_DIGEST_LABEL
            ),
        })?;
    let digest = Digest::parse(digest).map_err(|e| RebaseError::Source {
        run: run.id.clone(),
        message: format!("its recorded base digest is not valid: {e}"),
    })?;
    let name = run
        .outputs
        .pointer("/build/base/name")
        .and_then(Value::as_str)
        .or_else(|| labels.get(airlock_oci::BASE_NAME_LABEL).map(String::as_str))
        .unwrap_or("")
        .to_string();
    let name = if name.is_empty() {
        match OciLayout::open(&config.bases_dir()) {
            Ok(bases) => lineage_of(config, &bases, &digest).await,
            Err(_) => String::new(),
        }
    } else {
        name
    };
    Ok(BaseRef { name, digest })
}

/// Checks that `new` is an approved run base of `old`'s lineage (and not `old` itself).
pub fn check_approved(
    config: &GateConfig,
    old: &BaseRef,
    new: &BaseRef,
) -> Result<(), RebaseError> {
    let approving: Vec<&str> = config
        .stacks
        .iter()
        .filter(|s| s.run_image_digest == new.digest)
        .map(|s| s.run_image.as_str())
        .collect();
    if approving.is_empty() {
        let approved: Vec<String> = config
            .stacks
            .iter()
            .map(|s| format!("{}@{}", s.run_image, s.run_image_digest))
            .collect();
        return Err(RebaseError::Refused(format!(
            "base {new} is not an approved run base; the platform config approves {}",
            if approved.is_empty() {
                "none".to_string()
            } else {
                approved.join(", ")
            }
        )));
    }
    if old.name.is_empty() {
        return Err(RebaseError::Refused(format!(
            "cannot tell the lineage of the image's base {}; name it with `from` as NAME@DIGEST",
            old.digest
        )));
    }
    if !approving.contains(&old.name.as_str()) {
        return Err(RebaseError::Refused(format!(
            "base {new} is approved as {}, but the image is built on {old} of lineage {:?}; \
             a rebase stays within one lineage",
            approving.join(", "),
            old.name
        )));
    }
    if old.digest == new.digest {
        return Err(RebaseError::Refused(format!(
            "the image is already on {new}; nothing to rebase"
        )));
    }
    Ok(())
}

/// The published run a request names: the given run, or the app's newest release.
async fn source_run(pipeline: &Pipeline, req: &RebaseRequest) -> Result<RunRecord, RebaseError> {
    let run = match (&req.run, &req.app) {
        (Some(id), _) => pipeline.store.get_run(id).await?,
        (None, Some(app)) => {
            let newest = pipeline
                .store
                .find_runs(&RunFilter {
                    app: Some(app.clone()),
                    team: None,
                    state: Some(RunState::Published),
                    limit: 1,
                })
                .await?;
            let view = newest
                .first()
                .ok_or_else(|| RebaseError::NoRelease(app.clone()))?;
            pipeline.store.get_run(&view.id).await?
        }
        (None, None) => return Err(RebaseError::NothingNamed),
    };
    if run.state != RunState::Published {
        return Err(RebaseError::NotPublished {
            run: run.id,
            state: run.state.as_str().to_string(),
        });
    }
    if let Some(app) = &req.app
        && app != &run.app
    {
        return Err(RebaseError::Refused(format!(
            "run {} is a release of {:?}, not of {app:?}",
            run.id, run.app
        )));
    }
    Ok(run)
}

/// Rebases the image a request names onto its new base in the work store and records the result as a new
/// run at the scan step (fetch and build marked done). With `lease_owner` the run is leased to the caller,
/// who then drives it (see [`rebase_release`]); without, a gate worker picks it up.
pub async fn prepare_rebase(
    pipeline: &Pipeline,
    req: &RebaseRequest,
    by: &str,
    lease_owner: Option<&str>,
) -> Result<PreparedRebase, RebaseError> {
    let config = &pipeline.config;
    let run = source_run(pipeline, req).await?;
    let from_image = run
        .outputs
        .pointer("/image/digest")
        .and_then(Value::as_str)
        .and_then(|d| Digest::parse(d).ok())
        .ok_or_else(|| RebaseError::Source {
            run: run.id.clone(),
            message: "it recorded no image digest".into(),
        })?;
    let work = OciLayout::open(&config.work_layout_dir()).map_err(oci("opening the work store"))?;
    let image = airlock_oci::read_image(&work, from_image.as_str())
        .await
        .map_err(oci(format!("reading {}'s image {from_image}", run.id)))?;
    let old_base = match &req.from {
        Some(reference) => resolve_base(config, reference).await?,
        None => recorded_base(config, &run, &image.config).await?,
    };
    let new_base = resolve_base(config, &req.onto).await?;
    check_approved(config, &old_base, &new_base)?;

    let id = crate::store::new_run_id();
    // The gate and sign steps read the descriptor from the run's source checkout: the new run gets a copy.
    let old_src = config.runs_dir().join(&run.id).join("src");
    let new_src = config.runs_dir().join(&id).join("src");
    if !old_src.is_dir() {
        return Err(RebaseError::Source {
            run: run.id.clone(),
            message: format!("its source checkout {} is gone", old_src.display()),
        });
    }
    {
        let (from, to) = (old_src.clone(), new_src.clone());
        tokio::task::spawn_blocking(move || copy_tree(&from, &to))
            .await
            .map_err(|e| RebaseError::Io {
                context: "copying the source checkout".into(),
                source: std::io::Error::other(e),
            })?
            .map_err(|source| RebaseError::Io {
                context: format!("copying {} to {}", old_src.display(), new_src.display()),
                source,
            })?;
    }
    let result = rebase_in_work(
        pipeline,
        &run,
        &work,
        &from_image,
        &old_base,
        &new_base,
        &id,
        by,
        lease_owner,
    )
    .await;
    if result.is_err() {
        // Nothing refers to the copy: leave no half-made run directory behind.
        let _ = std::fs::remove_dir_all(config.runs_dir().join(&id));
    }
    result
}

#[allow(clippy::too_many_arguments)] // the pieces `prepare_rebase` checked, passed on as they are
async fn rebase_in_work(
    pipeline: &Pipeline,
    run: &RunRecord,
    work: &OciLayout,
    from_image: &Digest,
    old_base: &BaseRef,
    new_base: &BaseRef,
    id: &str,
    by: &str,
    lease_owner: Option<&str>,
) -> Result<PreparedRebase, RebaseError> {
    let bases =
        OciLayout::open(&pipeline.config.bases_dir()).map_err(oci("opening the bases store"))?;
    let tag = format!("rebase-{id}");
    let report: RebaseReport = airlock_oci::rebase_image(
        (work, from_image.as_str()),
        (&bases, old_base.digest.as_str()),
        (&bases, new_base.digest.as_str()),
        work,
        Some(&tag),
    )
    .await
    .map_err(oci(format!(
        "rebasing {}'s image {from_image} from {old_base} onto {new_base}",
        run.app
    )))?;
    let prepared = PreparedRebase {
        run_id: id.to_string(),
        app: run.app.clone(),
        from_run: run.id.clone(),
        from_image: from_image.clone(),
        image: report.digest.clone(),
        old_base: old_base.clone(),
        new_base: new_base.clone(),
        old_base_layers: report.old_base_layers,
        new_base_layers: report.new_base_layers,
        app_layers: report.app_layers,
    };

    let mut build = run.outputs.get("build").cloned().unwrap_or(json!({}));
    if let Some(b) = build.as_object_mut() {
        b.insert(
            "base".into(),
            json!({ "name": new_base.name, "digest": new_base.digest.to_string() }),
        );
    }
    let reference = format!(
        "{}/{}@{}",
        pipeline.config.boundary.reference_prefix, run.app, report.digest
    );
    let outputs = json!({
        "source": run.outputs.get("source").cloned().unwrap_or(json!({})),
        "descriptor": run.outputs.get("descriptor").cloned().unwrap_or(Value::Null),
        "image": { "reference": reference, "digest": report.digest.to_string() },
        "build": build,
        "rebase": {
            "from_run": run.id,
            "from_image": from_image.to_string(),
            "old_base": { "name": old_base.name, "digest": old_base.digest.to_string() },
            "new_base": { "name": new_base.name, "digest": new_base.digest.to_string() },
            "by": by,
        },
    });
    let new_run = NewRun {
        id: id.to_string(),
        app: run.app.clone(),
        team: run.team.clone(),
        source_kind: run.source_kind.clone(),
        source_ref: run.source_ref.clone(),
        repository: run.repository.clone(),
        commit: run.commit.clone(),
        branch: run.branch.clone(),
        author: run.author.clone(),
        commit_time: None,
    };
    let fetch_detail = format!("rebase of run {}: its source at {}", run.id, run.commit);
    let build_detail = format!(
        "rebased {} from {old_base} onto {new_base}: {} base layers replaced by {}, {} app layers kept",
        from_image, report.old_base_layers, report.new_base_layers, report.app_layers
    );
    pipeline
        .store
        .insert_derived_run(
            &new_run,
            RunState::Scanning,
            &outputs,
            &[("fetch", &fetch_detail), ("build", &build_detail)],
            lease_owner.map(|o| (o, LEASE_SECS)),
        )
        .await?;
    if let Some(builder) = &run.builder {
        pipeline.store.set_builder(id, builder).await?;
    }
    tracing::info!(run = id, app = %run.app, from_run = %run.id, %old_base, %new_base, by, "rebase recorded");
    Ok(prepared)
}

/// Rebases and drives the new run here, through scan, gate, sign and publish, to its end.
///
/// The run is leased to this caller while it runs, so a gate serving the same store does not take it too.
pub async fn rebase_release(
    pipeline: &Arc<Pipeline>,
    req: &RebaseRequest,
    by: &str,
) -> Result<RebaseOutcome, RebaseError> {
    let owner = format!("rebase-{}", uuid::Uuid::new_v4().simple());
    let prepared = prepare_rebase(pipeline, req, by, Some(&owner)).await?;
    let id = prepared.run_id.clone();
    let span = tracing::info_span!("run", run = %id);
    let driven = tracing::Instrument::instrument(pipeline.process(&id), span).await;
    pipeline.store.release_lease(&id).await?;
    if let Err(e) = driven {
        return Err(RebaseError::Source {
            run: id,
            message: format!("the pipeline stopped: {e:#}"),
        });
    }
    let run = pipeline.store.get_run(&id).await?;
    Ok(RebaseOutcome {
        rebase: prepared,
        state: run.state,
        sequence: run
            .outputs
            .pointer("/release/sequence")
            .or_else(|| run.outputs.get("release_sequence"))
            .and_then(Value::as_u64),
        error: run.error_message,
    })
}

/// Every app whose newest published release is built on `base`: the runs to rebase for `--all-on`.
pub async fn releases_on(
    pipeline: &Pipeline,
    base: &BaseRef,
) -> Result<Vec<RunRecord>, RebaseError> {
    let mut out = Vec::new();
    for app in pipeline.store.apps().await? {
        let Some(newest) = app.published.first() else {
            continue;
        };
        let run = pipeline.store.get_run(&newest.id).await?;
        let on = run
            .outputs
            .pointer("/build/base/digest")
            .and_then(Value::as_str);
        if on == Some(base.digest.as_str()) {
            out.push(run);
        }
    }
    Ok(out)
}

/// The body of `POST /api/v1/rebases`: one release (`app` or `run`, optional `from`) or, with `all_on`, the
/// newest release of every app built on that base; `onto` either way.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RebaseBody {
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    run: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    all_on: Option<String>,
    onto: String,
}

fn http_error(e: &RebaseError) -> crate::http::HttpError {
    use crate::http::HttpError;
    use axum::http::StatusCode;
    match e {
        RebaseError::Store(StoreError::NotFound(_)) | RebaseError::NoRelease(_) => {
            HttpError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
        }
        RebaseError::NotPublished { .. } => {
            HttpError::new(StatusCode::CONFLICT, "not_published", e.to_string())
        }
        e if e.is_refusal() => HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rebase_refused",
            e.to_string(),
        ),
        e => HttpError::internal(e),
    }
}

/// `POST /api/v1/rebases` (admin-only): rebases one release, or with `all_on` every app's newest release on
/// that base, onto `onto`; each becomes a new run at the scan step that the worker takes through gate, sign
/// and publish. 202 with the runs (and, for `all_on`, the apps that could not be rebased and why); 422 when
/// the platform refuses the rebase (unapproved base, another lineage), 404 for an unknown app or run.
pub(crate) async fn post_rebase(
    axum::extract::State(state): axum::extract::State<crate::http::AppState>,
    peer: crate::http::Peer,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::response::Response, crate::http::HttpError> {
    use axum::response::IntoResponse;
    let who = crate::http::require_role(&state, &headers, crate::config::Role::Admin)?;
    let body: RebaseBody = serde_json::from_slice(&body).map_err(|e| {
        crate::http::HttpError::bad_request(format!("the rebase request is not valid: {e}"))
    })?;
    let by = who.name.clone();
    let pipeline = &state.pipeline;
    let mut runs = Vec::new();
    let mut failed = Vec::new();
    let target;
    match &body.all_on {
        Some(base) => {
            if body.app.is_some() || body.run.is_some() || body.from.is_some() {
                return Err(crate::http::HttpError::bad_request(
                    "`all_on` rebases every app on that base: give it without `app`, `run` or `from`",
                ));
            }
            target = format!("all-on:{base}");
            let base = resolve_base(&pipeline.config, base)
                .await
                .map_err(|e| http_error(&e))?;
            for run in releases_on(pipeline, &base)
                .await
                .map_err(|e| http_error(&e))?
            {
                let req = RebaseRequest {
                    app: Some(run.app.clone()),
                    run: Some(run.id.clone()),
                    from: Some(base.to_string()),
                    onto: body.onto.clone(),
                };
                match prepare_rebase(pipeline, &req, &by, None).await {
                    Ok(p) => runs.push(p),
                    Err(e) => failed
                        .push(json!({ "app": run.app, "run": run.id, "error": e.to_string() })),
                }
            }
        }
        None => {
            let req = RebaseRequest {
                app: body.app.clone(),
                run: body.run.clone(),
                from: body.from.clone(),
                onto: body.onto.clone(),
            };
            target = req
                .app
                .clone()
                .or_else(|| req.run.clone())
                .unwrap_or_default();
            match prepare_rebase(pipeline, &req, &by, None).await {
                Ok(p) => runs.push(p),
                Err(e) => {
                    crate::http::audit(
                        &state,
                        Some(&who),
                        "",
                        &peer,
                        "rebase",
                        &target,
                        "refused",
                        e.to_string(),
                    )
                    .await?;
                    return Err(http_error(&e));
                }
            }
        }
    }
    let detail = format!(
        "onto {}: runs {}{}",
        body.onto,
        runs.iter()
            .map(|r| r.run_id.as_str())
            .collect::<Vec<_>>()
            .join(","),
        if failed.is_empty() {
            String::new()
        } else {
            format!("; {} failed", failed.len())
        }
    );
    crate::http::audit(
        &state,
        Some(&who),
        "",
        &peer,
        "rebase",
        &target,
        "accepted",
        detail,
    )
    .await?;
    state.wake.notify_one();
    Ok((
        axum::http::StatusCode::ACCEPTED,
        axum::Json(json!({ "runs": runs, "failed": failed })),
    )
        .into_response())
}

/// Copies a directory tree (files, directories, symlinks as links), creating `to`.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(stacks: &[(&str, &Digest)]) -> GateConfig {
        let mut config: GateConfig =
            toml::from_str("data_dir = \"/tmp/x\"").expect("a minimal config is valid");
        config.stacks = stacks
            .iter()
            .map(|(name, digest)| airlock_build::Stack {
                name: format!("stack-{name}"),
                builder_image: None,
                builder_image_digest: None,
                run_image: name.to_string(),
                run_image_digest: (*digest).clone(),
                env: Default::default(),
                timeout_secs: 60,
                memory_mb: 512,
                cpus: 1.0,
                network: false,
            })
            .collect();
        config
    }

    fn base(name: &str, seed: &[u8]) -> BaseRef {
        BaseRef {
            name: name.into(),
            digest: Digest::of(seed),
        }
    }

    #[test]
    fn new_base_must_be_approved_and_of_the_same_lineage() {
        let (v1, v2, other) = (
            base("static", b"1"),
            base("static", b"2"),
            base("debian", b"3"),
        );
        let config = config_with(&[("static", &v2.digest), ("debian", &other.digest)]);
        check_approved(&config, &v1, &v2).expect("v2 is the approved static base");

        let unapproved = base("static", b"9");
        let e = check_approved(&config, &v1, &unapproved)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an approved run base"), "{e}");
        assert!(
            e.contains(&format!("static@{}", v2.digest)),
            "names what is approved: {e}"
        );

        let e = check_approved(&config, &v1, &other)
            .unwrap_err()
            .to_string();
        assert!(e.contains("one lineage") && e.contains("\"static\""), "{e}");

        let e = check_approved(&config, &v2, &v2).unwrap_err().to_string();
        assert!(e.contains("already on"), "{e}");

        let nameless = BaseRef {
            name: String::new(),
            digest: v1.digest.clone(),
        };
        let e = check_approved(&config, &nameless, &v2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot tell the lineage"), "{e}");
    }

    #[test]
    fn copy_tree_keeps_files_dirs_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("a");
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::write(from.join("airlock.toml"), "x").unwrap();
        std::fs::write(from.join("sub/f"), "y").unwrap();
        std::os::unix::fs::symlink("sub/f", from.join("link")).unwrap();
        let to = dir.path().join("b/src");
        copy_tree(&from, &to).unwrap();
        assert_eq!(std::fs::read_to_string(to.join("sub/f")).unwrap(), "y");
        assert_eq!(
            std::fs::read_link(to.join("link")).unwrap(),
            Path::new("sub/f")
        );
    }
}
