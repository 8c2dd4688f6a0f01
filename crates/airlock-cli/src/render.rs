//! Turning runs into text a developer reads: the status block, the runs
//! table, the final verdict of `airlock submit`, and `airlock explain`.
//!
//! Everything here is a pure function from API types to a `String`, so the
//! wording is tested without a gate. The policy decision and the findings
//! arrive as JSON; they are read leniently (known field names and their usual
//! aliases), so a new field on the gate never breaks the CLI.

use crate::api::{RunState, RunView, StepState, StepView};
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write;

/// One rule outcome in a decision (a violation, a warning or a waived violation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RuleOutcome {
    /// Rule identifier, e.g. `image.non_root`.
    #[serde(alias = "id", alias = "rule_id")]
    pub rule: String,
    /// What is wrong.
    #[serde(alias = "msg", alias = "reason_text")]
    pub message: String,
    /// What to do about it.
    #[serde(alias = "remediation", alias = "hint")]
    pub fix: Option<String>,
    /// The evidence the rule saw (free-form).
    pub evidence: Option<Value>,
    /// Why it was waived (waivers only).
    #[serde(alias = "waiver_reason", alias = "justification")]
    pub reason: Option<String>,
    /// When the waiver expires (waivers only).
    #[serde(alias = "expires_at", alias = "until")]
    pub expires: Option<String>,
    /// Who approved the waiver (waivers only).
    #[serde(alias = "approved_by", alias = "owner")]
    pub by: Option<String>,
}

/// The parts of a policy decision the CLI shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionSummary {
    /// Whether the policy allowed the release.
    pub allowed: Option<bool>,
    /// Rules that said no.
    pub violations: Vec<RuleOutcome>,
    /// Rules that warned.
    pub warnings: Vec<RuleOutcome>,
    /// Violations a waiver let through.
    pub waived: Vec<RuleOutcome>,
    /// Waivers that matched but had expired (their violation still counts).
    pub expired_waivers: Vec<RuleOutcome>,
}

impl DecisionSummary {
    /// Reads a decision as the gate records it; unknown shapes give an empty summary.
    pub fn from_json(decision: &Value) -> DecisionSummary {
        let list = |keys: &[&str]| -> Vec<RuleOutcome> {
            keys.iter()
                .find_map(|k| decision.get(*k))
                .and_then(|v| v.as_array())
                .map(|items| items.iter().map(outcome_from_json).collect())
                .unwrap_or_default()
        };
        DecisionSummary {
            allowed: decision.get("allowed").and_then(Value::as_bool),
            violations: list(&["violations", "deny"]),
            warnings: list(&["warnings", "warn"]),
            waived: list(&["waived", "waivers"]),
            expired_waivers: list(&["expired_waivers"]),
        }
    }
}

fn outcome_from_json(item: &Value) -> RuleOutcome {
    // airlock-policy's applied waiver: {"waiver": {...}, "violation": {...}}.
    if let (Some(violation), Some(waiver)) = (item.get("violation"), item.get("waiver")) {
        let mut outcome = outcome_from_json(violation);
        let text = |k: &str| waiver.get(k).and_then(Value::as_str).map(str::to_string);
        outcome.reason = text("reason");
        outcome.expires = text("expires");
        outcome.by = text("approver");
        return outcome;
    }
    // A bare waiver (expired_waivers): {"id", "package", "expires", "reason", "approver"}.
    if item.get("approver").is_some() && item.get("rule").is_none() {
        let text = |k: &str| {
            item.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        return RuleOutcome {
            rule: text("id"),
            message: format!("waiver of {} in {}", text("id"), text("package")),
            reason: Some(text("reason")),
            expires: Some(text("expires")),
            by: Some(text("approver")),
            ..RuleOutcome::default()
        };
    }
    match item {
        Value::String(s) => RuleOutcome {
            message: s.clone(),
            ..RuleOutcome::default()
        },
        other => serde_json::from_value(other.clone()).unwrap_or_else(|_| RuleOutcome {
            message: other.to_string(),
            ..RuleOutcome::default()
        }),
    }
}

/// A vulnerability finding as the CLI shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingSummary {
    /// Advisory id (OSV, GHSA, CVE, RUSTSEC…).
    pub advisory: String,
    /// Package name.
    pub package: String,
    /// Installed version.
    pub installed: String,
    /// First fixed version, if any.
    pub fixed: Option<String>,
    /// Severity, if known.
    pub severity: Option<String>,
}

