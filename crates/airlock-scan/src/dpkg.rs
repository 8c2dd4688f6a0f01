//! The dpkg database (`/var/lib/dpkg/status`, and `status.d/*` in distroless images).

use crate::control::{field, stanzas};
use crate::found::Found;
use crate::package::SourcePackage;

/// Parses a dpkg status file. Only packages whose `Status` is `install ok installed` are
/// returned (half-removed or config-only packages are not installed software). Files in
/// `status.d` have no `Status` field and count as installed (`require_status = false`).
pub(crate) fn parse(text: &str, require_status: bool) -> (Vec<Found>, Vec<String>) {
    let (blocks, truncated) = stanzas(text);
    let mut out = Vec::new();
    let mut problems = Vec::new();
    if truncated {
        problems.push(format!(
            "more than {} stanzas; the rest were ignored",
            crate::control::MAX_STANZAS
        ));
    }
    for s in blocks {
        let Some(name) = field(&s, "Package") else {
            continue;
        };
        let status = field(&s, "Status");
        let installed = match status {
            Some(st) => st.split_whitespace().collect::<Vec<_>>() == ["install", "ok", "installed"],
            None => !require_status,
        };
        if !installed {
            continue;
        }
        let Some(version) = field(&s, "Version") else {
            problems.push(format!("package {name} has no Version"));
            continue;
        };
        let source = field(&s, "Source").and_then(|src| {
            let mut parts = src.splitn(2, ' ');
            let sname = parts.next()?.trim();
            if sname.is_empty() {
                return None;
            }
            let sversion = parts
                .next()
                .map(|v| {
                    v.trim()
                        .trim_start_matches('(')
                        .trim_end_matches(')')
                        .trim()
                        .to_string()
                })
                .filter(|v| !v.is_empty());
            Some(SourcePackage {
                name: sname.to_string(),
                version: sversion,
            })
        });
        // A package without Source: is its own source; keep matching uniform.
        let source = source.or_else(|| {
            Some(SourcePackage {
                name: name.to_string(),
                version: None,
            })
        });
        out.push(Found {
            name: name.to_string(),
            version: version.to_string(),
            arch: field(&s, "Architecture").map(str::to_string),
            source,
            local: false,
        });
    }
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 3.0.15-1~deb12u1\n\nPackage: removed\nStatus: deinstall ok config-files\nVersion: 1.0\n\nPackage: bsdutils\nStatus: install ok installed\nArchitecture: amd64\nSource: util-linux (2.38.1-5+deb12u1)\nVersion: 1:2.38.1-5+deb12u1\n";

    #[test]
    fn keeps_only_installed_packages_and_reads_source() {
        let (pkgs, problems) = parse(STATUS, true);
        assert!(problems.is_empty());
        let names: Vec<_> = pkgs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["libssl3", "bsdutils"]);
        assert_eq!(pkgs[0].source.as_ref().unwrap().name, "openssl");
        assert_eq!(pkgs[0].source.as_ref().unwrap().version, None);
        let bsd = pkgs[1].source.as_ref().unwrap();
        assert_eq!(
            (bsd.name.as_str(), bsd.version.as_deref()),
            ("util-linux", Some("2.38.1-5+deb12u1"))
        );
    }

    #[test]
    fn status_d_entries_without_status_count_as_installed() {
        let (pkgs, _) = parse(
            "Package: base-files\nVersion: 12.4\nArchitecture: amd64\n",
            false,
        );
        assert_eq!(pkgs.len(), 1);
    }
}
