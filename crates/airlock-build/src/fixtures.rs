//! Local stacks for tests, benchmarks and development set-ups, since no image can be pulled here.
//!
//! - [`busybox_stack`]: a static busybox image as both builder (in the Docker Engine) and run base (in the
//!   base store); made in a second.
//! - [`debian_python_stack`]: a Debian bookworm root filesystem with Python 3.11 made by `debootstrap`
//!   (`--variant=minbase --include=python3-minimal`), so scans see real dpkg and Python data. Making it takes
//!   about half a minute and needs root and the Debian mirror, so the root filesystem tar is cached under
//!   [`fixtures_dir`] and reused.
//!
//! Both return a [`Stack`] whose builder and run image are pinned by digest, exactly as a platform config
//! would name them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_oci::{Compression, Descriptor, Digest, History, ImageConfig, Store};
use bollard::Docker;

use crate::bootstrap::NONROOT;
use crate::{BuildError, Stack, create_busybox_image, load_into_docker};

/// Where fixtures are cached: `$AIRLOCK_CACHE/fixtures`, else `$HOME/.cache/airlock/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    let cache = std::env::var_os("AIRLOCK_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/airlock")))
        .unwrap_or_else(|| std::env::temp_dir().join("airlock-cache"));
    cache.join("fixtures")
}

/// The busybox stack: `/bin/busybox` (host path `busybox`) as run base `busybox` in `bases` and as builder
/// image `airlock.local/stacks/busybox:<digest prefix>` in the Engine.
pub async fn busybox_stack(
    docker: &Docker,
    bases: &dyn Store,
    busybox: &Path,
) -> Result<Stack, BuildError> {
    let digest = create_busybox_image(bases, "busybox", busybox).await?;
    stack_from_base(docker, bases, "busybox", "busybox", &digest).await
}

/// The Debian bookworm + Python stack: run base `debian-python` in `bases`, builder image
/// `airlock.local/stacks/debian-python:<digest prefix>` in the Engine. The root filesystem comes from the
/// cache, or from `debootstrap` on first use.
pub async fn debian_python_stack(docker: &Docker, bases: &dyn Store) -> Result<Stack, BuildError> {
    let rootfs_tar = tokio::task::spawn_blocking(ensure_debian_rootfs)
        .await
        .map_err(|e| {
            BuildError::Invalid(format!("making the Debian root filesystem failed: {e}"))
        })??;
    let tar = std::fs::read(&rootfs_tar).map_err(|e| BuildError::io(&rootfs_tar, e))?;
    let diff_id = Digest::of(&tar);
    let data =
        tokio::task::spawn_blocking(move || airlock_oci::layer::compress(tar, Compression::Gzip))
            .await
            .map_err(|e| {
                BuildError::Invalid(format!("compressing the Debian layer failed: {e}"))
            })??;
    let layer = Descriptor::for_bytes(Compression::Gzip.media_type(), &data);
    let mut config = ImageConfig::new("amd64", "linux");
    config.created = Some("1970-01-01T00:00:00Z".into());
    config.config.user = Some(format!("{NONROOT}:{NONROOT}"));
    config.config.env = Some(vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "LANG=C.UTF-8".into(),
    ]);
    config.rootfs.diff_ids.push(diff_id);
    config.history.push(History {
        created: config.created.clone(),
        created_by: Some("debootstrap --variant=minbase --include=python3-minimal bookworm".into()),
        comment: Some("made by airlock (test stack)".into()),
        ..History::default()
    });
    let digest = airlock_oci::write_image(
        bases,
        &config,
        &[(layer, Some(&data[..]))],
        Some("debian-python"),
    )
    .await?;
    stack_from_base(docker, bases, "debian-python", "debian-python", &digest).await
}

async fn stack_from_base(
    docker: &Docker,
    bases: &dyn Store,
    name: &str,
    reference: &str,
    digest: &Digest,
) -> Result<Stack, BuildError> {
    let builder = format!("airlock.local/stacks/{name}:{}", &digest.hex()[..16]);
    let builder_id = match docker.inspect_image(&builder).await.ok().and_then(|i| i.id) {
        Some(id) => id,
        None => load_into_docker(docker, bases, reference, &builder).await?,
    };
    Ok(Stack {
        name: name.to_string(),
        builder_image: Some(builder),
        builder_image_digest: Some(builder_id),
        run_image: reference.to_string(),
        run_image_digest: digest.clone(),
        env: BTreeMap::new(),
        timeout_secs: 600,
        memory_mb: 1024,
        cpus: 2.0,
        network: false,
    })
}

/// The cached `rootfs.tar` of Debian bookworm minbase + python3-minimal, made with `debootstrap` and packed
/// in name order with numeric owners and mtime 0 (the same tree gives the same bytes).
fn ensure_debian_rootfs() -> Result<PathBuf, BuildError> {
    let dir = fixtures_dir().join("debian-bookworm-python");
    let tar_path = dir.join("rootfs.tar");
    if tar_path.is_file() {
        return Ok(tar_path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| BuildError::io(&dir, e))?;
    let root = dir.join("rootfs.partial");
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(|e| BuildError::io(&root, e))?;
    }
    run(
        std::process::Command::new("debootstrap")
            .args(["--variant=minbase", "--include=python3-minimal", "bookworm"])
            .arg(&root)
            .arg("http://deb.debian.org/debian"),
        "debootstrap (Debian package debootstrap; needs root and the Debian mirror)",
    )?;
    // Package caches are not part of a base image.
    for sub in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let p = root.join(sub);
        if let Ok(entries) = std::fs::read_dir(&p) {
            for entry in entries.flatten() {
                if entry.path().is_file() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
    let partial = dir.join("rootfs.tar.partial");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .map_err(|e| BuildError::io(&root, e))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    run(
        std::process::Command::new("tar")
            .args([
                "--sort=name",
                "--numeric-owner",
                "--mtime=@0",
                "--format=gnu",
                "-C",
            ])
            .arg(&root)
            .arg("-cf")
            .arg(&partial)
            .args(&names),
        "tar",
    )?;
    std::fs::rename(&partial, &tar_path).map_err(|e| BuildError::io(&tar_path, e))?;
    let _ = std::fs::remove_dir_all(&root);
    Ok(tar_path)
}

fn run(cmd: &mut std::process::Command, what: &str) -> Result<(), BuildError> {
    let out = cmd.output().map_err(|e| BuildError::io(what, e))?;
    if !out.status.success() {
        return Err(BuildError::Invalid(format!(
            "{what} failed: {}",
            crate::log::tail(&String::from_utf8_lossy(&out.stderr), 2000)
        )));
    }
    Ok(())
}
