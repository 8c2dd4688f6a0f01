//! What the platform decides per environment, and what the gate knows about one release.

use airlock_descriptor::Resources;
use serde::{Deserialize, Serialize};

/// One target environment (staging, production...) as configured in the gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSettings {
    /// Environment name, a DNS-1123 label (`staging`).
    pub name: String,
    /// Namespace the app is deployed into (DNS-1123 label, not `default`).
    pub namespace: String,
    /// Fixed replica count for this environment; overrides the descriptor and disables autoscaling.
    #[serde(default)]
    pub replicas: Option<u32>,
    /// Requests and limits used where the descriptor gives none.
    #[serde(default)]
    pub default_resources: Resources,
    /// Largest CPU request/limit allowed, in millicores.
    #[serde(default)]
    pub max_cpu_millis: Option<u64>,
    /// Largest memory request/limit allowed, in bytes.
    #[serde(default)]
    pub max_memory_bytes: Option<u64>,
    /// Namespace of the ingress controller, the only one allowed to reach the app's port.
    pub ingress_namespace: String,
    /// Image reference prefix rewrite `(from, to)`, e.g. the gate's registry to the outer mirror.
    #[serde(default)]
    pub registry_rewrite: Option<(String, String)>,
}

/// Facts about the release being rendered, recorded as labels and annotations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderMeta {
    /// Image by digest, `repo@sha256:<64 hex>` (before registry rewrite).
    pub image: String,
    /// Source commit the image was built from.
    pub commit: String,
    /// Gate run that produced the release.
    pub run_id: String,
    /// Per-app release sequence number (anti-rollback), also the version label.
    pub release_sequence: u64,
    /// Owning team (label value).
    pub team: String,
}
