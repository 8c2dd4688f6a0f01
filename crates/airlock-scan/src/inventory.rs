//! Turning a sparse root filesystem into an [`Inventory`]: which files say what is installed.

use crate::found::Found;
use crate::package::{Ecosystem, Inventory, OsRelease, Package, purl};
use crate::tree::{FileTree, Kind, Node, Resolved};

/// Most packages in one inventory.
pub const MAX_PACKAGES: usize = 500_000;

/// The content of one interesting file, or why it could not be read.
enum Content<'a> {
    Bytes(std::borrow::Cow<'a, [u8]>, Option<String>),
    Skip(String),
    /// A symlink to a file that is itself inventoried: reporting it twice would double-count.
    Duplicate,
}

/// Reads the file at `path` (resolving symlinks inside the root).
fn content<'a>(tree: &'a FileTree, path: &str, kind: Kind) -> Content<'a> {
    let shown = format!("/{path}");
    let is_link = matches!(tree.nodes.get(path), Some(Node::Symlink { .. }));
    match tree.resolve(path) {
        Resolved::Loop => Content::Skip(format!(
            "{shown}: symlink loop (more than {} links)",
            crate::tree::MAX_SYMLINK_HOPS
        )),
        Resolved::File(resolved, _) if is_link && Kind::of(&resolved) == Some(kind) => {
            Content::Duplicate
        }
        Resolved::File(_, Node::File { data, layer }) => {
            Content::Bytes(std::borrow::Cow::Borrowed(data), layer.clone())
        }
        Resolved::File(_, Node::TooLarge { size, .. }) => Content::Skip(format!(
            "{shown}: {size} bytes, over the limit of {} for this kind of file",
            kind.max_size()
        )),
        Resolved::File(_, Node::Symlink { .. } | Node::Found { .. }) => {
            Content::Skip(format!("{shown}: unresolvable symlink"))
        }
        Resolved::Missing(resolved) => match tree.read_unkept(&resolved, kind.max_size()) {
            Some(Ok(data)) => Content::Bytes(std::borrow::Cow::Owned(data), None),
            Some(Err(e)) => Content::Skip(format!("{shown}: {e}")),
            None if is_link => Content::Skip(format!("{shown}: dangling symlink to /{resolved}")),
            None => Content::Skip(format!("{shown}: not a regular file")),
        },
    }
}

