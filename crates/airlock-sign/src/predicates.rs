//! The predicate types airlock attests, and the SLSA provenance v1 predicate it writes.

use serde_json::{Map, Value, json};

/// SLSA provenance v1 (<https://slsa.dev/spec/v1.0/provenance>).
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// A CycloneDX SBOM as predicate (as `cosign attest --type cyclonedx` writes it).
pub const CYCLONEDX: &str = "https://cyclonedx.org/bom";
/// cosign's vulnerability scan report predicate.
pub const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
/// airlock's own record of the gate's policy decision.
pub const POLICY_DECISION: &str = "https://airlock.dev/attestation/policy-decision/v1";
/// An OpenVEX document as predicate (as `cosign attest --type openvex` writes it).
pub const OPENVEX: &str = "https://openvex.dev/ns";
/// The OpenVEX context (document version) written.
pub const OPENVEX_CONTEXT: &str = "https://openvex.dev/ns/v0.2.0";
/// The OpenVEX `not_affected` justifications. A waiver whose reason starts with one of these (e.g.
/// `vulnerable_code_not_in_execute_path: the parser is never called`) becomes a `not_affected` statement that
/// VEX-aware scanners suppress; any other waiver is an accepted risk, `affected` with an action statement.
pub const VEX_JUSTIFICATIONS: [&str; 5] = [
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
];

/// What the gate knows about a build, for [`slsa_provenance`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProvenanceInput {
    /// URI of the builder (the gate instance), `runDetails.builder.id`.
    pub builder_id: String,
    /// URI naming how the build ran (`buildDefinition.buildType`), e.g. dockerfile or standard build.
    pub build_type: String,
    /// The source repository URL.
    pub repository: String,
    /// The git commit built (40 hex).
    pub commit: String,
    /// Digest (`sha256:..`) of the app descriptor `airlock.toml` as built.
    pub descriptor_digest: String,
    /// The pipeline run id (`runDetails.metadata.invocationId`).
    pub run_id: String,
    /// RFC 3339 start time of the build.
    pub started_on: String,
    /// RFC 3339 end time of the build.
    pub finished_on: String,
    /// Other inputs (base images, builder images): URI and digest (`sha256:<hex>` or a git commit).
    pub resolved: Vec<(String, String)>,
}

/// A digest string as an in-toto DigestSet: `sha256:<hex>` → `{"sha256": hex}`, 40 hex → `{"gitCommit": ..}`,
/// `alg:value` → `{alg: value}`.
fn digest_set(digest: &str) -> Value {
    let mut set = Map::new();
    if let Some((alg, value)) = digest.split_once(':') {
        set.insert(alg.to_string(), Value::String(value.to_string()));
    } else if digest.len() == 40 && digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        set.insert("gitCommit".to_string(), Value::String(digest.to_string()));
    } else {
        set.insert("unknown".to_string(), Value::String(digest.to_string()));
    }
    Value::Object(set)
}

/// The SLSA provenance v1 predicate for a build described by `p`. The source (repository at commit) is the
/// first resolved dependency, followed by `p.resolved`.
pub fn slsa_provenance(p: &ProvenanceInput) -> Value {
    let mut resolved = vec![json!({
        "uri": format!("git+{}", p.repository),
        "digest": digest_set(&p.commit),
    })];
    resolved.extend(
        p.resolved
            .iter()
            .map(|(uri, digest)| json!({"uri": uri, "digest": digest_set(digest)})),
    );
    json!({
        "buildDefinition": {
            "buildType": p.build_type,
            "externalParameters": {
                "source": {"repository": p.repository, "commit": p.commit},
                "descriptor": {"path": "airlock.toml", "digest": digest_set(&p.descriptor_digest)},
            },
            "internalParameters": {},
            "resolvedDependencies": resolved,
        },
        "runDetails": {
            "builder": {"id": p.builder_id},
            "metadata": {
                "invocationId": p.run_id,
                "startedOn": p.started_on,
                "finishedOn": p.finished_on,
            },
        },
    })
}

/// What the gate knows about a scan, for [`vuln_report`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VulnScanInput {
    /// URI of the gate (`invocation.uri` and `invocation.builder.id`).
    pub gate_id: String,
    /// The pipeline run (`invocation.event_id`).
    pub run_id: String,
    /// URI of the scanner.
    pub scanner_uri: String,
    /// Version of the scanner.
    pub scanner_version: String,
    /// URI of the vulnerability database.
    pub db_uri: String,
    /// Version of the vulnerability database (e.g. its import time or digest).
    pub db_version: String,
    /// The findings (scanner output), kept as `scanner.result`.
    pub result: Value,
    /// RFC 3339 start of the scan.
    pub started_on: String,
    /// RFC 3339 end of the scan.
    pub finished_on: String,
}

