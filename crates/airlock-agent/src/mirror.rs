//! Mirroring into the outer loop's own registry: before a release is applied, its image is copied (by
//! digest, with its cosign signature and attestations) into `MIRROR/<app>`, verified again there, and the
//! manifests are rewritten to pull it from the mirror, by digest. Clusters of the outer loop then never
//! pull from the boundary, and the mirror holds only images that verified.
//!
//! The signatures copied still name the repository they were made for (`<prefix>/<app>`); the mirror is
//! accepted as serving that repository through `airlock_sign::TrustConfig`'s mirror list, and nothing else.
//!
//! Credentials for the mirror ([`Mirror::open`]), in order: `AIRLOCK_AGENT_MIRROR_USERNAME` /
//! `AIRLOCK_AGENT_MIRROR_PASSWORD` (both set, user not empty); else the `auths` entry for the mirror's
//! host in the Docker client config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, found
//! as `airlock-oci` finds it); else anonymous. A Docker config that cannot be read is an error, not an
//! anonymous fallback. The credentials never appear in logs, errors or `Debug`; only where they came
//! from ([`CredentialSource`]) does.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use airlock_oci::{CopyOptions, RegistryAuth, RegistryStore, Store, copy_with_attachments};
use airlock_sign::{TrustConfig, TrustSet, VerifiedRelease, read_attestations};

use crate::config::{MIRROR_PASSWORD_VAR, MIRROR_USERNAME_VAR, mirror_credentials_from_env};
use crate::error::AgentError;

/// Where the mirror's credentials came from: what logs and `Debug` show instead of the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `AIRLOCK_AGENT_MIRROR_USERNAME` / `AIRLOCK_AGENT_MIRROR_PASSWORD`.
    Environment,
    /// The `auths` entry for the mirror's host in this Docker client config file.
    DockerConfig(PathBuf),
    /// No credentials were found: anonymous access.
    Anonymous,
}

impl std::fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::Environment => {
                write!(f, "{MIRROR_USERNAME_VAR} / {MIRROR_PASSWORD_VAR}")
            }
            CredentialSource::DockerConfig(path) => write!(f, "{}", path.display()),
            CredentialSource::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// The outer loop's registry and repository prefix images are mirrored to.
pub struct Mirror {
    host: String,
    prefix: String,
    insecure: bool,
    // Secret: kept out of Debug, logs and errors (only `credentials` is shown).
    auth: RegistryAuth,
    credentials: CredentialSource,
    // One client per repository, kept so a token is not fetched for every release.
    stores: Mutex<HashMap<String, Arc<RegistryStore>>>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Mirror({}/{}, credentials: {})",
            self.host, self.prefix, self.credentials
        )
    }
}

impl Mirror {
    /// Parses `HOST/PREFIX` (a `docker://` in front is accepted). With `insecure`, plain HTTP is used.
    pub fn parse(spec: &str, insecure: bool) -> Result<Mirror, AgentError> {
        let bad = |reason: &str| AgentError::BadMirror {
            mirror: spec.to_string(),
            reason: reason.to_string(),
        };
        let rest = spec.strip_prefix("docker://").unwrap_or(spec);
        let (host, prefix) = rest
            .split_once('/')
            .ok_or_else(|| bad("expected HOST/PREFIX, e.g. registry.internal:5000/mirror"))?;
        let prefix = prefix.trim_end_matches('/');
        if host.is_empty() || host.chars().any(char::is_whitespace) {
            return Err(bad("the registry host is empty or has spaces"));
        }
        airlock_oci::validate_repository(&format!("{prefix}/app"))
            .map_err(|e| bad(&format!("the prefix is not a repository path: {e}")))?;
        Ok(Mirror {
            host: host.to_string(),
            prefix: prefix.to_string(),
            insecure,
            auth: RegistryAuth::Anonymous,
            credentials: CredentialSource::Anonymous,
            stores: Mutex::new(HashMap::new()),
        })
    }

