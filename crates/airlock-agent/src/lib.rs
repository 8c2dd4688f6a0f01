//! The outer-loop side of airlock: `airlock-agent` pulls releases across the
//! boundary, trusts only what verifies, and applies it.
//!
//! An [`Agent`] reconciles one environment: for every app of the source (an
//! OCI layout, an OCI archive carried across an air gap, or a registry
//! repository prefix) it takes the newest `release-*` tag and, unless the
//! target already runs that sequence, verifies it with `airlock-sign`
//! (release and image signatures by a trusted key, the SLSA provenance,
//! CycloneDX SBOM and policy-decision attestations about that image), checks
//! it is newer than anything applied before (anti-rollback; an explicit
//! [`Agent::rollback`] is recorded in the target), asks the admission policy
//! (`airlock.admission`, Rego), waits for the promotion soak when the
//! environment comes after another (verifying signed health evidence, see
//! [`evidence`]), and writes the environment's manifests to the target
//! (a directory, atomically, one git commit per release, or a Kubernetes
//! cluster by server-side apply, see [`kubernetes`]). What runs is compared
//! with the target every cycle and drift is rewritten. Anything that
//! fails a check is refused with the reason and nothing is written for it.
//!
//! The agent holds public keys only (plus, optionally, its own key for the
//! health evidence it publishes) and never links the Docker or database
//! clients; nothing in the inner loop can call it.

pub mod admission;
pub mod config;
pub mod deploy;
pub mod error;
pub mod evidence;
pub mod git;
pub mod kubernetes;
pub mod metrics;
pub mod mirror;
pub mod rescan;
pub mod server;
pub mod source;
pub mod spec;
pub mod sync;
pub mod target;

pub use deploy::{AppStatus, EnvStatus, Target};
pub use error::AgentError;
pub use evidence::EvidenceConfig;
pub use git::GitTarget;
pub use kubernetes::{KubernetesSpec, KubernetesTarget};
pub use metrics::Metrics;
pub use source::{Source, SourceOptions, import_archive};
pub use spec::{SourceSpec, SpecError, TargetSpec};
pub use sync::{
    Agent, Applied, Correction, Failure, Promotion, Refusal, SyncConfig, SyncReport, Waiting,
    load_trust, sync_once,
};
pub use target::{DirectoryTarget, ReleaseRecord, TargetError};
