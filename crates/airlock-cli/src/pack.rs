//! Packing a working tree into the gzip tarball `airlock submit` uploads.
//!
//! The tarball is deterministic: the same tree gives the same bytes on any
//! machine (sorted entries, zero mtimes and owners, fixed modes, gzip header
//! mtime 0). Files the tree's `.gitignore` files exclude are left out, and so
//! is `.git`. Symbolic links are stored as links, never followed, and a link
//! that points outside the tree is refused. Sizes and counts are limited so a
//! mistaken `airlock submit /` fails fast with a message instead of uploading
//! a disk.

pub use crate::git::GitInfo;
use crate::git::read_git_info;
use flate2::{Compression, GzBuilder};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Limits applied while packing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackLimits {
    /// Most entries (files, directories, links) in the tarball.
    pub max_entries: u64,
    /// Largest single file, in bytes.
    pub max_file_bytes: u64,
    /// Largest sum of file sizes, in bytes, before compression.
    pub max_total_bytes: u64,
    /// Deepest directory nesting below the root.
    pub max_depth: usize,
}

impl Default for PackLimits {
    fn default() -> Self {
        PackLimits {
            max_entries: 100_000,
            max_file_bytes: 256 * 1024 * 1024,
            max_total_bytes: 512 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// A packed working tree, ready to upload.
#[derive(Debug, Clone)]
pub struct PackedSource {
    /// The gzip-compressed tar, deterministic for a given tree.
    pub tarball: Vec<u8>,
    /// Number of regular files in the tarball.
    pub files: u64,
    /// Commit, branch and state of the git repository the tree belongs to, if any.
    pub git: Option<GitInfo>,
}

/// Why a tree could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The directory to pack does not exist or is not a directory.
    #[error("{path} is not a directory: give the root of the app's source tree")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// Reading the tree failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory that could not be read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Walking the tree failed (unreadable directory, bad .gitignore, …).
    #[error("cannot walk the source tree at {path}: {message}")]
    Walk {
        /// The root being walked.
        path: PathBuf,
        /// What the walker reported.
        message: String,
    },
    /// A symbolic link points outside the tree (or is absolute).
    #[error(
        "symbolic link {path} points to {target}, outside the source tree: replace it with the file, or list it in .gitignore"
    )]
    SymlinkEscapes {
        /// The link, relative to the root.
        path: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// A single file is larger than the limit.
    #[error(
        "{path} is {size} bytes, over the {limit}-byte limit for one file: list it in .gitignore if the build does not need it"
    )]
    FileTooLarge {
        /// The file, relative to the root.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The files together are larger than the limit.
    #[error(
        "the source tree is over {limit} bytes (reached at {path}): list build outputs and dependencies in .gitignore"
    )]
    TreeTooLarge {
        /// The file at which the limit was crossed.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The tree has more entries than the limit.
    #[error(
        "the source tree has more than {limit} entries (reached at {path}): list generated files in .gitignore"
    )]
    TooManyEntries {
        /// The entry at which the limit was crossed.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// Writing the archive failed.
    #[error("cannot add {path} to the tarball: {source}")]
    Archive {
        /// The entry being written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// What kind of entry goes into the tarball.
enum Kind {
    Dir,
    File { executable: bool },
    Symlink(PathBuf),
}

/// One entry found in the tree, relative to the root.
struct Entry {
    rel: PathBuf,
    abs: PathBuf,
    kind: Kind,
}

/// Packs `dir` with the default [`PackLimits`].
pub fn pack_dir(dir: &Path) -> Result<PackedSource, PackError> {
    pack_dir_with(dir, &PackLimits::default())
}

/// Packs `dir` into a deterministic gzip tarball, honouring `.gitignore`,
/// skipping `.git`, storing symlinks as links and refusing ones that leave the
/// tree; reads commit and branch with `git` when `dir` is in a repository.
pub fn pack_dir_with(dir: &Path, limits: &PackLimits) -> Result<PackedSource, PackError> {
    if !dir.is_dir() {
        return Err(PackError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let entries = collect_entries(dir, limits)?;
    let (tarball, files) = write_tarball(&entries, limits)?;
    Ok(PackedSource {
        tarball,
        files,
        git: read_git_info(dir),
    })
}

fn collect_entries(dir: &Path, limits: &PackLimits) -> Result<Vec<Entry>, PackError> {
    let mut walker = ignore::WalkBuilder::new(dir);
    walker
        .hidden(false)
        .ignore(false)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .parents(true)
        .follow_links(false)
        .max_depth(Some(limits.max_depth))
        .filter_entry(|e| e.file_name() != ".git");

    let mut entries = Vec::new();
    for item in walker.build() {
        let item = item.map_err(|e| PackError::Walk {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        if item.depth() == 0 {
            continue;
        }
        let abs = item.path().to_path_buf();
        let rel = abs
            .strip_prefix(dir)
            .map_err(|_| PackError::Walk {
                path: dir.to_path_buf(),
                message: format!("{} is not below the root", abs.display()),
            })?
            .to_path_buf();
        if entries.len() as u64 >= limits.max_entries {
            return Err(PackError::TooManyEntries {
                path: rel,
                limit: limits.max_entries,
            });
        }
        let meta = std::fs::symlink_metadata(&abs).map_err(|source| PackError::Read {
            path: abs.clone(),
            source,
        })?;
        let file_type = meta.file_type();
        let kind = if file_type.is_symlink() {
            let target = std::fs::read_link(&abs).map_err(|source| PackError::Read {
                path: abs.clone(),
                source,
            })?;
            if !link_stays_inside(&rel, &target) {
                return Err(PackError::SymlinkEscapes { path: rel, target });
            }
            Kind::Symlink(target)
        } else if file_type.is_dir() {
            Kind::Dir
        } else if file_type.is_file() {
            if meta.len() > limits.max_file_bytes {
                return Err(PackError::FileTooLarge {
                    path: rel,
                    size: meta.len(),
                    limit: limits.max_file_bytes,
                });
            }
            Kind::File {
                executable: is_executable(&meta),
            }
        } else {
            // Sockets, FIFOs and devices have no place in a source tree.
            tracing::warn!(path = %rel.display(), "skipping special file");
            continue;
        };
        entries.push(Entry { rel, abs, kind });
    }
    entries.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(entries)
}

/// True when a link at `rel` (relative to the root) pointing to `target`
/// resolves, lexically, to a path inside the root.
fn link_stays_inside(rel: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    // Depth of the directory holding the link.
    let mut depth: i64 = rel.components().count() as i64 - 1;
    for component in target.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

fn base_header(entry_type: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn write_tarball(entries: &[Entry], limits: &PackLimits) -> Result<(Vec<u8>, u64), PackError> {
    let gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    let mut builder = tar::Builder::new(gz);
    builder.mode(tar::HeaderMode::Deterministic);
    let mut total: u64 = 0;
    let mut files: u64 = 0;
    for entry in entries {
        let archive_err = |source| PackError::Archive {
            path: entry.rel.clone(),
            source,
        };
        match &entry.kind {
            Kind::Dir => {
                let mut header = base_header(tar::EntryType::Directory, 0o755, 0);
                builder
                    .append_data(&mut header, &entry.rel, std::io::empty())
                    .map_err(archive_err)?;
            }
            Kind::Symlink(target) => {
                let mut header = base_header(tar::EntryType::Symlink, 0o777, 0);
                builder
                    .append_link(&mut header, &entry.rel, target)
                    .map_err(archive_err)?;
            }
            Kind::File { executable } => {
                let data = read_limited(&entry.abs, &entry.rel, limits.max_file_bytes)?;
                total += data.len() as u64;
                if total > limits.max_total_bytes {
                    return Err(PackError::TreeTooLarge {
                        path: entry.rel.clone(),
                        limit: limits.max_total_bytes,
                    });
                }
                let mode = if *executable { 0o755 } else { 0o644 };
                let mut header = base_header(tar::EntryType::Regular, mode, data.len() as u64);
                builder
                    .append_data(&mut header, &entry.rel, data.as_slice())
                    .map_err(archive_err)?;
                files += 1;
            }
        }
    }
    let gz = builder.into_inner().map_err(|source| PackError::Archive {
        path: PathBuf::from("<end of archive>"),
        source,
    })?;
    let tarball = gz.finish().map_err(|source| PackError::Archive {
        path: PathBuf::from("<gzip trailer>"),
        source,
    })?;
    Ok((tarball, files))
}

/// Reads a file, failing if it grew past `limit` since it was listed.
fn read_limited(abs: &Path, rel: &Path, limit: u64) -> Result<Vec<u8>, PackError> {
    let file = std::fs::File::open(abs).map_err(|source| PackError::Read {
        path: abs.to_path_buf(),
        source,
    })?;
    let mut data = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|source| PackError::Read {
            path: abs.to_path_buf(),
            source,
        })?;
    if data.len() as u64 > limit {
        return Err(PackError::FileTooLarge {
            path: rel.to_path_buf(),
            size: data.len() as u64,
            limit,
        });
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::fs;

    fn names(tarball: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(GzDecoder::new(tarball));
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    fn sample_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join(".gitignore"), "target/\n*.log\n").unwrap();
        fs::write(root.join("airlock.toml"), "[app]\nname = \"hello\"\n").unwrap();
        fs::create_dir_all(root.join("src/nested")).unwrap();
        fs::write(root.join("src/main.rs"), "fn main() {}\n").unwrap();
        fs::write(root.join("src/nested/.gitignore"), "secret.txt\n").unwrap();
        fs::write(root.join("src/nested/secret.txt"), "x").unwrap();
        fs::write(root.join("src/nested/kept.txt"), "kept").unwrap();
        fs::create_dir_all(root.join("target/debug")).unwrap();
        fs::write(root.join("target/debug/app"), "binary").unwrap();
        fs::write(root.join("build.log"), "noise").unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::write(root.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        dir
    }

    #[test]
    fn honours_gitignore_and_skips_git_dir() {
        let tree = sample_tree();
        let packed = pack_dir(tree.path()).unwrap();
        let names = names(&packed.tarball);
        assert_eq!(
            names,
            vec![
                ".gitignore",
                "airlock.toml",
                "src",
                "src/main.rs",
                "src/nested",
                "src/nested/.gitignore",
                "src/nested/kept.txt",
            ]
        );
        assert_eq!(packed.files, 5);
    }

    #[test]
    fn same_tree_packs_to_identical_bytes() {
        let a = sample_tree();
        let first = pack_dir(a.path()).unwrap();
        // Touch a file: the mtime changes, the content does not.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(a.path().join("src/main.rs"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        let second = pack_dir(a.path()).unwrap();
        assert_eq!(first.tarball, second.tarball);
        // A second copy of the tree, created in another order and place.
        let b = sample_tree();
        assert_eq!(pack_dir(b.path()).unwrap().tarball, first.tarball);
    }

    #[test]
    fn content_change_changes_tarball() {
        let tree = sample_tree();
        let before = pack_dir(tree.path()).unwrap().tarball;
        fs::write(tree.path().join("src/main.rs"), "fn main() { }\n").unwrap();
        assert_ne!(pack_dir(tree.path()).unwrap().tarball, before);
    }

    #[cfg(unix)]
    #[test]
    fn keeps_executable_bit_and_zeroes_owner_and_time() {
        use std::os::unix::fs::PermissionsExt;
        let tree = sample_tree();
        let script = tree.path().join("run.sh");
        fs::write(&script, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o700)).unwrap();
        let packed = pack_dir(tree.path()).unwrap();
        let mut archive = tar::Archive::new(GzDecoder::new(packed.tarball.as_slice()));
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.mtime().unwrap(), 0);
            assert_eq!(header.uid().unwrap(), 0);
            let path = entry.path().unwrap().display().to_string();
            if path == "run.sh" {
                assert_eq!(header.mode().unwrap(), 0o755);
            } else if path == "airlock.toml" {
                assert_eq!(header.mode().unwrap(), 0o644);
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn stores_inner_symlink_as_link() {
        let tree = sample_tree();
        std::os::unix::fs::symlink("../airlock.toml", tree.path().join("src/link.toml")).unwrap();
        let packed = pack_dir(tree.path()).unwrap();
        let mut archive = tar::Archive::new(GzDecoder::new(packed.tarball.as_slice()));
        let link = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().ends_with("link.toml"))
            .unwrap();
        assert_eq!(link.header().entry_type(), tar::EntryType::Symlink);
        assert_eq!(
            link.link_name().unwrap().unwrap().display().to_string(),
            "../airlock.toml"
        );
    }

    #[cfg(unix)]
    #[test]
    fn rejects_symlink_leaving_the_tree() {
        let tree = sample_tree();
        std::os::unix::fs::symlink("../../etc/passwd", tree.path().join("src/passwd")).unwrap();
        let err = pack_dir(tree.path()).unwrap_err();
        assert!(matches!(err, PackError::SymlinkEscapes { .. }), "{err}");
        assert!(err.to_string().contains("src/passwd"), "{err}");

        let abs = sample_tree();
        std::os::unix::fs::symlink("/etc/passwd", abs.path().join("passwd")).unwrap();
        assert!(matches!(
            pack_dir(abs.path()).unwrap_err(),
            PackError::SymlinkEscapes { .. }
        ));
    }

    #[test]
    fn rejects_file_over_the_size_limit() {
        let tree = sample_tree();
        fs::write(tree.path().join("big.bin"), vec![0u8; 2048]).unwrap();
        let limits = PackLimits {
            max_file_bytes: 1024,
            ..PackLimits::default()
        };
        let err = pack_dir_with(tree.path(), &limits).unwrap_err();
        assert!(err.to_string().contains("big.bin"), "{err}");
    }

    #[test]
    fn rejects_tree_with_too_many_entries() {
        let tree = sample_tree();
        let limits = PackLimits {
            max_entries: 3,
            ..PackLimits::default()
        };
        assert!(matches!(
            pack_dir_with(tree.path(), &limits).unwrap_err(),
            PackError::TooManyEntries { limit: 3, .. }
        ));
    }

    #[test]
    fn rejects_missing_directory() {
        let tree = sample_tree();
        let missing = tree.path().join("nope");
        let err = pack_dir(&missing).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
