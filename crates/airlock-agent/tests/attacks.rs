//! The attack suite of the signing issue, run through the agent: every forged or replayed release is
//! refused with its reason, counted under that reason, and nothing is applied (the target keeps what it
//! ran). Releases are real, signed with real keys into a real OCI layout; the same `Store` code path
//! serves registries (see tests/registry.rs).

mod common;

use airlock_agent::metrics::Counter;
use airlock_agent::{Agent, Metrics, SourceSpec, SyncConfig, TargetSpec, load_trust};
use airlock_oci::{ImageManifest, LayoutRoot, OciLayout, Store};
use airlock_sign::SigningKey;
use common::{Release, key_file, manifest_text, publish};
use std::sync::Arc;

struct World {
    dir: tempfile::TempDir,
    key: SigningKey,
    metrics: Arc<Metrics>,
}

impl World {
    fn new() -> World {
        World {
            dir: tempfile::tempdir().unwrap(),
            key: SigningKey::generate(),
            metrics: Arc::new(Metrics::default()),
        }
    }

    fn repo(&self, app: &str) -> OciLayout {
        LayoutRoot::open_or_create(&self.dir.path().join("boundary"))
            .unwrap()
            .repo(app)
            .unwrap()
    }

    fn agent(&self) -> Agent {
        let trust = load_trust(&[key_file(self.dir.path(), &self.key, "gate.pub")]).unwrap();
        let mut cfg = SyncConfig::new(
            SourceSpec::Layout(self.dir.path().join("boundary")),
            trust,
            "staging",
            TargetSpec::Directory(self.dir.path().join("deploy")),
        );
        cfg.admission = Some(common::admission_dir());
        Agent::new(cfg, self.metrics.clone()).unwrap()
    }

    fn deployed(&self, app: &str) -> Option<String> {
        std::fs::read_to_string(
            self.dir
                .path()
                .join("deploy/staging")
                .join(app)
                .join("deployment.yaml"),
        )
        .ok()
    }

    /// Syncs and asserts exactly one refusal of `kind` whose reason contains `needle`, nothing applied.
    async fn assert_refused(&self, agent: &mut Agent, kind: &str, needle: &str) {
        let report = agent.sync().await.unwrap();
        assert!(report.applied.is_empty(), "{report:?}");
        assert_eq!(report.refused.len(), 1, "{report:?}");
        let refusal = &report.refused[0];
        assert_eq!(refusal.kind, kind, "{refusal:?}");
        assert!(
            refusal.reason.contains(needle),
            "{needle:?} not in {:?}",
            refusal.reason
        );
        assert_eq!(report.exit_code(), 1);
        assert!(
            self.metrics.render().contains(&format!(
                "airlock_agent_releases_refused_total{{env=\"staging\",reason=\"{kind}\"}} 1"
            )),
            "{}",
            self.metrics.render()
        );
    }
}

#[tokio::test]
async fn unsigned_release_is_refused() {
    let w = World::new();
    let repo = w.repo("hello");
    let digest = publish(&repo, Release::new("hello", 1, &w.key, &["staging"])).await;
    // An intruder pushes a release without a signature: drop the .sig tag.
    assert!(repo.untag(&airlock_sign::signature_tag(&digest)).unwrap());
    let mut agent = w.agent();
    w.assert_refused(&mut agent, "unsigned", "is not signed")
        .await;
    assert_eq!(w.deployed("hello"), None);
}

#[tokio::test]
async fn release_signed_with_a_wrong_key_is_refused() {
    let w = World::new();
    let intruder = SigningKey::generate();
    publish(
        &w.repo("hello"),
        Release::new("hello", 1, &intruder, &["staging"]),
    )
    .await;
    let mut agent = w.agent();
    w.assert_refused(&mut agent, "untrusted-key", "untrusted keys")
        .await;
    assert_eq!(w.deployed("hello"), None);
}

