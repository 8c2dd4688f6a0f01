//! What airlock signs must verify with tools that share no code with it: `tests/verify_cosign.py`
//! (Python `cryptography`) for cosign `.sig` signatures and `tests/verify_dsse.py` (`securesystemslib`) for
//! DSSE attestations, both reading the OCI layout directory straight from disk.
//!
//! `tests/cosign_key.py` (`hashlib.scrypt` + PyNaCl) reads and writes cosign's encrypted private keys.
//!
//! Needs a venv with the packages: `python3 -m venv ~/.cache/airlock/venv &&
//! ~/.cache/airlock/venv/bin/pip install cryptography securesystemslib pynacl` (or set `AIRLOCK_PY_VENV`;
//! scripts/setup does it).

use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_oci::{Digest, OciLayout};
use airlock_sign::predicates;
use airlock_sign::{SigningKey, attach_attestations, sign_envelope, sign_manifest, statement};
use airlock_testkit::image::minimal_image;
use airlock_testkit::tools::{python_importing, run_python};

const REPO: &str = "registry.example/team/app";

fn python() -> PathBuf {
    python_importing(
        &["cryptography", "securesystemslib", "nacl"],
        "cryptography securesystemslib pynacl",
    )
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

/// Runs a verifier script; returns (success, stdout + stderr).
fn run(script_name: &str, args: &[&str]) -> (bool, String) {
    run_python(&python(), &script(script_name), args)
}

/// Writes `key`'s public key as PEM to `dir/name`.
fn pub_file(dir: &Path, name: &str, key: &SigningKey) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, key.public_key().to_pem()).unwrap();
    path
}

/// `verify_cosign.py LAYOUT PUBKEY DIGEST REPO`: the `.sig` of `digest` in the layout, for `repo`.
fn verify_cosign(layout: &Path, pub_key: &Path, digest: &str, repo: &str) -> (bool, String) {
    let (layout, pub_key) = (layout.to_str().unwrap(), pub_key.to_str().unwrap());
    run("verify_cosign.py", &[layout, pub_key, digest, repo])
}

/// `verify_dsse.py LAYOUT PUBKEY DIGEST`: every DSSE attestation of `digest`; prints their predicate types.
fn verify_dsse(layout: &Path, pub_key: &Path, digest: &str) -> (bool, String) {
    let (layout, pub_key) = (layout.to_str().unwrap(), pub_key.to_str().unwrap());
    run("verify_dsse.py", &[layout, pub_key, digest])
}

async fn put_image(store: &OciLayout, content: &[u8]) -> Digest {
    minimal_image(store, content, Some("latest")).await
}

#[tokio::test]
async fn cosign_signature_verifies_with_python_cryptography() {
    let dir = tempfile::tempdir().unwrap();
    let layout_dir = dir.path().join("app");
    let store = OciLayout::create(&layout_dir).unwrap();
    let digest = put_image(&store, b"image bytes").await;
    let key = SigningKey::generate();
    sign_manifest(&store, REPO, &digest, &key).await.unwrap();
    let pub_path = pub_file(dir.path(), "key.pub", &key);
    let (layout, pubkey) = (layout_dir.to_str().unwrap(), pub_path.to_str().unwrap());

    let (ok, out) = run("verify_cosign.py", &[layout, pubkey, digest.as_str(), REPO]);
    assert!(ok, "python rejected a good signature: {out}");
    assert!(out.contains("verified"), "{out}");

    let (ok, out) = run(
        "verify_cosign.py",
        &[layout, pubkey, digest.as_str(), "registry.example/other"],
    );
    assert!(
        !ok,
        "python accepted a signature for another repository: {out}"
    );

    let stranger = dir.path().join("stranger.pub");
    std::fs::write(&stranger, SigningKey::generate().public_key().to_pem()).unwrap();
    let (ok, out) = run(
        "verify_cosign.py",
        &[layout, stranger.to_str().unwrap(), digest.as_str(), REPO],
    );
    assert!(!ok, "python accepted a signature with the wrong key: {out}");
}

