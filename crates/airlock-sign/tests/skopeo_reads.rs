//! skopeo (an independent OCI client) must be able to copy what airlock-sign writes: the cosign `.sig` and
//! `.att` manifests and the release artifact, so they cross the boundary with ordinary tools.
//! Needs `apt-get install -y skopeo`.

use std::collections::BTreeMap;

use airlock_oci::{Digest, OciLayout};
use airlock_sign::{
    ReleaseConfig, ReleaseImage, SigningKey, TrustSet, attach_attestations, attestation_tag,
    predicates, publish_release, release_tag, sign_envelope, sign_manifest, signature_tag,
    statement, verify_release,
};
use airlock_testkit::image::minimal_image;
use airlock_testkit::tools::skopeo;

const REPO: &str = "registry.example/team/app";

fn skopeo_copy(from: &str, to: &str) {
    skopeo(&["copy", "--quiet", "--preserve-digests", from, to]);
}

#[tokio::test]
async fn skopeo_copies_signed_release_and_it_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let src_dir = dir.path().join("src");
    let store = OciLayout::create(&src_dir).unwrap();
    let image: Digest = minimal_image(&store, b"image bytes", Some("latest")).await;
    let key = SigningKey::generate();
    sign_manifest(&store, REPO, &image, &key).await.unwrap();
    let env = sign_envelope(
        &statement(
            REPO,
            &image,
            predicates::SLSA_PROVENANCE_V1,
            serde_json::json!({}),
        ),
        &key,
    );
    attach_attestations(&store, &image, &[env]).await.unwrap();
    let release = ReleaseConfig {
        app: "hello".into(),
        team: "web".into(),
        sequence: 3,
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        source: "https://git.example/web/hello".into(),
        image: ReleaseImage {
            repository: REPO.into(),
            digest: image.clone(),
        },
        created: "2026-01-01T00:00:00Z".into(),
        environments: vec!["staging".into()],
        run_id: "run-3".into(),
    };
    let manifests = BTreeMap::from([(
        "staging".to_string(),
        BTreeMap::from([(
            "deployment.yaml".to_string(),
            "kind: Deployment\n".to_string(),
        )]),
    )]);
    let release_digest = publish_release(&store, REPO, &release, &manifests, &key)
        .await
        .unwrap();

    let dst_dir = dir.path().join("dst");
    let (src, dst) = (src_dir.to_str().unwrap(), dst_dir.to_str().unwrap());
    let tags = [
        "latest".to_string(),
        signature_tag(&image),
        attestation_tag(&image),
        release_tag(3),
        signature_tag(&release_digest),
    ];
    for t in tags {
        skopeo_copy(&format!("oci:{src}:{t}"), &format!("oci:{dst}:{t}"));
    }
    let copied = OciLayout::open(&dst_dir).unwrap();
    let trust = TrustSet::new(vec![key.public_key()]);
    let v = verify_release(
        &copied,
        REPO,
        &release_tag(3),
        &trust,
        Some(2),
        &[predicates::SLSA_PROVENANCE_V1],
    )
    .await
    .unwrap();
    assert_eq!(v.digest, release_digest);
    assert_eq!(v.manifests, manifests);
}
