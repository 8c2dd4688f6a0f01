//! `docker-daemon:` references: an image made in the Docker Engine is copied to a real registry, then pulled
//! and run by the Engine from there; an image airlock made (gzip and zstd layers) is copied into the Engine
//! (`docker load`) and runs there.

mod common;

use std::process::Command;

use airlock_oci::{
    Compression, CopyOptions, ImageConfig, ImageRef, LayerBuilder, OciLayout, OpenOptions,
    copy_with_attachments, read_image, write_image,
};
use common::start_registry;

fn docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).output().ok()?;
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// Removes the test's images however the test ends.
struct Images(Vec<String>);
impl Drop for Images {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = Command::new("docker").args(["rmi", "-f", image]).output();
        }
    }
}

#[tokio::test]
async fn image_from_the_engine_goes_to_a_registry_and_runs_when_pulled_back() {
    if !airlock_testkit::tools::docker_answers() {
        eprintln!("SKIPPED: no Docker Engine answers");
        return;
    }
    let Some(registry) = start_registry() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A one-layer image made by the Engine itself: busybox-static, run as `busybox echo`.
    let rootfs = dir.path().join("rootfs.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&rootfs).unwrap());
    b.append_path_with_name("/bin/busybox", "bin/busybox")
        .unwrap();
    b.finish().unwrap();
    drop(b);
    let name = format!("airlock-oci-test/daemon-{}", std::process::id());
    let pulled = format!("{}/test/daemon:1", registry.host);
    let _cleanup = Images(vec![format!("{name}:1"), pulled.clone()]);
    docker(&[
        "import",
        "--change",
        r#"CMD ["/bin/busybox", "echo", "from the daemon"]"#,
        rootfs.to_str().unwrap(),
        &format!("{name}:1"),
    ]);
    let image_id = docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        &format!("{name}:1"),
    ])
    .unwrap();

    let options = OpenOptions {
        insecure_hosts: vec![registry.host.clone()],
        docker_config: Some("/nonexistent/config.json".into()),
    };
    let (src, reference) = ImageRef::parse(&format!("docker-daemon:{name}:1"))
        .unwrap()
        .open_source(&options)
        .unwrap();
    let (dst, tag) = ImageRef::parse(&format!("docker://{pulled}"))
        .unwrap()
        .open_destination(&options)
        .unwrap();
    let report = copy_with_attachments(
        src.store(),
        dst.store(),
        &reference,
        tag.as_deref(),
        CopyOptions::default(),
    )
    .await
    .unwrap();
    // Same image: the config is the Engine's own, byte for byte (its digest is the image ID).
    let image = read_image(dst.store(), "1").await.unwrap();
    assert_eq!(image.digest, report.digest);
    assert_eq!(image.config_digest.as_str(), image_id.trim());

    docker(&["pull", "-q", &pulled]);
    let out = docker(&["run", "--rm", &pulled]).unwrap();
    assert_eq!(out.trim(), "from the daemon");

    // A missing image is the Engine's error, naming the image.
    let err = ImageRef::parse("docker-daemon:airlock-oci-test/missing:1")
        .unwrap()
        .open_source(&options)
        .unwrap_err();
    assert!(
        err.to_string().contains("airlock-oci-test/missing:1"),
        "{err}"
    );
}

#[tokio::test]
async fn image_copied_into_the_engine_runs_there_with_its_config_as_image_id() {
    if !airlock_testkit::tools::docker_answers() {
        eprintln!("SKIPPED: no Docker Engine answers");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(&dir.path().join("layout")).unwrap();
    // busybox in a gzip layer, the message in a zstd layer: both kinds must reach the Engine intact.
    let mut b = LayerBuilder::new(1_700_000_000);
    b.add_file(
        "/bin/busybox",
        0o755,
        0,
        0,
        std::fs::read("/bin/busybox").expect("busybox-static is installed"),
    )
    .unwrap();
    let gz = b.finish(Compression::Gzip).unwrap();
    let mut b = LayerBuilder::new(1_700_000_000);
    b.add_file("/msg", 0o644, 0, 0, b"loaded by airlock\n".to_vec())
        .unwrap();
    let zst = b.finish(Compression::Zstd).unwrap();
    let mut config = ImageConfig::new("amd64", "linux");
    config.rootfs.diff_ids = vec![gz.diff_id.clone(), zst.diff_id.clone()];
    config.config.cmd = Some(vec!["/bin/busybox".into(), "cat".into(), "/msg".into()]);
    config.config.user = Some("65532".into());
    write_image(
        &layout,
        &config,
        &[
            (gz.descriptor.clone(), Some(&gz.data)),
            (zst.descriptor.clone(), Some(&zst.data)),
        ],
        Some("v1"),
    )
    .await
    .unwrap();
    let written = read_image(&layout, "v1").await.unwrap();

    let name = format!("airlock-oci-test/loaded-{}", std::process::id());
    let _cleanup = Images(vec![format!("{name}:v1")]);
    let options = OpenOptions::default();
    let src_ref = format!("oci:{}:v1", layout.path().display());
    let (src, reference) = ImageRef::parse(&src_ref)
        .unwrap()
        .open_source(&options)
        .unwrap();
    let (dst, tag) = ImageRef::parse(&format!("docker-daemon:{name}:v1"))
        .unwrap()
        .open_destination(&options)
        .unwrap();
    assert_eq!(tag.as_deref(), Some("v1"));
    copy_with_attachments(
        src.store(),
        dst.store(),
        &reference,
        tag.as_deref(),
        CopyOptions::default(),
    )
    .await
    .unwrap();
    dst.finish().await.unwrap();

    let id = docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        &format!("{name}:v1"),
    ])
    .unwrap();
    assert_eq!(
        id.trim(),
        written.config_digest.as_str(),
        "the Engine's image ID is the config digest: the config arrived byte for byte"
    );
    let out = docker(&["run", "--rm", &format!("{name}:v1")]).unwrap();
    assert_eq!(out, "loaded by airlock\n");

    // An image whose config lies about its layers: the Engine refuses it, and the error names the image
    // and gives the Engine's reason; nothing is tagged under that name.
    let mut lying = config.clone();
    lying.rootfs.diff_ids = vec![zst.diff_id.clone(), gz.diff_id.clone()];
    write_image(
        &layout,
        &lying,
        &[
            (gz.descriptor.clone(), None),
            (zst.descriptor.clone(), None),
        ],
        Some("bad"),
    )
    .await
    .unwrap();
    let (src, reference) = ImageRef::parse(&format!("oci:{}:bad", layout.path().display()))
        .unwrap()
        .open_source(&options)
        .unwrap();
    let (dst, tag) = ImageRef::parse(&format!("docker-daemon:{name}:bad"))
        .unwrap()
        .open_destination(&options)
        .unwrap();
    copy_with_attachments(
        src.store(),
        dst.store(),
        &reference,
        tag.as_deref(),
        CopyOptions::default(),
    )
    .await
    .unwrap();
    let err = dst.finish().await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("{name}:bad")) && err.contains("docker load"),
        "{err}"
    );
    let inspect = Command::new("docker")
        .args(["image", "inspect", &format!("{name}:bad")])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "nothing loaded under that name");
}
