//! One interface over the targets the agent applies releases to, and the agent's status, which lives in
//! the target too (so a restarted or replaced agent continues where the last one stopped).

use crate::git::GitTarget;
use crate::kubernetes::KubernetesTarget;
use crate::spec::TargetSpec;
use crate::target::{DirectoryTarget, ReleaseRecord, TargetError, validate_env, write_atomic};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the agent last did for one environment (`status` prints it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvStatus {
    /// RFC 3339 time the last sync of this environment finished.
    #[serde(default)]
    pub last_sync: Option<String>,
    /// The error that stopped the last sync as a whole, if any.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Per app: its last refusal, failure or wait.
    #[serde(default)]
    pub apps: BTreeMap<String, AppStatus>,
    /// Sequence of the newest revocation list verified: an older list replayed later is refused.
    #[serde(default)]
    pub revocations_sequence: Option<u64>,
    /// The vulnerability database rescans use (and why the last one offered was refused, if it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulndb: Option<crate::rescan::VulnDbStatus>,
}

/// What the agent last noted about one app in one environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    /// The last refusal or failure (with the release it was about), cleared when a sync of the app succeeds.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Why the newest release is not applied yet (promotion soak), if it is waiting.
    #[serde(default)]
    pub waiting: Option<String>,
    /// Drift corrections made for this app so far.
    #[serde(default)]
    pub drift_corrections: u64,
    /// Vulnerabilities a rescan of the running release found that its own report did not list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_findings: Vec<crate::rescan::NewFinding>,
}

/// A target opened from its spec.
#[derive(Debug, Clone)]
pub enum Target {
    /// `directory:DIR`.
    Directory(DirectoryTarget),
    /// `git:REPO[#PATH]`.
    Git(GitTarget),
    /// `kubernetes[:CONTEXT]`.
    Kubernetes(KubernetesTarget),
}

impl Target {
    /// The target `spec` names (nothing is created until the first apply).
    pub fn open(spec: &TargetSpec) -> Target {
        match spec {
            TargetSpec::Directory(dir) => Target::Directory(DirectoryTarget::new(dir)),
            TargetSpec::Git { repo, path } => Target::Git(GitTarget::new(repo, path.clone())),
            TargetSpec::Kubernetes(k) => Target::Kubernetes(KubernetesTarget::new(k.clone())),
        }
    }

    /// The release applied for `app` in `env`, if any.
    pub async fn deployed(
        &self,
        env: &str,
        app: &str,
    ) -> Result<Option<ReleaseRecord>, TargetError> {
        match self {
            Target::Directory(t) => t.deployed(env, app),
            Target::Git(t) => t.deployed(env, app),
            Target::Kubernetes(t) => t.deployed(env, app).await,
        }
    }

    /// Where `app`'s manifests are for `env`.
    pub fn app_path(&self, env: &str, app: &str) -> PathBuf {
        match self {
            Target::Directory(t) => t.app_path(env, app),
            Target::Git(t) => t.app_path(env, app),
            Target::Kubernetes(t) => t.app_path(env, app),
        }
    }

    /// Applies a release; returns the git commit for the git target.
    pub async fn apply(
        &self,
        env: &str,
        record: &ReleaseRecord,
        files: &BTreeMap<String, String>,
    ) -> Result<Option<String>, TargetError> {
        match self {
            Target::Directory(t) => t.apply(env, record, files).map(|_| None),
            Target::Git(t) => t.apply(env, record, files).map(Some),
            Target::Kubernetes(t) => t.apply(env, record, files).await.map(|_| None),
        }
    }

    /// Writes the current release again to undo `drift`.
    pub async fn repair(
        &self,
        env: &str,
        record: &ReleaseRecord,
        files: &BTreeMap<String, String>,
        drift: &str,
    ) -> Result<(), TargetError> {
        match self {
            Target::Directory(t) => t.repair(env, record, files).map(|_| ()),
            Target::Git(t) => t.repair(env, record, files, drift).map(|_| ()),
            Target::Kubernetes(t) => t.repair(env, record, files).await,
        }
    }

    /// How the applied release differs from what is in the target, if it does.
    pub async fn drift(&self, env: &str, app: &str) -> Result<Option<String>, TargetError> {
        match self {
            Target::Directory(t) => t.drift(env, app),
            Target::Git(t) => t.drift(env, app),
            Target::Kubernetes(t) => t.drift(env, app).await,
        }
    }

    /// Why the release running for `app` in `env` has not rolled out yet, as the last [`Target::drift`]
    /// saw it; only the Kubernetes target has rollouts (the others are done once written).
    pub fn rollout_pending(&self, env: &str, app: &str) -> Option<String> {
        match self {
            Target::Kubernetes(t) => t.rollout_pending(env, app),
            Target::Directory(_) | Target::Git(_) => None,
        }
    }

    /// Every applied release: (environment, record).
    pub async fn list(&self) -> Result<Vec<(String, ReleaseRecord)>, TargetError> {
        match self {
            Target::Directory(t) => t.list(),
            Target::Git(t) => t.list(),
            Target::Kubernetes(t) => t.list().await,
        }
    }

    fn status_path(&self, env: &str) -> PathBuf {
        match self {
            Target::Directory(t) => t.status_path(env),
            Target::Git(t) => t.status_path(env),
            Target::Kubernetes(t) => t.status_path(env),
        }
    }

    /// The stored status of `env` (empty when none was written yet or it is unreadable).
    pub fn read_status(&self, env: &str) -> EnvStatus {
        if validate_env(env).is_err() {
            return EnvStatus::default();
        }
        std::fs::read(self.status_path(env))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Stores the status of `env`, atomically.
    pub fn write_status(&self, env: &str, status: &EnvStatus) -> Result<(), TargetError> {
        validate_env(env)?;
        if let Target::Git(t) = self {
            // The status lives in the git directory: the repository must exist first.
            t.ensure_repo()?;
        }
        let path = self.status_path(env);
        let json = serde_json::to_vec_pretty(status).map_err(|e| TargetError::BadRecord {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&path, &json)
    }

    /// Environments with a stored status.
    pub fn status_envs(&self) -> Vec<String> {
        let dir = match self {
            Target::Directory(t) => t.root().to_path_buf(),
            Target::Git(t) => match t.status_path("x").parent() {
                Some(p) => p.to_path_buf(),
                None => return Vec::new(),
            },
            Target::Kubernetes(t) => t.state_dir().to_path_buf(),
        };
        let mut envs = Vec::new();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let env = match self {
                Target::Directory(_) => Some(name.clone()),
                Target::Git(_) | Target::Kubernetes(_) => name
                    .strip_prefix("status-")
                    .and_then(|n| n.strip_suffix(".json"))
                    .map(str::to_string),
            };
            if let Some(env) = env
                && validate_env(&env).is_ok()
                && self.status_path(&env).is_file()
            {
                envs.push(env);
            }
        }
        envs.sort();
        envs
    }
}
