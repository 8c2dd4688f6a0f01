//! What a policy evaluation says: violations a developer can act on, warnings,
//! which waivers were applied and which matched but had expired.

use serde::{Deserialize, Serialize};
use time::Date;

use crate::{PolicyError, Waiver};

/// One deny or warn entry produced by a policy, following the entry convention
/// `{"rule", "message", "evidence", "fix", "advisories", "package"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// Stable rule id, e.g. `vuln.fixable-high`.
    pub rule: String,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The facts from the input that triggered the rule.
    pub evidence: serde_json::Value,
    /// What the developer should do about it.
    pub fix: String,
    /// Advisory ids and aliases; empty for rules that are not about vulnerabilities.
    #[serde(default)]
    pub advisories: Vec<String>,
    /// The affected software package, for vulnerability rules.
    #[serde(default)]
    pub package: Option<String>,
}

impl std::fmt::Display for Violation {
    /// `rule: message (fix: ...)`, one line, as a CLI or log shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (fix: {})", self.rule, self.message, self.fix)
    }
}

/// A waiver together with the violation it silenced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedWaiver {
    /// The waiver that applied.
    pub waiver: Waiver,
    /// The violation (or warning) it silenced.
    pub violation: Violation,
}

/// The outcome of evaluating one policy package against one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// True when no deny violation remains after waivers.
    pub allowed: bool,
    /// Deny entries not covered by an active waiver.
    pub violations: Vec<Violation>,
    /// Warn entries not covered by an active waiver.
    pub warnings: Vec<Violation>,
    /// Deny or warn entries silenced by an active waiver.
    pub waived: Vec<AppliedWaiver>,
    /// Waivers that would have matched an entry but had expired; the entry still counts.
    pub expired_waivers: Vec<Waiver>,
    /// `sha256:<hex>` of the policy set that decided.
    pub policy_digest: String,
    /// Names of the policy sources of the evaluated package.
    pub rules_evaluated: Vec<String>,
}

/// Longest rendering of a malformed entry kept in an error message.
const MAX_ENTRY_IN_ERROR: usize = 300;

/// Turns the JSON value of a `deny`/`warn` set into violations, sorted by rule then message.
pub(crate) fn parse_entries(
    rule_path: &str,
    value: serde_json::Value,
) -> Result<Vec<Violation>, PolicyError> {
    let entries = match value {
        serde_json::Value::Null => return Ok(Vec::new()),
        serde_json::Value::Array(entries) => entries,
        other => {
            return Err(PolicyError::Eval {
                rule: rule_path.to_string(),
                message: format!("expected a set of entries, got {}", shorten(&other)),
            });
        }
    };
    let mut out = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        out.push(parse_entry(rule_path, index, entry)?);
    }
    out.sort_by(|a, b| (&a.rule, &a.message).cmp(&(&b.rule, &b.message)));
    Ok(out)
}

fn parse_entry(
    rule_path: &str,
    index: usize,
    mut entry: serde_json::Value,
) -> Result<Violation, PolicyError> {
    // The evidence is moved out, not copied: it can be the whole finding, thousands of times.
    let evidence = entry
        .as_object_mut()
        .and_then(|obj| obj.remove("evidence"))
        .unwrap_or(serde_json::Value::Object(Default::default()));
    let entry = &entry;
    let bad = |reason: &str| PolicyError::MalformedEntry {
        rule: rule_path.to_string(),
        index,
        reason: reason.to_string(),
        entry: shorten(entry),
    };
    let obj = entry.as_object().ok_or_else(|| bad("not an object"))?;
    let string = |key: &str| -> Result<String, PolicyError> {
        match obj.get(key) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(bad(&format!("`{key}` must be a non-empty string"))),
        }
    };
    let advisories = match obj.get("advisories") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("`advisories` must be an array of strings"))?,
        Some(_) => return Err(bad("`advisories` must be an array of strings")),
    };
    let package = match obj.get("package") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("`package` must be a string")),
    };
    Ok(Violation {
        rule: string("rule")?,
        message: string("message")?,
        evidence,
        fix: string("fix")?,
        advisories,
        package,
    })
}

