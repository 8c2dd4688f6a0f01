//! Reading, writing and copying whole images (manifest + config + layers) through any [`Store`].

use crate::media_type::{self, is_index, is_manifest};
use crate::{
    Descriptor, Digest, Error, FetchedManifest, ImageConfig, ImageIndex, ImageManifest, Store,
};

/// Deepest nesting of indexes followed when copying.
const MAX_INDEX_DEPTH: usize = 4;
/// Most manifests one index may list.
const MAX_INDEX_ENTRIES: usize = 1024;
/// Largest config blob read.
const MAX_CONFIG_SIZE: u64 = 16 * 1024 * 1024;

/// An image read from a store: the manifest and config parsed, with their digests.
#[derive(Clone, Debug)]
pub struct Image {
    /// Digest of the image manifest (for an index, of the linux/amd64 manifest chosen from it).
    pub digest: Digest,
    /// Media type of that manifest (OCI or Docker).
    pub media_type: String,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The config.
    pub config: ImageConfig,
    /// Digest of the config blob.
    pub config_digest: Digest,
}

/// Reads the image at `reference` (tag or digest). OCI and Docker schema 2 manifests are accepted; for an
/// index (or manifest list) the linux/amd64 entry is taken (or its only entry, when it has just one).
pub async fn read_image(store: &dyn Store, reference: &str) -> Result<Image, Error> {
    let mut fetched = store.get_manifest(reference).await?;
    if is_index(&fetched.media_type) {
        let what = format!("index {reference} in {}", store.describe());
        let index = ImageIndex::from_bytes(&fetched.bytes, &what)?;
        let chosen = pick_platform(&index).ok_or_else(|| Error::ManifestNotFound {
            reference: format!("{reference} (linux/amd64 entry of the index)"),
            store: store.describe(),
        })?;
        fetched = store.get_manifest(chosen.digest.as_str()).await?;
    }
    if !is_manifest(&fetched.media_type) {
        return Err(Error::UnsupportedMediaType {
            media_type: fetched.media_type,
            reference: reference.to_string(),
        });
    }
    let what = format!(
        "manifest {reference} ({}) in {}",
        fetched.digest,
        store.describe()
    );
    let manifest = ImageManifest::from_bytes(&fetched.bytes, &what)?;
    let cfg_type = manifest.config.media_type.as_str();
    if cfg_type != media_type::OCI_CONFIG && cfg_type != media_type::DOCKER_CONFIG {
        return Err(Error::UnsupportedMediaType {
            media_type: cfg_type.to_string(),
            reference: format!("config of {reference}"),
        });
    }
    if manifest.config.size > MAX_CONFIG_SIZE {
        return Err(Error::TooLarge {
            what: format!("config {} of {reference}", manifest.config.digest),
            limit: MAX_CONFIG_SIZE,
        });
    }
    let config_bytes = store.get_blob(&manifest.config.digest).await?;
    let config = ImageConfig::from_bytes(
        &config_bytes,
        &format!("config {} of {reference}", manifest.config.digest),
    )?;
    Ok(Image {
        digest: fetched.digest,
        media_type: fetched.media_type,
        config_digest: manifest.config.digest.clone(),
        manifest,
        config,
    })
}

fn pick_platform(index: &ImageIndex) -> Option<&Descriptor> {
    index
        .manifests
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
        .or(match index.manifests.as_slice() {
            [only] => Some(only),
            _ => None,
        })
}