impl FindingSummary {
    /// Reads one finding leniently (top-level or nested `package`/`advisory` objects).
    pub fn from_json(item: &Value) -> FindingSummary {
        let text = |v: Option<&Value>| -> Option<String> {
            match v? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let pick = |paths: &[&[&str]]| -> Option<String> {
            paths.iter().find_map(|path| {
                let mut cur = item;
                for key in *path {
                    cur = cur.get(*key)?;
                }
                text(Some(cur))
            })
        };
        FindingSummary {
            advisory: pick(&[
                &["advisory", "id"],
                &["advisory"],
                &["id"],
                &["vulnerability"],
            ])
            .unwrap_or_else(|| "unknown advisory".into()),
            package: pick(&[&["package", "name"], &["package"], &["name"]])
                .unwrap_or_else(|| "unknown package".into()),
            installed: pick(&[
                &["installed"],
                &["installed_version"],
                &["package", "version"],
                &["version"],
            ])
            .unwrap_or_else(|| "?".into()),
            fixed: pick(&[
                &["fixed"],
                &["fixed_version"],
                &["fixed_in"],
                &["advisory", "fixed"],
            ]),
            severity: pick(&[&["severity"], &["advisory", "severity"]]),
        }
    }
}

/// `1.2s`, `850ms`, `2m05s`.
pub fn format_duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// One line for a step: mark, name, duration and detail.
pub fn step_line(step: &StepView) -> String {
    let mark = match step.state {
        StepState::Running => "…",
        StepState::Succeeded => "✓",
        StepState::Failed => "✗",
        StepState::Skipped => "-",
    };
    let mut line = format!("{mark} {:<10}", step.name);
    match (step.state, step.duration_ms) {
        (StepState::Skipped, _) => line.push_str(" skipped"),
        (StepState::Running, _) => line.push_str(" running"),
        (_, Some(ms)) => {
            let _ = write!(line, " {:>7}", format_duration_ms(ms));
        }
        (_, None) => {}
    }
    if let Some(detail) = step.detail.as_deref().filter(|d| !d.is_empty()) {
        let _ = write!(line, "  {detail}");
    }
    line.trim_end().to_string()
}

/// The status block of `airlock status RUN`.
pub fn status(run: &RunView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run      {}", run.id);
    let _ = writeln!(out, "app      {} (team {})", run.app, run.team);
    let _ = writeln!(out, "state    {}", run.state);
    let _ = writeln!(
        out,
        "source   {} @ {} ({})",
        run.repository,
        short(&run.commit),
        run.branch
    );
    let _ = writeln!(out, "author   {}", run.author);
    let _ = writeln!(out, "created  {}", run.created_at);
    let _ = writeln!(out, "updated  {}", run.updated_at);
    if let Some(builder) = &run.builder {
        let _ = writeln!(out, "builder  {builder}");
    }
    if !run.steps.is_empty() {
        out.push_str("steps\n");
        for step in &run.steps {
            let _ = writeln!(out, "  {}", step_line(step));
        }
    }
    out.push_str(&verdict(run));
    out
}

/// A table of runs for `airlock runs`.
pub fn runs_table(runs: &[RunView]) -> String {
    if runs.is_empty() {
        return "no runs\n".into();
    }
    let id_width = runs.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    let app_width = runs.iter().map(|r| r.app.len()).max().unwrap_or(3).max(3);
    let mut out = format!(
        "{:<id_width$}  {:<app_width$}  {:<10}  {:<9}  {:<12}  CREATED\n",
        "ID", "APP", "STATE", "COMMIT", "BRANCH"
    );
    for run in runs {
        let _ = writeln!(
            out,
            "{:<id_width$}  {:<app_width$}  {:<10}  {:<9}  {:<12}  {}",
            run.id,
            run.app,
            run.state.as_str(),
            short(&run.commit),
            run.branch,
            run.created_at
        );
    }
    out
}

fn short(commit: &str) -> &str {
    commit.get(..9).unwrap_or(commit)
}

/// The end of `airlock submit`: what was published, or why not.
pub fn verdict(run: &RunView) -> String {
    let mut out = String::new();
    match run.state {
        RunState::Published => {
            let _ = writeln!(out, "published {} (run {})", run.app, run.id);
            if let Some(image) = &run.image {
                let _ = writeln!(out, "  image    {}", image.reference);
                let _ = writeln!(out, "  digest   {}", image.digest);
            }
            if let Some(release) = &run.release {
                let _ = writeln!(
                    out,
                    "  release  #{} {} ({})",
                    release.sequence, release.reference, release.digest
                );
            }
        }
        RunState::Rejected => {
            let _ = writeln!(out, "rejected {} (run {})", run.app, run.id);
            let decision = run
                .decision
                .as_ref()
                .map(DecisionSummary::from_json)
                .unwrap_or_default();
            if decision.violations.is_empty()
                && let Some(error) = &run.error
            {
                let _ = writeln!(out, "  {}: {}", error.step, error.message);
            }
            for v in &decision.violations {
                write_violation(&mut out, v);
            }
            let _ = writeln!(
                out,
                "run `airlock explain {}` for the full evidence",
                run.id
            );
        }
        RunState::Failed => {
            let _ = writeln!(out, "failed {} (run {})", run.app, run.id);
            match &run.error {
                Some(error) => {
                    let _ = writeln!(out, "  step {}: {}", error.step, error.message);
                }
                None => out.push_str("  the gate recorded no error message\n"),
            }
        }
        RunState::Cancelled => {
            let _ = writeln!(out, "cancelled {} (run {})", run.app, run.id);
        }
        other => {
            let _ = writeln!(out, "{} is {other}", run.id);
        }
    }
    out
}

fn write_violation(out: &mut String, v: &RuleOutcome) {
    let rule = if v.rule.is_empty() {
        "unnamed rule"
    } else {
        &v.rule
    };
    let _ = writeln!(out, "  ✗ {rule}: {}", v.message);
    if let Some(fix) = v.fix.as_deref().filter(|f| !f.is_empty()) {
        let _ = writeln!(out, "    fix: {fix}");
    }
}

/// `airlock explain RUN`: the decision in sentences.
pub fn explain(run: &RunView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Run {} of {} (commit {}, branch {}) is {}.",
        run.id,
        run.app,
        short(&run.commit),
        run.branch,
        run.state
    );
    let Some(decision_json) = &run.decision else {
        match &run.error {
            Some(error) => {
                let _ = writeln!(
                    out,
                    "The gate made no policy decision: step {} stopped the run: {}",
                    error.step, error.message
                );
            }
            None if run.state.is_terminal() => {
                out.push_str("The gate recorded no policy decision for this run.\n")
            }
            None => out.push_str("The policy has not been evaluated yet.\n"),
        }
        write_findings(&mut out, &run.findings);
        return out;
    };
    let d = DecisionSummary::from_json(decision_json);
    match d.allowed {
        Some(true) => out.push_str("The gate policy allowed it.\n"),
        Some(false) => {
            let _ = writeln!(
                out,
                "The gate policy rejected it: {} rule(s) failed.",
                d.violations.len()
            );
        }
        None => out.push_str("The decision does not say whether it was allowed.\n"),
    }
    if !d.violations.is_empty() {
        out.push_str("\nViolations (each blocks the release):\n");
        for v in &d.violations {
            write_outcome_sentences(&mut out, v, "must be fixed");
        }
    }
    if !d.warnings.is_empty() {
        out.push_str("\nWarnings (not blocking yet):\n");
        for w in &d.warnings {
            write_outcome_sentences(&mut out, w, "should be fixed");
        }
    }
    if !d.waived.is_empty() {
        out.push_str("\nWaived (a waiver lets these through):\n");
        for w in &d.waived {
            let _ = write!(out, "  - {}: {}", rule_name(w), sentence(&w.message));
            if let Some(reason) = &w.reason {
                let _ = write!(out, " Waived because {}", sentence(reason));
            }
            if let Some(by) = &w.by {
                let _ = write!(out, " Approved by {by}.");
            }
            match &w.expires {
                Some(expires) => {
                    let _ = write!(out, " The waiver expires {expires}.");
                }
                None => out.push_str(" The waiver has no expiry."),
            }
            out.push('\n');
        }
    }
    if !d.expired_waivers.is_empty() {
        out.push_str("\nExpired waivers (they no longer apply; renew or fix):\n");
        for w in &d.expired_waivers {
            let _ = writeln!(
                out,
                "  - {} expired {}; it was approved by {}.",
                w.message,
                w.expires.as_deref().unwrap_or("on an unknown date"),
                w.by.as_deref().unwrap_or("nobody on record")
            );
        }
    }
    if d.violations.is_empty() && d.warnings.is_empty() && d.waived.is_empty() {
        out.push_str("No rule reported anything.\n");
    }
    write_findings(&mut out, &run.findings);
    out
}

