//! `copy_with_attachments` through skopeo-style references against a real registry, with skopeo as the
//! independent client, and registry faults injected by a proxy.

mod common;

use airlock_oci::{
    CopyOptions, Descriptor, Digest, ImageConfig, ImageIndex, OciLayout, OpenOptions, Platform,
    Store, attachment_tags, copy_references, copy_with_attachments, media_type, read_image,
};
use airlock_testkit::image::{SIMPLE_SIGNING, artifact, file_image};
use common::{Fault, skopeo, start_proxy, start_registry};

async fn image(layout: &OciLayout, tag: Option<&str>, arch: &str, text: &str) -> Digest {
    let config = ImageConfig::new(arch, "linux");
    file_image(layout, "/msg", text.as_bytes(), config, tag).await
}

/// A cosign-style attachment (one payload layer) tagged `tag`.
async fn attachment(layout: &OciLayout, tag: &str, payload: &[u8]) -> Digest {
    artifact(layout, tag, SIMPLE_SIGNING, payload, None).await
}

/// What `airlock-gate image copy SRC DST` does.
async fn copy_refs(src: &str, dst: &str, all: bool, insecure: &[&str]) -> airlock_oci::CopyReport {
    let options = OpenOptions {
        insecure_hosts: insecure.iter().map(|s| s.to_string()).collect(),
        docker_config: Some("/nonexistent/config.json".into()),
    };
    copy_references(src, dst, &options, CopyOptions { all_platforms: all })
        .await
        .unwrap()
}

#[tokio::test]
async fn registry_layout_archive_registry_round_trip_keeps_every_digest_with_signatures() {
    let Some(registry) = start_registry() else {
        return;
    };
    let host = registry.host.as_str();
    let dir = tempfile::tempdir().unwrap();
    let seed = OciLayout::create(&dir.path().join("seed")).unwrap();
    let digest = image(&seed, Some("v1"), "amd64", "hello").await;
    let [sig, att] = attachment_tags(&digest);
    let sig_digest = attachment(&seed, &sig, b"signature payload").await;
    let att_digest = attachment(&seed, &att, b"attestation payload").await;

    let seed_ref = format!("oci:{}:v1", dir.path().join("seed").display());
    let first = format!("docker://{host}/team/app:v1");
    let layout = format!("oci:{}:v1", dir.path().join("layout").display());
    let archive = format!("oci-archive:{}:v1", dir.path().join("a.tar").display());
    let last = format!("docker://{host}/other/app:v1");
    for (src, dst) in [
        (&seed_ref, &first),
        (&first, &layout),
        (&layout, &archive),
        (&archive, &last),
    ] {
        let report = copy_refs(src, dst, false, &[host]).await;
        assert_eq!(report.digest, digest, "{src} -> {dst}");
        assert_eq!(
            report.attachments,
            vec![sig.clone(), att.clone()],
            "{src} -> {dst}"
        );
    }

    // skopeo sees the image and both attachments at the end with their original digests and bytes.
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host}/other/app:v1"),
    ]))
    .unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    for (tag, want) in [(&sig, &sig_digest), (&att, &att_digest)] {
        let raw = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/other/app:{tag}"),
        ]);
        assert_eq!(Digest::of(raw.as_bytes()), *want, "{tag}");
    }
}

