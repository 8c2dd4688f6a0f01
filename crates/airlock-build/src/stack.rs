//! Stacks: the platform's approved pairs of builder image and run base, and choosing where to build.

use std::collections::BTreeMap;

use airlock_oci::Digest;
use serde::{Deserialize, Serialize};

/// An approved stack from the gate config: where standard builds run and what they run on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stack {
    /// The stack's name as apps write it in `build.stack`.
    pub name: String,
    /// Image the Docker Engine has (`name:tag` or `name@sha256:..`) in which the build command runs;
    /// `None` means host builds only.
    #[serde(default)]
    pub builder_image: Option<String>,
    /// The builder image's id in the Engine (`sha256:` of its config): a build refuses any other image
    /// under that name. Also what lets a Dockerfile start `FROM` the builder image.
    #[serde(default)]
    pub builder_image_digest: Option<String>,
    /// Reference (tag or digest) of the run base in the base store.
    pub run_image: String,
    /// The run base's manifest digest; a build refuses any other.
    pub run_image_digest: Digest,
    /// Extra environment for the build command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Wall-clock limit of the build command.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Memory limit of the builder container.
    #[serde(default = "default_memory")]
    pub memory_mb: u64,
    /// CPU limit of the builder container.
    #[serde(default = "default_cpus")]
    pub cpus: f64,
    /// Whether the builder container gets a network (off by default: builds must be hermetic).
    #[serde(default)]
    pub network: bool,
}

fn default_timeout() -> u64 {
    1800
}
fn default_memory() -> u64 {
    2048
}
fn default_cpus() -> f64 {
    2.0
}

/// Where a standard build runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuilderKind {
    /// In a container of the stack's builder image, through the Docker Engine.
    Docker,
    /// Directly on the gate's host (development only; the run records it).
    Host,
}

impl std::fmt::Display for BuilderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BuilderKind::Docker => "docker",
            BuilderKind::Host => "host",
        })
    }
}

/// Where the Docker Engine is expected, for messages.
pub(crate) fn docker_location() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "/var/run/docker.sock".to_string())
}

/// Connects to the local Docker Engine and negotiates the API version (Debian's engine speaks 1.41).
pub async fn connect_docker() -> Result<bollard::Docker, crate::BuildError> {
    let where_ = docker_location();
    let docker = bollard::Docker::connect_with_local_defaults()
        .map_err(|e| crate::BuildError::docker(format!("connecting to {where_}"), e))?;
    let docker = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        docker.negotiate_version(),
    )
    .await
    .map_err(|_| {
        crate::BuildError::Invalid(format!(
            "Docker Engine not answering at {where_} within 5 s"
        ))
    })?
    .map_err(|e| {
        crate::BuildError::docker(format!("negotiating the API version at {where_}"), e)
    })?;
    Ok(docker)
}

/// Picks the Docker builder when the Engine answers and has the stack's builder image, else the host;
/// the reason says why, for the run record.
pub async fn choose_builder(stack: &Stack) -> (BuilderKind, String) {
    let Some(image) = stack.builder_image.as_deref() else {
        return (
            BuilderKind::Host,
            format!("stack {} has no builder image", stack.name),
        );
    };
    let docker = match connect_docker().await {
        Ok(d) => d,
        Err(e) => {
            return (
                BuilderKind::Host,
                format!("Docker Engine not answering at {}: {e}", docker_location()),
            );
        }
    };
    match docker.inspect_image(image).await {
        Ok(_) => (
            BuilderKind::Docker,
            format!(
                "builder image {image} found in the Docker Engine at {}",
                docker_location()
            ),
        ),
        Err(_) => (
            BuilderKind::Host,
            format!("builder image {image} not in the Docker Engine"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stack_from_toml_with_defaults() {
        let text = r#"
            name = "busybox"
            builder_image = "airlock/busybox:1"
            run_image = "static"
            run_image_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
        "#;
        let stack: Stack = toml::from_str(text).unwrap();
        assert_eq!(stack.timeout_secs, 1800);
        assert!(!stack.network);
        assert_eq!(stack.builder_image.as_deref(), Some("airlock/busybox:1"));
    }

    #[test]
    fn rejects_unknown_stack_key() {
        let text = r#"
            name = "x"
            run_image = "static"
            run_image_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
            netwrok = true
        "#;
        let err = toml::from_str::<Stack>(text).unwrap_err().to_string();
        assert!(err.contains("netwrok"), "{err}");
    }

    #[test]
    fn builder_kind_displays_and_parses_lowercase() {
        assert_eq!(BuilderKind::Docker.to_string(), "docker");
        assert_eq!(BuilderKind::Host.to_string(), "host");
        let k: BuilderKind = serde_json::from_str("\"host\"").unwrap();
        assert_eq!(k, BuilderKind::Host);
    }

    #[tokio::test]
    async fn stack_without_builder_image_builds_on_host() {
        let stack: Stack = toml::from_str(
            r#"
            name = "plain"
            run_image = "static"
            run_image_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
        "#,
        )
        .unwrap();
        let (kind, reason) = choose_builder(&stack).await;
        assert_eq!(kind, BuilderKind::Host);
        assert!(reason.contains("no builder image"), "{reason}");
    }
}
