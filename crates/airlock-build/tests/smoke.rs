//! The smoke test against a real Docker Engine: a busybox `httpd` image that answers its health path passes,
//! one that answers 404 or exits fails with the reason and the container's output, and no container is
//! left behind either way. Needs the Docker Engine that `scripts/setup` starts.

use std::path::Path;

use airlock_build::{
    BuildError, SmokeSpec, assemble, connect_docker, create_busybox_image, smoke_test_from_store,
};
use airlock_descriptor::AppDescriptor;
use airlock_oci::OciLayout;

/// A busybox image whose entrypoint is `sh -c SCRIPT`, with `/app/www/healthz` present.
async fn image(dir: &Path, app: &str, script: &str) -> OciLayout {
    let base = OciLayout::open_or_create(&dir.join("base")).unwrap();
    create_busybox_image(&base, "busybox", Path::new("/bin/busybox"))
        .await
        .unwrap();
    let artifacts = dir.join("artifacts");
    std::fs::create_dir_all(artifacts.join("app/www")).unwrap();
    std::fs::write(artifacts.join("app/www/healthz"), "ok\n").unwrap();
    let descriptor = AppDescriptor::from_toml_str(&format!(
        r#"
[app]
name = "{app}"
team = "t"
[run]
command = ["/bin/sh", "-c", {script:?}]
port = 8080
health = "/healthz"
"#
    ))
    .unwrap();
    let source = airlock_build::SourceMeta {
        repository: "test".into(),
        commit: "0".repeat(40),
        commit_time: 1_700_000_000,
    };
    let out = OciLayout::open_or_create(&dir.join("out")).unwrap();
    assemble(
        &artifacts,
        &descriptor,
        &source,
        &base,
        "busybox",
        &out,
        "v1",
    )
    .await
    .unwrap();
    out
}

fn containers_of(app: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Image}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("smoke/{app}")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn spec(health: &str, timeout: u64) -> SmokeSpec {
    SmokeSpec {
        port: 8080,
        health: Some(health.into()),
        start_timeout_secs: timeout,
    }
}

#[tokio::test]
async fn healthy_image_passes_and_its_log_is_kept() {
    let docker = connect_docker()
        .await
        .unwrap_or_else(|e| panic!("this test needs a running Docker Engine: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let app = "smoke-ok";
    let store = image(
        tmp.path(),
        app,
        "echo starting as $(id -u); exec /bin/busybox httpd -f -v -p 8080 -h /app/www",
    )
    .await;
    let report = smoke_test_from_store(&docker, &store, "v1", app, &spec("/healthz", 30))
        .await
        .unwrap();
    assert_eq!(report.status, 200);
    assert_eq!(report.checked, "GET /healthz on port 8080");
    assert!(report.log.contains("starting as 65532"), "{}", report.log);
    assert_eq!(containers_of(app), "", "the container must be removed");
}

#[tokio::test]
async fn wrong_health_path_fails_with_the_last_status() {
    let docker = connect_docker()
        .await
        .unwrap_or_else(|e| panic!("this test needs a running Docker Engine: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let app = "smoke-404";
    let store = image(
        tmp.path(),
        app,
        "echo serving; exec /bin/busybox httpd -f -p 8080 -h /app/www",
    )
    .await;
    let err = smoke_test_from_store(&docker, &store, "v1", app, &spec("/ready", 2))
        .await
        .unwrap_err();
    match &err {
        BuildError::SmokeFailed { reason, log_tail } => {
            assert!(reason.contains("GET /ready on port 8080"), "{reason}");
            assert!(reason.contains("start timeout of 2 s"), "{reason}");
            assert!(reason.contains("HTTP 404"), "{reason}");
            assert!(log_tail.contains("serving"), "{log_tail}");
        }
        other => panic!("expected SmokeFailed, got {other}"),
    }
    assert_eq!(containers_of(app), "");
}

#[tokio::test]
async fn app_that_exits_fails_with_exit_code_and_output() {
    let docker = connect_docker()
        .await
        .unwrap_or_else(|e| panic!("this test needs a running Docker Engine: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let app = "smoke-exit";
    let store = image(tmp.path(), app, "echo missing config file >&2; exit 7").await;
    let err = smoke_test_from_store(&docker, &store, "v1", app, &spec("/healthz", 30))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("exited with code 7"), "{text}");
    assert!(text.contains("missing config file"), "{text}");
    assert_eq!(containers_of(app), "");
}
