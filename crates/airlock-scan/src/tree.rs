//! A sparse view of a root filesystem: only the files the inventory reads, plus every symlink,
//! built from a directory or from image layers, with symlinks resolved inside the root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Most symlinks followed while resolving one path (Linux uses 40 as well).
pub const MAX_SYMLINK_HOPS: usize = 40;
/// Most symlinks remembered per tree; symlinks are tiny, but a hostile image could hold millions.
pub const MAX_SYMLINKS: usize = 500_000;
/// Most bytes of file content kept per tree.
pub const MAX_KEPT_BYTES: u64 = 1 << 30;

/// The kinds of file the inventory reads, each with its own size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `/etc/os-release`, `/usr/lib/os-release`.
    OsRelease,
    /// `/var/lib/dpkg/status`.
    DpkgStatus,
    /// `/var/lib/dpkg/status.d/*` (distroless images).
    DpkgStatusD,
    /// `/lib/apk/db/installed`.
    ApkInstalled,
    /// `*.dist-info/METADATA`, `*.egg-info/PKG-INFO` or an `*.egg-info` file.
    PythonMetadata,
    /// `Cargo.lock`.
    CargoLock,
    /// `node_modules/[@scope/]name/package.json`.
    NpmPackageJson,
    /// Any other `package.json` (an app, a bundled extension): a package when it has a name and a
    /// version, as trivy counts it; silently ignored when it has neither (build stubs).
    NpmManifest,
    /// `package-lock.json` or `npm-shrinkwrap.json` of a project (not inside `node_modules`).
    NpmLock,
}

impl Kind {
    /// Largest file of this kind that is read; larger ones are skipped with a warning.
    pub(crate) fn max_size(self) -> u64 {
        match self {
            Kind::OsRelease => 64 << 10,
            Kind::DpkgStatus | Kind::ApkInstalled => 64 << 20,
            Kind::DpkgStatusD | Kind::PythonMetadata | Kind::NpmPackageJson | Kind::NpmManifest => {
                1 << 20
            }
            Kind::CargoLock => 8 << 20,
            Kind::NpmLock => 64 << 20,
        }
    }

    /// Classifies a normalised path (no leading `/`).
    pub(crate) fn of(path: &str) -> Option<Kind> {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        match (parent, name) {
            ("etc" | "usr/lib", "os-release") => return Some(Kind::OsRelease),
            ("var/lib/dpkg", "status") => return Some(Kind::DpkgStatus),
            ("lib/apk/db", "installed") => return Some(Kind::ApkInstalled),
            ("var/lib/dpkg/status.d", n) if !n.ends_with(".md5sums") && !n.starts_with('.') => {
                return Some(Kind::DpkgStatusD);
            }
            _ => {}
        }
        let parent_name = parent.rsplit('/').next().unwrap_or(parent);
        if (name == "METADATA" && parent_name.ends_with(".dist-info"))
            || (name == "PKG-INFO" && parent_name.ends_with(".egg-info"))
            || (name.ends_with(".egg-info") && name.len() > ".egg-info".len())
        {
            return Some(Kind::PythonMetadata);
        }
        if name == "Cargo.lock" {
            return Some(Kind::CargoLock);
        }
        if (name == "package-lock.json" || name == "npm-shrinkwrap.json")
            && !parent.split('/').any(|c| c == "node_modules")
        {
            return Some(Kind::NpmLock);
        }
        if name == "package.json" {
            let mut up = parent.rsplit('/');
            let _pkg = up.next();
            match up.next() {
                Some("node_modules") => return Some(Kind::NpmPackageJson),
                Some(scope) if scope.starts_with('@') && up.next() == Some("node_modules") => {
                    return Some(Kind::NpmPackageJson);
                }
                _ => return Some(Kind::NpmManifest),
            }
        }
        None
    }
}

/// One entry of the tree.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    /// A regular file whose content was kept.
    File {
        data: Vec<u8>,
        layer: Option<String>,
    },
    /// A file of an interesting kind that was too large to keep.
    TooLarge { size: u64 },
    /// A symbolic link.
    Symlink { target: String },
    /// A program or archive reduced to the packages it records (its bytes are not kept).
    Found {
        found: Vec<(crate::package::Ecosystem, crate::found::Found)>,
        layer: Option<String>,
    },
}

/// Where resolving a path ended.
#[derive(Debug)]
pub(crate) enum Resolved<'a> {
    /// A kept file, under its resolved path.
    File(String, &'a Node),
    /// Nothing (kept) at the resolved path.
    Missing(String),
    /// More than [`MAX_SYMLINK_HOPS`] symlinks: a loop or a hostile chain.
    Loop,
}

