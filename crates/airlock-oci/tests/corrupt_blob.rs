//! A registry that serves bytes not matching a blob's digest: every read path must fail with the typed
//! `DigestMismatch` naming the blob and the registry, and a copy must leave nothing tagged at the destination.
//! The corruption is real: the blob's file in a real `docker-registry`'s storage is rewritten behind its back.

use airlock_oci::{
    Compression, Digest, Error, ImageConfig, LayerBuilder, OciLayout, Store, write_image,
};
use futures::StreamExt;

/// Bytes that do not compress to nothing, so the layer has a real size.
fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn assert_mismatch(e: &Error, digest: &Digest, host: &str) {
    match e {
        Error::DigestMismatch { digest: d, source } => {
            assert_eq!(d, digest, "names the blob");
            assert!(source.contains(host), "names the registry: {source}");
        }
        other => panic!("expected DigestMismatch for {digest}, got {other:?} ({other})"),
    }
    let text = e.to_string();
    assert!(
        text.contains(digest.as_str()) && text.contains(host),
        "{text}"
    );
}

async fn read_stream(store: &dyn Store, digest: &Digest) -> Result<Vec<u8>, Error> {
    let mut stream = store.get_blob_stream(digest).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

#[tokio::test]
async fn a_corrupted_registry_blob_is_a_digest_mismatch_naming_blob_and_registry() {
    let registry = airlock_testkit::Registry::start();
    let store = registry.store("app");
    let mut b = LayerBuilder::new(1_700_000_000);
    b.add_file("/data", 0o644, 0, 0, payload(256 * 1024))
        .unwrap();
    let layer = b.finish(Compression::Gzip).unwrap();
    let mut config = ImageConfig::new("amd64", "linux");
    config.rootfs.diff_ids = vec![layer.diff_id.clone()];
    write_image(
        &store,
        &config,
        &[(layer.descriptor.clone(), Some(&layer.data))],
        Some("v1"),
    )
    .await
    .unwrap();
    let digest = layer.descriptor.digest.clone();
    let file = registry.blob_file(&digest);
    let good = std::fs::read(&file).expect("the registry keeps the blob on disk");
    assert_eq!(good, layer.data);

    // Same length, one byte flipped in the middle.
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    std::fs::write(&file, &flipped).unwrap();
    let e = store.get_blob(&digest).await.unwrap_err();
    assert_mismatch(&e, &digest, &registry.host);
    let e = read_stream(&store, &digest).await.unwrap_err();
    assert_mismatch(&e, &digest, &registry.host);

    // A copy to a layout fails the same way and tags nothing there.
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path()).unwrap();
    let e = airlock_oci::copy_image(&store, &layout, "v1", Some("v1"))
        .await
        .unwrap_err();
    assert_mismatch(&e, &digest, &registry.host);
    assert!(layout.list_tags_sync().unwrap().is_empty());
    assert!(
        !layout.has_blob_sync(&digest).unwrap(),
        "no corrupt blob kept"
    );

    // Shorter than announced (the file truncated): still the blob's digest that does not match.
    std::fs::write(&file, &good[..good.len() / 3]).unwrap();
    let e = store.get_blob(&digest).await.unwrap_err();
    assert_mismatch(&e, &digest, &registry.host);
    let e = read_stream(&store, &digest).await.unwrap_err();
    assert_mismatch(&e, &digest, &registry.host);

    // Restored, everything reads again (the errors above were about the bytes, not the setup).
    std::fs::write(&file, &good).unwrap();
    assert_eq!(store.get_blob(&digest).await.unwrap(), good);
    assert_eq!(read_stream(&store, &digest).await.unwrap(), good);
}
