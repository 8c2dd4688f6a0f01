//! The admission question the agent asks before applying a release: the
//! input document of the `airlock.admission` Rego package, built from what
//! verified, and the sentence a refusal prints.
//!
//! Input (see `policies/README.md`):
//! `{"release": {...}, "environment": ENV, "gate_decision": {...} | null, "findings": [...]}`.

use airlock_policy::Decision;
use airlock_sign::VerifiedRelease;
use airlock_sign::predicates::{POLICY_DECISION, VULN};
use serde_json::{Value, json};

/// Rego package the agent evaluates.
pub const ADMISSION_PACKAGE: &str = "airlock.admission";

/// The predicate of the first verified attestation of `predicate_type`.
fn predicate<'a>(release: &'a VerifiedRelease, predicate_type: &str) -> Option<&'a Value> {
    release
        .attestations
        .iter()
        .find(|a| a.predicate_type == predicate_type)
        .and_then(|a| a.statement.get("predicate"))
}

/// The gate's decision from the policy-decision attestation: the recorded
/// `decision` object (with `allowed`), or `null` when there is none.
pub fn gate_decision(release: &VerifiedRelease) -> Value {
    match predicate(release, POLICY_DECISION) {
        Some(p) => match p.get("decision") {
            Some(decision) if decision.is_object() => decision.clone(),
            _ if p.get("allowed").is_some() => p.clone(),
            _ => Value::Null,
        },
        None => Value::Null,
    }
}

/// Findings from the vulnerability attestation (`scanner.result`), if attached.
pub fn findings(release: &VerifiedRelease) -> Vec<Value> {
    predicate(release, VULN)
        .and_then(|p| p.pointer("/scanner/result"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The admission input for `release` entering `environment`.
pub fn admission_input(release: &VerifiedRelease, environment: &str) -> Value {
    let c = &release.config;
    json!({
        "release": {
            "app": c.app,
            "team": c.team,
            "sequence": c.sequence,
            "commit": c.commit,
            "source": c.source,
            "image_repository": c.image.repository,
            "image_digest": c.image.digest.to_string(),
            "created": c.created,
            "environments": c.environments,
            "run_id": c.run_id,
            "release_digest": release.digest.to_string(),
            "signed_by": release.signed_by.as_str(),
        },
        "environment": environment,
        "gate_decision": gate_decision(release),
        "findings": findings(release),
    })
}

/// One line per violation: `rule: message (fix: …)`, joined with `; `.
pub fn refusal_reason(decision: &Decision) -> String {
    let parts: Vec<String> = decision
        .violations
        .iter()
        .map(|v| format!("{}: {} (fix: {})", v.rule, v.message, v.fix))
        .collect();
    format!("admission policy denied it: {}", parts.join("; "))
}
