//! OCI layout archives and the air-gap export/import of releases, checked with skopeo as an independent
//! reader of what we write.

use airlock_oci::{
    Digest, Error, ImageConfig, ImageRef, LayoutRoot, OciArchive, OciLayout, OpenOptions, Store,
    attachment_tags, copy_image, export_releases, import_archive, read_image,
};
use airlock_testkit::fs::snapshot;
use airlock_testkit::image::{DSSE_ENVELOPE, SIMPLE_SIGNING, artifact, file_image};
use airlock_testkit::tools::skopeo;

async fn image(layout: &OciLayout, tag: &str, text: &str) -> Digest {
    let config = ImageConfig::new("amd64", "linux");
    file_image(layout, "/app/msg", text.as_bytes(), config, Some(tag)).await
}

/// One release `seq` of `app` as the gate publishes it: image (tagged), its .sig and .att, the release
/// artifact about the image, and the release's .sig.
async fn publish_release(root: &LayoutRoot, app: &str, seq: u64) -> (Digest, Digest) {
    let layout = root.repo(app).unwrap();
    let img = image(&layout, &format!("git-{seq:012}"), &format!("{app} {seq}")).await;
    let [sig, att] = attachment_tags(&img);
    artifact(
        &layout,
        &sig,
        SIMPLE_SIGNING,
        format!("sig {img}").as_bytes(),
        None,
    )
    .await;
    artifact(
        &layout,
        &att,
        DSSE_ENVELOPE,
        format!("att {img}").as_bytes(),
        None,
    )
    .await;
    let rel = artifact(
        &layout,
        &format!("release-{seq:010}"),
        "application/vnd.airlock.manifests.v1.tar",
        format!("release {seq}").as_bytes(),
        Some(&img),
    )
    .await;
    let [rel_sig, _] = attachment_tags(&rel);
    artifact(
        &layout,
        &rel_sig,
        SIMPLE_SIGNING,
        format!("sig {rel}").as_bytes(),
        None,
    )
    .await;
    (img, rel)
}

#[tokio::test]
async fn export_import_round_trip_keeps_digests_and_selects_releases_since() {
    let dir = tempfile::tempdir().unwrap();
    let gate = LayoutRoot::open_or_create(&dir.path().join("boundary")).unwrap();
    let (_img1, _rel1) = publish_release(&gate, "hello", 1).await;
    let (img2, rel2) = publish_release(&gate, "hello", 2).await;
    let (img3, rel3) = publish_release(&gate, "other", 7).await;
    // A tag that belongs to no release is not exported.
    image(&gate.repo("hello").unwrap(), "scratch", "unrelated").await;

    let file = dir.path().join("out.tar");
    let apps = vec!["hello".to_string(), "other".to_string()];
    let exported = export_releases(&gate, &apps, 1, &file).await.unwrap();
    let names: Vec<String> = exported
        .iter()
        .map(|e| format!("{}:{}", e.repository, e.tag))
        .collect();
    let [img2_sig, img2_att] = attachment_tags(&img2);
    let [rel2_sig, _] = attachment_tags(&rel2);
    for want in [
        "hello:release-0000000002".to_string(),
        "hello:git-000000000002".to_string(),
        format!("hello:{img2_sig}"),
        format!("hello:{img2_att}"),
        format!("hello:{rel2_sig}"),
        "other:release-0000000007".to_string(),
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains("release-0000000001") || n.contains("scratch")),
        "{names:?}"
    );
    assert_eq!(names.len(), 10, "{names:?}");

    // skopeo reads the archive as an ordinary oci-archive, entry names included.
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("oci-archive:{}:hello:git-000000000002", file.display()),
    ]))
    .unwrap();
    assert_eq!(inspect["Digest"], img2.as_str());

    // Import on the far side.
    let far = LayoutRoot::open_or_create(&dir.path().join("agent")).unwrap();
    let imported = import_archive(&file, &far).await.unwrap();
    assert_eq!(imported.len(), exported.len());
    let hello = far.repo("hello").unwrap();
    assert_eq!(
        hello
            .get_manifest("release-0000000002")
            .await
            .unwrap()
            .digest,
        rel2
    );
    assert_eq!(
        read_image(&hello, "git-000000000002").await.unwrap().digest,
        img2
    );
    assert_eq!(
        hello.get_manifest(&img2_sig).await.unwrap().bytes,
        gate.repo("hello")
            .unwrap()
            .get_manifest(&img2_sig)
            .await
            .unwrap()
            .bytes
    );
    let other = far.repo("other").unwrap();
    assert_eq!(
        other
            .get_manifest("release-0000000007")
            .await
            .unwrap()
            .digest,
        rel3
    );
    assert_eq!(
        read_image(&other, img3.as_str()).await.unwrap().digest,
        img3
    );

    // Nothing after the newest sequence: an error, and no file written.
    let none = dir.path().join("none.tar");
    let err = export_releases(&gate, &apps, 7, &none).await.unwrap_err();
    assert!(
        err.to_string().contains("releases after sequence 7"),
        "{err}"
    );
    assert!(!none.exists());
}

