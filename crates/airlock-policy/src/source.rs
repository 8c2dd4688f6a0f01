//! Reading Rego sources from disk, with limits, and finding their `package`.

use std::path::{Path, PathBuf};

use crate::PolicyError;

/// Largest policy file accepted, in bytes.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;
/// Most policy files accepted in one set (or one test run).
pub const MAX_POLICY_FILES: usize = 1_000;
/// Deepest directory nesting `run_tests` descends into.
pub const MAX_TEST_DEPTH: usize = 8;

/// Lists the `*.rego` files directly in `dir`, sorted by file name.
pub(crate) fn rego_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let io = |source| PolicyError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "rego") && path.is_file() {
            files.push(path);
            if files.len() > MAX_POLICY_FILES {
                return Err(PolicyError::TooLarge {
                    what: "number of policy files",
                    limit: MAX_POLICY_FILES,
                    subject: dir.display().to_string(),
                });
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Whether a file name is a Rego test file (`*_test.rego`).
pub(crate) fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with("_test.rego"))
}

/// Reads one policy file, refusing files over [`MAX_POLICY_BYTES`].
pub(crate) fn read_policy(path: &Path) -> Result<String, PolicyError> {
    let io = |source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge {
            what: "policy file bytes",
            limit: MAX_POLICY_BYTES as usize,
            subject: path.display().to_string(),
        });
    }
    std::fs::read_to_string(path).map_err(io)
}

/// The package a Rego source declares (`package airlock.gate` gives `airlock.gate`),
/// when it is a plain dotted identifier.
pub(crate) fn package_of(rego: &str) -> Option<String> {
    rego.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("package")?;
        if !rest.starts_with(char::is_whitespace) {
            return None;
        }
        let name = rest.split('#').next()?.trim();
        is_dotted_identifier(name).then(|| name.to_string())
    })
}

/// `a.b_c.d`: ASCII identifiers joined by dots, nothing else (safe to put in a query).
pub(crate) fn is_dotted_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_package_after_comments() {
        let src = "# a comment\n# package not.this\npackage airlock.gate # trailing\n\ndeny contains x if { x := 1 }\n";
        assert_eq!(package_of(src).as_deref(), Some("airlock.gate"));
    }

    #[test]
    fn rejects_package_with_injection() {
        assert!(!is_dotted_identifier("airlock.gate; true"));
        assert!(!is_dotted_identifier("airlock..gate"));
        assert!(!is_dotted_identifier(""));
        assert!(is_dotted_identifier("airlock.admission"));
    }

    #[test]
    fn lists_only_rego_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.rego", "a.rego", "a_test.rego", "notes.md"] {
            std::fs::write(dir.path().join(name), "package x\n").unwrap();
        }
        let names: Vec<_> = rego_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.rego", "a_test.rego", "b.rego"]);
    }

    #[test]
    fn refuses_oversized_policy_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.rego");
        std::fs::write(&path, vec![b'#'; (MAX_POLICY_BYTES + 1) as usize]).unwrap();
        let err = read_policy(&path).unwrap_err().to_string();
        assert!(err.contains("big.rego"), "{err}");
    }
}
