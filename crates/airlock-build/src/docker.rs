//! The Docker builder: runs the build command in a container of the stack's builder image (no network unless
//! the stack allows it, memory and CPU limits), uploads the source to `/workspace`, downloads only the
//! declared artifacts, and always removes the container.

use std::path::Path;
use std::time::Duration;

use airlock_descriptor::Artifact;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures::StreamExt;

use crate::host::ERROR_TAIL_CHARS;
use crate::log::{MAX_LOG_BYTES, TailBuf, tail};
use crate::source::{UnpackLimits, unpack_tar};
use crate::workspace::{artifact_rel, artifact_to, collect_artifact};
use crate::{BuildError, SourceError, Stack};

/// Most bytes of one downloaded artifact archive.
const MAX_ARTIFACT_BYTES: u64 = 2 << 30;

/// What the Docker builder produced besides the artifacts.
pub(crate) struct DockerRun {
    /// Build output, tail-limited.
    pub log: String,
    /// The builder image's id in the engine (`sha256:` of its config).
    pub image_id: String,
}

/// One build to run in a container of the stack's builder image.
pub(crate) struct DockerJob<'a> {
    pub stack: &'a Stack,
    /// The descriptor's build command, run with `sh -c` in `/workspace`.
    pub command: &'a str,
    /// The source tree uploaded as `/workspace`.
    pub src_dir: &'a Path,
    pub env: &'a [(String, String)],
    pub artifacts: &'a [Artifact],
    /// Where the declared artifacts are written.
    pub staging: &'a Path,
    /// Scratch space for downloaded archives.
    pub scratch: &'a Path,
}

