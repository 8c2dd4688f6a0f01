//! Matching an inventory against OSV records with each ecosystem's own version order, merging
//! records that are aliases of each other into one finding.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::db::{VulnDb, canonical_name};
use crate::error::ScanError;
use crate::osv::{OsvAffected, OsvRecord};
use crate::package::{Inventory, Package};
use crate::version::{Parsed, Scheme, compare, parse};

/// How bad a finding is, from the CVSS base score or the database's own rating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// No score or rating known.
    Unknown,
    /// CVSS 0.0–3.9.
    Low,
    /// CVSS 4.0–6.9 (GitHub's "moderate").
    Medium,
    /// CVSS 7.0–8.9.
    High,
    /// CVSS 9.0–10.0.
    Critical,
}

impl Severity {
    /// The rating of a CVSS base score.
    pub fn from_score(score: f64) -> Severity {
        if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    /// Reads a textual rating (`HIGH`, `moderate`, `critical`, ...).
    pub fn from_label(label: &str) -> Option<Severity> {
        match label.trim().to_ascii_lowercase().as_str() {
            "critical" => Some(Severity::Critical),
            "high" | "important" => Some(Severity::High),
            "medium" | "moderate" => Some(Severity::Medium),
            "low" | "negligible" | "unimportant" => Some(Severity::Low),
            _ => None,
        }
    }
}

/// One vulnerability in one installed package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The preferred id: a CVE id when any record has one, else the (first) record id.
    pub id: String,
    /// Every other id of the merged records and their aliases, sorted.
    pub aliases: Vec<String>,
    /// Package name as installed.
    pub package: String,
    /// OSV ecosystem it was matched in (`PyPI`, `Debian:12`).
    pub ecosystem: String,
    /// Installed version.
    pub installed: String,
    /// Lowest fixed version above the installed one (the highest such among merged records).
    pub fixed: Option<String>,
    /// Severity (the highest among merged records).
    pub severity: Severity,
    /// CVSS v3 base score, when a vector was given.
    pub cvss_score: Option<f64>,
    /// Summary of the vulnerability.
    pub summary: String,
    /// Layer that introduced the package.
    pub layer: Option<String>,
    /// File the package was found in.
    pub path: String,
    /// Package URL.
    pub purl: String,
}

/// What one record says about one installed version.
struct Hit<'a> {
    record: &'a OsvRecord,
    fixed: Option<String>,
}

/// Matches every package of an inventory. Withdrawn records never match; records that are
/// aliases of each other (sharing any id) become one finding. Sorted by severity (worst first),
/// then package and id.
pub fn match_inventory(inv: &Inventory, db: &VulnDb) -> Result<Vec<Finding>, ScanError> {
    let mut findings = Vec::new();
    // Each package's records, read and prepared once per scan: a record's version lists are parsed
    // once, not once per installed copy (PyPI records list hundreds of versions).
    let mut cache: BTreeMap<(String, String), Vec<PreparedRecord>> = BTreeMap::new();
    for pkg in inv.packages.iter().filter(|p| !p.local) {
        let (eco, name, version) = pkg.match_key();
        let key = (eco.clone(), canonical_name(&eco, &name));
        let scheme = Scheme::for_ecosystem(&eco);
        if !cache.contains_key(&key) {
            let records = db.lookup(&key.0, &key.1)?;
            cache.insert(key.clone(), prepare(records, &key, scheme));
        }
        let records = &cache[&key];
        let installed = parse(scheme, &version);
        let installed_semver = if scheme == Scheme::Semver {
            installed.clone()
        } else {
            parse(Scheme::Semver, &version)
        };
        let hits: Vec<Hit<'_>> = records
            .iter()
            .filter_map(|r| {
                let mut affected = false;
                let mut fixes: Vec<(Parsed, String)> = Vec::new();
                for a in &r.affected {
                    let (hit, fix) =
                        affects(a, &version, installed.as_ref(), installed_semver.as_ref());
                    affected |= hit;
                    fixes.extend(fix);
                }
                affected.then(|| Hit {
                    record: &r.record,
                    fixed: lowest(fixes),
                })
            })
            .collect();
        findings.extend(merge(pkg, &eco, hits, scheme));
    }
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.package.cmp(&b.package))
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.path.cmp(&b.path))
    });
    Ok(findings)
}

