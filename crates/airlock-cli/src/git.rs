//! What the CLI learns about a working tree from `git`: commit, branch,
//! whether it has uncommitted changes, and where it came from.
//!
//! The system `git` is run rather than a library so the answer is exactly what
//! the developer sees in their own shell.

use std::path::Path;
use std::process::{Command, Stdio};

/// Git facts about a working tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitInfo {
    /// Full commit id of `HEAD`.
    pub commit: String,
    /// Current branch, or `HEAD` when detached.
    pub branch: String,
    /// True when `git status --porcelain` lists anything (changes or untracked files).
    pub dirty: bool,
    /// URL of the `origin` remote, with any user name or password removed.
    pub remote: Option<String>,
    /// Committer time of `HEAD`, unix seconds (the gate uses it as `SOURCE_DATE_EPOCH`).
    pub commit_time: Option<i64>,
}

/// Most bytes of `git` output read for any one question.
const MAX_GIT_OUTPUT: usize = 4 * 1024 * 1024;

/// Runs `git -C dir args…` and returns its trimmed stdout when it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() || output.stdout.len() > MAX_GIT_OUTPUT {
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Reads commit, branch, dirty flag and remote of the repository holding
/// `dir`; `None` when `dir` is not in a git repository, the repository has no
/// commit yet, or `git` is not installed.
pub fn read_git_info(dir: &Path) -> Option<GitInfo> {
    if git(dir, &["rev-parse", "--is-inside-work-tree"])? != "true" {
        return None;
    }
    let commit = git(dir, &["rev-parse", "--verify", "HEAD"])?;
    let branch = git(dir, &["symbolic-ref", "--quiet", "--short", "HEAD"])
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "HEAD".to_string());
    let dirty = git(dir, &["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    let remote = git(dir, &["remote", "get-url", "origin"])
        .filter(|r| !r.is_empty())
        .map(|r| strip_credentials(&r));
    let commit_time = git(dir, &["log", "-1", "--format=%ct", "HEAD"]).and_then(|t| t.parse().ok());
    Some(GitInfo {
        commit,
        branch,
        dirty,
        remote,
        commit_time,
    })
}

/// Removes `user:password@` from a URL so a token embedded in a remote never
/// leaves the machine in a submission.
pub fn strip_credentials(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if let Some((_, host)) = authority.rsplit_once('@') {
            return format!("{scheme}://{host}{path}");
        }
    }
    url.to_string()
}

/// The name of the person submitting, from git's config, as `Name <email>`
/// or whichever of the two is set; `None` when neither is.
pub fn git_author(dir: &Path) -> Option<String> {
    let name = git(dir, &["config", "user.name"]).filter(|s| !s.is_empty());
    let email = git(dir, &["config", "user.email"]).filter(|s| !s.is_empty());
    match (name, email) {
        (Some(n), Some(e)) => Some(format!("{n} <{e}>")),
        (Some(n), None) => Some(n),
        (None, Some(e)) => Some(e),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    #[test]
    fn reads_commit_branch_and_dirty_flag() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        run(root, &["init", "-q", "-b", "trunk"]);
        run(root, &["config", "user.email", "dev@example.com"]);
        run(root, &["config", "user.name", "Dev"]);
        run(
            root,
            &[
                "remote",
                "add",
                "origin",
                "https://bot:s3cret@git.example/team/hello.git",
            ],
        );
        assert_eq!(read_git_info(root), None, "no commit yet");
        std::fs::write(root.join("a.txt"), "a").unwrap();
        run(root, &["add", "a.txt"]);
        run(root, &["commit", "-q", "-m", "first"]);
        let info = read_git_info(root).unwrap();
        assert_eq!(info.commit.len(), 40);
        assert_eq!(info.branch, "trunk");
        assert!(!info.dirty);
        assert!(info.commit_time.is_some_and(|t| t > 1_600_000_000));
        assert_eq!(
            info.remote.as_deref(),
            Some("https://git.example/team/hello.git")
        );
        std::fs::write(root.join("a.txt"), "changed").unwrap();
        assert!(read_git_info(root).unwrap().dirty);
        assert_eq!(git_author(root).as_deref(), Some("Dev <dev@example.com>"));
    }

    #[test]
    fn plain_directory_has_no_git_info() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_git_info(dir.path()), None);
    }

    #[test]
    fn strips_credentials_from_remote() {
        assert_eq!(
            strip_credentials("https://u:p@host/x.git"),
            "https://host/x.git"
        );
        assert_eq!(
            strip_credentials("git@host:team/x.git"),
            "git@host:team/x.git"
        );
        assert_eq!(
            strip_credentials("ssh://git@host/x.git"),
            "ssh://host/x.git"
        );
    }
}
