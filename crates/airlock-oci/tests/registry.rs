//! RegistryStore against a real registry (Debian's `docker-registry`, distribution 2.8) on a free
//! 127.0.0.1 port, checked with skopeo as an independent client.

mod common;

use std::process::Command;

use airlock_oci::{
    Digest, Error, ImageConfig, OciLayout, RegistryAuth, RegistryStore, Store, copy_image,
    read_image,
};
use airlock_testkit::Registry;
use airlock_testkit::image::file_image;

fn start_registry() -> Option<Registry> {
    Registry::try_start()
}

async fn sample_image(layout: &OciLayout, tag: &str) -> Digest {
    let mut config = ImageConfig::new("amd64", "linux");
    config.config.cmd = Some(vec!["/app/hello".into()]);
    file_image(layout, "/app/hello.txt", b"hello", config, Some(tag)).await
}

#[tokio::test]
async fn pushes_to_and_pulls_from_a_real_registry_preserving_digests() {
    let Some(registry) = start_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(&dir.path().join("src")).unwrap();
    let digest = sample_image(&layout, "v1").await;

    let store =
        RegistryStore::new(&registry.host, "team/app", RegistryAuth::Anonymous, true).unwrap();
    assert_eq!(
        store.describe(),
        format!("docker://{}/team/app", registry.host)
    );
    assert!(store.list_tags().await.unwrap().is_empty());
    assert_eq!(
        copy_image(&layout, &store, "v1", Some("v1")).await.unwrap(),
        digest
    );
    assert_eq!(
        copy_image(&layout, &store, "v1", Some("stable"))
            .await
            .unwrap(),
        digest
    );
    assert_eq!(
        store.list_tags().await.unwrap(),
        vec!["stable".to_string(), "v1".to_string()]
    );

    // skopeo sees the same digest.
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/team/app:v1", registry.host),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());

    // Read straight from the registry, by tag and by digest.
    let image = read_image(&store, "v1").await.unwrap();
    assert_eq!(image.digest, digest);
    assert_eq!(
        image.config.config.cmd,
        Some(vec!["/app/hello".to_string()])
    );
    assert_eq!(
        store.get_manifest(digest.as_str()).await.unwrap().digest,
        digest
    );

    // And back into another layout.
    let back = OciLayout::create(&dir.path().join("back")).unwrap();
    assert_eq!(
        copy_image(&store, &back, "v1", Some("v1")).await.unwrap(),
        digest
    );
    assert_eq!(
        back.get_blob(&image.config_digest).await.unwrap().len() as u64,
        image.manifest.config.size
    );

    // Untagged manifests are pushed by digest.
    let untagged = airlock_oci::ImageManifest::new(image.manifest.config.clone(), vec![]);
    let d = store
        .put_manifest(
            &untagged.to_bytes(),
            airlock_oci::media_type::OCI_MANIFEST,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_manifest(d.as_str()).await.unwrap().bytes,
        untagged.to_bytes()
    );
}

#[tokio::test]
async fn missing_things_in_a_registry_are_typed_errors() {
    let Some(registry) = start_registry() else {
        return;
    };
    let store =
        RegistryStore::new(&registry.host, "nothing", RegistryAuth::Anonymous, true).unwrap();
    let digest = Digest::of(b"absent");
    assert!(!store.has_blob(&digest).await.unwrap());
    assert!(
        matches!(store.get_blob(&digest).await, Err(Error::BlobNotFound { digest: d, .. }) if d == digest)
    );
    assert!(
        matches!(store.get_manifest("nope").await, Err(Error::ManifestNotFound { reference, .. }) if reference == "nope")
    );
    assert!(matches!(
        store.put_blob(&digest, b"other").await,
        Err(Error::DigestMismatch { .. })
    ));
    assert!(matches!(
        RegistryStore::new(&registry.host, "../x", RegistryAuth::Anonymous, true),
        Err(Error::InvalidRepository(_))
    ));
}

