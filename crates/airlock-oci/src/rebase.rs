//! Rebasing without rebuilding: swap the base layers of an image for those of a newer base of the same
//! lineage, keep the app layers, and rewrite the config's `rootfs.diff_ids` and history to match.

use crate::image::copy_blobs;
use crate::{Descriptor, Digest, Error, Store, read_image, write_image};

/// Config label (and OCI annotation key) naming the digest of the base image an image was built on; builds
/// set it and [`rebase_image`] moves it to the new base, so the base can be found from the image alone.
pub const BASE_DIGEST_LABEL: &str = "org.opencontainers.image.base.digest";
/// Config label (and OCI annotation key) naming the base image an image was built on (its lineage).
pub const BASE_NAME_LABEL: &str = "org.opencontainers.image.base.name";

/// What [`rebase_image`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebaseReport {
    /// Digest of the rebased image manifest at the destination.
    pub digest: Digest,
    /// Base layers removed (those of the old base).
    pub old_base_layers: usize,
    /// Base layers put in their place (those of the new base).
    pub new_base_layers: usize,
    /// App layers kept unchanged.
    pub app_layers: usize,
}

/// A store and a tag or digest in it.
pub type Located<'a> = (&'a dyn Store, &'a str);

/// Rebases `image` from `old_base` onto `new_base` and writes the result to `dst` (tagged `dst_tag`).
///
/// The image must start with exactly the old base's layers (same digests and diff_ids) and its history must
/// start with as many entries as the old base has; the new base must be for the same OS and architecture.
/// Only blobs `dst` lacks are copied: the new base's layers from `new_base`, the app layers from `image`.
pub async fn rebase_image(
    image: Located<'_>,
    old_base: Located<'_>,
    new_base: Located<'_>,
    dst: &dyn Store,
    dst_tag: Option<&str>,
) -> Result<RebaseReport, Error> {
    let app = read_image(image.0, image.1).await?;
    let old = read_image(old_base.0, old_base.1).await?;
    let new = read_image(new_base.0, new_base.1).await?;
    let what = format!("{} in {}", image.1, image.0.describe());
    let refuse = |reason: String| Error::InvalidImage {
        reference: what.clone(),
        reason,
    };
    let k = old.manifest.layers.len();
    let built_on_old = app.manifest.layers.len() >= k
        && app.config.rootfs.diff_ids.len() == app.manifest.layers.len()
        && app.manifest.layers[..k]
            .iter()
            .zip(&old.manifest.layers)
            .all(|(a, b)| a.digest == b.digest)
        && app.config.rootfs.diff_ids[..k] == old.config.rootfs.diff_ids[..];
    if !built_on_old {
        return Err(refuse(format!(
            "it is not built on {} (its first layers are not that base's {k} layers)",
            old_base.1
        )));
    }
    if (new.config.os.as_str(), new.config.architecture.as_str())
        != (app.config.os.as_str(), app.config.architecture.as_str())
    {
        return Err(refuse(format!(
            "the new base {} is {}/{}, the image {}/{}",
            new_base.1,
            new.config.os,
            new.config.architecture,
            app.config.os,
            app.config.architecture
        )));
    }
    let h = old.config.history.len();
    if app.config.history.len() < h {
        return Err(refuse(format!(
            "its history has fewer entries than the base's {h}"
        )));
    }

    let new_layers: Vec<&Descriptor> = new.manifest.layers.iter().collect();
    let app_layers: Vec<&Descriptor> = app.manifest.layers[k..].iter().collect();
    copy_blobs(new_base.0, dst, &new_layers).await?;
    copy_blobs(image.0, dst, &app_layers).await?;

    let mut config = app.config.clone();
    config.rootfs.diff_ids = new
        .config
        .rootfs
        .diff_ids
        .iter()
        .chain(&app.config.rootfs.diff_ids[k..])
        .cloned()
        .collect();
    config.history = new
        .config
        .history
        .iter()
        .chain(&app.config.history[h..])
        .cloned()
        .collect();
    // The image now sits on the new base: a base-digest label pointing at the old one would send the next
    // rebase looking for the wrong layers.
    if let Some(labels) = config.config.labels.as_mut()
        && labels.contains_key(BASE_DIGEST_LABEL)
    {
        labels.insert(BASE_DIGEST_LABEL.to_string(), new.digest.to_string());
    }
    let layers: Vec<(Descriptor, Option<&[u8]>)> = new_layers
        .iter()
        .chain(&app_layers)
        .map(|d| ((*d).clone(), None))
        .collect();
    let digest = write_image(dst, &config, &layers, dst_tag).await?;
    Ok(RebaseReport {
        digest,
        old_base_layers: k,
        new_base_layers: new_layers.len(),
        app_layers: app_layers.len(),
    })
}
