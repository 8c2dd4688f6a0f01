//! Dockerfile builds against a real Docker Engine (classic builder): a multi-stage build from approved
//! bases, honouring `.dockerignore`, build args and the target; the result re-packed reproducibly on its
//! pinned base and passing the smoke test; refusals before anything is built. Needs the Docker Engine that
//! `scripts/setup` starts.

use std::path::Path;

use airlock_build::{
    ApprovedBase, BaseSource, BuildError, DockerfileRequest, SmokeSpec, SourceMeta,
    build_dockerfile, connect_docker, create_busybox_image, load_into_docker,
    smoke_test_from_store,
};
use airlock_descriptor::AppDescriptor;
use airlock_oci::{OciLayout, Store, read_image};

const COMMIT_TIME: i64 = 1_700_000_000;
const BUILDER: &str = "airlock.local/test-builders/busybox:dockerfile-test";

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    bases_store: OciLayout,
    bases: Vec<ApprovedBase>,
}

async fn fixture(docker: &bollard::Docker) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let bases_store = OciLayout::open_or_create(&dir.join("bases")).unwrap();
    let run = create_busybox_image(&bases_store, "busybox", Path::new("/bin/busybox"))
        .await
        .unwrap();
    let builder_id = load_into_docker(docker, &bases_store, "busybox", BUILDER)
        .await
        .unwrap();
    let bases = vec![
        ApprovedBase {
            name: "busybox".into(),
            digest: run.to_string(),
            source: BaseSource::Store("busybox".into()),
        },
        ApprovedBase {
            name: BUILDER.into(),
            digest: builder_id,
            source: BaseSource::Engine,
        },
    ];
    Fixture {
        _tmp: tmp,
        dir,
        bases_store,
        bases,
    }
}

fn source() -> SourceMeta {
    SourceMeta {
        repository: "https://git.example.com/web.git".into(),
        commit: "89abcdef0123456789abcdef0123456789abcdef".into(),
        commit_time: COMMIT_TIME,
    }
}

fn app(
    dir: &Path,
    app: &str,
    dockerfile: &str,
    extra: &str,
) -> (std::path::PathBuf, AppDescriptor) {
    let src = dir.join(format!("src-{app}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(src.join("greet.txt"), "hello\n").unwrap();
    std::fs::write(src.join("secret.env"), "TOKEN=do-not-ship\n").unwrap();
    std::fs::write(
        src.join(".dockerignore"),
        "# keep secrets out\nsecret.env\n",
    )
    .unwrap();
    let text = format!(
        r#"
[app]
name = "{app}"
team = "web"
[build]
mode = "dockerfile"
{extra}
[run]
command = []
port = 8080
health = "/healthz"
"#
    );
    std::fs::write(src.join("airlock.toml"), &text).unwrap();
    let descriptor = AppDescriptor::load(&src).unwrap();
    (src, descriptor)
}

fn request<'a>(
    src: &'a Path,
    descriptor: &'a AppDescriptor,
    bases: &'a [ApprovedBase],
    source: &'a SourceMeta,
) -> DockerfileRequest<'a> {
    DockerfileRequest {
        src_dir: src,
        descriptor,
        bases,
        source,
        timeout_secs: 300,
        memory_mb: 256,
    }
}

