//! Promotion evidence: an environment's agent publishes, for the release it runs, a signed DSSE attestation
//! "release R has been healthy in environment E since T" into the outer loop's own store; the agent of a
//! later environment (`after = E`, `soak = D`) verifies it with the publishing agent's public key and takes
//! the release only once T + D has passed. Nothing from the inner loop (no gate clock, no file) is trusted
//! for this: the evidence is made and checked on the governed side.
//!
//! Format: in repository `<app>` of the evidence store, tag `health-<env>-<sequence, 10 digits>`, an OCI
//! artifact (`artifactType` [`HEALTH_ARTIFACT_TYPE`], empty config) with one layer: the DSSE envelope of an
//! in-toto Statement v1 whose subject is the release manifest digest and whose predicate
//! ([`HEALTH_PREDICATE`]) is `{app, environment, sequence, release_digest, healthy_since}`.

use crate::source::SourceOptions;
use crate::spec::SourceSpec;
use airlock_oci::{
    Descriptor, Digest, ImageManifest, LayoutRoot, RegistryAuth, RegistryStore, Store, media_type,
    types::EMPTY_JSON,
};
use airlock_sign::intoto::DSSE_MEDIA_TYPE;
use airlock_sign::{Envelope, SigningKey, TrustSet, sign_envelope, statement, verify_envelope};
use serde_json::json;
use std::sync::Arc;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Predicate type of a health statement.
pub const HEALTH_PREDICATE: &str = "https://airlock.dev/attestation/health/v1";
/// Artifact type of the manifest carrying it.
pub const HEALTH_ARTIFACT_TYPE: &str = "application/vnd.airlock.health.v1+json";
/// Largest evidence envelope read.
const MAX_EVIDENCE: u64 = 64 * 1024;

/// Where evidence is published and how it is trusted.
#[derive(Clone)]
pub struct EvidenceConfig {
    /// The evidence store: `oci:DIR` or `docker://HOST/PREFIX` (the outer loop's registry).
    pub store: SourceSpec,
    /// Registry options (plain HTTP, credentials).
    pub options: SourceOptions,
    /// This agent's key for signing the evidence it publishes; `None` publishes nothing.
    pub key: Option<SigningKey>,
    /// Public keys of agents whose evidence is trusted.
    pub trust: TrustSet,
}

impl std::fmt::Debug for EvidenceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvidenceConfig")
            .field("store", &self.store.to_string())
            .field("signs", &self.key.is_some())
            .field("trusted_keys", &self.trust.keys.len())
            .finish()
    }
}

/// The tag of the evidence for release `sequence` in `env`.
pub fn evidence_tag(env: &str, sequence: u64) -> String {
    format!("health-{env}-{sequence:010}")
}

/// The repository of `app` in the evidence store.
pub fn evidence_store(
    cfg: &EvidenceConfig,
    app: &str,
) -> Result<Arc<dyn Store>, airlock_oci::Error> {
    match &cfg.store {
        SourceSpec::Layout(dir) => Ok(Arc::new(LayoutRoot::open_or_create(dir)?.repo(app)?)),
        SourceSpec::Archive(file) => Err(airlock_oci::Error::InvalidPath {
            path: file.display().to_string(),
            reason: "an archive cannot hold evidence: use oci:DIR or docker://HOST/PREFIX".into(),
        }),
        SourceSpec::Registry { host, .. } => {
            let auth = match &cfg.options.credentials {
                Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
                None => RegistryAuth::Anonymous,
            };
            Ok(Arc::new(RegistryStore::new(
                host,
                &cfg.store.repository(app),
                auth,
                cfg.options.insecure,
            )?))
        }
    }
}

/// What the evidence says about one release, after verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvidenceCheck {
    /// No evidence published (yet).
    Missing,
    /// Evidence is there but does not verify or does not match the release: never trusted.
    Invalid(String),
    /// The store could not be read; try again next cycle.
    Unreachable(String),
    /// Verified: healthy since this time.
    Healthy(OffsetDateTime),
}

/// What an environment's agent claims about a release it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthClaim<'a> {
    /// The app.
    pub app: &'a str,
    /// The environment it runs in.
    pub env: &'a str,
    /// The release sequence.
    pub sequence: u64,
    /// The release manifest digest.
    pub release_digest: &'a Digest,
    /// RFC 3339 time since when it has been healthy there.
    pub healthy_since: &'a str,
}

/// Publishes `claim` into `store` (the app's repository of the evidence store), signed with `key`.
/// Publishing the same evidence again replaces the tag with identical content.
pub async fn publish_evidence(
    store: &dyn Store,
    docker_reference: &str,
    claim: &HealthClaim<'_>,
    key: &SigningKey,
) -> Result<Digest, airlock_oci::Error> {
    let HealthClaim {
        app,
        env,
        sequence,
        release_digest,
        healthy_since,
    } = *claim;
    let predicate = json!({
        "app": app,
        "environment": env,
        "sequence": sequence,
        "release_digest": release_digest.to_string(),
        "healthy_since": healthy_since,
    });
    let subject = format!("{docker_reference}:{}", airlock_sign::release_tag(sequence));
    let envelope = sign_envelope(
        &statement(&subject, release_digest, HEALTH_PREDICATE, predicate),
        key,
    );
    // Serializing a struct of strings cannot fail.
    let layer_bytes = serde_json::to_vec(&envelope).unwrap_or_default();
    let layer = Descriptor::for_bytes(DSSE_MEDIA_TYPE, &layer_bytes);
    store.put_blob(&layer.digest, &layer_bytes).await?;
    let config = Descriptor::empty();
    store.put_blob(&config.digest, EMPTY_JSON).await?;
    let mut manifest = ImageManifest::new(config, vec![layer]);
    manifest.artifact_type = Some(HEALTH_ARTIFACT_TYPE.to_string());
    store
        .put_manifest(
            &manifest.to_bytes(),
            media_type::OCI_MANIFEST,
            Some(&evidence_tag(env, sequence)),
        )
        .await
}