/// Builds the inventory from a sparse tree.
pub(crate) fn from_tree(tree: &FileTree, mut warnings: Vec<String>) -> Inventory {
    let os = read_os(tree, &mut warnings);
    let distro = os.as_ref().and_then(|o| o.version_id.clone());
    let mut packages: Vec<Package> = Vec::new();
    let mut from_files: Vec<(Ecosystem, Vec<Found>, Option<String>, String)> = Vec::new();
    for (path, node) in tree.nodes.iter() {
        if let Node::Found { found, layer } = node {
            // A program or archive: one group per ecosystem it records.
            let mut by_eco: std::collections::BTreeMap<Ecosystem, Vec<Found>> = Default::default();
            for (e, f) in found {
                by_eco.entry(*e).or_default().push(f.clone());
            }
            for (e, f) in by_eco {
                from_files.push((e, f, layer.clone(), format!("/{path}")));
            }
            continue;
        }
        let Some(kind) = Kind::of(path) else { continue };
        if kind == Kind::OsRelease {
            continue;
        }
        let (data, layer) = match content(tree, path, kind) {
            Content::Bytes(d, l) => (d, l),
            Content::Skip(w) => {
                warnings.push(w);
                continue;
            }
            Content::Duplicate => continue,
        };
        let shown = format!("/{path}");
        let (ecosystem, found): (Ecosystem, Vec<Found>) = match kind {
            Kind::DpkgStatus | Kind::DpkgStatusD => match std::str::from_utf8(&data) {
                Ok(text) => {
                    let (f, problems) = crate::dpkg::parse(text, kind == Kind::DpkgStatus);
                    warnings.extend(problems.into_iter().map(|p| format!("{shown}: {p}")));
                    (Ecosystem::Debian, f)
                }
                Err(e) => {
                    warnings.push(format!("{shown}: not UTF-8 text ({e})"));
                    continue;
                }
            },
            Kind::ApkInstalled => match std::str::from_utf8(&data) {
                Ok(text) => {
                    let (f, problems) = crate::apk::parse(text);
                    warnings.extend(problems.into_iter().map(|p| format!("{shown}: {p}")));
                    (Ecosystem::Alpine, f)
                }
                Err(e) => {
                    warnings.push(format!("{shown}: not UTF-8 text ({e})"));
                    continue;
                }
            },
            Kind::PythonMetadata => match crate::python::parse(&data) {
                Ok(f) => (Ecosystem::PyPI, vec![f]),
                Err(e) => {
                    warnings.push(format!("{shown}: {e}"));
                    continue;
                }
            },
            Kind::CargoLock => match crate::cargo_lock::parse(&data) {
                Ok(f) => (Ecosystem::CratesIo, f),
                Err(e) => {
                    warnings.push(format!("{shown}: {e}"));
                    continue;
                }
            },
            Kind::NpmPackageJson => match crate::npm::parse(&data) {
                Ok(f) => (Ecosystem::Npm, vec![f]),
                Err(e) => {
                    warnings.push(format!("{shown}: {e}"));
                    continue;
                }
            },
            Kind::NpmManifest => match crate::npm::parse_manifest(&data) {
                Ok(Some(f)) => (Ecosystem::Npm, vec![f]),
                Ok(None) => continue,
                Err(e) => {
                    warnings.push(format!("{shown}: {e}"));
                    continue;
                }
            },
            Kind::NpmLock => match crate::npm::parse_lock(&data) {
                Ok(f) => (Ecosystem::Npm, f),
                Err(e) => {
                    warnings.push(format!("{shown}: {e}"));
                    continue;
                }
            },
            Kind::OsRelease => continue,
        };
        from_files.push((ecosystem, found, layer, shown));
    }
    for (ecosystem, found, layer, shown) in from_files {
        let os_for_purl = os
            .as_ref()
            .filter(|_| matches!(ecosystem, Ecosystem::Debian | Ecosystem::Alpine));
        let pkg_distro = match (ecosystem, os.as_ref().map(|o| o.id.as_str())) {
            (Ecosystem::Debian, Some("debian")) | (Ecosystem::Alpine, Some("alpine")) => {
                distro.clone()
            }
            _ => None,
        };
        for f in found {
            if packages.len() >= MAX_PACKAGES {
                warnings.push(format!(
                    "{shown}: more than {MAX_PACKAGES} packages in the image; the rest were ignored"
                ));
                break;
            }
            packages.push(Package {
                purl: purl(
                    ecosystem,
                    &f.name,
                    &f.version,
                    os_for_purl,
                    f.arch.as_deref(),
                ),
                name: f.name,
                version: f.version,
                ecosystem,
                distro: pkg_distro.clone(),
                layer: layer.clone(),
                path: shown.clone(),
                source: f.source,
                local: f.local,
            });
        }
    }
    if let Some(o) = &os
        && packages.iter().any(|p| p.ecosystem == Ecosystem::Debian)
        && (o.id != "debian" || o.version_id.is_none())
    {
        warnings.push(format!(
            "dpkg packages on {} {} are not matched against Debian advisories (no Debian release)",
            o.id,
            o.version_id.as_deref().unwrap_or("")
        ));
    }
    packages.sort_by(|a, b| {
        (a.ecosystem, &a.name, &a.version, &a.path).cmp(&(
            b.ecosystem,
            &b.name,
            &b.version,
            &b.path,
        ))
    });
    packages.dedup_by(|a, b| {
        a.ecosystem == b.ecosystem && a.name == b.name && a.version == b.version && a.path == b.path
    });
    Inventory {
        os,
        packages,
        warnings,
    }
}

/// Reads `/etc/os-release`, falling back to `/usr/lib/os-release` as systemd specifies.
fn read_os(tree: &FileTree, warnings: &mut Vec<String>) -> Option<OsRelease> {
    for path in ["etc/os-release", "usr/lib/os-release"] {
        if !tree.nodes.contains_key(path) {
            continue;
        }
        match tree.resolve(path) {
            Resolved::Loop => warnings.push(format!("/{path}: symlink loop")),
            Resolved::File(_, Node::File { data, .. }) => match std::str::from_utf8(data) {
                Ok(text) => match crate::os_release::parse(text) {
                    Some(os) => return Some(os),
                    None => warnings.push(format!("/{path}: no ID")),
                },
                Err(e) => warnings.push(format!("/{path}: not UTF-8 text ({e})")),
            },
            Resolved::File(_, _) => warnings.push(format!("/{path}: too large")),
            Resolved::Missing(resolved) => {
                match tree.read_unkept(&resolved, Kind::OsRelease.max_size()) {
                    Some(Ok(data)) => {
                        if let Some(os) = std::str::from_utf8(&data)
                            .ok()
                            .and_then(crate::os_release::parse)
                        {
                            return Some(os);
                        }
                        warnings.push(format!("/{path}: unreadable os-release"));
                    }
                    Some(Err(e)) => warnings.push(format!("/{path}: {e}")),
                    None => {}
                }
            }
        }
    }
    None
}
