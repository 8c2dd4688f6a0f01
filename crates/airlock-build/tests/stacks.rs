//! The local test stacks: builder and run image pinned by digest, a standard build on each in the Docker
//! Engine, and the Debian stack carrying real dpkg and Python data for the scanner. The Debian root
//! filesystem is made by `debootstrap` once and cached (see `airlock_build::fixtures`). Needs the Docker
//! Engine that `scripts/setup` starts.

use std::path::Path;

use airlock_build::fixtures::{busybox_stack, debian_python_stack};
use airlock_build::{
    BuildError, BuildRequest, BuilderKind, SourceMeta, build_standard, choose_builder,
    connect_docker,
};
use airlock_descriptor::AppDescriptor;
use airlock_oci::{OciLayout, Store, read_image};

fn source() -> SourceMeta {
    SourceMeta {
        repository: "test".into(),
        commit: "0".repeat(40),
        commit_time: 1_700_000_000,
    }
}

fn descriptor(stack: &str, command: &str) -> AppDescriptor {
    AppDescriptor::from_toml_str(&format!(
        r#"
[app]
name = "stack-test"
team = "t"
[build]
mode = "standard"
stack = "{stack}"
command = {command:?}
artifacts = [{{ from = "out/app.py", to = "/app/app.py" }}]
[run]
command = ["python3", "/app/app.py"]
port = 8080
"#
    ))
    .unwrap()
}

#[tokio::test]
async fn debian_stack_builds_with_python_in_its_builder_and_ships_dpkg_data() {
    let docker = connect_docker()
        .await
        .unwrap_or_else(|e| panic!("this test needs a running Docker Engine: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let bases = OciLayout::open_or_create(&tmp.path().join("bases")).unwrap();
    let stack = debian_python_stack(&docker, &bases).await.unwrap();
    assert!(
        stack
            .builder_image_digest
            .as_deref()
            .unwrap()
            .starts_with("sha256:")
    );
    let (kind, reason) = choose_builder(&stack).await;
    assert_eq!(kind, BuilderKind::Docker, "{reason}");

    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // The build command needs python3: it only exists in the Debian builder.
    let desc = descriptor(
        "debian-python",
        "mkdir -p out && python3 -c 'import sys; print(\"print(%r)\" % sys.version[:4])' > out/app.py",
    );
    let source = source();
    let req = BuildRequest {
        src_dir: &src,
        descriptor: &desc,
        stack: &stack,
        source: &source,
        builder: BuilderKind::Docker,
    };
    let out = OciLayout::open_or_create(&tmp.path().join("out")).unwrap();
    let built = build_standard(&req, &bases, &out, "v1").await.unwrap();
    let blob = out.get_blob(&built.app_layer).await.unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
    let mut app = String::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().ends_with("app.py") {
            std::io::Read::read_to_string(&mut entry, &mut app).unwrap();
        }
    }
    assert_eq!(app.trim(), "print('3.11')");

    // The run base layer carries dpkg's database and Python's standard library.
    let image = read_image(&out, "v1").await.unwrap();
    let base = out
        .get_blob(&image.manifest.layers[0].digest)
        .await
        .unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&base[..]));
    let mut seen = (false, false);
    for entry in archive.entries().unwrap() {
        let path = entry.unwrap().path().unwrap().display().to_string();
        seen.0 |= path == "var/lib/dpkg/status";
        seen.1 |= path.starts_with("usr/lib/python3.11/");
    }
    assert_eq!(seen, (true, true));
}

#[tokio::test]
async fn builder_image_other_than_the_pinned_one_is_refused() {
    let docker = connect_docker()
        .await
        .unwrap_or_else(|e| panic!("this test needs a running Docker Engine: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let bases = OciLayout::open_or_create(&tmp.path().join("bases")).unwrap();
    let mut stack = busybox_stack(&docker, &bases, Path::new("/bin/busybox"))
        .await
        .unwrap();
    let pinned = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    stack.builder_image_digest = Some(pinned.into());
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let desc = descriptor("busybox", "mkdir -p out && echo x > out/app.py");
    let source = source();
    let req = BuildRequest {
        src_dir: &src,
        descriptor: &desc,
        stack: &stack,
        source: &source,
        builder: BuilderKind::Docker,
    };
    let out = OciLayout::open_or_create(&tmp.path().join("out")).unwrap();
    let err = build_standard(&req, &bases, &out, "v1").await.unwrap_err();
    match &err {
        BuildError::BuilderMismatch {
            expected, found, ..
        } => {
            assert_eq!(expected, pinned);
            assert!(found.starts_with("sha256:"), "{err}");
        }
        other => panic!("expected BuilderMismatch, got {other}"),
    }
    assert!(out.list_tags().await.unwrap().is_empty(), "nothing written");
}
