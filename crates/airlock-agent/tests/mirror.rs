//! Mirroring with two real registries (Debian's `docker-registry` on loopback): the boundary the gate
//! publishes to and the outer loop's own registry. The agent copies the verified image with its signature
//! and attestations into the mirror, verifies them there, and writes manifests that pull from the mirror
//! by digest; skopeo (an OCI client sharing no code with airlock) reads the mirrored image. When the mirror
//! is down nothing is applied, and the agent recovers once it is back.

mod common;

use airlock_agent::{
    Agent, Metrics, SourceOptions, SourceSpec, SyncConfig, TargetSpec, load_trust,
};
use airlock_oci::{Digest, Store, attachment_tags};
use airlock_sign::predicates::{CYCLONEDX, POLICY_DECISION, SLSA_PROVENANCE_V1, VULN};
use airlock_sign::{
    ReleaseConfig, ReleaseImage, SigningKey, attach_attestations, publish_release, sign_envelope,
    sign_manifest, statement,
};
use common::{Registry, key_file, put_image};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

const APP: &str = "hello";

/// Publishes release `sequence` of `APP` as the gate does, with a Deployment naming its image by digest.
/// Returns the image digest.
async fn publish(store: &dyn Store, key: &SigningKey, sequence: u64) -> Digest {
    let reference = format!("airlock.local/{APP}");
    let image = put_image(store, format!("{APP} v{sequence}").as_bytes(), "run").await;
    sign_manifest(store, &reference, &image, key).await.unwrap();
    let envelopes: Vec<_> = [SLSA_PROVENANCE_V1, CYCLONEDX, VULN, POLICY_DECISION]
        .iter()
        .map(|kind| sign_envelope(&statement(&reference, &image, kind, json!({})), key))
        .collect();
    attach_attestations(store, &image, &envelopes)
        .await
        .unwrap();
    let config = ReleaseConfig {
        app: APP.into(),
        team: "web".into(),
        sequence,
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        source: format!("https://git.example/web/{APP}"),
        image: ReleaseImage {
            repository: reference.clone(),
            digest: image.clone(),
        },
        created: "2026-11-23T09:00:00Z".into(),
        environments: vec!["staging".into()],
        run_id: format!("run-{sequence}"),
    };
    let deployment = format!(
        "kind: Deployment\nmetadata:\n  name: {APP}\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {reference}@{image}\n"
    );
    let manifests = BTreeMap::from([(
        "staging".to_string(),
        BTreeMap::from([("deployment.yaml".to_string(), deployment)]),
    )]);
    publish_release(store, &reference, &config, &manifests, key)
        .await
        .unwrap();
    image
}

#[tokio::test]
async fn verified_image_is_mirrored_with_signatures_and_manifests_point_at_it() {
    let boundary = Registry::start();
    let mut outer = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let source_store = boundary.store(&format!("boundary/{APP}"));
    let image = publish(&source_store, &key, 1).await;

    let deploy = dir.path().join("deploy");
    let trust = load_trust(&[key_file(dir.path(), &key, "gate.pub")]).unwrap();
    let source: SourceSpec = format!("docker://{}/boundary", boundary.host())
        .parse()
        .unwrap();
    let mut cfg = SyncConfig::new(
        source,
        trust,
        "staging",
        TargetSpec::Directory(deploy.clone()),
    );
    cfg.source_options = SourceOptions {
        apps: vec![APP.into()],
        insecure: true,
        credentials: None,
    };
    cfg.mirror = Some(format!("{}/mirror", outer.host()));
    let mut agent = Agent::new(cfg, Arc::new(Metrics::default())).unwrap();
    let report = agent.sync().await.unwrap();
    assert_eq!(report.applied.len(), 1, "{report:?}");

    let applied = std::fs::read_to_string(deploy.join("staging/hello/deployment.yaml")).unwrap();
    let mirrored = format!("{}/mirror/{APP}@{image}", outer.host());
    assert!(
        applied.contains(&format!("image: {mirrored}\n")),
        "{applied}"
    );
    assert!(!applied.contains("airlock.local/"), "{applied}");

    // The image and its cosign attachments are in the mirror, under the same digest and tags.
    let inspected = airlock_testkit::tools::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{mirrored}"),
    ]);
    assert_eq!(Digest::of(inspected.as_bytes()), image);
    let tags = outer
        .store(&format!("mirror/{APP}"))
        .list_tags()
        .await
        .unwrap();
    for tag in attachment_tags(&image) {
        assert!(tags.contains(&tag), "{tag} missing from {tags:?}");
    }

    // Mirror down: release 2 is verified but not applied (it could not be mirrored); back up: applied.
    let image2 = publish(&source_store, &key, 2).await;
    outer.stop();
    let report = agent.sync().await.unwrap();
    assert!(report.applied.is_empty(), "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(
        report.failed[0].error.contains("mirror"),
        "{:?}",
        report.failed[0]
    );
    assert_eq!(
        std::fs::read_to_string(deploy.join("staging/hello/deployment.yaml")).unwrap(),
        applied
    );
    outer.restart();
    let report = agent.sync().await.unwrap();
    assert_eq!(report.applied.len(), 1, "{report:?}");
    let applied = std::fs::read_to_string(deploy.join("staging/hello/deployment.yaml")).unwrap();
    assert!(
        applied.contains(&format!("{}/mirror/{APP}@{image2}", outer.host())),
        "{applied}"
    );
}