/// cosign's vulnerability predicate (`https://cosign.sigstore.dev/attestation/vuln/v1`):
/// `{invocation: {parameters, uri, event_id, builder.id}, scanner: {uri, version, db: {uri, version}, result},
/// metadata: {scanStartedOn, scanFinishedOn}}`.
pub fn vuln_report(v: &VulnScanInput) -> Value {
    json!({
        "invocation": {
            "parameters": null,
            "uri": v.gate_id,
            "event_id": v.run_id,
            "builder.id": v.gate_id,
        },
        "scanner": {
            "uri": v.scanner_uri,
            "version": v.scanner_version,
            "db": {"uri": v.db_uri, "version": v.db_version},
            "result": v.result,
        },
        "metadata": {"scanStartedOn": v.started_on, "scanFinishedOn": v.finished_on},
    })
}

/// The policy-decision predicate from a serialized gate decision (`airlock_policy::Decision` as JSON):
/// the verdict (`decision`: `allow`/`deny`, and `allowed`), the digest of the policy bundle that decided,
/// the rules evaluated, the violations and warnings left, and every waiver applied with what it silenced.
pub fn policy_decision(decision: &Value, gate_id: &str, run_id: &str) -> Value {
    let allowed = decision["allowed"].as_bool().unwrap_or(false);
    let waivers: Vec<Value> = decision["waived"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|w| {
                    json!({
                        "id": w["waiver"]["id"], "package": w["waiver"]["package"],
                        "approver": w["waiver"]["approver"], "expires": w["waiver"]["expires"],
                        "reason": w["waiver"]["reason"], "rule": w["violation"]["rule"],
                        "advisories": w["violation"]["advisories"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "decision": if allowed { "allow" } else { "deny" },
        "allowed": allowed,
        "policy_bundle_digest": decision["policy_digest"],
        "policy_digest": decision["policy_digest"],
        "rules_evaluated": decision["rules_evaluated"],
        "violations": decision["violations"],
        "warnings": decision["warnings"],
        "waivers_applied": waivers,
        "expired_waivers": decision["expired_waivers"],
        "gate": gate_id,
        "run": run_id,
    })
}

/// The package URL of an image: `pkg:oci/<name>@sha256%3A<hex>?repository_url=<repository>`.
pub fn oci_purl(repository: &str, digest: &airlock_oci::Digest) -> String {
    let name = repository.rsplit('/').next().unwrap_or(repository);
    format!(
        "pkg:oci/{name}@{}%3A{}?repository_url={repository}",
        digest.algorithm(),
        digest.hex()
    )
}

/// An OpenVEX v0.2.0 document for the waivers applied by a serialized gate decision, about the image
/// `repository@digest`. `None` when no waiver applied. See [`VEX_JUSTIFICATIONS`] for how a waiver maps to
/// `not_affected` or `affected`; either way the statement carries the waiver's reason, approver and expiry.
pub fn openvex(
    decision: &Value,
    repository: &str,
    digest: &airlock_oci::Digest,
    author: &str,
    timestamp: &str,
) -> Option<Value> {
    let waived = decision["waived"].as_array().filter(|w| !w.is_empty())?;
    let product = oci_purl(repository, digest);
    let statements: Vec<Value> = waived
        .iter()
        .map(|w| {
            let waiver = &w["waiver"];
            let reason = waiver["reason"].as_str().unwrap_or_default();
            let approver = waiver["approver"].as_str().unwrap_or_default();
            let expires = waiver["expires"].as_str().unwrap_or_default();
            let aliases: Vec<Value> = w["violation"]["advisories"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a.as_str() != waiver["id"].as_str())
                .cloned()
                .collect();
            let mut statement = json!({
                "vulnerability": {"name": waiver["id"], "aliases": aliases},
                "products": [{
                    "@id": product,
                    "subcomponents": [{"@id": waiver["package"]}],
                }],
                "timestamp": timestamp,
                "status_notes": format!("waived by {approver} until {expires}: {reason}"),
            });
            let justification = VEX_JUSTIFICATIONS.iter().find(|j| reason.starts_with(*j));
            if let Some(justification) = justification {
                statement["status"] = json!("not_affected");
                statement["justification"] = json!(justification);
                statement["impact_statement"] = json!(reason);
            } else {
                statement["status"] = json!("affected");
                statement["action_statement"] = json!(format!(
                    "risk accepted by {approver} until {expires}: {reason}"
                ));
            }
            statement
        })
        .collect();
    Some(json!({
        "@context": OPENVEX_CONTEXT,
        "@id": format!("{author}/vex/{}", digest.hex()),
        "author": author,
        "timestamp": timestamp,
        "version": 1,
        "statements": statements,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision_with_waivers() -> Value {
        json!({
            "allowed": true, "violations": [], "warnings": [], "expired_waivers": [],
            "policy_digest": "sha256:abcd", "rules_evaluated": ["vuln.rego", "image.rego"],
            "waived": [
                {"waiver": {"id": "CVE-2024-1", "package": "jinja2", "expires": "2026-12-31",
                            "reason": "vulnerable_code_not_in_execute_path: templates are static", "approver": "sec@example"},
                 "violation": {"rule": "vuln.fixable-high", "advisories": ["CVE-2024-1", "GHSA-xxxx"]}},
                {"waiver": {"id": "CVE-2024-2", "package": "urllib3", "expires": "2026-06-30",
                            "reason": "fix scheduled for next sprint", "approver": "lead@example"},
                 "violation": {"rule": "vuln.fixable-high", "advisories": ["CVE-2024-2"]}},
            ],
        })
    }

    #[test]
    fn vuln_report_has_cosign_shape() {
        let v = vuln_report(&VulnScanInput {
            gate_id: "https://gate".into(),
            run_id: "r1".into(),
            scanner_uri: "https://scanner".into(),
            scanner_version: "1".into(),
            db_uri: "osv".into(),
            db_version: "2026-01-01".into(),
            result: json!([{"id": "CVE-1"}]),
            started_on: "2026-01-01T00:00:00Z".into(),
            finished_on: "2026-01-01T00:00:01Z".into(),
        });
        assert_eq!(v["invocation"]["builder.id"], "https://gate");
        assert_eq!(v["scanner"]["db"]["version"], "2026-01-01");
        assert_eq!(v["scanner"]["result"][0]["id"], "CVE-1");
        assert_eq!(v["metadata"]["scanFinishedOn"], "2026-01-01T00:00:01Z");
    }

    #[test]
    fn policy_decision_names_verdict_bundle_rules_and_waivers() {
        let p = policy_decision(&decision_with_waivers(), "https://gate", "r1");
        assert_eq!(p["decision"], "allow");
        assert_eq!(p["allowed"], true);
        assert_eq!(p["policy_bundle_digest"], "sha256:abcd");
        assert_eq!(p["rules_evaluated"][1], "image.rego");
        assert_eq!(p["waivers_applied"][0]["approver"], "sec@example");
        assert_eq!(p["waivers_applied"][1]["expires"], "2026-06-30");
    }

    #[test]
    fn openvex_maps_justified_waivers_to_not_affected_and_others_to_affected() {
        let d = airlock_oci::Digest::of(b"img");
        let vex = openvex(
            &decision_with_waivers(),
            "reg.example/team/app",
            &d,
            "https://gate",
            "2026-01-01T00:00:00Z",
        )
        .unwrap();
        assert_eq!(vex["@context"], OPENVEX_CONTEXT);
        let s = vex["statements"].as_array().unwrap();
        assert_eq!(s[0]["status"], "not_affected");
        assert_eq!(s[0]["justification"], "vulnerable_code_not_in_execute_path");
        assert_eq!(s[0]["vulnerability"]["aliases"], json!(["GHSA-xxxx"]));
        assert_eq!(
            s[0]["products"][0]["@id"],
            format!(
                "pkg:oci/app@sha256%3A{}?repository_url=reg.example/team/app",
                d.hex()
            )
        );
        assert_eq!(s[1]["status"], "affected");
        assert!(
            s[1]["action_statement"]
                .as_str()
                .unwrap()
                .contains("lead@example until 2026-06-30")
        );
        assert!(openvex(&json!({"waived": []}), "r", &d, "a", "t").is_none());
    }

    #[test]
    fn provenance_has_slsa_v1_shape_with_source_first() {
        let p = ProvenanceInput {
            builder_id: "https://airlock.example/gate".into(),
            build_type: "https://airlock.dev/build/standard/v1".into(),
            repository: "https://git.example/team/app".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            descriptor_digest: format!("sha256:{}", "a".repeat(64)),
            run_id: "run-42".into(),
            started_on: "2026-01-01T00:00:00Z".into(),
            finished_on: "2026-01-01T00:01:00Z".into(),
            resolved: vec![(
                "pkg:docker/base@1".into(),
                format!("sha256:{}", "b".repeat(64)),
            )],
        };
        let v = slsa_provenance(&p);
        assert_eq!(
            v["runDetails"]["builder"]["id"],
            "https://airlock.example/gate"
        );
        assert_eq!(v["runDetails"]["metadata"]["invocationId"], "run-42");
        let deps = v["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap();
        assert_eq!(deps[0]["uri"], "git+https://git.example/team/app");
        assert_eq!(deps[0]["digest"]["gitCommit"], p.commit);
        assert_eq!(deps[1]["digest"]["sha256"], "b".repeat(64));
        assert_eq!(
            v["buildDefinition"]["externalParameters"]["descriptor"]["digest"]["sha256"],
            "a".repeat(64)
        );
    }
}
