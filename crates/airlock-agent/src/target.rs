//! The directory target: verified releases written as plain files, for a
//! GitOps repository, `kubectl apply -f`, or an operator to read.
//!
//! Layout under the target root:
//!
//! ```text
//! <env>/<app>                           symlink -> .releases/<app>/<sequence>
//! <env>/.releases/<app>/<sequence>/     the env's manifests + .airlock-release.json
//! ```
//!
//! A release is applied atomically: its files are written and synced into a
//! fresh staging directory, renamed to `.releases/<app>/<sequence>`, and then
//! a new symlink is renamed over `<env>/<app>`. A reader following
//! `<env>/<app>` sees the old release or the new one, never a mix, and a crash
//! at any point leaves the old release in place. The previous release is kept
//! beside the current one; older ones are removed.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the record written beside the manifests of every applied release.
pub const RECORD_FILE: &str = ".airlock-release.json";
/// Directory (under each environment) holding the release directories.
pub const RELEASES_DIR: &str = ".releases";
/// Most files one release may write.
pub const MAX_FILES: usize = 512;
/// Largest record file read back.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// The sequence of a release directory name (`7`, or `7.<nanos>` for a repaired copy).
fn release_dir_sequence(name: &str) -> Option<u64> {
    name.split('.').next()?.parse().ok()
}

/// What the target remembers about an applied release (`.airlock-release.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// App name.
    pub app: String,
    /// Release sequence number.
    pub sequence: u64,
    /// Digest of the release artifact.
    pub release_digest: String,
    /// Digest of the image it deploys.
    pub image_digest: String,
    /// RFC 3339 time it was applied.
    pub applied_at: String,
    /// Id of the key that signed the release.
    pub signed_by: String,
    /// Git commit the release was built from.
    #[serde(default)]
    pub commit: String,
    /// Source repository of the release.
    #[serde(default)]
    pub source: String,
    /// Digest (`sha256:…`) of every manifest file as applied: what drift is measured against.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Anti-rollback floor: releases at or below it are not applied by a sync. It is the highest sequence
    /// ever applied here, so after a recorded rollback the release rolled back from stays out.
    #[serde(default)]
    pub floor: u64,
    /// Set when this release was applied by an explicit `airlock-agent rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackNote>,
}

/// The record of an explicit rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackNote {
    /// The sequence that was deployed before the rollback.
    pub from: u64,
    /// RFC 3339 time of the rollback.
    pub at: String,
    /// Why, as given by the operator.
    pub reason: String,
}

impl ReleaseRecord {
    /// The digests of `files`, as stored in [`ReleaseRecord::files`].
    pub fn hash_files(files: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(name, content)| {
                (
                    name.clone(),
                    airlock_oci::Digest::of(content.as_bytes()).to_string(),
                )
            })
            .collect()
    }

    /// The sequence below or at which a sync applies nothing (the larger of sequence and floor).
    pub fn anti_rollback_floor(&self) -> u64 {
        self.sequence.max(self.floor)
    }
}

