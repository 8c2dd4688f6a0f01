//! Mirroring into the outer loop's own registry: before a release is applied, its image is copied (by
//! digest, with its cosign signature and attestations) into `MIRROR/<app>`, verified again there, and the
//! manifests are rewritten to pull it from the mirror, by digest. Clusters of the outer loop then never
//! pull from the boundary, and the mirror holds only images that verified.
//!
//! The signatures copied still name the repository they were made for (`<prefix>/<app>`); the mirror is
//! accepted as serving that repository through `airlock_sign::TrustConfig`'s mirror list, and nothing else.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use airlock_oci::{CopyOptions, RegistryAuth, RegistryStore, Store, copy_with_attachments};
use airlock_sign::{TrustConfig, TrustSet, VerifiedRelease, read_attestations};

use crate::error::AgentError;

/// The outer loop's registry and repository prefix images are mirrored to.
pub struct Mirror {
    host: String,
    prefix: String,
    insecure: bool,
    // One client per repository, kept so a token is not fetched for every release.
    stores: Mutex<HashMap<String, Arc<RegistryStore>>>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mirror({}/{})", self.host, self.prefix)
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
            stores: Mutex::new(HashMap::new()),
        })
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
                RegistryAuth::Anonymous,
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
            format!(
                "mirroring {}@{} to {mirror}: {e}",
                image.repository, image.digest
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
}
