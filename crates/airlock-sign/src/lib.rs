//! airlock-sign: the signatures and attestations that let the outer loop trust what the gate published.
//!
//! In plain words: the gate holds a private ECDSA P-256 key ([`SigningKey`]); the agent on the other side of
//! the boundary holds only public keys ([`TrustSet`], several so a key rotation has no gap). With them:
//!
//! - images are signed the way `cosign sign --key` signs them ([`sign_manifest`],
//!   [`verify_manifest_signature`]): a "simple signing" payload naming repository and manifest digest,
//!   stored under the tag `sha256-<hex>.sig`, so cosign and any other verifier can check them;
//! - facts about an image (SLSA provenance, SBOM, vulnerability report, policy decision) are in-toto
//!   statements in signed DSSE envelopes, attached under `sha256-<hex>.att` as `cosign attest` does
//!   ([`statement`], [`sign_envelope`], [`attach_attestations`], [`read_attestations`]);
//! - a release (which image, which commit, the rendered Kubernetes manifests per environment, a per-app
//!   sequence number) is an OCI artifact of its own media type, signed the same way
//!   ([`publish_release`]), and [`verify`] (or [`verify_release`]) checks all of it before the agent deploys
//!   anything, against a [`TrustConfig`]: the trusted keys (pinned by key id if wanted), mirrors allowed to
//!   serve another repository's releases, and the attestations required;
//! - a revocation list ([`publish_revocation`], [`read_revocations`]) names digests that must no longer run,
//!   signed the same way, at the fixed place [`REVOCATIONS_REPOSITORY`]`:`[`REVOCATIONS_TAG`] of the boundary.
//!
//! Keys are PKCS#8 PEM (SEC1 read too) or cosign's encrypted format ([`encrypted`]). A key id is `sha256:` +
//! the hex SHA-256 of the public key's SubjectPublicKeyInfo DER; it is the DSSE `keyid` and what a trust
//! configuration pins.
//!
//! Everything is read through [`airlock_oci::Store`], which verifies digests; this crate adds the signature,
//! identity, subject and anti-rollback checks, each failing with its own [`SignError`] variant.

pub mod attached;
pub mod cosign;
pub mod dsse;
pub mod encrypted;
pub mod error;
pub mod intoto;
pub mod keys;
pub mod manifests_tar;
pub mod predicates;
pub mod release;
pub mod revocation;
pub mod trust;
pub mod vulndb;

pub use cosign::{
    attestation_tag, sign_manifest, signature_tag, simple_signing_payload,
    verify_manifest_signature, verify_manifest_signature_for,
};
pub use dsse::{Envelope, EnvelopeSignature, pae};
pub use error::SignError;
pub use intoto::{
    VerifiedAttestation, attach_attestations, read_attestations, sign_envelope, statement,
    verify_envelope,
};
pub use keys::{KeyId, PublicKey, SigningKey, TrustSet};
pub use predicates::ProvenanceInput;
pub use release::{
    MANIFESTS_LAYER_TYPE, RELEASE_ARTIFACT_TYPE, ReleaseConfig, ReleaseImage, VerifiedRelease,
    publish_release, release_tag, verify, verify_release,
};
pub use revocation::{
    REVOCATIONS_REPOSITORY, REVOCATIONS_TAG, Revocation, RevocationList, publish_revocation,
    read_revocations,
};
pub use trust::TrustConfig;
pub use vulndb::{
    VULNDB_REPOSITORY, VULNDB_TAG, VerifiedVulnDb, VulnDbInfo, pack_vulndb_dir, publish_vulndb,
    read_vulndb, unpack_vulndb,
};
