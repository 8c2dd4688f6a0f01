//! Base images made locally, since nothing can be pulled here: a distroless-like static base and a busybox
//! image (builder and run image of the test stack), and loading an OCI image into the Docker Engine.

use std::path::Path;

use airlock_oci::{
    Compression, Digest, History, ImageConfig, LayerBuilder, Store, read_image, uncompressed_reader,
};
use futures::StreamExt;

use crate::BuildError;

/// uid/gid of the unprivileged user every app runs as.
pub const NONROOT: u64 = 65532;

/// Most bytes of an image assembled for `docker load` (held in memory).
const MAX_LOAD_BYTES: u64 = 2 << 30;

/// Busybox applets linked into `/bin` of the busybox image (enough for simple build scripts).
const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "ash", "cat", "chmod", "cp", "date", "echo", "env", "false", "grep", "head", "id", "ls",
    "mkdir", "mv", "printf", "pwd", "rm", "sed", "sleep", "tail", "tar", "test", "touch", "true",
    "wc", "wget",
];

fn static_layer_files(layer: &mut LayerBuilder) -> Result<(), BuildError> {
    layer.add_dir("etc", 0o755, 0, 0)?;
    layer.add_file(
        "etc/passwd",
        0o644,
        0,
        0,
        b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n".to_vec(),
    )?;
    layer.add_file(
        "etc/group",
        0o644,
        0,
        0,
        b"root:x:0:\nnonroot:x:65532:\n".to_vec(),
    )?;
    layer.add_file(
        "etc/os-release",
        0o644,
        0,
        0,
        b"ID=airlock-static\nNAME=\"airlock static\"\nPRETTY_NAME=\"airlock static base\"\n"
            .to_vec(),
    )?;
    layer.add_file(
        "etc/nsswitch.conf",
        0o644,
        0,
        0,
        b"hosts: files dns\n".to_vec(),
    )?;
    layer.add_dir("tmp", 0o1777, 0, 0)?;
    layer.add_dir("root", 0o700, 0, 0)?;
    layer.add_dir("home", 0o755, 0, 0)?;
    layer.add_dir("home/nonroot", 0o700, NONROOT, NONROOT)?;
    Ok(())
}

fn base_config(diff_id: Digest, created_by: &str) -> ImageConfig {
    let mut config = ImageConfig::new("amd64", "linux");
    config.created = Some("1970-01-01T00:00:00Z".to_string());
    config.config.user = Some(format!("{NONROOT}:{NONROOT}"));
    config.config.env = Some(vec!["PATH=/usr/local/bin:/usr/bin:/bin".to_string()]);
    config.rootfs.diff_ids.push(diff_id);
    config.history.push(History {
        created: config.created.clone(),
        created_by: Some(created_by.to_string()),
        comment: Some("made by airlock".to_string()),
        ..History::default()
    });
    config
}

async fn write_single_layer(
    store: &dyn Store,
    tag: &str,
    layer: LayerBuilder,
    created_by: &str,
) -> Result<Digest, BuildError> {
    let layer = layer.finish(Compression::Gzip)?;
    let config = base_config(layer.diff_id.clone(), created_by);
    let digest = airlock_oci::write_image(
        store,
        &config,
        &[(layer.descriptor.clone(), Some(&layer.data[..]))],
        Some(tag),
    )
    .await?;
    Ok(digest)
}

/// Writes the distroless-like static base (users root and nonroot 65532, `/etc` basics, `/tmp` 1777,
/// `/home/nonroot`) into `store` under `tag`. Same bytes every time, so the digest can be pinned.
pub async fn create_static_base(store: &dyn Store, tag: &str) -> Result<Digest, BuildError> {
    let mut layer = LayerBuilder::new(0);
    static_layer_files(&mut layer)?;
    write_single_layer(store, tag, layer, "airlock bootstrap: static base").await
}

/// Writes the static base plus `/bin/busybox` (read from `busybox`, a static binary) and `/bin/sh` and a
/// few applet links into `store` under `tag`.
pub async fn create_busybox_image(
    store: &dyn Store,
    tag: &str,
    busybox: &Path,
) -> Result<Digest, BuildError> {
    let meta = std::fs::metadata(busybox).map_err(|e| BuildError::io(busybox, e))?;
    if !meta.is_file() || meta.len() > 64 * 1024 * 1024 {
        return Err(BuildError::Invalid(format!(
            "{} is not a busybox binary (not a file or over 64 MiB)",
            busybox.display()
        )));
    }
    let binary = std::fs::read(busybox).map_err(|e| BuildError::io(busybox, e))?;
    let mut layer = LayerBuilder::new(0);
    static_layer_files(&mut layer)?;
    layer.add_dir("bin", 0o755, 0, 0)?;
    layer.add_file("bin/busybox", 0o755, 0, 0, binary)?;
    for applet in BUSYBOX_APPLETS {
        layer.add_symlink(&format!("bin/{applet}"), "busybox")?;
    }
    write_single_layer(store, tag, layer, "airlock bootstrap: busybox").await
}