/// A record with the affected entries that name one package, versions parsed.
struct PreparedRecord {
    record: OsvRecord,
    affected: Vec<PreparedAffected>,
}

/// One affected entry: explicit versions (raw, parsed) and ranges with sorted, parsed events.
struct PreparedAffected {
    versions: Vec<(String, Option<Parsed>)>,
    ranges: Vec<PreparedRange>,
}

/// A range whose events all parsed: (version, None for `introduced: 0`), kind, raw version.
struct PreparedRange {
    semver: bool,
    events: Vec<(Option<Parsed>, &'static str, String)>,
}

/// Drops withdrawn records and entries for other packages, and parses every version once.
fn prepare(records: Vec<OsvRecord>, key: &(String, String), scheme: Scheme) -> Vec<PreparedRecord> {
    let (eco, name) = key;
    records
        .into_iter()
        .filter(|r| r.withdrawn.is_none())
        .map(|record| {
            let affected = record
                .affected
                .iter()
                .filter(|a| {
                    a.package.ecosystem == *eco && canonical_name(eco, &a.package.name) == *name
                })
                .map(|a| prepare_affected(a, scheme))
                .collect();
            PreparedRecord { record, affected }
        })
        .filter(|r| !r.affected.is_empty())
        .collect()
}

fn prepare_affected(a: &OsvAffected, scheme: Scheme) -> PreparedAffected {
    let versions = a
        .versions
        .iter()
        .map(|v| (v.clone(), parse(scheme, v)))
        .collect();
    let mut ranges = Vec::new();
    for range in a
        .ranges
        .iter()
        .filter(|r| r.kind == "ECOSYSTEM" || r.kind == "SEMVER")
    {
        let semver = range.kind == "SEMVER";
        let range_scheme = if semver { Scheme::Semver } else { scheme };
        let mut events: Vec<(Option<Parsed>, &'static str, String)> = Vec::new();
        let mut broken = false;
        for e in &range.events {
            let (kind, v) = if let Some(v) = &e.introduced {
                ("introduced", v)
            } else if let Some(v) = &e.fixed {
                ("fixed", v)
            } else if let Some(v) = &e.last_affected {
                ("last_affected", v)
            } else {
                continue; // limit: only meaningful for GIT ranges
            };
            if kind == "introduced" && v == "0" {
                events.push((None, kind, v.clone()));
                continue;
            }
            match parse(range_scheme, v) {
                Some(p) => events.push((Some(p), kind, v.clone())),
                None => broken = true,
            }
        }
        if broken {
            tracing::debug!(ecosystem = %a.package.ecosystem, package = %a.package.name, "range with an unparsable version skipped");
            continue;
        }
        events.sort_by(|x, y| match (&x.0, &y.0) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(p), Some(q)) => compare(p, q).unwrap_or(Ordering::Equal),
        });
        ranges.push(PreparedRange { semver, events });
    }
    PreparedAffected { versions, ranges }
}

fn lowest(mut fixes: Vec<(Parsed, String)>) -> Option<String> {
    fixes.sort_by(|a, b| compare(&a.0, &b.0).unwrap_or(Ordering::Equal));
    fixes.into_iter().next().map(|(_, s)| s)
}

