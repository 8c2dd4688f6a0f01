//! Standard builds: run the build command (Docker or host), collect the artifacts, and assemble them as one
//! reproducible layer on the stack's pinned run base.

use std::collections::BTreeMap;
use std::path::Path;

use airlock_descriptor::AppDescriptor;
use airlock_oci::{Compression, Digest, History, ImageConfig, LayerBuilder, Store, read_image};

use crate::bootstrap::NONROOT;
use crate::host::{build_env, run_host};
use crate::stack::connect_docker;
use crate::workspace::{artifact_rel, artifact_to, collect_artifact, copy_source};
use crate::{BuildError, BuilderKind, Stack};

/// Where the source came from; goes into the image labels and sets the layer time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMeta {
    /// Repository URL (or a description of an uploaded tarball).
    pub repository: String,
    /// Full commit id.
    pub commit: String,
    /// Commit time, unix seconds: the image's `created`, every file's mtime, SOURCE_DATE_EPOCH.
    pub commit_time: i64,
}

/// Everything a standard build needs.
#[derive(Debug, Clone, Copy)]
pub struct BuildRequest<'a> {
    /// The checked-out source (not modified: the build runs on a copy).
    pub src_dir: &'a Path,
    /// The app's validated `airlock.toml`.
    pub descriptor: &'a AppDescriptor,
    /// The approved stack named by the descriptor.
    pub stack: &'a Stack,
    /// Where the source came from.
    pub source: &'a SourceMeta,
    /// Where to run the build command (see [`crate::choose_builder`]).
    pub builder: BuilderKind,
}

/// The result of a standard build.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// Manifest digest of the new image in the output store.
    pub digest: Digest,
    /// Its config.
    pub config: ImageConfig,
    /// Manifest digest of the run base it sits on.
    pub base_digest: Digest,
    /// Where the build command ran.
    pub builder: BuilderKind,
    /// The builder image's id in the Docker Engine (Docker builds only).
    pub builder_image_digest: Option<String>,
    /// Digest (compressed blob) of the app layer.
    pub app_layer: Digest,
    /// Build output, tail-limited.
    pub log: String,
}

