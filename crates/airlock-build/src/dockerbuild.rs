//! Dockerfile builds: check the Dockerfile, put the approved bases it names into the Docker Engine under
//! names only the gate uses, build with the classic builder (no network, memory and time limits), export the
//! result and re-pack it as deterministic layers in an OCI store.
//!
//! The layers of the approved base are reused byte for byte from the base store (the Engine reports the same
//! diff ids for them), so the image is provably on its pinned base; the layers the Dockerfile added are
//! re-packed with every timestamp set to the commit time and owner names dropped, so a rebuild of the same
//! commit gives the same digest whenever the build steps themselves are deterministic.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use airlock_oci::{Compression, Descriptor, Digest, Store, read_image};
use bollard::Docker;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures::StreamExt;
use serde::Serialize;

use crate::build::{BuiltImage, SourceMeta, rfc3339, source_labels};
use crate::context::context_tar;
use crate::dockerfile::{ApprovedBase, BaseSource, FromLine, check_dockerfile};
use crate::host::ERROR_TAIL_CHARS;
use crate::log::{MAX_LOG_BYTES, TailBuf, tail};
use crate::{BuildError, BuilderKind, load_into_docker};

/// Most bytes of a Dockerfile.
const MAX_DOCKERFILE_BYTES: u64 = 1024 * 1024;
/// Most bytes of the exported image (held in memory while re-packing).
const MAX_EXPORT_BYTES: usize = 4 << 30;

/// A Dockerfile build to run.
#[derive(Debug, Clone, Copy)]
pub struct DockerfileRequest<'a> {
    /// The checked-out source: the build context.
    pub src_dir: &'a Path,
    /// The app's `airlock.toml` (Dockerfile path, target, build args, app name).
    pub descriptor: &'a airlock_descriptor::AppDescriptor,
    /// The platform's approved bases (see [`crate::approved_bases`]).
    pub bases: &'a [ApprovedBase],
    /// Where the source came from (labels, timestamps).
    pub source: &'a SourceMeta,
    /// Wall-clock limit of the build.
    pub timeout_secs: u64,
    /// Memory limit of each build step's container.
    pub memory_mb: u64,
}

/// What the Dockerfile check found, for the run record and the policy input (`dockerfile`).
#[derive(Debug, Clone, Serialize)]
pub struct DockerfileReport {
    /// The Dockerfile's path in the source.
    pub file: String,
    /// Every `FROM` / `COPY --from` of an image, resolved.
    pub from: Vec<FromLine>,
    /// The approved base the built stage sits on.
    pub base: ApprovedBase,
    /// How many layers of the result are the base's own blobs, reused unchanged.
    pub reused_base_layers: usize,
}

/// The Dockerfile's path in the source (default `Dockerfile`), checked to stay inside it.
pub fn dockerfile_path(
    descriptor: &airlock_descriptor::AppDescriptor,
) -> Result<String, BuildError> {
    let written = descriptor
        .build
        .dockerfile
        .as_deref()
        .unwrap_or("Dockerfile");
    if written.starts_with('/') || written.split('/').any(|p| p == "..") {
        return Err(BuildError::Invalid(format!(
            "build.dockerfile {written:?} must be a relative path inside the repository"
        )));
    }
    Ok(written.to_string())
}

