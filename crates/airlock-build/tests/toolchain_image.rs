//! The builder image made from the host's Rust toolchain builds `examples/hello` in a container, and the
//! image is byte-for-byte the one the host builder makes: the two builders agree. Needs the Docker Engine
//! that `scripts/setup` starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_build::{
    BuildRequest, BuilderKind, SourceMeta, Stack, build_standard, choose_builder, connect_docker,
    create_static_base, ensure_toolchain_image,
};
use airlock_descriptor::AppDescriptor;
use airlock_oci::OciLayout;

fn hello_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello")
}

#[tokio::test]
async fn hello_builds_in_the_toolchain_image_to_the_host_builders_digest() {
    let docker = connect_docker()
        .await
        .unwrap_or_else(|e| panic!("this test needs a running Docker Engine: {e}"));
    let image = ensure_toolchain_image(&docker).await.unwrap();
    assert!(image.image_id.starts_with("sha256:"), "{image:?}");
    // A second call finds the image instead of making it again.
    let again = ensure_toolchain_image(&docker).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.image_id, image.image_id);

    let tmp = tempfile::tempdir().unwrap();
    let bases = OciLayout::open_or_create(&tmp.path().join("bases")).unwrap();
    let base = create_static_base(&bases, "static").await.unwrap();
    let stack = Stack {
        name: "rust-static".into(),
        builder_image: Some(image.name.clone()),
        builder_image_digest: Some(image.image_id.clone()),
        run_image: "static".into(),
        run_image_digest: base,
        env: BTreeMap::new(),
        timeout_secs: 600,
        memory_mb: 2048,
        cpus: 2.0,
        network: false,
    };
    let (kind, reason) = choose_builder(&stack).await;
    assert_eq!(kind, BuilderKind::Docker, "{reason}");

    let src = hello_dir();
    let descriptor = AppDescriptor::load(&src).unwrap();
    let source = SourceMeta {
        repository: "file:///examples/hello".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        commit_time: 1_700_000_000,
    };
    let mut digests = Vec::new();
    for builder in [BuilderKind::Docker, BuilderKind::Host] {
        let req = BuildRequest {
            src_dir: &src,
            descriptor: &descriptor,
            stack: &stack,
            source: &source,
            builder,
        };
        let out = OciLayout::open_or_create(&tmp.path().join(builder.to_string())).unwrap();
        let built = build_standard(&req, &bases, &out, "v1")
            .await
            .unwrap_or_else(|e| panic!("{builder} build failed: {e}"));
        assert_eq!(built.builder, builder);
        digests.push(built.digest);
    }
    assert_eq!(
        digests[0], digests[1],
        "the Docker and host builders made different images"
    );
}
