//! Rescans of what runs against the newest vulnerability database the gate published.
//!
//! The gate publishes its database as a signed artifact at `<boundary>/airlock.vulndb:vulndb`
//! (`airlock_sign::vulndb`). Every cycle the agent reads that tag (one request while it does not change);
//! a new database is verified with the trusted keys before its layer is read, then unpacked into a
//! private temporary directory. The SBOM of each running release (its CycloneDX attestation, verified with
//! the release) is matched against it with `airlock-scan`'s matcher, and the findings the release's own
//! vulnerability report did not list are reported per app and environment, in `status` and as the
//! `airlock_agent_findings` metric. Nothing is redeployed: what to do about a finding is a human's call.
//!
//! A database that does not verify (unsigned, wrong key, wrong repository, not a database, older than
//! the one held) is refused with the reason, and the one verified before is kept.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use airlock_oci::{Digest, Store};
use airlock_scan::{Finding, VulnDb, inventory_from_cyclonedx};
use airlock_sign::predicates::{CYCLONEDX, VULN};
use airlock_sign::{TrustSet, VerifiedRelease};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The database the agent holds, as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VulnDbStatus {
    /// Digest of the verified database artifact in use.
    #[serde(default)]
    pub digest: Option<String>,
    /// Its newest OSV `modified` time: how fresh the data is.
    #[serde(default)]
    pub newest_modified: Option<String>,
    /// Key id that signed it.
    #[serde(default)]
    pub signed_by: Option<String>,
    /// Why the last database read was refused or failed (the previous database is kept).
    #[serde(default)]
    pub last_error: Option<String>,
}

/// A vulnerability found by a rescan that the release's own report did not list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewFinding {
    /// Advisory id (a CVE when there is one).
    pub id: String,
    /// Package as installed.
    pub package: String,
    /// OSV ecosystem (`PyPI`, `Debian:12`).
    pub ecosystem: String,
    /// Installed version.
    pub installed: String,
    /// Lowest fixed version, when known.
    #[serde(default)]
    pub fixed: Option<String>,
    /// `critical`, `high`, `medium`, `low` or `unknown`.
    pub severity: String,
    /// Release sequence it was found in.
    pub sequence: u64,
}

/// The rescanner of one environment: the database held and what each app's rescan found.
#[derive(Default)]
pub struct Rescanner {
    db: Option<(VulnDb, tempfile::TempDir)>,
    status: VulnDbStatus,
    /// app → (release digest, database digest) last rescanned, so nothing is matched twice.
    scanned: HashMap<String, (Digest, String)>,
    findings: BTreeMap<String, Vec<NewFinding>>,
}

impl std::fmt::Debug for Rescanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rescanner")
            .field("status", &self.status)
            .field("apps", &self.findings.len())
            .finish_non_exhaustive()
    }
}

impl Rescanner {
    /// Whether a verified database is held.
    pub fn has_db(&self) -> bool {
        self.db.is_some()
    }

    /// What `status` shows about the database.
    pub fn status(&self) -> &VulnDbStatus {
        &self.status
    }

    /// The new findings of `app` from its last rescan (empty when none or not rescanned).
    pub fn findings(&self, app: &str) -> &[NewFinding] {
        self.findings.get(app).map_or(&[], Vec::as_slice)
    }

    /// Every app rescanned and its new findings.
    pub fn all_findings(&self) -> &BTreeMap<String, Vec<NewFinding>> {
        &self.findings
    }