#[tokio::test]
async fn tampered_manifests_are_refused_and_the_running_release_stays() {
    let w = World::new();
    let repo = w.repo("hello");
    publish(&repo, Release::new("hello", 1, &w.key, &["staging"])).await;
    let mut agent = w.agent();
    assert_eq!(agent.sync().await.unwrap().applied.len(), 1);

    let digest = publish(&repo, Release::new("hello", 2, &w.key, &["staging"])).await;
    // Someone in the DMZ rewrites the rendered manifests of release 2 in place.
    let manifest = ImageManifest::from_bytes(
        &repo.get_manifest(digest.as_str()).await.unwrap().bytes,
        "release",
    )
    .unwrap();
    let blob = repo.blob_path(&manifest.layers[0].digest);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&blob, bytes).unwrap();

    w.assert_refused(&mut agent, "tampered", "verification failed")
        .await;
    assert_eq!(
        w.deployed("hello").unwrap(),
        manifest_text("hello", "staging", 1)
    );
}

#[tokio::test]
async fn replayed_older_release_is_refused() {
    let w = World::new();
    let repo = w.repo("hello");
    publish(&repo, Release::new("hello", 1, &w.key, &["staging"])).await;
    publish(&repo, Release::new("hello", 2, &w.key, &["staging"])).await;
    let mut agent = w.agent();
    assert_eq!(agent.sync().await.unwrap().applied[0].sequence, 2);
    // Release 2 disappears, leaving the older, validly signed release 1 as the newest tag.
    assert!(repo.untag(&airlock_sign::release_tag(2)).unwrap());
    w.assert_refused(&mut agent, "rollback", "rollback refused")
        .await;
    assert_eq!(
        w.deployed("hello").unwrap(),
        manifest_text("hello", "staging", 2)
    );
}

#[tokio::test]
async fn release_of_another_app_placed_in_this_apps_repository_is_refused() {
    let w = World::new();
    // A genuine, signed release of `billing`, copied into the repository of `hello`.
    let other = w.repo("billing");
    publish(&other, Release::new("billing", 7, &w.key, &["staging"])).await;
    let tag = airlock_sign::release_tag(7);
    airlock_oci::copy_image(&other, &w.repo("hello"), &tag, Some(&tag))
        .await
        .unwrap();
    for t in other.list_tags().await.unwrap() {
        if t != tag {
            airlock_oci::copy_image(&other, &w.repo("hello"), &t, Some(&t))
                .await
                .unwrap();
        }
    }
    let fetched = other.get_manifest(&tag).await.unwrap();
    let subject = ImageManifest::from_bytes(&fetched.bytes, "r")
        .unwrap()
        .subject
        .unwrap();
    airlock_oci::copy_image(&other, &w.repo("hello"), subject.digest.as_str(), None)
        .await
        .unwrap();

    let mut agent = w.agent();
    let report = agent.sync().await.unwrap();
    // billing itself is applied; the copy in hello's repository is refused.
    assert_eq!(
        report
            .applied
            .iter()
            .map(|a| a.app.as_str())
            .collect::<Vec<_>>(),
        vec!["billing"]
    );
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!(report.refused[0].app, "hello");
    assert_eq!(
        report.refused[0].kind, "bad-signature",
        "{:?}",
        report.refused[0]
    );
    assert!(
        report.refused[0].reason.contains("airlock.local/billing"),
        "{:?}",
        report.refused[0]
    );
    assert_eq!(w.deployed("hello"), None);
}

#[tokio::test]
async fn attestation_about_another_image_is_refused() {
    let w = World::new();
    let mut release = Release::new("hello", 1, &w.key, &["staging"]);
    release.attest_subject = Some(airlock_oci::Digest::of(b"some other image"));
    publish(&w.repo("hello"), release).await;
    let mut agent = w.agent();
    w.assert_refused(&mut agent, "attestation-mismatch", "attestation subject")
        .await;
    assert_eq!(w.deployed("hello"), None);
}

#[tokio::test]
async fn a_refused_release_is_verified_once_and_counted_once() {
    let w = World::new();
    let intruder = SigningKey::generate();
    publish(
        &w.repo("hello"),
        Release::new("hello", 1, &intruder, &["staging"]),
    )
    .await;
    let mut agent = w.agent();
    for _ in 0..3 {
        let report = agent.sync().await.unwrap();
        assert_eq!(report.refused.len(), 1);
    }
    assert_eq!(w.metrics.get("staging", Counter::Seen), 1);
    assert!(w.metrics.render().contains("reason=\"untrusted-key\"} 1\n"));
}
