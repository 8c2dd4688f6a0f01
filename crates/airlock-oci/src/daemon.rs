//! Reading `docker-daemon:NAME:TAG` images: `docker save` through the `docker` CLI (so this crate, which
//! the agent links, never links a Docker client library), converted to an OCI layout.
//!
//! The Engine (20.10 here) saves its own archive format: `manifest.json`, the config as `<id>.json`, and
//! uncompressed `layer.tar` files. The config bytes are kept unchanged, so the config digest is the Engine's
//! image ID; the layers become uncompressed OCI layers, so their digests are the config's `diff_ids`. The
//! manifest is new (the Engine keeps none), which is why the result has its own manifest digest, exactly as
//! `skopeo copy docker-daemon:` gives.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::media_type;
use crate::{Descriptor, Digest, DigestWriter, Error, ImageConfig, ImageManifest, OciLayout};

/// A saved image converted to a temporary OCI layout, tagged with its tag.
#[derive(Debug)]
pub struct DaemonImage {
    /// The layout (inside `_dir`).
    pub layout: OciLayout,
    /// The manifest digest in the layout.
    pub digest: Digest,
    // Kept for its Drop.
    _dir: tempfile::TempDir,
}

fn daemon_error(image: &str, message: impl Into<String>) -> Error {
    Error::DockerDaemon {
        image: image.to_string(),
        message: message.into(),
    }
}

/// Saves `name:tag` from the local Docker Engine and converts it to an OCI layout tagged `tag`.
pub fn save_image(name: &str, tag: &str) -> Result<DaemonImage, Error> {
    let image = format!("{name}:{tag}");
    let dir = tempfile::Builder::new()
        .prefix("airlock-oci-daemon-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let saved = dir.path().join("saved.tar");
    let out = Command::new("docker")
        .arg("save")
        .arg("-o")
        .arg(&saved)
        .arg(&image)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| daemon_error(&image, format!("running `docker save`: {e}")))?;
    if !out.status.success() {
        return Err(daemon_error(
            &image,
            format!(
                "`docker save` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let unpacked = dir.path().join("saved");
    let file = std::fs::File::open(&saved).map_err(|e| Error::io(&saved, e))?;
    tar::Archive::new(std::io::BufReader::new(file))
        .unpack(&unpacked)
        .map_err(|e| daemon_error(&image, format!("unpacking the saved image: {e}")))?;
    let _ = std::fs::remove_file(&saved);

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct SavedManifest {
        config: String,
        layers: Vec<String>,
    }
    let manifest_path = unpacked.join("manifest.json");
    let bytes = std::fs::read(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
    let saved_manifests: Vec<SavedManifest> =
        serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: format!("manifest.json saved from {image}"),
            source,
        })?;
    let [saved_manifest] = saved_manifests.as_slice() else {
        return Err(daemon_error(
            &image,
            format!(
                "the saved archive holds {} images, expected one",
                saved_manifests.len()
            ),
        ));
    };

    let layout = OciLayout::create(&dir.path().join("layout"))?;
    let config_path = inside(&unpacked, &saved_manifest.config, &image)?;
    let config_bytes = std::fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let config = ImageConfig::from_bytes(&config_bytes, &format!("config of {image}"))?;
    let config_desc = Descriptor::for_bytes(media_type::OCI_CONFIG, &config_bytes);
    layout.put_blob_sync(&config_desc.digest, &config_bytes)?;

    let mut layers = Vec::with_capacity(saved_manifest.layers.len());
    for layer in &saved_manifest.layers {
        let path = inside(&unpacked, layer, &image)?;
        let (digest, size) = hash_file(&path)?;
        let target = layout.blob_path(&digest);
        if !target.exists() {
            // Same file system (both in the temporary directory): a rename, not a copy.
            std::fs::rename(&path, &target)
                .or_else(|_| std::fs::copy(&path, &target).map(|_| ()))
                .map_err(|e| Error::io(&target, e))?;
        }
        layers.push(Descriptor::new(media_type::OCI_LAYER_TAR, digest, size));
    }
    let diff_ids: Vec<&Digest> = layers.iter().map(|d| &d.digest).collect();
    if config.rootfs.diff_ids.iter().collect::<Vec<_>>() != diff_ids {
        return Err(daemon_error(
            &image,
            "the saved layers do not match the config's rootfs.diff_ids",
        ));
    }
    let manifest = ImageManifest::new(config_desc, layers);
    let digest =
        layout.put_manifest_sync(&manifest.to_bytes(), media_type::OCI_MANIFEST, Some(tag))?;
    let _ = std::fs::remove_dir_all(&unpacked);
    Ok(DaemonImage {
        layout,
        digest,
        _dir: dir,
    })
}

/// `rel` resolved inside `root` (following symbolic links, which `docker save` uses for repeated layers),
/// refusing anything that leads outside it.
fn inside(root: &Path, rel: &str, image: &str) -> Result<PathBuf, Error> {
    let root = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
    let path = std::fs::canonicalize(root.join(rel)).map_err(|e| Error::io(root.join(rel), e))?;
    if !path.starts_with(&root) || !path.is_file() {
        return Err(daemon_error(
            image,
            format!("saved archive entry {rel:?} is not a file inside the archive"),
        ));
    }
    Ok(path)
}

fn hash_file(path: &Path) -> Result<(Digest, u64), Error> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = DigestWriter::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(hasher.finish())
}
