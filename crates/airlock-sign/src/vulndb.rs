//! The vulnerability database carried across the boundary: the gate publishes the database it scans with
//! (`airlock-gate vulndb publish`) as a signed OCI artifact at the fixed place
//! [`VULNDB_REPOSITORY`]`:`[`VULNDB_TAG`], and agents read it with [`read_vulndb`] to rescan the SBOMs of
//! what they run, so a vulnerability published after a release was deployed is still reported on the far
//! side of an air gap.
//!
//! The artifact's config ([`VulnDbInfo`]) names how fresh the data is (its newest OSV `modified` time);
//! its one layer is the database, opaque here ([`VULNDB_LAYER_TYPE`]: a gzip tar of the indexed database
//! directory). A reader that remembers the newest `modified` time it accepted refuses an older database
//! replayed to hide findings.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use airlock_oci::{
    Compression, Descriptor, Digest, ImageManifest, LayerBuilder, Store, media_type,
};
use serde::{Deserialize, Serialize};

use crate::attached::{expect_artifact, get_manifest_if_present, read_layer};
use crate::cosign::verify_manifest_signature_for;
use crate::{KeyId, SignError, SigningKey, TrustSet, sign_manifest};

/// The boundary repository holding the vulnerability database (a dot keeps it apart from app names).
pub const VULNDB_REPOSITORY: &str = "airlock.vulndb";
/// The tag of the current database in [`VULNDB_REPOSITORY`].
pub const VULNDB_TAG: &str = "vulndb";
/// Artifact type of the database manifest.
pub const VULNDB_ARTIFACT_TYPE: &str = "application/vnd.airlock.vulndb.v1";
/// Media type of its config ([`VulnDbInfo`] as JSON).
pub const VULNDB_CONFIG_TYPE: &str = "application/vnd.airlock.vulndb.config.v1+json";
/// Media type of its layer: a gzip tar of the indexed database directory (`airlock_scan::VulnDb`).
pub const VULNDB_LAYER_TYPE: &str = "application/vnd.airlock.vulndb.layer.v1.tar+gzip";
/// Largest database layer read.
pub const MAX_VULNDB_LAYER: u64 = 2 << 30;
/// Largest config read.
const MAX_VULNDB_CONFIG: u64 = 1 << 20;

/// What the signed config says about the database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VulnDbInfo {
    /// The newest OSV `modified` time of any record (RFC 3339): how fresh the data is.
    pub newest_modified: Option<String>,
    /// When the gate last imported data (RFC 3339).
    pub imported_at: Option<String>,
    /// Records per OSV ecosystem.
    pub per_ecosystem: BTreeMap<String, u64>,
    /// When it was published (RFC 3339).
    pub published_at: String,
}

/// A database artifact whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedVulnDb {
    /// Digest of the artifact's manifest.
    pub digest: Digest,
    /// Its config.
    pub info: VulnDbInfo,
    /// The layer (a gzip tar of the database directory), verified against its digest.
    pub layer: Vec<u8>,
    /// The key that signed it.
    pub signed_by: KeyId,
}

