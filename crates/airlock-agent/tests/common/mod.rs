//! Shared fixtures of the agent's integration tests: releases published exactly as the gate publishes
//! them (airlock-sign's `publish_release` over any `Store`), and a real `docker-registry` on loopback.

#![allow(dead_code)]

use airlock_oci::{Descriptor, Digest, ImageManifest, Store, media_type};
use airlock_sign::predicates::{CYCLONEDX, POLICY_DECISION, SLSA_PROVENANCE_V1, VULN};
use airlock_sign::{
    ReleaseConfig, ReleaseImage, SigningKey, attach_attestations, publish_release, sign_envelope,
    sign_manifest, statement,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
        }
    }
}

/// Puts a one-layer image into `store`, tagged `tag` as the gate tags app images, and returns its digest.
pub async fn put_image(store: &dyn Store, content: &[u8], tag: &str) -> Digest {
    let layer = Descriptor::for_bytes(media_type::OCI_LAYER_TAR, content);
    store.put_blob(&layer.digest, content).await.unwrap();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_desc = Descriptor::for_bytes(media_type::OCI_CONFIG, config);
    store.put_blob(&config_desc.digest, config).await.unwrap();
    let manifest = ImageManifest::new(config_desc, vec![layer]);
    store
        .put_manifest(&manifest.to_bytes(), media_type::OCI_MANIFEST, Some(tag))
        .await
        .unwrap()
}

/// The manifests a release renders for `env`.
pub fn manifest_text(app: &str, env: &str, sequence: u64) -> String {
    format!("kind: Deployment\nmetadata:\n  name: {app}\n# {env} v{sequence}\n")
}

/// Builds, signs, attests and publishes a release as the gate does. Returns the release digest.
pub async fn publish(store: &dyn Store, r: Release<'_>) -> Digest {
    let image = put_image(store, r.content.as_bytes(), &format!("run-{}", r.sequence)).await;
    sign_manifest(store, &r.reference, &image, r.key)
        .await
        .unwrap();
    let subject = r.attest_subject.clone().unwrap_or_else(|| image.clone());
    let envelopes: Vec<_> = [SLSA_PROVENANCE_V1, CYCLONEDX, VULN, POLICY_DECISION]
        .iter()
        .map(|kind| {
            let predicate = match *kind {
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
    let release = ReleaseConfig {
        app: r.app.into(),
        team: "web".into(),
        sequence: r.sequence,
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        source: format!("https://git.example/web/{}", r.app),
        image: ReleaseImage {
            repository: r.reference.clone(),
            digest: image,
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
                    manifest_text(r.app, env, r.sequence),
                )]),
            )
        })
        .collect();
    publish_release(store, &r.reference, &release, &manifests, r.key)
        .await
        .unwrap()
}

/// Writes `key`'s public key as PEM into `dir/name`.
pub fn key_file(dir: &Path, key: &SigningKey, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, key.public_key().to_pem()).unwrap();
    path
}

/// The shipped admission policies.
pub fn admission_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/admission")
}

/// A `docker-registry` (distribution 2.8) on loopback, with its data in a temporary directory.
pub struct Registry {
    pub port: u16,
    data: tempfile::TempDir,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// Starts a registry; panics with a hint when `docker-registry` is not installed (scripts/setup).
    pub fn start() -> Registry {
        let mut r = Registry {
            port: free_port(),
            data: tempfile::tempdir().unwrap(),
            child: None,
        };
        r.restart();
        r
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the registry (the port refuses connections until [`Registry::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        let config = self.data.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{ level: error }}\nstorage: {{ filesystem: {{ rootdirectory: {} }}, delete: {{ enabled: true }} }}\nhttp: {{ addr: 127.0.0.1:{} }}\n",
                self.data.path().join("data").display(),
                self.port
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is not installed: run scripts/setup (apt-get install docker-registry)");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("docker-registry did not start on port {}", self.port);
    }

    /// A store for repository `repo` of this registry (plain HTTP).
    pub fn store(&self, repo: &str) -> airlock_oci::RegistryStore {
        airlock_oci::RegistryStore::new(
            &self.host(),
            repo,
            airlock_oci::RegistryAuth::Anonymous,
            true,
        )
        .unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