#[tokio::test]
async fn index_pushed_by_skopeo_copies_whole_with_all_or_as_its_amd64_image() {
    let Some(registry) = start_registry() else {
        return;
    };
    let host = registry.host.as_str();
    let dir = tempfile::tempdir().unwrap();
    let seed = OciLayout::create(&dir.path().join("seed")).unwrap();
    let amd = image(&seed, None, "amd64", "amd").await;
    let arm = image(&seed, None, "arm64", "arm").await;
    let entry = |d: &Digest, arch: &str| {
        let m = seed.get_manifest_sync(d.as_str()).unwrap();
        let mut desc = Descriptor::new(media_type::OCI_MANIFEST, d.clone(), m.bytes.len() as u64);
        desc.platform = Some(Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: None,
        });
        desc
    };
    let index = ImageIndex::new(vec![entry(&arm, "arm64"), entry(&amd, "amd64")]);
    let index_digest = seed
        .put_manifest(&index.to_bytes(), media_type::OCI_INDEX, Some("multi"))
        .await
        .unwrap();
    let [sig, _] = attachment_tags(&index_digest);
    attachment(&seed, &sig, b"index signature").await;
    // skopeo pushes the index; we copy what it pushed.
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", dir.path().join("seed").display()),
        &format!("docker://{host}/src/multi:v1"),
    ]);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:{sig}", dir.path().join("seed").display()),
        &format!("docker://{host}/src/multi:{sig}"),
    ]);

    let proxy = start_proxy(host, vec![]).await;
    let via = proxy.host.as_str();
    let all = copy_refs(
        &format!("docker://{via}/src/multi:v1"),
        &format!("docker://{via}/dst/multi:v1"),
        true,
        &[via],
    )
    .await;
    assert_eq!(all.digest, index_digest);
    assert_eq!(all.attachments, vec![sig.clone()]);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/dst/multi:v1"),
    ]);
    assert_eq!(Digest::of(raw.as_bytes()), index_digest);
    // Same registry: the layers were mounted from src/multi, never uploaded.
    let requests = proxy.requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("POST /v2/dst/multi/blobs/uploads/?mount=")),
        "{requests:#?}"
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with("PUT /v2/dst/multi/blobs/uploads/")),
        "a blob was uploaded instead of mounted: {requests:#?}"
    );

    let one = copy_refs(
        &format!("docker://{host}/src/multi:v1"),
        &format!("docker://{host}/one/amd:v1"),
        false,
        &[host],
    )
    .await;
    assert_eq!(one.digest, amd);
    let dst = registry.store("one/amd");
    assert_eq!(
        read_image(&dst, "v1").await.unwrap().config.architecture,
        "amd64"
    );
}

#[tokio::test]
async fn copy_survives_5xx_429_and_dropped_connections() {
    let Some(registry) = start_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seed = OciLayout::create(&dir.path().join("seed")).unwrap();
    let digest = image(&seed, Some("v1"), "amd64", "flaky").await;
    let proxy = start_proxy(
        &registry.host,
        vec![
            Fault::Status(503),
            Fault::Drop,
            Fault::Status(429),
            Fault::Status(502),
        ],
    )
    .await;
    let via = proxy.host.as_str();
    let report = copy_refs(
        &format!("oci:{}:v1", dir.path().join("seed").display()),
        &format!("docker://{via}/team/flaky:v1"),
        false,
        &[via],
    )
    .await;
    assert_eq!(report.digest, digest);
    assert!(
        proxy.faults_left.lock().unwrap().is_empty(),
        "the faults were not all hit"
    );
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/team/flaky:v1", registry.host),
    ]))
    .unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
}

#[tokio::test]
async fn unknown_manifest_media_type_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = OciLayout::create(&dir.path().join("a")).unwrap();
    let dst = OciLayout::create(&dir.path().join("b")).unwrap();
    src.put_manifest(
        br#"{"schemaVersion":1,"name":"x"}"#,
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        Some("old"),
    )
    .await
    .unwrap();
    let err = copy_with_attachments(&src, &dst, "old", Some("old"), CopyOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, airlock_oci::Error::UnsupportedMediaType { media_type, .. } if media_type.contains("v1+prettyjws")),
        "{err}"
    );
    assert!(dst.list_tags().await.unwrap().is_empty());
}

#[tokio::test]
async fn corrupted_source_layer_is_refused_naming_blob_and_source_and_never_lands_in_the_registry()
{
    let Some(registry) = start_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seed = OciLayout::create(&dir.path().join("seed")).unwrap();
    let digest = image(&seed, Some("v1"), "amd64", "to be corrupted").await;
    let manifest = read_image(&seed, "v1").await.unwrap().manifest;
    let layer = &manifest.layers[0].digest;
    let path = seed.blob_path(layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let dst = registry.store("team/bad");
    let err = copy_with_attachments(&seed, &dst, "v1", Some("v1"), CopyOptions::default())
        .await
        .unwrap_err();
    match &err {
        airlock_oci::Error::DigestMismatch { digest: d, source } => {
            assert_eq!(d, layer);
            assert!(source.starts_with("oci:"), "{source}");
        }
        other => panic!("expected a digest mismatch, got {other}"),
    }
    assert!(
        !dst.has_blob(layer).await.unwrap(),
        "the corrupted layer was committed"
    );
    assert!(dst.list_tags().await.unwrap().is_empty());
    assert!(matches!(
        dst.get_manifest(digest.as_str()).await,
        Err(airlock_oci::Error::ManifestNotFound { .. })
    ));
}
