//! What an inventory is made of: ecosystems, packages, the OS release, and package URLs.

use serde::{Deserialize, Serialize};

/// A package ecosystem, as OSV names it (see [`Ecosystem::osv_name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Ecosystem {
    /// Debian binary packages from the dpkg database; matched by source package.
    Debian,
    /// Alpine packages from the apk database; matched by origin package.
    Alpine,
    /// Python distributions (`*.dist-info`, `*.egg-info`).
    PyPI,
    /// Rust crates (`Cargo.lock`).
    CratesIo,
    /// npm packages (`node_modules/**/package.json`).
    Npm,
    /// Go modules.
    Go,
    /// Maven artifacts (`group:artifact`).
    Maven,
}

impl Ecosystem {
    /// The OSV ecosystem name. Distribution ecosystems take the release (`Debian:12`, `Alpine:v3.20`);
    /// without one the bare name is returned.
    pub fn osv_name(self, distro: Option<&str>) -> String {
        match (self, distro) {
            (Ecosystem::Debian, Some(d)) => format!("Debian:{d}"),
            (Ecosystem::Alpine, Some(d)) => {
                // OSV uses "Alpine:v3.20": major.minor with a leading v.
                let mut parts = d.trim_start_matches('v').split('.');
                match (parts.next(), parts.next()) {
                    (Some(a), Some(b)) => format!("Alpine:v{a}.{b}"),
                    _ => format!("Alpine:v{}", d.trim_start_matches('v')),
                }
            }
            (Ecosystem::Debian, None) => "Debian".to_string(),
            (Ecosystem::Alpine, None) => "Alpine".to_string(),
            (Ecosystem::PyPI, _) => "PyPI".to_string(),
            (Ecosystem::CratesIo, _) => "crates.io".to_string(),
            (Ecosystem::Npm, _) => "npm".to_string(),
            (Ecosystem::Go, _) => "Go".to_string(),
            (Ecosystem::Maven, _) => "Maven".to_string(),
        }
    }

    /// The inverse of [`Ecosystem::osv_name`]: the ecosystem and the distribution release, if any
    /// (`Alpine:v3.20` gives `3.20`), of an OSV ecosystem name; `None` for an ecosystem we do not scan.
    pub fn from_osv_name(osv: &str) -> Option<(Ecosystem, Option<String>)> {
        let (name, release) = match osv.split_once(':') {
            Some((n, r)) => (n, Some(r.trim_start_matches('v').to_string())),
            None => (osv, None),
        };
        let eco = match name {
            "Debian" => Ecosystem::Debian,
            "Alpine" => Ecosystem::Alpine,
            "PyPI" => Ecosystem::PyPI,
            "crates.io" => Ecosystem::CratesIo,
            "npm" => Ecosystem::Npm,
            "Go" => Ecosystem::Go,
            "Maven" => Ecosystem::Maven,
            _ => return None,
        };
        Some((eco, release))
    }

    /// The package-URL type (`pkg:<type>/...`).
    pub fn purl_type(self) -> &'static str {
        match self {
            Ecosystem::Debian => "deb",
            Ecosystem::Alpine => "apk",
            Ecosystem::PyPI => "pypi",
            Ecosystem::CratesIo => "cargo",
            Ecosystem::Npm => "npm",
            Ecosystem::Go => "golang",
            Ecosystem::Maven => "maven",
        }
    }
}

/// The source package a distribution binary package was built from (dpkg `Source:`, apk `o:`).
/// Distribution advisories name source packages, so matching uses this when present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePackage {
    /// Source package name.
    pub name: String,
    /// Source version when it differs from the binary version (dpkg `Source: name (version)`).
    pub version: Option<String>,
}

/// One installed package found in the image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Name as the ecosystem spells it (PyPI names in lower case with `_` as `-`; matching applies
    /// PEP 503 on top).
    pub name: String,
    /// Installed version, as recorded by the package manager.
    pub version: String,
    /// Ecosystem of the package.
    pub ecosystem: Ecosystem,
    /// Distribution release for OS packages (`"12"` for Debian 12, `"3.20"` for Alpine).
    pub distro: Option<String>,
    /// Package URL.
    pub purl: String,
    /// Digest of the layer that introduced the file it came from (None for a plain directory).
    pub layer: Option<String>,
    /// Absolute path (inside the image) of the file it came from.
    pub path: String,
    /// Source package for distribution packages, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourcePackage>,
    /// Built from local sources rather than taken from the ecosystem's registry (the root crate of
    /// a `cargo auditable` binary): listed in SBOMs, never matched, since an advisory for a registry
    /// package of the same name says nothing about it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
}

impl Package {
    /// The (OSV ecosystem, name, version) this package is matched under: the source package for
    /// distribution packages, the normalised name for PyPI, the name itself otherwise.
    pub fn match_key(&self) -> (String, String, String) {
        let eco = self.ecosystem.osv_name(self.distro.as_deref());
        match (&self.source, self.ecosystem) {
            (Some(src), Ecosystem::Debian | Ecosystem::Alpine) => (
                eco,
                src.name.clone(),
                src.version.clone().unwrap_or_else(|| self.version.clone()),
            ),
            (_, Ecosystem::PyPI) => (eco, normalize_pypi_name(&self.name), self.version.clone()),
            _ => (eco, self.name.clone(), self.version.clone()),
        }
    }
}