/// The sparse root filesystem.
#[derive(Debug, Default)]
pub(crate) struct FileTree {
    /// Entries by normalised path (no leading `/`).
    pub(crate) nodes: BTreeMap<String, Node>,
    /// For a tree built from a directory: the directory, so a symlink to a file outside the
    /// interesting paths can still be read (confined to the root).
    pub(crate) root: Option<PathBuf>,
    /// Bytes of content kept so far.
    pub(crate) kept_bytes: u64,
    /// Symlinks kept so far.
    pub(crate) symlinks: usize,
}

/// Normalises a path inside an image: strips `./` and leading `/`, drops `.` and empty components.
/// Returns None when a `..` component would climb (such entries are refused).
pub(crate) fn normalize(path: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

impl FileTree {
    /// Removes `path` and everything below it.
    pub(crate) fn remove_tree(&mut self, path: &str) {
        self.remove_exact(path);
        self.remove_below(path);
    }

    /// Whether anything is kept at `path` or below it.
    pub(crate) fn touches(&self, path: &str) -> bool {
        if self.nodes.contains_key(path) {
            return true;
        }
        let prefix = format!("{path}/");
        self.nodes
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// Removes the entry at exactly `path`.
    pub(crate) fn remove_exact(&mut self, path: &str) {
        if let Some(node) = self.nodes.remove(path) {
            self.forget(&node);
        }
    }

    /// Removes everything strictly below `dir` (an opaque directory, or a directory replaced by a file).
    pub(crate) fn remove_below(&mut self, dir: &str) {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let keys: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.remove_exact(&k);
        }
    }

    fn forget(&mut self, node: &Node) {
        match node {
            Node::File { data, .. } => {
                self.kept_bytes = self.kept_bytes.saturating_sub(data.len() as u64)
            }
            Node::Symlink { .. } => self.symlinks = self.symlinks.saturating_sub(1),
            Node::Found { found, .. } => {
                self.kept_bytes = self.kept_bytes.saturating_sub(found_bytes(found))
            }
            Node::TooLarge { .. } => {}
        }
    }

    /// Inserts an entry, keeping the byte and symlink counts. Returns false (and keeps nothing)
    /// when a tree-wide limit would be exceeded.
    pub(crate) fn insert(&mut self, path: String, node: Node) -> bool {
        match &node {
            Node::File { data, .. } => {
                if self.kept_bytes + data.len() as u64 > MAX_KEPT_BYTES {
                    return false;
                }
                self.kept_bytes += data.len() as u64;
            }
            Node::Symlink { .. } => {
                if self.symlinks >= MAX_SYMLINKS {
                    return false;
                }
                self.symlinks += 1;
            }
            Node::Found { found, .. } => {
                if self.kept_bytes + found_bytes(found) > MAX_KEPT_BYTES {
                    return false;
                }
                self.kept_bytes += found_bytes(found);
            }
            Node::TooLarge { .. } => {}
        }
        if let Some(old) = self.nodes.insert(path, node) {
            self.forget(&old);
        }
        true
    }

    /// Resolves `path` inside the root, following symlinks (absolute targets are relative to the
    /// root, `..` stops at the root), so nothing outside the image is ever reached.
    pub(crate) fn resolve(&self, path: &str) -> Resolved<'_> {
        let mut queue: std::collections::VecDeque<String> =
            path.split('/').map(str::to_string).collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0usize;
        while let Some(c) = queue.pop_front() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(c);
            let here = done.join("/");
            if let Some(Node::Symlink { target, .. }) = self.nodes.get(&here) {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Resolved::Loop;
                }
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                for (i, t) in target.split('/').enumerate() {
                    queue.insert(i, t.to_string());
                }
            }
        }
        let resolved = done.join("/");
        match self.nodes.get(&resolved) {
            Some(node @ (Node::File { .. } | Node::TooLarge { .. })) => {
                Resolved::File(resolved, node)
            }
            _ => Resolved::Missing(resolved),
        }
    }

    /// For a directory tree: reads a resolved path that was not kept (a symlink target outside the
    /// interesting paths). Symlinks were already resolved, so the final file is opened without
    /// following any further link.
    pub(crate) fn read_unkept(
        &self,
        resolved: &str,
        limit: u64,
    ) -> Option<Result<Vec<u8>, String>> {
        let root = self.root.as_ref()?;
        let full = root.join(resolved);
        let meta = std::fs::symlink_metadata(&full).ok()?;
        if !meta.is_file() {
            return None;
        }
        if meta.len() > limit {
            return Some(Err(format!(
                "{} bytes, over the limit of {limit}",
                meta.len()
            )));
        }
        Some(read_limited(&full, limit).map_err(|e| e.to_string()))
    }
}

