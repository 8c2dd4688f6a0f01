//! cosign's tag scheme for things attached to an image: a manifest tagged `sha256-<hex>.sig` or
//! `sha256-<hex>.att` in the image's repository, one layer per signature or attestation. Works on any
//! registry, including those without the OCI referrers API.

use airlock_oci::{Descriptor, Digest, FetchedManifest, ImageManifest, Store, media_type};

use crate::SignError;

/// Most layers (signatures or attestations) one attached manifest may hold.
pub const MAX_ATTACHED_LAYERS: usize = 256;

/// Reads the manifest tagged `tag` and its digest, or `None` when there is none. Other store errors pass
/// through.
pub(crate) async fn read_attached(
    store: &dyn Store,
    tag: &str,
) -> Result<Option<(ImageManifest, Digest)>, SignError> {
    let Some(fetched) = get_manifest_if_present(store, tag).await? else {
        return Ok(None);
    };
    let what = format!("{tag} ({}) in {}", fetched.digest, store.describe());
    let manifest = ImageManifest::from_bytes(&fetched.bytes, &what)?;
    if manifest.layers.len() > MAX_ATTACHED_LAYERS {
        return Err(SignError::invalid(
            what,
            format!(
                "{} layers, more than the {MAX_ATTACHED_LAYERS} allowed",
                manifest.layers.len()
            ),
        ));
    }
    Ok(Some((manifest, fetched.digest)))
}

/// Reads the manifest `reference`, or `None` when there is none. Other store errors pass through.
pub(crate) async fn get_manifest_if_present(
    store: &dyn Store,
    reference: &str,
) -> Result<Option<FetchedManifest>, SignError> {
    match store.get_manifest(reference).await {
        Ok(f) => Ok(Some(f)),
        Err(airlock_oci::Error::ManifestNotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Refuses `manifest` (described by `what`) unless its `artifactType` is `artifact_type` and its config's
/// media type is `config_type`; `kind` names what was expected ("a release artifact").
pub(crate) fn expect_artifact(
    manifest: &ImageManifest,
    what: &str,
    artifact_type: &str,
    config_type: &str,
    kind: &str,
) -> Result<(), SignError> {
    if manifest.artifact_type.as_deref() != Some(artifact_type)
        || manifest.config.media_type != config_type
    {
        return Err(SignError::invalid(
            what,
            format!("not {kind} (artifactType {:?})", manifest.artifact_type),
        ));
    }
    Ok(())
}

/// Reads a layer blob after checking its announced size against `limit`; the store verifies its digest.
pub(crate) async fn read_layer(
    store: &dyn Store,
    layer: &Descriptor,
    limit: u64,
    tag: &str,
) -> Result<Vec<u8>, SignError> {
    if layer.size > limit {
        return Err(SignError::invalid(
            format!("layer {} of {tag}", layer.digest),
            format!("{} bytes, more than the {limit} allowed", layer.size),
        ));
    }
    let data = store.get_blob(&layer.digest).await?;
    if data.len() as u64 != layer.size {
        return Err(SignError::invalid(
            format!("layer {} of {tag}", layer.digest),
            format!(
                "{} bytes but its descriptor says {}",
                data.len(),
                layer.size
            ),
        ));
    }
    Ok(data)
}

/// Writes a cosign-style attached manifest tagged `tag` with `layers` (whose blobs must already be stored).
/// The config is the minimal image config cosign writes (empty platform, layer digests as diff ids), so
/// tools that insist on an image config read it.
pub(crate) async fn write_attached(
    store: &dyn Store,
    tag: &str,
    layers: Vec<Descriptor>,
) -> Result<Digest, SignError> {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let config = serde_json::json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config_bytes =
        serde_json::to_vec(&config).map_err(|e| SignError::json(format!("config of {tag}"), e))?;
    let config_desc = Descriptor::for_bytes(media_type::OCI_CONFIG, &config_bytes);
    store.put_blob(&config_desc.digest, &config_bytes).await?;
    let manifest = ImageManifest::new(config_desc, layers);
    let digest = store
        .put_manifest(&manifest.to_bytes(), media_type::OCI_MANIFEST, Some(tag))
        .await?;
    Ok(digest)
}

/// `sha256-<hex>.<suffix>`: the tag cosign attaches things to `digest` under.
pub(crate) fn attached_tag(digest: &Digest, suffix: &str) -> String {
    format!("{}-{}.{suffix}", digest.algorithm(), digest.hex())
}