#[tokio::test]
async fn rotated_signatures_each_verify_in_python() {
    let dir = tempfile::tempdir().unwrap();
    let layout_dir = dir.path().join("app");
    let store = OciLayout::create(&layout_dir).unwrap();
    let digest = put_image(&store, b"image bytes").await;
    for (i, key) in [SigningKey::generate(), SigningKey::generate()]
        .iter()
        .enumerate()
    {
        sign_manifest(&store, REPO, &digest, key).await.unwrap();
        let pub_path = pub_file(dir.path(), &format!("key{i}.pub"), key);
        let (ok, out) = verify_cosign(&layout_dir, &pub_path, digest.as_str(), REPO);
        assert!(ok, "key {i}: {out}");
    }
}

#[tokio::test]
async fn key_made_by_python_signs_what_python_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let priv_path = dir.path().join("py.pem");
    let pub_path = dir.path().join("py.pub");
    let script = format!(
        "from cryptography.hazmat.primitives import serialization as s\n\
         from cryptography.hazmat.primitives.asymmetric import ec\n\
         k = ec.generate_private_key(ec.SECP256R1())\n\
         open({p:?}, 'wb').write(k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))\n\
         open({q:?}, 'wb').write(k.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))\n",
        p = priv_path.to_str().unwrap(),
        q = pub_path.to_str().unwrap()
    );
    assert!(
        Command::new(python())
            .args(["-c", &script])
            .status()
            .unwrap()
            .success()
    );
    let key = SigningKey::load(&priv_path).unwrap();
    assert_eq!(
        airlock_sign::PublicKey::load(&pub_path).unwrap(),
        key.public_key()
    );

    let layout_dir = dir.path().join("app");
    let store = OciLayout::create(&layout_dir).unwrap();
    let digest = put_image(&store, b"image bytes").await;
    sign_manifest(&store, REPO, &digest, &key).await.unwrap();
    let (ok, out) = verify_cosign(&layout_dir, &pub_path, digest.as_str(), REPO);
    assert!(ok, "{out}");
}

#[tokio::test]
async fn dsse_attestations_verify_with_securesystemslib() {
    let dir = tempfile::tempdir().unwrap();
    let layout_dir = dir.path().join("app");
    let store = OciLayout::create(&layout_dir).unwrap();
    let digest = put_image(&store, b"image bytes").await;
    let key = SigningKey::generate();
    let envelopes: Vec<_> = [
        predicates::SLSA_PROVENANCE_V1,
        predicates::CYCLONEDX,
        predicates::VULN,
    ]
    .iter()
    .map(|p| {
        sign_envelope(
            &statement(REPO, &digest, p, serde_json::json!({"k": "v"})),
            &key,
        )
    })
    .collect();
    attach_attestations(&store, &digest, &envelopes)
        .await
        .unwrap();
    let pub_path = pub_file(dir.path(), "key.pub", &key);
    let (ok, out) = verify_dsse(&layout_dir, &pub_path, digest.as_str());
    assert!(ok, "securesystemslib rejected good attestations: {out}");
    let types: Vec<&str> = out.lines().collect();
    assert_eq!(
        types,
        [
            predicates::SLSA_PROVENANCE_V1,
            predicates::CYCLONEDX,
            predicates::VULN
        ]
    );

    let stranger = pub_file(dir.path(), "stranger.pub", &SigningKey::generate());
    let (ok, out) = verify_dsse(&layout_dir, &stranger, digest.as_str());
    assert!(
        !ok,
        "securesystemslib accepted attestations with the wrong key: {out}"
    );
}

