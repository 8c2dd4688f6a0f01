//! Copying and listing file trees: fixtures are copied into temporary directories, and "nothing was
//! written" is shown by listing a tree before and after.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Copies the tree `from` into `to` (created when missing), files and directories alike.
pub fn copy_tree(from: &Path, to: &Path) {
    copy_tree_except(from, to, &[]);
}

/// Like [`copy_tree`], leaving out every entry whose name is in `skip` (e.g. `target`, build output).
pub fn copy_tree_except(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("a directory entry");
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().expect("a file type").is_dir() {
            copy_tree_except(&src, &dst, skip);
        } else {
            std::fs::copy(&src, &dst)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
        }
    }
}

/// Every path below `dir` (directories too, each before its contents), unsorted; empty when `dir` does
/// not exist.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.push(p.clone());
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Every file below `dir`, relative to it, sorted (to show that nothing was written).
pub fn files_below(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walk(dir)
        .into_iter()
        .filter(|p| !p.is_dir())
        .map(|p| p.strip_prefix(dir).unwrap_or(&p).display().to_string())
        .collect();
    out.sort();
    out
}

/// The tree below `dir` as relative path → bytes (directories map to no bytes): two snapshots compare
/// equal exactly when nothing below `dir` was added, removed or changed.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walk(dir)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
            let bytes = std::fs::read(&p).unwrap_or_default();
            (rel, bytes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::create_dir_all(dir.path().join("target/debug")).unwrap();
        std::fs::write(dir.path().join("top.txt"), b"top").unwrap();
        std::fs::write(dir.path().join("a/b/deep.txt"), b"deep").unwrap();
        std::fs::write(dir.path().join("target/debug/out"), b"build output").unwrap();
        dir
    }

    #[test]
    fn copy_tree_except_leaves_out_the_named_entries_and_keeps_the_rest_byte_for_byte() {
        let src = tree();
        let dst = tempfile::tempdir().unwrap();
        let to = dst.path().join("copy");
        copy_tree_except(src.path(), &to, &["target"]);
        assert_eq!(files_below(&to), vec!["a/b/deep.txt", "top.txt"]);
        assert_eq!(std::fs::read(to.join("a/b/deep.txt")).unwrap(), b"deep");

        let all = dst.path().join("all");
        copy_tree(src.path(), &all);
        assert_eq!(files_below(&all), files_below(src.path()));
        assert_eq!(files_below(&all).len(), 3);
    }

    #[test]
    fn snapshot_changes_with_any_added_or_changed_entry() {
        let dir = tree();
        let before = snapshot(dir.path());
        assert_eq!(before, snapshot(dir.path()));
        assert_eq!(before["a/b/deep.txt"], b"deep");
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let with_dir = snapshot(dir.path());
        assert_ne!(before, with_dir, "a new empty directory must show");
        std::fs::write(dir.path().join("top.txt"), b"TOP").unwrap();
        assert_ne!(with_dir, snapshot(dir.path()), "changed bytes must show");
        assert!(snapshot(&dir.path().join("missing")).is_empty());
    }
}
