//! The tamper suite: a signed release pushed to a real registry (Debian's `docker-registry`, distribution
//! 2.8, on a free 127.0.0.1 port), then attacked the ways an attacker with write access to the boundary
//! could. Each attack must be refused by `airlock_sign::verify` with its own error variant, so the agent's
//! refusal says what happened. Needs `apt-get install -y docker-registry` (scripts/setup does it).

use std::collections::BTreeMap;

use airlock_oci::{
    Descriptor, Digest, ImageManifest, RegistryStore, Store, copy_image, media_type,
};
use airlock_sign::release::RELEASE_ARTIFACT_TYPE;
use airlock_sign::{
    ReleaseConfig, ReleaseImage, SignError, SigningKey, TrustConfig, TrustSet, VerifiedRelease,
    attach_attestations, predicates, publish_release, release_tag, sign_envelope, sign_manifest,
    signature_tag, statement, verify,
};
use airlock_testkit::Registry;
use airlock_testkit::image::minimal_image;

const REQUIRED: [&str; 4] = [
    predicates::SLSA_PROVENANCE_V1,
    predicates::CYCLONEDX,
    predicates::VULN,
    predicates::POLICY_DECISION,
];

/// A signed, attested image and its signed release 7, in `team/hello` of a fresh registry.
struct World {
    registry: Registry,
    store: RegistryStore,
    repo: String,
    key: SigningKey,
    image: Digest,
}

impl World {
    fn trust(&self) -> TrustConfig {
        TrustConfig::new(TrustSet::new(vec![self.key.public_key()])).requiring(&REQUIRED)
    }

    async fn verify(
        &self,
        reference: &str,
        newer_than: Option<u64>,
    ) -> Result<VerifiedRelease, SignError> {
        verify(
            &self.store,
            &self.repo,
            reference,
            &self.trust(),
            newer_than,
        )
        .await
    }
}

async fn put_image(store: &dyn Store, content: &[u8]) -> Digest {
    minimal_image(store, content, Some("git-0123456789ab")).await
}

fn release_config(repo: &str, image: &Digest, sequence: u64) -> ReleaseConfig {
    ReleaseConfig {
        app: "hello".into(),
        team: "web".into(),
        sequence,
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        source: "https://git.example/web/hello".into(),
        image: ReleaseImage {
            repository: repo.into(),
            digest: image.clone(),
        },
        created: "2026-01-01T00:00:00Z".into(),
        environments: vec!["staging".into()],
        run_id: "run-1".into(),
    }
}

fn manifests() -> BTreeMap<String, BTreeMap<String, String>> {
    BTreeMap::from([(
        "staging".to_string(),
        BTreeMap::from([(
            "deployment.yaml".to_string(),
            "kind: Deployment\nmetadata: {name: hello}\n".to_string(),
        )]),
    )])
}

async fn world() -> World {
    let registry = Registry::start();
    let store = registry.store("team/hello");
    let repo = registry.reference("team/hello");
    let key = SigningKey::generate();
    let image = put_image(&store, b"image").await;
    sign_manifest(&store, &repo, &image, &key).await.unwrap();
    let envelopes: Vec<_> = REQUIRED
        .iter()
        .map(|p| sign_envelope(&statement(&repo, &image, p, serde_json::json!({})), &key))
        .collect();
    attach_attestations(&store, &image, &envelopes)
        .await
        .unwrap();
    publish_release(
        &store,
        &repo,
        &release_config(&repo, &image, 7),
        &manifests(),
        &key,
    )
    .await
    .unwrap();
    World {
        registry,
        store,
        repo,
        key,
        image,
    }
}