fn engine_images(repo: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["images", "-q", repo])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn multi_stage_build_is_repacked_on_its_pinned_base_and_passes_smoke_test() {
    let docker = connect_docker()
        .await
        .unwrap_or_else(|e| panic!("this test needs a running Docker Engine: {e}"));
    let f = fixture(&docker).await;
    let dockerfile = format!(
        "FROM {BUILDER} AS build\nUSER 0\nWORKDIR /src\nCOPY . .\nARG SUFFIX\n\
         RUN test ! -e secret.env && mkdir -p /out/www && cp greet.txt /out/www/healthz \\\n    && echo \"$SUFFIX\" >> /out/www/healthz\n\
         FROM busybox AS run\nCOPY --from=build /out/www /app/www\nUSER 65532:65532\nEXPOSE 8080\n\
         ENTRYPOINT [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/app/www\"]\n\
         FROM {BUILDER} AS unused\nRUN exit 9\n"
    );
    let (src, descriptor) = app(
        &f.dir,
        "df-multi",
        &dockerfile,
        "target = \"run\"\nargs = { SUFFIX = \"from-build-args\" }",
    );
    let source = source();
    let req = request(&src, &descriptor, &f.bases, &source);
    let out1 = OciLayout::open_or_create(&f.dir.join("out1")).unwrap();
    let (built, report) = build_dockerfile(&docker, &req, &f.bases_store, &out1, "v1")
        .await
        .unwrap();
    assert_eq!(report.base.name, "busybox");
    assert_eq!(report.reused_base_layers, 1);
    assert_eq!(report.from.len(), 2 + 1, "{:?}", report.from);
    assert_eq!(report.from[0].line, 1);
    assert_eq!(
        report.from[1].digest.as_deref(),
        Some(f.bases[0].digest.as_str())
    );

    let image = read_image(&out1, "v1").await.unwrap();
    let base = read_image(&f.bases_store, "busybox").await.unwrap();
    assert_eq!(image.digest, built.digest);
    assert_eq!(
        image.manifest.layers[0], base.manifest.layers[0],
        "the base layer is reused as is"
    );
    let c = &image.config.config;
    assert_eq!(c.user.as_deref(), Some("65532:65532"));
    let labels = c.labels.as_ref().unwrap();
    assert_eq!(labels["org.opencontainers.image.revision"], source.commit);
    assert_eq!(
        image.config.created.as_deref(),
        Some("2023-11-14T22:13:20Z")
    );

    // The app layer: the build arg made it in, every entry has the commit time.
    let blob = out1.get_blob(&built.app_layer).await.unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
    let mut healthz = None;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        assert_eq!(entry.header().mtime().unwrap(), COMMIT_TIME as u64);
        if entry.path().unwrap().ends_with("healthz") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            healthz = Some(text);
        }
    }
    assert_eq!(healthz.as_deref(), Some("hello\nfrom-build-args\n"));

    // Same commit, same digest (the second build hits the Engine's cache; re-packing is deterministic).
    let out2 = OciLayout::open_or_create(&f.dir.join("out2")).unwrap();
    let (again, _) = build_dockerfile(&docker, &req, &f.bases_store, &out2, "v1")
        .await
        .unwrap();
    assert_eq!(again.digest, built.digest);

    let smoke = smoke_test_from_store(
        &docker,
        &out1,
        "v1",
        "df-multi",
        &SmokeSpec::from_descriptor(&descriptor),
    )
    .await
    .unwrap();
    assert_eq!(smoke.status, 200);
    assert_eq!(
        engine_images("airlock.local/build/df-multi"),
        "",
        "build tag removed"
    );
}

#[tokio::test]
async fn refused_dockerfiles_never_reach_the_engine() {
    let docker = connect_docker()
        .await
        .unwrap_or_else(|e| panic!("this test needs a running Docker Engine: {e}"));
    let f = fixture(&docker).await;
    let source = source();
    let out = OciLayout::open_or_create(&f.dir.join("out")).unwrap();
    let cases = [
        (
            "df-unapproved",
            "FROM busybox AS a\nRUN true\n\nFROM debian:bookworm-slim\n",
            4,
            "debian:bookworm-slim is not an approved base",
        ),
        (
            "df-remote-add",
            "FROM busybox\nADD https://example.com/tool.tgz /opt/\n",
            2,
            "ADD of a remote URL (https://example.com/tool.tgz)",
        ),
    ];
    for (name, dockerfile, line, reason_part) in cases {
        let (src, descriptor) = app(&f.dir, name, dockerfile, "");
        let req = request(&src, &descriptor, &f.bases, &source);
        let err = build_dockerfile(&docker, &req, &f.bases_store, &out, name)
            .await
            .unwrap_err();
        match &err {
            BuildError::DockerfileRefused {
                file,
                line: l,
                reason,
            } => {
                assert_eq!(file, "Dockerfile");
                assert_eq!(*l, line, "{err}");
                assert!(reason.contains(reason_part), "{reason}");
            }
            other => panic!("{name}: expected a refusal, got {other}"),
        }
        assert_eq!(engine_images(&format!("airlock.local/build/{name}")), "");
        assert!(out.list_tags().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn failing_run_step_reports_exit_code_and_output() {
    let docker = connect_docker()
        .await
        .unwrap_or_else(|e| panic!("this test needs a running Docker Engine: {e}"));
    let f = fixture(&docker).await;
    let source = source();
    let out = OciLayout::open_or_create(&f.dir.join("out")).unwrap();
    let (src, descriptor) = app(
        &f.dir,
        "df-fails",
        "FROM busybox\nUSER 0\nRUN echo compiling; echo 'error: no such crate' >&2; exit 3\n",
        "",
    );
    let req = request(&src, &descriptor, &f.bases, &source);
    let err = build_dockerfile(&docker, &req, &f.bases_store, &out, "v1")
        .await
        .unwrap_err();
    match &err {
        BuildError::CommandFailed {
            exit_code,
            log_tail,
        } => {
            assert_eq!(*exit_code, 3, "{log_tail}");
            assert!(log_tail.contains("no such crate"), "{log_tail}");
        }
        other => panic!("expected CommandFailed, got {other}"),
    }
    assert!(out.list_tags().await.unwrap().is_empty());
}
