//! The release artifact: what the gate hands across the boundary for one build of one app. An OCI artifact
//! (its own artifact type) whose config names app, team, commit, image digest and a per-app sequence number,
//! with one layer of rendered Kubernetes manifests per environment, the image as its `subject`, tagged
//! `release-<sequence>` and signed cosign-style. [`verify_release`] is everything the agent checks before it
//! trusts one.

use std::collections::{BTreeMap, BTreeSet};

use airlock_oci::{Descriptor, Digest, ImageManifest, Store, media_type};
use serde::{Deserialize, Serialize};

use crate::attached::{expect_artifact, read_layer};
use crate::cosign::verify_manifest_signature_for;
use crate::{
    KeyId, SignError, SigningKey, TrustConfig, TrustSet, VerifiedAttestation, manifests_tar,
    read_attestations, sign_manifest,
};

/// The artifact type of a release manifest, also the media type of its config blob.
pub const RELEASE_ARTIFACT_TYPE: &str = "application/vnd.airlock.release.v1+json";
/// Media type of a layer holding one environment's manifests (deterministic tar.gz).
pub const MANIFESTS_LAYER_TYPE: &str = "application/vnd.airlock.manifests.v1.tar+gzip";
/// Layer annotation naming the environment a manifests layer is for.
pub const ENVIRONMENT_ANNOTATION: &str = "dev.airlock.environment";
/// Largest release config blob read.
pub const MAX_RELEASE_CONFIG: u64 = 1024 * 1024;
/// Largest compressed manifests layer read.
pub const MAX_MANIFESTS_LAYER: u64 = 16 * 1024 * 1024;
/// Most environments one release may carry.
pub const MAX_ENVIRONMENTS: usize = 64;
/// Prefix of release tags.
pub const RELEASE_TAG_PREFIX: &str = "release-";

/// The image a release deploys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseImage {
    /// Its repository (the docker reference it is signed for), e.g. `registry.example/team/app`.
    pub repository: String,
    /// Its manifest digest.
    pub digest: Digest,
}

/// The config blob of a release artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseConfig {
    /// App name.
    pub app: String,
    /// Owning team.
    pub team: String,
    /// Per-app sequence number; the agent only deploys increasing ones (anti-rollback).
    pub sequence: u64,
    /// Git commit built.
    pub commit: String,
    /// Source repository URL.
    pub source: String,
    /// The image deployed.
    pub image: ReleaseImage,
    /// RFC 3339 time the release was made.
    pub created: String,
    /// Environments with rendered manifests in this release.
    pub environments: Vec<String>,
    /// The gate's pipeline run that produced it.
    pub run_id: String,
}

/// A release that passed every check of [`verify_release`].
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedRelease {
    /// Digest of the release manifest.
    pub digest: Digest,
    /// Its config.
    pub config: ReleaseConfig,
    /// Rendered manifests: environment → file name → YAML.
    pub manifests: BTreeMap<String, BTreeMap<String, String>>,
    /// The key that signed the release.
    pub signed_by: KeyId,
    /// The image's verified attestations.
    pub attestations: Vec<VerifiedAttestation>,
}

/// `release-<sequence zero-padded to 10 digits>`, so tags sort in sequence order.
pub fn release_tag(sequence: u64) -> String {
    format!("{RELEASE_TAG_PREFIX}{sequence:010}")
}

fn validate_environment(env: &str) -> Result<(), SignError> {
    let ok = !env.is_empty()
        && env.len() <= 63
        && env
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !env.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(SignError::invalid(
            format!("environment name {env:?}"),
            "expected 1-63 characters of [a-z0-9-], not starting with '-'",
        ))
    }
}

