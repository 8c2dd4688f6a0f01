//! Runs the rendered manifests through independent checkers: `kubernetes-validate --strict`
//! against the Kubernetes 1.29 and 1.33 schemas, and checkov's Kubernetes checks.
//!
//! The checkers live in Python virtualenvs found through `AIRLOCK_PY_VENV` (default
//! `$HOME/.cache/airlock/venv`) and `AIRLOCK_CHECKOV_VENV` (default
//! `$HOME/.cache/airlock/checkov-venv`). When they are missing the tests fail and say how
//! to install them (CI installs them).

use std::path::Path;
use std::process::Command;

use airlock_testkit::tools::venv_tool as venv;

use airlock_descriptor::{AppDescriptor, Resources};
use airlock_manifest::{EnvironmentSettings, RenderMeta, RenderedEnvironment, render};

/// Checkov checks allowed to fail by design (none today); keep in sync with the crate docs.
const ACCEPTED_CHECKOV_FAILURES: &[&str] = &[];

fn full_app() -> AppDescriptor {
    AppDescriptor::from_toml_str(
        r#"
[app]
name = "hello"
team = "shop"

[run]
command = ["/app/hello"]
port = 8080
health = "/healthz"

[deploy]
replicas = 2
env = { RUST_LOG = "info", ENABLED = "on", COUNT = "10" }

[deploy.resources]
cpu = "250m"
memory = "128Mi"
memory_limit = "256Mi"

[deploy.autoscale]
min = 2
max = 5
cpu_percent = 70
"#,
    )
    .unwrap()
}

fn rendered() -> RenderedEnvironment {
    let env = EnvironmentSettings {
        name: "staging".into(),
        namespace: "shop-staging".into(),
        replicas: None,
        default_resources: Resources::default(),
        max_cpu_millis: Some(2000),
        max_memory_bytes: Some(2 << 30),
        ingress_namespace: "ingress-nginx".into(),
        registry_rewrite: None,
    };
    let meta = RenderMeta {
        image: format!("registry.example/shop/hello@sha256:{}", "1e".repeat(32)),
        commit: "4b825dc642cb6eb9a060e54bf8d69288fbee4904".into(),
        run_id: "run-1".into(),
        release_sequence: 3,
        team: "shop".into(),
    };
    render(&full_app(), &env, &meta).unwrap()
}

fn write_out(out: &RenderedEnvironment, dir: &Path) {
    for (name, text) in &out.files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

#[test]
fn kubernetes_validate_accepts_every_file_for_1_29_and_1_33() {
    let tool = venv(
        "AIRLOCK_PY_VENV",
        "venv",
        "kubernetes-validate",
        "kubernetes-validate",
    );
    let out = rendered();
    assert!(out.files.contains_key("horizontalpodautoscaler.yaml"));
    assert!(out.files.contains_key("poddisruptionbudget.yaml"));
    let dir = tempfile::tempdir().unwrap();
    write_out(&out, dir.path());
    for name in out.files.keys().filter(|n| *n != "kustomization.yaml") {
        for version in ["1.29", "1.33"] {
            let result = Command::new(&tool)
                .args(["--strict", "--quiet", "-k", version])
                .arg(dir.path().join(name))
                .output()
                .unwrap();
            assert!(
                result.status.success(),
                "{name} is not valid Kubernetes {version}:\n{}{}",
                String::from_utf8_lossy(&result.stdout),
                String::from_utf8_lossy(&result.stderr)
            );
        }
    }
}

#[test]
fn checkov_reports_no_failures_beyond_the_documented_ones() {
    let tool = venv("AIRLOCK_CHECKOV_VENV", "checkov-venv", "checkov", "checkov");
    let out = rendered();
    // checkov skips directories whose name starts with '.', as tempdir()'s do.
    let dir = tempfile::Builder::new()
        .prefix("airlock-manifest-")
        .tempdir()
        .unwrap();
    write_out(&out, dir.path());
    let result = Command::new(&tool)
        .arg("-d")
        .arg(dir.path())
        .args([
            "--framework",
            "kubernetes",
            "--compact",
            "--quiet",
            "-o",
            "json",
            "--skip-download",
        ])
        .env("BC_SKIP_MAPPING", "TRUE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "checkov output is not JSON ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&result.stderr)
        )
    });
    let passed = report["summary"]["passed"].as_u64().unwrap_or(0);
    assert!(
        passed > 50,
        "checkov ran too few checks ({passed}): {report}"
    );
    let failed: Vec<String> = report["results"]["failed_checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    format!(
                        "{} {} ({})",
                        c["check_id"].as_str().unwrap_or("?"),
                        c["check_name"].as_str().unwrap_or("?"),
                        c["resource"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let unexpected: Vec<&String> = failed
        .iter()
        .filter(|f| {
            !ACCEPTED_CHECKOV_FAILURES
                .iter()
                .any(|id| f.starts_with(&format!("{id} ")))
        })
        .collect();
    eprintln!("checkov: {passed} passed, failed: {failed:#?}");
    assert!(
        unexpected.is_empty(),
        "unexpected checkov failures: {unexpected:#?}"
    );
}