/// Runs the build in a fresh container and collects the job's artifacts into its staging directory; the
/// container is removed whatever happens.
pub(crate) async fn run_docker(
    docker: &Docker,
    job: &DockerJob<'_>,
) -> Result<DockerRun, BuildError> {
    let DockerJob {
        stack,
        command,
        src_dir,
        env,
        artifacts,
        staging,
        scratch,
    } = *job;
    let image = stack.builder_image.as_deref().ok_or_else(|| {
        BuildError::Invalid(format!(
            "stack {} has no builder image for a Docker build",
            stack.name
        ))
    })?;
    let inspect = docker.inspect_image(image).await.map_err(|e| {
        BuildError::docker(format!("builder image {image} not in the Docker Engine"), e)
    })?;
    let image_id = inspect.id.unwrap_or_else(|| image.to_string());
    if let Some(pinned) = &stack.builder_image_digest
        && *pinned != image_id
    {
        return Err(BuildError::BuilderMismatch {
            stack: stack.name.clone(),
            image: image.to_string(),
            expected: pinned.clone(),
            found: image_id,
        });
    }

    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec!["sh".into(), "-c".into(), command.to_string()]),
        working_dir: Some("/workspace".into()),
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        user: Some("0:0".into()),
        network_disabled: Some(!stack.network),
        host_config: Some(HostConfig {
            network_mode: Some(if stack.network { "bridge" } else { "none" }.into()),
            memory: Some((stack.memory_mb.saturating_mul(1024 * 1024)).min(i64::MAX as u64) as i64),
            memory_swap: Some(
                (stack.memory_mb.saturating_mul(1024 * 1024)).min(i64::MAX as u64) as i64,
            ),
            nano_cpus: Some((stack.cpus.max(0.01) * 1e9) as i64),
            pids_limit: Some(4096),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(vec![
                "CHOWN".into(),
                "DAC_OVERRIDE".into(),
                "FOWNER".into(),
                "SETUID".into(),
                "SETGID".into(),
            ]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let created = docker
        .create_container(Some(CreateContainerOptionsBuilder::default().build()), body)
        .await
        .map_err(|e| BuildError::docker(format!("creating a build container from {image}"), e))?;
    let id = created.id;
    let result = run_in_container(docker, &id, stack, src_dir, artifacts, staging, scratch).await;
    remove_container(docker, &id, "build").await;
    result.map(|log| DockerRun { log, image_id })
}

async fn run_in_container(
    docker: &Docker,
    id: &str,
    stack: &Stack,
    src_dir: &Path,
    artifacts: &[Artifact],
    staging: &Path,
    scratch: &Path,
) -> Result<String, BuildError> {
    // Upload the source as /workspace.
    let src = src_dir.to_path_buf();
    let archive = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, BuildError> {
        let mut builder = tar::Builder::new(Vec::new());
        builder.follow_symlinks(false);
        builder.mode(tar::HeaderMode::Deterministic);
        builder
            .append_dir_all("workspace", &src)
            .map_err(|e| BuildError::io(&src, e))?;
        builder.into_inner().map_err(|e| BuildError::io(&src, e))
    })
    .await
    .map_err(|e| BuildError::Invalid(format!("packing the source failed: {e}")))??;
    let upload = UploadToContainerOptionsBuilder::default().path("/").build();
    docker
        .upload_to_container(id, Some(upload), bollard::body_full(archive.into()))
        .await
        .map_err(|e| BuildError::docker(format!("uploading the source to container {id}"), e))?;

    docker
        .start_container(id, None)
        .await
        .map_err(|e| BuildError::docker(format!("starting build container {id}"), e))?;

    let waited = tokio::time::timeout(Duration::from_secs(stack.timeout_secs), async {
        let mut stream = docker.wait_container(id, None);
        let mut code: i64 = -1;
        while let Some(item) = stream.next().await {
            match item {
                Ok(resp) => code = resp.status_code,
                Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => code = c,
                Err(e) => {
                    return Err(BuildError::docker(
                        format!("waiting for build container {id}"),
                        e,
                    ));
                }
            }
        }
        Ok(code)
    })
    .await;

    let log = collect_logs(docker, id, "build log").await;
    let exit_code = match waited {
        Err(_) => {
            return Err(BuildError::TimedOut {
                after_secs: stack.timeout_secs,
            });
        }
        Ok(result) => result?,
    };
    if exit_code != 0 {
        return Err(BuildError::CommandFailed {
            exit_code,
            log_tail: tail(&log, ERROR_TAIL_CHARS),
        });
    }

    for (i, artifact) in artifacts.iter().enumerate() {
        let rel = artifact_rel(artifact)?;
        let to = artifact_to(artifact)?;
        let container_path = format!("/workspace/{}", rel.display());
        let opts = DownloadFromContainerOptionsBuilder::default()
            .path(&container_path)
            .build();
        let mut stream = docker.download_from_container(id, Some(opts));
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() as u64 > MAX_ARTIFACT_BYTES {
                        return Err(BuildError::Invalid(format!(
                            "artifact {:?} is over {MAX_ARTIFACT_BYTES} bytes",
                            artifact.from
                        )));
                    }
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    return Err(BuildError::ArtifactMissing {
                        path: artifact.from.clone(),
                    });
                }
                Err(e) => {
                    return Err(BuildError::docker(
                        format!("downloading artifact {:?}", artifact.from),
                        e,
                    ));
                }
            }
        }
        let dl = scratch.join(format!("artifact-{i}"));
        let limits = UnpackLimits {
            max_total_bytes: MAX_ARTIFACT_BYTES,
            max_file_bytes: MAX_ARTIFACT_BYTES,
            ..UnpackLimits::default()
        };
        unpack_tar(&bytes[..], &dl, &limits).map_err(|e| match e {
            SourceError::UnsafeEntry { reason, .. } => BuildError::ArtifactEscapes {
                path: artifact.from.clone(),
                reason,
            },
            other => BuildError::Source(other),
        })?;
        // The archive holds the artifact under its base name.
        let base = rel
            .file_name()
            .map(Path::new)
            .ok_or_else(|| BuildError::ArtifactMissing {
                path: artifact.from.clone(),
            })?;
        collect_artifact(&dl, base, &artifact.from, &to, staging)?;
    }
    Ok(log)
}

/// Force-removes container `id` with its volumes; a failure is only logged (`what` names the container).
pub(crate) async fn remove_container(docker: &Docker, id: &str, what: &str) {
    let remove = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    if let Err(e) = docker.remove_container(id, Some(remove)).await {
        tracing::warn!(container = %id, error = %e, "could not remove {what} container");
    }
}

/// The container's stdout and stderr, tail-limited; a read error ends the log with a line naming `what`.
pub(crate) async fn collect_logs(docker: &Docker, id: &str, what: &str) -> String {
    let opts = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .build();
    let mut stream = docker.logs(id, Some(opts));
    let mut buf = TailBuf::new(MAX_LOG_BYTES);
    while let Some(item) = stream.next().await {
        match item {
            Ok(out) => buf.push(&out.into_bytes()),
            Err(e) => {
                buf.push(format!("\n[reading {what} failed: {e}]\n").as_bytes());
                break;
            }
        }
    }
    buf.into_string()
}