fn rule_name(o: &RuleOutcome) -> &str {
    if o.rule.is_empty() {
        "unnamed rule"
    } else {
        &o.rule
    }
}

/// Ends `text` with a full stop unless it already ends a sentence.
fn sentence(text: &str) -> String {
    let text = text.trim();
    if text.ends_with(['.', '!', '?']) {
        text.to_string()
    } else {
        format!("{text}.")
    }
}

fn write_outcome_sentences(out: &mut String, o: &RuleOutcome, urgency: &str) {
    let _ = writeln!(out, "  - {}: {}", rule_name(o), sentence(&o.message));
    if let Some(evidence) = o
        .evidence
        .as_ref()
        .filter(|e| !(e.is_null() || e.as_object().is_some_and(|m| m.is_empty())))
    {
        let _ = writeln!(out, "    Evidence: {}", sentence(&evidence_text(evidence)));
    }
    match o.fix.as_deref().filter(|f| !f.is_empty()) {
        Some(fix) => {
            let _ = writeln!(out, "    Fix: {}", sentence(fix));
        }
        None => {
            let _ = writeln!(
                out,
                "    This {urgency}; the rule gives no fix, ask the platform team."
            );
        }
    }
}

/// Longest evidence text shown for one rule; the rest is in the API's decision.
const MAX_EVIDENCE_CHARS: usize = 400;

