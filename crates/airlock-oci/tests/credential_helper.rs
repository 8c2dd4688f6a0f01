//! Registry credentials from Docker credential helpers (`credsStore`, `credHelpers`), with the real
//! `docker-credential-pass` (Debian's golang-docker-credential-helpers) over a throw-away `pass` store and GPG
//! key, against a real registry that requires a password, and skopeo as the independent reader.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use airlock_oci::{
    CredentialHelpers, Digest, ImageConfig, OciLayout, RegistryAuth, RegistryStore, copy_image,
    docker_config_auth_with,
};
use airlock_testkit::Registry;
use airlock_testkit::image::file_image;
use airlock_testkit::tools::skopeo;

const USER: &str = "gate";
const PASSWORD: &str = "s3cret-pw";

/// A `pass` password store encrypted to a fresh passphrase-less GPG key, both in a temporary directory,
/// and the helper settings that point `docker-credential-pass` at it. The GPG agent it starts is stopped
/// on drop.
struct PassStore {
    dir: tempfile::TempDir,
    helpers: CredentialHelpers,
}

impl PassStore {
    fn new() -> PassStore {
        assert!(
            Command::new("docker-credential-pass")
                .arg("version")
                .output()
                .is_ok(),
            "docker-credential-pass is not installed: \
             apt-get install -y golang-docker-credential-helpers pass (scripts/setup)"
        );
        let dir = tempfile::tempdir().unwrap();
        let gnupg = dir.path().join("g");
        let store = dir.path().join("store");
        std::fs::create_dir(&gnupg).unwrap();
        std::fs::create_dir(&store).unwrap();
        // gpg refuses a home directory others can read.
        let mut perms = std::fs::metadata(&gnupg).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
        std::fs::set_permissions(&gnupg, perms).unwrap();
        let env: Vec<(OsString, OsString)> = vec![
            ("GNUPGHOME".into(), gnupg.clone().into()),
            ("PASSWORD_STORE_DIR".into(), store.into()),
        ];
        let pass = PassStore {
            dir,
            helpers: CredentialHelpers {
                path_dirs: None,
                env,
            },
        };
        pass.run(
            "gpg",
            &[
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-gen-key",
                "airlock test <t@example.invalid>",
                "default",
                "default",
                "never",
            ],
            "",
        );
        let keys = pass.run("gpg", &["--batch", "--with-colons", "--list-keys"], "");
        let fingerprint = keys
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.split(':').find(|f| !f.is_empty()))
            .expect("gpg lists the new key's fingerprint")
            .to_string();
        pass.run("pass", &["init", &fingerprint], "");
        pass
    }

    /// Runs `program` with the store's environment and `stdin`; its stdout, or a panic with its stderr.
    fn run(&self, program: &str, args: &[&str], stdin: &str) -> String {
        let mut child = Command::new(program)
            .args(args)
            .envs(self.helpers.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `docker login`'s part: stores credentials for `server` through the helper itself.
    fn store(&self, server: &str, user: &str, secret: &str) {
        let entry = serde_json::json!({"ServerURL": server, "Username": user, "Secret": secret})
            .to_string();
        self.run("docker-credential-pass", &["store"], &entry);
    }

    /// A Docker client config holding `json`.
    fn config(&self, name: &str, json: serde_json::Value) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.json"));
        std::fs::write(&path, json.to_string()).unwrap();
        path
    }
}

impl Drop for PassStore {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.dir.path().join("g"))
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

/// A one-file image in a fresh layout, tagged `v1`.
async fn seed(dir: &Path) -> (OciLayout, Digest) {
    let layout = OciLayout::create(&dir.join("seed")).unwrap();
    let digest = file_image(
        &layout,
        "/msg",
        b"pushed with helper credentials",
        ImageConfig::new("amd64", "linux"),
        Some("v1"),
    )
    .await;
    (layout, digest)
}

