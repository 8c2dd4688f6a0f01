//! Measures, in one run, for the same artifact and the same base: airlock's image assembly (artifact →
//! deterministic layer → image on the pinned base) against `docker build` (classic builder, no cache) of a
//! Dockerfile that COPYs the same artifact onto the same base, and an unchanged resubmission of a standard
//! build (which reuses the cached result). Used by `bench/build.sh`; prints one line per figure.
//!
//! Usage: `bench_build ARTIFACT [ITERATIONS]` (ARTIFACT is copied to `/app/<name>`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use airlock_build::{
    BuildRequest, BuilderKind, SourceMeta, Stack, assemble, build_standard, connect_docker,
    create_static_base, load_into_docker,
};
use airlock_descriptor::AppDescriptor;
use airlock_oci::OciLayout;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let artifact = PathBuf::from(
        args.next()
            .ok_or("usage: bench_build ARTIFACT [ITERATIONS]")?,
    );
    let iterations: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let name = artifact
        .file_name()
        .ok_or("artifact has no file name")?
        .to_string_lossy()
        .into_owned();
    let size = std::fs::metadata(&artifact)?.len();
    let tmp = tempfile::tempdir()?;
    let bases = OciLayout::open_or_create(&tmp.path().join("bases"))?;
    let base = create_static_base(&bases, "static").await?;
    let descriptor = AppDescriptor::from_toml_str(&format!(
        "[app]\nname = \"bench\"\nteam = \"bench\"\n[build]\nmode = \"standard\"\nstack = \"static\"\n\
         command = \"mkdir -p out && cp {name} out/{name}\"\nartifacts = [{{ from = \"out/{name}\", to = \"/app/{name}\" }}]\n\
         [run]\ncommand = [\"/app/{name}\"]\nport = 8080\n"
    ))?;
    let source = SourceMeta {
        repository: "bench".into(),
        commit: "0".repeat(40),
        commit_time: 1_700_000_000,
    };

    // airlock: assembly of the artifact onto the pinned base, fresh output store each time.
    let staged = tmp.path().join("staged");
    std::fs::create_dir_all(staged.join("app"))?;
    std::fs::copy(&artifact, staged.join("app").join(&name))?;
    let mut assembly = Vec::new();
    for i in 0..iterations {
        let out = OciLayout::open_or_create(&tmp.path().join(format!("out-{i}")))?;
        let t = Instant::now();
        assemble(&staged, &descriptor, &source, &bases, "static", &out, "v1").await?;
        assembly.push(t.elapsed());
    }

    // docker build: the same artifact onto the same base, classic builder, no cache.
    let docker = connect_docker().await?;
    let base_name = "airlock.local/bench/static:1";
    load_into_docker(&docker, &bases, "static", base_name).await?;
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx)?;
    std::fs::copy(&artifact, ctx.join(&name))?;
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base_name}\nCOPY {name} /app/{name}\nUSER 65532:65532\nEXPOSE 8080\nENTRYPOINT [\"/app/{name}\"]\n"
        ),
    )?;
    let mut docker_build = Vec::new();
    for _ in 0..iterations {
        let t = Instant::now();
        let status = std::process::Command::new("docker")
            .args([
                "build",
                "-q",
                "--no-cache",
                "-t",
                "airlock.local/bench/peer:1",
            ])
            .arg(&ctx)
            .env("DOCKER_BUILDKIT", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()?;
        docker_build.push(t.elapsed());
        if !status.success() {
            return Err("docker build failed".into());
        }
    }
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", "airlock.local/bench/peer:1", base_name])
        .output();

    // Standard build (host builder, the build command copies the artifact), then an unchanged resubmission.
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src)?;
    std::fs::copy(&artifact, src.join(&name))?;
    let stack = Stack {
        name: "static".into(),
        builder_image: None,
        builder_image_digest: None,
        run_image: "static".into(),
        run_image_digest: base,
        env: Default::default(),
        timeout_secs: 600,
        memory_mb: 1024,
        cpus: 1.0,
        network: false,
    };
    let req = BuildRequest {
        src_dir: &src,
        descriptor: &descriptor,
        stack: &stack,
        source: &source,
        builder: BuilderKind::Host,
    };
    let work = OciLayout::open_or_create(&tmp.path().join("work"))?;
    let t = Instant::now();
    let first = build_standard(&req, &bases, &work, "run-1").await?;
    let cold = t.elapsed();
    let t = Instant::now();
    let again = build_standard(&req, &bases, &work, "run-2").await?;
    let warm = t.elapsed();
    if again.digest != first.digest || !again.log.contains("reused") {
        return Err("the resubmission did not reuse the cached result".into());
    }

    let a = median(assembly);
    let d = median(docker_build);
    println!("artifact                 {name}, {size} bytes; median of {iterations} runs");
    println!("airlock image assembly   {:8.1} ms", ms(a));
    println!("docker build (classic)   {:8.1} ms", ms(d));
    println!(
        "ratio assembly/docker    {:8.3}   (target <= 0.2)",
        a.as_secs_f64() / d.as_secs_f64()
    );
    println!("standard build, first    {:8.1} ms", ms(cold));
    println!(
        "resubmission (cached)    {:8.1} ms   (target < 1000)",
        ms(warm)
    );
    Ok(())
}