    /// [`Mirror::parse`], with the credentials of this process's environment: the mirror variables, else
    /// the Docker client config (see the module docs). This is what the agent uses.
    pub fn open(spec: &str, insecure: bool) -> Result<Mirror, AgentError> {
        let mirror = Mirror::parse(spec, insecure)?;
        let user_set = std::env::var_os(MIRROR_USERNAME_VAR).is_some();
        if user_set != std::env::var_os(MIRROR_PASSWORD_VAR).is_some() {
            // Only one of the two: most likely a deployment mistake, so say so rather than fall back
            // quietly.
            tracing::warn!(
                "only one of {MIRROR_USERNAME_VAR} and {MIRROR_PASSWORD_VAR} is set: both are needed; \
                 looking in the Docker client config instead"
            );
        }
        let mirror = mirror.with_credentials(
            mirror_credentials_from_env(),
            airlock_oci::docker_config_path().as_deref(),
        )?;
        tracing::info!(mirror = %mirror.spec(), credentials = %mirror.credentials, "mirror configured");
        Ok(mirror)
    }

    /// Chooses the credentials: `env` (user, password) when given, else the `auths` entry for the
    /// mirror's host in the Docker client config at `docker_config` (a missing file or host means none),
    /// else anonymous. A config that cannot be read or parsed is an error naming the file.
    pub fn with_credentials(
        mut self,
        env: Option<(String, String)>,
        docker_config: Option<&Path>,
    ) -> Result<Mirror, AgentError> {
        self.stores
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        if let Some((user, password)) = env {
            self.auth = RegistryAuth::Basic(user, password);
            self.credentials = CredentialSource::Environment;
            return Ok(self);
        }
        self.auth = RegistryAuth::Anonymous;
        self.credentials = CredentialSource::Anonymous;
        let Some(path) = docker_config else {
            return Ok(self);
        };
        match airlock_oci::docker_config_auth(path, &self.host) {
            Ok(RegistryAuth::Anonymous) => {}
            Ok(auth) => {
                self.auth = auth;
                self.credentials = CredentialSource::DockerConfig(path.to_path_buf());
            }
            Err(e) => {
                return Err(AgentError::MirrorCredentials {
                    mirror: self.spec(),
                    reason: e.to_string(),
                });
            }
        }
        Ok(self)
    }

    /// Where the credentials in use came from.
    pub fn credential_source(&self) -> &CredentialSource {
        &self.credentials
    }

    /// `HOST/PREFIX`, as given.
    fn spec(&self) -> String {
        format!("{}/{}", self.host, self.prefix)
    }

    /// `HOST/PREFIX/<app>`: where `app`'s images are mirrored.
    pub fn reference(&self, app: &str) -> String {
        format!("{}/{}/{app}", self.host, self.prefix)
    }

    fn store(&self, app: &str) -> Result<Arc<RegistryStore>, String> {
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = stores.get(app) {
            return Ok(store.clone());
        }
        let store = Arc::new(
            RegistryStore::new(
                &self.host,
                &format!("{}/{app}", self.prefix),
                self.auth.clone(),
                self.insecure,
            )
            .map_err(|e| format!("mirror {}: {e}", self.reference(app)))?,
        );
        stores.insert(app.to_string(), store.clone());
        Ok(store)
    }

    /// Copies the image of `release` from `source` into the mirror with its signatures and attestations,
    /// then verifies them as read from the mirror (signed by `trust`, for the repository the release names).
    pub async fn copy(
        &self,
        source: &dyn Store,
        app: &str,
        release: &VerifiedRelease,
        trust: &TrustSet,
    ) -> Result<(), String> {
        let image = &release.config.image;
        let dst = self.store(app)?;
        let mirror = self.reference(app);
        copy_with_attachments(
            source,
            dst.as_ref(),
            image.digest.as_str(),
            None,
            CopyOptions::default(),
        )
        .await
        .map_err(|e| {
            // Where the credentials came from (never what they are) tells the operator what to fix
            // when the mirror refuses them or wants some.
            format!(
                "mirroring {}@{} to {mirror} (credentials: {}): {e}",
                image.repository, image.digest, self.credentials
            )
        })?;
        let config = TrustConfig::new(trust.clone()).with_mirror(&mirror, &image.repository);
        airlock_sign::verify_manifest_signature_for(
            dst.as_ref(),
            &config.accepted_references(&mirror),
            &image.digest,
            trust,
        )
        .await
        .map_err(|e| format!("the image mirrored to {mirror} does not verify there: {e}"))?;
        read_attestations(dst.as_ref(), &image.digest, trust)
            .await
            .map_err(|e| {
                format!("the attestations mirrored to {mirror} do not verify there: {e}")
            })?;
        tracing::info!(app, image = %image.digest, mirror, "image mirrored");
        Ok(())
    }