/// Writes config blob + the given (already present or supplied) layer blobs + an OCI manifest, tagged when
/// `tag` is given; returns the manifest digest. A layer with `None` data must already be in the store; the
/// number of layers must match the config's `rootfs.diff_ids`.
pub async fn write_image(
    store: &dyn Store,
    config: &ImageConfig,
    layers: &[(Descriptor, Option<&[u8]>)],
    tag: Option<&str>,
) -> Result<Digest, Error> {
    if config.rootfs.diff_ids.len() != layers.len() {
        return Err(Error::InvalidImage {
            reference: tag.unwrap_or("(untagged)").to_string(),
            reason: format!(
                "config lists {} diff_ids but {} layers were given",
                config.rootfs.diff_ids.len(),
                layers.len()
            ),
        });
    }
    for (desc, data) in layers {
        match data {
            Some(data) => {
                if data.len() as u64 != desc.size {
                    return Err(Error::SizeMismatch {
                        digest: desc.digest.clone(),
                        expected: desc.size,
                        actual: data.len() as u64,
                    });
                }
                store.put_blob(&desc.digest, data).await?;
            }
            None => {
                if !store.has_blob(&desc.digest).await? {
                    return Err(Error::BlobNotFound {
                        digest: desc.digest.clone(),
                        store: store.describe(),
                    });
                }
            }
        }
    }
    let config_bytes = config.to_bytes();
    let config_desc = Descriptor::for_bytes(media_type::OCI_CONFIG, &config_bytes);
    store.put_blob(&config_desc.digest, &config_bytes).await?;
    let manifest = ImageManifest::new(config_desc, layers.iter().map(|(d, _)| d.clone()).collect());
    store
        .put_manifest(&manifest.to_bytes(), media_type::OCI_MANIFEST, tag)
        .await
}

/// Copies the manifest at `reference` from `src` to `dst` with its bytes unchanged (so its digest is
/// preserved), after its config and layers (blobs `dst` already has are skipped); index children are copied
/// recursively. Works for artifacts too (any manifest with config + layers). Returns the manifest digest.
pub async fn copy_image(
    src: &dyn Store,
    dst: &dyn Store,
    reference: &str,
    dst_tag: Option<&str>,
) -> Result<Digest, Error> {
    let fetched = src.get_manifest(reference).await?;
    copy_fetched(src, dst, reference, fetched, dst_tag, 0).await
}

async fn copy_fetched(
    src: &dyn Store,
    dst: &dyn Store,
    reference: &str,
    fetched: FetchedManifest,
    dst_tag: Option<&str>,
    depth: usize,
) -> Result<Digest, Error> {
    let what = format!(
        "manifest {reference} ({}) in {}",
        fetched.digest,
        src.describe()
    );
    if is_index(&fetched.media_type) {
        if depth >= MAX_INDEX_DEPTH {
            return Err(Error::TooLarge {
                what: format!("index nesting at {what}"),
                limit: MAX_INDEX_DEPTH as u64,
            });
        }
        let index = ImageIndex::from_bytes(&fetched.bytes, &what)?;
        if index.manifests.len() > MAX_INDEX_ENTRIES {
            return Err(Error::TooLarge {
                what: format!("number of entries in {what}"),
                limit: MAX_INDEX_ENTRIES as u64,
            });
        }
        for child in &index.manifests {
            let child_fetched = src.get_manifest(child.digest.as_str()).await?;
            Box::pin(copy_fetched(
                src,
                dst,
                child.digest.as_str(),
                child_fetched,
                None,
                depth + 1,
            ))
            .await?;
        }
    } else {
        if !is_manifest(&fetched.media_type) {
            return Err(Error::UnsupportedMediaType {
                media_type: fetched.media_type.clone(),
                reference: what,
            });
        }
        let manifest = ImageManifest::from_bytes(&fetched.bytes, &what)?;
        let blobs: Vec<&Descriptor> = std::iter::once(&manifest.config)
            .chain(manifest.layers.iter())
            .collect();
        copy_blobs(src, dst, &blobs).await?;
    }
    let digest = dst
        .put_manifest(&fetched.bytes, &fetched.media_type, dst_tag)
        .await?;
    if digest != fetched.digest {
        return Err(Error::DigestMismatch {
            digest: fetched.digest,
            source: format!("copy to {}", dst.describe()),
        });
    }
    Ok(digest)
}

/// Attempts at moving one blob when a registry fails in the middle of it.
const BLOB_ATTEMPTS: u32 = 3;

/// Most blobs one copy works on at the same time: checked, mounted, moving or being committed (skopeo
/// moves 6 at once too).
pub const MAX_PARALLEL_BLOBS: usize = 6;
/// Most of those whose bytes are moving. A registry commits an upload only when its data is on disk
/// (fsync); when every blob moves at once, every blob's commit waits at the end with nothing else to do.
/// With fewer moving, the first commits overlap the last transfers.
pub const MAX_STREAMING_BLOBS: usize = 3;