    /// Reads the database tag in `store` (signed for `docker_reference`) and, when it changed, verifies
    /// and installs it. A refusal or failure is kept in the status (and logged); the previous database
    /// stays in use. Returns whether a new database was installed.
    pub async fn refresh(
        &mut self,
        store: &dyn Store,
        docker_reference: &str,
        trust: &TrustSet,
    ) -> bool {
        let known = self
            .status
            .digest
            .as_deref()
            .and_then(|d| Digest::parse(d).ok());
        let min_modified = self.status.newest_modified.clone();
        let read = airlock_sign::read_vulndb(
            store,
            docker_reference,
            trust,
            known.as_ref(),
            min_modified.as_deref(),
        )
        .await;
        let verified = match read {
            Ok(None) => {
                self.status.last_error = None;
                return false;
            }
            Ok(Some(v)) => v,
            Err(e) => {
                let reason = format!("vulnerability database refused: {e}");
                if self.status.last_error.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(reference = docker_reference, error = %e, "vulnerability database refused; keeping the previous one");
                }
                self.status.last_error = Some(reason);
                return false;
            }
        };
        let what = format!("{docker_reference}@{}", verified.digest);
        let installed = tempfile::Builder::new()
            .prefix("airlock-agent-vulndb-")
            .tempdir()
            .map_err(|e| format!("cannot create a directory for {what}: {e}"))
            .and_then(|dir| {
                airlock_sign::unpack_vulndb(&what, &verified.layer, dir.path())
                    .map_err(|e| e.to_string())?;
                let db = VulnDb::open(dir.path()).map_err(|e| e.to_string())?;
                Ok((db, dir))
            });
        match installed {
            Ok(db) => {
                tracing::info!(database = %what, newest = ?verified.info.newest_modified, "vulnerability database verified");
                self.db = Some(db);
                self.status = VulnDbStatus {
                    digest: Some(verified.digest.to_string()),
                    newest_modified: verified.info.newest_modified.clone(),
                    signed_by: Some(verified.signed_by.to_string()),
                    last_error: None,
                };
                true
            }
            Err(e) => {
                tracing::warn!(database = %what, error = %e, "cannot install the vulnerability database");
                self.status.last_error = Some(format!("cannot install {what}: {e}"));
                false
            }
        }
    }

    /// Rescans `release` (running for `app`) against the database held, unless that pair was rescanned
    /// already. `None` when there is no database yet or nothing changed; otherwise the new findings.
    pub fn rescan(
        &mut self,
        app: &str,
        release: &VerifiedRelease,
    ) -> Option<Result<&[NewFinding], String>> {
        let (db, _) = self.db.as_ref()?;
        let db_digest = self.status.digest.clone().unwrap_or_default();
        let key = (release.digest.clone(), db_digest);
        if self.scanned.get(app) == Some(&key) {
            return None;
        }
        let result = rescan_release(release, db);
        self.scanned.insert(app.to_string(), key);
        match result {
            Ok(found) => {
                if !found.is_empty() {
                    tracing::warn!(
                        app,
                        sequence = release.config.sequence,
                        new = found.len(),
                        "rescan found vulnerabilities the release was not scanned for"
                    );
                }
                self.findings.insert(app.to_string(), found);
                Some(Ok(self.findings(app)))
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// Forgets `app` (no longer running here).
    pub fn forget(&mut self, app: &str) {
        self.scanned.remove(app);
        self.findings.remove(app);
    }
}

/// Matches the release's SBOM against `db` and keeps what its vulnerability report did not list.
fn rescan_release(release: &VerifiedRelease, db: &VulnDb) -> Result<Vec<NewFinding>, String> {
    let predicate = |ty: &str| {
        release
            .attestations
            .iter()
            .find(|a| a.predicate_type == ty)
            .map(|a| &a.statement["predicate"])
    };
    let sbom = predicate(CYCLONEDX).ok_or_else(|| {
        format!(
            "release {} has no CycloneDX attestation to rescan",
            release.config.sequence
        )
    })?;
    let inventory = inventory_from_cyclonedx(sbom);
    let findings = airlock_scan::match_inventory(&inventory, db)
        .map_err(|e| format!("rescan of release {}: {e}", release.config.sequence))?;
    let reported = predicate(VULN)
        .map(|p| reported_ids(&p["scanner"]["result"]))
        .unwrap_or_default();
    Ok(new_findings(findings, &reported, release.config.sequence))
}

/// (package, advisory id) pairs a vulnerability report lists, aliases included.
fn reported_ids(result: &Value) -> BTreeSet<(String, String)> {
    let mut ids = BTreeSet::new();
    for f in result.as_array().into_iter().flatten() {
        let package = f["package"].as_str().unwrap_or_default().to_string();
        let all = std::iter::once(&f["id"]).chain(f["aliases"].as_array().into_iter().flatten());
        for id in all.filter_map(Value::as_str) {
            ids.insert((package.clone(), id.to_string()));
        }
    }
    ids
}

/// The findings none of whose ids the report lists for the same package.
fn new_findings(
    findings: Vec<Finding>,
    reported: &BTreeSet<(String, String)>,
    sequence: u64,
) -> Vec<NewFinding> {
    findings
        .into_iter()
        .filter(|f| {
            !std::iter::once(&f.id)
                .chain(&f.aliases)
                .any(|id| reported.contains(&(f.package.clone(), id.clone())))
        })
        .map(|f| NewFinding {
            severity: serde_json::to_value(f.severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_ascii_lowercase))
                .unwrap_or_else(|| "unknown".to_string()),
            id: f.id,
            package: f.package,
            ecosystem: f.ecosystem,
            installed: f.installed,
            fixed: f.fixed,
            sequence,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_the_report_listed_under_any_alias_are_not_new() {
        let reported = reported_ids(&serde_json::json!([
            {"id": "CVE-2024-1", "aliases": ["GHSA-aaaa"], "package": "jinja2"}
        ]));
        let finding = |id: &str, aliases: &[&str]| Finding {
            id: id.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            package: "jinja2".into(),
            ecosystem: "PyPI".into(),
            installed: "2.7.1".into(),
            fixed: Some("3.1.4".into()),
            severity: airlock_scan::Severity::High,
            cvss_score: None,
            summary: String::new(),
            layer: None,
            path: String::new(),
            purl: String::new(),
        };
        let new = new_findings(
            vec![
                finding("CVE-2024-1", &[]),
                finding("PYSEC-1", &["GHSA-aaaa"]),
                finding("CVE-2025-9", &[]),
            ],
            &reported,
            7,
        );
        assert_eq!(new.len(), 1, "{new:?}");
        assert_eq!(new[0].id, "CVE-2025-9");
        assert_eq!(new[0].severity, "high");
        assert_eq!(new[0].sequence, 7);
    }
}
