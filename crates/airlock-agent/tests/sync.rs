//! `sync_once` against real OCI layouts written by airlock-sign's own
//! `publish_release`, a real directory target and the shipped admission
//! policies (`policies/admission`). No mocks: every release here is signed
//! and verified with real keys.

use airlock_agent::{SourceSpec, SyncConfig, TargetSpec, load_trust, sync_once};
use airlock_oci::{Digest, LayoutRoot, OciLayout};
use airlock_sign::predicates::{CYCLONEDX, POLICY_DECISION, SLSA_PROVENANCE_V1, VULN};
use airlock_sign::{
    ReleaseConfig, ReleaseImage, SigningKey, attach_attestations, publish_release, sign_envelope,
    sign_manifest, statement,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const APP: &str = "hello";
const REFERENCE: &str = "airlock.local/hello";

/// What the gate would have attached to an image.
struct Attest {
    types: Vec<&'static str>,
    gate_allowed: bool,
    findings: Vec<Value>,
}

impl Default for Attest {
    fn default() -> Self {
        Attest {
            types: vec![SLSA_PROVENANCE_V1, CYCLONEDX, VULN, POLICY_DECISION],
            gate_allowed: true,
            findings: vec![],
        }
    }
}

struct World {
    dir: tempfile::TempDir,
    key: SigningKey,
}

impl World {
    fn new() -> Self {
        World {
            dir: tempfile::tempdir().unwrap(),
            key: SigningKey::generate(),
        }
    }

    fn source(&self) -> PathBuf {
        self.dir.path().join("boundary")
    }

    fn target(&self) -> PathBuf {
        self.dir.path().join("target")
    }

    fn key_file(&self, key: &SigningKey, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, key.public_key().to_pem()).unwrap();
        path
    }

    fn config(&self, env: &str, admission: bool) -> SyncConfig {
        let trust = load_trust(&[self.key_file(&self.key, "gate.pub")]).unwrap();
        let mut cfg = SyncConfig::new(
            SourceSpec::Layout(self.source()),
            trust,
            env,
            TargetSpec::Directory(self.target()),
        );
        if admission {
            cfg.admission = Some(admission_dir());
        }
        cfg
    }

    fn store(&self) -> OciLayout {
        LayoutRoot::open_or_create(&self.source())
            .unwrap()
            .repo(APP)
            .unwrap()
    }

    /// Builds, signs, attests and publishes release `sequence` as the gate does.
    async fn publish(&self, sequence: u64, key: &SigningKey, attest: Attest, envs: &[&str]) {
        let store = self.store();
        let image = put_image(&store, format!("app v{sequence}").as_bytes()).await;
        sign_manifest(&store, REFERENCE, &image, key).await.unwrap();
        let envelopes: Vec<_> = attest
            .types
            .iter()
            .map(|kind| {
                let predicate = match *kind {
                    POLICY_DECISION => json!({
                        "decision": {"allowed": attest.gate_allowed, "violations": [], "warnings": [],
                                     "policy_digest": "sha256:00"},
                        "policy_digest": "sha256:00", "run": "run-1", "gate": "test-gate"}),
                    VULN => json!({"scanner": {"uri": "https://airlock.dev/scanner", "result": attest.findings}}),
                    _ => json!({}),
                };
                sign_envelope(&statement(REFERENCE, &image, kind, predicate), key)
            })
            .collect();
        if !envelopes.is_empty() {
            attach_attestations(&store, &image, &envelopes)
                .await
                .unwrap();
        }
        let release = ReleaseConfig {
            app: APP.into(),
            team: "web".into(),
            sequence,
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            source: "https://git.example/web/hello".into(),
            image: ReleaseImage {
                repository: REFERENCE.into(),
                digest: image,
            },
            created: "2026-11-23T09:00:00Z".into(),
            environments: envs.iter().map(|e| e.to_string()).collect(),
            run_id: format!("run-{sequence}"),
        };
        let manifests: BTreeMap<String, BTreeMap<String, String>> = envs
            .iter()
            .map(|env| {
                (
                    env.to_string(),
                    BTreeMap::from([(
                        "deployment.yaml".to_string(),
                        format!("kind: Deployment\n# {env} v{sequence}\n"),
                    )]),
                )
            })
            .collect();
        publish_release(&store, REFERENCE, &release, &manifests, key)
            .await
            .unwrap();
    }

    fn deployed(&self, env: &str) -> Option<String> {
        std::fs::read_to_string(self.target().join(env).join(APP).join("deployment.yaml")).ok()
    }
}

