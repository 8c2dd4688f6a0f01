//! The git target: each release committed into a GitOps repository for Argo CD or Flux to deploy.
//!
//! Layout inside the work tree: `PATH/<env>/<app>/` holds the environment's manifests and
//! `.airlock-release.json` (the [`ReleaseRecord`]). Every release is one commit whose message carries the
//! release metadata as trailers (`Airlock-App`, `Airlock-Sequence`, `Airlock-Release`, …), so the state lives
//! in the repository: a restarted or replaced agent reads it back from the work tree. A drift correction is
//! one commit of its own. Files are written in the work tree and the commit is the atomic step: a reader of
//! the repository's history sees a whole release or none. When the repository has a remote `origin`, each
//! commit is pushed to it.
//!
//! Uses the `git` command line (present wherever a GitOps repository is), with a fixed committer identity.

use crate::target::{
    ReleaseRecord, TargetError, describe_drift, hash_dir, validate_app, validate_env, write_atomic,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Record file beside each app's manifests (the same name as in the directory target).
pub const RECORD_FILE: &str = crate::target::RECORD_FILE;
/// Committer name and e-mail of the agent's commits.
pub const COMMITTER: (&str, &str) = ("airlock-agent", "airlock-agent@localhost");

/// A git work tree and the directory inside it that the agent manages.
#[derive(Debug, Clone)]
pub struct GitTarget {
    repo: PathBuf,
    path: String,
}

/// Why a git command failed.
fn git_error(args: &[&str], repo: &Path, detail: String) -> TargetError {
    TargetError::Git {
        command: format!("git {}", args.join(" ")),
        repo: repo.to_path_buf(),
        detail,
    }
}

impl GitTarget {
    /// A target committing under `path` (relative, may be empty) in the work tree `repo`.
    pub fn new(repo: impl Into<PathBuf>, path: impl Into<String>) -> Self {
        GitTarget {
            repo: repo.into(),
            path: path.into(),
        }
    }

    /// The work tree.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    fn rel(&self, env: &str, app: &str) -> String {
        if self.path.is_empty() {
            format!("{env}/{app}")
        } else {
            format!("{}/{env}/{app}", self.path)
        }
    }

    /// `REPO/PATH/<env>/<app>`.
    pub fn app_path(&self, env: &str, app: &str) -> PathBuf {
        self.repo.join(self.rel(env, app))
    }

    fn git(&self, args: &[&str]) -> Result<String, TargetError> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.repo)
            .args(["-c", &format!("user.name={}", COMMITTER.0)])
            .args(["-c", &format!("user.email={}", COMMITTER.1)])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .output()
            .map_err(|e| git_error(args, &self.repo, format!("cannot run git: {e}")))?;
        if !out.status.success() {
            return Err(git_error(
                args,
                &self.repo,
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Makes sure the work tree exists and is a git repository (`git init` when the directory is
    /// missing or empty; an existing non-repository directory is an error, never taken over).
    pub(crate) fn ensure_repo(&self) -> Result<(), TargetError> {
        let empty = match std::fs::read_dir(&self.repo) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => {
                return Err(TargetError::Io {
                    action: "list",
                    path: self.repo.clone(),
                    source: e,
                });
            }
        };
        if empty {
            std::fs::create_dir_all(&self.repo).map_err(|e| TargetError::Io {
                action: "create",
                path: self.repo.clone(),
                source: e,
            })?;
            self.git(&["init", "--quiet"])?;
            return Ok(());
        }
        let top = self.git(&["rev-parse", "--show-toplevel"])?;
        let top = PathBuf::from(top.trim());
        let here = std::fs::canonicalize(&self.repo).map_err(|e| TargetError::Io {
            action: "resolve",
            path: self.repo.clone(),
            source: e,
        })?;
        if std::fs::canonicalize(&top).ok() != Some(here) {
            return Err(git_error(
                &["rev-parse", "--show-toplevel"],
                &self.repo,
                format!(
                    "{} is inside the work tree {}, give the top",
                    self.repo.display(),
                    top.display()
                ),
            ));
        }
        Ok(())
    }

    /// The release committed for `app` in `env`, read from the work tree.
    pub fn deployed(&self, env: &str, app: &str) -> Result<Option<ReleaseRecord>, TargetError> {
        validate_env(env)?;
        validate_app(app)?;
        let path = self.app_path(env, app).join(RECORD_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| TargetError::BadRecord {
                        path,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TargetError::Io {
                action: "read",
                path,
                source: e,
            }),
        }
    }

    /// Commits `files` as the release of `record.app` in `env`. Returns the commit id.
    pub fn apply(
        &self,
        env: &str,
        record: &ReleaseRecord,
        files: &BTreeMap<String, String>,
    ) -> Result<String, TargetError> {
        let message = commit_message(env, record, None);
        self.write_and_commit(env, record, files, &message)
    }

    /// Commits the release again because the work tree or the history drifted from it.
    pub fn repair(
        &self,
        env: &str,
        record: &ReleaseRecord,
        files: &BTreeMap<String, String>,
        drift: &str,
    ) -> Result<String, TargetError> {
        let message = commit_message(env, record, Some(drift));
        self.write_and_commit(env, record, files, &message)
    }

    fn write_and_commit(
        &self,
        env: &str,
        record: &ReleaseRecord,
        files: &BTreeMap<String, String>,
        message: &str,
    ) -> Result<String, TargetError> {
        validate_env(env)?;
        validate_app(&record.app)?;
        crate::target::validate_files(&record.app, files)?;
        self.ensure_repo()?;
        let rel = self.rel(env, &record.app);
        let dir = self.repo.join(&rel);
        // Replace the whole app directory: files a new release drops must not survive.
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| TargetError::Io {
                action: "remove",
                path: dir.clone(),
                source: e,
            })?;
        }
        for (name, content) in files {
            write_atomic(&dir.join(name), content.as_bytes())?;
        }
        let record_json =
            serde_json::to_vec_pretty(record).map_err(|e| TargetError::BadRecord {
                path: dir.join(RECORD_FILE),
                reason: e.to_string(),
            })?;
        write_atomic(&dir.join(RECORD_FILE), &record_json)?;
        self.git(&["add", "--all", "--", &rel])?;
        // Only this app's directory goes into the commit, whatever else is staged.
        let staged = self.git(&["diff", "--cached", "--name-only", "--", &rel])?;
        if staged.trim().is_empty() {
            return Ok(self.git(&["rev-parse", "HEAD"])?.trim().to_string());
        }
        self.git(&["commit", "--quiet", "-m", message, "--", &rel])?;
        let head = self.git(&["rev-parse", "HEAD"])?.trim().to_string();
        if self.git(&["remote", "get-url", "origin"]).is_ok() {
            self.git(&["push", "--quiet", "origin", "HEAD"])?;
        }
        Ok(head)
    }

    /// How `PATH/<env>/<app>` differs from the release recorded there: files edited or removed in the
    /// work tree, or changes committed over it by someone else.
    pub fn drift(&self, env: &str, app: &str) -> Result<Option<String>, TargetError> {
        let Some(record) = self.deployed(env, app)? else {
            return Ok(None);
        };
        let actual = hash_dir(&self.app_path(env, app))?;
        if let Some(drift) = describe_drift(&record.files, &actual) {
            return Ok(Some(drift));
        }
        // The files match the record; any uncommitted change (e.g. to the record itself) is still drift.
        let rel = self.rel(env, app);
        let dirty = self.git(&["status", "--porcelain", "--", &rel])?;
        Ok((!dirty.trim().is_empty()).then(|| format!("uncommitted changes in {rel}")))
    }

    /// Every committed release: (environment, record), sorted by environment then app.
    pub fn list(&self) -> Result<Vec<(String, ReleaseRecord)>, TargetError> {
        let base = if self.path.is_empty() {
            self.repo.clone()
        } else {
            self.repo.join(&self.path)
        };
        let mut out = Vec::new();
        let envs = match std::fs::read_dir(&base) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => {
                return Err(TargetError::Io {
                    action: "list",
                    path: base,
                    source: e,
                });
            }
        };
        for env in envs.flatten() {
            let env_name = env.file_name().to_string_lossy().into_owned();
            if validate_env(&env_name).is_err() || !env.path().is_dir() {
                continue;
            }
            for record_path in find_records(&env.path(), 0) {
                if let Ok(bytes) = std::fs::read(&record_path)
                    && let Ok(record) = serde_json::from_slice::<ReleaseRecord>(&bytes)
                {
                    out.push((env_name.clone(), record));
                }
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1.app).cmp(&(&b.0, &b.1.app)));
        Ok(out)
    }

    /// Where the agent keeps its status for `env`: inside the git directory, never committed.
    pub fn status_path(&self, env: &str) -> PathBuf {
        let git_dir = self
            .git(&["rev-parse", "--absolute-git-dir"])
            .map(|s| PathBuf::from(s.trim()))
            .unwrap_or_else(|_| self.repo.join(".git"));
        git_dir
            .join("airlock-agent")
            .join(format!("status-{env}.json"))
    }

    /// The full message of the newest commit (for tests and `status`).
    pub fn head_message(&self) -> Result<String, TargetError> {
        self.git(&["log", "-1", "--format=%B"])
    }
}