/// The operating system identified by `/etc/os-release`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRelease {
    /// `ID` (`debian`, `alpine`, `ubuntu`).
    pub id: String,
    /// `VERSION_ID` (`12`, `3.20.3`).
    pub version_id: Option<String>,
    /// `PRETTY_NAME`.
    pub pretty_name: Option<String>,
}

/// Everything found in an image or root filesystem.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// The operating system, when an os-release file was found.
    pub os: Option<OsRelease>,
    /// Installed packages, sorted by ecosystem, name, version and path.
    pub packages: Vec<Package>,
    /// Files that were skipped and why (each names the file).
    pub warnings: Vec<String>,
}

/// PEP 503 name normalisation: lower case, runs of `-`, `_` and `.` become one `-`.
pub fn normalize_pypi_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.extend(c.to_lowercase());
            in_sep = false;
        }
    }
    out
}

/// Percent-encodes a purl component, keeping only unreserved characters (and `/` when `keep_slash`).
fn purl_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds a package URL (`pkg:type/namespace/name@version?qualifiers`) for a package.
pub fn purl(
    ecosystem: Ecosystem,
    name: &str,
    version: &str,
    os: Option<&OsRelease>,
    arch: Option<&str>,
) -> String {
    let ty = ecosystem.purl_type();
    let (namespace, name) = match ecosystem {
        Ecosystem::Debian | Ecosystem::Alpine => {
            let ns = os.map(|o| o.id.clone()).unwrap_or_else(|| {
                if ecosystem == Ecosystem::Debian {
                    "debian"
                } else {
                    "alpine"
                }
                .to_string()
            });
            (Some(purl_encode(&ns, false)), purl_encode(name, false))
        }
        Ecosystem::PyPI => (
            None,
            purl_encode(&name.to_lowercase().replace('_', "-"), false),
        ),
        Ecosystem::Npm => match name.split_once('/') {
            Some((scope, n)) if scope.starts_with('@') => {
                (Some(purl_encode(scope, false)), purl_encode(n, false))
            }
            _ => (None, purl_encode(name, false)),
        },
        Ecosystem::Go => match name.rsplit_once('/') {
            Some((ns, n)) => (Some(purl_encode(ns, true)), purl_encode(n, false)),
            None => (None, purl_encode(name, false)),
        },
        Ecosystem::Maven => match name.split_once(':') {
            Some((g, a)) => (Some(purl_encode(g, false)), purl_encode(a, false)),
            None => (None, purl_encode(name, false)),
        },
        Ecosystem::CratesIo => (None, purl_encode(name, false)),
    };
    let mut out = format!("pkg:{ty}/");
    if let Some(ns) = namespace {
        out.push_str(&ns);
        out.push('/');
    }
    out.push_str(&name);
    out.push('@');
    out.push_str(&purl_encode(version, false));
    let mut qualifiers = Vec::new();
    if let Some(a) = arch.filter(|a| !a.is_empty()) {
        qualifiers.push(format!("arch={}", purl_encode(a, false)));
    }
    if matches!(ecosystem, Ecosystem::Debian | Ecosystem::Alpine)
        && let Some(o) = os
    {
        let distro = match &o.version_id {
            Some(v) => format!("{}-{}", o.id, v),
            None => o.id.clone(),
        };
        qualifiers.push(format!("distro={}", purl_encode(&distro, false)));
    }
    if !qualifiers.is_empty() {
        out.push('?');
        out.push_str(&qualifiers.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_pypi_names_per_pep_503() {
        assert_eq!(normalize_pypi_name("Jinja2"), "jinja2");
        assert_eq!(normalize_pypi_name("zope.interface"), "zope-interface");
        assert_eq!(normalize_pypi_name("Foo__Bar-.baz"), "foo-bar-baz");
    }

    #[test]
    fn debian_purl_carries_arch_and_distro_and_encodes_plus_and_epoch() {
        let os = OsRelease {
            id: "debian".into(),
            version_id: Some("12".into()),
            pretty_name: None,
        };
        assert_eq!(
            purl(
                Ecosystem::Debian,
                "libc6",
                "1:2.36-9+deb12u7",
                Some(&os),
                Some("amd64")
            ),
            "pkg:deb/debian/libc6@1%3A2.36-9%2Bdeb12u7?arch=amd64&distro=debian-12"
        );
    }

    #[test]
    fn npm_scoped_purl_encodes_the_at_sign() {
        assert_eq!(
            purl(Ecosystem::Npm, "@babel/core", "7.0.0", None, None),
            "pkg:npm/%40babel/core@7.0.0"
        );
    }

    #[test]
    fn alpine_osv_ecosystem_uses_major_minor_with_v() {
        assert_eq!(Ecosystem::Alpine.osv_name(Some("3.20.3")), "Alpine:v3.20");
        assert_eq!(Ecosystem::Debian.osv_name(Some("12")), "Debian:12");
    }
}
