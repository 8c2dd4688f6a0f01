//! `airlock-gate build DIR --to REF`: the gate's build step on a source directory, without the gate.
//!
//! [`build_source`] is the build step itself (mode dispatch, standard or Dockerfile build, smoke test); the
//! pipeline's `build` step calls it too, so a local build and a gate build of the same source on the same
//! platform config give the same image digest.

use std::path::{Path, PathBuf};

use airlock_build::{BuildError, BuildRequest, BuiltImage, SourceMeta};
use airlock_descriptor::{AppDescriptor, BuildMode};
use airlock_oci::{ImageRef, OpenOptions, Store as OciStore};
use anyhow::Context;
use serde_json::{Value, json};

use crate::config::GateConfig;

/// Arguments of `airlock-gate build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// The source directory (with `airlock.toml`, or at least a Dockerfile).
    pub dir: PathBuf,
    /// Where to write the image: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker://HOST/REPO:TAG`, or
    /// `docker-daemon:NAME:TAG` (loaded into the local Docker Engine).
    #[arg(long)]
    pub to: String,
    /// The platform config whose stacks and approved bases apply (default: the embedded defaults of
    /// `airlock-gate init`, made in a temporary directory).
    #[arg(long, env = "AIRLOCK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Commit time (unix seconds) for labels and file times; same value, same digest.
    #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
    pub source_date_epoch: i64,
    /// Revision recorded in the `org.opencontainers.image.revision` label.
    #[arg(long, default_value = "local")]
    pub revision: String,
    /// Skip the smoke test even when a Docker Engine answers.
    #[arg(long)]
    pub no_smoke: bool,
    /// Registry hosts (`host:port`) to push to over plain HTTP.
    #[arg(long = "insecure-host")]
    pub insecure_hosts: Vec<String>,
}

/// What the build step produced: the image and everything the run records about how.
#[derive(Debug)]
pub struct BuildOutcome {
    /// The image, written to the work store under the tag given.
    pub built: BuiltImage,
    /// `standard` or `dockerfile`.
    pub mode: &'static str,
    /// The stack used (standard builds; Dockerfile builds when the descriptor names one for its limits).
    pub stack: Option<String>,
    /// Name of the run base (the final stage's base for Dockerfile builds).
    pub base_name: String,
    /// The builder image's name (Docker standard builds).
    pub builder_image_name: Option<String>,
    /// Why this builder.
    pub reason: String,
    /// The Dockerfile report (`null` for standard builds).
    pub dockerfile: Value,
    /// `{"result": "passed", ...}` or `{"result": "skipped", "reason": ...}`.
    pub smoke: Value,
    /// The smoke-tested container's output, when it ran.
    pub smoke_log: Option<String>,
}

impl BuildOutcome {
    /// The `build` object of the run's outputs (read by the gate step's policy input and by signing).
    pub fn to_json(&self) -> Value {
        let built = &self.built;
        json!({
            "mode": self.mode,
            "builder": built.builder.to_string(), "builder_reason": self.reason, "stack": self.stack,
            "base": { "name": self.base_name, "digest": built.base_digest.to_string() },
            "builder_image": built.builder_image_digest.as_ref()
                .map(|d| json!({"name": self.builder_image_name, "digest": d})),
            "app_layer": built.app_layer.to_string(),
            "user": built.config.config.user,
            "env_names": built.config.config.env.iter().flatten()
                .filter_map(|e| e.split('=').next()).collect::<Vec<_>>(),
            "dockerfile": self.dockerfile,
            "smoke": self.smoke,
        })
    }
}

/// Why the build step stopped.
#[derive(Debug)]
pub enum BuildStop {
    /// The platform refused the input (unapproved stack or base, remote `ADD`): the run is rejected.
    Refused(String),
    /// The build or the smoke test failed; `smoke_log` is the container's output tail when the smoke test
    /// failed.
    Failed {
        /// The sentence for the run.
        message: String,
        /// Output of the smoke-tested container.
        smoke_log: Option<String>,
    },
}

impl std::fmt::Display for BuildStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildStop::Refused(m) => write!(f, "refused: {m}"),
            BuildStop::Failed { message, .. } => f.write_str(message),
        }
    }
}

fn failed(message: impl Into<String>) -> BuildStop {
    BuildStop::Failed {
        message: message.into(),
        smoke_log: None,
    }
}

fn from_build_error(e: BuildError) -> BuildStop {
    match e {
        BuildError::DockerfileRefused { .. } => BuildStop::Refused(e.to_string()),
        BuildError::SmokeFailed { ref log_tail, .. } => BuildStop::Failed {
            smoke_log: Some(log_tail.clone()),
            message: e.to_string(),
        },
        e => failed(e.to_string()),
    }
}

