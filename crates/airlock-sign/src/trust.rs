//! What a verifier trusts: public keys (each known by its [`crate::KeyId`], several at once so a rotation has no
//! gap), the repositories that may serve another repository's releases (mirrors), and the attestations a
//! release's image must carry. [`crate::verify`] checks a release against one of these.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{PublicKey, SignError, TrustSet};

/// A verifier's trust configuration.
#[derive(Clone, Debug, Default)]
pub struct TrustConfig {
    /// The trusted public keys.
    pub keys: TrustSet,
    /// Mirror repository → the repositories whose signatures it may serve. A signature names the repository
    /// it was made for (`docker-reference`); read from a mirror, it is accepted only when listed here.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Predicate types every release's image must carry as verified attestations.
    pub required_predicates: Vec<String>,
}

impl TrustConfig {
    /// Trusts `keys`, no mirrors, no required attestations.
    pub fn new(keys: TrustSet) -> Self {
        TrustConfig {
            keys,
            ..TrustConfig::default()
        }
    }

    /// Adds `mirror` as a repository that may serve releases signed for `origin`.
    pub fn with_mirror(mut self, mirror: &str, origin: &str) -> Self {
        let origins = self.mirrors.entry(mirror.to_string()).or_default();
        if !origins.iter().any(|o| o == origin) {
            origins.push(origin.to_string());
        }
        self
    }

    /// Requires a verified attestation of each of `predicate_types` on every release's image.
    pub fn requiring(mut self, predicate_types: &[&str]) -> Self {
        self.required_predicates = predicate_types.iter().map(|p| p.to_string()).collect();
        self
    }

    /// Adds the public key in the PEM file `path`. When `expected_key_id` is given (`sha256:<hex>`, as
    /// `airlock-gate keys id` prints it) the key must have that id, so a swapped key file is caught at load
    /// time rather than trusted silently.
    pub fn add_key_file(
        &mut self,
        path: &Path,
        expected_key_id: Option<&str>,
    ) -> Result<(), SignError> {
        let key = PublicKey::load(path)?;
        self.add_key(key, expected_key_id).map_err(|e| match e {
            SignError::Key { reason, .. } => SignError::Key {
                what: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// Adds `key`, checking its id against `expected_key_id` when given. Adding a key already trusted is a
    /// no-op.
    pub fn add_key(
        &mut self,
        key: PublicKey,
        expected_key_id: Option<&str>,
    ) -> Result<(), SignError> {
        let id = key.key_id();
        if let Some(expected) = expected_key_id
            && id.as_str() != expected
        {
            return Err(SignError::Key {
                what: "trusted public key".to_string(),
                reason: format!("its key id is {id}, but the trust configuration pins {expected}"),
            });
        }
        if self.keys.find(id.as_str()).is_none() {
            self.keys.keys.push(key);
        }
        Ok(())
    }

    /// The docker references a signature read from `read_from` may name: `read_from` itself first, then the
    /// origins it mirrors.
    pub fn accepted_references<'a>(&'a self, read_from: &'a str) -> Vec<&'a str> {
        let mut out = vec![read_from];
        if let Some(origins) = self.mirrors.get(read_from) {
            out.extend(origins.iter().map(String::as_str));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;

    #[test]
    fn mirror_accepts_its_origins_after_itself() {
        let t = TrustConfig::default()
            .with_mirror("dmz.example/hello", "gate.example/hello")
            .with_mirror("dmz.example/hello", "gate.example/hello");
        assert_eq!(
            t.accepted_references("dmz.example/hello"),
            ["dmz.example/hello", "gate.example/hello"]
        );
        assert_eq!(
            t.accepted_references("gate.example/hello"),
            ["gate.example/hello"]
        );
    }

    #[test]
    fn pinned_key_id_must_match() {
        let key = SigningKey::generate().public_key();
        let mut t = TrustConfig::default();
        let err = t
            .add_key(key.clone(), Some("sha256:0000"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key.key_id().as_str()), "{err}");
        assert!(t.keys.keys.is_empty());
        t.add_key(key.clone(), Some(key.key_id().as_str())).unwrap();
        t.add_key(key, None).unwrap();
        assert_eq!(t.keys.keys.len(), 1);
    }

    #[test]
    fn key_file_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.pub");
        let key = SigningKey::generate().public_key();
        std::fs::write(&path, key.to_pem()).unwrap();
        let mut t = TrustConfig::default();
        let err = t
            .add_key_file(&path, Some("sha256:beef"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("gate.pub"), "{err}");
        t.add_key_file(&path, None).unwrap();
        assert_eq!(t.keys.keys, vec![key]);
    }
}
