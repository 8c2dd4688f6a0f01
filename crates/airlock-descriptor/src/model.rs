//! The validated app descriptor: what the gate builds and how the app runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A parsed and validated `airlock.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppDescriptor {
    /// Who the app is: `[app]`.
    pub app: AppSection,
    /// How to build its image: `[build]`.
    pub build: BuildSection,
    /// How its container runs: `[run]`.
    pub run: RunSection,
    /// How it is deployed: `[deploy]`.
    pub deploy: DeploySection,
}

/// `[app]`: the app's name (a DNS-1123 label, used for every Kubernetes object) and owning team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppSection {
    /// DNS-1123 label, at most 63 characters.
    pub name: String,
    /// Owning team, also a DNS-1123 label (it becomes a label value).
    pub team: String,
}

/// How the gate turns source into an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildMode {
    /// `docker build` with the repository's Dockerfile.
    Dockerfile,
    /// Build in an approved builder image, copy artifacts onto an approved run image.
    Standard,
}

/// `[build]`: inputs for either build mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BuildSection {
    /// Explicit mode; when absent it is detected (see [`AppDescriptor::build_mode`]).
    pub mode: Option<BuildMode>,
    /// Standard builds: name of an approved stack in the platform config.
    pub stack: Option<String>,
    /// Standard builds: shell command run in the builder image.
    pub command: Option<String>,
    /// Standard builds: files copied from the build workspace into the image.
    pub artifacts: Vec<Artifact>,
    /// Dockerfile builds: path of the Dockerfile relative to the repository root.
    pub dockerfile: Option<String>,
    /// Dockerfile builds: multi-stage target.
    pub target: Option<String>,
    /// Dockerfile builds: build arguments.
    pub args: BTreeMap<String, String>,
}

/// One file copied from the build workspace into the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    /// Relative path in the build workspace.
    pub from: String,
    /// Absolute path in the image.
    pub to: String,
}

/// `[run]`: how the container is started and checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSection {
    /// argv of the process; empty means the image's own entrypoint (Dockerfile builds only).
    pub command: Vec<String>,
    /// TCP port the app listens on.
    pub port: u16,
    /// HTTP path answering 2xx when healthy, e.g. `/healthz`.
    pub health: Option<String>,
    /// Seconds the app may take to become healthy (TOML key `start_timeout`, default 30).
    pub start_timeout_secs: u64,
}

/// `[deploy]`: replicas, resources, environment, autoscaling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploySection {
    /// Pod count (default 1); environments may override it.
    pub replicas: u32,
    /// CPU and memory requests and limits; gaps are filled from the environment's defaults.
    pub resources: Resources,
    /// Environment variables (names are C identifiers).
    pub env: BTreeMap<String, String>,
    /// Horizontal autoscaling on CPU, when set.
    pub autoscale: Option<Autoscale>,
}

impl Default for DeploySection {
    fn default() -> Self {
        DeploySection {
            replicas: 1,
            resources: Resources::default(),
            env: BTreeMap::new(),
            autoscale: None,
        }
    }
}

/// `[deploy.autoscale]`: bounds and CPU target of a HorizontalPodAutoscaler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Autoscale {
    /// Fewest pods (at least 1).
    pub min: u32,
    /// Most pods (at least `min`).
    pub max: u32,
    /// Target average CPU utilisation, percent of the request (1..=100).
    pub cpu_percent: u32,
}

/// CPU and memory as Kubernetes quantities (`"250m"`, `"128Mi"`); also the shape of an
/// environment's defaults in the gate config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU request.
    pub cpu: Option<String>,
    /// Memory request.
    pub memory: Option<String>,
    /// CPU limit.
    pub cpu_limit: Option<String>,
    /// Memory limit.
    pub memory_limit: Option<String>,
}
