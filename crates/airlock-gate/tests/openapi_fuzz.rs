//! Schemathesis (an independent OpenAPI fuzzer, installed into the checkers' venv by scripts/setup) against a
//! real gate on loopback: it reads `/api/v1/openapi.json`, generates requests for every operation (valid and
//! invalid ones) and checks that the gate never answers 5xx and that every answer's status, content type and
//! body are the ones the document declares. A route the document misdescribes fails here.

use airlock_gate::auth::{generate_token, hash_token};
use airlock_gate::config::{Role, TeamConfig};
use std::path::PathBuf;

fn schemathesis() -> PathBuf {
    let venv = std::env::var("AIRLOCK_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/airlock/venv")
        });
    let bin = venv.join("bin/schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/setup to install schemathesis into the checkers' venv",
        bin.display()
    );
    bin
}

/// Runs schemathesis with `token` against every operation; returns its exit status and output.
async fn fuzz(url: &str, token: &str, report: &std::path::Path) -> (bool, String) {
    let out = tokio::process::Command::new(schemathesis())
        .arg("run")
        .arg(format!("{url}/api/v1/openapi.json"))
        .args(["--url", url])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        // Fixed seed and example count: the same requests every run, so a failure reproduces.
        .args(["--max-examples", "40", "--seed", "20261123"])
        .arg("--continue-on-failure")
        // The event stream of a queued run never ends (no worker runs here): a bounded wait per request.
        .args(["--request-timeout", "5"])
        .args(["--report", "junit", "--report-dir"])
        .arg(report)
        // Its example database and crash cache go to the working directory: keep them out of the checkout.
        .current_dir(report)
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .await
        .expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let init = airlock_gate::init::init_data_dir(dir.path(), None)
        .await
        .expect("init data dir");
    let mut config = init.config;
    let admin = generate_token();
    config.teams.push(TeamConfig {
        name: "platform".into(),
        role: Role::Admin,
        token_hashes: vec![hash_token(&admin)],
        tokens: vec![],
    });
    config.webhooks.github_secret = Some("fuzz-github-secret".into());
    config.webhooks.gitlab_token = Some("fuzz-gitlab-token".into());
    config.webhooks.gitea_secret = Some("fuzz-gitea-secret".into());
    let gate = airlock_gate::server::start(config)
        .await
        .expect("gate starts");
    // The worker would start building whatever the fuzzer submits; intake and the API are what is fuzzed.
    gate.worker.abort();
    let url = format!("http://{}", gate.addr);

    // As an admin (every operation reachable) and as a developer (403s, other teams' runs hidden).
    for (who, token) in [
        ("admin", admin.as_str()),
        ("developer", init.token.as_str()),
    ] {
        let report = dir.path().join(format!("report-{who}"));
        std::fs::create_dir_all(&report).expect("report dir");
        let (ok, output) = fuzz(&url, token, &report).await;
        assert!(ok, "schemathesis found problems as {who}:\n{output}");
        // It really exercised the API: every operation of the document was tested, with many requests.
        // (Schemathesis leaves out the operation serving the document it was loaded from.)
        let operations: usize = airlock_gate::openapi::document()["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .values()
                    .filter_map(|p| p.as_object())
                    .map(|p| p.len())
                    .sum()
            })
            .unwrap_or(0)
            - 1;
        assert!(
            output
                .lines()
                .any(|l| l.trim() == format!("Tested: {operations}")),
            "schemathesis did not test all {operations} operations as {who}:\n{output}"
        );
        let generated = output
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .find(|w| w[1] == "generated,")
            .and_then(|w| w[0].parse::<u64>().ok())
            .unwrap_or(0);
        assert!(
            generated >= 100,
            "only {generated} requests as {who}:\n{output}"
        );
    }
    gate.server.abort();
}
