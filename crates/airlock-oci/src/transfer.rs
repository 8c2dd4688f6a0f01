//! Air-gap hand-off of releases: the gate exports releases from its boundary (an OCI layout per
//! repository) into one OCI layout archive; the far side imports that archive into its own layouts.
//!
//! In the archive every entry is named `REPOSITORY:TAG` (`hello:release-0000000042`), so one file carries
//! several repositories and skopeo can still read any entry (`oci-archive:FILE:hello:release-0000000042`).
//! A release is its `release-NNNNNNNNNN` tag, the image its manifest names as `subject`, any tag pointing at
//! either, and the cosign signatures and attestations (`sha256-<hex>.sig` / `.att`) of both.
//!
//! Import checks the whole archive before it changes anything, then writes blobs and finally each
//! repository's tags in one `index.json` update: a truncated or tampered archive leaves the target as it
//! was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::image::attachment_tags;
use crate::media_type::is_manifest;
use crate::{
    Descriptor, Digest, Error, ImageManifest, LayoutRoot, OciArchive, OciLayout, Store, copy_image,
    validate_repository, validate_tag,
};

/// Prefix of release tags; the sequence follows as 10 digits.
pub const RELEASE_TAG_PREFIX: &str = "release-";

/// One tagged manifest moved by an export or import.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TransferEntry {
    /// The repository (app) it belongs to.
    pub repository: String,
    /// Its tag there.
    pub tag: String,
    /// The manifest digest.
    pub digest: Digest,
}

/// The sequence number of a `release-NNNNNNNNNN` tag, or `None` for any other tag.
pub fn release_sequence(tag: &str) -> Option<u64> {
    let digits = tag.strip_prefix(RELEASE_TAG_PREFIX)?;
    if digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// Writes every release with a sequence greater than `since` of each repository in `repositories` (layouts
/// under `root`) to the archive `out`, atomically (temporary name, then rename). A repository with no
/// layout is an error; when no release at all qualifies, nothing is written and the error says so.
pub async fn export_releases(
    root: &LayoutRoot,
    repositories: &[String],
    since: u64,
    out: &Path,
) -> Result<Vec<TransferEntry>, Error> {
    let archive = OciArchive::create(out)?;
    let mut exported = Vec::new();
    for repo in repositories {
        validate_repository(repo)?;
        let layout = OciLayout::open(&root.path().join(repo))?;
        let index = layout.read_index()?;
        let by_tag: BTreeMap<String, Descriptor> = index
            .manifests
            .iter()
            .filter_map(|d| Some((ref_name(d)?.to_string(), d.clone())))
            .collect();
        let releases: Vec<&String> = by_tag
            .keys()
            .filter(|t| release_sequence(t).is_some_and(|s| s > since))
            .collect();
        if releases.is_empty() {
            continue;
        }
        // The digests that belong to the selected releases: the releases and their subjects.
        let mut wanted = BTreeSet::new();
        for tag in &releases {
            let fetched = layout.get_manifest(tag).await?;
            wanted.insert(fetched.digest.clone());
            if is_manifest(&fetched.media_type) {
                let what = format!("release {tag} in {}", layout.describe());
                if let Some(subject) = ImageManifest::from_bytes(&fetched.bytes, &what)?.subject {
                    wanted.insert(subject.digest);
                }
            }
        }
        let mut tags: BTreeSet<String> = by_tag
            .iter()
            .filter(|(_, d)| wanted.contains(&d.digest))
            .map(|(t, _)| t.clone())
            .collect();
        for digest in &wanted {
            for tag in attachment_tags(digest) {
                if by_tag.contains_key(&tag) {
                    tags.insert(tag);
                }
            }
        }
        for tag in tags {
            let name = format!("{repo}:{tag}");
            let digest = copy_image(&layout, &archive, &tag, Some(&name)).await?;
            exported.push(TransferEntry {
                repository: repo.clone(),
                tag,
                digest,
            });
        }
    }
    if exported.is_empty() {
        return Err(Error::ManifestNotFound {
            reference: format!("releases after sequence {since}"),
            store: format!("{} ({})", root.path().display(), repositories.join(", ")),
        });
    }
    archive.finish().await?;
    Ok(exported)
}

/// Imports an archive written by [`export_releases`] into the layouts under `root`. The archive is checked
/// completely first (tar end marker, every blob against its digest, every referenced blob present, every
/// entry named `REPOSITORY:TAG`); only then are blobs copied, and each repository's tags are set in one
/// `index.json` update, release tags included. Returns what was imported.
pub async fn import_archive(file: &Path, root: &LayoutRoot) -> Result<Vec<TransferEntry>, Error> {
    let archive = OciArchive::open(file)?;
    let mut by_repo: BTreeMap<String, Vec<(String, Descriptor)>> = BTreeMap::new();
    for desc in archive.layout().read_index()?.manifests {
        let name = ref_name(&desc).unwrap_or_default().to_string();
        let Some((repo, tag)) = name.split_once(':') else {
            return Err(Error::InvalidArchive {
                path: file.to_path_buf(),
                reason: format!(
                    "entry {name:?} ({}) is not named REPOSITORY:TAG",
                    desc.digest
                ),
            });
        };
        validate_repository(repo)?;
        validate_tag(tag)?;
        by_repo
            .entry(repo.to_string())
            .or_default()
            .push((tag.to_string(), desc));
    }
    let mut imported = Vec::new();
    for (repo, entries) in by_repo {
        let layout = root.repo(&repo)?;
        for (_, desc) in &entries {
            copy_image(archive.layout(), &layout, desc.digest.as_str(), None).await?;
        }
        let tags: Vec<(String, Descriptor)> = entries
            .into_iter()
            .map(|(tag, mut desc)| {
                desc.annotations = None;
                (tag, desc)
            })
            .collect();
        let layout2 = layout.clone();
        let tags2 = tags.clone();
        tokio::task::spawn_blocking(move || layout2.set_tags(&tags2))
            .await
            .map_err(|e| Error::io(layout.path(), std::io::Error::other(e)))??;
        imported.extend(tags.into_iter().map(|(tag, desc)| TransferEntry {
            repository: repo.clone(),
            tag,
            digest: desc.digest,
        }));
    }
    Ok(imported)
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations
        .as_ref()?
        .get(crate::types::ANNOTATION_REF_NAME)
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_sequence_reads_only_ten_digit_release_tags() {
        assert_eq!(release_sequence("release-0000000042"), Some(42));
        assert_eq!(release_sequence("release-42"), None);
        assert_eq!(release_sequence("release-00000000x2"), None);
        assert_eq!(release_sequence("git-0000000042"), None);
    }
}