/// The gate's build step: builds `src` by its descriptor's mode on `config`'s stacks into `work` tagged
/// `tag`, then smoke-tests the image when `smoke` is set and a Docker Engine answers.
pub async fn build_source(
    config: &GateConfig,
    src: &Path,
    descriptor: &AppDescriptor,
    meta: &SourceMeta,
    work: &dyn OciStore,
    tag: &str,
    smoke: bool,
) -> Result<BuildOutcome, BuildStop> {
    let base_store = airlock_oci::OciLayout::open(&config.bases_dir())
        .map_err(|e| failed(format!("opening the approved bases: {e}")))?;
    let mut outcome = match descriptor.build_mode(src) {
        BuildMode::Dockerfile => {
            let docker = airlock_build::connect_docker()
                .await
                .map_err(|e| failed(format!("a Dockerfile build needs a Docker Engine: {e}")))?;
            // A named stack lends its limits; otherwise the stack defaults apply.
            let stack = match descriptor.build.stack.as_deref() {
                Some(name) => Some(config.stack(Some(name)).map_err(BuildStop::Refused)?),
                None => None,
            };
            let bases = airlock_build::approved_bases(&config.stacks);
            let req = airlock_build::DockerfileRequest {
                src_dir: src,
                descriptor,
                bases: &bases,
                source: meta,
                timeout_secs: stack.map_or(1800, |s| s.timeout_secs),
                memory_mb: stack.map_or(2048, |s| s.memory_mb),
            };
            let (built, report) =
                airlock_build::build_dockerfile(&docker, &req, &base_store, work, tag)
                    .await
                    .map_err(from_build_error)?;
            BuildOutcome {
                built,
                mode: "dockerfile",
                stack: stack.map(|s| s.name.clone()),
                base_name: report.base.name.clone(),
                builder_image_name: None,
                reason: "Dockerfile built by the Docker Engine's classic builder".into(),
                dockerfile: serde_json::to_value(&report).unwrap_or(Value::Null),
                smoke: Value::Null,
                smoke_log: None,
            }
        }
        BuildMode::Standard => {
            let stack = config
                .stack(descriptor.build.stack.as_deref())
                .map_err(BuildStop::Refused)?;
            let (builder, reason) = airlock_build::choose_builder(stack).await;
            let req = BuildRequest {
                src_dir: src,
                descriptor,
                stack,
                source: meta,
                builder,
            };
            let built = airlock_build::build_standard(&req, &base_store, work, tag)
                .await
                .map_err(from_build_error)?;
            BuildOutcome {
                built,
                mode: "standard",
                stack: Some(stack.name.clone()),
                base_name: stack.run_image.clone(),
                builder_image_name: stack.builder_image.clone(),
                reason,
                dockerfile: Value::Null,
                smoke: Value::Null,
                smoke_log: None,
            }
        }
    };
    // An image that cannot start must not be signed: smoke-test it whenever an engine answers.
    outcome.smoke = if !smoke {
        json!({ "result": "skipped", "reason": "not asked for" })
    } else {
        match airlock_build::connect_docker().await {
            Ok(docker) => {
                let spec = airlock_build::SmokeSpec::from_descriptor(descriptor);
                let report = airlock_build::smoke_test_from_store(
                    &docker,
                    work,
                    outcome.built.digest.as_str(),
                    &descriptor.app.name,
                    &spec,
                )
                .await
                .map_err(from_build_error)?;
                outcome.smoke_log = Some(report.log.clone());
                json!({ "result": "passed", "checked": report.checked, "status": report.status,
                        "elapsed_ms": report.elapsed_ms })
            }
            Err(e) => json!({ "result": "skipped", "reason": format!("no Docker Engine: {e}") }),
        }
    };
    Ok(outcome)
}

/// The descriptor of `dir`: its `airlock.toml`, or, when there is none but a Dockerfile, a Dockerfile build
/// named after the directory (the smoke test is then skipped: no port or health path is declared).
fn load_descriptor(dir: &Path) -> anyhow::Result<(AppDescriptor, bool)> {
    if dir.join(airlock_descriptor::DESCRIPTOR_FILE).exists() {
        return Ok((AppDescriptor::load(dir)?, true));
    }
    if !dir.join("Dockerfile").is_file() {
        anyhow::bail!(
            "{} has neither airlock.toml nor a Dockerfile: a standard build needs airlock.toml with \
             [build] stack, command and artifacts",
            dir.display()
        );
    }
    let name: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-');
    let name = if name.is_empty() { "app" } else { name };
    let text = format!(
        "[app]\nname = {:?}\nteam = \"local\"\n[build]\nmode = \"dockerfile\"\n[run]\ncommand = []\nport = 8080\n",
        &name[..name.len().min(63)]
    );
    Ok((AppDescriptor::from_toml_str(&text)?, false))
}