/// Orders RFC 3339 times, falling back to text order when one does not parse.
fn newer(a: &str, b: &str) -> std::cmp::Ordering {
    use time::format_description::well_known::Rfc3339;
    match (
        time::OffsetDateTime::parse(a, &Rfc3339),
        time::OffsetDateTime::parse(b, &Rfc3339),
    ) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// Reads and verifies the database in `store` (the [`VULNDB_REPOSITORY`] repository, signed for
/// `docker_reference`). `Ok(None)` when none was published, or when its manifest digest is `known` (the one
/// the caller already holds: one request and nothing downloaded when it did not change). A database that is
/// present but unsigned, signed by an untrusted key or for another repository fails with that error, before
/// its layer is read. One whose newest `modified` time is older than `min_modified` (the newest the caller
/// accepted) is refused as a replay.
pub async fn read_vulndb(
    store: &dyn Store,
    docker_reference: &str,
    trust: &TrustSet,
    known: Option<&Digest>,
    min_modified: Option<&str>,
) -> Result<Option<VerifiedVulnDb>, SignError> {
    let Some(fetched) = get_manifest_if_present(store, VULNDB_TAG).await? else {
        return Ok(None);
    };
    let digest = fetched.digest;
    if known == Some(&digest) {
        return Ok(None);
    }
    let (signed_by, _) =
        verify_manifest_signature_for(store, &[docker_reference], &digest, trust).await?;
    let what = format!("vulnerability database {docker_reference}:{VULNDB_TAG} ({digest})");
    let manifest = ImageManifest::from_bytes(&fetched.bytes, &what)?;
    expect_artifact(
        &manifest,
        &what,
        VULNDB_ARTIFACT_TYPE,
        VULNDB_CONFIG_TYPE,
        "a vulnerability database",
    )?;
    let [layer] = manifest.layers.as_slice() else {
        return Err(SignError::invalid(
            &what,
            format!(
                "{} layers; a database has exactly one",
                manifest.layers.len()
            ),
        ));
    };
    if layer.media_type != VULNDB_LAYER_TYPE {
        return Err(SignError::invalid(
            &what,
            format!("layer of media type {:?}", layer.media_type),
        ));
    }
    let config = read_layer(store, &manifest.config, MAX_VULNDB_CONFIG, &what).await?;
    let info: VulnDbInfo =
        serde_json::from_slice(&config).map_err(|e| SignError::json(what.clone(), e))?;
    if let (Some(min), Some(have)) = (min_modified, info.newest_modified.as_deref())
        && newer(have, min).is_lt()
    {
        return Err(SignError::invalid(
            &what,
            format!(
                "its data (newest record {have}) is older than the database already verified ({min}): refused as a replay"
            ),
        ));
    }
    let layer = read_layer(store, layer, MAX_VULNDB_LAYER, &what).await?;
    Ok(Some(VerifiedVulnDb {
        digest,
        info,
        layer,
        signed_by,
    }))
}

/// Publishes `layer` (a gzip tar of the database directory) with `info` in `store` (signed for
/// `docker_reference`) under [`VULNDB_TAG`], signed with `key`. Publishing the same database twice gives
/// the same manifest digest except for `info.published_at`. Returns the manifest digest.
pub async fn publish_vulndb(
    store: &dyn Store,
    docker_reference: &str,
    info: &VulnDbInfo,
    layer: &[u8],
    key: &SigningKey,
) -> Result<Digest, SignError> {
    let config_bytes =
        serde_json::to_vec(info).map_err(|e| SignError::json("vulnerability database", e))?;
    let config = Descriptor::for_bytes(VULNDB_CONFIG_TYPE, &config_bytes);
    store.put_blob(&config.digest, &config_bytes).await?;
    let layer_desc = Descriptor::for_bytes(VULNDB_LAYER_TYPE, layer);
    store.put_blob(&layer_desc.digest, layer).await?;
    let mut manifest = ImageManifest::new(config, vec![layer_desc]);
    manifest.artifact_type = Some(VULNDB_ARTIFACT_TYPE.to_string());
    manifest.annotations = Some(BTreeMap::from([(
        "org.opencontainers.image.created".to_string(),
        info.published_at.clone(),
    )]));
    let digest = store
        .put_manifest(
            &manifest.to_bytes(),
            media_type::OCI_MANIFEST,
            Some(VULNDB_TAG),
        )
        .await?;
    sign_manifest(store, docker_reference, &digest, key).await?;
    tracing::info!(%digest, newest = ?info.newest_modified, "published vulnerability database");
    Ok(digest)
}

/// Most entries unpacked from a database layer.
pub const MAX_VULNDB_ENTRIES: usize = 2_000_000;
/// Most bytes unpacked from a database layer.
pub const MAX_VULNDB_UNPACKED: u64 = 8 << 30;

/// The database directory `dir` as a deterministic gzip tar (sorted, mtime 0, root-owned): the layer of
/// [`publish_vulndb`].
pub fn pack_vulndb_dir(dir: &Path) -> Result<Vec<u8>, SignError> {
    let mut builder = LayerBuilder::new(0);
    builder.add_tree(dir, "", 0, 0)?;
    Ok(builder.finish(Compression::Gzip)?.data)
}

/// Unpacks a database layer into `dest` (an empty directory). Only directories and regular files with
/// plain relative names are accepted, within [`MAX_VULNDB_ENTRIES`] and [`MAX_VULNDB_UNPACKED`]; anything
/// else fails naming `what` and the entry.
pub fn unpack_vulndb(what: &str, layer: &[u8], dest: &Path) -> Result<(), SignError> {
    let reader = airlock_oci::uncompressed_reader(media_type::OCI_LAYER_GZIP, layer)?;
    let mut archive = tar::Archive::new(reader);
    let bad = |reason: String| SignError::invalid(what, reason);
    let io_err = |e: std::io::Error| SignError::invalid(what, format!("unreadable tar.gz: {e}"));
    let mut total = 0u64;
    for (count, entry) in archive.entries().map_err(io_err)?.enumerate() {
        if count >= MAX_VULNDB_ENTRIES {
            return Err(bad(format!("more than {MAX_VULNDB_ENTRIES} entries")));
        }
        let mut entry = entry.map_err(io_err)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut clean = std::path::PathBuf::new();
        for component in Path::new(&raw).components() {
            match component {
                Component::Normal(c) => clean.push(c),
                Component::CurDir => {}
                _ => return Err(bad(format!("entry {raw:?} is not a plain relative path"))),
            }
        }
        if clean.as_os_str().is_empty() {
            continue;
        }
        let path = dest.join(&clean);
        let kind = entry.header().entry_type();
        let io = |e: std::io::Error| bad(format!("writing {}: {e}", path.display()));
        if kind.is_dir() {
            std::fs::create_dir_all(&path).map_err(io)?;
        } else if kind.is_file() {
            total = total.saturating_add(entry.header().size().map_err(io_err)?);
            if total > MAX_VULNDB_UNPACKED {
                return Err(bad(format!(
                    "unpacks to more than {MAX_VULNDB_UNPACKED} bytes"
                )));
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            let mut out = std::fs::File::create(&path).map_err(io)?;
            std::io::copy(&mut entry, &mut out).map_err(io)?;
        } else {
            return Err(bad(format!("entry {raw:?} is not a file or directory")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_oci::OciLayout;

    const REPO: &str = "registry.example/airlock.vulndb";

    fn info(newest: &str) -> VulnDbInfo {
        VulnDbInfo {
            newest_modified: Some(newest.to_string()),
            published_at: "2026-01-02T00:00:00Z".to_string(),
            ..VulnDbInfo::default()
        }
    }

    #[tokio::test]
    async fn published_database_verifies_and_an_unchanged_one_is_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::create(&dir.path().join("db")).unwrap();
        let key = SigningKey::generate();
        let trust = TrustSet::new(vec![key.public_key()]);
        assert!(
            read_vulndb(&store, REPO, &trust, None, None)
                .await
                .unwrap()
                .is_none()
        );
        let digest = publish_vulndb(&store, REPO, &info("2026-01-01T00:00:00Z"), b"db", &key)
            .await
            .unwrap();
        let read = read_vulndb(&store, REPO, &trust, None, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.digest, digest);
        assert_eq!(read.layer, b"db");
        assert_eq!(read.signed_by, key.public_key().key_id());
        assert!(
            read_vulndb(&store, REPO, &trust, Some(&digest), None)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn wrong_key_other_repository_and_older_data_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::create(&dir.path().join("db")).unwrap();
        let key = SigningKey::generate();
        publish_vulndb(&store, REPO, &info("2026-01-01T00:00:00Z"), b"db", &key)
            .await
            .unwrap();
        let stranger = TrustSet::new(vec![SigningKey::generate().public_key()]);
        assert!(
            read_vulndb(&store, REPO, &stranger, None, None)
                .await
                .is_err()
        );
        let trust = TrustSet::new(vec![key.public_key()]);
        assert!(
            read_vulndb(&store, "registry.example/other", &trust, None, None)
                .await
                .is_err()
        );
        let err = read_vulndb(&store, REPO, &trust, None, Some("2026-06-01T00:00:00Z"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("replay"), "{err}");
    }

    #[test]
    fn packed_directory_unpacks_the_same_and_escaping_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("pkgs/PyPI")).unwrap();
        std::fs::write(src.join("meta.json"), b"{}").unwrap();
        std::fs::write(src.join("pkgs/PyPI/jinja2.json"), b"[]").unwrap();
        let layer = pack_vulndb_dir(&src).unwrap();
        assert_eq!(layer, pack_vulndb_dir(&src).unwrap(), "deterministic");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        unpack_vulndb("db", &layer, &out).unwrap();
        assert_eq!(
            std::fs::read(out.join("pkgs/PyPI/jinja2.json")).unwrap(),
            b"[]"
        );

        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.as_old_mut().name[..9].copy_from_slice(b"../escape");
        header.set_cksum();
        let mut tar = tar::Builder::new(Vec::new());
        tar.append(&header, &b"x"[..]).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
        let err = unpack_vulndb("db", &gz.finish().unwrap(), &out).unwrap_err();
        assert!(err.to_string().contains("../escape"), "{err}");
        assert!(!dir.path().join("escape").exists());
    }
}
