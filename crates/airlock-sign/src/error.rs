//! The one error type of this crate. Every variant names what failed and where.

use airlock_oci::Digest;

/// Everything that can go wrong while signing, attesting, publishing or verifying.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// No signature exists for `reference` (no `.sig` manifest, or one without signature layers).
    #[error("{reference} is not signed")]
    Unsigned {
        /// The manifest digest, tag or envelope that should have been signed.
        reference: String,
    },
    /// A signature is present but does not verify (tampered payload or signature, or a signer claiming a
    /// trusted key id it does not hold).
    #[error("bad signature on {reference}")]
    BadSignature {
        /// What was signed.
        reference: String,
    },
    /// Signatures are present, but none was made by a trusted key.
    #[error("{reference} is signed only by untrusted keys (key ids seen: {})", key_ids_seen.join(", "))]
    UntrustedKey {
        /// What was signed.
        reference: String,
        /// Key ids named by the signatures ("unknown" when a signature names none).
        key_ids_seen: Vec<String>,
    },
    /// A signed payload names another manifest digest than the one being verified (a moved signature).
    #[error("signature payload names digest {found}, expected {expected}")]
    PayloadDigestMismatch {
        /// The digest that was verified.
        expected: Digest,
        /// The digest found in the signed payload.
        found: String,
    },
    /// A signed payload names another repository than the expected one.
    #[error("signature is for docker reference {found:?}, expected {expected:?}")]
    ReferenceMismatch {
        /// The repository the caller expects.
        expected: String,
        /// The repository the signature names.
        found: String,
    },
    /// A release's config and manifest (or the repository) disagree about which image it deploys.
    #[error(
        "release {release} names image {config_image} in its config but {subject_image} in its manifest"
    )]
    ReleaseImageMismatch {
        /// The release manifest digest.
        release: Digest,
        /// The image (repository@digest) named by the release config.
        config_image: String,
        /// The image (repository@digest) named by the manifest subject and the verified repository.
        subject_image: String,
    },
    /// An attestation is about another image than the one it is attached to.
    #[error("attestation subject is {found}, expected {expected}")]
    AttestationSubjectMismatch {
        /// The image digest the attestation is attached to.
        expected: Digest,
        /// The subject digest(s) found in the statement.
        found: String,
    },
    /// No verified attestation of a required predicate type is attached to the image.
    #[error("no verified attestation with predicate type {predicate_type}")]
    AttestationMissing {
        /// The predicate type that is missing.
        predicate_type: String,
    },
    /// A release is not newer than the one deployed (anti-rollback).
    #[error("release sequence {sequence} is not newer than the deployed sequence {deployed}")]
    SequenceNotNewer {
        /// The sequence of the release offered.
        sequence: u64,
        /// The sequence already deployed.
        deployed: u64,
    },
    /// A key could not be read, parsed or encoded.
    #[error("key {what}: {reason}")]
    Key {
        /// The key file path, or what the key was (e.g. "PKCS#8 PEM private key").
        what: String,
        /// Why it failed (never key material).
        reason: String,
    },
    /// A release, signature or attestation object is malformed or exceeds a limit.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The object (e.g. "release release-0000000007", "layer sha256:..").
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The OCI store failed (missing manifest or blob, digest mismatch of stored content, I/O).
    #[error(transparent)]
    Oci(#[from] airlock_oci::Error),
    /// JSON could not be parsed or written.
    #[error("invalid JSON in {what}: {source}")]
    Json {
        /// What was being parsed.
        what: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
}

impl SignError {
    /// Shorthand for [`SignError::Invalid`].
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        SignError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`SignError::Json`].
    pub(crate) fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        SignError::Json {
            what: what.into(),
            source,
        }
    }
}
