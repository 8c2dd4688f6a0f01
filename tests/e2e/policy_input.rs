//! The policy input the gate builds for a real run follows `policies/input.schema.json`, checked by Python's
//! `jsonschema` (not our code), and carries the facts the policies rely on.

use airlock_cli::api::RunState;
use airlock_e2e::{python, repo_root};
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_input_of_a_real_run_follows_the_documented_schema() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = airlock_e2e::run_demo(dir.path()).await;
    assert_eq!(outcome.run.state, RunState::Published);
    // The run says how old the vulnerability data behind its findings was.
    assert!(
        outcome.run.vulndb_age_seconds.is_some_and(|age| age >= 0),
        "{:?}",
        outcome.run.vulndb_age_seconds
    );
    let input_path = dir
        .path()
        .join("runs")
        .join(&outcome.run.id)
        .join("policy-input.json");
    let input: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&input_path).expect("the gate step keeps its input"))
            .expect("JSON");

    let script = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
errors = sorted(e.json_path + ": " + e.message
                for e in jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2]))))
print("\n".join(errors))
sys.exit(1 if errors else 0)
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(repo_root().join("policies/input.schema.json"))
        .arg(&input_path)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "the gate's policy input breaks the schema:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // What the rules read comes from the built image itself: the static base runs as 65532 and the app's port.
    assert_eq!(input["image"]["user"], "65532:65532", "{}", input["image"]);
    assert_eq!(input["image"]["ports"], serde_json::json!([8080]));
    assert_eq!(input["build"]["mode"], "standard");
    assert!(input["build"]["builder"] == "docker" || input["build"]["builder"] == "host");
    assert!(
        input["image"]["base"]["digest"]
            .as_str()
            .unwrap_or("")
            .starts_with("sha256:")
    );
    assert!(input["sbom"]["package_count"].is_u64(), "{}", input["sbom"]);
    assert!(input["manifests"]["staging"]["deployment.yaml"].is_string());
    assert!(input["dockerfile"].is_null());
}
