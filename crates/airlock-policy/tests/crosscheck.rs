//! Second-engine cross-check: regorus (this crate) and rego-cpp (`policies/crosscheck.py`
//! through `regopy`) must reach the same deny and warn rule ids on every example input.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use airlock_policy::PolicySet;
use serde_json::{Value, json};
use time::macros::datetime;

fn policies() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

fn python() -> PathBuf {
    airlock_testkit::tools::python("regopy jsonschema")
}

/// file name -> {"deny": [...], "warn": [...]} from our engine.
fn ours() -> BTreeMap<String, Value> {
    let gate = PolicySet::load(&policies().join("gate")).unwrap();
    let admission = PolicySet::load(&policies().join("admission")).unwrap();
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(policies().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (set, package) = if name.starts_with("gate-") {
            (&gate, "airlock.gate")
        } else if name.starts_with("admission-") {
            (&admission, "airlock.admission")
        } else {
            continue;
        };
        let input: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let d = set
            .evaluate(package, &input, &[], datetime!(2026-11-23 10:00 UTC))
            .unwrap();
        let ids = |vs: &[airlock_policy::Violation]| {
            let mut ids: Vec<_> = vs.iter().map(|v| v.rule.clone()).collect();
            ids.sort();
            ids.dedup();
            ids
        };
        out.insert(
            name,
            json!({"deny": ids(&d.violations), "warn": ids(&d.warnings)}),
        );
    }
    out
}

/// The same from `crosscheck.py`.
fn theirs() -> BTreeMap<String, Value> {
    let output = Command::new(python())
        .arg(policies().join("crosscheck.py"))
        .arg(policies())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "crosscheck.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let mut v: Value = serde_json::from_str(line).unwrap();
            let file = v["file"].as_str().unwrap().to_string();
            v.as_object_mut().unwrap().remove("file");
            (file, v)
        })
        .collect()
}

#[test]
fn crosscheck_matches_regopy() {
    let ours = ours();
    assert!(ours.len() >= 4, "examples: {:?}", ours.keys());
    assert_eq!(ours, theirs());
    // The examples are meant to show both outcomes.
    assert_eq!(ours["gate-pass.json"], json!({"deny": [], "warn": []}));
    assert!(
        !ours["gate-denied.json"]["deny"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn gate_examples_follow_the_input_schema() {
    let script = r#"
import json, sys
try:
    import jsonschema
except ImportError:
    sys.exit("jsonschema is missing: pip install jsonschema into the cross-check venv")
root = sys.argv[1]
schema = json.load(open(root + "/input.schema.json"))
jsonschema.Draft202012Validator.check_schema(schema)
import os
for name in sorted(os.listdir(root + "/examples")):
    if name.startswith("gate-") and name.endswith(".json"):
        errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(root + "/examples/" + name)))]
        if errors:
            sys.exit(name + ": " + "; ".join(errors))
        print(name)
"#;
    let output = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(policies())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let checked = String::from_utf8_lossy(&output.stdout);
    assert!(checked.contains("gate-pass.json") && checked.contains("gate-denied.json"));
}
