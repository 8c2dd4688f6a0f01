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
    /// The mirror given (`mirror = ...` or `--mirror`) is not `HOST/PREFIX`.
    #[error("invalid mirror {mirror:?}: {reason}")]
    BadMirror {
        /// The mirror as given.
        mirror: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The mirror's credentials could not be read (a malformed Docker client config): startup stops
    /// rather than mirror anonymously. The reason names the file, never a secret.
    #[error("cannot read the credentials for mirror {mirror}: {reason}")]
    MirrorCredentials {
        /// The mirror, `HOST/PREFIX`.
        mirror: String,
        /// What is wrong, naming the file.
        reason: String,
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
    /// An OCI archive could not be unpacked (or holds something the agent refuses to unpack).
    #[error("cannot read the archive {file}: {reason}")]
    Archive {
        /// The archive file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A registry source was given without the apps to poll.
    #[error(
        "the registry source {source_spec} needs the apps to poll: give --app NAME (repeatable) or `apps` in the config"
    )]
    NoApps {
        /// The source as given.
        source_spec: String,
    },
    /// The agent's evidence key could not be loaded.
    #[error("cannot load the evidence signing key {path}: {source}")]
    EvidenceKey {
        /// The key file.
        path: PathBuf,
        /// What the signing crate reported.
        source: airlock_sign::SignError,
    },
    /// An environment needs promotion evidence but no evidence store or trusted evidence key is configured.
    #[error(
        "environment {env} comes after {after}: configure [evidence] with a store and trust_keys to verify its soak"
    )]
    NoEvidenceStore {
        /// This environment.
        env: String,
        /// The earlier environment.
        after: String,
    },
    /// An explicit rollback could not be done.
    #[error("cannot roll {app} back to release {sequence}: {reason}")]
    Rollback {
        /// The app.
        app: String,
        /// The release asked for.
        sequence: u64,
        /// Why not.
        reason: String,
    },
    /// The config file is unreadable or invalid.
    #[error("config {path}: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming the key.
        reason: String,
    },
    /// The revocation list is present but cannot be trusted: nothing is applied until it can.
    #[error(
        "cannot trust the revocation list of {source_spec}: {reason}; nothing is applied until it verifies"
    )]
    Revocations {
        /// The source.
        source_spec: String,
        /// Why.
        reason: String,
    },
}