/// An unreachable registry, and a plain-HTTP registry addressed over HTTPS: the error says why, not just
/// that a request failed.
#[tokio::test]
async fn unreachable_registries_are_errors_that_say_why() {
    let Some(registry) = start_registry() else {
        return;
    };
    let nobody = format!("127.0.0.1:{}", airlock_testkit::tools::free_port());
    let store = RegistryStore::new(&nobody, "app", RegistryAuth::Anonymous, true).unwrap();
    let err = store.get_manifest("v1").await.unwrap_err().to_string();
    assert!(
        err.contains(&nobody) && err.contains("Connection refused"),
        "{err}"
    );

    // A handshake that failed fails the same way again: no retries (they would show as warnings and take
    // 3 s), one request.
    let proxy = common::start_proxy(&registry.host, Vec::new()).await;
    let https = RegistryStore::new(&proxy.host, "app", RegistryAuth::Anonymous, false).unwrap();
    let err = https.get_manifest("v1").await.unwrap_err().to_string();
    assert!(
        err.contains(&proxy.host) && err.contains("plain HTTP") && err.contains("insecure"),
        "{err}"
    );
    assert_eq!(
        proxy.connections.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the TLS failure was retried"
    );
}

#[tokio::test]
async fn reads_and_copies_a_docker_schema2_image_pushed_by_skopeo() {
    let Some(registry) = start_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(&dir.path().join("src")).unwrap();
    sample_image(&layout, "v1").await;
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--format",
            "v2s2",
            &format!("oci:{}:v1", layout.path().display()),
            &format!("docker://{}/docker/app:v1", registry.host),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let store =
        RegistryStore::new(&registry.host, "docker/app", RegistryAuth::Anonymous, true).unwrap();
    let image = read_image(&store, "v1").await.unwrap();
    assert_eq!(image.media_type, airlock_oci::media_type::DOCKER_MANIFEST);
    assert_eq!(
        image.manifest.config.media_type,
        airlock_oci::media_type::DOCKER_CONFIG
    );
    assert_eq!(
        image.config.config.cmd,
        Some(vec!["/app/hello".to_string()])
    );

    // Copied into a layout unchanged: same digest, still a Docker manifest, readable.
    let back = OciLayout::create(&dir.path().join("back")).unwrap();
    assert_eq!(
        copy_image(&store, &back, "v1", Some("v1")).await.unwrap(),
        image.digest
    );
    assert_eq!(
        read_image(&back, "v1").await.unwrap().media_type,
        airlock_oci::media_type::DOCKER_MANIFEST
    );
}

#[tokio::test]
async fn basic_auth_is_used_and_the_password_never_shows_in_errors() {
    if !Registry::installed() {
        eprintln!("SKIPPED: docker-registry is not installed (apt-get install -y docker-registry)");
        return;
    }
    let registry = Registry::start_with_password("gate", "s3cret-pw");
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(&dir.path().join("src")).unwrap();
    let digest = sample_image(&layout, "v1").await;

    let anonymous =
        RegistryStore::new(&registry.host, "app", RegistryAuth::Anonymous, true).unwrap();
    assert!(matches!(
        copy_image(&layout, &anonymous, "v1", Some("v1")).await,
        Err(Error::Registry { .. })
    ));
    let wrong = RegistryStore::new(
        &registry.host,
        "app",
        RegistryAuth::Basic("gate".into(), "wrong-pw".into()),
        true,
    )
    .unwrap();
    let err = copy_image(&layout, &wrong, "v1", Some("v1"))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("wrong-pw"), "{err}");
    assert!(!format!("{wrong:?}").contains("wrong-pw"));

    let good = RegistryStore::new(
        &registry.host,
        "app",
        RegistryAuth::Basic("gate".into(), "s3cret-pw".into()),
        true,
    )
    .unwrap();
    assert_eq!(
        copy_image(&layout, &good, "v1", Some("v1")).await.unwrap(),
        digest
    );
    assert_eq!(good.list_tags().await.unwrap(), vec!["v1".to_string()]);
    assert_eq!(read_image(&good, "v1").await.unwrap().digest, digest);
}
