//! Hardened Kubernetes manifests for one app in one environment.
//!
//! [`render`] takes the app's validated descriptor ([`airlock_descriptor::AppDescriptor`]), the
//! platform's settings for the target environment ([`EnvironmentSettings`]) and the facts of
//! the release ([`RenderMeta`]) and returns YAML files ready for `kubectl apply -k`:
//!
//! | file | when | what |
//! | --- | --- | --- |
//! | `serviceaccount.yaml` | always | the app's own ServiceAccount, no API token mounted |
//! | `networkpolicy.yaml` | always | ingress only to the app port from the ingress namespace; egress only DNS |
//! | `service.yaml` | always | ClusterIP service, port `http` |
//! | `deployment.yaml` | always | image by digest; non-root 65532, read-only root, no privilege escalation, all capabilities dropped, RuntimeDefault seccomp; requests and limits; startup/readiness/liveness probes (HTTP on `run.health`, else TCP); `/tmp` as emptyDir; spread over nodes |
//! | `poddisruptionbudget.yaml` | more than one pod possible | `maxUnavailable: 1` |
//! | `horizontalpodautoscaler.yaml` | `deploy.autoscale` set and no environment replica override | autoscaling/v2 on CPU |
//! | `kustomization.yaml` | always | lists the files above |
//!
//! Output is byte-identical for identical input: maps are written in a fixed order by the
//! crate's own ordered tree and serialised with `serde-saphyr` (which quotes strings YAML 1.1
//! would read as booleans or numbers).
//!
//! Resources: the descriptor's value, else the environment's default, else 100m CPU / 128Mi
//! memory. A request above the environment ceiling is an error naming the field; a limit above
//! it is lowered to the ceiling. Without a limit, memory is limited to its request and CPU to
//! the ceiling (else 1 core or the request if larger). An environment's `replicas` overrides
//! the descriptor and disables autoscaling; with autoscaling the Deployment has no `replicas`
//! field so that applying a release does not fight the autoscaler.
//!
//! # Checked by
//!
//! Tests run `kubernetes-validate --strict` (Kubernetes 1.29 and 1.33 schemas) on every file
//! and checkov 3.3 (Kubernetes framework) on the rendered directory: 92 checks pass and none
//! fails, so no failure is accepted. (`CKV_K8S_15`, "pull policy Always", passes because the
//! image is pinned by digest: `IfNotPresent` cannot run stale code and keeps pods starting
//! when the registry is unreachable.)
//!
//! ```
//! use airlock_descriptor::{AppDescriptor, Resources};
//! use airlock_manifest::{render, EnvironmentSettings, RenderMeta};
//!
//! let app = AppDescriptor::from_toml_str(
//!     "[app]\nname = \"hello\"\nteam = \"shop\"\n[run]\nport = 8080\nhealth = \"/healthz\"\n",
//! )?;
//! let env = EnvironmentSettings {
//!     name: "staging".into(),
//!     namespace: "shop-staging".into(),
//!     replicas: None,
//!     default_resources: Resources::default(),
//!     max_cpu_millis: Some(2000),
//!     max_memory_bytes: None,
//!     ingress_namespace: "ingress-nginx".into(),
//!     registry_rewrite: None,
//! };
//! let meta = RenderMeta {
//!     image: format!("registry.example/shop/hello@sha256:{}", "ab".repeat(32)),
//!     commit: "0123abc".into(),
//!     run_id: "run-42".into(),
//!     release_sequence: 7,
//!     team: "shop".into(),
//! };
//! let out = render(&app, &env, &meta)?;
//! assert!(out.files["deployment.yaml"].contains("readOnlyRootFilesystem: true"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod check;
mod deployment;
mod error;
mod labels;
mod networkpolicy;
mod node;
mod render;
mod resources;
mod scaling;
mod service;
mod settings;

pub use deployment::{CONTAINER_NAME, PORT_NAME, RUN_AS_ID};
pub use error::ManifestError;
pub use labels::{COMMIT_ANNOTATION, RELEASE_ANNOTATION, RUN_ANNOTATION, TEAM_LABEL};
pub use networkpolicy::NAMESPACE_NAME_LABEL;
pub use render::{RenderedEnvironment, render};
pub use resources::{FALLBACK_CPU, FALLBACK_MEMORY};
pub use settings::{EnvironmentSettings, RenderMeta};
