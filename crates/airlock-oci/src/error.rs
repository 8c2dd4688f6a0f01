//! The one error type of this crate. Every variant names the input that was wrong.
//!
//! `Display` and `std::error::Error` are written by hand rather than derived with `thiserror`: the contract
//! names a plain `String` field `source` in [`Error::DigestMismatch`], which `thiserror` would always treat as
//! the error's cause.

use std::path::PathBuf;

/// Everything that can go wrong while reading, writing or checking OCI objects.
#[derive(Debug)]
pub enum Error {
    /// A file-system operation failed on `path`.
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A string that should have been `sha256:<64 lowercase hex>` was not.
    InvalidDigest(String),
    /// Content did not hash to the digest it was stored or announced under.
    DigestMismatch {
        /// The digest the content was expected to have.
        digest: crate::Digest,
        /// Where the content came from (store description or "input").
        source: String,
    },
    /// A blob is not present in a store.
    BlobNotFound {
        /// The missing blob.
        digest: crate::Digest,
        /// The store that was asked.
        store: String,
    },
    /// No manifest exists for a tag or digest in a store.
    ManifestNotFound {
        /// The tag or digest asked for.
        reference: String,
        /// The store that was asked.
        store: String,
    },
    /// A manifest is larger than the 4 MiB the OCI distribution spec allows.
    ManifestTooLarge {
        /// The tag or digest of the manifest.
        reference: String,
        /// Its size in bytes.
        size: u64,
    },
    /// A manifest or layer has a media type this crate cannot handle here.
    UnsupportedMediaType {
        /// The media type found.
        media_type: String,
        /// What carried it (manifest reference or layer digest).
        reference: String,
    },
    /// A path inside a layer (or a tag used as a file name) is not acceptable.
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// A repository name does not follow the OCI distribution naming rules.
    InvalidRepository(String),
    /// JSON could not be read or written.
    Json {
        /// What was being parsed (e.g. "manifest sha256:..", "index.json of oci:/x").
        what: String,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A tag is not `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
    InvalidTag(String),
    /// Input exceeded one of this crate's limits.
    TooLarge {
        /// What was too large or too many.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// Supplied blob bytes have the right digest but not the size the descriptor claims.
    SizeMismatch {
        /// The blob.
        digest: crate::Digest,
        /// The size in the descriptor.
        expected: u64,
        /// The size of the bytes.
        actual: u64,
    },
    /// A manifest or config is well-formed JSON but not a usable image.
    InvalidImage {
        /// The manifest reference or digest.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An image reference (`docker://..`, `oci:..`, ..) could not be parsed.
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An OCI layout archive (tar) is malformed, truncated or incomplete.
    InvalidArchive {
        /// The archive file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The Docker Engine refused or failed an operation.
    DockerDaemon {
        /// The image involved.
        image: String,
        /// What went wrong.
        message: String,
    },
    /// A registry answered with an error.
    Registry {
        /// The registry and repository.
        store: String,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    /// Shorthand for [`Error::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`Error::InvalidPath`].
    pub(crate) fn path(path: &str, reason: impl Into<String>) -> Self {
        Error::InvalidPath {
            path: path.to_string(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "I/O error on {}: {source}", path.display()),
            Error::InvalidDigest(s) => write!(
                f,
                "invalid digest {s:?}: expected \"sha256:\" followed by 64 lowercase hex characters"
            ),
            Error::DigestMismatch { digest, source } => {
                write!(
                    f,
                    "digest mismatch for {digest}: the bytes from {source} hash to something else"
                )
            }
            Error::BlobNotFound { digest, store } => {
                write!(f, "blob {digest} not found in {store}")
            }
            Error::ManifestNotFound { reference, store } => {
                write!(f, "manifest {reference} not found in {store}")
            }
            Error::ManifestTooLarge { reference, size } => write!(
                f,
                "manifest {reference} is {size} bytes, more than the {} bytes allowed",
                crate::MAX_MANIFEST_SIZE
            ),
            Error::UnsupportedMediaType {
                media_type,
                reference,
            } => {
                write!(f, "unsupported media type {media_type:?} for {reference}")
            }
            Error::InvalidPath { path, reason } => write!(f, "invalid path {path:?}: {reason}"),
            Error::InvalidRepository(name) => write!(
                f,
                "invalid repository name {name:?}: expected lowercase [a-z0-9] components separated by '.', '_', '-' or '/'"
            ),
            Error::Json { what, source } => write!(f, "invalid JSON in {what}: {source}"),
            Error::InvalidTag(tag) => {
                write!(
                    f,
                    "invalid tag {tag:?}: expected [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}"
                )
            }
            Error::TooLarge { what, limit } => write!(f, "{what} exceeds the limit of {limit}"),
            Error::SizeMismatch {
                digest,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "blob {digest} is {actual} bytes but its descriptor says {expected}"
                )
            }
            Error::InvalidImage { reference, reason } => {
                write!(f, "invalid image {reference}: {reason}")
            }
            Error::Registry { store, message } => write!(f, "registry {store}: {message}"),
            Error::InvalidReference { reference, reason } => {
                write!(f, "invalid image reference {reference:?}: {reason}")
            }
            Error::InvalidArchive { path, reason } => {
                write!(f, "invalid OCI archive {}: {reason}", path.display())
            }
            Error::DockerDaemon { image, message } => {
                write!(f, "Docker Engine, image {image}: {message}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Json { source, .. } => Some(source),
            _ => None,
        }
    }
}