/// Runs the build command (host or Docker), collects the artifacts and assembles them as one layer on the run
/// base read from `base_store` (checked against `stack.run_image_digest`); writes the image into `out_store`
/// tagged `out_tag`.
pub async fn build_standard(
    req: &BuildRequest<'_>,
    base_store: &dyn Store,
    out_store: &dyn Store,
    out_tag: &str,
) -> Result<BuiltImage, BuildError> {
    let command = req
        .descriptor
        .build
        .command
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| {
            BuildError::Invalid("airlock.toml has no build.command for a standard build".into())
        })?;
    if req.descriptor.build.artifacts.is_empty() {
        return Err(BuildError::Invalid(
            "airlock.toml lists no build.artifacts for a standard build".into(),
        ));
    }
    // Check the base before spending time on the build.
    let base = read_image(base_store, &req.stack.run_image).await?;
    if base.digest != req.stack.run_image_digest {
        return Err(BuildError::BaseMismatch {
            expected: req.stack.run_image_digest.clone(),
            found: base.digest,
        });
    }
    for artifact in &req.descriptor.build.artifacts {
        artifact_rel(artifact)?;
        artifact_to(artifact)?;
    }

    // An unchanged resubmission (same source tree, descriptor, stack, commit and builder) reuses the image
    // an earlier build left in the output store: the output depends only on those inputs.
    let key = {
        let req = *req;
        let src = req.src_dir.to_path_buf();
        let prefix = cache_inputs(&req);
        tokio::task::spawn_blocking(move || cache_key(&src, &prefix))
            .await
            .map_err(|e| BuildError::Invalid(format!("hashing the source failed: {e}")))??
    };
    let cache_tag = format!("buildcache-{}", &key.hex()[..32]);
    if let Ok(cached) = read_image(out_store, &cache_tag).await
        && let Some(app_layer) = cached.manifest.layers.last().map(|d| d.digest.clone())
    {
        airlock_oci::copy_image(out_store, out_store, cached.digest.as_str(), Some(out_tag))
            .await?;
        return Ok(BuiltImage {
            log: format!(
                "reused the image of an identical earlier build ({cache_tag}): same source tree, \
                 descriptor, stack, commit and builder\n"
            ),
            digest: cached.digest,
            config: cached.config,
            base_digest: base.digest,
            builder: req.builder,
            builder_image_digest: match req.builder {
                BuilderKind::Docker => req.stack.builder_image_digest.clone(),
                BuilderKind::Host => None,
            },
            app_layer,
        });
    }

    let scratch = tempfile::Builder::new()
        .prefix("airlock-build-")
        .tempdir()
        .map_err(|e| BuildError::io(std::env::temp_dir(), e))?;
    let staging = scratch.path().join("artifacts");
    std::fs::create_dir(&staging).map_err(|e| BuildError::io(&staging, e))?;

    let (log, builder_image_digest) = match req.builder {
        BuilderKind::Host => {
            let ws = scratch.path().join("workspace");
            let home = scratch.path().join("home");
            std::fs::create_dir(&home).map_err(|e| BuildError::io(&home, e))?;
            copy_source(req.src_dir, &ws)?;
            let env = build_env(&home, req.source.commit_time, &req.stack.env, true);
            let log = run_host(&ws, command, &env, req.stack.timeout_secs).await?;
            for artifact in &req.descriptor.build.artifacts {
                let rel = artifact_rel(artifact)?;
                let to = artifact_to(artifact)?;
                collect_artifact(&ws, &rel, &artifact.from, &to, &staging)?;
            }
            (log, None)
        }
        BuilderKind::Docker => {
            let docker = connect_docker().await?;
            let env = build_env(
                Path::new("/tmp"),
                req.source.commit_time,
                &req.stack.env,
                false,
            );
            let job = crate::docker::DockerJob {
                stack: req.stack,
                command,
                src_dir: req.src_dir,
                env: &env,
                artifacts: &req.descriptor.build.artifacts,
                staging: &staging,
                scratch: scratch.path(),
            };
            let run = crate::docker::run_docker(&docker, &job).await?;
            (run.log, Some(run.image_id))
        }
    };

    let (digest, config) = assemble(
        &staging,
        req.descriptor,
        req.source,
        base_store,
        base.digest.as_str(),
        out_store,
        out_tag,
    )
    .await?;
    airlock_oci::copy_image(out_store, out_store, digest.as_str(), Some(&cache_tag)).await?;
    let app_layer = read_image(out_store, digest.as_str())
        .await?
        .manifest
        .layers
        .last()
        .map(|d| d.digest.clone())
        .ok_or_else(|| BuildError::Invalid(format!("assembled image {digest} has no layers")))?;
    Ok(BuiltImage {
        digest,
        config,
        base_digest: base.digest,
        builder: req.builder,
        builder_image_digest,
        app_layer,
        log,
    })
}

/// Everything besides the source tree that decides a standard build's output, as bytes to hash.
fn cache_inputs(req: &BuildRequest<'_>) -> Vec<u8> {
    let stack = req.stack;
    serde_json::to_vec(&serde_json::json!({
        "airlock_build": env!("CARGO_PKG_VERSION"),
        "descriptor": req.descriptor.to_json(),
        "source": { "repository": req.source.repository, "commit": req.source.commit,
                    "commit_time": req.source.commit_time },
        "builder": req.builder.to_string(),
        "stack": { "name": stack.name, "builder_image": stack.builder_image,
                   "builder_image_digest": stack.builder_image_digest, "run_image": stack.run_image,
                   "run_image_digest": stack.run_image_digest.to_string(), "env": stack.env,
                   "timeout_secs": stack.timeout_secs, "memory_mb": stack.memory_mb, "cpus": stack.cpus,
                   "network": stack.network },
    }))
    .unwrap_or_default()
}

