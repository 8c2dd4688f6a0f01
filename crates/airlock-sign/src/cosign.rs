//! cosign "simple signing" signatures of image manifests, stored the way `cosign sign --key` stores them, so
//! cosign (and any verifier that knows the format) can check what airlock signed, and airlock can check what
//! cosign signed.

use std::collections::BTreeMap;

use airlock_oci::{Descriptor, Digest, Store};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::attached::{attached_tag, read_attached, read_layer, write_attached};
use crate::{KeyId, SignError, SigningKey, TrustSet};

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 DER signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Layer annotation (airlock's own, ignored by cosign) naming the id of the key that signed, so a verifier
/// can say which untrusted key it saw.
pub const KEY_ID_ANNOTATION: &str = "dev.airlock.signature.key-id";
/// The `critical.type` of a cosign container image signature.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";
/// Largest payload layer read.
pub const MAX_PAYLOAD_SIZE: u64 = 64 * 1024;

/// The payload cosign signs for `docker_reference` (a repository, e.g. `registry.example/team/app`) at
/// `manifest_digest`. The bytes are deterministic, so signing twice with the same key yields the same layer.
pub fn simple_signing_payload(docker_reference: &str, manifest_digest: &Digest) -> Vec<u8> {
    let payload = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest.as_str()},
            "type": SIMPLE_SIGNING_TYPE,
        },
        "optional": null,
    });
    // Serializing a `Value` of strings cannot fail.
    serde_json::to_vec(&payload).unwrap_or_default()
}

/// The tag cosign stores signatures of `manifest_digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(manifest_digest: &Digest) -> String {
    attached_tag(manifest_digest, "sig")
}

/// The tag cosign stores attestations of `manifest_digest` under: `sha256-<hex>.att`.
pub fn attestation_tag(manifest_digest: &Digest) -> String {
    attached_tag(manifest_digest, "att")
}

fn layer_signature(layer: &Descriptor) -> Option<Vec<u8>> {
    let b64 = layer.annotations.as_ref()?.get(SIGNATURE_ANNOTATION)?;
    B64.decode(b64.trim()).ok()
}

fn layer_key_hint(layer: &Descriptor) -> Option<&str> {
    layer
        .annotations
        .as_ref()?
        .get(KEY_ID_ANNOTATION)
        .map(String::as_str)
}

/// Signs the manifest `manifest_digest` in `store` for `docker_reference` with `key`, cosign-style: adds a
/// layer to the `.sig` manifest (creating it when absent). Signing with another key appends a layer (key
/// rotation); signing the same payload with the same key again changes nothing. Returns the `.sig` manifest
/// digest.
pub async fn sign_manifest(
    store: &dyn Store,
    docker_reference: &str,
    manifest_digest: &Digest,
    key: &SigningKey,
) -> Result<Digest, SignError> {
    let tag = signature_tag(manifest_digest);
    let payload = simple_signing_payload(docker_reference, manifest_digest);
    let payload_digest = Digest::of(&payload);
    let public = key.public_key();
    let mut layers = Vec::new();
    if let Some((existing, existing_digest)) = read_attached(store, &tag).await? {
        let already = existing.layers.iter().any(|l| {
            l.digest == payload_digest
                && l.media_type == SIMPLE_SIGNING_MEDIA_TYPE
                && layer_signature(l).is_some_and(|sig| public.verifies(&payload, &sig))
        });
        if already {
            return Ok(existing_digest);
        }
        layers = existing.layers;
    }
    let signature = key.sign(&payload);
    store.put_blob(&payload_digest, &payload).await?;
    let mut layer = Descriptor::for_bytes(SIMPLE_SIGNING_MEDIA_TYPE, &payload);
    layer.annotations = Some(BTreeMap::from([
        (SIGNATURE_ANNOTATION.to_string(), B64.encode(&signature)),
        (KEY_ID_ANNOTATION.to_string(), public.key_id().to_string()),
    ]));
    layers.push(layer);
    let digest = write_attached(store, &tag, layers).await?;
    tracing::debug!(%manifest_digest, key_id = %public.key_id(), %docker_reference, "signed manifest");
    Ok(digest)
}

/// Checks a verified payload: it must name `manifest_digest` and one of `accepted_references`. Returns the
/// docker reference it names.
fn check_payload(
    payload: &[u8],
    accepted_references: &[&str],
    manifest_digest: &Digest,
) -> Result<String, SignError> {
    let value: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| SignError::json(format!("signature payload for {manifest_digest}"), e))?;
    let critical = &value["critical"];
    let kind = critical["type"].as_str().unwrap_or_default();
    if kind != SIMPLE_SIGNING_TYPE {
        return Err(SignError::invalid(
            format!("signature payload for {manifest_digest}"),
            format!("critical.type is {kind:?}, expected {SIMPLE_SIGNING_TYPE:?}"),
        ));
    }
    let found_digest = critical["image"]["docker-manifest-digest"]
        .as_str()
        .unwrap_or_default();
    if found_digest != manifest_digest.as_str() {
        return Err(SignError::PayloadDigestMismatch {
            expected: manifest_digest.clone(),
            found: found_digest.to_string(),
        });
    }
    let found_ref = critical["identity"]["docker-reference"]
        .as_str()
        .unwrap_or_default();
    if !accepted_references.contains(&found_ref) {
        return Err(SignError::ReferenceMismatch {
            expected: accepted_references.join(" or "),
            found: found_ref.to_string(),
        });
    }
    Ok(found_ref.to_string())
}

