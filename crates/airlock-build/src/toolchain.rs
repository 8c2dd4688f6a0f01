//! A builder image made from this machine's own Rust toolchain, for development set-ups.
//!
//! No image can be pulled here, yet a standard build should run in a container of its stack's builder image
//! whenever a Docker Engine answers. This assembles one from what the host already has: `cargo` and `rustc`
//! with their libraries and the x86_64 standard library (the sysroot), the C compiler driver that rustc
//! links through with its static C runtime (glibc's `*.a` and crt objects, gcc's), the shared libraries
//! those programs load (found with `ldd`), and a static busybox for `/bin/sh`. The same toolchain builds
//! byte-identical binaries inside and outside the container, so the host and Docker builders agree.
//!
//! The image is tagged with the toolchain version and made once per Engine; later calls find it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::Docker;
use futures::StreamExt;

use crate::BuildError;

/// Repository of the toolchain builder images in the Docker Engine.
pub const TOOLCHAIN_IMAGE_REPO: &str = "airlock.local/builders/rust-host";

/// The Rust target whose standard library goes into the image (the only one installed here).
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Files of gcc's private directory a link step does not need (compilers proper, headers, plugins,
/// sanitizer runtimes); leaving them out saves about 100 MB.
const GCC_SKIP: &[&str] = &[
    "cc1",
    "cc1plus",
    "lto1",
    "include",
    "plugin",
    "g++-mapper-server",
];

/// glibc's static libraries and start files, from the directory holding `libc.a`.
const LIBC_STATIC: &[&str] = &[
    "crt1.o",
    "crti.o",
    "crtn.o",
    "Scrt1.o",
    "rcrt1.o",
    "gcrt1.o",
    "grcrt1.o",
    "Mcrt1.o",
    "libc.a",
    "libm.a",
    "libmvec.a",
    "libpthread.a",
    "libdl.a",
    "librt.a",
    "libutil.a",
    "libresolv.a",
    "libanl.a",
    "libc_nonshared.a",
];

/// Busybox applets linked in `/bin`, enough for build commands run with `sh -c`.
const APPLETS: &[&str] = &[
    "sh", "cat", "cp", "echo", "env", "ls", "mkdir", "mv", "rm", "sed", "test", "true", "false",
];

/// A toolchain builder image in the Docker Engine.
#[derive(Debug, Clone)]
pub struct ToolchainImage {
    /// `repo:tag`, the name a stack's `builder_image` uses.
    pub name: String,
    /// The Engine's id of the image (`sha256:` of its config).
    pub image_id: String,
    /// Whether this call made it (false: it was already there).
    pub created: bool,
}

/// Returns the toolchain builder image for the host's `rustc`, making and loading it into `docker` first
/// when it is not there. Needs `rustc`, `cc` and a static busybox on the host.
pub async fn ensure_toolchain_image(docker: &Docker) -> Result<ToolchainImage, BuildError> {
    // Concurrent callers in one process (tests, a gate starting workers) make the image once.
    static MAKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _guard = MAKING.lock().await;

    let version = command_output("rustc", &["--version"])?;
    let tag = toolchain_tag(&version)?;
    let name = format!("{TOOLCHAIN_IMAGE_REPO}:{tag}");
    if let Ok(inspect) = docker.inspect_image(&name).await {
        return Ok(ToolchainImage {
            image_id: inspect.id.unwrap_or_default(),
            name,
            created: false,
        });
    }

    let started = std::time::Instant::now();
    let files = tokio::task::spawn_blocking(collect_files)
        .await
        .map_err(|e| BuildError::Invalid(format!("collecting the toolchain failed: {e}")))??;
    let scratch =
        tempfile::NamedTempFile::new().map_err(|e| BuildError::io(std::env::temp_dir(), e))?;
    let tar_path = scratch.path().to_path_buf();
    let bytes = {
        let tar_path = tar_path.clone();
        tokio::task::spawn_blocking(move || write_rootfs_tar(&files, &tar_path))
            .await
            .map_err(|e| BuildError::Invalid(format!("packing the toolchain failed: {e}")))??
    };

    let file = tokio::fs::File::open(&tar_path)
        .await
        .map_err(|e| BuildError::io(&tar_path, e))?;
    let body = futures::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 1 << 20];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let options = bollard::query_parameters::CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(TOOLCHAIN_IMAGE_REPO)
        .tag(&tag)
        .changes(vec![
            "ENV PATH=/usr/local/rust/bin:/usr/bin:/bin".to_string(),
            "ENV HOME=/tmp".to_string(),
            "WORKDIR /workspace".to_string(),
        ])
        .build();
    let mut stream = docker.create_image(Some(options), Some(bollard::body_try_stream(body)), None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| BuildError::docker(format!("importing {name}"), e))?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            return Err(BuildError::Invalid(format!(
                "Docker Engine refused to import {name}: {err}"
            )));
        }
    }
    let inspect = docker
        .inspect_image(&name)
        .await
        .map_err(|e| BuildError::docker(format!("inspecting {name} after import"), e))?;
    tracing::info!(
        image = %name,
        bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "made a builder image from the host's Rust toolchain"
    );
    Ok(ToolchainImage {
        name,
        image_id: inspect.id.unwrap_or_default(),
        created: true,
    })
}

