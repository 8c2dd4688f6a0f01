//! Interoperability with independent tools: GNU tar is checked in the unit tests; here skopeo reads and copies
//! layouts we write, and the Docker Engine runs an image we assembled (when its daemon answers).

use std::process::Command;

use airlock_oci::{Compression, ImageConfig, OciLayout, Store, copy_image, read_image};
use airlock_testkit::image::{busybox_layer_builder, layers_image};
use airlock_testkit::tools::{docker_answers, skopeo};

/// A runnable image: busybox-static as /bin/busybox, run as `busybox echo <msg>`.
async fn write_busybox_image(layout: &OciLayout, tag: &str, msg: &str) -> airlock_oci::Digest {
    let mut b = busybox_layer_builder();
    b.add_dir("/tmp", 0o1777, 0, 0).unwrap();
    let layer = b.finish(Compression::Gzip).unwrap();
    let mut config = ImageConfig::new("amd64", "linux");
    config.created = Some("2023-11-14T22:13:20Z".into());
    config.config.cmd = Some(vec!["/bin/busybox".into(), "echo".into(), msg.into()]);
    config.config.user = Some("65532".into());
    layers_image(layout, config, &[&layer], Some(tag)).await
}

#[tokio::test]
async fn skopeo_inspects_and_copies_our_layout_preserving_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let src_dir = dir.path().join("src");
    let other_dir = dir.path().join("other");
    let layout = OciLayout::create(&src_dir).unwrap();
    let digest = write_busybox_image(&layout, "v1", "hi").await;

    let src_ref = format!("oci:{}:v1", src_dir.display());
    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&["inspect", &src_ref])).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1);
    let raw = skopeo(&["inspect", "--raw", &src_ref]);
    assert_eq!(
        raw.as_bytes(),
        layout.get_manifest("v1").await.unwrap().bytes
    );

    let other_ref = format!("oci:{}:copied", other_dir.display());
    skopeo(&["copy", "--quiet", &src_ref, &other_ref]);
    let other = OciLayout::open(&other_dir).unwrap();
    let fetched = other.get_manifest("copied").await.unwrap();
    assert_eq!(fetched.digest, digest);
    let image = read_image(&other, "copied").await.unwrap();
    assert_eq!(image.config.config.user.as_deref(), Some("65532"));

    // And back again through our own copy, into a third layout.
    let third = OciLayout::create(&dir.path().join("third")).unwrap();
    assert_eq!(
        copy_image(&other, &third, "copied", Some("back"))
            .await
            .unwrap(),
        digest
    );
    assert_eq!(third.list_tags().await.unwrap(), vec!["back".to_string()]);
}

#[tokio::test]
async fn docker_runs_our_image_and_its_own_config_reads_back() {
    if !docker_answers() {
        eprintln!("SKIPPED: the Docker daemon does not answer `docker info`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(&dir.path().join("img")).unwrap();
    write_busybox_image(&layout, "v1", "hello-from-airlock").await;
    let name = format!("airlock-oci-test-{}:v1", std::process::id());
    skopeo(&[
        "copy",
        "--quiet",
        &format!("oci:{}:v1", layout.path().display()),
        &format!("docker-daemon:{name}"),
    ]);
    let run = Command::new("docker")
        .args(["run", "--rm", &name])
        .output()
        .unwrap();
    let back_dir = dir.path().join("back");
    let exported = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            &format!("docker-daemon:{name}"),
            &format!("oci:{}:exported", back_dir.display()),
        ])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rmi", "-f", &name]).output();
    assert!(
        run.status.success(),
        "docker run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "hello-from-airlock"
    );
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );

    // Docker's own config (with its many extra fields) reads back through our types.
    let back = OciLayout::open(&back_dir).unwrap();
    let image = read_image(&back, "exported").await.unwrap();
    assert_eq!(
        image.config.config.cmd,
        Some(vec![
            "/bin/busybox".into(),
            "echo".into(),
            "hello-from-airlock".into()
        ])
    );
    assert_eq!(image.config.rootfs.diff_ids.len(), 1);
}
