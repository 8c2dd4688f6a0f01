//! The config file of `airlock-agent run --config FILE` (TOML): one source, trusted keys, and the ordered
//! environments this agent deploys, each with its target and optionally `after` + `soak_seconds`.
//!
//! ```toml
//! source = "docker://registry.dmz.example/boundary"
//! apps = ["hello", "team/api"]
//! trust_keys = ["gate.pub"]
//! admission = "policies/admission"
//! interval_seconds = 30
//! jitter_seconds = 5
//! listen = "127.0.0.1:9464"
//!
//! [evidence]
//! store = "docker://registry.outer.example/airlock-evidence"
//! key = "agent.key"           # signs this agent's health evidence
//! trust_keys = ["agent.pub"]  # verifies earlier environments' evidence
//!
//! [[environment]]
//! name = "staging"
//! target = "directory:/srv/deploy"
//!
//! [[environment]]
//! name = "production"
//! target = "git:/srv/gitops#clusters/prod"
//! after = "staging"
//! soak_seconds = 3600
//! ```
//!
//! A `kubernetes[:CONTEXT]` target also takes `kubeconfig` (file), `rollout_timeout_seconds` (default
//! 300) and `state_dir` (where the agent's status file is kept).
//!
//! Relative paths are relative to the config file. Registry pull credentials come from the environment
//! (`AIRLOCK_AGENT_REGISTRY_USERNAME`, `AIRLOCK_AGENT_REGISTRY_PASSWORD`), never from the file; the
//! mirror's from `AIRLOCK_AGENT_MIRROR_USERNAME` / `AIRLOCK_AGENT_MIRROR_PASSWORD`, else the Docker
//! client config (see [`crate::mirror`]).

use crate::error::AgentError;
use crate::evidence::EvidenceConfig;
use crate::source::SourceOptions;
use crate::spec::{SourceSpec, TargetSpec};
use crate::sync::{DEFAULT_REFERENCE_PREFIX, Promotion, SyncConfig, load_trust};
use crate::target::validate_env;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable holding the registry user name.
pub const USERNAME_VAR: &str = "AIRLOCK_AGENT_REGISTRY_USERNAME";
/// Environment variable holding the registry password.
pub const PASSWORD_VAR: &str = "AIRLOCK_AGENT_REGISTRY_PASSWORD";
/// Environment variable holding the user name for the mirror registry (`mirror` / `--mirror`).
pub const MIRROR_USERNAME_VAR: &str = "AIRLOCK_AGENT_MIRROR_USERNAME";
/// Environment variable holding the password for the mirror registry.
pub const MIRROR_PASSWORD_VAR: &str = "AIRLOCK_AGENT_MIRROR_PASSWORD";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    source: String,
    #[serde(default)]
    apps: Vec<String>,
    #[serde(default)]
    insecure_registry: bool,
    trust_keys: Vec<PathBuf>,
    #[serde(default)]
    admission: Option<PathBuf>,
    #[serde(default)]
    reference_prefix: Option<String>,
    /// `HOST/PREFIX` of the outer loop's registry that verified images are mirrored to.
    #[serde(default)]
    mirror: Option<String>,
    #[serde(default)]
    interval_seconds: Option<u64>,
    #[serde(default)]
    jitter_seconds: u64,
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    evidence: Option<RawEvidence>,
    #[serde(rename = "environment", default)]
    environments: Vec<RawEnvironment>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvidence {
    store: String,
    #[serde(default)]
    key: Option<PathBuf>,
    #[serde(default)]
    trust_keys: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    name: String,
    target: String,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    soak_seconds: Option<u64>,
    /// Kubernetes target only: kubeconfig file (else KUBECONFIG, ~/.kube/config or in-cluster).
    #[serde(default)]
    kubeconfig: Option<PathBuf>,
    /// Kubernetes target only: how long a rollout may take.
    #[serde(default)]
    rollout_timeout_seconds: Option<u64>,
    /// Kubernetes target only: where the agent's status file is kept.
    #[serde(default)]
    state_dir: Option<PathBuf>,
}