/// `rustc 1.95.0 (59807616e 2026-04-14)` → `1.95.0-59807616e`: a new toolchain gets a new image.
fn toolchain_tag(version: &str) -> Result<String, BuildError> {
    let mut words = version.split_whitespace().skip(1);
    let number = words.next().unwrap_or_default();
    let hash = words
        .next()
        .map(|h| h.trim_start_matches('('))
        .unwrap_or_default();
    let tag: String = format!("{number}-{hash}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if number.is_empty() || tag.len() > 128 {
        return Err(BuildError::Invalid(format!(
            "cannot read the toolchain version from `rustc --version`: {version:?}"
        )));
    }
    Ok(tag)
}

fn command_output(program: &str, args: &[&str]) -> Result<String, BuildError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| BuildError::io(program, e))?;
    if !output.status.success() {
        return Err(BuildError::Invalid(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Host file → path in the image (relative, no leading `/`).
type FileMap = BTreeMap<String, PathBuf>;

fn collect_files() -> Result<FileMap, BuildError> {
    let mut files = FileMap::new();
    let sysroot = PathBuf::from(command_output("rustc", &["--print", "sysroot"])?);
    for program in ["cargo", "rustc"] {
        let path = sysroot.join("bin").join(program);
        if !path.is_file() {
            return Err(BuildError::Invalid(format!(
                "{} is missing: the toolchain builder image needs cargo and rustc in rustc's sysroot",
                path.display()
            )));
        }
        files.insert(format!("usr/local/rust/bin/{program}"), path);
    }
    for entry in read_dir(&sysroot.join("lib"))? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(".so") && entry.path().is_file() {
            files.insert(format!("usr/local/rust/lib/{name}"), entry.path());
        }
    }
    let rustlib = sysroot.join("lib/rustlib").join(TARGET);
    for sub in ["lib", "bin"] {
        add_tree(
            &mut files,
            &rustlib.join(sub),
            &format!("usr/local/rust/lib/rustlib/{TARGET}/{sub}"),
        )?;
    }

    // rustc links through `cc`; the gcc driver finds its start files and libgcc next to libgcc.a.
    let cc = which("cc")?;
    files.insert("usr/bin/cc".into(), cc);
    let libgcc = PathBuf::from(command_output("cc", &["-print-libgcc-file-name"])?);
    let libgcc = libgcc
        .canonicalize()
        .map_err(|e| BuildError::io(&libgcc, e))?;
    let gcc_dir = libgcc
        .parent()
        .ok_or_else(|| BuildError::Invalid(format!("odd libgcc path {}", libgcc.display())))?;
    for entry in read_dir(gcc_dir)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if GCC_SKIP.contains(&name.as_str()) || name.contains("san") || !entry.path().is_file() {
            continue;
        }
        files.insert(in_image(&entry.path()), entry.path());
    }
    // gcc answers with `..` in the path (`.../gcc/x86_64-linux-gnu/12/../../../x86_64-linux-gnu/libc.a`).
    let libc_a = PathBuf::from(command_output("cc", &["-print-file-name=libc.a"])?);
    let libc_a = libc_a
        .canonicalize()
        .map_err(|e| BuildError::io(&libc_a, e))?;
    let libc_dir = libc_a.parent().unwrap_or(Path::new("/usr/lib"));
    for name in LIBC_STATIC {
        let path = libc_dir.join(name);
        if path.is_file() {
            files.insert(in_image(&path), path);
        }
    }
    // libm.a is a linker script naming the versioned archive beside it.
    for entry in read_dir(libc_dir)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("libm-") && name.ends_with(".a") {
            files.insert(in_image(&entry.path()), entry.path());
        }
    }

    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            BuildError::Invalid(
                "no static busybox at /bin/busybox (Debian package busybox-static): the toolchain \
                 builder image needs it for /bin/sh"
                    .into(),
            )
        })?;
    files.insert("bin/busybox".into(), busybox);

    let executables: Vec<PathBuf> = files.values().filter(|p| is_elf(p)).cloned().collect();
    for library in shared_libraries(&executables, &sysroot)? {
        files.insert(in_image(&library), library);
    }
    Ok(files)
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, BuildError> {
    std::fs::read_dir(dir)
        .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
        .map_err(|e| BuildError::io(dir, e))
}