/// Checks, builds, exports and re-packs; the image is written to `out_store` tagged `out_tag`.
/// Nothing reaches the Engine when the Dockerfile is refused.
pub async fn build_dockerfile(
    docker: &Docker,
    req: &DockerfileRequest<'_>,
    base_store: &dyn Store,
    out_store: &dyn Store,
    out_tag: &str,
) -> Result<(BuiltImage, DockerfileReport), BuildError> {
    let file = dockerfile_path(req.descriptor)?;
    let path = req.src_dir.join(&file);
    let meta = std::fs::symlink_metadata(&path).map_err(|e| BuildError::io(&path, e))?;
    if !meta.is_file() || meta.len() > MAX_DOCKERFILE_BYTES {
        return Err(BuildError::Invalid(format!(
            "{file} is not a regular file of at most {MAX_DOCKERFILE_BYTES} bytes"
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| BuildError::io(&path, e))?;
    let checked = check_dockerfile(
        &file,
        &text,
        req.bases,
        &req.descriptor.build.args,
        req.descriptor.build.target.as_deref(),
    )?;

    // Put every base used into the Engine under a name derived from its pinned digest.
    let mut local_names = BTreeMap::new();
    for &i in &checked.bases_used {
        let name = ensure_base_in_engine(docker, base_store, &req.bases[i]).await?;
        local_names.insert(i, name);
    }
    let rewritten = checked.rewrite(&text, &local_names);
    let src = req.src_dir.to_path_buf();
    let file2 = file.clone();
    let context = tokio::task::spawn_blocking(move || context_tar(&src, &file2, &rewritten))
        .await
        .map_err(|e| BuildError::Invalid(format!("packing the build context failed: {e}")))??;

    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tag = format!(
        "airlock.local/build/{}:{}-{stamp}",
        req.descriptor.app.name,
        std::process::id()
    );
    let log = run_build(docker, req, &file, &tag, context).await;
    let result = match log {
        Ok(log) => export_and_repack(docker, req, &checked, base_store, out_store, out_tag, &tag)
            .await
            .map(|(built, reused)| (built, reused, log)),
        Err(e) => Err(e),
    };
    // noprune keeps the parent images, which are the classic builder's cache for the next build.
    let opts = RemoveImageOptionsBuilder::default().noprune(true).build();
    let _ = docker.remove_image(&tag, Some(opts), None).await;
    let (mut built, reused, log) = result?;
    built.log = log;
    let report = DockerfileReport {
        file,
        from: checked.from.clone(),
        base: req.bases[checked.final_base].clone(),
        reused_base_layers: reused,
    };
    Ok((built, report))
}

/// Local Engine name of an approved base, loading (store bases) or tagging (Engine bases) it first; the
/// Engine's image id is checked against the pin.
async fn ensure_base_in_engine(
    docker: &Docker,
    base_store: &dyn Store,
    base: &ApprovedBase,
) -> Result<String, BuildError> {
    let repo = format!("airlock.local/approved/{}", sanitize(&base.name));
    let hex = base.digest.strip_prefix("sha256:").unwrap_or(&base.digest);
    let tag = hex.chars().take(16).collect::<String>();
    let local = format!("{repo}:{tag}");
    match &base.source {
        BaseSource::Store(reference) => {
            let image = read_image(base_store, reference).await?;
            if image.digest.as_str() != base.digest {
                return Err(BuildError::BaseMismatch {
                    expected: Digest::parse(&base.digest)?,
                    found: image.digest,
                });
            }
            let want = image.config_digest.to_string();
            let present = docker
                .inspect_image(&local)
                .await
                .ok()
                .and_then(|i| i.id)
                .is_some_and(|id| id == want);
            if !present {
                let id = load_into_docker(docker, base_store, reference, &local).await?;
                if id != want {
                    return Err(BuildError::Invalid(format!(
                        "base {} loaded as {id}, expected config {want}",
                        base.name
                    )));
                }
            }
        }
        BaseSource::Engine => {
            let inspect = docker.inspect_image(&base.name).await.map_err(|e| {
                BuildError::docker(
                    format!("approved base {} not in the Docker Engine", base.name),
                    e,
                )
            })?;
            let id = inspect.id.unwrap_or_default();
            if id != base.digest {
                return Err(BuildError::BuilderMismatch {
                    stack: "(approved bases)".into(),
                    image: base.name.clone(),
                    expected: base.digest.clone(),
                    found: id,
                });
            }
            let opts = TagImageOptionsBuilder::default()
                .repo(&repo)
                .tag(&tag)
                .build();
            docker
                .tag_image(&id, Some(opts))
                .await
                .map_err(|e| BuildError::docker(format!("tagging {} as {local}", base.name), e))?;
        }
    }
    Ok(local)
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(100)
        .collect()
}

/// Runs the classic builder; returns its output, or the failure with the output's tail.
async fn run_build(
    docker: &Docker,
    req: &DockerfileRequest<'_>,
    file: &str,
    tag: &str,
    context: Vec<u8>,
) -> Result<String, BuildError> {
    let args: HashMap<String, String> = req
        .descriptor
        .build
        .args
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let memory = i32::try_from(req.memory_mb.saturating_mul(1024 * 1024)).unwrap_or(i32::MAX);
    let mut options = BuildImageOptionsBuilder::default()
        .dockerfile(file)
        .t(tag)
        .rm(true)
        .forcerm(true)
        .networkmode("none")
        .memory(memory)
        .memswap(memory)
        .buildargs(&args);
    if let Some(target) = &req.descriptor.build.target {
        options = options.target(target);
    }
    let mut stream = docker.build_image(
        options.build(),
        None,
        Some(bollard::body_full(context.into())),
    );
    let mut log = TailBuf::new(MAX_LOG_BYTES);
    let outcome = tokio::time::timeout(Duration::from_secs(req.timeout_secs), async {
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream {
                        log.push(strip_ansi(&text).as_bytes());
                    }
                    if let Some(message) = info.error_detail.and_then(|d| d.message) {
                        return Err(message);
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => return Err(error),
                Err(e) => return Err(format!("Docker Engine: {e}")),
            }
        }
        Ok(())
    })
    .await;
    let log = log.into_string();
    match outcome {
        Err(_) => Err(BuildError::TimedOut {
            after_secs: req.timeout_secs,
        }),
        Ok(Err(message)) => Err(BuildError::CommandFailed {
            exit_code: exit_code_of(&message),
            log_tail: tail(&format!("{log}{message}\n"), ERROR_TAIL_CHARS),
        }),
        Ok(Ok(())) => Ok(log),
    }
}

/// The text without ANSI colour sequences (the classic builder colours a step's stderr red).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ params letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `The command '/bin/sh -c false' returned a non-zero code: 1` → 1; -1 otherwise.
fn exit_code_of(message: &str) -> i64 {
    message
        .rsplit_once("non-zero code: ")
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or(-1)
}

/// Exports `tag`, reuses the base's layers, re-packs the rest and writes the image.
async fn export_and_repack(
    docker: &Docker,
    req: &DockerfileRequest<'_>,
    checked: &crate::dockerfile::CheckedDockerfile,
    base_store: &dyn Store,
    out_store: &dyn Store,
    out_tag: &str,
    tag: &str,
) -> Result<(BuiltImage, usize), BuildError> {
    let mut stream = docker.export_image(tag);
    let mut archive = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BuildError::docker(format!("exporting {tag}"), e))?;
        archive.extend_from_slice(&chunk);
        if archive.len() > MAX_EXPORT_BYTES {
            return Err(BuildError::Invalid(format!(
                "built image is over {MAX_EXPORT_BYTES} bytes; too big to re-pack"
            )));
        }
    }
    let mtime = u64::try_from(req.source.commit_time).map_err(|_| {
        BuildError::Invalid(format!(
            "commit time {} is before 1970",
            req.source.commit_time
        ))
    })?;
    let base = &req.bases[checked.final_base];
    let base_image = match &base.source {
        BaseSource::Store(reference) => Some(read_image(base_store, reference).await?),
        BaseSource::Engine => None,
    };
    let created = rfc3339(req.source.commit_time)?;
    let descriptor = req.descriptor;
    let source = req.source.clone();
    let base_parts = base_image
        .as_ref()
        .map(|b| (b.config.rootfs.diff_ids.clone(), b.config.history.len()));
    let (config, new_layers, reused) =
        tokio::task::spawn_blocking(move || repack_archive(&archive, mtime, base_parts.as_ref()))
            .await
            .map_err(|e| BuildError::Invalid(format!("re-packing the image failed: {e}")))??;

    let mut config = config;
    config.created = Some(created.clone());
    for h in config
        .history
        .iter_mut()
        .skip(base_image.as_ref().map_or(0, |b| b.config.history.len()))
    {
        h.created = Some(created.clone());
    }
    let mut labels = config.config.labels.take().unwrap_or_default();
    labels.extend(source_labels(descriptor, &source, &created));
    if let Some(b) = &base_image {
        // The approved base this image sits on, so a later rebase can find it from the image alone.
        labels.insert(airlock_oci::BASE_DIGEST_LABEL.into(), b.digest.to_string());
        labels.insert(airlock_oci::BASE_NAME_LABEL.into(), base.name.clone());
    }
    config.config.labels = Some(labels);

    let mut layers: Vec<(Descriptor, Option<&[u8]>)> = Vec::new();
    if let Some(b) = &base_image {
        for desc in b.manifest.layers.iter().take(reused) {
            if !out_store.has_blob(&desc.digest).await? {
                let data = base_store.get_blob(&desc.digest).await?;
                out_store.put_blob(&desc.digest, &data).await?;
            }
            layers.push((desc.clone(), None));
        }
    }
    for layer in &new_layers {
        layers.push((layer.descriptor.clone(), Some(&layer.data[..])));
    }
    let digest = airlock_oci::write_image(out_store, &config, &layers, Some(out_tag)).await?;
    let app_layer = layers
        .last()
        .map(|(d, _)| d.digest.clone())
        .ok_or_else(|| BuildError::Invalid(format!("built image {digest} has no layers")))?;
    let base_digest = base_image
        .as_ref()
        .map(|b| b.digest.clone())
        .map_or_else(|| Digest::parse(&base.digest), Ok)?;
    Ok((
        BuiltImage {
            digest,
            config,
            base_digest,
            builder: BuilderKind::Docker,
            builder_image_digest: None,
            app_layer,
            log: String::new(),
        },
        reused,
    ))
}

