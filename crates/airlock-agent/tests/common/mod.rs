//! Shared fixtures of the agent's integration tests: releases published exactly as the gate publishes
//! them (airlock-sign's `publish_release` over any `Store`), and a real `docker-registry` on loopback.

#![allow(dead_code)]

use airlock_oci::{Digest, Store};
use airlock_sign::predicates::{CYCLONEDX, POLICY_DECISION, SLSA_PROVENANCE_V1, VULN};
use airlock_sign::{
    ReleaseConfig, ReleaseImage, SigningKey, attach_attestations, publish_release, sign_envelope,
    sign_manifest, statement,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_agent::{SourceOptions, SourceSpec, SyncConfig, TargetSpec, load_trust};

/// What to publish for one release.
pub struct Release<'a> {
    /// App name (also in the config).
    pub app: &'a str,
    /// Sequence.
    pub sequence: u64,
    /// Environments rendered.
    pub envs: &'a [&'a str],
    /// Signs image, attestations and release.
    pub key: &'a SigningKey,
    /// Docker reference everything is signed for.
    pub reference: String,
    /// Image content (distinguishes images).
    pub content: String,
    /// Attestation subject (the image itself unless testing a mismatch).
    pub attest_subject: Option<Digest>,
    /// Predicates to attest instead of the default one of their kind (e.g. an SBOM, a scan result).
    pub predicates: BTreeMap<&'static str, Value>,
    /// The Deployment names the image as `REFERENCE@DIGEST` (as rendered manifests do) instead of
    /// [`manifest_text`].
    pub names_image: bool,
}

impl<'a> Release<'a> {
    /// A normal, fully signed release of `app`.
    pub fn new(app: &'a str, sequence: u64, key: &'a SigningKey, envs: &'a [&'a str]) -> Self {
        Release {
            app,
            sequence,
            envs,
            key,
            reference: format!("airlock.local/{app}"),
            content: format!("{app} v{sequence}"),
            attest_subject: None,
            predicates: BTreeMap::new(),
            names_image: false,
        }
    }
}

/// Puts a one-layer image into `store`, tagged `tag` as the gate tags app images, and returns its digest.
pub async fn put_image(store: &dyn Store, content: &[u8], tag: &str) -> Digest {
    airlock_testkit::image::minimal_image(store, content, Some(tag)).await
}

/// The manifests a release renders for `env`.
pub fn manifest_text(app: &str, env: &str, sequence: u64) -> String {
    format!("kind: Deployment\nmetadata:\n  name: {app}\n# {env} v{sequence}\n")
}

/// Builds, signs, attests and publishes a release as the gate does. Returns the release digest.
pub async fn publish(store: &dyn Store, r: Release<'_>) -> Digest {
    publish_with_image(store, r).await.0
}

/// Puts the image of `r` into `store` (tagged `run-SEQUENCE`) with its signature and attestations, as
/// the gate does before publishing the release. Returns the image digest.
pub async fn signed_image(store: &dyn Store, r: &Release<'_>) -> Digest {
    let image = put_image(store, r.content.as_bytes(), &format!("run-{}", r.sequence)).await;
    sign_manifest(store, &r.reference, &image, r.key)
        .await
        .unwrap();
    let subject = r.attest_subject.clone().unwrap_or_else(|| image.clone());
    let envelopes: Vec<_> = [SLSA_PROVENANCE_V1, CYCLONEDX, VULN, POLICY_DECISION]
        .iter()
        .map(|kind| {
            let predicate = match *kind {
                _ if r.predicates.contains_key(kind) => r.predicates[kind].clone(),
                POLICY_DECISION => json!({
                    "decision": {"allowed": true, "violations": [], "warnings": [], "policy_digest": "sha256:00"},
                    "policy_digest": "sha256:00", "run": "run-1", "gate": "test-gate"}),
                VULN => json!({"scanner": {"uri": "https://airlock.dev/scanner", "result": []}}),
                _ => json!({}),
            };
            sign_envelope(&statement(&r.reference, &subject, kind, predicate), r.key)
        })
        .collect();
    attach_attestations(store, &image, &envelopes)
        .await
        .unwrap();
    image
}

/// [`publish`], returning the release digest and the image digest.
pub async fn publish_with_image(store: &dyn Store, r: Release<'_>) -> (Digest, Digest) {
    let image = signed_image(store, &r).await;
    let release = ReleaseConfig {
        app: r.app.into(),
        team: "web".into(),
        sequence: r.sequence,
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        source: format!("https://git.example/web/{}", r.app),
        image: ReleaseImage {
            repository: r.reference.clone(),
            digest: image.clone(),
        },
        created: "2026-11-23T09:00:00Z".into(),
        environments: r.envs.iter().map(|e| e.to_string()).collect(),
        run_id: format!("run-{}", r.sequence),
    };
    let manifests: BTreeMap<String, BTreeMap<String, String>> = r
        .envs
        .iter()
        .map(|env| {
            (
                env.to_string(),
                BTreeMap::from([(
                    "deployment.yaml".to_string(),
                    if r.names_image {
                        format!(
                            "kind: Deployment\nmetadata:\n  name: {}\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {}@{image}\n",
                            r.app, r.reference
                        )
                    } else {
                        manifest_text(r.app, env, r.sequence)
                    },
                )]),
            )
        })
        .collect();
    let digest = publish_release(store, &r.reference, &release, &manifests, r.key)
        .await
        .unwrap();
    (digest, image)
}

/// Writes `key`'s public key as PEM into `dir/name`.
pub fn key_file(dir: &Path, key: &SigningKey, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, key.public_key().to_pem()).unwrap();
    path
}

/// A configuration syncing `hello` from `docker://HOST/boundary` of `registry` (plain HTTP) into
/// `target` for `staging`, trusting `key` (its public key written into `dir`).
pub fn registry_config(
    dir: &Path,
    registry: &Registry,
    key: &SigningKey,
    target: TargetSpec,
) -> SyncConfig {
    let trust = load_trust(&[key_file(dir, key, "gate.pub")]).unwrap();
    let source: SourceSpec = format!("docker://{}/boundary", registry.host())
        .parse()
        .unwrap();
    let mut cfg = SyncConfig::new(source, trust, "staging", target);
    cfg.source_options = SourceOptions {
        apps: vec!["hello".into()],
        insecure: true,
        credentials: None,
    };
    cfg
}

/// The shipped admission policies.
pub fn admission_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/admission")
}

/// A `docker-registry` (distribution 2.8) on loopback, with its data in a temporary directory:
/// `Registry::start()` (panics with a hint when it is not installed), `host()`, `port`, `stop()`,
/// `restart()` (same port, same data) and `store(repo)`.
pub type Registry = airlock_testkit::Registry;