    /// `files` with every reference to the release's image (`REPOSITORY@DIGEST`) pointing at the mirror,
    /// by the same digest. Manifests that never name the image by digest are an error: they could not be
    /// pointed at the mirror safely.
    pub fn rewrite(
        &self,
        app: &str,
        release: &VerifiedRelease,
        files: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let image = &release.config.image;
        let from = format!("{}@{}", image.repository, image.digest);
        let to = format!("{}@{}", self.reference(app), image.digest);
        if !files.values().any(|text| text.contains(&from)) {
            return Err(format!(
                "the manifests of release {} never name its image as {from}: cannot point them at the mirror",
                release.config.sequence
            ));
        }
        Ok(files
            .iter()
            .map(|(name, text)| (name.clone(), text.replace(&from, &to)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_and_prefix_and_names_what_is_wrong() {
        let m = Mirror::parse("docker://registry.internal:5000/mirror/", false).unwrap();
        assert_eq!(m.reference("hello"), "registry.internal:5000/mirror/hello");
        let err = Mirror::parse("registry.internal", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("HOST/PREFIX"), "{err}");
        let err = Mirror::parse("host/Bad Prefix", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("host/Bad Prefix"), "{err}");
    }

    fn basic(m: &Mirror) -> Option<(&str, &str)> {
        match &m.auth {
            RegistryAuth::Basic(u, p) => Some((u, p)),
            _ => None,
        }
    }

    #[test]
    fn credentials_come_from_the_environment_then_the_docker_config_then_none() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        std::fs::write(
            &config,
            r#"{"auths":{"https://reg.internal:5000":{"username":"from-file","password":"file-pw"}}}"#,
        )
        .unwrap();
        let parse = || Mirror::parse("reg.internal:5000/mirror", false).unwrap();

        let m = parse()
            .with_credentials(Some(("from-env".into(), "env-pw".into())), Some(&config))
            .unwrap();
        assert_eq!(basic(&m), Some(("from-env", "env-pw")));
        assert_eq!(m.credential_source(), &CredentialSource::Environment);
        assert!(!format!("{m:?}").contains("env-pw"), "{m:?}");

        let m = parse().with_credentials(None, Some(&config)).unwrap();
        assert_eq!(basic(&m), Some(("from-file", "file-pw")));
        assert_eq!(
            m.credential_source(),
            &CredentialSource::DockerConfig(config.clone())
        );
        let shown = format!("{m:?}");
        assert!(
            shown.contains("config.json") && !shown.contains("file-pw"),
            "{shown}"
        );

        // Another host in the file, no file, no config at all: anonymous.
        let other = Mirror::parse("other.internal/mirror", false).unwrap();
        for m in [
            other.with_credentials(None, Some(&config)).unwrap(),
            parse()
                .with_credentials(None, Some(&dir.path().join("none.json")))
                .unwrap(),
            parse().with_credentials(None, None).unwrap(),
        ] {
            assert_eq!(basic(&m), None);
            assert_eq!(m.credential_source(), &CredentialSource::Anonymous);
        }
    }

    #[test]
    fn a_malformed_docker_config_is_an_error_naming_the_file_not_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        for text in [
            // Syntax error: the file is cut short.
            r#"{"auths":{"reg.internal:5000":{"username":"u","password":"hunter2-pw"}"#,
            // A value of the wrong type, which serde would quote.
            r#"{"auths":"hunter2-pw"}"#,
            // Not base64.
            r#"{"auths":{"reg.internal:5000":{"auth":"hunter2-pw!"}}}"#,
        ] {
            std::fs::write(&config, text).unwrap();
            let err = Mirror::parse("reg.internal:5000/mirror", false)
                .unwrap()
                .with_credentials(None, Some(&config))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&config.display().to_string())
                    && err.contains("reg.internal:5000/mirror"),
                "{err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