/// Reads a `docker save` archive: the config (as an OCI config) and the layers after the first `reused`
/// (those equal to the base's diff ids), re-packed. Returns (config with new diff ids, new layers, reused).
fn repack_archive(
    archive: &[u8],
    mtime: u64,
    base: Option<&(Vec<Digest>, usize)>,
) -> Result<(airlock_oci::ImageConfig, Vec<airlock_oci::Layer>, usize), BuildError> {
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut tar = tar::Archive::new(archive);
    let io = |e| BuildError::io("exported image", e);
    for entry in tar.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(io)?.to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).map_err(io)?;
        files.insert(name, data);
    }
    let manifest: serde_json::Value = serde_json::from_slice(
        files
            .get("manifest.json")
            .ok_or_else(|| BuildError::Invalid("exported image has no manifest.json".into()))?,
    )
    .map_err(|e| BuildError::Invalid(format!("exported manifest.json: {e}")))?;
    let entry = manifest
        .get(0)
        .ok_or_else(|| BuildError::Invalid("exported manifest.json lists no image".into()))?;
    let config_name = entry.get("Config").and_then(|v| v.as_str()).unwrap_or("");
    let config_bytes = files.get(config_name).ok_or_else(|| {
        BuildError::Invalid(format!("exported image lacks its config {config_name:?}"))
    })?;
    let mut config = airlock_oci::ImageConfig::from_bytes(config_bytes, "exported image config")?;
    let layer_names: Vec<&str> = entry
        .get("Layers")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if layer_names.len() != config.rootfs.diff_ids.len() {
        return Err(BuildError::Invalid(format!(
            "exported image has {} layers but its config lists {} diff ids",
            layer_names.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let reused = match base {
        Some((diff_ids, _)) if config.rootfs.diff_ids.starts_with(diff_ids) => diff_ids.len(),
        _ => 0,
    };
    let mut diff_ids: Vec<Digest> = config.rootfs.diff_ids[..reused].to_vec();
    let mut layers = Vec::new();
    for name in &layer_names[reused..] {
        let data = files
            .get(*name)
            .ok_or_else(|| BuildError::Invalid(format!("exported image lacks layer {name:?}")))?;
        let tar = repack_layer(data, mtime)?;
        let diff_id = Digest::of(&tar);
        let compressed = airlock_oci::layer::compress(tar, Compression::Gzip)?;
        let descriptor = Descriptor::for_bytes(Compression::Gzip.media_type(), &compressed);
        diff_ids.push(diff_id.clone());
        layers.push(airlock_oci::Layer {
            data: compressed,
            descriptor,
            diff_id,
        });
    }
    config.rootfs.diff_ids = diff_ids;
    Ok((config, layers, reused))
}

/// Rewrites one layer tar with the same entries in the same order (Docker writes them sorted), each with
/// `mtime`, numeric owners only, no extended headers beyond long names.
fn repack_layer(data: &[u8], mtime: u64) -> Result<Vec<u8>, BuildError> {
    let io = |e| BuildError::io("layer of the built image", e);
    let mut out = tar::Builder::new(Vec::new());
    let mut archive = tar::Archive::new(data);
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let kind = entry.header().entry_type();
        let path = entry.path_bytes().into_owned();
        let path = String::from_utf8_lossy(&path).into_owned();
        let src = entry.header();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        // Blank numeric fields (some writers leave them empty) read as 0, as Docker reads them.
        header.set_mode(src.mode().unwrap_or(0o644));
        header.set_uid(src.uid().unwrap_or(0));
        header.set_gid(src.gid().unwrap_or(0));
        header.set_mtime(mtime);
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(entry.size());
                let mut contents = Vec::with_capacity(entry.size() as usize);
                std::io::Read::read_to_end(&mut entry, &mut contents).map_err(io)?;
                out.append_data(&mut header, &path, &contents[..])
                    .map_err(io)?;
            }
            tar::EntryType::Directory => {
                header.set_size(0);
                out.append_data(&mut header, &path, std::io::empty())
                    .map_err(io)?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                header.set_size(0);
                out.append_link(&mut header, &path, &target).map_err(io)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                if let (Ok(Some(major)), Ok(Some(minor))) = (src.device_major(), src.device_minor())
                {
                    header.set_device_major(major).map_err(io)?;
                    header.set_device_minor(minor).map_err(io)?;
                }
                header.set_size(0);
                out.append_data(&mut header, &path, std::io::empty())
                    .map_err(io)?;
            }
            // Extended headers were folded into the entries; anything else has no place in a layer.
            _ => {}
        }
    }
    out.into_inner().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colour_sequences() {
        assert_eq!(
            strip_ansi("\u{1b}[91mmkdir: denied\n\u{1b}[0mdone"),
            "mkdir: denied\ndone"
        );
    }

    #[test]
    fn reads_exit_code_of_classic_builder_message() {
        assert_eq!(
            exit_code_of("The command '/bin/sh -c exit 3' returned a non-zero code: 3"),
            3
        );
        assert_eq!(exit_code_of("something else"), -1);
    }

    #[test]
    fn repacked_layer_has_commit_time_and_keeps_hardlinks() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o755);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_mtime(123_456);
        h.set_username("dev").unwrap();
        h.set_size(2);
        b.append_data(&mut h, "bin/tool", &b"hi"[..]).unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Link);
        l.set_size(0);
        l.set_mtime(999);
        b.append_link(&mut l, "bin/tool2", "bin/tool").unwrap();
        let input = b.into_inner().unwrap();
        let out = repack_layer(&input, 42).unwrap();
        assert_eq!(out, repack_layer(&input, 42).unwrap());
        let mut archive = tar::Archive::new(&out[..]);
        let entries: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.entry_type(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                    h.username().unwrap().map(str::to_string),
                )
            })
            .collect();
        assert_eq!(
            entries[0],
            (
                "bin/tool".into(),
                tar::EntryType::Regular,
                42,
                1000,
                Some(String::new())
            )
        );
        assert_eq!(entries[1].1, tar::EntryType::Link);
        assert_eq!(entries[1].2, 42);
    }
}

#[cfg(test)]
/// Compile-time check: the gate's worker spawns these futures, so they must stay `Send`.
mod send_check {
    use super::*;
    #[allow(dead_code)]
    fn futures_are_send(d: &Docker, r: &DockerfileRequest<'_>, s: &airlock_oci::OciLayout) {
        fn is_send<T: Send>(_: &T) {}
        let f = build_dockerfile(d, r, s, s, "x");
        is_send(&f);
        let g = crate::smoke_test_from_store(
            d,
            s,
            "x",
            "a",
            &crate::SmokeSpec {
                port: 1,
                health: None,
                start_timeout_secs: 1,
            },
        );
        is_send(&g);
    }
}
