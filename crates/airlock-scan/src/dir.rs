//! Inventory of a plain directory holding a root filesystem.

use std::path::Path;

use crate::error::ScanError;
use crate::package::Inventory;
use crate::tree::{FileTree, Kind, Node, read_limited};

/// Deepest directory nesting walked.
pub const MAX_DEPTH: usize = 64;
/// Most directory entries walked.
pub const MAX_ENTRIES: u64 = 5_000_000;

/// Inventories a root filesystem in a directory. Symlinks are never followed out of `root`: they
/// are resolved inside it, and directory symlinks are not walked (their targets are walked where
/// they really are). Unreadable, oversized or malformed files are skipped with a warning naming them.
pub fn inventory_dir(root: &Path) -> Result<Inventory, ScanError> {
    let meta = std::fs::metadata(root).map_err(|e| ScanError::io("reading", root, e))?;
    if !meta.is_dir() {
        return Err(ScanError::io(
            "inventorying",
            root,
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    let mut tree = FileTree {
        root: Some(root.to_path_buf()),
        ..FileTree::default()
    };
    let mut warnings = Vec::new();
    let mut seen = 0u64;
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .max_depth(MAX_DEPTH)
    {
        seen += 1;
        if seen > MAX_ENTRIES {
            warnings.push(format!(
                "{}: more than {MAX_ENTRIES} entries; the rest were not inventoried",
                root.display()
            ));
            break;
        }
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let at = e
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                warnings.push(format!("{at}: {e}"));
                continue;
            }
        };
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let Some(rel) = rel.to_str() else {
            warnings.push(format!(
                "{}: path is not UTF-8; skipped",
                entry.path().display()
            ));
            continue;
        };
        if rel.is_empty() {
            continue;
        }
        let ft = entry.file_type();
        if ft.is_symlink() {
            match std::fs::read_link(entry.path()) {
                Ok(target) => match target.to_str() {
                    Some(t) => {
                        if !tree.insert(
                            rel.to_string(),
                            Node::Symlink {
                                target: t.to_string(),
                            },
                        ) {
                            warnings.push(format!("/{rel}: too many symlinks; ignored"));
                        }
                    }
                    None => warnings.push(format!("/{rel}: symlink target is not UTF-8; ignored")),
                },
                Err(e) => warnings.push(format!("/{rel}: {e}")),
            }
            continue;
        }
        if !ft.is_file() {
            continue;
        }
        let Some(kind) = Kind::of(rel) else {
            use std::os::unix::fs::PermissionsExt;
            let mode = entry
                .metadata()
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            let Some(c) = crate::evidence::candidate(rel, mode) else {
                continue;
            };
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            let shown = format!("/{rel}");
            let found = match std::fs::File::open(entry.path()) {
                Ok(mut f) => crate::evidence::extract(c, &shown, &mut f, size, &mut warnings),
                Err(e) => {
                    warnings.push(format!("{shown}: {e}"));
                    None
                }
            };
            if let Some(found) = found
                && !tree.insert(rel.to_string(), Node::Found { found, layer: None })
            {
                warnings.push(format!("{shown}: limit of kept packages reached; skipped"));
            }
            continue;
        };
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        if size > kind.max_size() {
            tree.insert(rel.to_string(), Node::TooLarge { size });
            continue;
        }
        match read_limited(entry.path(), kind.max_size()) {
            Ok(data) => {
                if !tree.insert(rel.to_string(), Node::File { data, layer: None }) {
                    warnings.push(format!(
                        "/{rel}: total size of inventoried files over the limit; skipped"
                    ));
                }
            }
            Err(e) => warnings.push(format!("/{rel}: {e}")),
        }
    }
    Ok(crate::inventory::from_tree(&tree, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::metadata;
    use std::os::unix::fs::symlink;

    fn write(root: &Path, rel: &str, data: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    #[test]
    fn reads_every_kind_of_package_database() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(
            r,
            "usr/lib/os-release",
            b"ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        );
        std::fs::create_dir_all(r.join("etc")).unwrap();
        symlink("../usr/lib/os-release", r.join("etc/os-release")).unwrap();
        write(
            r,
            "var/lib/dpkg/status",
            b"Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 3.0.15-1~deb12u1\n",
        );
        write(
            r,
            "var/lib/dpkg/status.d/tzdata",
            b"Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n",
        );
        write(
            r,
            "usr/lib/python3/dist-packages/Jinja2-2.7.1.dist-info/METADATA",
            &metadata("Jinja2", "2.7.1"),
        );
        write(
            r,
            "usr/lib/python3/dist-packages/six-1.16.0.egg-info",
            &metadata("six", "1.16.0"),
        );
        write(
            r,
            "app/node_modules/@babel/core/package.json",
            br#"{"name":"@babel/core","version":"7.0.0"}"#,
        );
        write(
            r,
            "app/node_modules/lodash/package.json",
            br#"{"name":"lodash","version":"4.17.20"}"#,
        );
        let inv = inventory_dir(r).unwrap();
        assert!(inv.warnings.is_empty(), "{:?}", inv.warnings);
        assert_eq!(
            inv.os.as_ref().unwrap().pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        let got: Vec<_> = inv
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("libssl3", "3.0.15-1~deb12u1"),
                ("tzdata", "2024a-0+deb12u1"),
                ("jinja2", "2.7.1"),
                ("six", "1.16.0"),
                ("@babel/core", "7.0.0"),
                ("lodash", "4.17.20"),
            ]
        );
        let ssl = &inv.packages[0];
        assert_eq!(
            ssl.purl,
            "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            ssl.match_key(),
            (
                "Debian:12".into(),
                "openssl".into(),
                "3.0.15-1~deb12u1".into()
            )
        );
        assert_eq!(ssl.layer, None);
    }

    #[test]
    fn hostile_metadata_huge_or_binary_is_skipped_with_a_warning_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let mut huge = metadata("big", "1.0");
        huge.resize(10 << 20, b'A');
        write(r, "site/big-1.0.dist-info/METADATA", &huge);
        write(
            r,
            "site/bin-1.0.dist-info/METADATA",
            &[0x7f, b'E', b'L', b'F', 0xff, 0x00, 0xfe, 0x80],
        );
        write(r, "site/ok-1.0.dist-info/METADATA", &metadata("ok", "1.0"));
        let inv = inventory_dir(r).unwrap();
        assert_eq!(
            inv.packages
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["ok"]
        );
        assert!(
            inv.warnings
                .iter()
                .any(|w| w.contains("/site/big-1.0.dist-info/METADATA") && w.contains("limit")),
            "{:?}",
            inv.warnings
        );
        assert!(
            inv.warnings
                .iter()
                .any(|w| w.contains("/site/bin-1.0.dist-info/METADATA") && w.contains("UTF-8")),
            "{:?}",
            inv.warnings
        );
    }

    #[test]
    fn symlink_loop_is_skipped_with_a_warning_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("site/loop-1.dist-info")).unwrap();
        symlink("METADATA.again", r.join("site/loop-1.dist-info/METADATA")).unwrap();
        symlink("METADATA", r.join("site/loop-1.dist-info/METADATA.again")).unwrap();
        // A directory loop is never walked into.
        symlink("..", r.join("site/up")).unwrap();
        let inv = inventory_dir(r).unwrap();
        assert!(inv.packages.is_empty());
        assert!(
            inv.warnings
                .iter()
                .any(|w| w.contains("/site/loop-1.dist-info/METADATA") && w.contains("loop")),
            "{:?}",
            inv.warnings
        );
    }

    #[test]
    fn absolute_symlinks_resolve_inside_the_root_not_on_the_host() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        // On the host /etc/os-release exists; inside this root it does not.
        symlink("/etc/os-release", r.join("etc/os-release")).unwrap();
        symlink("/etc/hostname", r.join("usr-lib-os-release")).unwrap();
        let inv = inventory_dir(r).unwrap();
        assert_eq!(inv.os, None);
    }

    #[test]
    fn rejects_a_root_that_is_not_a_directory() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("file");
        std::fs::write(&f, "x").unwrap();
        let err = inventory_dir(&f).unwrap_err().to_string();
        assert!(
            err.contains("file") && err.contains("not a directory"),
            "{err}"
        );
    }
}