/// Compares files on disk (`name -> content digest`) with what a record says was applied; `None` when
/// they match or the record predates file digests, otherwise a sentence naming each difference.
pub fn describe_drift(
    expected: &BTreeMap<String, String>,
    actual: &BTreeMap<String, String>,
) -> Option<String> {
    if expected.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    for (name, digest) in expected {
        match actual.get(name) {
            None => parts.push(format!("{name} missing")),
            Some(found) if found != digest => parts.push(format!("{name} changed")),
            Some(_) => {}
        }
    }
    for name in actual.keys() {
        if !expected.contains_key(name) {
            parts.push(format!("{name} added"));
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Reads the manifest files (not hidden ones) of a directory as `name -> content digest`.
pub(crate) fn hash_dir(dir: &Path) -> Result<BTreeMap<String, String>, TargetError> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io("list", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let digest = if path.is_file() {
            let bytes = std::fs::read(&path).map_err(io("read", &path))?;
            airlock_oci::Digest::of(&bytes).to_string()
        } else {
            "(not a file)".to_string()
        };
        out.insert(name, digest);
    }
    Ok(out)
}

/// Writes `data` to `path` through a temporary file and a rename, so a reader sees old or new.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), TargetError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(parent).map_err(io("create a file in", parent))?;
    tmp.write_all(data).map_err(io("write", path))?;
    tmp.as_file().sync_all().map_err(io("sync", path))?;
    tmp.persist(path)
        .map_err(|e| io("replace", path)(e.error))?;
    Ok(())
}

/// Why the directory target could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A file operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A name from a release cannot be used as a path component.
    #[error("{what} {name:?} cannot be written to the target: {reason}")]
    BadName {
        /// "environment", "app" or "manifest file".
        what: &'static str,
        /// The name.
        name: String,
        /// Why not.
        reason: &'static str,
    },
    /// The release has more files than the target accepts.
    #[error("release of {app} has {count} files, over the limit of {MAX_FILES}")]
    TooManyFiles {
        /// The app.
        app: String,
        /// How many files it has.
        count: usize,
    },
    /// `<env>/<app>` exists but is not a symlink this agent made.
    #[error(
        "{path} exists and is not a symlink made by airlock-agent: move it away so the agent can manage it"
    )]
    NotManaged {
        /// The path.
        path: PathBuf,
    },
    /// A git command of the git target failed.
    #[error("{command} failed in {repo}: {detail}")]
    Git {
        /// The command line.
        command: String,
        /// The work tree.
        repo: PathBuf,
        /// What git printed.
        detail: String,
    },
    /// A record file is unreadable JSON or too large.
    #[error("{path} is not a valid release record: {reason}")]
    BadRecord {
        /// The record file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The kubernetes target failed (API call, manifest, rollout).
    #[error(transparent)]
    Kubernetes(#[from] crate::kubernetes::KubeError),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TargetError + use<> {
    let path = path.to_path_buf();
    move |source| TargetError::Io {
        action,
        path,
        source,
    }
}

/// Checks an environment name: 1-63 of `[a-z0-9-]`, not starting with `-`.
pub fn validate_env(env: &str) -> Result<(), TargetError> {
    let ok = !env.is_empty()
        && env.len() <= 63
        && !env.starts_with('-')
        && env
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(TargetError::BadName {
            what: "environment",
            name: env.to_string(),
            reason: "expected 1-63 characters of [a-z0-9-], not starting with '-'",
        })
    }
}

/// Checks an app name: an OCI repository name (so `/`-separated, never `..`).
pub fn validate_app(app: &str) -> Result<(), TargetError> {
    airlock_oci::validate_repository(app).map_err(|_| TargetError::BadName {
        what: "app",
        name: app.to_string(),
        reason: "expected an OCI repository name ([a-z0-9] runs joined by '.', '_', '-', '/')",
    })
}

