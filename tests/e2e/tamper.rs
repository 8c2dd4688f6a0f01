//! A tampered or forged release is refused by the agent, which names why and applies nothing.

use airlock_agent::{SourceSpec, SyncConfig, TargetSpec, sync_once};
use airlock_e2e::{files_below, repo_root};
use airlock_oci::{LayoutRoot, OciLayout, Store};
use airlock_sign::{PublicKey, SigningKey, TrustSet};
use std::path::{Path, PathBuf};

/// Runs the demo once into `dir` and returns the boundary directory.
async fn published(dir: &Path) -> PathBuf {
    airlock_e2e::run_demo(dir).await;
    dir.join("boundary")
}

fn sync_config(dir: &Path, boundary: &Path, target: &Path) -> SyncConfig {
    let key = PublicKey::load(&dir.join("keys/airlock.pub")).expect("public key");
    let mut cfg = SyncConfig::new(
        SourceSpec::Layout(boundary.to_path_buf()),
        TrustSet::new(vec![key]),
        "staging",
        TargetSpec::Directory(target.to_path_buf()),
    );
    cfg.admission = Some(repo_root().join("policies/admission"));
    cfg
}

async fn release_manifest(boundary: &Path) -> (OciLayout, airlock_oci::FetchedManifest) {
    let repo = LayoutRoot::open_or_create(boundary)
        .unwrap()
        .repo("hello")
        .unwrap();
    let tags = repo.list_tags().await.unwrap();
    let tag = tags
        .iter()
        .rev()
        .find(|t| t.starts_with("release-"))
        .expect("a release tag")
        .clone();
    let manifest = repo.get_manifest(&tag).await.unwrap();
    (repo, manifest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_published_manifests_is_refused_and_nothing_applied() {
    let dir = tempfile::tempdir().unwrap();
    let boundary = published(dir.path()).await;
    let (repo, manifest) = release_manifest(&boundary).await;
    let parsed: airlock_oci::ImageManifest = serde_json::from_slice(&manifest.bytes).unwrap();
    let layer = &parsed.layers[0].digest;
    let blob = repo.path().join("blobs/sha256").join(layer.hex());
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&blob, bytes).unwrap();

    let target = dir.path().join("tampered-target");
    let report = sync_once(&sync_config(dir.path(), &boundary, &target))
        .await
        .expect("sync completes");
    assert!(report.applied.is_empty(), "a tampered release was applied");
    let reason = &report.refused.first().expect("refused").reason;
    assert!(
        reason.contains(layer.hex()) || reason.to_lowercase().contains("digest"),
        "reason names the blob: {reason}"
    );
    assert!(
        files_below(&target).iter().all(|f| !f.ends_with(".yaml")),
        "nothing applied: {:?}",
        files_below(&target)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_signed_by_an_unknown_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let boundary = published(dir.path()).await;
    let (repo, manifest) = release_manifest(&boundary).await;
    // An attacker with boundary write access but not the gate's key publishes a newer release.
    let config: airlock_sign::ReleaseConfig = {
        let parsed: airlock_oci::ImageManifest = serde_json::from_slice(&manifest.bytes).unwrap();
        serde_json::from_slice(&repo.get_blob(&parsed.config.digest).await.unwrap()).unwrap()
    };
    let forged = airlock_sign::ReleaseConfig {
        sequence: config.sequence + 1,
        environments: vec!["staging".into()],
        ..config
    };
    let mut manifests = std::collections::BTreeMap::new();
    let mut files = std::collections::BTreeMap::new();
    files.insert(
        "deployment.yaml".to_string(),
        "kind: Deployment # evil\n".to_string(),
    );
    manifests.insert("staging".to_string(), files);
    airlock_sign::publish_release(
        &repo,
        "airlock.local/hello",
        &forged,
        &manifests,
        &SigningKey::generate(),
    )
    .await
    .expect("forged release written");

    let target = dir.path().join("forged-target");
    let report = sync_once(&sync_config(dir.path(), &boundary, &target))
        .await
        .expect("sync completes");
    assert!(
        report.applied.is_empty(),
        "a release signed by an unknown key was applied"
    );
    let reason = report
        .refused
        .first()
        .expect("refused")
        .reason
        .to_lowercase();
    assert!(
        reason.contains("trusted") || reason.contains("key"),
        "reason names the key problem: {reason}"
    );
    assert!(files_below(&target).iter().all(|f| !f.ends_with(".yaml")));
}