fn add_tree(files: &mut FileMap, dir: &Path, to: &str) -> Result<(), BuildError> {
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.map_err(|e| BuildError::io(dir, e.into()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(dir)
            .map_err(|_| BuildError::Invalid(format!("odd path {}", entry.path().display())))?;
        files.insert(
            format!("{to}/{}", rel.to_string_lossy()),
            entry.path().to_path_buf(),
        );
    }
    Ok(())
}

fn in_image(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches('/').to_string()
}

fn which(program: &str) -> Result<PathBuf, BuildError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
        .ok_or_else(|| {
            BuildError::Invalid(format!(
                "`{program}` is not on PATH: the toolchain builder image needs a C compiler driver \
                 (Debian package gcc) for rustc to link with"
            ))
        })
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The absolute paths of the shared libraries (and the dynamic loader) `executables` load, outside the
/// sysroot (which travels whole), as `ldd` reports them.
fn shared_libraries(executables: &[PathBuf], sysroot: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut libraries = std::collections::BTreeSet::new();
    for chunk in executables.chunks(64) {
        let output = Command::new("ldd")
            .args(chunk)
            .output()
            .map_err(|e| BuildError::io("ldd", e))?;
        // ldd exits non-zero when one of the files is static (busybox); its other lines still count.
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some(path) = line
                .split_whitespace()
                .find(|word| word.starts_with('/'))
                .map(PathBuf::from)
            else {
                continue;
            };
            if path.is_file() && !path.starts_with(sysroot) {
                libraries.insert(path);
            }
        }
    }
    Ok(libraries.into_iter().collect())
}

/// Writes the image's root filesystem as a tar: directories, the files (symlinks followed), busybox
/// applets, `/tmp` and `/workspace`. Returns its size in bytes.
fn write_rootfs_tar(files: &FileMap, out: &Path) -> Result<u64, BuildError> {
    let file = std::fs::File::create(out).map_err(|e| BuildError::io(out, e))?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    builder.follow_symlinks(true);
    builder.mode(tar::HeaderMode::Deterministic);

    let mut dirs = std::collections::BTreeSet::new();
    for path in files.keys() {
        let mut parent = Path::new(path).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(dir.to_path_buf());
            parent = dir.parent();
        }
    }
    dirs.insert("tmp".into());
    dirs.insert("workspace".into());
    dirs.insert("etc".into());
    for dir in &dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(if dir == Path::new("tmp") {
            0o1777
        } else {
            0o755
        });
        header.set_size(0);
        builder
            .append_data(&mut header, dir, std::io::empty())
            .map_err(|e| BuildError::io(out, e))?;
    }
    for (to, from) in files {
        builder
            .append_path_with_name(from, to)
            .map_err(|e| BuildError::io(from, e))?;
    }
    for applet in APPLETS {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        builder
            .append_link(&mut header, format!("bin/{applet}"), "busybox")
            .map_err(|e| BuildError::io(out, e))?;
    }
    let mut header = tar::Header::new_gnu();
    let passwd = b"root:x:0:0:root:/tmp:/bin/sh\n";
    header.set_size(passwd.len() as u64);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "etc/passwd", &passwd[..])
        .map_err(|e| BuildError::io(out, e))?;
    let writer = builder.into_inner().map_err(|e| BuildError::io(out, e))?;
    writer
        .into_inner()
        .map_err(|e| BuildError::io(out, e.into_error()))?
        .sync_all()
        .map_err(|e| BuildError::io(out, e))?;
    std::fs::metadata(out)
        .map(|m| m.len())
        .map_err(|e| BuildError::io(out, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_follows_the_toolchain_version() {
        assert_eq!(
            toolchain_tag("rustc 1.95.0 (59807616e 2026-04-14)").unwrap(),
            "1.95.0-59807616e"
        );
        assert_eq!(
            toolchain_tag("rustc 1.96.0-nightly (abc+def 2026-05-01)").unwrap(),
            "1.96.0-nightly-abc_def"
        );
        assert!(toolchain_tag("rustc").is_err());
    }
}
