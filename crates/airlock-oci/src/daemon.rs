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

/// A `docker-daemon:NAME:TAG` destination: a copy writes into a temporary OCI layout, and
/// [`DaemonDestination::load`] streams that image into the Engine as a `docker load` archive (through the
/// `docker` CLI, as [`save_image`] reads). The Engine keeps no manifest, so what it holds afterwards is known
/// by its config digest (the image ID) and its layers' diff ids, which `docker load` checks.
#[derive(Debug)]
pub struct DaemonDestination {
    /// Where the copy writes (inside `_dir`).
    pub layout: OciLayout,
    name: String,
    tag: String,
    // Holds the layout; removed on Drop.
    dir: tempfile::TempDir,
}

impl DaemonDestination {
    /// An empty destination for `name:tag`.
    pub fn create(name: &str, tag: &str) -> Result<Self, Error> {
        let dir = tempfile::Builder::new()
            .prefix("airlock-oci-daemon-load-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        Ok(DaemonDestination {
            layout: OciLayout::create(&dir.path().join("layout"))?,
            name: name.to_string(),
            tag: tag.to_string(),
            dir,
        })
    }

    /// Loads the image written under the tag into the Engine as `name:tag` (for an index, its linux/amd64
    /// image) and returns its image ID (the config digest).
    pub async fn load(&self) -> Result<Digest, Error> {
        let image = format!("{}:{}", self.name, self.tag);
        let written = crate::read_image(&self.layout, &self.tag).await?;
        let id = written.config_digest.clone();
        let layout = self.layout.clone();
        let work = self.dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || load_blocking(&layout, &written, &image, &work))
            .await
            .map_err(|e| Error::DockerDaemon {
                image: format!("{}:{}", self.name, self.tag),
                message: format!("the load task stopped: {e}"),
            })??;
        Ok(id)
    }
}

/// Streams `image` from `layout` into `docker load` as a Docker archive: `manifest.json`, the config as
/// `<hex>.json`, each layer as `<hex>/layer.tar`. Gzip and uncompressed layers go as they are (the Engine
/// inflates them and checks their diff ids); zstd layers are inflated to a file in `work` first, since the
/// Engine of Debian 12 cannot read zstd.
fn load_blocking(
    layout: &OciLayout,
    image: &crate::Image,
    name: &str,
    work: &Path,
) -> Result<(), Error> {
    let mut child = Command::new("docker")
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| daemon_error(name, format!("running `docker load`: {e}")))?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| daemon_error(name, "`docker load` has no stdin"))?;
    let written = write_archive(layout, image, name, work, std::io::BufWriter::new(stdin));
    // Whatever happened to the stream, the Engine's own words come first when it failed.
    let out = child
        .wait_with_output()
        .map_err(|e| daemon_error(name, format!("waiting for `docker load`: {e}")))?;
    if !out.status.success() {
        return Err(daemon_error(
            name,
            format!(
                "`docker load` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    written
}

fn write_archive<W: std::io::Write>(
    layout: &OciLayout,
    image: &crate::Image,
    name: &str,
    work: &Path,
    out: W,
) -> Result<(), Error> {
    let mut tar = tar::Builder::new(out);
    let broken = |e: std::io::Error| daemon_error(name, format!("streaming to `docker load`: {e}"));
    let append_file = |tar: &mut tar::Builder<W>, entry: &str, path: &Path| -> Result<(), Error> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(0);
        tar.append_data(&mut header, entry, std::io::BufReader::new(file))
            .map_err(broken)
    };
    let config_name = format!("{}.json", image.config_digest.hex());
    append_file(
        &mut tar,
        &config_name,
        &layout.blob_path(&image.config_digest),
    )?;
    let mut layer_names = Vec::with_capacity(image.manifest.layers.len());
    for (i, layer) in image.manifest.layers.iter().enumerate() {
        let entry = format!("{}/layer.tar", layer.digest.hex());
        let blob = layout.blob_path(&layer.digest);
        if layer.media_type.contains("zstd") {
            let inflated = work.join(format!("layer-{i}.tar"));
            let src = std::fs::File::open(&blob).map_err(|e| Error::io(&blob, e))?;
            let mut decoder =
                zstd::stream::read::Decoder::new(src).map_err(|e| Error::io(&blob, e))?;
            let mut dst = std::fs::File::create(&inflated).map_err(|e| Error::io(&inflated, e))?;
            std::io::copy(&mut decoder, &mut dst).map_err(|e| Error::io(&blob, e))?;
            append_file(&mut tar, &entry, &inflated)?;
            let _ = std::fs::remove_file(&inflated);
        } else {
            append_file(&mut tar, &entry, &blob)?;
        }
        layer_names.push(entry);
    }
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [name],
        "Layers": layer_names,
    }]);
    let bytes = manifest.to_string().into_bytes();
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    tar.append_data(&mut header, "manifest.json", &bytes[..])
        .map_err(broken)?;
    tar.into_inner().map_err(broken)?.flush().map_err(broken)?;
    Ok(())
}
