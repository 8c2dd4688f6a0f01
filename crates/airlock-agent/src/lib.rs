//! The outer-loop side of airlock: `airlock-agent` pulls releases across the
//! boundary, trusts only what verifies, and applies it.
//!
//! One [`sync_once`] pass looks at every app in the release source (an OCI
//! layout the gate published into), takes its newest `release-*` tag and,
//! unless the target already runs that sequence, verifies it with
//! `airlock-sign` (release and image signatures by a trusted key, the SLSA
//! provenance, CycloneDX SBOM and policy-decision attestations, and a sequence
//! newer than the deployed one, so an old release can never be replayed). It
//! then asks the admission policy (`airlock.admission`, Rego) whether the
//! release may enter this environment, and only then writes the environment's
//! manifests to the target, atomically. Anything that fails a check is
//! refused with the reason and nothing is written for it.
//!
//! The agent holds public keys only and never links the Docker or database
//! clients; nothing in the inner loop can call it.

pub mod admission;
pub mod error;
pub mod spec;
pub mod sync;
pub mod target;

pub use error::AgentError;
pub use spec::{SourceSpec, SpecError, TargetSpec};
pub use sync::{Applied, Refusal, SyncConfig, SyncReport, load_trust, sync_once};
pub use target::{DirectoryTarget, ReleaseRecord, TargetError};