/// Whether an affected entry covers the installed version, and the fixed versions above it.
/// `installed` is parsed in the ecosystem's scheme, `installed_semver` as SemVer (for SEMVER ranges).
fn affects(
    a: &PreparedAffected,
    raw: &str,
    installed: Option<&Parsed>,
    installed_semver: Option<&Parsed>,
) -> (bool, Vec<(Parsed, String)>) {
    let listed = a.versions.iter().any(|(v, p)| {
        v == raw
            || matches!((installed, p), (Some(i), Some(p)) if compare(i, p) == Some(Ordering::Equal))
    });
    let mut hit = listed;
    let mut fixes = Vec::new();
    if installed.is_none() {
        return (hit, fixes);
    }
    for range in &a.ranges {
        let inst = if range.semver {
            installed_semver
        } else {
            installed
        };
        let Some(inst) = inst else { continue };
        let mut vulnerable = false;
        for (v, kind, _) in &range.events {
            let cmp = v
                .as_ref()
                .map(|v| compare(inst, v).unwrap_or(Ordering::Less));
            match (*kind, cmp) {
                ("introduced", None) => vulnerable = true,
                ("introduced", Some(o)) if o != Ordering::Less => vulnerable = true,
                ("fixed", Some(o)) if o != Ordering::Less => vulnerable = false,
                ("last_affected", Some(Ordering::Greater)) => vulnerable = false,
                _ => {}
            }
        }
        if vulnerable {
            hit = true;
            for (v, kind, raw_v) in &range.events {
                if *kind == "fixed"
                    && let Some(v) = v
                    && compare(v, inst) == Some(Ordering::Greater)
                {
                    fixes.push((v.clone(), raw_v.clone()));
                }
            }
        }
    }
    (hit, fixes)
}

/// Severity and CVSS score of one record for one affected entry.
fn rate(r: &OsvRecord) -> (Severity, Option<f64>) {
    let mut score: Option<f64> = None;
    let vectors = r
        .severity
        .iter()
        .chain(r.affected.iter().flat_map(|a| a.severity.iter()))
        .filter(|s| s.kind == "CVSS_V3")
        .map(|s| s.score.as_str());
    let db_vectors = r
        .affected
        .iter()
        .filter_map(|a| a.database_specific.as_ref()?.get("cvss")?.as_str());
    for v in vectors.chain(db_vectors) {
        if let Some(s) = crate::cvss::base_score(v) {
            score = Some(score.map_or(s, |m: f64| m.max(s)));
        }
    }
    if let Some(s) = score {
        return (Severity::from_score(s), Some(s));
    }
    let label = r
        .database_specific
        .as_ref()
        .and_then(|d| d.get("severity")?.as_str())
        .or_else(|| {
            r.affected
                .iter()
                .find_map(|a| a.ecosystem_specific.as_ref()?.get("severity")?.as_str())
        })
        .or_else(|| {
            r.affected
                .iter()
                .find_map(|a| a.database_specific.as_ref()?.get("severity")?.as_str())
        });
    (
        label
            .and_then(Severity::from_label)
            .unwrap_or(Severity::Unknown),
        None,
    )
}