fn admission_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/admission")
}

async fn put_image(store: &OciLayout, content: &[u8]) -> Digest {
    airlock_testkit::image::minimal_image(store, content, None).await
}

#[tokio::test]
async fn applies_verified_release_then_reports_unchanged() {
    let world = World::new();
    world
        .publish(1, &world.key, Attest::default(), &["staging", "production"])
        .await;
    let cfg = world.config("staging", true);

    let report = sync_once(&cfg).await.unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(report.applied.len(), 1);
    let applied = &report.applied[0];
    assert_eq!((applied.app.as_str(), applied.sequence), (APP, 1));
    assert_eq!(applied.path, world.target().join("staging/hello"));
    assert_eq!(
        world.deployed("staging").unwrap(),
        "kind: Deployment\n# staging v1\n"
    );
    assert_eq!(
        world.deployed("production"),
        None,
        "only this agent's env is written"
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(applied.path.join(".airlock-release.json")).unwrap())
            .unwrap();
    assert_eq!(record["sequence"], 1);
    assert_eq!(record["release_digest"], applied.release_digest.as_str());
    assert_eq!(
        record["signed_by"],
        world.key.public_key().key_id().as_str()
    );

    let again = sync_once(&cfg).await.unwrap();
    assert!(again.applied.is_empty() && again.refused.is_empty());
    assert_eq!(again.unchanged, vec![APP.to_string()]);
}

#[tokio::test]
async fn newer_release_replaces_the_deployed_one() {
    let world = World::new();
    world
        .publish(1, &world.key, Attest::default(), &["staging"])
        .await;
    let cfg = world.config("staging", true);
    sync_once(&cfg).await.unwrap();
    world
        .publish(2, &world.key, Attest::default(), &["staging"])
        .await;
    let report = sync_once(&cfg).await.unwrap();
    assert_eq!(report.applied.len(), 1, "{report:?}");
    assert_eq!(report.applied[0].sequence, 2);
    assert_eq!(
        world.deployed("staging").unwrap(),
        "kind: Deployment\n# staging v2\n"
    );
}

#[tokio::test]
async fn refuses_rollback_to_an_older_release() {
    let world = World::new();
    world
        .publish(1, &world.key, Attest::default(), &["staging"])
        .await;
    world
        .publish(2, &world.key, Attest::default(), &["staging"])
        .await;
    let cfg = world.config("staging", false);
    sync_once(&cfg).await.unwrap();
    assert_eq!(
        world.deployed("staging").unwrap(),
        "kind: Deployment\n# staging v2\n"
    );

    // Someone in the DMZ removes release 2, leaving the older, validly signed 1 as newest.
    assert!(world.store().untag(&airlock_sign::release_tag(2)).unwrap());
    let report = sync_once(&cfg).await.unwrap();
    assert!(report.applied.is_empty());
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert!(
        report.refused[0].reason.contains("rollback refused"),
        "{:?}",
        report.refused
    );
    assert_eq!(
        world.deployed("staging").unwrap(),
        "kind: Deployment\n# staging v2\n"
    );
}

#[tokio::test]
async fn refuses_release_signed_by_an_untrusted_key_and_writes_nothing() {
    let world = World::new();
    let intruder = SigningKey::generate();
    world
        .publish(1, &intruder, Attest::default(), &["staging"])
        .await;
    let report = sync_once(&world.config("staging", true)).await.unwrap();
    assert!(report.applied.is_empty());
    assert_eq!(report.refused.len(), 1);
    let refusal = &report.refused[0];
    assert_eq!(refusal.reference, "airlock.local/hello:release-0000000001");
    assert!(
        refusal.reason.contains("verification failed"),
        "{}",
        refusal.reason
    );
    // Only the agent's status (recording the refusal) is written, no manifests.
    assert!(!world.target().join("staging/hello").exists());
    assert!(!world.target().join("staging/.releases").exists());
}

