//! The revocation list: image or release digests that must no longer run, whatever their signatures say.
//! The gate publishes it (`airlock-gate revoke DIGEST --reason TEXT`) as a signed OCI artifact at a fixed
//! place of the boundary, [`REVOCATIONS_REPOSITORY`]`:`[`REVOCATIONS_TAG`]; every agent reads it with
//! [`read_revocations`] before it deploys and refuses what it names.
//!
//! The list only grows and carries a sequence number that grows with every change, so an agent that
//! remembers the last sequence it saw can refuse an older list replayed to lift a revocation.

use std::collections::BTreeMap;

use airlock_oci::{Descriptor, Digest, ImageManifest, Store, media_type};
use serde::{Deserialize, Serialize};

use crate::attached::{expect_artifact, get_manifest_if_present, read_layer};
use crate::cosign::verify_manifest_signature_for;
use crate::{KeyId, SignError, SigningKey, TrustSet, sign_manifest};

/// The boundary repository holding the revocation list. App names cannot contain a dot, so it never
/// collides with an app's repository.
pub const REVOCATIONS_REPOSITORY: &str = "airlock.revocations";
/// The tag of the current revocation list in [`REVOCATIONS_REPOSITORY`].
pub const REVOCATIONS_TAG: &str = "revocations";
/// Artifact type of the revocation list manifest, also the media type of its config (the list itself).
pub const REVOCATIONS_ARTIFACT_TYPE: &str = "application/vnd.airlock.revocations.v1+json";
/// Largest revocation list read.
pub const MAX_REVOCATION_LIST: u64 = 4 * 1024 * 1024;
/// Longest reason accepted, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// One revoked digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The image or release manifest digest that must no longer run.
    pub digest: Digest,
    /// Why, as the operator wrote it.
    pub reason: String,
    /// RFC 3339 time of the revocation.
    pub revoked_at: String,
    /// The key id of the gate key that signed the revocation.
    pub revoked_by: String,
}

/// The whole list as signed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    /// Grows by one with every change; an agent refuses a list older than the last it saw.
    pub sequence: u64,
    /// RFC 3339 time of the last change.
    pub updated: String,
    /// Revoked digests, oldest first.
    pub revoked: Vec<Revocation>,
}

impl RevocationList {
    /// The revocation of `digest`, if it is revoked.
    pub fn find(&self, digest: &Digest) -> Option<&Revocation> {
        self.revoked.iter().find(|r| r.digest == *digest)
    }
}

/// A revocation list whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRevocations {
    /// The list.
    pub list: RevocationList,
    /// Digest of the list's manifest.
    pub digest: Digest,
    /// The key that signed it.
    pub signed_by: KeyId,
}

