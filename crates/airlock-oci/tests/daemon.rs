//! `docker-daemon:` sources: an image made in the Docker Engine is copied to a real registry, then pulled
//! and run by the Engine from there.

mod common;

use std::process::Command;

use airlock_oci::{CopyOptions, ImageRef, OpenOptions, copy_with_attachments, read_image};
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
    if Command::new("docker")
        .arg("info")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
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

    // The Engine cannot be a destination (it would not keep the digest).
    let err = ImageRef::parse(&format!("docker-daemon:{name}:2"))
        .unwrap()
        .open_destination(&options)
        .unwrap_err();
    assert!(err.to_string().contains("can only be a source"), "{err}");
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