/// What `airlock-gate image copy oci:SEED:v1 docker://HOST/REPO:v1` does with the credentials `config`
/// gives for the registry.
async fn push(
    config: &Path,
    helpers: &CredentialHelpers,
    registry: &Registry,
    repo: &str,
    layout: &OciLayout,
) -> Result<Digest, String> {
    let auth =
        docker_config_auth_with(config, &registry.host, helpers).map_err(|e| e.to_string())?;
    let store = RegistryStore::new(&registry.host, repo, auth, true).map_err(|e| e.to_string())?;
    copy_image(layout, &store, "v1", Some("v1"))
        .await
        .map_err(|e| e.to_string())
}

/// The digest skopeo, logged in with the registry's password, reads for `repo:v1`.
fn skopeo_digest(registry: &Registry, repo: &str) -> String {
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &format!("{USER}:{PASSWORD}"),
        &format!("docker://{}/{repo}:v1", registry.host),
    ]))
    .unwrap();
    inspect["Digest"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn creds_store_and_cred_helpers_give_the_registry_password() {
    let registry = Registry::start_with_password(USER, PASSWORD);
    let pass = PassStore::new();
    pass.store(&registry.host, USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let (layout, digest) = seed(dir.path()).await;

    let store_config = pass.config("store", serde_json::json!({"credsStore": "pass"}));
    let pushed = push(
        &store_config,
        &pass.helpers,
        &registry,
        "team/store",
        &layout,
    )
    .await
    .unwrap();
    assert_eq!(pushed, digest);
    assert_eq!(skopeo_digest(&registry, "team/store"), digest.as_str());

    // credHelpers wins over a credsStore that is not even installed and over a wrong `auths` entry.
    let helper_config = pass.config(
        "helpers",
        serde_json::json!({
            "credsStore": "nonexistent",
            "credHelpers": {registry.host.clone(): "pass"},
            "auths": {registry.host.clone(): {"username": USER, "password": "wrong"}},
        }),
    );
    let pushed = push(
        &helper_config,
        &pass.helpers,
        &registry,
        "team/helpers",
        &layout,
    )
    .await
    .unwrap();
    assert_eq!(pushed, digest);
    assert_eq!(skopeo_digest(&registry, "team/helpers"), digest.as_str());
}

#[tokio::test]
async fn missing_entries_missing_helpers_and_identity_tokens_are_told_apart() {
    let registry = Registry::start_with_password(USER, PASSWORD);
    let pass = PassStore::new();
    // The helper holds credentials, but for another registry only.
    pass.store("127.0.0.1:1", USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = seed(dir.path()).await;

    // No entry for this host: anonymous, which the registry refuses.
    let config = pass.config("store", serde_json::json!({"credsStore": "pass"}));
    assert!(matches!(
        docker_config_auth_with(&config, &registry.host, &pass.helpers).unwrap(),
        RegistryAuth::Anonymous
    ));
    let err = push(&config, &pass.helpers, &registry, "team/anon", &layout)
        .await
        .unwrap_err();
    assert!(err.contains(&registry.host), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");

    // A helper that is not installed (looked up on the real PATH).
    let config = pass.config("absent", serde_json::json!({"credsStore": "nonexistent"}));
    let err = push(
        &config,
        &CredentialHelpers::default(),
        &registry,
        "team/x",
        &layout,
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("docker-credential-nonexistent")
            && err.contains("not installed")
            && err.contains("absent.json"),
        "{err}"
    );

    // An identity token (what `docker login` stores for OAuth2 logins) is refused, not sent as a password.
    pass.store(&registry.host, "<token>", "refresh-s3cret-pw");
    let config = pass.config(
        "token",
        serde_json::json!({"credHelpers": {registry.host.clone(): "pass"}}),
    );
    let err = push(&config, &pass.helpers, &registry, "team/token", &layout)
        .await
        .unwrap_err();
    assert!(
        err.contains("identity token")
            && err.contains(&registry.host)
            && err.contains("docker-credential-pass"),
        "{err}"
    );
    assert!(
        !err.contains("refresh-s3cret-pw") && !err.contains(PASSWORD),
        "{err}"
    );
}