/// Digest over `prefix` and the source tree: every path (sorted), its kind, executable bit, and content
/// or link target.
fn cache_key(src: &Path, prefix: &[u8]) -> Result<Digest, BuildError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let mut hasher = airlock_oci::DigestWriter::new();
    let io = |p: &Path, e: std::io::Error| BuildError::io(p, e);
    hasher.write_all(prefix).map_err(|e| io(src, e))?;
    for entry in walkdir::WalkDir::new(src)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
    {
        let entry = entry.map_err(|e| BuildError::io(src, e.into()))?;
        let rel = entry.path().strip_prefix(src).unwrap_or(entry.path());
        let ft = entry.file_type();
        write!(hasher, "\0{}\0", rel.display()).map_err(|e| io(entry.path(), e))?;
        if ft.is_dir() {
            hasher.write_all(b"d").map_err(|e| io(entry.path(), e))?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(|e| io(entry.path(), e))?;
            write!(hasher, "l{}", target.display()).map_err(|e| io(entry.path(), e))?;
        } else if ft.is_file() {
            let meta = entry
                .metadata()
                .map_err(|e| BuildError::io(entry.path(), e.into()))?;
            let exec = meta.permissions().mode() & 0o111 != 0;
            write!(hasher, "f{}{}\0", u8::from(exec), meta.len())
                .map_err(|e| io(entry.path(), e))?;
            let mut file = std::fs::File::open(entry.path()).map_err(|e| io(entry.path(), e))?;
            std::io::copy(&mut file, &mut hasher).map_err(|e| io(entry.path(), e))?;
        }
    }
    Ok(hasher.finish().0)
}

/// RFC 3339 (UTC) of a unix time.
pub(crate) fn rfc3339(secs: i64) -> Result<String, BuildError> {
    let t = time::OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| BuildError::Invalid(format!("commit time {secs} is out of range: {e}")))?;
    t.format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| BuildError::Invalid(format!("commit time {secs} cannot be formatted: {e}")))
}

/// Only the assembly step (pure, deterministic): `artifacts_dir` is laid out as the files should appear in the
/// image (`artifacts_dir/app/hello` becomes `/app/hello`), all owned by root, 0755 for executables and
/// directories, 0644 otherwise, mtime = commit time. The config is the base's plus user 65532, the run
/// command as entrypoint, the port, the descriptor's env and the source labels. Exposed for the OCI/rebase
/// work and tests.
pub async fn assemble(
    artifacts_dir: &Path,
    descriptor: &AppDescriptor,
    source: &SourceMeta,
    base_store: &dyn Store,
    base_ref: &str,
    out_store: &dyn Store,
    out_tag: &str,
) -> Result<(Digest, ImageConfig), BuildError> {
    let created = rfc3339(source.commit_time)?;
    let mtime = u64::try_from(source.commit_time).map_err(|_| {
        BuildError::Invalid(format!("commit time {} is before 1970", source.commit_time))
    })?;
    let base = read_image(base_store, base_ref).await?;

    let dir = artifacts_dir.to_path_buf();
    let layer = tokio::task::spawn_blocking(move || -> Result<_, BuildError> {
        let mut builder = LayerBuilder::new(mtime);
        builder.add_tree(&dir, "/", 0, 0)?;
        Ok(builder.finish(Compression::Gzip)?)
    })
    .await
    .map_err(|e| BuildError::Invalid(format!("assembling the app layer failed: {e}")))??;

    // Base layers must be in the output store before the manifest refers to them.
    let mut layers: Vec<(airlock_oci::Descriptor, Option<&[u8]>)> = Vec::new();
    for desc in &base.manifest.layers {
        if !out_store.has_blob(&desc.digest).await? {
            let data = base_store.get_blob(&desc.digest).await?;
            out_store.put_blob(&desc.digest, &data).await?;
        }
        layers.push((desc.clone(), None));
    }
    layers.push((layer.descriptor.clone(), Some(&layer.data[..])));

    let mut config = base.config.clone();
    config.created = Some(created.clone());
    config.rootfs.diff_ids.push(layer.diff_id.clone());
    let c = &mut config.config;
    c.user = Some(format!("{NONROOT}:{NONROOT}"));
    if !descriptor.run.command.is_empty() {
        c.entrypoint = Some(descriptor.run.command.clone());
    }
    c.cmd = None;
    c.working_dir = Some("/app".to_string());
    let mut ports = BTreeMap::new();
    ports.insert(
        format!("{}/tcp", descriptor.run.port),
        serde_json::json!({}),
    );
    c.exposed_ports = Some(ports);
    c.env = Some(merge_env(
        c.env.take().unwrap_or_default(),
        &descriptor.deploy.env,
    ));
    let mut labels = c.labels.take().unwrap_or_default();
    labels.extend(source_labels(descriptor, source, &created));
    // The base this image sits on, so a later rebase can find it from the image alone.
    labels.insert(
        airlock_oci::BASE_DIGEST_LABEL.to_string(),
        base.digest.to_string(),
    );
    if Digest::parse(base_ref).is_err() {
        labels.insert(
            airlock_oci::BASE_NAME_LABEL.to_string(),
            base_ref.to_string(),
        );
    }
    c.labels = Some(labels);
    config.history.push(History {
        created: Some(created),
        created_by: Some(format!(
            "airlock standard build: {}",
            descriptor
                .build
                .command
                .as_deref()
                .unwrap_or("(assembled artifacts)")
        )),
        comment: Some(format!(
            "app layer of {} at {}",
            descriptor.app.name, source.commit
        )),
        ..History::default()
    });

    let digest = airlock_oci::write_image(out_store, &config, &layers, Some(out_tag)).await?;
    Ok((digest, config))
}