/// Checks a manifest file name: one plain component, not hidden.
fn validate_file_name(name: &str) -> Result<(), TargetError> {
    let bad = |reason| TargetError::BadName {
        what: "manifest file",
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > 255 {
        return Err(bad("must be 1-255 bytes"));
    }
    if name.starts_with('.') {
        return Err(bad(
            "must not start with '.' (hidden names are the agent's own)",
        ));
    }
    if name.contains(['/', '\\', '\0']) {
        return Err(bad("must be a plain file name without '/', '\\' or NUL"));
    }
    Ok(())
}

/// Checks the number and names of the files of a release before anything is written.
pub(crate) fn validate_files(
    app: &str,
    files: &BTreeMap<String, String>,
) -> Result<(), TargetError> {
    if files.len() > MAX_FILES {
        return Err(TargetError::TooManyFiles {
            app: app.to_string(),
            count: files.len(),
        });
    }
    for name in files.keys() {
        validate_file_name(name)?;
    }
    Ok(())
}

/// A target directory holding one subdirectory per environment.
#[derive(Debug, Clone)]
pub struct DirectoryTarget {
    root: PathBuf,
}

impl DirectoryTarget {
    /// A target rooted at `root` (created on the first apply).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirectoryTarget { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<env>/<app>`: where the current release of `app` in `env` is visible.
    pub fn app_path(&self, env: &str, app: &str) -> PathBuf {
        self.root.join(env).join(app)
    }

    fn releases_dir(&self, env: &str, app: &str) -> PathBuf {
        self.root.join(env).join(RELEASES_DIR).join(app)
    }

    /// The release applied for `app` in `env`, if any.
    pub fn deployed(&self, env: &str, app: &str) -> Result<Option<ReleaseRecord>, TargetError> {
        validate_env(env)?;
        validate_app(app)?;
        let link = self.app_path(env, app);
        match std::fs::symlink_metadata(&link) {
            Ok(meta) if meta.file_type().is_symlink() => {}
            Ok(_) => return Err(TargetError::NotManaged { path: link }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("inspect", &link)(e)),
        }
        read_record(&link.join(RECORD_FILE)).map(Some)
    }

    /// Writes `files` and the record of `record` as the current release of
    /// `record.app` in `env`, atomically (see the module docs). Returns
    /// `<root>/<env>/<app>`.
    pub fn apply(
        &self,
        env: &str,
        record: &ReleaseRecord,
        files: &BTreeMap<String, String>,
    ) -> Result<PathBuf, TargetError> {
        self.write_release(env, record, files, false)
    }

    /// Writes the release again although it is current: its files were changed or removed on disk
    /// (drift). The rewrite is as atomic as [`DirectoryTarget::apply`].
    pub fn repair(
        &self,
        env: &str,
        record: &ReleaseRecord,
        files: &BTreeMap<String, String>,
    ) -> Result<PathBuf, TargetError> {
        self.write_release(env, record, files, true)
    }

    /// How the files under `<env>/<app>` differ from what was applied, if they do.
    pub fn drift(&self, env: &str, app: &str) -> Result<Option<String>, TargetError> {
        let Some(record) = self.deployed(env, app)? else {
            return Ok(None);
        };
        let actual = hash_dir(&self.app_path(env, app))?;
        Ok(describe_drift(&record.files, &actual))
    }

    /// Where the agent keeps its status (last sync, last errors) for `env`.
    pub fn status_path(&self, env: &str) -> PathBuf {
        self.root.join(env).join(".airlock-agent-status.json")
    }

    fn write_release(
        &self,
        env: &str,
        record: &ReleaseRecord,
        files: &BTreeMap<String, String>,
        force: bool,
    ) -> Result<PathBuf, TargetError> {
        validate_env(env)?;
        let app = record.app.as_str();
        validate_app(app)?;
        validate_files(app, files)?;
        let link = self.app_path(env, app);
        // Applying the release that is already current changes nothing.
        if let Some(current) = self.deployed(env, app)?
            && !force
            && current.sequence == record.sequence
            && current.release_digest == record.release_digest
        {
            return Ok(link);
        }

        // 1. Stage every file in a fresh directory and sync it.
        let releases = self.releases_dir(env, app);
        std::fs::create_dir_all(&releases).map_err(io("create", &releases))?;
        let staging = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(&releases)
            .map_err(io("create a staging directory in", &releases))?;
        for (name, content) in files {
            write_synced(&staging.path().join(name), content.as_bytes())?;
        }
        let record_json =
            serde_json::to_vec_pretty(record).map_err(|e| TargetError::BadRecord {
                path: staging.path().join(RECORD_FILE),
                reason: e.to_string(),
            })?;
        write_synced(&staging.path().join(RECORD_FILE), &record_json)?;
        sync_dir(staging.path())?;

        // 2. Move it to its final name. A directory left there by an apply
        //    that crashed before the swap is not in use: replace it.
        // A repair writes beside the current directory of the same sequence, under a new name.
        let final_name = if force {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            format!("{}.{nanos}", record.sequence)
        } else {
            record.sequence.to_string()
        };
        let final_dir = releases.join(&final_name);
        if self.points_to(&link, &final_dir) {
            return Err(TargetError::BadRecord {
                path: final_dir.join(RECORD_FILE),
                reason: format!(
                    "sequence {} is already applied with another release digest",
                    record.sequence
                ),
            });
        }
        if final_dir.exists() {
            std::fs::remove_dir_all(&final_dir).map_err(io("remove", &final_dir))?;
        }
        let staged = staging.keep();
        std::fs::rename(&staged, &final_dir)
            .map_err(io("move the staged release to", &final_dir))?;
        sync_dir(&releases)?;

        // 3. Swap the symlink: make the new one beside it, rename it over.
        let link_parent = link.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&link_parent).map_err(io("create", &link_parent))?;
        let depth = app.split('/').count() - 1;
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push(RELEASES_DIR);
        target.push(app);
        target.push(&final_name);
        let leaf = app.rsplit('/').next().unwrap_or(app);
        let tmp_link = link_parent.join(format!(".{leaf}.link-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp_link);
        symlink(&target, &tmp_link)?;
        std::fs::rename(&tmp_link, &link).map_err(io("swap the symlink", &link))?;
        sync_dir(&link_parent)?;

        // 4. Keep the previous release for a manual rollback; remove older ones.
        self.prune(&releases, &final_name, record.sequence)?;
        Ok(link)
    }

    fn points_to(&self, link: &Path, dir: &Path) -> bool {
        match (std::fs::canonicalize(link), std::fs::canonicalize(dir)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    /// Keeps the current release directory (`current_name`) and the newest older one (for a manual
    /// rollback); removes every other directory at or below `current` and stale staging directories.
    fn prune(&self, releases: &Path, current_name: &str, current: u64) -> Result<(), TargetError> {
        let mut older: Vec<(u64, String)> = Vec::new();
        for entry in std::fs::read_dir(releases).map_err(io("list", releases))? {
            let entry = entry.map_err(io("list", releases))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".staging-") {
                let _ = std::fs::remove_dir_all(entry.path());
            } else if name != current_name
                && let Some(seq) = release_dir_sequence(&name)
                && seq <= current
            {
                older.push((seq, name));
            }
        }
        // Newest first; a repaired copy of the current sequence is never "the previous release".
        older.sort_by(|a, b| b.cmp(a));
        let keep = older
            .iter()
            .find(|(seq, _)| *seq < current)
            .map(|(_, name)| name.clone());
        for (_, name) in older {
            if Some(&name) != keep.as_ref() {
                let dir = releases.join(&name);
                std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
            }
        }
        Ok(())
    }

    /// Every applied release: (environment, record), sorted by environment then app.
    pub fn list(&self) -> Result<Vec<(String, ReleaseRecord)>, TargetError> {
        let mut out = Vec::new();
        let envs = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io("list", &self.root)(e)),
        };
        for env in envs {
            let env = env.map_err(io("list", &self.root))?;
            let env_name = env.file_name().to_string_lossy().into_owned();
            if validate_env(&env_name).is_err() || !env.path().is_dir() {
                continue;
            }
            let releases = env.path().join(RELEASES_DIR);
            for app in apps_under(&releases, "", 0)? {
                if let Some(record) = self.deployed(&env_name, &app)? {
                    out.push((env_name.clone(), record));
                }
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1.app).cmp(&(&b.0, &b.1.app)));
        Ok(out)
    }
}

/// App names with release directories under `dir` (nested for `team/app`).
fn apps_under(dir: &Path, prefix: &str, depth: usize) -> Result<Vec<String>, TargetError> {
    let mut out = Vec::new();
    if depth > 8 {
        return Ok(out);
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io("list", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || release_dir_sequence(&name).is_some() || !entry.path().is_dir()
        {
            continue;
        }
        let app = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let has_release = std::fs::read_dir(entry.path())
            .map_err(io("list", &entry.path()))?
            .filter_map(Result::ok)
            .any(|e| release_dir_sequence(&e.file_name().to_string_lossy()).is_some());
        if has_release {
            out.push(app.clone());
        }
        out.extend(apps_under(&entry.path(), &app, depth + 1)?);
    }
    Ok(out)
}

fn read_record(path: &Path) -> Result<ReleaseRecord, TargetError> {
    let meta = std::fs::metadata(path).map_err(io("read", path))?;
    if meta.len() > MAX_RECORD_BYTES {
        return Err(TargetError::BadRecord {
            path: path.to_path_buf(),
            reason: format!("over {MAX_RECORD_BYTES} bytes"),
        });
    }
    let bytes = std::fs::read(path).map_err(io("read", path))?;
    serde_json::from_slice(&bytes).map_err(|e| TargetError::BadRecord {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), TargetError> {
    let mut file = std::fs::File::create(path).map_err(io("create", path))?;
    file.write_all(data).map_err(io("write", path))?;
    file.sync_all().map_err(io("sync", path))
}

fn sync_dir(dir: &Path) -> Result<(), TargetError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> Result<(), TargetError> {
    std::os::unix::fs::symlink(target, link).map_err(io("create the symlink", link))
}

#[cfg(not(unix))]
fn symlink(_target: &Path, link: &Path) -> Result<(), TargetError> {
    Err(io("create the symlink", link)(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "the directory target needs symbolic links (unix)",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(app: &str, sequence: u64) -> ReleaseRecord {
        ReleaseRecord {
            app: app.into(),
            sequence,
            release_digest: format!("sha256:{:064x}", sequence),
            image_digest: format!("sha256:{:064x}", sequence + 1000),
            applied_at: "2026-11-23T09:00:00Z".into(),
            signed_by: "key-1".into(),
            commit: String::new(),
            source: String::new(),
            files: BTreeMap::new(),
            floor: 0,
            rollback: None,
        }
    }

    fn files(tag: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "deployment.yaml".to_string(),
                format!("kind: Deployment # {tag}\n"),
            ),
            (
                "service.yaml".to_string(),
                format!("kind: Service # {tag}\n"),
            ),
        ])
    }

    #[test]
    fn applied_release_is_visible_under_env_and_app() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirectoryTarget::new(dir.path());
        let path = target
            .apply("staging", &record("hello", 3), &files("v3"))
            .unwrap();
        assert_eq!(path, dir.path().join("staging/hello"));
        assert_eq!(
            std::fs::read_to_string(path.join("deployment.yaml")).unwrap(),
            "kind: Deployment # v3\n"
        );
        let on_disk: ReleaseRecord =
            serde_json::from_slice(&std::fs::read(path.join(RECORD_FILE)).unwrap()).unwrap();
        assert_eq!(on_disk, record("hello", 3));
        assert_eq!(
            target.deployed("staging", "hello").unwrap(),
            Some(record("hello", 3))
        );
        assert_eq!(target.deployed("production", "hello").unwrap(), None);
    }

    #[test]
    fn new_release_replaces_whole_directory_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirectoryTarget::new(dir.path());
        target
            .apply("staging", &record("hello", 1), &files("v1"))
            .unwrap();
        // Release 2 drops service.yaml: no stale file may survive the swap.
        let only_deploy = BTreeMap::from([("deployment.yaml".to_string(), "v2\n".to_string())]);
        let path = target
            .apply("staging", &record("hello", 2), &only_deploy)
            .unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec![RECORD_FILE, "deployment.yaml"]);
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_link(&path).unwrap(),
            PathBuf::from(".releases/hello/2")
        );
    }

    #[test]
    fn failed_apply_leaves_current_release_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirectoryTarget::new(dir.path());
        target
            .apply("staging", &record("hello", 1), &files("v1"))
            .unwrap();
        let mut bad = files("v2");
        bad.insert("../escape.yaml".into(), "x".into());
        let err = target
            .apply("staging", &record("hello", 2), &bad)
            .unwrap_err();
        assert!(err.to_string().contains("../escape.yaml"), "{err}");
        assert_eq!(
            target.deployed("staging", "hello").unwrap(),
            Some(record("hello", 1))
        );
        assert!(!dir.path().join("staging/escape.yaml").exists());
        assert!(!dir.path().join("staging/.releases/hello/2").exists());
    }

    #[test]
    fn crash_between_stage_and_swap_keeps_old_release_and_next_apply_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirectoryTarget::new(dir.path());
        target
            .apply("staging", &record("hello", 1), &files("v1"))
            .unwrap();
        // Simulate a crash after step 2: release 2 renamed in place, link not swapped.
        let half = dir.path().join("staging/.releases/hello/2");
        std::fs::create_dir_all(&half).unwrap();
        std::fs::write(half.join("partial.yaml"), "half written").unwrap();
        std::fs::create_dir_all(dir.path().join("staging/.releases/hello/.staging-dead")).unwrap();
        assert_eq!(
            target
                .deployed("staging", "hello")
                .unwrap()
                .unwrap()
                .sequence,
            1
        );
        let path = target
            .apply("staging", &record("hello", 2), &files("v2"))
            .unwrap();
        assert!(!path.join("partial.yaml").exists());
        assert_eq!(
            target
                .deployed("staging", "hello")
                .unwrap()
                .unwrap()
                .sequence,
            2
        );
        assert!(
            !dir.path()
                .join("staging/.releases/hello/.staging-dead")
                .exists()
        );
    }

    #[test]
    fn applying_current_release_again_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirectoryTarget::new(dir.path());
        target
            .apply("staging", &record("hello", 1), &files("v1"))
            .unwrap();
        let mut again = record("hello", 1);
        again.applied_at = "2030-01-01T00:00:00Z".into();
        target.apply("staging", &again, &files("v1")).unwrap();
        assert_eq!(
            target.deployed("staging", "hello").unwrap(),
            Some(record("hello", 1))
        );
    }

    #[test]
    fn keeps_previous_release_and_prunes_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirectoryTarget::new(dir.path());
        for seq in 1..=4 {
            target
                .apply("prod", &record("hello", seq), &files("x"))
                .unwrap();
        }
        let releases = dir.path().join("prod/.releases/hello");
        let mut left: Vec<_> = std::fs::read_dir(&releases)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec!["3", "4"]);
    }

    #[test]
    fn refuses_to_replace_directory_it_did_not_make() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("staging/hello")).unwrap();
        let target = DirectoryTarget::new(dir.path());
        let err = target
            .apply("staging", &record("hello", 1), &files("v1"))
            .unwrap_err();
        assert!(matches!(err, TargetError::NotManaged { .. }), "{err}");
    }

    #[test]
    fn rejects_hidden_or_nested_manifest_names() {
        for name in [".airlock-release.json", "a/b.yaml", "", ".."] {
            assert!(validate_file_name(name).is_err(), "{name:?} accepted");
        }
        assert!(validate_file_name("deployment.yaml").is_ok());
        assert!(validate_env("Prod").is_err());
        assert!(validate_app("../etc").is_err());
    }

    #[test]
    fn lists_every_env_and_app_including_nested_app_names() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirectoryTarget::new(dir.path());
        target
            .apply("staging", &record("hello", 2), &files("a"))
            .unwrap();
        target
            .apply("staging", &record("team/api", 5), &files("b"))
            .unwrap();
        target
            .apply("production", &record("hello", 1), &files("c"))
            .unwrap();
        let listed: Vec<_> = target
            .list()
            .unwrap()
            .into_iter()
            .map(|(env, r)| format!("{env} {} {}", r.app, r.sequence))
            .collect();
        assert_eq!(
            listed,
            vec![
                "production hello 1",
                "staging hello 2",
                "staging team/api 5"
            ]
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("staging/team/api/service.yaml")).unwrap(),
            "kind: Service # b\n"
        );
    }

    #[test]
    fn edited_file_is_drift_and_repair_restores_it_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let target = DirectoryTarget::new(dir.path());
        let mut rec = record("hello", 3);
        rec.files = ReleaseRecord::hash_files(&files("v3"));
        let path = target.apply("staging", &rec, &files("v3")).unwrap();
        assert_eq!(target.drift("staging", "hello").unwrap(), None);

        std::fs::write(path.join("deployment.yaml"), "kind: Deployment # hacked\n").unwrap();
        std::fs::remove_file(path.join("service.yaml")).unwrap();
        std::fs::write(path.join("extra.yaml"), "kind: Secret\n").unwrap();
        let drift = target.drift("staging", "hello").unwrap().unwrap();
        assert_eq!(
            drift,
            "deployment.yaml changed, service.yaml missing, extra.yaml added"
        );

        target.repair("staging", &rec, &files("v3")).unwrap();
        assert_eq!(target.drift("staging", "hello").unwrap(), None);
        assert_eq!(
            std::fs::read_to_string(path.join("deployment.yaml")).unwrap(),
            "kind: Deployment # v3\n"
        );
        assert!(!path.join("extra.yaml").exists());
        // The tampered copy is gone; status still lists the app once.
        let listed = target.list().unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        let kept: Vec<_> = std::fs::read_dir(dir.path().join("staging/.releases/hello"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
    }
}
