//! skopeo (an independent OCI client) must be able to copy what airlock-sign writes: the cosign `.sig` and
//! `.att` manifests and the release artifact, so they cross the boundary with ordinary tools.
//! Needs `apt-get install -y skopeo`.

use std::collections::BTreeMap;
use std::process::Command;

use airlock_oci::{Descriptor, Digest, ImageManifest, OciLayout, Store, media_type};
use airlock_sign::{
    ReleaseConfig, ReleaseImage, SigningKey, TrustSet, attach_attestations, attestation_tag,
    predicates, publish_release, release_tag, sign_envelope, sign_manifest, signature_tag,
    statement, verify_release,
};

const REPO: &str = "registry.example/team/app";

fn skopeo_copy(from: &str, to: &str) {
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--preserve-digests", from, to])
        .output()
        .expect("skopeo is installed (apt-get install -y skopeo)");
    assert!(
        out.status.success(),
        "skopeo copy {from} {to}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn skopeo_copies_signed_release_and_it_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let src_dir = dir.path().join("src");
    let store = OciLayout::create(&src_dir).unwrap();
    let content = b"image bytes";
    let layer = Descriptor::for_bytes(media_type::OCI_LAYER_TAR, content);
    store.put_blob(&layer.digest, content).await.unwrap();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_desc = Descriptor::for_bytes(media_type::OCI_CONFIG, config);
    store.put_blob(&config_desc.digest, config).await.unwrap();
    let image: Digest = store
        .put_manifest(
            &ImageManifest::new(config_desc, vec![layer]).to_bytes(),
            media_type::OCI_MANIFEST,
            Some("latest"),
        )
        .await
        .unwrap();
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