/// Copies the blobs `dst` lacks, largest first, at most [`MAX_PARALLEL_BLOBS`] at a time and at most
/// [`MAX_STREAMING_BLOBS`] of them moving bytes. Between two repositories of one registry a blob is
/// mounted rather than moved; anything else is read (verified) and written.
pub(crate) async fn copy_blobs(
    src: &dyn Store,
    dst: &dyn Store,
    blobs: &[&Descriptor],
) -> Result<(), Error> {
    use futures::StreamExt;
    let same_registry = match (src.registry_location(), dst.registry_location()) {
        (Some((src_host, src_repo)), Some((dst_host, _))) if src_host == dst_host => Some(src_repo),
        _ => None,
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut blobs: Vec<&Descriptor> = blobs
        .iter()
        .copied()
        .filter(|b| seen.insert(b.digest.clone()))
        .collect();
    // Largest first: the copy ends with small blobs in flight, not with one large blob moving alone.
    blobs.sort_by_key(|b| std::cmp::Reverse(b.size));
    let mut queue = blobs.into_iter();
    // Named async fns in a FuturesUnordered rather than closures in a stream adapter: the futures then
    // stay `Send` for any lifetime, which `tokio::spawn` of a caller needs.
    let streaming = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_STREAMING_BLOBS));
    let mut running = futures::stream::FuturesUnordered::new();
    loop {
        while running.len() < MAX_PARALLEL_BLOBS
            && let Some(blob) = queue.next()
        {
            running.push(copy_blob(
                src,
                dst,
                blob,
                same_registry.as_deref(),
                &streaming,
            ));
        }
        match running.next().await {
            Some(result) => result?,
            None => break,
        }
    }
    Ok(())
}

