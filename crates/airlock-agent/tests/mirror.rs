//! Mirroring with two real registries (Debian's `docker-registry` on loopback): the boundary the gate
//! publishes to and the outer loop's own registry. The agent copies the verified image with its signature
//! and attestations into the mirror, verifies them there, and writes manifests that pull from the mirror
//! by digest; skopeo (an OCI client sharing no code with airlock) reads the mirrored image. When the mirror
//! is down nothing is applied, and the agent recovers once it is back. A mirror that needs a password
//! (htpasswd) is written with the credentials of the agent's environment or of a Docker client config,
//! and never without them; the agent runs as a subprocess there, so each run has its own environment.

mod common;

use airlock_agent::config::{MIRROR_PASSWORD_VAR, MIRROR_USERNAME_VAR, PASSWORD_VAR, USERNAME_VAR};
use airlock_agent::{Agent, Metrics, TargetSpec};
use airlock_oci::{Digest, RegistryAuth, RegistryStore, Store, attachment_tags};
use airlock_sign::SigningKey;
use base64::Engine as _;
use common::{Registry, Release, key_file, publish_with_image, registry_config};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

const MIRROR_USER: &str = "outer-mirror";
const MIRROR_PASSWORD: &str = "m1rror-Pa55-0f-the-outer-loop";

/// stdout and stderr of a run, as one text.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The password, plain or inside a basic `Authorization` value, appears nowhere in `out`.
fn assert_no_password(out: &Output) {
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{MIRROR_USER}:{MIRROR_PASSWORD}"));
    let all = text(out);
    assert!(
        !all.contains(MIRROR_PASSWORD) && !all.contains(&basic),
        "the mirror password leaked: {all}"
    );
}

/// Tags of `repository` in the password-protected `registry` (empty when the repository does not exist).
async fn tags_behind_password(registry: &Registry, repository: &str) -> Vec<String> {
    RegistryStore::new(
        &registry.host(),
        repository,
        RegistryAuth::Basic(MIRROR_USER.into(), MIRROR_PASSWORD.into()),
        true,
    )
    .unwrap()
    .list_tags()
    .await
    .unwrap_or_default()
}

/// `airlock-agent` with none of the credential variables of the test process, no Docker client config
/// (`DOCKER_CONFIG` at an empty directory unless `docker_config` names one) and debug logging, so
/// whatever it might log about credentials is in its output.
fn agent(docker_config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airlock-agent"));
    for var in [
        MIRROR_USERNAME_VAR,
        MIRROR_PASSWORD_VAR,
        USERNAME_VAR,
        PASSWORD_VAR,
    ] {
        c.env_remove(var);
    }
    c.env("DOCKER_CONFIG", docker_config)
        .env("RUST_LOG", "debug");
    c
}

