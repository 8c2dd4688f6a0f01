//! `airlock-gate image copy` and `airlock-gate export` as an operator runs them, checked with skopeo and
//! with the import the agent uses.

use std::process::Command;

use airlock_oci::{
    Compression, Digest, ImageConfig, LayerBuilder, LayoutRoot, OciLayout, Store, attachment_tags,
    import_archive, write_image,
};
use airlock_testkit::image::{SIMPLE_SIGNING, artifact, file_image};

fn gate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_airlock-gate"))
        .args(args)
        .output()
        .unwrap()
}

async fn image(layout: &OciLayout, tag: &str) -> Digest {
    let config = ImageConfig::new("amd64", "linux");
    file_image(layout, "/msg", tag.as_bytes(), config, Some(tag)).await
}

async fn signature(layout: &OciLayout, of: &Digest) -> Digest {
    let payload = format!("signature of {of}");
    let [sig, _] = attachment_tags(of);
    artifact(layout, &sig, SIMPLE_SIGNING, payload.as_bytes(), None).await
}

#[tokio::test]
async fn image_copy_brings_the_signature_and_export_feeds_import() {
    let dir = tempfile::tempdir().unwrap();
    let boundary = LayoutRoot::open_or_create(&dir.path().join("boundary")).unwrap();
    let hello = boundary.repo("hello").unwrap();
    let img = image(&hello, "git-abc1234").await;
    signature(&hello, &img).await;
    artifact(
        &hello,
        "release-0000000001",
        "application/vnd.airlock.manifests.v1.tar",
        b"manifests",
        Some(&img),
    )
    .await;

    // image copy: layout → archive, signature included; skopeo reads the result.
    let src = format!("oci:{}:git-abc1234", hello.path().display());
    let archive = dir.path().join("copy.tar");
    let out = gate(&[
        "image",
        "copy",
        &src,
        &format!("oci-archive:{}", archive.display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with(img.as_str()), "{stdout}");
    let [sig, _] = attachment_tags(&img);
    assert!(stdout.contains(&format!("with {sig}")), "{stdout}");
    let inspect = Command::new("skopeo")
        .args([
            "inspect",
            "--format",
            "{{.Digest}}",
            &format!("oci-archive:{}:git-abc1234", archive.display()),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&inspect.stdout).trim(),
        img.as_str()
    );

    // export → import on the far side.
    let exported = dir.path().join("export.tar");
    let out = gate(&[
        "export",
        "--app",
        "hello",
        "--since",
        "0",
        "-o",
        exported.to_str().unwrap(),
        "--boundary",
        boundary.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("(1 releases, 3 tags)"));
    let far = LayoutRoot::open_or_create(&dir.path().join("far")).unwrap();
    let imported = import_archive(&exported, &far).await.unwrap();
    assert_eq!(imported.len(), 3);
    assert_eq!(
        far.repo("hello")
            .unwrap()
            .get_manifest("git-abc1234")
            .await
            .unwrap()
            .digest,
        img
    );

    // Nothing newer: exit 1 and no file.
    let none = dir.path().join("none.tar");
    let out = gate(&[
        "export",
        "--app",
        "hello",
        "--since",
        "1",
        "-o",
        none.to_str().unwrap(),
        "--boundary",
        boundary.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("releases after sequence 1"));
    assert!(!none.exists());
}

#[test]
fn bad_references_exit_1_naming_the_reference() {
    let out = gate(&["image", "copy", "docker://team/app:v1", "oci:/tmp/x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"docker://team/app:v1\"") && err.contains("not a registry host"),
        "{err}"
    );
}

#[tokio::test]
async fn rebase_puts_the_app_layer_on_the_new_base() {
    let dir = tempfile::tempdir().unwrap();
    let bases = OciLayout::create(&dir.path().join("bases")).unwrap();
    image(&bases, "v1").await;
    image(&bases, "v2").await;
    let v1 = airlock_oci::read_image(&bases, "v1").await.unwrap();
    let v2 = airlock_oci::read_image(&bases, "v2").await.unwrap();
    let apps = OciLayout::create(&dir.path().join("apps")).unwrap();
    airlock_oci::copy_image(&bases, &apps, "v1", None)
        .await
        .unwrap();
    let mut b = LayerBuilder::new(0);
    b.add_file("/app", 0o644, 0, 0, b"app".to_vec()).unwrap();
    let app = b.finish(Compression::Gzip).unwrap();
    let mut config = v1.config.clone();
    config.rootfs.diff_ids.push(app.diff_id.clone());
    write_image(
        &apps,
        &config,
        &[
            (v1.manifest.layers[0].clone(), None),
            (app.descriptor.clone(), Some(&app.data)),
        ],
        Some("app"),
    )
    .await
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = gate(&[
        "rebase",
        &format!("oci:{}:app", apps.path().display()),
        "--from",
        &format!("oci:{}:v1", bases.path().display()),
        "--onto",
        &format!("oci:{}:v2", bases.path().display()),
        "--to",
        &format!("oci:{}:rebased", out_dir.display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("1 base layers replaced by 1, 1 app layers kept")
    );
    let inspect: serde_json::Value = serde_json::from_slice(
        &Command::new("skopeo")
            .args(["inspect", &format!("oci:{}:rebased", out_dir.display())])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(inspect["Layers"][0], v2.manifest.layers[0].digest.as_str());
    assert_eq!(inspect["Layers"][1], app.descriptor.digest.as_str());

    // Rebasing from a base the image is not built on: exit 1, nothing written.
    let out = gate(&[
        "rebase",
        &format!("oci:{}:app", apps.path().display()),
        "--from",
        &format!("oci:{}:v2", bases.path().display()),
        "--onto",
        &format!("oci:{}:v2", bases.path().display()),
        "--to",
        &format!("oci:{}:wrong", out_dir.display()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not built on v2"));
}
