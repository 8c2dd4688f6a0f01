//! Running the `test_` rules of Rego policies, as `opa test` does.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::PolicyError;
use crate::set::new_engine;
use crate::source::{self, MAX_POLICY_FILES, MAX_TEST_DEPTH, package_of};

/// Outcome of [`run_tests`]: fully qualified rule names (`data.airlock.gate.test_x`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReport {
    /// Tests whose rule evaluated to `true`.
    pub passed: Vec<String>,
    /// Tests that were undefined or not `true`; an engine error is appended as
    /// `data.pkg.test_x: <error>`.
    pub failed: Vec<String>,
}

impl TestReport {
    /// True when there were tests and none failed.
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && !self.passed.is_empty()
    }
}

/// Loads every `*.rego` file (tests included) in `dir` and its subdirectories (up to
/// [`MAX_TEST_DEPTH`] levels), then evaluates each rule whose name starts with `test_`
/// (declared at the start of a line). A test passes when its rule is `true`.
pub fn run_tests(dir: &Path) -> Result<TestReport, PolicyError> {
    let mut files = Vec::new();
    collect(dir, 0, &mut files)?;
    let mut engine = new_engine();
    let mut tests = Vec::new();
    for path in &files {
        let rego = source::read_policy(path)?;
        let name = path.strip_prefix(dir).unwrap_or(path).display().to_string();
        let package =
            package_of(&rego).ok_or_else(|| PolicyError::MissingPackage { name: name.clone() })?;
        for rule in test_rules(&rego) {
            let full = format!("data.{package}.{rule}");
            if !tests.contains(&full) {
                tests.push(full);
            }
        }
        engine
            .add_policy(name.clone(), rego)
            .map_err(|e| PolicyError::Compile {
                name,
                message: e.to_string(),
            })?;
    }
    let mut report = TestReport::default();
    for test in tests {
        let mut engine = engine.clone();
        match engine.eval_query(test.clone(), false) {
            Ok(results) => {
                let passed = results
                    .result
                    .first()
                    .and_then(|r| r.expressions.first())
                    .is_some_and(|e| e.value == regorus::Value::from(true));
                if passed {
                    report.passed.push(test);
                } else {
                    report.failed.push(test);
                }
            }
            Err(e) => report.failed.push(format!("{test}: {e}")),
        }
    }
    Ok(report)
}

fn collect(dir: &Path, depth: usize, files: &mut Vec<PathBuf>) -> Result<(), PolicyError> {
    if depth > MAX_TEST_DEPTH {
        return Err(PolicyError::TooLarge {
            what: "directory depth",
            limit: MAX_TEST_DEPTH,
            subject: dir.display().to_string(),
        });
    }
    files.extend(source::rego_files(dir)?);
    if files.len() > MAX_POLICY_FILES {
        return Err(PolicyError::TooLarge {
            what: "number of policy files",
            limit: MAX_POLICY_FILES,
            subject: dir.display().to_string(),
        });
    }
    let io = |source| PolicyError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut subdirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        // file_type() does not follow symlinks: no loops through linked directories.
        if entry.file_type().map_err(io)?.is_dir() {
            subdirs.push(entry.path());
        }
    }
    subdirs.sort();
    for sub in subdirs {
        collect(&sub, depth + 1, files)?;
    }
    Ok(())
}

/// Names of rules starting with `test_` declared at the start of a line.
fn test_rules(rego: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in rego.lines() {
        if !line.starts_with("test_") {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_passing_and_failing_tests_by_rule_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.rego"),
            "package demo\n\nallow if input.ok\n",
        )
        .unwrap();
        let sub = dir.path().join("more");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(
            sub.join("p_test.rego"),
            "package demo_test\n\nimport data.demo\n\ntest_allows_ok if demo.allow with input as {\"ok\": true}\n\ntest_wrongly_expects_allow if demo.allow with input as {\"ok\": false}\n",
        )
        .unwrap();
        let report = run_tests(dir.path()).unwrap();
        assert_eq!(report.passed, ["data.demo_test.test_allows_ok"]);
        assert_eq!(report.failed, ["data.demo_test.test_wrongly_expects_allow"]);
        assert!(!report.ok());
    }

    #[test]
    fn compile_error_names_the_test_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad_test.rego"),
            "package x\n\ntest_a if {\n",
        )
        .unwrap();
        let err = run_tests(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bad_test.rego"), "{err}");
    }
}
