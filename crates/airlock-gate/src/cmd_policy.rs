//! `airlock-gate policy test [DIR]`: runs the Rego unit tests (`test_` rules) shipped with the
//! policies, as `opa test` does, so a platform engineer checks a policy change before the gate
//! loads it. Prints one line per test and a summary; exits 1 when a test fails or nothing ran.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};

/// `airlock-gate policy ...`.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Run the Rego unit tests (`test_` rules) of a policy directory and its subdirectories.
    Test {
        /// The policy directory (default: `./policies` when it exists, else the policies shipped with this
        /// build).
        dir: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// How `policy test` prints its report.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// One `PASS`/`FAIL` line per test and a summary.
    Text,
    /// The report as JSON: `{"passed": [...], "failed": [...]}`.
    Json,
}

/// Runs one `policy` subcommand.
pub fn run(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Test { dir, format } => test(&dir.unwrap_or_else(default_dir), format),
    }
}

fn default_dir() -> PathBuf {
    let local = PathBuf::from("policies");
    if local.is_dir() {
        local
    } else {
        airlock_gate::config::source_root().join("policies")
    }
}

fn test(dir: &Path, format: Format) -> anyhow::Result<()> {
    let report = airlock_policy::run_tests(dir)
        .with_context(|| format!("running the policy tests in {}", dir.display()))?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", render(&report, dir)),
    }
    if !report.failed.is_empty() {
        bail!(
            "{} of {} policy test(s) failed",
            report.failed.len(),
            report.failed.len() + report.passed.len()
        );
    }
    if report.passed.is_empty() {
        bail!(
            "no test found in {}: tests are rules named test_* in *.rego files",
            dir.display()
        );
    }
    Ok(())
}

/// The text report: a line per test (passes first, in load order), then the totals.
fn render(report: &airlock_policy::TestReport, dir: &Path) -> String {
    let mut out = String::new();
    for name in &report.passed {
        out.push_str(&format!("PASS {name}\n"));
    }
    for name in &report.failed {
        out.push_str(&format!("FAIL {name}\n"));
    }
    out.push_str(&format!(
        "{} passed, {} failed in {}\n",
        report.passed.len(),
        report.failed.len(),
        dir.display()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_policies_pass_their_tests() {
        let dir = airlock_gate::config::source_root().join("policies");
        test(&dir, Format::Text).expect("every shipped policy test passes");
    }

    #[test]
    fn failing_test_is_reported_by_name_and_fails_the_command() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.rego"),
            "package demo\n\nallow if input.ok\n\ntest_allows_ok if allow with input as {\"ok\": true}\n\ntest_wrong if allow with input as {\"ok\": false}\n",
        )
        .unwrap();
        let report = airlock_policy::run_tests(dir.path()).unwrap();
        let text = render(&report, dir.path());
        assert!(text.contains("PASS data.demo.test_allows_ok\n"), "{text}");
        assert!(text.contains("FAIL data.demo.test_wrong\n"), "{text}");
        assert!(text.contains("1 passed, 1 failed in "), "{text}");
        let err = test(dir.path(), Format::Text).unwrap_err().to_string();
        assert_eq!(err, "1 of 2 policy test(s) failed");
    }

    #[test]
    fn directory_without_tests_fails_the_command() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.rego"), "package demo\n\nallow := true\n").unwrap();
        let err = test(dir.path(), Format::Text).unwrap_err().to_string();
        assert!(err.starts_with("no test found in "), "{err}");
    }
}
