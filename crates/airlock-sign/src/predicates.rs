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

#[cfg(test)]
mod tests {
    use super::*;

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