/// Writes `config` as release `sequence` about `subject`, signed by the trusted key: the attacker is assumed
/// to hold the key only where the test says so; here the point is that the *content* check catches it.
async fn signed_release_with(w: &World, config: &ReleaseConfig, subject: &Digest) -> Digest {
    let image = w.store.get_manifest(subject.as_str()).await.unwrap();
    let bytes = serde_json::to_vec(config).unwrap();
    let config_desc = Descriptor::for_bytes(RELEASE_ARTIFACT_TYPE, &bytes);
    w.store.put_blob(&config_desc.digest, &bytes).await.unwrap();
    let fetched = w.store.get_manifest(&release_tag(7)).await.unwrap();
    let mut m = ImageManifest::from_bytes(&fetched.bytes, "release 7").unwrap();
    m.config = config_desc;
    m.subject = Some(Descriptor::new(
        image.media_type,
        image.digest,
        image.bytes.len() as u64,
    ));
    let digest = w
        .store
        .put_manifest(
            &m.to_bytes(),
            media_type::OCI_MANIFEST,
            Some(&release_tag(config.sequence)),
        )
        .await
        .unwrap();
    sign_manifest(&w.store, &w.repo, &digest, &w.key)
        .await
        .unwrap();
    digest
}

#[tokio::test]
async fn untouched_release_verifies_from_the_registry() {
    let w = world().await;
    let v = w.verify(&release_tag(7), Some(6)).await.unwrap();
    assert_eq!(v.config.image.digest, w.image);
    assert_eq!(v.signed_by, w.key.public_key().key_id());
    assert_eq!(v.manifests, manifests());
    assert_eq!(v.attestations.len(), REQUIRED.len());
}

#[tokio::test]
async fn modified_manifest_blob_is_a_digest_mismatch() {
    let w = world().await;
    let fetched = w.store.get_manifest(&release_tag(7)).await.unwrap();
    let m = ImageManifest::from_bytes(&fetched.bytes, "release 7").unwrap();
    let layer = &m.layers[0].digest;
    // Rewrite the rendered Kubernetes manifests in the registry's own storage, as someone with disk access
    // to the boundary could.
    let evil = airlock_sign::manifests_tar::pack(
        "staging",
        &BTreeMap::from([(
            "deployment.yaml".to_string(),
            "kind: Deployment\n# evil\n".to_string(),
        )]),
    )
    .unwrap();
    std::fs::write(w.registry.blob_file(layer), evil).unwrap();
    let err = w.verify(&release_tag(7), None).await.unwrap_err();
    // The content check refuses it, naming the blob.
    assert!(
        matches!(&err, SignError::Oci(airlock_oci::Error::DigestMismatch { digest, .. }) if digest == layer),
        "{err}"
    );
}

