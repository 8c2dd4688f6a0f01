//! The operator commands for keys and revocations, run as the real `airlock-gate` binary: what an operator
//! types and sees, and what lands on disk and at the boundary.

use std::path::Path;
use std::process::{Command, Output};

use airlock_oci::{Digest, LayoutRoot};
use airlock_sign::{PublicKey, REVOCATIONS_REPOSITORY, TrustSet, read_revocations};

fn gate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock-gate"));
    cmd.args(args)
        .env_remove("AIRLOCK_SIGNING_KEY_PASSWORD")
        .env_remove("AIRLOCK_SIGNING_KEY_PEM")
        .env_remove("AIRLOCK_SIGNING_KEY")
        .env_remove("AIRLOCK_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn key_id_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("key id"))
        .map(|l| l.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn generates_an_encrypted_cosign_key_whose_id_matches_its_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("gate.key");
    let password = "a long passphrase";
    let out = gate(
        &[
            "keys",
            "generate",
            "--encrypt",
            "--out",
            key.to_str().unwrap(),
        ],
        &[("AIRLOCK_SIGNING_KEY_PASSWORD", password)],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(password), "the password was printed");
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let printed = key_id_line(&out);
    let public = PublicKey::load(&key.with_extension("pub")).unwrap();
    assert_eq!(printed, public.key_id().to_string());

    let from_pub = gate(
        &["keys", "id", key.with_extension("pub").to_str().unwrap()],
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&from_pub.stdout).trim(), printed);
    let from_private = gate(
        &["keys", "id", key.to_str().unwrap()],
        &[("AIRLOCK_SIGNING_KEY_PASSWORD", password)],
    );
    assert_eq!(
        String::from_utf8_lossy(&from_private.stdout).trim(),
        printed
    );
    let wrong = gate(
        &["keys", "id", key.to_str().unwrap()],
        &[("AIRLOCK_SIGNING_KEY_PASSWORD", "nope")],
    );
    assert!(!wrong.status.success());
    assert!(text(&wrong).contains("wrong password"), "{}", text(&wrong));
}

#[test]
fn encrypt_without_a_password_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("gate.key");
    let out = gate(
        &[
            "keys",
            "generate",
            "--encrypt",
            "--out",
            key.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("AIRLOCK_SIGNING_KEY_PASSWORD"),
        "{}",
        text(&out)
    );
    assert!(!key.exists() && !key.with_extension("pub").exists());
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let key = dir.join("keys/gate.key");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    let out = gate(&["keys", "generate", "--out", key.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let config = dir.join("gate.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[boundary]\nreference_prefix = \"dmz.example\"\n[signing]\nkey = {:?}\n",
            dir.display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();
    config
}

#[tokio::test]
async fn revoke_publishes_a_signed_list_the_agent_side_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let bad = Digest::of(b"a bad image");
    let out = gate(
        &[
            "revoke",
            bad.as_str(),
            "--reason",
            "ships a leaked token",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("sequence 1"), "{}", text(&out));

    let root = LayoutRoot::open_or_create(&dir.path().join("boundary")).unwrap();
    let store = root.repo(REVOCATIONS_REPOSITORY).unwrap();
    let trust = TrustSet::new(vec![
        PublicKey::load(&dir.path().join("keys/gate.pub")).unwrap(),
    ]);
    let reference = format!("dmz.example/{REVOCATIONS_REPOSITORY}");
    let read = read_revocations(&store, &reference, &trust, None)
        .await
        .unwrap()
        .expect("a revocation list");
    assert_eq!(read.list.find(&bad).unwrap().reason, "ships a leaked token");
}

#[test]
fn revoke_refuses_a_malformed_digest_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let out = gate(
        &[
            "revoke",
            "sha256:notadigest",
            "--reason",
            "x",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("sha256:notadigest"), "{}", text(&out));
    assert!(
        !dir.path()
            .join("boundary")
            .join(REVOCATIONS_REPOSITORY)
            .exists()
    );
}
