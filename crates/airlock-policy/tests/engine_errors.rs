//! Policy sets built from inline sources: compile errors, digests, malformed entries.

use airlock_policy::{PolicyError, PolicySet};
use serde_json::json;
use time::macros::datetime;

const NOW: time::OffsetDateTime = datetime!(2026-11-23 10:00 UTC);

fn src(name: &str, rego: &str) -> (String, String) {
    (name.to_string(), rego.to_string())
}

#[test]
fn compile_error_names_the_source() {
    let err = PolicySet::from_sources(vec![src(
        "broken.rego",
        "package p\n\ndeny contains x if {\n",
    )])
    .unwrap_err();
    assert!(matches!(err, PolicyError::Compile { .. }), "{err:?}");
    assert!(err.to_string().contains("broken.rego"), "{err}");
}

#[test]
fn source_without_package_is_rejected_by_name() {
    let err = PolicySet::from_sources(vec![src("nopkg.rego", "deny := 1\n")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("nopkg.rego"), "{err}");
}

#[test]
fn duplicate_names_are_rejected() {
    let err = PolicySet::from_sources(vec![
        src("a.rego", "package p\n"),
        src("a.rego", "package q\n"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("a.rego"), "{err}");
}

#[test]
fn digest_is_independent_of_order_and_changes_with_content() {
    let a = src("a.rego", "package p\n\nwarn contains 1 if false\n");
    let b = src("b.rego", "package p\n");
    let one = PolicySet::from_sources(vec![a.clone(), b.clone()]).unwrap();
    let two = PolicySet::from_sources(vec![b.clone(), a]).unwrap();
    assert_eq!(one.digest(), two.digest());
    let changed = PolicySet::from_sources(vec![src("a.rego", "package p\n# edited\n"), b]).unwrap();
    assert_ne!(one.digest(), changed.digest());
}

#[test]
fn package_without_warn_rule_has_no_warnings() {
    let set = PolicySet::from_sources(vec![src(
        "p.rego",
        "package p\n\ndeny contains {\"rule\": \"r\", \"message\": \"m\", \"fix\": \"f\"} if input.bad\n",
    )])
    .unwrap();
    let d = set.evaluate("p", &json!({"bad": true}), &[], NOW).unwrap();
    assert!(!d.allowed);
    assert!(d.warnings.is_empty());
    assert_eq!(d.violations[0].evidence, json!({}));
    let d = set.evaluate("p", &json!({}), &[], NOW).unwrap();
    assert!(d.allowed);
}

#[test]
fn entry_not_following_the_convention_is_an_error_naming_the_rule() {
    let set = PolicySet::from_sources(vec![src(
        "p.rego",
        "package p\n\ndeny contains \"just a string\" if true\n",
    )])
    .unwrap();
    let err = set
        .evaluate("p", &json!({}), &[], NOW)
        .unwrap_err()
        .to_string();
    assert!(err.contains("data.p.deny entry #0"), "{err}");
}

#[test]
fn package_name_that_is_not_an_identifier_is_refused() {
    let set = PolicySet::from_sources(vec![src("p.rego", "package p\n")]).unwrap();
    let err = set
        .evaluate("p.deny; true", &json!({}), &[], NOW)
        .unwrap_err();
    assert!(matches!(err, PolicyError::UnknownPackage(_)), "{err:?}");
}

#[test]
fn malformed_waiver_expiry_is_an_error_naming_the_waiver() {
    let set = PolicySet::from_sources(vec![src("p.rego", "package p\n")]).unwrap();
    let w = airlock_policy::Waiver {
        id: "CVE-1".into(),
        package: "x".into(),
        team: None,
        app: None,
        expires: "soon".into(),
        reason: "r".into(),
        approver: "a".into(),
    };
    let err = set
        .evaluate("p", &json!({}), &[w], NOW)
        .unwrap_err()
        .to_string();
    assert!(err.contains("CVE-1") && err.contains("soon"), "{err}");
}

#[test]
fn load_of_empty_directory_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = PolicySet::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no policy found"), "{err}");
}

#[test]
fn policy_set_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PolicySet>();
}

#[test]
fn unknown_function_is_reported_at_load_naming_the_source() {
    let err = PolicySet::from_sources(vec![src(
        "calls.rego",
        "package p\n\ndeny contains x if {\n\tx := no_such_function(input.a)\n}\n",
    )])
    .unwrap_err()
    .to_string();
    assert!(err.contains("calls.rego"), "{err}");
    assert!(err.contains("no_such_function"), "{err}");
}

#[test]
fn evaluation_running_past_the_time_limit_fails() {
    let set = PolicySet::from_sources(vec![src(
        "slow.rego",
        "package p\n\ndeny contains {\"rule\": \"r\", \"message\": \"m\", \"fix\": \"f\"} if {\n\tsome i in numbers.range(1, 3000)\n\tsome j in numbers.range(1, 3000)\n\ti * j == -1\n}\n",
    )])
    .unwrap()
    .with_time_limit(std::time::Duration::from_millis(50));
    let start = std::time::Instant::now();
    let err = set.evaluate("p", &json!({}), &[], NOW).unwrap_err();
    assert!(matches!(err, PolicyError::Eval { .. }), "{err:?}");
    assert!(err.to_string().contains("data.p.deny"), "{err}");
    assert!(start.elapsed().as_secs() < 5, "took {:?}", start.elapsed());
}