/// Verifies that `manifest_digest` carries a cosign signature by a key of `trust` whose payload names that
/// digest and `expected_reference`. Returns the id of the key. One good signature is enough; when none is
/// good, the most telling problem is reported: a trusted signature over the wrong digest or reference first,
/// then a broken signature, then signatures by untrusted keys.
pub async fn verify_manifest_signature(
    store: &dyn Store,
    expected_reference: &str,
    manifest_digest: &Digest,
    trust: &TrustSet,
) -> Result<KeyId, SignError> {
    verify_manifest_signature_for(store, &[expected_reference], manifest_digest, trust)
        .await
        .map(|(key, _)| key)
}

/// Like [`verify_manifest_signature`], but a payload naming any of `accepted_references` is good (the
/// repository read from and the repositories it mirrors). Returns the key id and the docker reference the
/// good signature names. `accepted_references[0]` is the repository read from, used in error messages.
pub async fn verify_manifest_signature_for(
    store: &dyn Store,
    accepted_references: &[&str],
    manifest_digest: &Digest,
    trust: &TrustSet,
) -> Result<(KeyId, String), SignError> {
    let tag = signature_tag(manifest_digest);
    let reference = format!(
        "{}@{manifest_digest}",
        accepted_references
            .first()
            .copied()
            .unwrap_or("(no repository)")
    );
    let Some((manifest, _)) = read_attached(store, &tag).await? else {
        return Err(SignError::Unsigned { reference });
    };
    let mut content_problem = None;
    let mut bad_trusted = false;
    let mut seen = Vec::new();
    let mut any = false;
    for layer in manifest
        .layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
    {
        any = true;
        let Some(signature) = layer_signature(layer) else {
            bad_trusted = true;
            continue;
        };
        let payload = read_layer(store, layer, MAX_PAYLOAD_SIZE, &tag).await?;
        match trust.verify(&payload, &signature) {
            Ok(key_id) => match check_payload(&payload, accepted_references, manifest_digest) {
                Ok(signed_for) => return Ok((key_id, signed_for)),
                Err(e) => {
                    content_problem.get_or_insert(e);
                }
            },
            Err(_) => match layer_key_hint(layer) {
                Some(hint) if trust.find(hint).is_some() => bad_trusted = true,
                Some(hint) => seen.push(hint.to_string()),
                None => seen.push("unknown".to_string()),
            },
        }
    }
    if let Some(problem) = content_problem {
        return Err(problem);
    }
    if !any {
        return Err(SignError::Unsigned { reference });
    }
    if bad_trusted || seen.is_empty() {
        return Err(SignError::BadSignature { reference });
    }
    seen.sort();
    seen.dedup();
    Err(SignError::UntrustedKey {
        reference,
        key_ids_seen: seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_oci::OciLayout;

    const REPO: &str = "registry.example/team/app";

    fn layout() -> (tempfile::TempDir, OciLayout) {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::create(&dir.path().join("repo")).unwrap();
        (dir, store)
    }

    async fn put_target(store: &OciLayout, content: &[u8]) -> Digest {
        let manifest = airlock_oci::ImageManifest::new(
            Descriptor::empty(),
            vec![Descriptor::for_bytes("application/octet-stream", content)],
        );
        store.put_blob(&Digest::of(content), content).await.unwrap();
        store
            .put_blob(&Descriptor::empty().digest, b"{}")
            .await
            .unwrap();
        store
            .put_manifest(
                &manifest.to_bytes(),
                airlock_oci::media_type::OCI_MANIFEST,
                Some("v1"),
            )
            .await
            .unwrap()
    }

    #[test]
    fn payload_has_the_cosign_shape() {
        let d = Digest::of(b"m");
        let v: serde_json::Value =
            serde_json::from_slice(&simple_signing_payload(REPO, &d)).unwrap();
        assert_eq!(v["critical"]["identity"]["docker-reference"], REPO);
        assert_eq!(v["critical"]["image"]["docker-manifest-digest"], d.as_str());
        assert_eq!(v["critical"]["type"], "cosign container image signature");
    }

    #[test]
    fn tags_follow_the_cosign_scheme() {
        let d = Digest::of(b"m");
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", d.hex()));
        assert_eq!(attestation_tag(&d), format!("sha256-{}.att", d.hex()));
    }

    #[tokio::test]
    async fn signed_manifest_verifies_with_the_signing_key() {
        let (_d, store) = layout();
        let digest = put_target(&store, b"image").await;
        let key = SigningKey::generate();
        sign_manifest(&store, REPO, &digest, &key).await.unwrap();
        let trust = TrustSet::new(vec![key.public_key()]);
        let id = verify_manifest_signature(&store, REPO, &digest, &trust)
            .await
            .unwrap();
        assert_eq!(id, key.public_key().key_id());
    }

    #[tokio::test]
    async fn signing_twice_with_same_key_is_a_no_op() {
        let (_d, store) = layout();
        let digest = put_target(&store, b"image").await;
        let key = SigningKey::generate();
        let first = sign_manifest(&store, REPO, &digest, &key).await.unwrap();
        let second = sign_manifest(&store, REPO, &digest, &key).await.unwrap();
        assert_eq!(first, second);
        let (m, _) = read_attached(&store, &signature_tag(&digest))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.layers.len(), 1);
    }

    #[tokio::test]
    async fn signing_with_a_second_key_appends_a_layer_for_rotation() {
        let (_d, store) = layout();
        let digest = put_target(&store, b"image").await;
        let old = SigningKey::generate();
        let new = SigningKey::generate();
        sign_manifest(&store, REPO, &digest, &old).await.unwrap();
        sign_manifest(&store, REPO, &digest, &new).await.unwrap();
        let (m, _) = read_attached(&store, &signature_tag(&digest))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.layers.len(), 2);
        for key in [&old, &new] {
            let trust = TrustSet::new(vec![key.public_key()]);
            let id = verify_manifest_signature(&store, REPO, &digest, &trust)
                .await
                .unwrap();
            assert_eq!(id, key.public_key().key_id());
        }
    }

    #[tokio::test]
    async fn unsigned_manifest_is_reported_as_unsigned() {
        let (_d, store) = layout();
        let digest = put_target(&store, b"image").await;
        let trust = TrustSet::new(vec![SigningKey::generate().public_key()]);
        let err = verify_manifest_signature(&store, REPO, &digest, &trust)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SignError::Unsigned { reference } if reference.contains(digest.as_str())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn untrusted_key_is_named_in_the_error() {
        let (_d, store) = layout();
        let digest = put_target(&store, b"image").await;
        let stranger = SigningKey::generate();
        sign_manifest(&store, REPO, &digest, &stranger)
            .await
            .unwrap();
        let trust = TrustSet::new(vec![SigningKey::generate().public_key()]);
        match verify_manifest_signature(&store, REPO, &digest, &trust).await {
            Err(SignError::UntrustedKey { key_ids_seen, .. }) => {
                assert_eq!(
                    key_ids_seen,
                    vec![stranger.public_key().key_id().to_string()]
                );
            }
            other => panic!("expected UntrustedKey, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn signature_for_another_repository_is_a_reference_mismatch() {
        let (_d, store) = layout();
        let digest = put_target(&store, b"image").await;
        let key = SigningKey::generate();
        sign_manifest(&store, "registry.example/other/app", &digest, &key)
            .await
            .unwrap();
        let trust = TrustSet::new(vec![key.public_key()]);
        let err = verify_manifest_signature(&store, REPO, &digest, &trust)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SignError::ReferenceMismatch { expected, found }
                if expected == REPO && found == "registry.example/other/app"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn signature_moved_onto_another_digest_is_a_payload_digest_mismatch() {
        let (_d, store) = layout();
        let signed = put_target(&store, b"image").await;
        let other = put_target(&store, b"other image").await;
        let key = SigningKey::generate();
        sign_manifest(&store, REPO, &signed, &key).await.unwrap();
        let sig = store.get_manifest(&signature_tag(&signed)).await.unwrap();
        store
            .put_manifest(&sig.bytes, &sig.media_type, Some(&signature_tag(&other)))
            .await
            .unwrap();
        let trust = TrustSet::new(vec![key.public_key()]);
        let err = verify_manifest_signature(&store, REPO, &other, &trust)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SignError::PayloadDigestMismatch { expected, found }
                if *expected == other && found == signed.as_str()),
            "{err}"
        );
    }

    #[tokio::test]
    async fn swapped_signature_annotation_is_a_bad_signature() {
        let (_d, store) = layout();
        let digest = put_target(&store, b"image").await;
        let key = SigningKey::generate();
        sign_manifest(&store, REPO, &digest, &key).await.unwrap();
        let tag = signature_tag(&digest);
        let (mut m, _) = read_attached(&store, &tag).await.unwrap().unwrap();
        let forged = B64.encode(key.sign(b"something else"));
        m.layers[0]
            .annotations
            .as_mut()
            .unwrap()
            .insert(SIGNATURE_ANNOTATION.to_string(), forged);
        write_attached(&store, &tag, m.layers).await.unwrap();
        let trust = TrustSet::new(vec![key.public_key()]);
        let err = verify_manifest_signature(&store, REPO, &digest, &trust)
            .await
            .unwrap_err();
        assert!(matches!(err, SignError::BadSignature { .. }), "{err}");
    }
}