/// Approximate memory held by a list of found packages (counted against [`MAX_KEPT_BYTES`]).
fn found_bytes(found: &[(crate::package::Ecosystem, crate::found::Found)]) -> u64 {
    found
        .iter()
        .map(|(_, f)| (f.name.len() + f.version.len() + 64) as u64)
        .sum()
}

/// Reads at most `limit` bytes of a file; a longer file is an error.
pub(crate) fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "file grew over the limit of {limit} bytes"
        )));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(data: &str) -> Node {
        Node::File {
            data: data.as_bytes().to_vec(),
            layer: None,
        }
    }

    fn link(target: &str) -> Node {
        Node::Symlink {
            target: target.into(),
        }
    }

    #[test]
    fn classifies_the_files_the_inventory_reads() {
        assert_eq!(Kind::of("etc/os-release"), Some(Kind::OsRelease));
        assert_eq!(Kind::of("var/lib/dpkg/status"), Some(Kind::DpkgStatus));
        assert_eq!(
            Kind::of("var/lib/dpkg/status.d/base"),
            Some(Kind::DpkgStatusD)
        );
        assert_eq!(Kind::of("var/lib/dpkg/status.d/base.md5sums"), None);
        assert_eq!(
            Kind::of("usr/lib/python3/dist-packages/Jinja2-2.7.1.dist-info/METADATA"),
            Some(Kind::PythonMetadata)
        );
        assert_eq!(
            Kind::of("usr/lib/python3/dist-packages/foo-1.0.egg-info"),
            Some(Kind::PythonMetadata)
        );
        assert_eq!(
            Kind::of("app/node_modules/lodash/package.json"),
            Some(Kind::NpmPackageJson)
        );
        assert_eq!(
            Kind::of("app/node_modules/@babel/core/package.json"),
            Some(Kind::NpmPackageJson)
        );
        assert_eq!(
            Kind::of("app/node_modules/lodash/lib/package.json"),
            Some(Kind::NpmManifest)
        );
        assert_eq!(Kind::of("app/package.json"), Some(Kind::NpmManifest));
        assert_eq!(Kind::of("src/app/Cargo.lock"), Some(Kind::CargoLock));
        assert_eq!(Kind::of("app/package-lock.json"), Some(Kind::NpmLock));
        assert_eq!(Kind::of("app/node_modules/x/package-lock.json"), None);
    }

    #[test]
    fn refuses_path_with_dotdot() {
        assert_eq!(
            normalize("./etc//os-release"),
            Some("etc/os-release".into())
        );
        assert_eq!(normalize("../etc/passwd"), None);
    }

    #[test]
    fn resolves_relative_and_absolute_links_inside_the_root() {
        let mut t = FileTree::default();
        t.insert("usr/lib/os-release".into(), file("ID=debian"));
        t.insert("etc/os-release".into(), link("../usr/lib/os-release"));
        t.insert("lib".into(), link("/usr/lib"));
        assert!(
            matches!(t.resolve("etc/os-release"), Resolved::File(p, _) if p == "usr/lib/os-release")
        );
        assert!(
            matches!(t.resolve("lib/os-release"), Resolved::File(p, _) if p == "usr/lib/os-release")
        );
        // Climbing above the root stays at the root.
        t.insert("x".into(), link("../../../../usr/lib/os-release"));
        assert!(matches!(t.resolve("x"), Resolved::File(p, _) if p == "usr/lib/os-release"));
    }

    #[test]
    fn reports_a_symlink_loop() {
        let mut t = FileTree::default();
        t.insert("a".into(), link("b"));
        t.insert("b".into(), link("a"));
        assert!(matches!(t.resolve("a"), Resolved::Loop));
    }

    #[test]
    fn removing_a_directory_removes_everything_below_it_only() {
        let mut t = FileTree::default();
        t.insert("a/b".into(), file("1"));
        t.insert("a/c/d".into(), file("2"));
        t.insert("ab".into(), file("3"));
        t.remove_tree("a");
        assert_eq!(t.nodes.keys().collect::<Vec<_>>(), vec!["ab"]);
        assert_eq!(t.kept_bytes, 1);
    }
}
