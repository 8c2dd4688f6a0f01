//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while inventorying, importing, looking up or matching.
///
/// Each variant names the input that was wrong (a path, a layer digest, a record id) so the
/// message alone tells an operator where to look.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "writing", ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A layer could not be decompressed or its tar stream is broken.
    #[error("layer {layer}: {message}")]
    Layer {
        /// Digest of the layer.
        layer: String,
        /// What is wrong with it.
        message: String,
    },
    /// Some input exceeds a limit this crate enforces.
    #[error("{what} exceeds the limit of {limit}")]
    Limit {
        /// What grew too large (names the file or layer).
        what: String,
        /// The limit.
        limit: u64,
    },
    /// The import source is not an OSV zip nor a directory of OSV JSON files, or a record is broken.
    #[error("OSV import from {path}: {message}")]
    Import {
        /// The zip or directory being imported.
        path: PathBuf,
        /// What is wrong (names the entry when it is one record).
        message: String,
    },
    /// A file of the on-disk vulnerability database is corrupt.
    #[error("vulnerability database file {path} is corrupt: {message}")]
    CorruptDb {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Another import holds the database lock.
    #[error("vulnerability database {path} is locked by another import")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A background task (inventory or matching) panicked or was cancelled.
    #[error("{what}: background task failed: {message}")]
    Task {
        /// What the task was doing (names the layer or image).
        what: String,
        /// The join error.
        message: String,
    },
    /// The image could not be read from the store.
    #[error("reading image {reference}: {source}")]
    Image {
        /// The reference asked for.
        reference: String,
        /// The error from the OCI layer.
        #[source]
        source: airlock_oci::Error,
    },
}

impl ScanError {
    /// Wraps an I/O error with the action and the path it concerned.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        ScanError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