/// A loaded, checked config.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// One sync config per environment, in the order given.
    pub environments: Vec<SyncConfig>,
    /// Time between cycles.
    pub interval: Duration,
    /// Up to this much is added to each interval at random, so agents do not poll in step.
    pub jitter: Duration,
    /// Where `/healthz` and `/metrics` are served.
    pub listen: Option<SocketAddr>,
}

/// Registry credentials from the environment, if both variables are set.
pub fn credentials_from_env() -> Option<(String, String)> {
    env_pair(USERNAME_VAR, PASSWORD_VAR)
}

/// Mirror registry credentials from the environment, if both variables are set and the user is not
/// empty (the mirror falls back to the Docker client config otherwise).
pub fn mirror_credentials_from_env() -> Option<(String, String)> {
    env_pair(MIRROR_USERNAME_VAR, MIRROR_PASSWORD_VAR)
}

fn env_pair(user_var: &str, password_var: &str) -> Option<(String, String)> {
    match (std::env::var(user_var), std::env::var(password_var)) {
        (Ok(user), Ok(password)) if !user.is_empty() => Some((user, password)),
        _ => None,
    }
}

impl RunConfig {
    /// Reads and checks `path`; every error names the key at fault.
    pub fn load(path: &Path) -> Result<RunConfig, AgentError> {
        let err = |reason: String| AgentError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        let source: SourceSpec = raw
            .source
            .parse()
            .map_err(|e| err(format!("source: {e}")))?;
        let source = match source {
            SourceSpec::Layout(p) => SourceSpec::Layout(resolve(&p)),
            SourceSpec::Archive(p) => SourceSpec::Archive(resolve(&p)),
            other => other,
        };
        let trust_paths: Vec<PathBuf> = raw.trust_keys.iter().map(|p| resolve(p)).collect();
        let trust = load_trust(&trust_paths).map_err(|e| err(format!("trust_keys: {e}")))?;
        let options = SourceOptions {
            apps: raw.apps.clone(),
            insecure: raw.insecure_registry,
            credentials: credentials_from_env(),
        };
        let evidence = match &raw.evidence {
            Some(e) => {
                let store: SourceSpec = e
                    .store
                    .parse()
                    .map_err(|x| err(format!("evidence.store: {x}")))?;
                let store = match store {
                    SourceSpec::Layout(p) => SourceSpec::Layout(resolve(&p)),
                    SourceSpec::Archive(_) => {
                        return Err(err(
                            "evidence.store: an archive cannot hold evidence; use oci:DIR or docker://HOST/PREFIX".into(),
                        ));
                    }
                    other => other,
                };
                let key = match &e.key {
                    Some(k) => Some(
                        airlock_sign::SigningKey::load(&resolve(k))
                            .map_err(|x| err(format!("evidence.key: {x}")))?,
                    ),
                    None => None,
                };
                let trust = if e.trust_keys.is_empty() {
                    airlock_sign::TrustSet::default()
                } else {
                    let paths: Vec<PathBuf> = e.trust_keys.iter().map(|p| resolve(p)).collect();
                    load_trust(&paths).map_err(|x| err(format!("evidence.trust_keys: {x}")))?
                };
                Some(EvidenceConfig {
                    store,
                    options: SourceOptions {
                        apps: Vec::new(),
                        insecure: raw.insecure_registry,
                        credentials: credentials_from_env(),
                    },
                    key,
                    trust,
                })
            }
            None => None,
        };

        if raw.environments.is_empty() {
            return Err(err(
                "no [[environment]]: give at least one with name and target".into(),
            ));
        }
        let mut environments: Vec<SyncConfig> = Vec::new();
        for (i, env) in raw.environments.iter().enumerate() {
            let key = |field: &str| format!("environment[{i}].{field}");
            if validate_env(&env.name).is_err() {
                return Err(err(format!(
                    "{}: {:?} is not valid: expected 1-63 characters of [a-z0-9-], not starting with '-'",
                    key("name"),
                    env.name
                )));
            }
            if environments.iter().any(|e| e.env == env.name) {
                return Err(err(format!(
                    "{}: {:?} appears twice",
                    key("name"),
                    env.name
                )));
            }
            let target: TargetSpec = env
                .target
                .parse()
                .map_err(|e| err(format!("{}: {e}", key("target"))))?;
            let target = match target {
                TargetSpec::Directory(p) => TargetSpec::Directory(resolve(&p)),
                TargetSpec::Git { repo, path } => TargetSpec::Git {
                    repo: resolve(&repo),
                    path,
                },
                TargetSpec::Kubernetes(mut k) => {
                    k.kubeconfig = env.kubeconfig.as_deref().map(resolve);
                    k.state_dir = env.state_dir.as_deref().map(resolve);
                    if let Some(secs) = env.rollout_timeout_seconds {
                        if !(1..=86_400).contains(&secs) {
                            return Err(err(format!(
                                "{}: {secs} is outside 1..=86400",
                                key("rollout_timeout_seconds")
                            )));
                        }
                        k.rollout_timeout = Duration::from_secs(secs);
                    }
                    TargetSpec::Kubernetes(k)
                }
            };
            if !matches!(target, TargetSpec::Kubernetes(_)) {
                for (given, field) in [
                    (env.kubeconfig.is_some(), "kubeconfig"),
                    (
                        env.rollout_timeout_seconds.is_some(),
                        "rollout_timeout_seconds",
                    ),
                    (env.state_dir.is_some(), "state_dir"),
                ] {
                    if given {
                        return Err(err(format!(
                            "{}: only a kubernetes target takes it",
                            key(field)
                        )));
                    }
                }
            }
            let promotion = match (&env.after, env.soak_seconds) {
                (Some(after), soak) => {
                    if !environments.iter().any(|e| &e.env == after) {
                        return Err(err(format!(
                            "{}: {after:?} is not an environment listed before {:?}",
                            key("after"),
                            env.name
                        )));
                    }
                    if evidence.as_ref().is_none_or(|e| e.trust.keys.is_empty()) {
                        return Err(err(format!(
                            "{}: promotion after {after:?} needs [evidence] with store and trust_keys",
                            key("after")
                        )));
                    }
                    Some(Promotion {
                        after: after.clone(),
                        soak: Duration::from_secs(soak.unwrap_or(0)),
                    })
                }
                (None, Some(_)) => {
                    return Err(err(format!(
                        "{}: a soak needs `after` naming the earlier environment",
                        key("soak_seconds")
                    )));
                }
                (None, None) => None,
            };
            environments.push(SyncConfig {
                source: source.clone(),
                reference_prefix: raw
                    .reference_prefix
                    .clone()
                    .unwrap_or_else(|| DEFAULT_REFERENCE_PREFIX.to_string()),
                trust: trust.clone(),
                env: env.name.clone(),
                target,
                admission: raw.admission.as_ref().map(|p| resolve(p)),
                source_options: options.clone(),
                promotion,
                evidence: evidence.clone(),
                mirror: raw.mirror.clone(),
            });
        }
        let interval = raw.interval_seconds.unwrap_or(30);
        if !(1..=86_400).contains(&interval) {
            return Err(err(format!(
                "interval_seconds: {interval} is outside 1..=86400"
            )));
        }
        if raw.jitter_seconds > interval {
            return Err(err(format!(
                "jitter_seconds: {} is larger than interval_seconds {interval}",
                raw.jitter_seconds
            )));
        }
        let listen = match &raw.listen {
            Some(l) => Some(
                l.parse::<SocketAddr>()
                    .map_err(|e| err(format!("listen: {l:?} is not host:port: {e}")))?,
            ),
            None => None,
        };
        Ok(RunConfig {
            environments,
            interval: Duration::from_secs(interval),
            jitter: Duration::from_secs(raw.jitter_seconds),
            listen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        std::fs::write(
            dir.join("gate.pub"),
            airlock_sign::SigningKey::generate().public_key().to_pem(),
        )
        .unwrap();
        let path = dir.join("agent.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn loads_ordered_environments_with_paths_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = airlock_sign::SigningKey::generate();
        std::fs::write(dir.path().join("agent.key"), key.to_pkcs8_pem()).unwrap();
        std::fs::write(dir.path().join("agent.pub"), key.public_key().to_pem()).unwrap();
        let path = write(
            dir.path(),
            r#"
source = "oci:boundary"
trust_keys = ["gate.pub"]
interval_seconds = 2
jitter_seconds = 1
[evidence]
store = "oci:evidence"
key = "agent.key"
trust_keys = ["agent.pub"]
[[environment]]
name = "staging"
target = "directory:deploy"
[[environment]]
name = "production"
target = "git:gitops#clusters"
after = "staging"
soak_seconds = 5
"#,
        );
        let cfg = RunConfig::load(&path).unwrap();
        assert_eq!(cfg.interval, Duration::from_secs(2));
        assert_eq!(cfg.environments.len(), 2);
        assert_eq!(
            cfg.environments[0].source,
            SourceSpec::Layout(dir.path().join("boundary"))
        );
        assert_eq!(
            cfg.environments[1].target,
            TargetSpec::Git {
                repo: dir.path().join("gitops"),
                path: "clusters".into()
            }
        );
        assert_eq!(
            cfg.environments[1].promotion,
            Some(Promotion {
                after: "staging".into(),
                soak: Duration::from_secs(5)
            })
        );
    }

    #[test]
    fn kubernetes_target_takes_its_settings_and_others_refuse_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "source = \"oci:b\"\ntrust_keys = [\"gate.pub\"]\n[[environment]]\nname=\"prod\"\ntarget=\"kubernetes:prod-eu\"\nkubeconfig=\"kube.yaml\"\nrollout_timeout_seconds=90\nstate_dir=\"state\"\n",
        );
        let cfg = RunConfig::load(&path).unwrap();
        let TargetSpec::Kubernetes(k) = &cfg.environments[0].target else {
            panic!("not kubernetes: {:?}", cfg.environments[0].target);
        };
        assert_eq!(k.context.as_deref(), Some("prod-eu"));
        assert_eq!(k.kubeconfig, Some(dir.path().join("kube.yaml")));
        assert_eq!(k.state_dir, Some(dir.path().join("state")));
        assert_eq!(k.rollout_timeout, Duration::from_secs(90));
        let path = write(
            dir.path(),
            "source = \"oci:b\"\ntrust_keys = [\"gate.pub\"]\n[[environment]]\nname=\"prod\"\ntarget=\"directory:d\"\nrollout_timeout_seconds=90\n",
        );
        let err = RunConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("environment[0].rollout_timeout_seconds"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "source = \"oci:b\"\ntrust_keys = [\"gate.pub\"]\ncolour = 1\n[[environment]]\nname=\"s\"\ntarget=\"directory:d\"\n",
                "colour",
            ),
            (
                "source = \"oci:b\"\ntrust_keys = [\"gate.pub\"]\n[[environment]]\nname=\"prod\"\ntarget=\"directory:d\"\nafter=\"staging\"\n",
                "environment[0].after",
            ),
            (
                "source = \"oci:b\"\ntrust_keys = [\"gate.pub\"]\n[[environment]]\nname=\"Prod\"\ntarget=\"directory:d\"\n",
                "environment[0].name",
            ),
            (
                "source = \"oci:b\"\ntrust_keys = [\"gate.pub\"]\n[[environment]]\nname=\"prod\"\ntarget=\"kubernetes:\"\n",
                "environment[0].target",
            ),
            (
                "source = \"oci:b\"\ntrust_keys = [\"missing.pub\"]\n[[environment]]\nname=\"prod\"\ntarget=\"directory:d\"\n",
                "trust_keys",
            ),
        ];
        for (text, key) in cases {
            let err = RunConfig::load(&write(dir.path(), text))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{key} not named in: {err}");
        }
    }
}