#[tokio::test]
async fn signature_moved_onto_another_digest_is_a_payload_digest_mismatch() {
    let w = world().await;
    let other = put_image(&w.store, b"evil image").await;
    // The attacker copies the good image's .sig onto the evil image and releases the evil image.
    let sig = w
        .store
        .get_manifest(&signature_tag(&w.image))
        .await
        .unwrap();
    w.store
        .put_manifest(&sig.bytes, &sig.media_type, Some(&signature_tag(&other)))
        .await
        .unwrap();
    signed_release_with(&w, &release_config(&w.repo, &other, 8), &other).await;
    let err = w.verify(&release_tag(8), None).await.unwrap_err();
    assert!(
        matches!(&err, SignError::PayloadDigestMismatch { expected, found }
            if *expected == other && *found == w.image.to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn signature_copied_to_another_repository_is_a_reference_mismatch_unless_mirrored() {
    let w = world().await;
    let mirror = w.registry.store("dmz/hello");
    let mirror_repo = w.registry.reference("dmz/hello");
    for tag in w.store.list_tags().await.unwrap() {
        copy_image(&w.store, &mirror, &tag, Some(&tag))
            .await
            .unwrap();
    }
    let err = verify(&mirror, &mirror_repo, &release_tag(7), &w.trust(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SignError::ReferenceMismatch { expected, found }
            if *expected == mirror_repo && *found == w.repo),
        "{err}"
    );
    // Declared as a mirror of the origin, the same bytes verify.
    let trust = w.trust().with_mirror(&mirror_repo, &w.repo);
    let v = verify(&mirror, &mirror_repo, &release_tag(7), &trust, None)
        .await
        .unwrap();
    assert_eq!(v.config.image.repository, w.repo);
}

#[tokio::test]
async fn release_naming_a_different_image_is_an_image_mismatch() {
    let w = world().await;
    let other = put_image(&w.store, b"other image").await;
    // The config names the other image while the manifest's subject is still the signed one.
    signed_release_with(&w, &release_config(&w.repo, &other, 8), &w.image).await;
    let err = w.verify(&release_tag(8), None).await.unwrap_err();
    assert!(
        matches!(&err, SignError::ReleaseImageMismatch { config_image, subject_image, .. }
            if config_image.contains(other.as_str()) && subject_image.contains(w.image.as_str())),
        "{err}"
    );
}

#[tokio::test]
async fn attestation_for_another_subject_is_refused() {
    let w = world().await;
    let other = Digest::of(b"another image");
    let env = sign_envelope(
        &statement(&w.repo, &other, predicates::VULN, serde_json::json!({})),
        &w.key,
    );
    attach_attestations(&w.store, &w.image, &[env])
        .await
        .unwrap();
    let err = w.verify(&release_tag(7), None).await.unwrap_err();
    assert!(
        matches!(&err, SignError::AttestationSubjectMismatch { expected, found }
            if *expected == w.image && *found == other.to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn key_not_trusted_is_an_untrusted_key() {
    let w = world().await;
    let trust = TrustConfig::new(TrustSet::new(vec![SigningKey::generate().public_key()]));
    let err = verify(&w.store, &w.repo, &release_tag(7), &trust, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SignError::UntrustedKey { key_ids_seen, .. }
            if *key_ids_seen == vec![w.key.public_key().key_id().to_string()]),
        "{err}"
    );
}

#[tokio::test]
async fn older_sequence_replayed_is_refused() {
    let w = world().await;
    let err = w.verify(&release_tag(7), Some(7)).await.unwrap_err();
    assert!(
        matches!(
            err,
            SignError::SequenceNotNewer {
                sequence: 7,
                deployed: 7
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn unsigned_release_is_unsigned() {
    let w = world().await;
    let fetched = w.store.get_manifest(&release_tag(7)).await.unwrap();
    let mut m = ImageManifest::from_bytes(&fetched.bytes, "release 7").unwrap();
    m.annotations = None;
    let digest = w
        .store
        .put_manifest(
            &m.to_bytes(),
            media_type::OCI_MANIFEST,
            Some(&release_tag(8)),
        )
        .await
        .unwrap();
    let err = w.verify(&release_tag(8), None).await.unwrap_err();
    assert!(
        matches!(&err, SignError::Unsigned { reference } if reference.contains(digest.as_str())),
        "{err}"
    );
}

#[tokio::test]
async fn forged_signature_under_a_trusted_key_id_is_a_bad_signature() {
    let w = world().await;
    let release = w.store.get_manifest(&release_tag(7)).await.unwrap().digest;
    let tag = signature_tag(&release);
    let sig = w.store.get_manifest(&tag).await.unwrap();
    let mut m = ImageManifest::from_bytes(&sig.bytes, &tag).unwrap();
    let forger = SigningKey::generate();
    let payload = airlock_sign::simple_signing_payload(&w.repo, &release);
    use base64::Engine as _;
    m.layers[0].annotations.as_mut().unwrap().insert(
        airlock_sign::cosign::SIGNATURE_ANNOTATION.to_string(),
        base64::engine::general_purpose::STANDARD.encode(forger.sign(&payload)),
    );
    w.store
        .put_manifest(&m.to_bytes(), media_type::OCI_MANIFEST, Some(&tag))
        .await
        .unwrap();
    let err = w.verify(&release_tag(7), None).await.unwrap_err();
    assert!(matches!(err, SignError::BadSignature { .. }), "{err}");
}

#[tokio::test]
async fn missing_attestation_is_named() {
    let w = world().await;
    let trust = w
        .trust()
        .requiring(&[predicates::SLSA_PROVENANCE_V1, predicates::OPENVEX]);
    let err = verify(&w.store, &w.repo, &release_tag(7), &trust, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SignError::AttestationMissing { predicate_type } if predicate_type == predicates::OPENVEX),
        "{err}"
    );
}