#[tokio::test]
async fn refuses_release_missing_the_sbom_attestation() {
    let world = World::new();
    let attest = Attest {
        types: vec![SLSA_PROVENANCE_V1, POLICY_DECISION],
        ..Attest::default()
    };
    world.publish(1, &world.key, attest, &["staging"]).await;
    let report = sync_once(&world.config("staging", false)).await.unwrap();
    assert_eq!(report.refused.len(), 1);
    assert!(
        report.refused[0].reason.contains(CYCLONEDX),
        "{:?}",
        report.refused
    );
    assert_eq!(world.deployed("staging"), None);
}

#[tokio::test]
async fn refuses_release_not_rendered_for_this_environment() {
    let world = World::new();
    world
        .publish(1, &world.key, Attest::default(), &["staging"])
        .await;
    let report = sync_once(&world.config("production", true)).await.unwrap();
    assert_eq!(report.refused.len(), 1);
    assert!(
        report.refused[0]
            .reason
            .contains("does not list environment production"),
        "{:?}",
        report.refused
    );
    assert!(!world.target().join("production/hello").exists());
    assert!(!world.target().join("production/.releases").exists());
}

#[tokio::test]
async fn admission_refuses_release_the_gate_did_not_allow() {
    let world = World::new();
    let attest = Attest {
        gate_allowed: false,
        ..Attest::default()
    };
    world.publish(1, &world.key, attest, &["staging"]).await;
    let report = sync_once(&world.config("staging", true)).await.unwrap();
    assert_eq!(report.refused.len(), 1);
    assert!(
        report.refused[0].reason.contains("admission.gate-denied"),
        "{:?}",
        report.refused
    );
    assert_eq!(world.deployed("staging"), None);

    // Without admission policies the same release is applied: the refusal came from the policy.
    let report = sync_once(&world.config("staging", false)).await.unwrap();
    assert_eq!(report.applied.len(), 1);
}

#[tokio::test]
async fn admission_refuses_fixable_critical_finding_naming_the_fix() {
    let world = World::new();
    let attest = Attest {
        findings: vec![json!({
            "id": "CVE-2024-6387", "aliases": ["GHSA-2x8c-95vh-gfv4"], "package": "openssh-server",
            "ecosystem": "Debian", "installed": "1:9.2p1-2", "fixed": "1:9.2p1-2+deb12u3",
            "severity": "critical"
        })],
        ..Attest::default()
    };
    world.publish(1, &world.key, attest, &["staging"]).await;
    let report = sync_once(&world.config("staging", true)).await.unwrap();
    assert_eq!(report.refused.len(), 1);
    let reason = &report.refused[0].reason;
    assert!(reason.contains("admission.fixable-critical"), "{reason}");
    assert!(
        reason.contains("upgrade openssh-server to 1:9.2p1-2+deb12u3"),
        "{reason}"
    );
}

#[tokio::test]
async fn trusts_any_key_of_a_rotation_set() {
    let world = World::new();
    let old_key = SigningKey::generate();
    world
        .publish(1, &old_key, Attest::default(), &["staging"])
        .await;
    let mut cfg = world.config("staging", false);
    cfg.trust = load_trust(&[
        world.key_file(&world.key, "new.pub"),
        world.key_file(&old_key, "old.pub"),
    ])
    .unwrap();
    let report = sync_once(&cfg).await.unwrap();
    assert_eq!(report.applied.len(), 1, "{report:?}");
}

#[tokio::test]
async fn missing_source_is_an_error_not_an_empty_sync() {
    let world = World::new();
    let err = sync_once(&world.config("staging", false))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("boundary"), "{err}");
}
