//! `airlock-gate policy test` as an operator runs it: the real binary, its output and its exit code.

use std::process::Command;

fn gate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_airlock-gate"))
}

#[test]
fn policy_test_passes_the_shipped_policies_and_prints_each_test() {
    let policies = airlock_gate::config::source_root().join("policies");
    let out = gate()
        .args(["policy", "test"])
        .arg(&policies)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("PASS data.airlock.gate_test.test_denies_fixable_high\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PASS data.airlock.admission_test."),
        "{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains(" passed, 0 failed in "), "{stdout}");
}

#[test]
fn policy_test_exits_1_and_names_the_failing_test() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("root.rego"),
        "package demo\n\nroot if input.user == \"0\"\n\ntest_uid_0_is_root if root with input as {\"user\": \"0\"}\n\ntest_wrongly_calls_65532_root if root with input as {\"user\": \"65532\"}\n",
    )
    .unwrap();
    let out = gate()
        .args(["policy", "test"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("PASS data.demo.test_uid_0_is_root\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL data.demo.test_wrongly_calls_65532_root\n"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 of 2 policy test(s) failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = gate()
        .args(["policy", "test", "--format", "json"])
        .arg(dir.path())
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        report["failed"][0],
        "data.demo.test_wrongly_calls_65532_root"
    );
}

#[test]
fn policy_test_of_a_policy_that_does_not_compile_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.rego"),
        "package demo\n\ntest_x if {\n",
    )
    .unwrap();
    let out = gate()
        .args(["policy", "test"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.rego"), "{stderr}");
}