/// Checks that the environments listed in the config are exactly those with manifests.
fn check_environments(
    what: &str,
    listed: &[String],
    present: BTreeSet<&str>,
) -> Result<(), SignError> {
    let listed_set: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
    if listed_set.len() != listed.len() {
        return Err(SignError::invalid(
            what,
            "environments listed twice in the config",
        ));
    }
    if listed_set != present {
        return Err(SignError::invalid(
            what,
            format!("config lists environments {listed_set:?} but manifests are for {present:?}"),
        ));
    }
    Ok(())
}

/// Publishes a release: the config, one deterministic tar.gz of manifests per environment, a manifest with
/// artifact type [`RELEASE_ARTIFACT_TYPE`] and the image as subject, tagged [`release_tag`], then signed
/// with [`sign_manifest`] for `docker_reference`. The image must already be in `store`, and
/// `release.image.repository` must be `docker_reference`. Publishing the same release again is a no-op;
/// publishing different content under a sequence already used is refused. Returns the release digest.
pub async fn publish_release(
    store: &dyn Store,
    docker_reference: &str,
    release: &ReleaseConfig,
    manifests: &BTreeMap<String, BTreeMap<String, String>>,
    key: &SigningKey,
) -> Result<Digest, SignError> {
    let tag = release_tag(release.sequence);
    let what = format!("release {tag} of {}", release.app);
    if release.image.repository != docker_reference {
        return Err(SignError::invalid(
            &what,
            format!(
                "image repository {:?} is not the repository {docker_reference:?} it is published to",
                release.image.repository
            ),
        ));
    }
    if manifests.len() > MAX_ENVIRONMENTS {
        return Err(SignError::invalid(
            &what,
            format!("more than {MAX_ENVIRONMENTS} environments"),
        ));
    }
    for env in manifests.keys() {
        validate_environment(env)?;
    }
    check_environments(
        &what,
        &release.environments,
        manifests.keys().map(String::as_str).collect(),
    )?;

    let image = store.get_manifest(release.image.digest.as_str()).await?;
    let subject = Descriptor::new(image.media_type, image.digest, image.bytes.len() as u64);

    let config_bytes =
        serde_json::to_vec(release).map_err(|e| SignError::json(format!("config of {what}"), e))?;
    let config = Descriptor::for_bytes(RELEASE_ARTIFACT_TYPE, &config_bytes);
    store.put_blob(&config.digest, &config_bytes).await?;

    let mut layers = Vec::with_capacity(manifests.len());
    for (env, files) in manifests {
        let data = manifests_tar::pack(env, files)?;
        let mut layer = Descriptor::for_bytes(MANIFESTS_LAYER_TYPE, &data);
        layer.annotations = Some(BTreeMap::from([(
            ENVIRONMENT_ANNOTATION.to_string(),
            env.clone(),
        )]));
        store.put_blob(&layer.digest, &data).await?;
        layers.push(layer);
    }

    let mut manifest = ImageManifest::new(config, layers);
    manifest.artifact_type = Some(RELEASE_ARTIFACT_TYPE.to_string());
    manifest.subject = Some(subject);
    manifest.annotations = Some(BTreeMap::from([(
        "org.opencontainers.image.created".to_string(),
        release.created.clone(),
    )]));
    let bytes = manifest.to_bytes();
    match store.get_manifest(&tag).await {
        Ok(existing) if existing.digest != Digest::of(&bytes) => {
            return Err(SignError::invalid(
                &what,
                format!(
                    "sequence {} is already published as {}",
                    release.sequence, existing.digest
                ),
            ));
        }
        Ok(_) | Err(airlock_oci::Error::ManifestNotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    // Signed before it is tagged: an agent that sees the tag finds the signature (one polling between the
    // two would otherwise refuse the release as unsigned, and remember that refusal by digest).
    let digest = store
        .put_manifest(&bytes, media_type::OCI_MANIFEST, None)
        .await?;
    sign_manifest(store, docker_reference, &digest, key).await?;
    store
        .put_manifest(&bytes, media_type::OCI_MANIFEST, Some(&tag))
        .await?;
    tracing::info!(app = %release.app, sequence = release.sequence, %digest, image = %release.image.digest, "published release");
    Ok(digest)
}

/// Verifies the release at `reference` (a tag such as `release-0000000007`, or a digest) in `store`, in this
/// order: the release is signed by a key of `trust` for `docker_reference`; it is a release artifact; a
/// `release-*` tag matches its sequence; its sequence is newer than `newer_than` (the one deployed); its
/// config and manifest subject name the same image in `docker_reference`; that image is present and signed
/// by a trusted key for `docker_reference`; every attestation of the image verifies, is about the image, and
/// each of `required_predicates` is among them; the manifests layers match the environments listed. Every
/// blob is checked against its digest by the store. See [`verify`] for mirrors and pinned key ids.
pub async fn verify_release(
    store: &dyn Store,
    docker_reference: &str,
    reference: &str,
    trust: &TrustSet,
    newer_than: Option<u64>,
    required_predicates: &[&str],
) -> Result<VerifiedRelease, SignError> {
    let config = TrustConfig::new(trust.clone()).requiring(required_predicates);
    verify(store, docker_reference, reference, &config, newer_than).await
}

/// Verifies the release at `reference` (tag or digest) read from the repository `read_from` (the store's
/// docker reference, e.g. `dmz.example/hello`) against `trust`, and returns it with its manifests and
/// attestations. Each way a release can be wrong fails with its own [`SignError`] variant:
///
/// - no signature: [`SignError::Unsigned`]; a signature that does not verify: [`SignError::BadSignature`];
///   signatures only by keys outside the trust config: [`SignError::UntrustedKey`];
/// - a signature whose payload names another manifest digest (moved `.sig`): [`SignError::PayloadDigestMismatch`];
/// - a signature made for another repository than `read_from`, unless `read_from` is configured as a mirror of
///   it: [`SignError::ReferenceMismatch`];
/// - a release whose config names another image than its manifest subject or than the repository it was
///   signed for: [`SignError::ReleaseImageMismatch`];
/// - an attestation about another image: [`SignError::AttestationSubjectMismatch`]; a required attestation
///   absent: [`SignError::AttestationMissing`];
/// - a sequence not newer than `newer_than`: [`SignError::SequenceNotNewer`];
/// - content that does not match its digest: [`SignError::Oci`] with [`airlock_oci::Error::DigestMismatch`].
pub async fn verify(
    store: &dyn Store,
    read_from: &str,
    reference: &str,
    trust: &TrustConfig,
    newer_than: Option<u64>,
) -> Result<VerifiedRelease, SignError> {
    let accepted = trust.accepted_references(read_from);
    let fetched = store.get_manifest(reference).await?;
    let digest = fetched.digest;
    let (signed_by, docker_reference) =
        verify_manifest_signature_for(store, &accepted, &digest, &trust.keys).await?;
    let docker_reference = docker_reference.as_str();
    let what = format!("release {reference} ({digest})");

    let manifest = ImageManifest::from_bytes(&fetched.bytes, &what)?;
    expect_artifact(
        &manifest,
        &what,
        RELEASE_ARTIFACT_TYPE,
        RELEASE_ARTIFACT_TYPE,
        "a release artifact",
    )?;
    let config_bytes = read_layer(store, &manifest.config, MAX_RELEASE_CONFIG, &what).await?;
    let config: ReleaseConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| SignError::json(format!("config of {what}"), e))?;

    if reference.starts_with(RELEASE_TAG_PREFIX) && reference != release_tag(config.sequence) {
        return Err(SignError::invalid(
            &what,
            format!("tag does not match its sequence {}", config.sequence),
        ));
    }
    if let Some(deployed) = newer_than
        && config.sequence <= deployed
    {
        return Err(SignError::SequenceNotNewer {
            sequence: config.sequence,
            deployed,
        });
    }

    let subject = manifest.subject.as_ref();
    if subject.map(|s| &s.digest) != Some(&config.image.digest)
        || config.image.repository != docker_reference
    {
        return Err(SignError::ReleaseImageMismatch {
            release: digest,
            config_image: format!("{}@{}", config.image.repository, config.image.digest),
            subject_image: format!(
                "{docker_reference}@{}",
                subject
                    .map(|s| s.digest.to_string())
                    .unwrap_or_else(|| "(no subject)".to_string())
            ),
        });
    }
    let image_digest = &config.image.digest;
    let image = store.get_manifest(image_digest.as_str()).await?;
    if subject.is_some_and(|s| s.size != image.bytes.len() as u64) {
        return Err(SignError::invalid(
            &what,
            format!("subject size does not match image {image_digest}"),
        ));
    }
    // The image must be signed for the same repository as the release: a release cannot borrow an image
    // signature made for another repository.
    verify_manifest_signature_for(store, &[docker_reference], image_digest, &trust.keys).await?;

    let attestations = read_attestations(store, image_digest, &trust.keys).await?;
    for required in &trust.required_predicates {
        if !attestations.iter().any(|a| a.predicate_type == *required) {
            return Err(SignError::AttestationMissing {
                predicate_type: required.clone(),
            });
        }
    }

    if manifest.layers.len() > MAX_ENVIRONMENTS {
        return Err(SignError::invalid(
            &what,
            format!("more than {MAX_ENVIRONMENTS} layers"),
        ));
    }
    let mut manifests = BTreeMap::new();
    for layer in &manifest.layers {
        if layer.media_type != MANIFESTS_LAYER_TYPE {
            return Err(SignError::invalid(
                &what,
                format!(
                    "layer {} has media type {:?}",
                    layer.digest, layer.media_type
                ),
            ));
        }
        let env = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(ENVIRONMENT_ANNOTATION))
            .ok_or_else(|| {
                SignError::invalid(
                    &what,
                    format!("layer {} names no environment", layer.digest),
                )
            })?;
        validate_environment(env)?;
        let data = read_layer(store, layer, MAX_MANIFESTS_LAYER, &what).await?;
        let files = manifests_tar::unpack(&format!("manifests of {env} in {what}"), &data)?;
        if manifests.insert(env.clone(), files).is_some() {
            return Err(SignError::invalid(
                &what,
                format!("environment {env} appears twice"),
            ));
        }
    }
    check_environments(
        &what,
        &config.environments,
        manifests.keys().map(String::as_str).collect(),
    )?;

    Ok(VerifiedRelease {
        digest,
        config,
        manifests,
        signed_by,
        attestations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{attach_attestations, predicates, sign_envelope, statement};
    use airlock_oci::OciLayout;

    const REPO: &str = "registry.example/team/app";
    const REQUIRED: &[&str] = &[predicates::SLSA_PROVENANCE_V1, predicates::VULN];

    struct Fixture {
        _dir: tempfile::TempDir,
        store: OciLayout,
        key: SigningKey,
        image: Digest,
        release: ReleaseConfig,
        manifests: BTreeMap<String, BTreeMap<String, String>>,
    }

    impl Fixture {
        fn trust(&self) -> TrustSet {
            TrustSet::new(vec![self.key.public_key()])
        }
    }

    async fn put_image(store: &OciLayout, content: &[u8]) -> Digest {
        airlock_testkit::image::minimal_image(store, content, None).await
    }

    async fn attest(
        store: &OciLayout,
        image: &Digest,
        subject: &Digest,
        key: &SigningKey,
        types: &[&str],
    ) {
        let envs: Vec<_> = types
            .iter()
            .map(|p| sign_envelope(&statement(REPO, subject, p, serde_json::json!({})), key))
            .collect();
        attach_attestations(store, image, &envs).await.unwrap();
    }

    fn config(image: &Digest, sequence: u64) -> ReleaseConfig {
        ReleaseConfig {
            app: "hello".into(),
            team: "web".into(),
            sequence,
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            source: "https://git.example/web/hello".into(),
            image: ReleaseImage {
                repository: REPO.into(),
                digest: image.clone(),
            },
            created: "2026-01-01T00:00:00Z".into(),
            environments: vec!["production".into(), "staging".into()],
            run_id: "run-1".into(),
        }
    }

    fn manifests() -> BTreeMap<String, BTreeMap<String, String>> {
        ["staging", "production"]
            .iter()
            .map(|env| {
                let files = BTreeMap::from([
                    (
                        "deployment.yaml".to_string(),
                        format!("kind: Deployment\n# {env}\n"),
                    ),
                    ("service.yaml".to_string(), "kind: Service\n".to_string()),
                ]);
                (env.to_string(), files)
            })
            .collect()
    }

    /// A signed image with provenance and vulnerability attestations, and release 7 of it.
    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::create(&dir.path().join("hello")).unwrap();
        let key = SigningKey::generate();
        let image = put_image(&store, b"image").await;
        sign_manifest(&store, REPO, &image, &key).await.unwrap();
        attest(&store, &image, &image, &key, REQUIRED).await;
        let release = config(&image, 7);
        publish_release(&store, REPO, &release, &manifests(), &key)
            .await
            .unwrap();
        Fixture {
            _dir: dir,
            store,
            key,
            image,
            release,
            manifests: manifests(),
        }
    }

    async fn verify(
        f: &Fixture,
        reference: &str,
        newer_than: Option<u64>,
    ) -> Result<VerifiedRelease, SignError> {
        verify_release(&f.store, REPO, reference, &f.trust(), newer_than, REQUIRED).await
    }

    #[test]
    fn release_tags_are_zero_padded_so_they_sort() {
        assert_eq!(release_tag(7), "release-0000000007");
        assert!(release_tag(9) < release_tag(10));
    }

    #[tokio::test]
    async fn published_release_verifies_with_everything_in_it() {
        let f = fixture().await;
        let v = verify(&f, &release_tag(7), Some(6)).await.unwrap();
        assert_eq!(v.config, f.release);
        assert_eq!(v.manifests, f.manifests);
        assert_eq!(v.signed_by, f.key.public_key().key_id());
        assert_eq!(v.attestations.len(), 2);
        let by_digest = verify(&f, v.digest.as_str(), None).await.unwrap();
        assert_eq!(by_digest.digest, v.digest);
    }

    #[tokio::test]
    async fn release_manifest_has_artifact_type_subject_and_environment_layers() {
        let f = fixture().await;
        let fetched = f.store.get_manifest(&release_tag(7)).await.unwrap();
        let m = ImageManifest::from_bytes(&fetched.bytes, "test").unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some(RELEASE_ARTIFACT_TYPE));
        assert_eq!(m.config.media_type, RELEASE_ARTIFACT_TYPE);
        assert_eq!(m.subject.unwrap().digest, f.image);
        let envs: Vec<&str> = m
            .layers
            .iter()
            .map(|l| l.annotations.as_ref().unwrap()[ENVIRONMENT_ANNOTATION].as_str())
            .collect();
        assert_eq!(envs, ["production", "staging"]);
        assert!(
            m.layers
                .iter()
                .all(|l| l.media_type == MANIFESTS_LAYER_TYPE)
        );
    }

    #[tokio::test]
    async fn publishing_the_same_release_again_is_a_no_op() {
        let f = fixture().await;
        let first = f.store.get_manifest(&release_tag(7)).await.unwrap().digest;
        let again = publish_release(&f.store, REPO, &f.release, &f.manifests, &f.key)
            .await
            .unwrap();
        assert_eq!(first, again);
    }

    #[tokio::test]
    async fn refuses_other_content_under_a_used_sequence() {
        let f = fixture().await;
        let mut other = f.release.clone();
        other.commit = "fedcba9876543210fedcba9876543210fedcba98".into();
        let err = publish_release(&f.store, REPO, &other, &f.manifests, &f.key)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("already published"), "{err}");
    }

    #[tokio::test]
    async fn refuses_environments_not_matching_the_manifests() {
        let f = fixture().await;
        let mut other = config(&f.image, 8);
        other.environments = vec!["staging".into()];
        let err = publish_release(&f.store, REPO, &other, &f.manifests, &f.key)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("environments"), "{err}");
    }

    #[tokio::test]
    async fn modified_manifest_blob_is_a_digest_mismatch() {
        let f = fixture().await;
        let digest = f.store.get_manifest(&release_tag(7)).await.unwrap().digest;
        let path = f.store.blob_path(&digest);
        let mut bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("2026-01-01", "2026-01-02");
        bytes = text.into_bytes();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let err = verify(&f, &release_tag(7), None).await.unwrap_err();
        assert!(
            matches!(&err, SignError::Oci(airlock_oci::Error::DigestMismatch { digest: d, .. }) if *d == digest),
            "{err}"
        );
    }

    #[tokio::test]
    async fn rewritten_release_under_the_same_tag_is_unsigned() {
        let f = fixture().await;
        let fetched = f.store.get_manifest(&release_tag(7)).await.unwrap();
        let mut m = ImageManifest::from_bytes(&fetched.bytes, "test").unwrap();
        m.layers.pop();
        let forged = f
            .store
            .put_manifest(
                &m.to_bytes(),
                media_type::OCI_MANIFEST,
                Some(&release_tag(7)),
            )
            .await
            .unwrap();
        let err = verify(&f, &release_tag(7), None).await.unwrap_err();
        assert!(
            matches!(&err, SignError::Unsigned { reference } if reference.contains(forged.as_str())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn release_naming_a_different_image_is_an_image_mismatch() {
        let f = fixture().await;
        let fetched = f.store.get_manifest(&release_tag(7)).await.unwrap();
        let mut m = ImageManifest::from_bytes(&fetched.bytes, "test").unwrap();
        let other_image = put_image(&f.store, b"other image").await;
        let mut cfg = config(&other_image, 8);
        cfg.image.digest = other_image.clone();
        let bytes = serde_json::to_vec(&cfg).unwrap();
        m.config = Descriptor::for_bytes(RELEASE_ARTIFACT_TYPE, &bytes);
        f.store.put_blob(&m.config.digest, &bytes).await.unwrap();
        // Signed with the trusted key: the mismatch itself must be caught, not only a broken signature.
        let digest = f
            .store
            .put_manifest(
                &m.to_bytes(),
                media_type::OCI_MANIFEST,
                Some(&release_tag(8)),
            )
            .await
            .unwrap();
        sign_manifest(&f.store, REPO, &digest, &f.key)
            .await
            .unwrap();
        let err = verify(&f, &release_tag(8), None).await.unwrap_err();
        assert!(
            matches!(&err, SignError::ReleaseImageMismatch { config_image, subject_image, .. }
                if config_image.contains(other_image.as_str()) && subject_image.contains(f.image.as_str())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn older_or_equal_sequence_is_refused() {
        let f = fixture().await;
        for deployed in [7, 8] {
            let err = verify(&f, &release_tag(7), Some(deployed))
                .await
                .unwrap_err();
            assert!(
                matches!(err, SignError::SequenceNotNewer { sequence: 7, deployed: d } if d == deployed),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn untrusted_key_is_refused() {
        let f = fixture().await;
        let trust = TrustSet::new(vec![SigningKey::generate().public_key()]);
        let err = verify_release(&f.store, REPO, &release_tag(7), &trust, None, REQUIRED)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SignError::UntrustedKey { key_ids_seen, .. }
                if key_ids_seen == &vec![f.key.public_key().key_id().to_string()]),
            "{err}"
        );
    }

    #[tokio::test]
    async fn release_signed_for_another_repository_is_a_reference_mismatch() {
        let f = fixture().await;
        let err = verify_release(
            &f.store,
            "registry.example/other",
            &release_tag(7),
            &f.trust(),
            None,
            REQUIRED,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, SignError::ReferenceMismatch { .. }), "{err}");
    }

    #[tokio::test]
    async fn unsigned_image_is_refused_even_if_the_release_is_signed() {
        let f = fixture().await;
        f.store.untag(&crate::signature_tag(&f.image)).unwrap();
        let err = verify(&f, &release_tag(7), None).await.unwrap_err();
        assert!(
            matches!(&err, SignError::Unsigned { reference } if reference.contains(f.image.as_str())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn missing_required_attestation_is_named() {
        let f = fixture().await;
        let err = verify_release(
            &f.store,
            REPO,
            &release_tag(7),
            &f.trust(),
            None,
            &[predicates::SLSA_PROVENANCE_V1, predicates::CYCLONEDX],
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, SignError::AttestationMissing { predicate_type } if predicate_type == predicates::CYCLONEDX),
            "{err}"
        );
    }

    #[tokio::test]
    async fn attestation_for_another_subject_is_refused() {
        let f = fixture().await;
        let other = Digest::of(b"other");
        attest(&f.store, &f.image, &other, &f.key, &[predicates::CYCLONEDX]).await;
        let err = verify(&f, &release_tag(7), None).await.unwrap_err();
        assert!(
            matches!(&err, SignError::AttestationSubjectMismatch { expected, found }
                if *expected == f.image && *found == other.to_string()),
            "{err}"
        );
    }

    #[tokio::test]
    async fn attestations_by_untrusted_keys_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::create(dir.path()).unwrap();
        let key = SigningKey::generate();
        let image = put_image(&store, b"image").await;
        sign_manifest(&store, REPO, &image, &key).await.unwrap();
        attest(&store, &image, &image, &SigningKey::generate(), REQUIRED).await;
        publish_release(&store, REPO, &config(&image, 1), &manifests(), &key)
            .await
            .unwrap();
        let trust = TrustSet::new(vec![key.public_key()]);
        let err = verify_release(&store, REPO, &release_tag(1), &trust, None, REQUIRED)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SignError::AttestationMissing { predicate_type } if predicate_type == REQUIRED[0]),
            "{err}"
        );
    }

    #[tokio::test]
    async fn older_release_retagged_as_newer_is_refused() {
        let f = fixture().await;
        let fetched = f.store.get_manifest(&release_tag(7)).await.unwrap();
        f.store
            .put_manifest(&fetched.bytes, &fetched.media_type, Some(&release_tag(9)))
            .await
            .unwrap();
        let err = verify(&f, &release_tag(9), Some(8)).await.unwrap_err();
        assert!(
            err.to_string().contains("does not match its sequence 7"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn rotation_keeps_releases_verifiable_with_either_key() {
        let f = fixture().await;
        let new = SigningKey::generate();
        let release = f.store.get_manifest(&release_tag(7)).await.unwrap().digest;
        sign_manifest(&f.store, REPO, &release, &new).await.unwrap();
        sign_manifest(&f.store, REPO, &f.image, &new).await.unwrap();
        attest(&f.store, &f.image, &f.image, &new, REQUIRED).await;
        let only_new = TrustSet::new(vec![new.public_key()]);
        // The old key's signatures and attestations are still attached; with only the new key trusted they
        // are ignored and the new ones suffice.
        let v = verify_release(&f.store, REPO, &release_tag(7), &only_new, None, REQUIRED)
            .await
            .unwrap();
        assert_eq!(v.signed_by, new.public_key().key_id());
        assert_eq!(v.attestations.len(), 2);
        let both = TrustSet::new(vec![f.key.public_key(), new.public_key()]);
        let v = verify_release(&f.store, REPO, &release_tag(7), &both, None, REQUIRED)
            .await
            .unwrap();
        assert_eq!(v.attestations.len(), 4);
    }
}