fn shorten(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if text.len() <= MAX_ENTRY_IN_ERROR {
        return text;
    }
    let mut end = MAX_ENTRY_IN_ERROR;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The team/app scope of an input: `submission` (gate) or `release` (admission).
pub(crate) fn input_scope(input: &serde_json::Value) -> (Option<&str>, Option<&str>) {
    let field = |key: &str| {
        ["submission", "release"]
            .iter()
            .find_map(|section| input.get(section)?.get(key)?.as_str())
    };
    (field("team"), field("app"))
}

/// Splits `entries` into those that still count and those silenced by an active
/// waiver; matching expired waivers are added to `expired` (once each).
pub(crate) fn apply_waivers(
    entries: Vec<Violation>,
    waivers: &[(Waiver, bool)],
    scope: (Option<&str>, Option<&str>),
    waived: &mut Vec<AppliedWaiver>,
    expired: &mut Vec<Waiver>,
) -> Vec<Violation> {
    let mut remaining = Vec::with_capacity(entries.len());
    for violation in entries {
        let matching = waivers.iter().filter(|(w, _)| {
            w.covers(
                &violation.advisories,
                violation.package.as_deref(),
                scope.0,
                scope.1,
            )
        });
        let mut applied = None;
        for (waiver, active) in matching {
            if *active {
                applied.get_or_insert_with(|| waiver.clone());
            } else if !expired.contains(waiver) {
                expired.push(waiver.clone());
            }
        }
        match applied {
            Some(waiver) => waived.push(AppliedWaiver { waiver, violation }),
            None => remaining.push(violation),
        }
    }
    remaining
}

/// Pairs each waiver with whether it is active on `today`.
pub(crate) fn classify_waivers(
    waivers: &[Waiver],
    today: Date,
) -> Result<Vec<(Waiver, bool)>, PolicyError> {
    waivers
        .iter()
        .map(|w| Ok((w.clone(), w.is_active_on(today)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_entry_without_package_as_non_vulnerability_violation() {
        let v = parse_entries(
            "data.p.deny",
            json!([{"rule": "image.runs-as-root", "message": "m", "fix": "f", "evidence": {"user": "0"}}]),
        )
        .unwrap();
        assert_eq!(v[0].package, None);
        assert!(v[0].advisories.is_empty());
        assert_eq!(v[0].evidence, json!({"user": "0"}));
    }

    #[test]
    fn rejects_entry_without_fix_naming_rule_and_index() {
        let err = parse_entries(
            "data.p.deny",
            json!([{"rule": "a", "message": "m", "fix": "f"}, {"rule": "b", "message": "m"}]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("data.p.deny entry #1"), "{err}");
        assert!(err.contains("`fix`"), "{err}");
    }

    #[test]
    fn displays_rule_message_and_fix_on_one_line() {
        let v = parse_entries(
            "data.p.deny",
            json!([{"rule": "image.runs-as-root", "message": "image runs as root", "fix": "set USER"}]),
        )
        .unwrap();
        assert_eq!(
            v[0].to_string(),
            "image.runs-as-root: image runs as root (fix: set USER)"
        );
    }

    #[test]
    fn rejects_entry_that_is_a_plain_string() {
        let err = parse_entries("data.p.warn", json!(["just a message"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an object"), "{err}");
    }

    #[test]
    fn scope_comes_from_submission_or_release() {
        let gate = json!({"submission": {"team": "demo", "app": "hello"}});
        assert_eq!(input_scope(&gate), (Some("demo"), Some("hello")));
        let admission = json!({"release": {"team": "t", "app": "a"}});
        assert_eq!(input_scope(&admission), (Some("t"), Some("a")));
    }
}