fn check_reason(reason: &str) -> Result<(), SignError> {
    let what = "revocation reason";
    if reason.trim().is_empty() {
        return Err(SignError::invalid(
            what,
            "is empty; say why the digest must not run",
        ));
    }
    if reason.len() > MAX_REASON_BYTES {
        return Err(SignError::invalid(
            what,
            format!(
                "{} bytes, more than the {MAX_REASON_BYTES} allowed",
                reason.len()
            ),
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err(SignError::invalid(what, "contains control characters"));
    }
    Ok(())
}

/// Reads and verifies the revocation list in `store` (the [`REVOCATIONS_REPOSITORY`] repository, signed for
/// `docker_reference`). `Ok(None)` when no list was ever published. A list that is present but unsigned,
/// badly signed, signed by an untrusted key or for another repository fails with that error; a list older
/// than `min_sequence` (the last one this reader saw) is [`SignError::SequenceNotNewer`].
pub async fn read_revocations(
    store: &dyn Store,
    docker_reference: &str,
    trust: &TrustSet,
    min_sequence: Option<u64>,
) -> Result<Option<VerifiedRevocations>, SignError> {
    let Some(fetched) = get_manifest_if_present(store, REVOCATIONS_TAG).await? else {
        return Ok(None);
    };
    let digest = fetched.digest;
    let (signed_by, _) =
        verify_manifest_signature_for(store, &[docker_reference], &digest, trust).await?;
    let what = format!("revocation list {docker_reference}:{REVOCATIONS_TAG} ({digest})");
    let manifest = ImageManifest::from_bytes(&fetched.bytes, &what)?;
    expect_artifact(
        &manifest,
        &what,
        REVOCATIONS_ARTIFACT_TYPE,
        REVOCATIONS_ARTIFACT_TYPE,
        "a revocation list",
    )?;
    let bytes = read_layer(store, &manifest.config, MAX_REVOCATION_LIST, &what).await?;
    let list: RevocationList =
        serde_json::from_slice(&bytes).map_err(|e| SignError::json(what.clone(), e))?;
    if let Some(min) = min_sequence
        && list.sequence < min
    {
        return Err(SignError::SequenceNotNewer {
            sequence: list.sequence,
            deployed: min,
        });
    }
    Ok(Some(VerifiedRevocations {
        list,
        digest,
        signed_by,
    }))
}

/// Adds `digest` with `reason` to the revocation list in `store` (signed for `docker_reference`), signs the
/// new list with `key` and tags it [`REVOCATIONS_TAG`]. The current list, if any, must verify with `key`'s
/// own public key (a list the gate cannot vouch for is not extended). Revoking a digest already listed
/// changes nothing. `now` is the RFC 3339 time recorded. Returns the list now published.
pub async fn publish_revocation(
    store: &dyn Store,
    docker_reference: &str,
    digest: &Digest,
    reason: &str,
    now: &str,
    key: &SigningKey,
) -> Result<VerifiedRevocations, SignError> {
    check_reason(reason)?;
    let own = TrustSet::new(vec![key.public_key()]);
    let current = read_revocations(store, docker_reference, &own, None).await?;
    if let Some(current) = &current
        && current.list.find(digest).is_some()
    {
        return Ok(current.clone());
    }
    let mut list = current.map(|c| c.list).unwrap_or_default();
    list.sequence += 1;
    list.updated = now.to_string();
    list.revoked.push(Revocation {
        digest: digest.clone(),
        reason: reason.to_string(),
        revoked_at: now.to_string(),
        revoked_by: key.public_key().key_id().to_string(),
    });
    let config_bytes =
        serde_json::to_vec(&list).map_err(|e| SignError::json("revocation list", e))?;
    let config = Descriptor::for_bytes(REVOCATIONS_ARTIFACT_TYPE, &config_bytes);
    store.put_blob(&config.digest, &config_bytes).await?;
    // An artifact with nothing but its config carries the OCI empty descriptor as its one layer.
    let empty = Descriptor::empty();
    store.put_blob(&empty.digest, b"{}").await?;
    let mut manifest = ImageManifest::new(config, vec![empty]);
    manifest.artifact_type = Some(REVOCATIONS_ARTIFACT_TYPE.to_string());
    manifest.annotations = Some(BTreeMap::from([(
        "org.opencontainers.image.created".to_string(),
        now.to_string(),
    )]));
    let manifest_digest = store
        .put_manifest(
            &manifest.to_bytes(),
            media_type::OCI_MANIFEST,
            Some(REVOCATIONS_TAG),
        )
        .await?;
    sign_manifest(store, docker_reference, &manifest_digest, key).await?;
    tracing::info!(%digest, sequence = list.sequence, list = %manifest_digest, "published revocation");
    Ok(VerifiedRevocations {
        list,
        digest: manifest_digest,
        signed_by: key.public_key().key_id(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_oci::OciLayout;

    const REPO: &str = "registry.example/airlock.revocations";
    const NOW: &str = "2026-01-01T00:00:00Z";

    fn layout() -> (tempfile::TempDir, OciLayout) {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::create(&dir.path().join("rev")).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn no_list_reads_as_none() {
        let (_d, store) = layout();
        let trust = TrustSet::new(vec![SigningKey::generate().public_key()]);
        assert!(
            read_revocations(&store, REPO, &trust, None)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn revocations_accumulate_and_verify() {
        let (_d, store) = layout();
        let key = SigningKey::generate();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        publish_revocation(&store, REPO, &a, "CVE under active exploit", NOW, &key)
            .await
            .unwrap();
        let again = publish_revocation(&store, REPO, &a, "twice", NOW, &key)
            .await
            .unwrap();
        assert_eq!(again.list.sequence, 1, "revoking twice changes nothing");
        publish_revocation(&store, REPO, &b, "leaked secret", NOW, &key)
            .await
            .unwrap();
        let trust = TrustSet::new(vec![key.public_key()]);
        let read = read_revocations(&store, REPO, &trust, Some(2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.list.sequence, 2);
        assert_eq!(
            read.list.find(&a).unwrap().reason,
            "CVE under active exploit"
        );
        assert_eq!(read.list.find(&b).unwrap().reason, "leaked secret");
        assert_eq!(read.signed_by, key.public_key().key_id());
        assert!(read.list.find(&Digest::of(b"c")).is_none());
    }

    #[tokio::test]
    async fn older_list_replayed_is_refused() {
        let (_d, store) = layout();
        let key = SigningKey::generate();
        let first = publish_revocation(&store, REPO, &Digest::of(b"a"), "r", NOW, &key)
            .await
            .unwrap();
        publish_revocation(&store, REPO, &Digest::of(b"b"), "r", NOW, &key)
            .await
            .unwrap();
        // An attacker with write access to the boundary puts the signed first list back.
        let old = store.get_manifest(first.digest.as_str()).await.unwrap();
        store
            .put_manifest(&old.bytes, &old.media_type, Some(REVOCATIONS_TAG))
            .await
            .unwrap();
        let trust = TrustSet::new(vec![key.public_key()]);
        let err = read_revocations(&store, REPO, &trust, Some(2))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                SignError::SequenceNotNewer {
                    sequence: 1,
                    deployed: 2
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn list_by_untrusted_key_or_unsigned_is_an_error_not_empty() {
        let (_d, store) = layout();
        let key = SigningKey::generate();
        let published = publish_revocation(&store, REPO, &Digest::of(b"a"), "r", NOW, &key)
            .await
            .unwrap();
        let stranger = TrustSet::new(vec![SigningKey::generate().public_key()]);
        let err = read_revocations(&store, REPO, &stranger, None)
            .await
            .unwrap_err();
        assert!(matches!(err, SignError::UntrustedKey { .. }), "{err}");
        store
            .untag(&crate::signature_tag(&published.digest))
            .unwrap();
        let trust = TrustSet::new(vec![key.public_key()]);
        let err = read_revocations(&store, REPO, &trust, None)
            .await
            .unwrap_err();
        assert!(matches!(err, SignError::Unsigned { .. }), "{err}");
    }

    #[tokio::test]
    async fn refuses_empty_or_control_character_reasons() {
        let (_d, store) = layout();
        let key = SigningKey::generate();
        for reason in ["", "  ", "line\nbreak"] {
            let err = publish_revocation(&store, REPO, &Digest::of(b"a"), reason, NOW, &key)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("revocation reason"), "{err}");
        }
        assert!(store.list_tags_sync().unwrap().is_empty());
    }
}
