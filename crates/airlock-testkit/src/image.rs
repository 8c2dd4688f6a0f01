//! Small OCI images and attachments written into any [`Store`], for tests that need *an* image rather
//! than a built one.

use airlock_oci::{
    Compression, Descriptor, Digest, ImageConfig, ImageManifest, Layer, LayerBuilder, Store,
    media_type, write_image,
};

/// The config blob of [`minimal_image`]: amd64/linux with no diff ids (the layer is opaque bytes).
pub const MINIMAL_CONFIG: &[u8] =
    br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;

/// Media type of a cosign simple-signing payload layer (what `.sig` manifests carry).
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// Media type of a DSSE envelope layer (what `.att` manifests carry).
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";

/// Puts a one-layer image whose layer blob is `content` (not a real tar: signing and copying never look
/// inside) and whose config is [`MINIMAL_CONFIG`]; tags it when `tag` is given. Different contents give
/// different digests, which is all the signing and agent tests need from an image.
pub async fn minimal_image(store: &dyn Store, content: &[u8], tag: Option<&str>) -> Digest {
    let layer = Descriptor::for_bytes(media_type::OCI_LAYER_TAR, content);
    store.put_blob(&layer.digest, content).await.unwrap();
    let config_desc = Descriptor::for_bytes(media_type::OCI_CONFIG, MINIMAL_CONFIG);
    store
        .put_blob(&config_desc.digest, MINIMAL_CONFIG)
        .await
        .unwrap();
    let manifest = ImageManifest::new(config_desc, vec![layer]);
    store
        .put_manifest(&manifest.to_bytes(), media_type::OCI_MANIFEST, tag)
        .await
        .unwrap()
}

/// Writes an image of `layers` (bottom first) with `config`, whose `rootfs.diff_ids` are set from the
/// layers; tags it when `tag` is given and returns the manifest digest.
pub async fn layers_image(
    store: &dyn Store,
    mut config: ImageConfig,
    layers: &[&Layer],
    tag: Option<&str>,
) -> Digest {
    config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.clone()).collect();
    let blobs: Vec<_> = layers
        .iter()
        .map(|l| (l.descriptor.clone(), Some(&l.data[..])))
        .collect();
    write_image(store, &config, &blobs, tag).await.unwrap()
}

/// A real (gzipped, deterministic, mtime 0) one-file image: `path` holding `content`, mode 0644, owned by
/// root, with `config` (its diff ids are filled in). Different contents give different digests.
pub async fn file_image(
    store: &dyn Store,
    path: &str,
    content: &[u8],
    config: ImageConfig,
    tag: Option<&str>,
) -> Digest {
    let mut b = LayerBuilder::new(0);
    b.add_file(path, 0o644, 0, 0, content.to_vec()).unwrap();
    let layer = b.finish(Compression::Gzip).unwrap();
    layers_image(store, config, &[&layer], tag).await
}

/// A layer builder (mtime 1,700,000,000) already holding the host's busybox-static as `/bin/busybox`
/// (mode 0755): the base of every runnable test image, since nothing can be pulled here.
pub fn busybox_layer_builder() -> LayerBuilder {
    let busybox = std::fs::read("/bin/busybox")
        .expect("busybox-static is installed (apt-get install -y busybox-static)");
    let mut b = LayerBuilder::new(1_700_000_000);
    b.add_file("/bin/busybox", 0o755, 0, 0, busybox).unwrap();
    b
}

/// An artifact manifest (empty config) with one `layer_type` layer holding `payload`, about `subject` when
/// given, tagged `tag`: the shape of cosign's `.sig`/`.att` manifests and of the release artifact.
pub async fn artifact(
    store: &dyn Store,
    tag: &str,
    layer_type: &str,
    payload: &[u8],
    subject: Option<&Digest>,
) -> Digest {
    let layer = Descriptor::for_bytes(layer_type, payload);
    store.put_blob(&layer.digest, payload).await.unwrap();
    store
        .put_blob(&Descriptor::empty().digest, b"{}")
        .await
        .unwrap();
    let mut m = ImageManifest::new(Descriptor::empty(), vec![layer]);
    if let Some(subject) = subject {
        let s = store.get_manifest(subject.as_str()).await.unwrap();
        m.subject = Some(Descriptor::new(
            s.media_type,
            s.digest,
            s.bytes.len() as u64,
        ));
    }
    store
        .put_manifest(&m.to_bytes(), media_type::OCI_MANIFEST, Some(tag))
        .await
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_oci::{OciLayout, read_image};

    #[tokio::test]
    async fn images_are_deterministic_by_content_and_artifacts_name_their_subject() {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::create(dir.path()).unwrap();
        let a = minimal_image(&store, b"a", Some("a")).await;
        assert_eq!(minimal_image(&store, b"a", None).await, a);
        assert_ne!(minimal_image(&store, b"b", None).await, a);

        let config = ImageConfig::new("arm64", "linux");
        let f = file_image(&store, "/msg", b"hi", config.clone(), Some("f")).await;
        assert_eq!(file_image(&store, "/msg", b"hi", config, None).await, f);
        let image = read_image(&store, "f").await.unwrap();
        assert_eq!(image.digest, f);
        assert_eq!(image.config.architecture, "arm64");
        assert_eq!(image.config.rootfs.diff_ids.len(), 1);

        let sig = artifact(&store, "a.sig", SIMPLE_SIGNING, b"payload", Some(&a)).await;
        let fetched = store.get_manifest("a.sig").await.unwrap();
        assert_eq!(fetched.digest, sig);
        let m = ImageManifest::from_bytes(&fetched.bytes, "a.sig").unwrap();
        assert_eq!(m.subject.map(|s| s.digest), Some(a));
        assert_eq!(m.layers[0].media_type, SIMPLE_SIGNING);
    }
}
