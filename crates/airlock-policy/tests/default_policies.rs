//! The shipped policies (`policies/`) evaluated through the public API, with their
//! own Rego tests and the example inputs.

use std::path::PathBuf;

use airlock_policy::{PolicySet, Waiver, load_waivers, run_tests};
use serde_json::{Value, json};
use time::macros::{date, datetime};

fn policies() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

fn example(name: &str) -> Value {
    let text = std::fs::read_to_string(policies().join("examples").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn gate() -> PolicySet {
    PolicySet::load(&policies().join("gate")).unwrap()
}

fn waiver(id: &str, package: &str, expires: &str) -> Waiver {
    Waiver {
        id: id.into(),
        package: package.into(),
        team: None,
        app: None,
        expires: expires.into(),
        reason: "accepted".into(),
        approver: "security@example.com".into(),
    }
}

const NOW: time::OffsetDateTime = datetime!(2026-11-23 10:00 UTC);

#[test]
fn gate_rego_tests_all_pass() {
    let report = run_tests(&policies().join("gate")).unwrap();
    assert!(report.failed.is_empty(), "failed: {:?}", report.failed);
    assert!(report.passed.len() >= 25, "passed: {:?}", report.passed);
    assert!(
        report
            .passed
            .contains(&"data.airlock.gate_test.test_denies_fixable_high".to_string())
    );
}

#[test]
fn admission_rego_tests_all_pass() {
    let report = run_tests(&policies().join("admission")).unwrap();
    assert!(report.failed.is_empty(), "failed: {:?}", report.failed);
    assert!(report.passed.len() >= 6, "passed: {:?}", report.passed);
}

#[test]
fn load_skips_test_files_and_lists_rule_files_in_name_order() {
    let set = gate();
    let names: Vec<_> = set.sources().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "base_image.rego",
            "builder.rego",
            "dockerfile.rego",
            "health.rego",
            "user.rego",
            "vulnerabilities.rego"
        ]
    );
    let decision = set
        .evaluate("airlock.gate", &example("gate-pass.json"), &[], NOW)
        .unwrap();
    assert_eq!(decision.rules_evaluated, names);
}

#[test]
fn passing_example_is_allowed_with_digest_recorded() {
    let set = gate();
    let decision = set
        .evaluate("airlock.gate", &example("gate-pass.json"), &[], NOW)
        .unwrap();
    assert!(decision.allowed, "{decision:#?}");
    assert!(decision.violations.is_empty() && decision.warnings.is_empty());
    assert_eq!(decision.policy_digest, set.digest());
    assert!(set.digest().starts_with("sha256:") && set.digest().len() == 71);
}

#[test]
fn denied_example_names_rule_evidence_and_fix_for_the_vulnerability() {
    let decision = gate()
        .evaluate("airlock.gate", &example("gate-denied.json"), &[], NOW)
        .unwrap();
    assert!(!decision.allowed);
    let rules: Vec<_> = decision
        .violations
        .iter()
        .map(|v| v.rule.as_str())
        .collect();
    assert_eq!(
        rules,
        [
            "build.host-builder",
            "descriptor.missing-health",
            "dockerfile.remote-add",
            "image.runs-as-root",
            "image.unapproved-base",
            "vuln.fixable-high"
        ]
    );
    let vuln = decision.violations.last().unwrap();
    assert_eq!(
        vuln.message,
        "jinja2 2.7.1 has CVE-2014-1402, PYSEC-2014-8 (high severity), fixed in 2.7.2"
    );
    assert_eq!(vuln.fix, "upgrade jinja2 to 2.7.2 or later");
    assert_eq!(vuln.advisories, ["CVE-2014-1402", "PYSEC-2014-8"]);
    assert_eq!(vuln.package.as_deref(), Some("jinja2"));
    assert_eq!(vuln.evidence["installed"], "2.7.1");
    let warned: Vec<_> = decision.warnings.iter().map(|v| v.rule.as_str()).collect();
    assert_eq!(warned, ["vuln.fixable-medium", "vuln.unknown-severity"]);
    let root = &decision.violations[3];
    assert_eq!(root.package, None);
    assert!(root.advisories.is_empty());
    assert_eq!(root.evidence, json!({"user": "root"}));
}

/// gate-pass.json plus one fixable high finding in jinja2.
fn pass_with_jinja_high() -> Value {
    let mut input = example("gate-pass.json");
    let finding = example("gate-denied.json")["findings"][0].clone();
    input["findings"] = json!([finding]);
    input
}

#[test]
fn waiver_by_alias_allows_the_image_and_is_reported() {
    let waivers = [waiver("PYSEC-2014-8", "Jinja2", "2026-12-31")];
    let decision = gate()
        .evaluate("airlock.gate", &pass_with_jinja_high(), &waivers, NOW)
        .unwrap();
    assert!(decision.allowed, "{decision:#?}");
    assert_eq!(decision.waived.len(), 1);
    assert_eq!(decision.waived[0].waiver, waivers[0]);
    assert_eq!(decision.waived[0].violation.rule, "vuln.fixable-high");
    assert!(decision.expired_waivers.is_empty());
}

#[test]
fn waiver_applies_on_its_expiry_day() {
    let waivers = [waiver("CVE-2014-1402", "jinja2", "2026-11-23")];
    let decision = gate()
        .evaluate("airlock.gate", &pass_with_jinja_high(), &waivers, NOW)
        .unwrap();
    assert!(decision.allowed);
}