/// Evidence in words: a vulnerability finding as "PKG VERSION (ECOSYSTEM), advisories ...,
/// severity ..., fixed in ...", any other object as "key: value; key: value".
fn evidence_text(evidence: &Value) -> String {
    let scalar = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Array(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect();
                (!parts.is_empty()).then(|| parts.join(", "))
            }
            Value::Object(_) => Some(v.to_string()),
            _ => None,
        }
    };
    let text = match evidence {
        Value::String(s) => s.clone(),
        Value::Object(map) if map.contains_key("package") && map.contains_key("installed") => {
            let get = |k: &str| map.get(k).and_then(scalar);
            let mut advisories: Vec<String> = Vec::new();
            for key in ["id", "aliases", "advisories"] {
                for a in get(key).iter().flat_map(|s| s.split(", ")) {
                    if !advisories.iter().any(|x| x == a) {
                        advisories.push(a.to_string());
                    }
                }
            }
            let mut parts = vec![format!(
                "{} {}{}",
                get("package").unwrap_or_default(),
                get("installed").unwrap_or_default(),
                get("ecosystem")
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )];
            if !advisories.is_empty() {
                parts.push(format!("advisories {}", advisories.join(", ")));
            }
            if let Some(severity) = get("severity") {
                parts.push(format!("severity {severity}"));
            }
            parts.push(match get("fixed") {
                Some(fixed) => format!("fixed in {fixed}"),
                None => "no fixed version yet".into(),
            });
            if let Some(summary) = get("summary") {
                parts.push(format!("\"{summary}\""));
            }
            parts.join(", ")
        }
        Value::Object(map) => map
            .iter()
            .filter_map(|(k, v)| Some(format!("{k}: {}", scalar(v)?)))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    };
    match text.char_indices().nth(MAX_EVIDENCE_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text,
    }
}