#[tokio::test]
async fn truncated_archive_is_refused_at_every_cut_and_nothing_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let gate = LayoutRoot::open_or_create(&dir.path().join("boundary")).unwrap();
    publish_release(&gate, "hello", 1).await;
    let file = dir.path().join("out.tar");
    export_releases(&gate, &["hello".to_string()], 0, &file)
        .await
        .unwrap();
    let bytes = std::fs::read(&file).unwrap();

    // The far side already holds an older release; it must stay exactly as it is.
    let far_dir = dir.path().join("agent");
    let far = LayoutRoot::open_or_create(&far_dir).unwrap();
    image(&far.repo("hello").unwrap(), "release-0000000000", "old").await;
    let before = snapshot(&far_dir);

    let cut_file = dir.path().join("cut.tar");
    let mut cuts: Vec<usize> = (0..bytes.len()).step_by(512).collect();
    cuts.extend((0..bytes.len()).step_by(997));
    cuts.extend([
        1,
        511,
        513,
        bytes.len() - 1024,
        bytes.len() - 512,
        bytes.len() - 1,
    ]);
    for cut in cuts {
        std::fs::write(&cut_file, &bytes[..cut]).unwrap();
        let result = import_archive(&cut_file, &far).await;
        assert!(
            matches!(
                result,
                Err(Error::InvalidArchive { .. } | Error::DigestMismatch { .. })
            ),
            "cut at {cut} of {}: {result:?}",
            bytes.len()
        );
        assert_eq!(
            snapshot(&far_dir),
            before,
            "cut at {cut} changed the destination"
        );
    }

    // A flipped byte inside a blob is caught by its digest, naming blob and archive.
    let mut tampered = bytes.clone();
    let pos = tampered
        .windows(6)
        .position(|w| w == b"hello ")
        .unwrap_or(2048);
    tampered[pos] ^= 0x20;
    std::fs::write(&cut_file, &tampered).unwrap();
    match import_archive(&cut_file, &far).await {
        Err(Error::DigestMismatch { source, .. }) => {
            assert!(source.contains("cut.tar"), "{source}")
        }
        Err(Error::InvalidArchive { .. }) => {}
        other => panic!("tampered archive gave {other:?}"),
    }
    assert_eq!(snapshot(&far_dir), before);

    // The whole archive imports.
    import_archive(&file, &far).await.unwrap();
    assert!(
        far.repo("hello")
            .unwrap()
            .list_tags()
            .await
            .unwrap()
            .contains(&"release-0000000001".to_string())
    );
}

#[tokio::test]
async fn archive_written_by_skopeo_is_read_and_archive_we_write_is_read_by_skopeo() {
    let dir = tempfile::tempdir().unwrap();
    let layout_dir = dir.path().join("layout");
    let layout = OciLayout::create(&layout_dir).unwrap();
    let digest = image(&layout, "v1", "hi").await;

    // skopeo writes an archive from our layout; we read it, verified, with the same digest.
    let theirs = dir.path().join("theirs.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:v1", layout_dir.display()),
        &format!("oci-archive:{}:v1", theirs.display()),
    ]);
    let archive = OciArchive::open(&theirs).unwrap();
    assert_eq!(read_image(&archive, "v1").await.unwrap().digest, digest);

    // We write an archive through the reference API; skopeo reads it back.
    let ours = dir.path().join("ours.tar");
    let (dst, _) = ImageRef::parse(&format!("oci-archive:{}:v2", ours.display()))
        .unwrap()
        .open_destination(&OpenOptions::default())
        .unwrap();
    copy_image(&layout, dst.store(), "v1", Some("v2"))
        .await
        .unwrap();
    assert!(!ours.exists(), "nothing may appear before finish");
    dst.finish().await.unwrap();
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("oci-archive:{}:v2", ours.display()),
    ]))
    .unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    // Same content → same bytes (fixed entry order and metadata).
    let first = std::fs::read(&ours).unwrap();
    dst.finish().await.unwrap();
    assert_eq!(std::fs::read(&ours).unwrap(), first);

    // Without a tag, the archive's only image is taken.
    let (src, reference) = ImageRef::parse(&format!("oci-archive:{}", ours.display()))
        .unwrap()
        .open_source(&OpenOptions::default())
        .unwrap();
    assert_eq!(
        read_image(src.store(), &reference).await.unwrap().digest,
        digest
    );
}

#[tokio::test]
async fn archive_with_a_foreign_entry_or_no_index_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.tar");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(2);
    h.set_mode(0o644);
    b.append_data(&mut h, "etc/passwd", &b"x\n"[..]).unwrap();
    std::fs::write(&file, b.into_inner().unwrap()).unwrap();
    let err = OciArchive::open(&file).unwrap_err().to_string();
    assert!(
        err.contains("unexpected entry \"etc/passwd\"") && err.contains("x.tar"),
        "{err}"
    );

    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(30);
    h.set_mode(0o644);
    b.append_data(
        &mut h,
        "oci-layout",
        &br#"{"imageLayoutVersion":"1.0.0"}"#[..],
    )
    .unwrap();
    std::fs::write(&file, b.into_inner().unwrap()).unwrap();
    let err = OciArchive::open(&file).unwrap_err().to_string();
    assert!(err.contains("no index.json"), "{err}");
}