#[test]
fn expired_waiver_does_not_apply_and_is_said_in_the_decision() {
    let waivers = [waiver("CVE-2014-1402", "jinja2", "2026-11-22")];
    let decision = gate()
        .evaluate("airlock.gate", &pass_with_jinja_high(), &waivers, NOW)
        .unwrap();
    assert!(!decision.allowed);
    assert_eq!(decision.violations[0].rule, "vuln.fixable-high");
    assert!(decision.waived.is_empty());
    assert_eq!(decision.expired_waivers, waivers);
}

#[test]
fn waiver_for_another_team_or_package_does_not_apply() {
    let mut other_team = waiver("CVE-2014-1402", "jinja2", "2026-12-31");
    other_team.team = Some("payments".into());
    let other_package = waiver("CVE-2014-1402", "flask", "2026-12-31");
    let mut right_scope = waiver("CVE-2014-1402", "jinja2", "2026-12-31");
    right_scope.team = Some("demo".into());
    right_scope.app = Some("hello".into());
    let set = gate();
    let input = pass_with_jinja_high();
    let d = set
        .evaluate("airlock.gate", &input, &[other_team, other_package], NOW)
        .unwrap();
    assert!(!d.allowed);
    assert!(d.expired_waivers.is_empty());
    let d = set
        .evaluate("airlock.gate", &input, &[right_scope], NOW)
        .unwrap();
    assert!(d.allowed);
}

#[test]
fn waiver_never_silences_non_vulnerability_rules() {
    let mut input = example("gate-pass.json");
    input["image"]["user"] = json!("0");
    let waivers = [waiver("image.runs-as-root", "", "2026-12-31")];
    let d = gate()
        .evaluate("airlock.gate", &input, &waivers, NOW)
        .unwrap();
    assert!(!d.allowed);
    assert_eq!(d.violations[0].rule, "image.runs-as-root");
}

#[test]
fn admission_examples_decide_as_documented() {
    let set = PolicySet::load(&policies().join("admission")).unwrap();
    let pass = set
        .evaluate(
            "airlock.admission",
            &example("admission-pass.json"),
            &[],
            NOW,
        )
        .unwrap();
    assert!(pass.allowed, "{pass:#?}");
    let denied = set
        .evaluate(
            "airlock.admission",
            &example("admission-denied.json"),
            &[],
            NOW,
        )
        .unwrap();
    let rules: Vec<_> = denied.violations.iter().map(|v| v.rule.as_str()).collect();
    assert_eq!(
        rules,
        [
            "admission.environment-not-in-release",
            "admission.fixable-critical",
            "admission.gate-denied"
        ]
    );
    let missing = set
        .evaluate(
            "airlock.admission",
            &example("admission-no-gate-decision.json"),
            &[],
            NOW,
        )
        .unwrap();
    assert_eq!(
        missing.violations[0].rule,
        "admission.gate-decision-missing"
    );
}

#[test]
fn evaluating_a_package_the_set_lacks_is_an_error() {
    let err = gate()
        .evaluate("airlock.admission", &json!({}), &[], NOW)
        .unwrap_err()
        .to_string();
    assert!(err.contains("airlock.admission"), "{err}");
}

#[test]
fn shipped_waivers_file_has_no_active_waiver() {
    let waivers = load_waivers(&policies().join("waivers.toml"), date!(2026 - 11 - 23)).unwrap();
    assert!(waivers.is_empty());
}

#[test]
fn decision_round_trips_through_json() {
    let decision = gate()
        .evaluate(
            "airlock.gate",
            &pass_with_jinja_high(),
            &[waiver("CVE-2014-1402", "jinja2", "2026-01-01")],
            NOW,
        )
        .unwrap();
    let text = serde_json::to_string(&decision).unwrap();
    let back: airlock_policy::Decision = serde_json::from_str(&text).unwrap();
    assert_eq!(back, decision);
}

#[test]
fn policy_set_serializes_as_its_sources_and_reloads_with_same_digest() {
    let set = gate();
    let text = serde_json::to_string(&set).unwrap();
    let back: PolicySet = serde_json::from_str(&text).unwrap();
    assert_eq!(back.digest(), set.digest());
}

#[test]
fn evaluates_two_thousand_findings_into_one_entry_each() {
    let set = gate();
    let mut input = example("gate-pass.json");
    let severities = ["critical", "high", "medium", "low", "unknown"];
    let findings: Vec<Value> = (0..2000)
        .map(|i| {
            json!({"id": format!("CVE-2026-{i:05}"), "aliases": [format!("GHSA-{i}")],
                   "package": format!("pkg{}", i % 300), "ecosystem": "PyPI", "installed": "1.0.0",
                   "fixed": "1.0.1", "severity": severities[i % 5], "cvss_score": 5.0,
                   "summary": "s", "layer": "sha256:00"})
        })
        .collect();
    input["findings"] = Value::Array(findings);
    let d = set.evaluate("airlock.gate", &input, &[], NOW).unwrap();
    // critical and high deny, medium and unknown warn, low is not reported: 400 of each.
    assert_eq!(d.violations.len(), 800);
    assert_eq!(d.warnings.len(), 800);
    // How fast: bench/policy.sh (timing belongs in a benchmark, not a test).
}
