//! Rescans across the boundary, against a real registry (Debian's `docker-registry` on loopback): the gate's
//! vulnerability database published as a signed artifact (`airlock_sign::publish_vulndb`, as
//! `airlock-gate vulndb publish` does), a release whose CycloneDX SBOM is written by `airlock-scan` itself,
//! and an agent that reports what the newer database finds without redeploying, and refuses a database
//! that is unsigned or signed by another key while keeping the one it verified.

mod common;

use airlock_agent::{Agent, Metrics, TargetSpec};
use airlock_oci::{Digest, Store, media_type};
use airlock_scan::{Ecosystem, Inventory, Package};
use airlock_sign::predicates::{CYCLONEDX, VULN};
use airlock_sign::{SigningKey, VulnDbInfo};
use common::{Registry, Release, publish, put_image, registry_config};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const APP: &str = "hello";
const OLD_CVE: &str = "CVE-2014-1402";
const NEW_ADVISORY: &str = "GHSA-h5c8-rqwp-cp95";

/// A release of `APP` whose image holds Jinja2 2.7.1 (by its SBOM) and whose scan at the gate reported
/// only `OLD_CVE`.
async fn publish_release_with_sbom(store: &dyn Store, key: &SigningKey) -> Digest {
    let mut release = Release::new(APP, 1, key, &["staging"]);
    release.content = "hello with jinja2".into();
    // The SBOM names its subject: put the image first (publishing puts the same one again).
    let image = put_image(store, release.content.as_bytes(), "run-1").await;
    let inventory = Inventory {
        os: None,
        packages: vec![Package {
            name: "jinja2".into(),
            version: "2.7.1".into(),
            ecosystem: Ecosystem::PyPI,
            distro: None,
            purl: "pkg:pypi/jinja2@2.7.1".into(),
            layer: None,
            path: "/app/site-packages/Jinja2-2.7.1.dist-info/METADATA".into(),
            source: None,
            local: false,
        }],
        warnings: vec![],
    };
    let sbom = airlock_scan::cyclonedx(&inventory, &release.reference, image.as_str());
    release.predicates = BTreeMap::from([
        (CYCLONEDX, sbom),
        (
            VULN,
            json!({"scanner": {"uri": "https://airlock.dev/scanner", "result": [
                {"id": OLD_CVE, "aliases": [], "package": "jinja2", "installed": "2.7.1"}
            ]}}),
        ),
    ]);
    publish(store, release).await
}