/// Loads the image at `reference` in `store` into the Docker Engine as `name` (`repo:tag`), by assembling
/// a `docker save`-format archive (manifest.json, config, uncompressed layers) and posting it to
/// `/images/load`. Returns the engine's image id (`sha256:` of the config).
pub async fn load_into_docker(
    docker: &bollard::Docker,
    store: &dyn Store,
    reference: &str,
    name: &str,
) -> Result<String, BuildError> {
    let image = read_image(store, reference).await?;
    let config_bytes = store.get_blob(&image.config_digest).await?;
    let mut builder = tar::Builder::new(Vec::new());
    let mut total: u64 = 0;
    let mut layer_paths = Vec::new();
    for (i, desc) in image.manifest.layers.iter().enumerate() {
        let blob = store.get_blob(&desc.digest).await?;
        let mut reader = uncompressed_reader(&desc.media_type, &blob)?;
        let mut tar_bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(&mut reader, MAX_LOAD_BYTES.saturating_sub(total) + 1),
            &mut tar_bytes,
        )
        .map_err(|e| BuildError::io(format!("layer {} of {reference}", desc.digest), e))?;
        total += tar_bytes.len() as u64;
        if total > MAX_LOAD_BYTES {
            return Err(BuildError::Invalid(format!(
                "image {reference} is over {MAX_LOAD_BYTES} bytes uncompressed; too big to load"
            )));
        }
        let path = format!("layer{i}/layer.tar");
        append_bytes(&mut builder, &path, &tar_bytes)?;
        layer_paths.push(path);
    }
    let config_name = format!("{}.json", image.config_digest.hex());
    append_bytes(&mut builder, &config_name, &config_bytes)?;
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [name],
        "Layers": layer_paths,
    }]);
    append_bytes(
        &mut builder,
        "manifest.json",
        manifest.to_string().as_bytes(),
    )?;
    let archive = builder
        .into_inner()
        .map_err(|e| BuildError::io("docker load archive", e))?;

    let options = bollard::query_parameters::ImportImageOptionsBuilder::default()
        .quiet(true)
        .build();
    let mut stream = docker.import_image(options, bollard::body_full(archive.into()), None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| BuildError::docker(format!("loading {name}"), e))?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            return Err(BuildError::Invalid(format!(
                "Docker Engine refused to load {name}: {err}"
            )));
        }
    }
    let inspect = docker
        .inspect_image(name)
        .await
        .map_err(|e| BuildError::docker(format!("inspecting {name} after load"), e))?;
    inspect
        .id
        .ok_or_else(|| BuildError::Invalid(format!("Docker Engine reports no id for {name}")))
}

fn append_bytes(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    data: &[u8],
) -> Result<(), BuildError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, path, data)
        .map_err(|e| BuildError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_oci::OciLayout;

    #[tokio::test]
    async fn static_base_is_deterministic_and_runs_as_nonroot() {
        let tmp = tempfile::tempdir().unwrap();
        let a = OciLayout::open_or_create(&tmp.path().join("a")).unwrap();
        let b = OciLayout::open_or_create(&tmp.path().join("b")).unwrap();
        let da = create_static_base(&a, "static").await.unwrap();
        let db = create_static_base(&b, "static").await.unwrap();
        assert_eq!(da, db);
        let image = read_image(&a, "static").await.unwrap();
        assert_eq!(image.config.config.user.as_deref(), Some("65532:65532"));
        assert_eq!(image.config.os, "linux");
        assert_eq!(image.config.architecture, "amd64");
        // The layer holds the files a distroless base has.
        let blob = a.get_blob(&image.manifest.layers[0].digest).await.unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
        let mut seen = std::collections::BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            seen.insert(
                entry
                    .path()
                    .unwrap()
                    .display()
                    .to_string()
                    .trim_end_matches('/')
                    .to_string(),
                (h.mode().unwrap(), h.uid().unwrap(), h.mtime().unwrap()),
            );
        }
        assert_eq!(seen["tmp"].0, 0o1777);
        assert_eq!(seen["home/nonroot"].1, NONROOT);
        assert!(seen.contains_key("etc/os-release"));
        assert!(seen.values().all(|(_, _, mtime)| *mtime == 0));
    }
}