/// The OCI labels every airlock image carries: source, revision, created (the commit time), app and team.
pub(crate) fn source_labels(
    descriptor: &AppDescriptor,
    source: &SourceMeta,
    created: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "org.opencontainers.image.source".to_string(),
            source.repository.clone(),
        ),
        (
            "org.opencontainers.image.revision".to_string(),
            source.commit.clone(),
        ),
        (
            "org.opencontainers.image.created".to_string(),
            created.to_string(),
        ),
        ("dev.airlock.app".to_string(), descriptor.app.name.clone()),
        ("dev.airlock.team".to_string(), descriptor.app.team.clone()),
    ])
}

/// The base's `NAME=value` list with the descriptor's variables replacing same-named ones or appended.
fn merge_env(base: Vec<String>, extra: &BTreeMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> = base
        .into_iter()
        .filter(|kv| {
            let name = kv.split('=').next().unwrap_or("");
            !extra.contains_key(name)
        })
        .collect();
    out.extend(extra.iter().map(|(k, v)| format!("{k}={v}")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{create_busybox_image, create_static_base, load_into_docker};
    use airlock_oci::OciLayout;

    const COMMIT_TIME: i64 = 1_700_000_000;

    fn descriptor(command: &str, artifacts: &str, run: &str) -> AppDescriptor {
        AppDescriptor::from_toml_str(&format!(
            r#"
[app]
name = "hello"
team = "payments"
[build]
mode = "standard"
stack = "busybox"
command = {command:?}
artifacts = {artifacts}
[run]
command = {run}
port = 8080
[deploy]
env = {{ GREETING = "hi", PATH = "/app:/bin" }}
"#
        ))
        .unwrap()
    }

    fn source() -> SourceMeta {
        SourceMeta {
            repository: "https://git.example.com/hello.git".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            commit_time: COMMIT_TIME,
        }
    }

    fn stack(digest: Digest, builder_image: Option<&str>, run_image: &str) -> Stack {
        Stack {
            name: "busybox".into(),
            builder_image: builder_image.map(str::to_string),
            builder_image_digest: None,
            run_image: run_image.into(),
            run_image_digest: digest,
            env: BTreeMap::from([("STACK_VAR".to_string(), "from-stack".to_string())]),
            timeout_secs: 60,
            memory_mb: 256,
            cpus: 1.0,
            network: false,
        }
    }

    #[tokio::test]
    async fn host_build_of_shell_app_is_reproducible_and_labelled() {
        let tmp = tempfile::tempdir().unwrap();
        let base_store = OciLayout::open_or_create(&tmp.path().join("base")).unwrap();
        let base = create_static_base(&base_store, "static").await.unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("README"), "app").unwrap();
        let desc = descriptor(
            "mkdir -p out && printf hi > out/hello && printf \"$STACK_VAR\" > out/var",
            r#"[{ from = "out/hello", to = "/app/hello" }, { from = "out/var", to = "/app/var" }]"#,
            r#"["/app/hello"]"#,
        );
        let stack = stack(base.clone(), None, "static");
        let source = source();
        let req = BuildRequest {
            src_dir: &src,
            descriptor: &desc,
            stack: &stack,
            source: &source,
            builder: BuilderKind::Host,
        };
        let out1 = OciLayout::open_or_create(&tmp.path().join("out1")).unwrap();
        let out2 = OciLayout::open_or_create(&tmp.path().join("out2")).unwrap();
        let a = build_standard(&req, &base_store, &out1, "v1")
            .await
            .unwrap();
        let b = build_standard(&req, &base_store, &out2, "v1")
            .await
            .unwrap();
        assert_eq!(a.digest, b.digest, "same inputs must give the same image");
        assert_eq!(a.base_digest, base);
        assert_eq!(a.builder, BuilderKind::Host);

        let image = read_image(&out1, "v1").await.unwrap();
        assert_eq!(image.digest, a.digest);
        let c = &image.config.config;
        assert_eq!(c.user.as_deref(), Some("65532:65532"));
        assert_eq!(c.entrypoint, Some(vec!["/app/hello".to_string()]));
        assert!(c.exposed_ports.as_ref().unwrap().contains_key("8080/tcp"));
        let env = c.env.as_ref().unwrap();
        assert!(env.contains(&"GREETING=hi".to_string()));
        assert!(env.contains(&"PATH=/app:/bin".to_string()));
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
        let labels = c.labels.as_ref().unwrap();
        assert_eq!(labels["org.opencontainers.image.revision"], source.commit);
        assert_eq!(
            labels["org.opencontainers.image.created"],
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(labels["dev.airlock.app"], "hello");
        assert_eq!(
            image.config.created.as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(image.manifest.layers.len(), 2);

        // The app layer holds exactly the artifacts, owned by root, with the commit time.
        let blob = out1.get_blob(&a.app_layer).await.unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
        let mut files = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let (uid, mtime, mode) = {
                let h = entry.header();
                (h.uid().unwrap(), h.mtime().unwrap(), h.mode().unwrap())
            };
            assert_eq!(uid, 0, "{path}");
            assert_eq!(mtime, COMMIT_TIME as u64, "{path}");
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            files.insert(path, (mode, text));
        }
        assert_eq!(files["app/hello"], (0o644, "hi".to_string()));
        assert_eq!(files["app/var"].1, "from-stack");
        assert!(!files.keys().any(|p| p.contains("README")));
    }

    #[tokio::test]
    async fn unchanged_resubmission_reuses_the_image_and_a_change_rebuilds() {
        let tmp = tempfile::tempdir().unwrap();
        let base_store = OciLayout::open_or_create(&tmp.path().join("base")).unwrap();
        let base = create_static_base(&base_store, "static").await.unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("msg"), "one").unwrap();
        // The command counts its runs outside the workspace, so a reuse is visible.
        let counter = tmp.path().join("runs");
        let desc = descriptor(
            &format!(
                "echo run >> {}; mkdir -p out && cp msg out/msg",
                counter.display()
            ),
            r#"["out/msg"]"#,
            r#"["/app/msg"]"#,
        );
        let stack = stack(base, None, "static");
        let source = source();
        let req = BuildRequest {
            src_dir: &src,
            descriptor: &desc,
            stack: &stack,
            source: &source,
            builder: BuilderKind::Host,
        };
        let out = OciLayout::open_or_create(&tmp.path().join("out")).unwrap();
        let first = build_standard(&req, &base_store, &out, "r1").await.unwrap();
        let second = build_standard(&req, &base_store, &out, "r2").await.unwrap();
        assert_eq!(second.digest, first.digest);
        assert!(second.log.contains("reused"), "{}", second.log);
        assert_eq!(read_image(&out, "r2").await.unwrap().digest, first.digest);
        assert_eq!(
            std::fs::read_to_string(&counter).unwrap().lines().count(),
            1
        );

        std::fs::write(src.join("msg"), "two").unwrap();
        let third = build_standard(&req, &base_store, &out, "r3").await.unwrap();
        assert_ne!(third.digest, first.digest);
        assert_eq!(
            std::fs::read_to_string(&counter).unwrap().lines().count(),
            2
        );
    }

    #[tokio::test]
    async fn refuses_base_that_is_not_the_pinned_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let base_store = OciLayout::open_or_create(&tmp.path().join("base")).unwrap();
        create_static_base(&base_store, "static").await.unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let desc = descriptor("true", r#"["x"]"#, r#"["/app/x"]"#);
        let pinned = Digest::of(b"some other base");
        let stack = stack(pinned.clone(), None, "static");
        let source = source();
        let req = BuildRequest {
            src_dir: &src,
            descriptor: &desc,
            stack: &stack,
            source: &source,
            builder: BuilderKind::Host,
        };
        let out = OciLayout::open_or_create(&tmp.path().join("out")).unwrap();
        let err = build_standard(&req, &base_store, &out, "v1")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, BuildError::BaseMismatch { expected, .. } if *expected == pinned),
            "{err}"
        );
    }

    #[tokio::test]
    async fn host_build_reports_failed_command_and_missing_artifact() {
        let tmp = tempfile::tempdir().unwrap();
        let base_store = OciLayout::open_or_create(&tmp.path().join("base")).unwrap();
        let base = create_static_base(&base_store, "static").await.unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let stack = stack(base, None, "static");
        let source = source();
        let out = OciLayout::open_or_create(&tmp.path().join("out")).unwrap();

        let desc = descriptor(
            "echo cannot compile >&2; exit 2",
            r#"["x"]"#,
            r#"["/app/x"]"#,
        );
        let req = BuildRequest {
            src_dir: &src,
            descriptor: &desc,
            stack: &stack,
            source: &source,
            builder: BuilderKind::Host,
        };
        let err = build_standard(&req, &base_store, &out, "v1")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, BuildError::CommandFailed { exit_code: 2, log_tail } if log_tail.contains("cannot compile")),
            "{err}"
        );

        let desc = descriptor("mkdir -p out", r#"["out/app"]"#, r#"["/app/app"]"#);
        let req = BuildRequest {
            descriptor: &desc,
            ..req
        };
        let err = build_standard(&req, &base_store, &out, "v1")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, BuildError::ArtifactMissing { path } if path == "out/app"),
            "{err}"
        );
    }

    /// Needs the Docker Engine (CI starts it); fails loudly when it is not answering.
    #[tokio::test]
    async fn docker_build_in_busybox_then_docker_run_prints_greeting() {
        let docker = crate::connect_docker()
            .await
            .unwrap_or_else(|e| panic!("this test needs a running Docker Engine: {e}"));
        let tmp = tempfile::tempdir().unwrap();
        let base_store = OciLayout::open_or_create(&tmp.path().join("base")).unwrap();
        let busybox = create_busybox_image(&base_store, "busybox", Path::new("/bin/busybox"))
            .await
            .unwrap();
        let builder_name = "airlock-build-test/busybox:1";
        let builder_id = load_into_docker(&docker, &base_store, "busybox", builder_name)
            .await
            .unwrap();

        let stack = stack(busybox.clone(), Some(builder_name), "busybox");
        let (kind, reason) = crate::choose_builder(&stack).await;
        assert_eq!(kind, BuilderKind::Docker, "{reason}");

        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("greet.txt"), "hello from airlock").unwrap();
        let desc = descriptor(
            "mkdir -p out && printf '#!/bin/sh\\necho \"%s ($GREETING)\"\\n' \"$(cat greet.txt)\" > out/hello.sh && chmod +x out/hello.sh && (wget -q -T 2 http://1.1.1.1/ 2>/dev/null && echo NETWORK || echo offline)",
            r#"[{ from = "out/hello.sh", to = "/app/hello.sh" }]"#,
            r#"["/bin/sh", "/app/hello.sh"]"#,
        );
        let source = source();
        let req = BuildRequest {
            src_dir: &src,
            descriptor: &desc,
            stack: &stack,
            source: &source,
            builder: BuilderKind::Docker,
        };
        let out = OciLayout::open_or_create(&tmp.path().join("out")).unwrap();
        let built = build_standard(&req, &base_store, &out, "v1").await.unwrap();
        assert_eq!(built.builder, BuilderKind::Docker);
        assert_eq!(
            built.builder_image_digest.as_deref(),
            Some(builder_id.as_str())
        );
        assert!(
            built.log.contains("offline"),
            "builder must have no network: {}",
            built.log
        );

        let app_name = "airlock-build-test/app:1";
        load_into_docker(&docker, &out, "v1", app_name)
            .await
            .unwrap();
        let run = std::process::Command::new("docker")
            .args(["run", "--rm", app_name])
            .output()
            .unwrap();
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", app_name, builder_name])
            .output();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "docker run failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_eq!(stdout.trim(), "hello from airlock (hi)");
        // No build container is left behind.
        let ps = std::process::Command::new("docker")
            .args([
                "ps",
                "-a",
                "--filter",
                &format!("ancestor={builder_name}"),
                "-q",
            ])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&ps.stdout).trim().is_empty());
    }
}