/// `airlock-gate build`: builds, prints the digest on stdout, writes the image to `--to`.
pub async fn run(args: BuildArgs) -> anyhow::Result<()> {
    let destination = ImageRef::parse(&args.to).with_context(|| format!("--to {}", args.to))?;
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("source directory {}", args.dir.display()))?;
    let (descriptor, declared) = load_descriptor(&dir)?;
    let scratch = tempfile::Builder::new()
        .prefix("airlock-build-")
        .tempdir()
        .context("creating a scratch directory")?;
    let config = match &args.config {
        Some(path) => GateConfig::load(path)?,
        None => {
            let done = crate::init::init_data_dir(&scratch.path().join("data"), None)
                .await
                .context("making the embedded default platform config")?;
            done.config
        }
    };
    let work = airlock_oci::OciLayout::create(&scratch.path().join("work"))?;
    let meta = SourceMeta {
        repository: format!("file://{}", dir.display()),
        commit: args.revision.clone(),
        commit_time: args.source_date_epoch,
    };
    let started = std::time::Instant::now();
    let outcome = build_source(
        &config,
        &dir,
        &descriptor,
        &meta,
        &work,
        "build",
        !args.no_smoke && declared,
    )
    .await
    .map_err(|stop| anyhow::anyhow!("{stop}"))?;
    let digest = outcome.built.digest.clone();
    eprintln!(
        "built {} ({} build, {} builder, base {}) in {:.1} s; smoke test {}",
        descriptor.app.name,
        outcome.mode,
        outcome.built.builder,
        outcome.base_name,
        started.elapsed().as_secs_f64(),
        outcome
            .smoke
            .get("result")
            .and_then(Value::as_str)
            .unwrap_or("skipped"),
    );

    if let ImageRef::DockerDaemon { name, tag } = &destination {
        let docker = airlock_build::connect_docker().await?;
        airlock_build::load_into_docker(&docker, &work, digest.as_str(), &format!("{name}:{tag}"))
            .await?;
    } else {
        let options = OpenOptions {
            insecure_hosts: args.insecure_hosts.clone(),
            docker_config: None,
        };
        let (opened, tag) = destination.open_destination(&options)?;
        airlock_oci::copy_image(&work, opened.store(), digest.as_str(), tag.as_deref())
            .await
            .with_context(|| format!("writing the image to {}", args.to))?;
        opened
            .finish()
            .await
            .with_context(|| format!("finishing {}", args.to))?;
    }
    eprintln!("wrote {}", args.to);
    println!("{digest}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_builds_are_recorded_as_host_for_the_policy_input() {
        let digest = airlock_oci::Digest::of(b"image");
        let outcome = BuildOutcome {
            built: BuiltImage {
                digest: digest.clone(),
                config: airlock_oci::ImageConfig::new("amd64", "linux"),
                base_digest: airlock_oci::Digest::of(b"base"),
                builder: airlock_build::BuilderKind::Host,
                builder_image_digest: None,
                app_layer: digest,
                log: String::new(),
            },
            mode: "standard",
            stack: Some("rust-static".into()),
            base_name: "static".into(),
            builder_image_name: None,
            reason: "no Docker Engine".into(),
            dockerfile: Value::Null,
            smoke: json!({"result": "skipped"}),
            smoke_log: None,
        };
        let record = outcome.to_json();
        assert_eq!(record["builder"], "host");
        assert_eq!(record["mode"], "standard");
        assert_eq!(record["base"]["name"], "static");
        assert!(record["builder_image"].is_null());
    }

    #[test]
    fn directory_with_only_a_dockerfile_is_a_dockerfile_build() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("My_Web");
        std::fs::create_dir(&dir).unwrap();
        let err = load_descriptor(&dir).unwrap_err().to_string();
        assert!(
            err.contains("neither airlock.toml nor a Dockerfile"),
            "{err}"
        );
        std::fs::write(dir.join("Dockerfile"), "FROM static\n").unwrap();
        let (descriptor, declared) = load_descriptor(&dir).unwrap();
        assert!(!declared);
        assert_eq!(descriptor.app.name, "my-web");
        assert_eq!(descriptor.build_mode(&dir), BuildMode::Dockerfile);
    }
}
