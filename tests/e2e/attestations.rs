//! What the gate publishes for one run, read back the way a third party would: the image and release
//! signatures checked by `verify_cosign.py` (Python `cryptography`), every attestation by `verify_dsse.py`
//! (`securesystemslib`), and the predicates checked for the fields the outer loop relies on.

use airlock_e2e::{python, repo_root};
use airlock_oci::{LayoutRoot, Store};
use airlock_sign::{PublicKey, TrustConfig, TrustSet, predicates, verify};

fn run_checker(script: &str, args: &[&str]) -> String {
    let script_path = repo_root().join("crates/airlock-sign/tests").join(script);
    let (ok, text) = airlock_testkit::tools::run_python(&python(), &script_path, args);
    assert!(ok, "{script} {args:?}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_release_and_attestations_verify_independently_and_carry_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    airlock_e2e::run_demo(dir.path()).await;
    let boundary = dir.path().join("boundary");
    let repo = LayoutRoot::open_or_create(&boundary)
        .unwrap()
        .repo("hello")
        .unwrap();
    let tag = repo
        .list_tags()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.starts_with("release-"))
        .max()
        .expect("a release tag");
    let pub_path = dir.path().join("keys/airlock.pub");
    let key = PublicKey::load(&pub_path).unwrap();
    let reference = "airlock.local/hello";
    let trust = TrustConfig::new(TrustSet::new(vec![key])).requiring(&[
        predicates::SLSA_PROVENANCE_V1,
        predicates::CYCLONEDX,
        predicates::VULN,
        predicates::POLICY_DECISION,
    ]);
    let release = verify(&repo, reference, &tag, &trust, None).await.unwrap();
    let image = release.config.image.digest.clone();

    let layout = boundary.join("hello");
    let (layout, pub_path) = (layout.to_str().unwrap(), pub_path.to_str().unwrap());
    run_checker(
        "verify_cosign.py",
        &[layout, pub_path, image.as_str(), reference],
    );
    run_checker(
        "verify_cosign.py",
        &[layout, pub_path, release.digest.as_str(), reference],
    );
    let types = run_checker("verify_dsse.py", &[layout, pub_path, image.as_str()]);
    for kind in [
        predicates::SLSA_PROVENANCE_V1,
        predicates::CYCLONEDX,
        predicates::VULN,
        predicates::POLICY_DECISION,
    ] {
        assert!(types.lines().any(|l| l == kind), "{kind} missing: {types}");
    }

    let predicate = |kind: &str| {
        release
            .attestations
            .iter()
            .find(|a| a.predicate_type == kind)
            .map(|a| a.statement["predicate"].clone())
            .unwrap()
    };
    let slsa = predicate(predicates::SLSA_PROVENANCE_V1);
    assert_eq!(
        slsa["runDetails"]["builder"]["id"],
        "https://airlock.dev/gate/local"
    );
    assert_eq!(
        slsa["runDetails"]["metadata"]["invocationId"],
        release.config.run_id
    );
    assert!(slsa["runDetails"]["metadata"]["startedOn"].is_string());
    assert!(slsa["runDetails"]["metadata"]["finishedOn"].is_string());
    let params = &slsa["buildDefinition"]["externalParameters"];
    assert_eq!(params["source"]["commit"], release.config.commit);
    assert!(
        params["descriptor"]["digest"]["sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64)
    );
    let deps = slsa["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    assert_eq!(deps[0]["digest"]["gitCommit"], release.config.commit);
    assert_eq!(
        deps.iter()
            .filter(|d| d["uri"].as_str().is_some_and(|u| u.starts_with("git+")))
            .count(),
        1,
        "the source is listed once: {deps:?}"
    );
    assert!(
        deps.iter().any(|d| d["digest"]["sha256"].is_string()),
        "the run base is a resolved dependency by digest: {deps:?}"
    );

    let vuln = predicate(predicates::VULN);
    assert_eq!(
        vuln["invocation"]["builder.id"],
        "https://airlock.dev/gate/local"
    );
    assert!(vuln["scanner"]["db"]["version"].is_string());
    assert!(vuln["scanner"]["result"].is_array());
    assert!(vuln["metadata"]["scanFinishedOn"].is_string());

    let decision = predicate(predicates::POLICY_DECISION);
    assert_eq!(decision["decision"], "allow");
    assert!(
        decision["policy_bundle_digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    assert!(
        decision["rules_evaluated"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
    assert!(decision["violations"].is_array());
    assert!(decision["waivers_applied"].is_array());
}
