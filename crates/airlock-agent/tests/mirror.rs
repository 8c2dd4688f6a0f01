//! Mirroring with two real registries (Debian's `docker-registry` on loopback): the boundary the gate
//! publishes to and the outer loop's own registry. The agent copies the verified image with its signature
//! and attestations into the mirror, verifies them there, and writes manifests that pull from the mirror
//! by digest; skopeo (an OCI client sharing no code with airlock) reads the mirrored image. When the mirror
//! is down nothing is applied, and the agent recovers once it is back.

mod common;

use airlock_agent::{Agent, Metrics, TargetSpec};
use airlock_oci::{Digest, Store, attachment_tags};
use airlock_sign::SigningKey;
use common::{Registry, Release, publish_with_image, registry_config};
use std::sync::Arc;

const APP: &str = "hello";

/// Publishes release `sequence` of `APP` as the gate does, with a Deployment naming its image by digest.
/// Returns the image digest.
async fn publish(store: &dyn Store, key: &SigningKey, sequence: u64) -> Digest {
    let mut release = Release::new(APP, sequence, key, &["staging"]);
    release.names_image = true;
    publish_with_image(store, release).await.1
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
    let mut cfg = registry_config(
        dir.path(),
        &boundary,
        &key,
        TargetSpec::Directory(deploy.clone()),
    );
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