/// Whether evidence for release `sequence` of `app` in `env` exists (any content).
pub async fn has_evidence(
    store: &dyn Store,
    env: &str,
    sequence: u64,
) -> Result<bool, airlock_oci::Error> {
    match store.get_manifest(&evidence_tag(env, sequence)).await {
        Ok(_) => Ok(true),
        Err(airlock_oci::Error::ManifestNotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads and verifies the evidence that `release_digest` (sequence `sequence` of `app`) is healthy in
/// `env`, signed by a key of `trust`.
pub async fn check_evidence(
    store: &dyn Store,
    app: &str,
    env: &str,
    sequence: u64,
    release_digest: &Digest,
    trust: &TrustSet,
) -> EvidenceCheck {
    let tag = evidence_tag(env, sequence);
    let fetched = match store.get_manifest(&tag).await {
        Ok(f) => f,
        Err(airlock_oci::Error::ManifestNotFound { .. }) => return EvidenceCheck::Missing,
        Err(e @ (airlock_oci::Error::Registry { .. } | airlock_oci::Error::Io { .. })) => {
            return EvidenceCheck::Unreachable(e.to_string());
        }
        Err(e) => return EvidenceCheck::Invalid(e.to_string()),
    };
    let invalid = |why: String| EvidenceCheck::Invalid(format!("evidence {tag}: {why}"));
    let manifest = match ImageManifest::from_bytes(&fetched.bytes, &tag) {
        Ok(m) => m,
        Err(e) => return invalid(e.to_string()),
    };
    let Some(layer) = manifest
        .layers
        .iter()
        .find(|l| l.media_type == DSSE_MEDIA_TYPE)
    else {
        return invalid("no DSSE envelope layer".into());
    };
    if layer.size > MAX_EVIDENCE {
        return invalid(format!("envelope larger than {MAX_EVIDENCE} bytes"));
    }
    let bytes = match store.get_blob(&layer.digest).await {
        Ok(b) => b,
        Err(e) => return invalid(e.to_string()),
    };
    let envelope: Envelope = match serde_json::from_slice(&bytes) {
        Ok(e) => e,
        Err(e) => return invalid(format!("not a DSSE envelope: {e}")),
    };
    let statement = match verify_envelope(&envelope, trust) {
        Ok(s) => s,
        Err(e) => return invalid(e.to_string()),
    };
    if statement["predicateType"] != HEALTH_PREDICATE {
        return invalid(format!("predicate type is {}", statement["predicateType"]));
    }
    let subject_ok = statement["subject"].as_array().is_some_and(|s| {
        s.iter()
            .any(|s| s["digest"]["sha256"] == release_digest.hex())
    });
    let p = &statement["predicate"];
    if !subject_ok || p["release_digest"] != release_digest.as_str() {
        return invalid(format!("it is about another release than {release_digest}"));
    }
    if p["app"] != app || p["environment"] != env || p["sequence"] != sequence {
        return invalid(format!(
            "it names app {}, environment {}, sequence {}; expected {app}, {env}, {sequence}",
            p["app"], p["environment"], p["sequence"]
        ));
    }
    match p["healthy_since"]
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
    {
        Some(since) => EvidenceCheck::Healthy(since),
        None => invalid("healthy_since is not an RFC 3339 time".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn published_evidence_verifies_only_for_its_release_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutRoot::open_or_create(dir.path())
            .unwrap()
            .repo("hello")
            .unwrap();
        let key = SigningKey::generate();
        let trust = TrustSet::new(vec![key.public_key()]);
        let release = Digest::of(b"release 3");
        let missing = check_evidence(&store, "hello", "staging", 3, &release, &trust).await;
        assert_eq!(missing, EvidenceCheck::Missing);

        publish_evidence(
            &store,
            "airlock.local/hello",
            &HealthClaim {
                app: "hello",
                env: "staging",
                sequence: 3,
                release_digest: &release,
                healthy_since: "2026-11-23T09:00:00Z",
            },
            &key,
        )
        .await
        .unwrap();
        let ok = check_evidence(&store, "hello", "staging", 3, &release, &trust).await;
        assert_eq!(
            ok,
            EvidenceCheck::Healthy(
                OffsetDateTime::parse("2026-11-23T09:00:00Z", &Rfc3339).unwrap()
            )
        );

        let other = Digest::of(b"another release 3");
        let EvidenceCheck::Invalid(why) =
            check_evidence(&store, "hello", "staging", 3, &other, &trust).await
        else {
            panic!("evidence for another release accepted");
        };
        assert!(why.contains("another release"), "{why}");

        let stranger = TrustSet::new(vec![SigningKey::generate().public_key()]);
        assert!(matches!(
            check_evidence(&store, "hello", "staging", 3, &release, &stranger).await,
            EvidenceCheck::Invalid(_)
        ));
    }
}