/// An OSV record for Jinja2 below `fixed`.
fn osv(id: &str, aliases: &[&str], fixed: &str, modified: &str) -> serde_json::Value {
    json!({
        "id": id, "modified": modified, "aliases": aliases,
        "summary": format!("test advisory {id}"),
        "affected": [{"package": {"ecosystem": "PyPI", "name": "jinja2"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}],
        "database_specific": {"severity": "HIGH"}
    })
}

/// A database (imported by `airlock-scan` from OSV JSON files) packed as the gate publishes it.
fn database(dir: &Path, records: &[serde_json::Value]) -> (Vec<u8>, VulnDbInfo) {
    let src = dir.join("osv");
    std::fs::create_dir_all(&src).unwrap();
    for r in records {
        let id = r["id"].as_str().unwrap();
        std::fs::write(src.join(format!("{id}.json")), r.to_string()).unwrap();
    }
    let db = airlock_scan::VulnDb::open(&dir.join("db")).unwrap();
    db.import(&src).unwrap();
    let status = db.status().unwrap();
    let info = VulnDbInfo {
        newest_modified: status.newest_modified,
        imported_at: status.imported_at,
        per_ecosystem: status.per_ecosystem,
        published_at: "2026-11-23T10:00:00Z".into(),
    };
    (airlock_sign::pack_vulndb_dir(db.dir()).unwrap(), info)
}

#[tokio::test]
async fn newer_database_reports_new_findings_without_redeploying_and_bad_ones_are_refused() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    publish_release_with_sbom(&registry.store(&format!("boundary/{APP}")), &key).await;

    let deploy = dir.path().join("deploy");
    let cfg = registry_config(
        dir.path(),
        &registry,
        &key,
        TargetSpec::Directory(deploy.clone()),
    );
    let metrics = Arc::new(Metrics::default());
    let mut agent = Agent::new(cfg.clone(), metrics.clone()).unwrap();
    let report = agent.sync().await.unwrap();
    assert_eq!(report.applied.len(), 1, "{report:?}");
    let applied_file = deploy.join("staging/hello/deployment.yaml");
    let applied = std::fs::read(&applied_file).unwrap();
    let status = agent.target().read_status("staging");
    assert!(status.vulndb.is_none(), "{status:?}");
    assert!(status.apps[APP].new_findings.is_empty(), "{status:?}");

    // The gate publishes a database that knows the old CVE (already reported) and a new advisory.
    let dbstore = registry.store("boundary/airlock.vulndb");
    let db_reference = "airlock.local/airlock.vulndb";
    let (layer, info) = database(
        &dir.path().join("db1"),
        &[
            osv(OLD_CVE, &[], "2.7.2", "2024-01-01T00:00:00Z"),
            osv(
                NEW_ADVISORY,
                &["CVE-2024-56201"],
                "3.1.5",
                "2026-11-20T00:00:00Z",
            ),
        ],
    );
    let db_digest = airlock_sign::publish_vulndb(&dbstore, db_reference, &info, &layer, &key)
        .await
        .unwrap();

    let report = agent.sync().await.unwrap();
    assert!(
        report.applied.is_empty(),
        "nothing is redeployed: {report:?}"
    );
    assert_eq!(std::fs::read(&applied_file).unwrap(), applied);
    let status = agent.target().read_status("staging");
    let vulndb = status
        .vulndb
        .clone()
        .expect("the database is in the status");
    assert_eq!(vulndb.digest.as_deref(), Some(db_digest.as_str()));
    assert_eq!(
        vulndb.newest_modified.as_deref(),
        Some("2026-11-20T00:00:00Z")
    );
    let found = &status.apps[APP].new_findings;
    assert_eq!(
        found.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        vec!["CVE-2024-56201"],
        "only what the release's own report did not list: {found:?}"
    );
    assert_eq!(found[0].package, "jinja2");
    assert_eq!(found[0].installed, "2.7.1");
    assert_eq!(found[0].fixed.as_deref(), Some("3.1.5"));
    assert_eq!(found[0].sequence, 1);
    let text = metrics.render();
    assert!(
        text.contains(&format!(
            "airlock_agent_findings{{env=\"staging\",app=\"hello\",severity=\"{}\"}} 1\n",
            found[0].severity
        )),
        "{text}"
    );

    // `airlock-agent status` shows the database and the new finding.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_airlock-agent"))
        .args([
            "status",
            "--target",
            &format!("directory:{}", deploy.display()),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "NEW hello in staging (release 1): {} CVE-2024-56201 jinja2 2.7.1, fixed in 3.1.5",
            found[0].severity
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("vulnerability database of staging: {db_digest}")),
        "{text}"
    );

    // A restarted agent (nothing cached) verifies the running release once and reports the same.
    let restarted_metrics = Arc::new(Metrics::default());
    let mut restarted = Agent::new(cfg, restarted_metrics.clone()).unwrap();
    let report = restarted.sync().await.unwrap();
    assert!(report.applied.is_empty(), "{report:?}");
    assert!(
        restarted_metrics
            .render()
            .contains("airlock_agent_findings{env=\"staging\",app=\"hello\""),
        "{}",
        restarted_metrics.render()
    );

    // A database signed by another key is refused, naming why; the verified one stays in use.
    let stranger = SigningKey::generate();
    let (layer2, info2) = database(
        &dir.path().join("db2"),
        &[osv(
            "GHSA-xxxx-xxxx-xxxx",
            &[],
            "9.9",
            "2026-11-22T00:00:00Z",
        )],
    );
    airlock_sign::publish_vulndb(&dbstore, db_reference, &info2, &layer2, &stranger)
        .await
        .unwrap();
    agent.sync().await.unwrap();
    let status = agent.target().read_status("staging");
    let vulndb = status.vulndb.clone().unwrap();
    let error = vulndb
        .last_error
        .clone()
        .expect("the refusal is in the status");
    assert!(error.contains("refused"), "{error}");
    assert_eq!(vulndb.digest.as_deref(), Some(db_digest.as_str()));
    assert_eq!(status.apps[APP].new_findings.len(), 1);
    assert!(
        metrics
            .render()
            .contains("airlock_agent_vulndb_refused_total{env=\"staging\"} 1\n")
    );

    // An unsigned database (a manifest pushed without a signature) is refused too.
    let current = dbstore.get_manifest("vulndb").await.unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(&current.bytes).unwrap();
    manifest["annotations"]["org.opencontainers.image.created"] = json!("2026-11-23T11:00:00Z");
    let bytes = serde_json::to_vec(&manifest).unwrap();
    dbstore
        .put_manifest(&bytes, media_type::OCI_MANIFEST, Some("vulndb"))
        .await
        .unwrap();
    agent.sync().await.unwrap();
    let vulndb = agent.target().read_status("staging").vulndb.unwrap();
    assert!(
        vulndb
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains(&Digest::of(&bytes).to_string())),
        "{vulndb:?}"
    );
    assert_eq!(vulndb.digest.as_deref(), Some(db_digest.as_str()));
}