fn write_findings(out: &mut String, findings: &[Value]) {
    if findings.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nVulnerabilities found ({}):", findings.len());
    for f in findings.iter().map(FindingSummary::from_json) {
        let severity = f
            .severity
            .as_deref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        let fix = match &f.fixed {
            Some(v) => format!("upgrade to {v} or later"),
            None => "no fixed version is published".into(),
        };
        let _ = writeln!(
            out,
            "  - {} {} is affected by {}{severity}: {fix}.",
            f.package, f.installed, f.advisory
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ErrorView, ImageView, ReleaseView};
    use serde_json::json;

    fn fixture(state: RunState) -> RunView {
        RunView {
            id: "run-42".into(),
            app: "hello".into(),
            team: "web".into(),
            state,
            repository: "https://git.example/web/hello.git".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            branch: "main".into(),
            author: "Dev <dev@example.com>".into(),
            created_at: "2026-11-23T09:00:00Z".into(),
            updated_at: "2026-11-23T09:01:00Z".into(),
            builder: Some("standard".into()),
            steps: vec![
                StepView {
                    name: "fetch".into(),
                    state: StepState::Succeeded,
                    started_at: None,
                    finished_at: None,
                    duration_ms: Some(120),
                    detail: None,
                },
                StepView {
                    name: "gate".into(),
                    state: StepState::Failed,
                    started_at: None,
                    finished_at: None,
                    duration_ms: Some(2500),
                    detail: Some("2 policy violation(s)".into()),
                },
            ],
            image: None,
            release: None,
            findings: vec![json!({
                "package": {"name": "requests", "version": "2.19.0", "ecosystem": "PyPI"},
                "advisory": {"id": "GHSA-x84v-xcm2-53pg", "severity": "HIGH"},
                "fixed": "2.20.0"
            })],
            vulndb_age_seconds: None,
            decision: Some(json!({
                "allowed": false,
                "violations": [
                    {"rule": "image.non_root", "message": "the image runs as root",
                     "fix": "set run.user in airlock.toml to a non-zero uid", "evidence": {"user": "0"}},
                    {"rule": "vuln.high", "message": "requests 2.19.0 has GHSA-x84v-xcm2-53pg (HIGH)",
                     "fix": "upgrade requests to 2.20.0"}
                ],
                "warnings": [{"rule": "manifest.replicas", "message": "one replica in production"}],
                "waived": [{
                    "waiver": {"id": "CVE-2019-11324", "package": "urllib3", "team": null, "app": null,
                               "expires": "2027-01-31", "reason": "not reachable from our code",
                               "approver": "sec@example.com"},
                    "violation": {"rule": "vuln.medium", "message": "urllib3 1.24 has CVE-2019-11324",
                                  "evidence": {}, "fix": "upgrade urllib3", "advisories": ["CVE-2019-11324"],
                                  "package": "urllib3"}}],
                "expired_waivers": [{"id": "CVE-2018-1", "package": "jinja2", "team": null, "app": null,
                                     "expires": "2026-01-01", "reason": "legacy", "approver": "sec@example.com"}],
                "policy_digest": "sha256:00", "rules_evaluated": ["gate/image.rego"]
            })),
            error: Some(ErrorView {
                step: "gate".into(),
                message: "2 policy violation(s)".into(),
            }),
        }
    }

    #[test]
    fn explain_lists_violations_with_rule_evidence_and_fix() {
        let text = explain(&fixture(RunState::Rejected));
        assert!(text.contains("Run run-42 of hello (commit 012345678, branch main) is rejected."));
        assert!(text.contains("The gate policy rejected it: 2 rule(s) failed."));
        assert!(text.contains("  - image.non_root: the image runs as root."));
        assert!(text.contains("    Evidence: user: 0."), "{text}");
        assert!(text.contains("    Fix: set run.user in airlock.toml to a non-zero uid."));
        assert!(text.contains("  - vuln.high: requests 2.19.0 has GHSA-x84v-xcm2-53pg (HIGH)."));
    }

    #[test]
    fn explain_states_vulnerability_evidence_in_words() {
        let mut run = fixture(RunState::Rejected);
        run.decision = Some(json!({
            "allowed": false,
            "violations": [{
                "rule": "vuln.fixable-high",
                "message": "jinja2 2.7.1 has CVE-2014-1402, PYSEC-2014-8 (high severity), fixed in 2.7.2",
                "evidence": {"id": "CVE-2014-1402", "aliases": ["PYSEC-2014-8"], "package": "jinja2",
                             "ecosystem": "PyPI", "installed": "2.7.1", "fixed": "2.7.2", "severity": "high",
                             "summary": "Jinja2 uses a predictable cache path", "layer": "sha256:ab"},
                "fix": "upgrade jinja2 to 2.7.2 or later",
                "advisories": ["CVE-2014-1402", "PYSEC-2014-8"], "package": "jinja2"}],
            "warnings": [], "waived": [], "expired_waivers": []
        }));
        let text = explain(&run);
        assert!(
            text.contains(
                "    Evidence: jinja2 2.7.1 (PyPI), advisories CVE-2014-1402, PYSEC-2014-8, severity high, fixed in 2.7.2, \"Jinja2 uses a predictable cache path\".\n    Fix: upgrade jinja2 to 2.7.2 or later.\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn explain_shows_warnings_and_waivers_with_expiry() {
        let text = explain(&fixture(RunState::Rejected));
        assert!(text.contains("Warnings (not blocking yet):"));
        assert!(text.contains("manifest.replicas: one replica in production."));
        assert!(text.contains("the rule gives no fix"));
        assert!(text.contains(
            "  - vuln.medium: urllib3 1.24 has CVE-2019-11324. Waived because not reachable from our code. Approved by sec@example.com. The waiver expires 2027-01-31."
        ));
        assert!(text.contains(
            "  - waiver of CVE-2018-1 in jinja2 expired 2026-01-01; it was approved by sec@example.com."
        ));
    }

    #[test]
    fn explain_names_package_version_advisory_and_fix_of_findings() {
        let text = explain(&fixture(RunState::Rejected));
        assert!(
            text.contains(
                "  - requests 2.19.0 is affected by GHSA-x84v-xcm2-53pg (HIGH): upgrade to 2.20.0 or later."
            ),
            "{text}"
        );
    }

    #[test]
    fn explain_without_decision_tells_which_step_stopped_the_run() {
        let mut run = fixture(RunState::Failed);
        run.decision = None;
        run.findings.clear();
        run.error = Some(ErrorView {
            step: "build".into(),
            message: "npm install exited with 1".into(),
        });
        let text = explain(&run);
        assert!(
            text.contains("step build stopped the run: npm install exited with 1"),
            "{text}"
        );
    }

    #[test]
    fn rejected_verdict_lists_every_violation_with_fix() {
        let text = verdict(&fixture(RunState::Rejected));
        assert!(text.starts_with("rejected hello (run run-42)\n"));
        assert!(text.contains("  ✗ image.non_root: the image runs as root\n"));
        assert!(text.contains("    fix: set run.user in airlock.toml to a non-zero uid\n"));
        assert!(text.contains("  ✗ vuln.high: "));
        assert!(text.contains("airlock explain run-42"));
    }

    #[test]
    fn published_verdict_shows_image_digest_and_release() {
        let mut run = fixture(RunState::Published);
        run.decision = Some(json!({"allowed": true}));
        run.image = Some(ImageView {
            reference: "airlock.local/hello:abc".into(),
            digest: "sha256:aa".into(),
        });
        run.release = Some(ReleaseView {
            sequence: 7,
            digest: "sha256:bb".into(),
            reference: "airlock.local/hello:release-0000000007".into(),
        });
        let text = verdict(&run);
        assert!(text.contains("published hello (run run-42)"));
        assert!(text.contains("  digest   sha256:aa"));
        assert!(text.contains("  release  #7 airlock.local/hello:release-0000000007 (sha256:bb)"));
    }

    #[test]
    fn failed_verdict_names_step_and_message() {
        let mut run = fixture(RunState::Failed);
        run.error = Some(ErrorView {
            step: "build".into(),
            message: "docker build exited with 1".into(),
        });
        assert!(verdict(&run).contains("  step build: docker build exited with 1"));
    }

    #[test]
    fn step_lines_show_duration_and_detail() {
        let run = fixture(RunState::Rejected);
        assert_eq!(step_line(&run.steps[0]), "✓ fetch        120ms");
        assert_eq!(
            step_line(&run.steps[1]),
            "✗ gate          2.5s  2 policy violation(s)"
        );
        assert_eq!(format_duration_ms(125_000), "2m05s");
    }

    #[test]
    fn runs_table_aligns_columns() {
        let runs = vec![fixture(RunState::Published), fixture(RunState::Queued)];
        let table = runs_table(&runs);
        let lines: Vec<_> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID      APP    STATE"));
        assert!(lines[1].starts_with("run-42  hello  published   012345678  main"));
        assert_eq!(runs_table(&[]), "no runs\n");
    }
}