/// Runs `c` to the end; a run that has not ended after a minute is killed and fails the test (a guard
/// against a hang, not a timing assertion).
fn finish(mut c: Command) -> Output {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("airlock-agent did not stop: {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn mirror_needing_a_password_takes_it_from_the_environment_or_the_docker_config() {
    let dir = tempfile::tempdir().unwrap();
    let boundary = Registry::start();
    let outer = Registry::start_with_password(MIRROR_USER, MIRROR_PASSWORD);
    let key = SigningKey::generate();
    let image = publish(&boundary.store(&format!("boundary/{APP}")), &key, 1).await;
    let gate_pub = key_file(dir.path(), &key, "gate.pub");
    let no_docker_config = dir.path().join("no-docker-config");
    std::fs::create_dir(&no_docker_config).unwrap();

    // One `sync --once` into a fresh directory target, mirroring to OUTER/<prefix>.
    let sync = |docker_config: &Path, prefix: &str, env: &[(&str, &str)]| -> (Output, PathBuf) {
        let deploy = dir.path().join(format!("deploy-{prefix}"));
        let mut c = agent(docker_config);
        c.args(["sync", "--once", "--env", "staging", "--app", APP])
            .arg("--insecure-registry")
            .arg("--source")
            .arg(format!("docker://{}/boundary", boundary.host()))
            .arg("--trust-key")
            .arg(&gate_pub)
            .arg("--target")
            .arg(format!("directory:{}", deploy.display()))
            .arg("--mirror")
            .arg(format!("{}/{prefix}", outer.host()));
        for (k, v) in env {
            c.env(k, v);
        }
        let out = finish(c);
        assert_no_password(&out);
        (out, deploy.join("staging/hello/deployment.yaml"))
    };
    let mirrored_as = |prefix: &str| format!("{}/{prefix}/{APP}@{image}", outer.host());
    let assert_mirrored = async |out: &Output, deployment: &Path, prefix: &str| {
        assert_eq!(out.status.code(), Some(0), "{}", text(out));
        let applied = std::fs::read_to_string(deployment).unwrap();
        assert!(
            applied.contains(&format!("image: {}\n", mirrored_as(prefix))),
            "{applied}"
        );
        // skopeo, with the password, reads the same manifest from the mirror.
        let creds = format!("{MIRROR_USER}:{MIRROR_PASSWORD}");
        let raw = airlock_testkit::tools::skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &creds,
            &format!("docker://{}", mirrored_as(prefix)),
        ]);
        assert_eq!(Digest::of(raw.as_bytes()), image);
        let tags = tags_behind_password(&outer, &format!("{prefix}/{APP}")).await;
        for tag in attachment_tags(&image) {
            assert!(tags.contains(&tag), "{tag} missing from {tags:?}");
        }
    };

    // No credentials anywhere: the mirror refuses, the app fails with the mirror named, nothing is
    // applied and nothing reaches the mirror.
    let (out, deployment) = sync(&no_docker_config, "anonymous", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "to {}/anonymous/{APP} (credentials: anonymous)",
            outer.host()
        )) && stdout.to_lowercase().contains("authentication"),
        "{}",
        text(&out)
    );
    assert!(
        !deployment.exists(),
        "applied without a mirror: {deployment:?}"
    );
    assert!(
        tags_behind_password(&outer, &format!("anonymous/{APP}"))
            .await
            .is_empty()
    );

    // From the environment.
    let (out, deployment) = sync(
        &no_docker_config,
        "from-env",
        &[
            (MIRROR_USERNAME_VAR, MIRROR_USER),
            (MIRROR_PASSWORD_VAR, MIRROR_PASSWORD),
        ],
    );
    assert_mirrored(&out, &deployment, "from-env").await;

    // From a Docker client config, as `docker login` writes it (`auth` is base64 of USER:PASSWORD).
    let docker_config = dir.path().join("docker");
    std::fs::create_dir(&docker_config).unwrap();
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{MIRROR_USER}:{MIRROR_PASSWORD}"));
    std::fs::write(
        docker_config.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, outer.host()),
    )
    .unwrap();
    let (out, deployment) = sync(&docker_config, "from-config", &[]);
    assert_mirrored(&out, &deployment, "from-config").await;

    // A malformed Docker config stops the agent before it syncs (exit 2, naming the file), rather than
    // mirroring anonymously: for `sync` and for `run`.
    let config_file = docker_config.join("config.json");
    std::fs::write(
        &config_file,
        format!(r#"{{"auths":{{"{}":"{MIRROR_PASSWORD}"}}}}"#, outer.host()),
    )
    .unwrap();
    let (out, deployment) = sync(&docker_config, "malformed", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&config_file.display().to_string()) && stderr.contains("mirror"),
        "{stderr}"
    );
    assert!(!deployment.exists());
    assert!(
        tags_behind_password(&outer, &format!("malformed/{APP}"))
            .await
            .is_empty()
    );

    let run_config = dir.path().join("agent.toml");
    std::fs::write(
        &run_config,
        format!(
            "source = \"docker://{}/boundary\"\napps = [\"{APP}\"]\ninsecure_registry = true\n\
             trust_keys = [\"gate.pub\"]\nmirror = \"{}/malformed\"\n\
             [[environment]]\nname = \"staging\"\ntarget = \"directory:deploy-run\"\n",
            boundary.host(),
            outer.host()
        ),
    )
    .unwrap();
    let mut run = agent(&docker_config);
    run.arg("run").arg("--config").arg(&run_config);
    let out = finish(run);
    assert_no_password(&out);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&config_file.display().to_string()),
        "{}",
        text(&out)
    );
    assert!(!dir.path().join("deploy-run").exists());
}
