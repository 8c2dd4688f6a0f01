//! Errors that stop a sync as a whole (as opposed to a refused release,
//! which is reported in the [`crate::SyncReport`] and does not stop the others).

use std::path::PathBuf;

/// Why a sync could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The release source could not be opened or listed.
    #[error("cannot read the release source {source_spec}: {source}")]
    Source {
        /// The source as given (`oci:DIR`).
        source_spec: String,
        /// What the OCI layer reported.
        source: airlock_oci::Error,
    },
    /// The source directory does not exist.
    #[error("the release source {source_spec} does not exist: check the path given to --source")]
    SourceMissing {
        /// The source as given (`oci:DIR`).
        source_spec: String,
    },
    /// The admission policies could not be loaded.
    #[error("cannot load the admission policies from {path}: {source}")]
    Policy {
        /// The policy directory.
        path: PathBuf,
        /// What the policy crate reported.
        source: Box<airlock_policy::PolicyError>,
    },
    /// The target could not be read or written.
    #[error(transparent)]
    Target(#[from] crate::target::TargetError),
    /// A trusted key could not be loaded.
    #[error("cannot load trusted key {path}: {source}")]
    TrustKey {
        /// The key file.
        path: PathBuf,
        /// What the signing crate reported.
        source: airlock_sign::SignError,
    },
    /// No trusted key was given: nothing could ever verify.
    #[error("no trusted key: give at least one --trust-key FILE (the gate's public key)")]
    NoTrustedKey,
    /// The environment name cannot be used.
    #[error(
        "environment {0:?} is not valid: expected 1-63 characters of [a-z0-9-], not starting with '-'"
    )]
    BadEnvironment(String),
}
