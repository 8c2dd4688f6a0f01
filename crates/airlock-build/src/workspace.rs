//! The build workspace: a private copy of the source, and collecting the declared artifacts from it into a
//! staging directory laid out as they will appear in the image.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use airlock_descriptor::Artifact;

use crate::BuildError;
use crate::source::safe_relative;

/// Deepest directory nesting copied.
const MAX_DEPTH: usize = 64;

/// Copies the source tree `src` into `dest` (created), keeping symlinks as symlinks.
pub fn copy_source(src: &Path, dest: &Path) -> Result<(), BuildError> {
    fs::create_dir_all(dest).map_err(|e| BuildError::io(dest, e))?;
    for entry in walkdir::WalkDir::new(src)
        .follow_links(false)
        .max_depth(MAX_DEPTH)
        .min_depth(1)
    {
        let entry = entry.map_err(|e| {
            let path = e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| src.to_path_buf());
            BuildError::io(path, e.into())
        })?;
        let rel = entry.path().strip_prefix(src).map_err(|_| {
            BuildError::Invalid(format!(
                "{} is outside {}",
                entry.path().display(),
                src.display()
            ))
        })?;
        let target = dest.join(rel);
        let ft = entry.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&target).map_err(|e| BuildError::io(&target, e))?;
        } else if ft.is_symlink() {
            let link = fs::read_link(entry.path()).map_err(|e| BuildError::io(entry.path(), e))?;
            std::os::unix::fs::symlink(&link, &target).map_err(|e| BuildError::io(&target, e))?;
        } else if ft.is_file() {
            fs::copy(entry.path(), &target).map_err(|e| BuildError::io(&target, e))?;
        }
        // Sockets, fifos and devices are not copied: they cannot come from a checked source.
    }
    Ok(())
}

/// Checks an artifact's `from` lexically: relative, no `..`, not empty.
pub(crate) fn artifact_rel(artifact: &Artifact) -> Result<PathBuf, BuildError> {
    let rel = safe_relative(&artifact.from).map_err(|reason| BuildError::ArtifactEscapes {
        path: artifact.from.clone(),
        reason,
    })?;
    if rel.as_os_str().is_empty() {
        return Err(BuildError::ArtifactEscapes {
            path: artifact.from.clone(),
            reason: "names the whole workspace".into(),
        });
    }
    Ok(rel)
}

/// Where an artifact goes in the image, relative to the image root.
pub(crate) fn artifact_to(artifact: &Artifact) -> Result<String, BuildError> {
    airlock_oci::normalize_path(&artifact.to).map_err(|e| {
        BuildError::Invalid(format!(
            "artifact {:?} has an unusable destination {:?}: {e}",
            artifact.from, artifact.to
        ))
    })
}

/// Copies the file or directory `from` (inside `workspace`) to `staging/<to>`. Symlinks are followed only
/// while they stay inside the workspace; files become 0755 when executable, else 0644.
pub(crate) fn collect_artifact(
    workspace: &Path,
    from: &Path,
    shown: &str,
    to: &str,
    staging: &Path,
) -> Result<(), BuildError> {
    let host = workspace.join(from);
    if fs::symlink_metadata(&host).is_err() {
        return Err(BuildError::ArtifactMissing {
            path: shown.to_string(),
        });
    }
    let root = fs::canonicalize(workspace).map_err(|e| BuildError::io(workspace, e))?;
    let real = resolve_inside(&root, &host, shown)?;
    let target = staging.join(to);
    if fs::symlink_metadata(&target).is_ok() {
        return Err(BuildError::Invalid(format!(
            "two artifacts go to /{to} (the second is {shown:?})"
        )));
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|e| BuildError::io(parent, e))?;
    }
    copy_resolved(&root, &real, &target, shown, 0)
}

fn resolve_inside(root: &Path, path: &Path, shown: &str) -> Result<PathBuf, BuildError> {
    let real = fs::canonicalize(path).map_err(|_| BuildError::ArtifactMissing {
        path: format!("{shown} (a symlink whose target does not exist)"),
    })?;
    if !real.starts_with(root) {
        return Err(BuildError::ArtifactEscapes {
            path: shown.to_string(),
            reason: "a symlink leads out of the workspace".into(),
        });
    }
    Ok(real)
}

