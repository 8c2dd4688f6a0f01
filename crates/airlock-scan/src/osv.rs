//! The parts of the OSV schema (<https://ossf.github.io/osv-schema/>) that matching and reports use.
//! Unknown fields are ignored, so newer exports still load.

use serde::{Deserialize, Serialize};

/// Longest `details` text kept per record; the rest is cut (reports link to the advisory).
pub const MAX_DETAILS: usize = 8 * 1024;

/// One OSV vulnerability record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OsvRecord {
    /// Record id (`PYSEC-2014-8`, `RUSTSEC-2020-0071`, `GHSA-...`, `CVE-...`).
    pub id: String,
    /// Last modification time (RFC 3339).
    #[serde(default)]
    pub modified: String,
    /// Publication time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// Set when the record was withdrawn; withdrawn records never match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<String>,
    /// Other ids of the same vulnerability.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// One-line summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Longer description (cut to [`MAX_DETAILS`] bytes on import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// Severity scores (`CVSS_V3`, `CVSS_V4`, ...).
    #[serde(default)]
    pub severity: Vec<OsvSeverity>,
    /// The packages and versions affected.
    #[serde(default)]
    pub affected: Vec<OsvAffected>,
    /// Links to advisories, fixes and reports.
    #[serde(default)]
    pub references: Vec<OsvReference>,
    /// Database-specific data (GitHub's `severity`, for instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_specific: Option<serde_json::Value>,
}

/// A severity score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OsvSeverity {
    /// `CVSS_V2`, `CVSS_V3`, `CVSS_V4`, `Ubuntu`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The vector or rating.
    pub score: String,
}

/// One affected package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OsvAffected {
    /// Which package.
    pub package: OsvPackage,
    /// Version ranges.
    #[serde(default)]
    pub ranges: Vec<OsvRange>,
    /// Explicitly affected versions.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Per-package severity.
    #[serde(default)]
    pub severity: Vec<OsvSeverity>,
    /// Ecosystem-specific data (Debian urgency, for instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecosystem_specific: Option<serde_json::Value>,
    /// Database-specific data (RustSec `cvss`, for instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_specific: Option<serde_json::Value>,
}

/// A package name in an ecosystem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OsvPackage {
    /// OSV ecosystem (`PyPI`, `Debian:12`).
    #[serde(default)]
    pub ecosystem: String,
    /// Package name.
    #[serde(default)]
    pub name: String,
    /// Package URL without version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
}

/// A version range given as ordered events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OsvRange {
    /// `ECOSYSTEM`, `SEMVER` or `GIT` (GIT ranges are not matched: images have no commits).
    #[serde(rename = "type")]
    pub kind: String,
    /// The events.
    #[serde(default)]
    pub events: Vec<OsvEvent>,
}

/// One event of a range; exactly one field is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OsvEvent {
    /// Versions from here on are affected (`0` means from the beginning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    /// Versions from here on are not affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// Versions after this one are not affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    /// Upper bound of the range for evaluation (mostly for GIT ranges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// A reference link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OsvReference {
    /// `ADVISORY`, `FIX`, `WEB`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The URL.
    #[serde(default)]
    pub url: String,
}

impl OsvRecord {
    /// Cuts `details` to [`MAX_DETAILS`] bytes on a character boundary.
    pub(crate) fn trim_details(&mut self) {
        if let Some(d) = &mut self.details
            && d.len() > MAX_DETAILS
        {
            let mut end = MAX_DETAILS;
            while !d.is_char_boundary(end) {
                end -= 1;
            }
            d.truncate(end);
            d.push('…');
        }
    }
}
