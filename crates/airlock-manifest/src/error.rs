//! The one error type of this crate; each variant names the field and value that were wrong.

/// Why manifests could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// An input value cannot be used (not a DNS label, image not by digest, bad quantity...).
    #[error("{field} {value:?} {reason}")]
    Invalid {
        /// Dotted name of the field, e.g. `app.name` or `meta.image`.
        field: String,
        /// The offending value (never a secret: descriptors and settings hold none).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A resource request is above the environment's ceiling.
    #[error("{field} {value:?} is above the ceiling of environment {environment:?} ({ceiling})")]
    AboveCeiling {
        /// Where the request came from, e.g. `deploy.resources.cpu`.
        field: String,
        /// The requested quantity as written.
        value: String,
        /// The environment whose ceiling it exceeds.
        environment: String,
        /// The ceiling, as a quantity.
        ceiling: String,
    },
    /// The YAML serialiser failed on a file.
    #[error("cannot write {file} as YAML: {message}")]
    Yaml {
        /// The manifest file being written.
        file: String,
        /// The serialiser's message.
        message: String,
    },
}

impl ManifestError {
    pub(crate) fn invalid(
        field: &str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ManifestError::Invalid {
            field: field.to_string(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}