#[test]
fn encrypted_keys_interoperate_with_an_independent_implementation() {
    let dir = tempfile::tempdir().unwrap();
    // Ours → theirs: Python decrypts our cosign-format key to the same public key.
    let key = SigningKey::generate();
    let ours = dir.path().join("ours.key");
    std::fs::write(&ours, key.to_encrypted_pem(b"s3cret pass").unwrap()).unwrap();
    let (ok, out) = run(
        "cosign_key.py",
        &["decrypt", ours.to_str().unwrap(), "s3cret pass"],
    );
    assert!(ok, "python could not decrypt our key: {out}");
    assert_eq!(
        airlock_sign::PublicKey::from_pem(&out).unwrap(),
        key.public_key()
    );
    let (ok, out) = run(
        "cosign_key.py",
        &["decrypt", ours.to_str().unwrap(), "wrong"],
    );
    assert!(!ok, "python decrypted with a wrong password: {out}");

    // Theirs → ours: a key Python wrote in cosign's format loads here and signs for its public key.
    let theirs = dir.path().join("theirs.key");
    let (ok, out) = run(
        "cosign_key.py",
        &["encrypt", theirs.to_str().unwrap(), "pw"],
    );
    assert!(ok, "{out}");
    let public = airlock_sign::PublicKey::from_pem(&out).unwrap();
    let loaded = SigningKey::load_with_password(&theirs, Some(b"pw")).unwrap();
    assert_eq!(loaded.public_key(), public);
    assert!(public.verifies(b"m", &loaded.sign(b"m")));
    assert!(SigningKey::load_with_password(&theirs, Some(b"pW")).is_err());
}

#[tokio::test]
async fn revocation_list_signature_verifies_with_python_cryptography() {
    let dir = tempfile::tempdir().unwrap();
    let layout_dir = dir.path().join(airlock_sign::REVOCATIONS_REPOSITORY);
    let store = OciLayout::create(&layout_dir).unwrap();
    let key = SigningKey::generate();
    let reference = format!("registry.example/{}", airlock_sign::REVOCATIONS_REPOSITORY);
    let published = airlock_sign::publish_revocation(
        &store,
        &reference,
        &Digest::of(b"bad image"),
        "leaked credentials in layer 3",
        "2026-01-01T00:00:00Z",
        &key,
    )
    .await
    .unwrap();
    let pub_path = pub_file(dir.path(), "key.pub", &key);
    let (ok, out) = verify_cosign(
        &layout_dir,
        &pub_path,
        published.digest.as_str(),
        reference.as_str(),
    );
    assert!(ok, "python rejected the revocation list signature: {out}");
}

#[tokio::test]
async fn gate_predicates_verify_with_securesystemslib() {
    let dir = tempfile::tempdir().unwrap();
    let layout_dir = dir.path().join("app");
    let store = OciLayout::create(&layout_dir).unwrap();
    let digest = put_image(&store, b"image bytes").await;
    let key = SigningKey::generate();
    let decision = serde_json::json!({
        "allowed": true, "violations": [], "warnings": [], "expired_waivers": [],
        "policy_digest": "sha256:abcd", "rules_evaluated": ["vuln.rego"],
        "waived": [{"waiver": {"id": "CVE-2024-1", "package": "jinja2", "expires": "2026-12-31",
                               "reason": "component_not_present: not shipped", "approver": "sec@example"},
                    "violation": {"rule": "vuln.fixable-high", "advisories": ["CVE-2024-1"]}}],
    });
    let predicates = [
        (
            predicates::VULN,
            predicates::vuln_report(&predicates::VulnScanInput {
                gate_id: "https://gate.example".into(),
                result: serde_json::json!([]),
                ..Default::default()
            }),
        ),
        (
            predicates::POLICY_DECISION,
            predicates::policy_decision(&decision, "https://gate.example", "run-1"),
        ),
        (
            predicates::OPENVEX,
            predicates::openvex(
                &decision,
                REPO,
                &digest,
                "https://gate.example",
                "2026-01-01T00:00:00Z",
            )
            .unwrap(),
        ),
    ];
    let envelopes: Vec<_> = predicates
        .iter()
        .map(|(kind, p)| sign_envelope(&statement(REPO, &digest, kind, p.clone()), &key))
        .collect();
    attach_attestations(&store, &digest, &envelopes)
        .await
        .unwrap();
    let pub_path = pub_file(dir.path(), "key.pub", &key);
    let (ok, out) = verify_dsse(&layout_dir, &pub_path, digest.as_str());
    assert!(ok, "securesystemslib rejected gate attestations: {out}");
    let types: Vec<&str> = out.lines().collect();
    assert_eq!(
        types,
        [
            predicates::VULN,
            predicates::POLICY_DECISION,
            predicates::OPENVEX
        ]
    );
}