/// Copies one blob unless `dst` has it: a mount when `mount_from` names a repository of the same registry,
/// else streamed, so a large layer never sits in memory. The source verifies the bytes as they pass and the
/// destination commits only after a clean, verified end. A registry failure mid-stream starts the blob
/// again (a stream cannot be replayed).
async fn copy_blob(
    src: &dyn Store,
    dst: &dyn Store,
    blob: &Descriptor,
    mount_from: Option<&str>,
    streaming: &std::sync::Arc<tokio::sync::Semaphore>,
) -> Result<(), Error> {
    if dst.has_blob(&blob.digest).await? {
        return Ok(());
    }
    if let Some(from) = mount_from
        && dst.mount_blob(&blob.digest, from).await?
    {
        return Ok(());
    }
    let mut attempt = 1;
    loop {
        // The destination opens its side first; the permit is taken when it asks for the bytes.
        let open = Box::pin(async move {
            let permit = streaming
                .clone()
                .acquire_owned()
                .await
                .expect("a copy never closes its semaphore");
            let stream = src.get_blob_stream(&blob.digest).await?;
            Ok(release_at_end(stream, blob.size, permit))
        });
        match dst.put_blob_stream(&blob.digest, blob.size, open).await {
            Err(Error::Registry { .. }) if attempt < BLOB_ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// `stream` of a blob of `size` bytes, releasing `permit` with its last bytes (or an error). The HTTP
/// client stops reading a body once it has sent the `Content-Length`, so the end of the stream itself is
/// never seen before the response.
fn release_at_end(
    stream: crate::store::BlobStream,
    size: u64,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> crate::store::BlobStream {
    use futures::StreamExt;
    let mut permit = Some(permit);
    let mut passed = 0u64;
    Box::pin(stream.map(move |item| {
        match &item {
            Ok(chunk) => passed += chunk.len() as u64,
            Err(_) => passed = size,
        }
        if passed >= size {
            permit.take();
        }
        item
    }))
}

/// What [`copy_with_attachments`] should bring along.
#[derive(Clone, Copy, Debug, Default)]
pub struct CopyOptions {
    /// Copy an index with every platform (its digest is kept). Without it an index is resolved to its
    /// linux/amd64 manifest and only that is copied, as `skopeo copy` does without `--all`.
    pub all_platforms: bool,
}

/// What [`copy_with_attachments`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyReport {
    /// Digest of the manifest (or index) now at the destination.
    pub digest: Digest,
    /// Cosign signature and attestation tags copied with it (`sha256-<hex>.sig` / `.att`).
    pub attachments: Vec<String>,
}

/// The cosign tags that can hold signatures and attestations of `digest` (`sha256-<hex>.sig`, `.att`).
pub fn attachment_tags(digest: &Digest) -> [String; 2] {
    [
        format!("{}-{}.sig", digest.algorithm(), digest.hex()),
        format!("{}-{}.att", digest.algorithm(), digest.hex()),
    ]
}

/// Copies the image at `reference` like [`copy_image`] (digests preserved) and then the cosign signature
/// and attestation tags of every manifest copied, under the same tag names, so signatures keep verifying
/// at the destination. With attachments the order is image (by digest), attachments, then `dst_tag`: a
/// reader never sees a signature of an image that is not there yet, nor a tag whose signature has not
/// arrived. Without any, the image is written once, with its tag.
pub async fn copy_with_attachments(
    src: &dyn Store,
    dst: &dyn Store,
    reference: &str,
    dst_tag: Option<&str>,
    options: CopyOptions,
) -> Result<CopyReport, Error> {
    let mut fetched = src.get_manifest(reference).await?;
    let mut reference = reference.to_string();
    if is_index(&fetched.media_type) && !options.all_platforms {
        let what = format!("index {reference} in {}", src.describe());
        let index = ImageIndex::from_bytes(&fetched.bytes, &what)?;
        let chosen = pick_platform(&index).ok_or_else(|| Error::ManifestNotFound {
            reference: format!("{reference} (linux/amd64 entry of the index; use all platforms)"),
            store: src.describe(),
        })?;
        reference = chosen.digest.to_string();
        fetched = src.get_manifest(&reference).await?;
    }
    let mut copied = vec![fetched.digest.clone()];
    if is_index(&fetched.media_type) {
        let what = format!("index {reference} in {}", src.describe());
        let index = ImageIndex::from_bytes(&fetched.bytes, &what)?;
        copied.extend(index.manifests.iter().map(|d| d.digest.clone()));
    }
    let found = futures::future::try_join_all(
        copied
            .iter()
            .flat_map(attachment_tags)
            .map(|tag| find_attachment(src, tag)),
    )
    .await?;
    let found: Vec<(String, FetchedManifest)> = found.into_iter().flatten().collect();
    if found.is_empty() {
        // Nothing to order: the image goes with its tag in one write.
        let digest = copy_fetched(src, dst, &reference, fetched, dst_tag, 0).await?;
        return Ok(CopyReport {
            digest,
            attachments: Vec::new(),
        });
    }
    let (bytes, media_type) = (fetched.bytes.clone(), fetched.media_type.clone());
    let digest = copy_fetched(src, dst, &reference, fetched, None, 0).await?;
    let mut attachments = Vec::new();
    for (tag, attachment) in found {
        copy_fetched(src, dst, &tag, attachment, Some(&tag), 0).await?;
        attachments.push(tag);
    }
    if let Some(tag) = dst_tag {
        dst.put_manifest(&bytes, &media_type, Some(tag)).await?;
    }
    Ok(CopyReport {
        digest,
        attachments,
    })
}

/// What `airlock-gate image copy SRC DST` does: opens both references (skopeo's syntax, see
/// [`crate::ImageRef`]) with `options`, copies with [`copy_with_attachments`] and completes the destination
/// (an archive is written only then). A destination named without a tag takes the source's, as
/// `skopeo copy` does to `oci:DIR`.
pub async fn copy_references(
    src: &str,
    dst: &str,
    options: &crate::OpenOptions,
    copy: CopyOptions,
) -> Result<CopyReport, Error> {
    let src_ref = crate::ImageRef::parse(src)?;
    let (source, reference) = src_ref.open_source(options)?;
    let (destination, dst_tag) = crate::ImageRef::parse(dst)?.open_destination(options)?;
    let dst_tag = dst_tag.or_else(|| src_ref.tag().map(str::to_string));
    let report = copy_with_attachments(
        source.store(),
        destination.store(),
        &reference,
        dst_tag.as_deref(),
        copy,
    )
    .await?;
    destination.finish().await?;
    Ok(report)
}

/// The manifest `src` has under the cosign tag `tag`, if any.
async fn find_attachment(
    src: &dyn Store,
    tag: String,
) -> Result<Option<(String, FetchedManifest)>, Error> {
    match src.get_manifest(&tag).await {
        Ok(found) => Ok(Some((tag, found))),
        Err(Error::ManifestNotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Compression, LayerBuilder, OciLayout, Platform};

    fn layer(text: &str) -> crate::Layer {
        let mut b = LayerBuilder::new(0);
        b.add_file("/etc/msg", 0o644, 0, 0, text.as_bytes().to_vec())
            .unwrap();
        b.finish(Compression::Gzip).unwrap()
    }

    /// Writes a one-layer image of `l` with `config` (whose diff ids already name `l`).
    async fn write_one(
        store: &OciLayout,
        config: &ImageConfig,
        l: &crate::Layer,
        tag: Option<&str>,
    ) -> Digest {
        write_image(store, config, &[(l.descriptor.clone(), Some(&l.data))], tag)
            .await
            .unwrap()
    }

    fn config_for(layers: &[&crate::Layer]) -> ImageConfig {
        let mut c = ImageConfig::new("amd64", "linux");
        c.config.cmd = Some(vec!["/bin/true".into()]);
        c.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.clone()).collect();
        c
    }

    /// The pipeline copies inside `tokio::spawn`ed tasks: the copy futures must be `Send` for any lifetime.
    #[tokio::test]
    async fn copies_can_run_in_spawned_tasks() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let src = OciLayout::create(d1.path()).unwrap();
        let dst = OciLayout::create(d2.path()).unwrap();
        let a = layer("a");
        write_one(&src, &config_for(&[&a]), &a, Some("v1")).await;
        let task = tokio::spawn(async move {
            let copied = copy_image(&src, &dst, "v1", Some("v1")).await?;
            copy_with_attachments(&src, &dst, "v1", None, CopyOptions::default()).await?;
            Ok::<_, Error>(copied)
        });
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn written_image_reads_back_with_config_and_layers() {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::create(dir.path()).unwrap();
        let (a, b) = (layer("a"), layer("b"));
        let config = config_for(&[&a, &b]);
        let digest = write_image(
            &store,
            &config,
            &[
                (a.descriptor.clone(), Some(&a.data)),
                (b.descriptor.clone(), Some(&b.data)),
            ],
            Some("v1"),
        )
        .await
        .unwrap();
        let image = read_image(&store, "v1").await.unwrap();
        assert_eq!(image.digest, digest);
        assert_eq!(image.media_type, media_type::OCI_MANIFEST);
        assert_eq!(image.config, config);
        assert_eq!(
            image.manifest.layers,
            vec![a.descriptor.clone(), b.descriptor.clone()]
        );
        assert_eq!(
            read_image(&store, digest.as_str())
                .await
                .unwrap()
                .config_digest,
            image.config_digest
        );

        // Layers already present can be referenced without data.
        let again = write_image(
            &store,
            &config,
            &[(a.descriptor.clone(), None), (b.descriptor, None)],
            None,
        )
        .await
        .unwrap();
        assert_eq!(again, digest);
    }

    #[tokio::test]
    async fn write_image_refuses_missing_blobs_wrong_sizes_and_diff_id_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::create(dir.path()).unwrap();
        let a = layer("a");
        let config = config_for(&[&a]);
        assert!(matches!(
            write_image(&store, &config, &[(a.descriptor.clone(), None)], None).await,
            Err(Error::BlobNotFound { digest, .. }) if digest == a.descriptor.digest
        ));
        let mut wrong = a.descriptor.clone();
        wrong.size += 1;
        assert!(matches!(
            write_image(&store, &config, &[(wrong, Some(&a.data))], None).await,
            Err(Error::SizeMismatch { .. })
        ));
        assert!(matches!(
            write_image(&store, &config, &[], None).await,
            Err(Error::InvalidImage { .. })
        ));
    }

    #[tokio::test]
    async fn copy_preserves_digest_and_skips_blobs_the_destination_has() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let src = OciLayout::create(d1.path()).unwrap();
        let dst = OciLayout::create(d2.path()).unwrap();
        let a = layer("a");
        let digest = write_one(&src, &config_for(&[&a]), &a, Some("v1")).await;
        // Plant the layer in dst first: the copy must not need to rewrite it.
        dst.put_blob(&a.descriptor.digest, &a.data).await.unwrap();
        let copied = copy_image(&src, &dst, "v1", Some("release")).await.unwrap();
        assert_eq!(copied, digest);
        assert_eq!(
            dst.get_manifest("release").await.unwrap().bytes,
            src.get_manifest("v1").await.unwrap().bytes
        );
        assert_eq!(read_image(&dst, "release").await.unwrap().digest, digest);
    }

    #[tokio::test]
    async fn copy_of_a_corrupted_layer_fails_naming_the_layer() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let src = OciLayout::create(d1.path()).unwrap();
        let dst = OciLayout::create(d2.path()).unwrap();
        let a = layer("a");
        write_one(&src, &config_for(&[&a]), &a, Some("v1")).await;
        let path = src.blob_path(&a.descriptor.digest);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            copy_image(&src, &dst, "v1", None).await,
            Err(Error::DigestMismatch { digest, .. }) if digest == a.descriptor.digest
        ));
        assert!(dst.list_tags().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn index_is_copied_with_children_and_read_picks_linux_amd64() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let src = OciLayout::create(d1.path()).unwrap();
        let dst = OciLayout::create(d2.path()).unwrap();
        let (a, b) = (layer("arm"), layer("amd"));
        let mut arm_cfg = config_for(&[&a]);
        arm_cfg.architecture = "arm64".into();
        let arm = write_one(&src, &arm_cfg, &a, None).await;
        let amd = write_one(&src, &config_for(&[&b]), &b, None).await;
        let entry = |d: &Digest, arch: &str| {
            let m = src.get_manifest_sync(d.as_str()).unwrap();
            let mut desc =
                Descriptor::new(media_type::OCI_MANIFEST, d.clone(), m.bytes.len() as u64);
            desc.platform = Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: None,
            });
            desc
        };
        let index = ImageIndex::new(vec![entry(&arm, "arm64"), entry(&amd, "amd64")]);
        let index_digest = src
            .put_manifest(&index.to_bytes(), media_type::OCI_INDEX, Some("multi"))
            .await
            .unwrap();

        assert_eq!(
            copy_image(&src, &dst, "multi", Some("multi"))
                .await
                .unwrap(),
            index_digest
        );
        let image = read_image(&dst, "multi").await.unwrap();
        assert_eq!(image.digest, amd);
        assert_eq!(image.config.architecture, "amd64");
        assert!(
            dst.has_blob(&a.descriptor.digest).await.unwrap(),
            "arm64 child not copied"
        );
    }

    #[tokio::test]
    async fn artifacts_copy_but_are_not_read_as_images() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let src = OciLayout::create(d1.path()).unwrap();
        let dst = OciLayout::create(d2.path()).unwrap();
        let payload = b"kind: Deployment\n".to_vec();
        let layer = Descriptor::for_bytes("application/vnd.airlock.manifests.v1+yaml", &payload);
        src.put_blob(&layer.digest, &payload).await.unwrap();
        src.put_blob(&Descriptor::empty().digest, crate::types::EMPTY_JSON)
            .await
            .unwrap();
        let mut m = ImageManifest::new(Descriptor::empty(), vec![layer.clone()]);
        m.artifact_type = Some("application/vnd.airlock.release.v1".into());
        let digest = src
            .put_manifest(&m.to_bytes(), media_type::OCI_MANIFEST, Some("rel"))
            .await
            .unwrap();
        assert_eq!(
            copy_image(&src, &dst, "rel", Some("rel")).await.unwrap(),
            digest
        );
        assert_eq!(dst.get_blob(&layer.digest).await.unwrap(), payload);
        assert!(matches!(
            read_image(&dst, "rel").await,
            Err(Error::UnsupportedMediaType { media_type, .. }) if media_type == media_type::OCI_EMPTY
        ));
    }
}