/// Merges the hits of one package into findings: records sharing any id are one vulnerability.
fn merge(pkg: &Package, eco: &str, hits: Vec<Hit<'_>>, scheme: Scheme) -> Vec<Finding> {
    // Union-find over hits by shared ids.
    let n = hits.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    let mut owner: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, h) in hits.iter().enumerate() {
        for id in std::iter::once(&h.record.id).chain(h.record.aliases.iter()) {
            match owner.get(id.as_str()) {
                Some(&j) => {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    parent[a] = b;
                }
                None => {
                    owner.insert(id, i);
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<&Hit<'_>>> = BTreeMap::new();
    for (i, h) in hits.iter().enumerate() {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(h);
    }
    groups
        .into_values()
        .map(|mut group| {
            group.sort_by(|a, b| a.record.id.cmp(&b.record.id));
            let all: BTreeSet<&str> = group
                .iter()
                .flat_map(|h| {
                    std::iter::once(h.record.id.as_str())
                        .chain(h.record.aliases.iter().map(String::as_str))
                })
                .collect();
            let id = all
                .iter()
                .find(|i| i.starts_with("CVE-"))
                .copied()
                .unwrap_or(group[0].record.id.as_str())
                .to_string();
            let aliases = all
                .iter()
                .filter(|i| **i != id)
                .map(|s| s.to_string())
                .collect();
            let (mut severity, mut cvss_score) = (Severity::Unknown, None::<f64>);
            for h in &group {
                let (s, c) = rate(h.record);
                severity = severity.max(s);
                if let Some(c) = c {
                    cvss_score = Some(cvss_score.map_or(c, |m| m.max(c)));
                }
            }
            let mut fixed: Option<(Parsed, String)> = None;
            for f in group.iter().filter_map(|h| h.fixed.as_ref()) {
                if let Some(p) = parse(scheme, f)
                    && fixed
                        .as_ref()
                        .is_none_or(|(q, _)| compare(&p, q) == Some(Ordering::Greater))
                {
                    fixed = Some((p, f.clone()));
                }
            }
            let summary = group
                .iter()
                .find_map(|h| h.record.summary.clone().filter(|s| !s.trim().is_empty()))
                .or_else(|| {
                    group.iter().find_map(|h| {
                        let d = h.record.details.as_deref()?.trim();
                        let first = d.lines().next()?.trim();
                        (!first.is_empty()).then(|| first.chars().take(200).collect::<String>())
                    })
                })
                .unwrap_or_default();
            Finding {
                id,
                aliases,
                package: pkg.name.clone(),
                ecosystem: eco.to_string(),
                installed: pkg.version.clone(),
                fixed: fixed
                    .map(|(_, s)| s)
                    .or_else(|| group.iter().find_map(|h| h.fixed.clone())),
                severity,
                cvss_score,
                summary,
                layer: pkg.layer.clone(),
                path: pkg.path.clone(),
                purl: pkg.purl.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::{Ecosystem, purl};
    use crate::testutil::real_db;

    fn pkg(eco: Ecosystem, name: &str, version: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            ecosystem: eco,
            distro: None,
            purl: purl(eco, name, version, None, None),
            layer: None,
            path: "/test".into(),
            source: None,
            local: false,
        }
    }

    fn inv(p: Vec<Package>) -> Inventory {
        Inventory {
            os: None,
            packages: p,
            warnings: vec![],
        }
    }

    #[test]
    fn jinja2_2_7_1_has_pysec_2014_8_merged_with_its_cve_fixed_in_2_7_2() {
        let f = match_inventory(
            &inv(vec![pkg(Ecosystem::PyPI, "jinja2", "2.7.1")]),
            real_db(),
        )
        .unwrap();
        let hit = f
            .iter()
            .find(|f| f.id == "CVE-2014-1402")
            .unwrap_or_else(|| panic!("no CVE-2014-1402 in {f:#?}"));
        assert!(hit.aliases.contains(&"PYSEC-2014-8".to_string()));
        assert_eq!(hit.fixed.as_deref(), Some("2.7.2"));
        assert_eq!(hit.installed, "2.7.1");
        // One vulnerability, one finding: no other finding carries the same ids.
        assert_eq!(
            f.iter()
                .filter(|x| x.aliases.contains(&"PYSEC-2014-8".to_string()))
                .count(),
            1
        );
    }

    #[test]
    fn jinja2_3_1_4_is_not_affected_by_pysec_2014_8() {
        let f = match_inventory(
            &inv(vec![pkg(Ecosystem::PyPI, "Jinja2", "3.1.4")]),
            real_db(),
        )
        .unwrap();
        assert!(
            !f.iter()
                .any(|f| f.id == "CVE-2014-1402" || f.aliases.iter().any(|a| a == "PYSEC-2014-8"))
        );
    }

    #[test]
    fn time_0_1_45_has_rustsec_2020_0071_rated_from_its_cvss_vector() {
        let f = match_inventory(
            &inv(vec![pkg(Ecosystem::CratesIo, "time", "0.1.45")]),
            real_db(),
        )
        .unwrap();
        let hit = f
            .iter()
            .find(|f| f.id == "CVE-2020-26235")
            .unwrap_or_else(|| panic!("no RUSTSEC-2020-0071 in {f:#?}"));
        assert!(hit.aliases.contains(&"RUSTSEC-2020-0071".to_string()));
        assert_eq!(hit.fixed.as_deref(), Some("0.2.0"));
        assert_eq!(hit.cvss_score, Some(6.2));
        assert_eq!(hit.severity, Severity::Medium);
        assert_eq!(hit.purl, "pkg:cargo/time@0.1.45");
        let fixed = match_inventory(
            &inv(vec![pkg(Ecosystem::CratesIo, "time", "0.2.23")]),
            real_db(),
        )
        .unwrap();
        assert!(
            !fixed
                .iter()
                .any(|f| f.aliases.contains(&"RUSTSEC-2020-0071".to_string()))
        );
    }

    fn synthetic_db(records: &[&str]) -> (tempfile::TempDir, VulnDb) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        for (i, r) in records.iter().enumerate() {
            std::fs::write(src.join(format!("{i}.json")), r).unwrap();
        }
        let db = VulnDb::open(&dir.path().join("db")).unwrap();
        db.import(&src).unwrap();
        (dir, db)
    }

    #[test]
    fn withdrawn_records_never_match() {
        let (_d, db) = synthetic_db(&[
            r#"{"id":"W-1","modified":"2024-01-01T00:00:00Z","withdrawn":"2024-02-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]}]}"#,
        ]);
        assert!(
            match_inventory(&inv(vec![pkg(Ecosystem::Npm, "left-pad", "1.0.0")]), &db)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn records_sharing_an_alias_become_one_finding_with_the_worst_severity() {
        let (_d, db) = synthetic_db(&[
            r#"{"id":"GHSA-aaaa","modified":"2024-01-01T00:00:00Z","aliases":["CVE-2024-0001"],"database_specific":{"severity":"MODERATE"},"affected":[{"package":{"ecosystem":"npm","name":"lib"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"fixed":"1.2.0"}]}]}]}"#,
            r#"{"id":"OTHER-1","modified":"2024-01-01T00:00:00Z","aliases":["CVE-2024-0001"],"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"affected":[{"package":{"ecosystem":"npm","name":"lib"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"last_affected":"1.1.0"}]}]}]}"#,
        ]);
        let f = match_inventory(&inv(vec![pkg(Ecosystem::Npm, "lib", "1.1.0")]), &db).unwrap();
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].id, "CVE-2024-0001");
        assert_eq!(f[0].aliases, vec!["GHSA-aaaa", "OTHER-1"]);
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(f[0].fixed.as_deref(), Some("1.2.0"));
        // last_affected 1.1.0: 1.1.1 is only hit by the first record.
        let f = match_inventory(&inv(vec![pkg(Ecosystem::Npm, "lib", "1.1.1")]), &db).unwrap();
        assert_eq!((f.len(), f[0].severity), (1, Severity::Medium));
    }

    #[test]
    fn debian_packages_match_by_source_package_and_dpkg_order() {
        let (_d, db) = synthetic_db(&[
            r#"{"id":"DSA-1","modified":"2024-01-01T00:00:00Z","aliases":["CVE-2024-9999"],"affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.15-1~deb12u1"}]}]}]}"#,
        ]);
        let mut p = pkg(Ecosystem::Debian, "libssl3", "3.0.14-1~deb12u2");
        p.distro = Some("12".into());
        p.source = Some(crate::package::SourcePackage {
            name: "openssl".into(),
            version: None,
        });
        let f = match_inventory(&inv(vec![p.clone()]), &db).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].package.as_str(), f[0].fixed.as_deref()),
            ("libssl3", Some("3.0.15-1~deb12u1"))
        );
        p.version = "3.0.15-1~deb12u1".into();
        assert!(match_inventory(&inv(vec![p]), &db).unwrap().is_empty());
    }
}
