//! Error types of this crate. Every variant names the input that was wrong.

use std::path::PathBuf;

/// Errors while taking source in: unpacking a tarball or fetching a git commit.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An archive or tree entry would escape the destination or is of a refused kind.
    #[error("source entry {path:?} refused: {reason}")]
    UnsafeEntry {
        /// The entry path as written in the archive or tree.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// A size, count or ratio limit was exceeded.
    #[error("source limit exceeded at entry {path:?}: {what}")]
    LimitExceeded {
        /// The entry being read when the limit was hit.
        path: String,
        /// Which limit and by how much.
        what: String,
    },
    /// The tarball is not valid gzip/tar.
    #[error("source tarball is corrupt at entry {path:?}: {source}")]
    Corrupt {
        /// The entry being read (or the one before it).
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The destination directory exists and holds something.
    #[error("destination {path} already exists and is not empty")]
    DestNotEmpty {
        /// The destination.
        path: PathBuf,
    },
    /// Writing a file or directory failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Cloning, fetching or reading the git repository failed.
    #[error("git source {url} at {rev:?}: {message}")]
    Git {
        /// The repository URL or path.
        url: String,
        /// The commit or ref asked for.
        rev: String,
        /// What went wrong.
        message: String,
    },
}

/// Errors of a build: the command, the artifacts, the base image, the Docker Engine or the image store.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The build command exited non-zero.
    #[error("build command failed with exit code {exit_code}; last output:\n{log_tail}")]
    CommandFailed {
        /// Its exit code (-1 when killed by a signal).
        exit_code: i64,
        /// The end of its output.
        log_tail: String,
    },
    /// The build command ran longer than the stack allows and was killed.
    #[error("build command timed out after {after_secs} s and was killed")]
    TimedOut {
        /// The stack's timeout.
        after_secs: u64,
    },
    /// An artifact named in `airlock.toml` was not produced.
    #[error("artifact {path:?} does not exist in the build workspace after the build")]
    ArtifactMissing {
        /// The artifact's `from` path.
        path: String,
    },
    /// An artifact path leads outside the build workspace (`..`, absolute, or a symlink out).
    #[error("artifact {path:?} resolves outside the build workspace ({reason})")]
    ArtifactEscapes {
        /// The artifact's `from` path.
        path: String,
        /// How it escapes.
        reason: String,
    },
    /// The run base in the store is not the pinned one.
    #[error("run base image digest is {found}, but the stack pins {expected}")]
    BaseMismatch {
        /// The digest the stack pins.
        expected: airlock_oci::Digest,
        /// The digest found in the base store.
        found: airlock_oci::Digest,
    },
    /// The built image did not start or did not answer its health path with 2xx in time.
    #[error("smoke test failed: {reason}; last container output:\n{log_tail}")]
    SmokeFailed {
        /// What was checked and how it failed.
        reason: String,
        /// The end of the container's output.
        log_tail: String,
    },
    /// A Dockerfile was refused before building (unapproved base, remote `ADD`, ...).
    #[error("{file} line {line}: {reason}")]
    DockerfileRefused {
        /// The Dockerfile's path in the source.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// Why, and what would be accepted.
        reason: String,
    },
    /// The builder image in the Docker Engine is not the one the stack pins.
    #[error(
        "builder image {image} in the Docker Engine is {found}, but stack {stack} pins {expected}"
    )]
    BuilderMismatch {
        /// The stack's name.
        stack: String,
        /// The builder image reference.
        image: String,
        /// The pinned image id.
        expected: String,
        /// The id found in the Engine.
        found: String,
    },
    /// The descriptor or stack lacks something a standard build needs.
    #[error("cannot build: {0}")]
    Invalid(String),
    /// The Docker Engine refused or failed a request.
    #[error("Docker Engine: {what}: {source}")]
    Docker {
        /// What was being done (names the image or container).
        what: String,
        /// The underlying error.
        #[source]
        source: bollard::errors::Error,
    },
    /// Reading or writing OCI objects failed.
    #[error(transparent)]
    Oci(#[from] airlock_oci::Error),
    /// Copying the source or downloaded artifacts failed its checks.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A file-system operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl BuildError {
    /// Shorthand for [`BuildError::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BuildError::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`BuildError::Docker`].
    pub(crate) fn docker(what: impl Into<String>, source: bollard::errors::Error) -> Self {
        BuildError::Docker {
            what: what.into(),
            source,
        }
    }
}
