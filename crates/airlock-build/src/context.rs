//! The build context of a Dockerfile build: the source tree as a tar, minus what `.dockerignore` excludes,
//! with the checked and rewritten Dockerfile in place of the original.
//!
//! `.dockerignore` follows the Docker CLI's rules: one pattern a line, `#` comments, paths relative to the
//! context root (a leading `/` is ignored), `*` and `?` within one path segment, `**` across segments, a
//! leading `!` re-includes, the last matching line wins, and a pattern that matches a directory excludes
//! everything below it. The Dockerfile and `.dockerignore` are always sent (the Engine needs them).

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

use crate::BuildError;

/// Most bytes of a build context.
pub const MAX_CONTEXT_BYTES: u64 = 2 << 30;

/// Parsed `.dockerignore` rules.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    /// (pattern, excludes?) in file order.
    rules: Vec<(GlobMatcher, bool)>,
}

impl DockerIgnore {
    /// Parses `.dockerignore` text; a pattern that is not a valid glob is an error naming its line.
    pub fn parse(text: &str) -> Result<Self, BuildError> {
        let mut rules = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (pattern, exclude) = match line.strip_prefix('!') {
                Some(p) => (p.trim(), false),
                None => (line, true),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                continue;
            }
            let glob = GlobBuilder::new(&pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| BuildError::Invalid(format!(".dockerignore line {}: {e}", i + 1)))?;
            rules.push((glob.compile_matcher(), exclude));
        }
        Ok(DockerIgnore { rules })
    }

    /// Whether the context-relative path `rel` (`a/b/c`) is left out.
    pub fn excluded(&self, rel: &str) -> bool {
        let mut excluded = false;
        for (glob, exclude) in &self.rules {
            // A pattern matching the path or any of its parent directories applies.
            let mut prefix = String::new();
            let mut matched = false;
            for part in rel.split('/') {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                if glob.is_match(&prefix) {
                    matched = true;
                    break;
                }
            }
            if matched {
                excluded = *exclude;
            }
        }
        excluded
    }

    /// Whether some `!` line could re-include something below an excluded directory.
    fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(_, exclude)| !exclude)
    }
}

/// `./a//b/` → `a/b`, `/a` → `a` (Go's `filepath.Clean` as the Docker CLI applies it, minus `..`).
fn clean(pattern: &str) -> String {
    pattern
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Packs `src` as a build context: entries in path order, owner root, mtime 0, modes 0755/0644, symlinks
/// kept as links, special files left out; `dockerfile_rel` gets `dockerfile_text` instead of its content.
pub fn context_tar(
    src: &Path,
    dockerfile_rel: &str,
    dockerfile_text: &str,
) -> Result<Vec<u8>, BuildError> {
    use std::os::unix::fs::PermissionsExt;
    let ignore_path = src.join(".dockerignore");
    let ignore = match std::fs::read_to_string(&ignore_path) {
        Ok(text) => DockerIgnore::parse(&text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DockerIgnore::default(),
        Err(e) => return Err(BuildError::io(&ignore_path, e)),
    };
    let dockerfile_rel = clean(dockerfile_rel);
    let mut builder = tar::Builder::new(Vec::new());
    let mut total: u64 = 0;
    let mut walk = walkdir::WalkDir::new(src)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(|e| BuildError::io(src, e.into()))?;
        let rel = entry
            .path()
            .strip_prefix(src)
            .map_err(|_| BuildError::Invalid(format!("odd path {}", entry.path().display())))?;
        let Some(rel) = rel.to_str().map(str::to_string) else {
            return Err(BuildError::Invalid(format!(
                "{} has a name that is not UTF-8",
                entry.path().display()
            )));
        };
        let ft = entry.file_type();
        if rel == dockerfile_rel {
            continue;
        }
        if rel != ".dockerignore" && ignore.excluded(&rel) {
            if ft.is_dir() && !ignore.has_exceptions() {
                walk.skip_current_dir();
            }
            continue;
        }
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        let err = |e| BuildError::io(entry.path(), e);
        if ft.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder
                .append_data(&mut header, format!("{rel}/"), std::io::empty())
                .map_err(err)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(err)?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            builder
                .append_link(&mut header, &rel, target)
                .map_err(err)?;
        } else if ft.is_file() {
            let meta = entry
                .metadata()
                .map_err(|e| BuildError::io(entry.path(), e.into()))?;
            total += meta.len();
            if total > MAX_CONTEXT_BYTES {
                return Err(BuildError::Invalid(format!(
                    "build context is over {MAX_CONTEXT_BYTES} bytes at {rel}; list large files in .dockerignore"
                )));
            }
            let file = std::fs::File::open(entry.path()).map_err(err)?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            });
            header.set_size(meta.len());
            builder.append_data(&mut header, &rel, file).map_err(err)?;
        }
    }
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(dockerfile_text.len() as u64);
    builder
        .append_data(&mut header, &dockerfile_rel, dockerfile_text.as_bytes())
        .map_err(|e| BuildError::io(src.join(&dockerfile_rel), e))?;
    builder.into_inner().map_err(|e| BuildError::io(src, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn names(tar_bytes: &[u8]) -> BTreeSet<String> {
        tar::Archive::new(tar_bytes)
            .entries()
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .unwrap()
                    .display()
                    .to_string()
                    .trim_end_matches('/')
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn dockerignore_follows_docker_rules() {
        let ig = DockerIgnore::parse(
            "# comment\n/target\n*.log\n**/secret.txt\ndocs/*.md\n!docs/keep.md\n",
        )
        .unwrap();
        assert!(ig.excluded("target"));
        assert!(ig.excluded("target/release/app"));
        assert!(ig.excluded("build.log"));
        assert!(!ig.excluded("sub/build.log"), "* does not cross /");
        assert!(ig.excluded("a/b/secret.txt"));
        assert!(ig.excluded("secret.txt"));
        assert!(ig.excluded("docs/readme.md"));
        assert!(!ig.excluded("docs/keep.md"));
        assert!(!ig.excluded("src/main.rs"));
        let err = DockerIgnore::parse("ok\n[z-a\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn context_leaves_out_ignored_files_and_carries_the_rewritten_dockerfile() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path();
        std::fs::create_dir_all(src.join("target/debug")).unwrap();
        std::fs::write(src.join("target/debug/big"), "x").unwrap();
        std::fs::create_dir_all(src.join("app")).unwrap();
        std::fs::write(src.join("app/main.sh"), "echo hi").unwrap();
        std::fs::write(src.join("app/debug.log"), "noise").unwrap();
        std::fs::write(src.join("Dockerfile"), "FROM static\n").unwrap();
        std::fs::write(src.join(".dockerignore"), "target\n**/*.log\nDockerfile\n").unwrap();
        let bytes = context_tar(src, "Dockerfile", "FROM rewritten\n").unwrap();
        let got = names(&bytes);
        let want: BTreeSet<String> = ["app", "app/main.sh", "Dockerfile", ".dockerignore"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(got, want);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut dockerfile = String::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_str() == Some("Dockerfile") {
                std::io::Read::read_to_string(&mut e, &mut dockerfile).unwrap();
            }
        }
        assert_eq!(dockerfile, "FROM rewritten\n");
    }
}