fn find_records(dir: &Path, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if depth > 8 {
        return out;
    }
    if dir.join(RECORD_FILE).is_file() {
        out.push(dir.join(RECORD_FILE));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && entry.path().is_dir() {
                out.extend(find_records(&entry.path(), depth + 1));
            }
        }
    }
    out
}

/// The commit message of a release: a subject line and the release metadata as git trailers.
pub fn commit_message(env: &str, record: &ReleaseRecord, drift: Option<&str>) -> String {
    let subject = match (drift, &record.rollback) {
        (Some(_), _) => format!(
            "airlock: correct drift of {} release {} in {env}",
            record.app, record.sequence
        ),
        (None, Some(rb)) => format!(
            "airlock: roll back {} in {env} from release {} to {}",
            record.app, rb.from, record.sequence
        ),
        (None, None) => format!(
            "airlock: deploy {} release {} to {env}",
            record.app, record.sequence
        ),
    };
    let mut body = String::new();
    if let Some(drift) = drift {
        body.push_str(&format!("Drift found: {drift}.\n\n"));
    }
    if let Some(rb) = &record.rollback {
        body.push_str(&format!("Rollback reason: {}\n\n", rb.reason));
    }
    let mut trailers = vec![
        ("Airlock-App", record.app.clone()),
        ("Airlock-Environment", env.to_string()),
        ("Airlock-Sequence", record.sequence.to_string()),
        ("Airlock-Release", record.release_digest.clone()),
        ("Airlock-Image", record.image_digest.clone()),
        ("Airlock-Signed-By", record.signed_by.clone()),
    ];
    if !record.commit.is_empty() {
        trailers.push(("Airlock-Source-Commit", record.commit.clone()));
    }
    if !record.source.is_empty() {
        trailers.push(("Airlock-Source", record.source.clone()));
    }
    let trailers: Vec<String> = trailers
        .into_iter()
        .map(|(k, v)| format!("{k}: {}", v.replace('\n', " ")))
        .collect();
    format!("{subject}\n\n{body}{}\n", trailers.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sequence: u64, files: &BTreeMap<String, String>) -> ReleaseRecord {
        ReleaseRecord {
            app: "hello".into(),
            sequence,
            release_digest: format!("sha256:{sequence:064x}"),
            image_digest: format!("sha256:{:064x}", sequence + 100),
            applied_at: "2026-11-23T09:00:00Z".into(),
            signed_by: "key-1".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            source: "https://git.example/web/hello".into(),
            files: ReleaseRecord::hash_files(files),
            floor: sequence,
            rollback: None,
        }
    }

    fn files(tag: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(
            "deployment.yaml".to_string(),
            format!("kind: Deployment # {tag}\n"),
        )])
    }

    fn log(repo: &Path) -> Vec<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(["log", "--format=%s"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn one_commit_per_release_with_metadata_trailers() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("gitops");
        let target = GitTarget::new(&repo, "clusters");
        target
            .apply("staging", &record(1, &files("v1")), &files("v1"))
            .unwrap();
        target
            .apply("staging", &record(2, &files("v2")), &files("v2"))
            .unwrap();
        // The same release again is not a new commit.
        target
            .apply("staging", &record(2, &files("v2")), &files("v2"))
            .unwrap();
        assert_eq!(
            log(&repo),
            vec![
                "airlock: deploy hello release 2 to staging",
                "airlock: deploy hello release 1 to staging"
            ]
        );
        let message = target.head_message().unwrap();
        assert!(message.contains("Airlock-Sequence: 2"), "{message}");
        assert!(
            message.contains(&format!("Airlock-Release: sha256:{:064x}", 2)),
            "{message}"
        );
        // git itself parses them as trailers.
        let out = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args([
                "log",
                "-1",
                "--format=%(trailers:key=Airlock-App,valueonly)",
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "hello");
        assert_eq!(
            std::fs::read_to_string(repo.join("clusters/staging/hello/deployment.yaml")).unwrap(),
            "kind: Deployment # v2\n"
        );
        assert_eq!(
            target
                .deployed("staging", "hello")
                .unwrap()
                .unwrap()
                .sequence,
            2
        );
        assert_eq!(target.list().unwrap().len(), 1);
    }

    #[test]
    fn committed_edit_is_drift_and_repair_is_its_own_commit() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("gitops");
        let target = GitTarget::new(&repo, "");
        target
            .apply("prod", &record(4, &files("v4")), &files("v4"))
            .unwrap();
        assert_eq!(target.drift("prod", "hello").unwrap(), None);
        std::fs::write(
            repo.join("prod/hello/deployment.yaml"),
            "kind: Deployment # edited\n",
        )
        .unwrap();
        let status = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args([
                "-c",
                "user.name=x",
                "-c",
                "user.email=x@x",
                "commit",
                "-qam",
                "hotfix by hand",
            ])
            .status()
            .unwrap();
        assert!(status.success());
        let drift = target.drift("prod", "hello").unwrap().unwrap();
        assert_eq!(drift, "deployment.yaml changed");
        target
            .repair("prod", &record(4, &files("v4")), &files("v4"), &drift)
            .unwrap();
        assert_eq!(target.drift("prod", "hello").unwrap(), None);
        assert_eq!(
            log(&repo)[0],
            "airlock: correct drift of hello release 4 in prod"
        );
    }

    #[test]
    fn existing_directory_that_is_not_a_repository_is_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let target = GitTarget::new(dir.path(), "");
        let err = target
            .apply("prod", &record(1, &files("v1")), &files("v1"))
            .unwrap_err();
        assert!(err.to_string().contains("git rev-parse"), "{err}");
        assert!(!dir.path().join("prod").exists());
    }
}