fn copy_resolved(
    root: &Path,
    real: &Path,
    target: &Path,
    shown: &str,
    depth: usize,
) -> Result<(), BuildError> {
    if depth > MAX_DEPTH {
        return Err(BuildError::Invalid(format!(
            "artifact {shown:?} nests deeper than {MAX_DEPTH}"
        )));
    }
    let meta = fs::metadata(real).map_err(|e| BuildError::io(real, e))?;
    if meta.is_file() {
        fs::copy(real, target).map_err(|e| BuildError::io(target, e))?;
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        fs::set_permissions(target, fs::Permissions::from_mode(mode))
            .map_err(|e| BuildError::io(target, e))?;
        Ok(())
    } else if meta.is_dir() {
        fs::create_dir_all(target).map_err(|e| BuildError::io(target, e))?;
        let mut names: Vec<_> = fs::read_dir(real)
            .map_err(|e| BuildError::io(real, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| BuildError::io(real, e))?;
        names.sort();
        for name in names {
            let child = real.join(&name);
            let child_shown = format!("{shown}/{}", name.to_string_lossy());
            let child_real = resolve_inside(root, &child, &child_shown)?;
            copy_resolved(
                root,
                &child_real,
                &target.join(&name),
                &child_shown,
                depth + 1,
            )?;
        }
        Ok(())
    } else {
        Err(BuildError::Invalid(format!(
            "artifact {shown:?} is not a file or directory"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn art(from: &str, to: &str) -> Artifact {
        Artifact {
            from: from.to_string(),
            to: to.to_string(),
        }
    }

    fn collect(ws: &Path, a: &Artifact, staging: &Path) -> Result<(), BuildError> {
        let rel = artifact_rel(a)?;
        let to = artifact_to(a)?;
        collect_artifact(ws, &rel, &a.from, &to, staging)
    }

    #[test]
    fn rejects_artifact_with_dotdot_or_absolute_path() {
        let tmp = tempfile::tempdir().unwrap();
        for from in ["../secret", "/etc/passwd", "out/../../x"] {
            let err = collect(tmp.path(), &art(from, "/app/x"), &tmp.path().join("s")).unwrap_err();
            assert!(
                matches!(&err, BuildError::ArtifactEscapes { path, .. } if path == from),
                "{err}"
            );
        }
    }

    #[test]
    fn rejects_artifact_symlink_out_of_workspace() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        fs::create_dir(&ws).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", ws.join("out")).unwrap();
        let err = collect(&ws, &art("out", "/app/out"), &tmp.path().join("s")).unwrap_err();
        assert!(
            matches!(&err, BuildError::ArtifactEscapes { path, .. } if path == "out"),
            "{err}"
        );
        // A symlinked directory leading out is refused too.
        fs::create_dir(ws.join("d")).unwrap();
        std::os::unix::fs::symlink("/etc", ws.join("d/etc")).unwrap();
        let err = collect(&ws, &art("d", "/app/d"), &tmp.path().join("s2")).unwrap_err();
        assert!(
            matches!(&err, BuildError::ArtifactEscapes { path, .. } if path == "d/etc"),
            "{err}"
        );
    }

    #[test]
    fn missing_artifact_names_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let err = collect(
            tmp.path(),
            &art("target/release/app", "/app/app"),
            &tmp.path().join("s"),
        )
        .unwrap_err();
        assert!(
            matches!(&err, BuildError::ArtifactMissing { path } if path == "target/release/app"),
            "{err}"
        );
        assert!(err.to_string().contains("target/release/app"));
    }

    #[test]
    fn collects_files_and_dirs_with_normalised_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        fs::create_dir_all(ws.join("static/css")).unwrap();
        fs::write(ws.join("static/css/a.css"), "a").unwrap();
        fs::write(ws.join("run"), "#!/bin/sh").unwrap();
        fs::set_permissions(ws.join("run"), fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink("run", ws.join("run-link")).unwrap();
        let staging = tmp.path().join("s");
        collect(&ws, &art("run-link", "/app/bin/run"), &staging).unwrap();
        collect(&ws, &art("static", "/app/static"), &staging).unwrap();
        let mode = fs::metadata(staging.join("app/bin/run"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o755);
        assert_eq!(
            fs::read_to_string(staging.join("app/static/css/a.css")).unwrap(),
            "a"
        );
    }
}
