//! Scanning an image in a store: inventory from its layers, then matching against the database.

use serde::{Deserialize, Serialize};

use crate::db::{DbStatus, VulnDb};
use crate::error::ScanError;
use crate::layers::LayerWalker;
use crate::matching::{Finding, match_inventory};
use crate::package::Inventory;

/// Largest compressed layer fetched.
pub const MAX_LAYER_BLOB: u64 = 8 << 30;

/// The result of scanning one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Digest of the image manifest that was scanned (the subject for SBOMs and attestations).
    pub image_digest: String,
    /// What is installed.
    pub inventory: Inventory,
    /// Vulnerabilities, worst first.
    pub findings: Vec<Finding>,
    /// The database the findings came from (how fresh it was).
    pub db: DbStatus,
    /// When the scan ran (RFC 3339).
    #[serde(default)]
    pub scanned_at: String,
    /// Age of the database's data at scan time: seconds from the newest record's `modified` time
    /// to `scanned_at`. None for an empty database. A large age means findings may be missing.
    #[serde(default)]
    pub db_age_seconds: Option<i64>,
}

impl Report {
    /// Matches an inventory against `db` and records the database's status and age. Used by
    /// [`scan_image`] and [`scan_dir`]; blocking (it reads the database's package files).
    pub fn from_inventory(
        image_digest: String,
        inventory: Inventory,
        db: &VulnDb,
    ) -> Result<Report, ScanError> {
        let findings = match_inventory(&inventory, db)?;
        let status = db.status()?;
        let now = time::OffsetDateTime::now_utc();
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let db_age_seconds = status.newest_modified.as_deref().and_then(|m| {
            let m = time::OffsetDateTime::parse(m, &time::format_description::well_known::Rfc3339)
                .ok()?;
            Some((now - m).whole_seconds())
        });
        Ok(Report {
            image_digest,
            inventory,
            findings,
            db: status,
            scanned_at: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            db_age_seconds,
        })
    }
}

/// Inventories a root filesystem in a plain directory and matches it against `db`. The report's
/// `image_digest` is empty: a directory has no manifest digest. Blocking.
pub fn scan_dir(root: &std::path::Path, db: &VulnDb) -> Result<Report, ScanError> {
    let inventory = crate::dir::inventory_dir(root)?;
    Report::from_inventory(String::new(), inventory, db)
}

/// Reads the image at `reference` from `store`, inventories it layer by layer (one layer in memory
/// at a time; the parsing runs on a blocking thread), and matches the inventory against `db`.
pub async fn scan_image(
    store: &dyn airlock_oci::Store,
    reference: &str,
    db: &VulnDb,
) -> Result<Report, ScanError> {
    let image_err = |source| ScanError::Image {
        reference: reference.to_string(),
        source,
    };
    let image = airlock_oci::read_image(store, reference)
        .await
        .map_err(image_err)?;
    let mut walker = LayerWalker::default();
    for layer in &image.manifest.layers {
        if layer.size > MAX_LAYER_BLOB {
            return Err(ScanError::Limit {
                what: format!("layer {} of {reference}", layer.digest),
                limit: MAX_LAYER_BLOB,
            });
        }
        let data = store.get_blob(&layer.digest).await.map_err(image_err)?;
        let digest = layer.digest.as_str().to_string();
        let media_type = layer.media_type.clone();
        walker = tokio::task::spawn_blocking(move || {
            walker.add_layer(&digest, &media_type, &data)?;
            Ok::<_, ScanError>(walker)
        })
        .await
        .map_err(|e| ScanError::Task {
            what: format!("inventory of layer {}", layer.digest),
            message: e.to_string(),
        })??;
    }
    let db = db.clone();
    let image_digest = image.digest.as_str().to_string();
    tokio::task::spawn_blocking(move || {
        let inventory = walker.finish();
        Report::from_inventory(image_digest, inventory, &db)
    })
    .await
    .map_err(|e| ScanError::Task {
        what: format!("matching {reference}"),
        message: e.to_string(),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{metadata, real_db};
    use airlock_oci::{Compression, ImageConfig, LayerBuilder, OciLayout, write_image};

    #[tokio::test]
    async fn scans_an_image_in_an_oci_layout_with_whiteouts_applied() {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::create(dir.path()).unwrap();
        let mut base = LayerBuilder::new(0);
        base.add_file(
            "site/Jinja2-2.7.1.dist-info/METADATA",
            0o644,
            0,
            0,
            metadata("Jinja2", "2.7.1"),
        )
        .unwrap();
        base.add_file(
            "site/gone-1.0.dist-info/METADATA",
            0o644,
            0,
            0,
            metadata("gone", "1.0"),
        )
        .unwrap();
        let base = base.finish(Compression::Gzip).unwrap();
        let mut top = LayerBuilder::new(0);
        top.add_file("site/.wh.gone-1.0.dist-info", 0o644, 0, 0, Vec::new())
            .unwrap();
        let top = top.finish(Compression::Gzip).unwrap();
        let mut config = ImageConfig::new("amd64", "linux");
        config.rootfs.diff_ids = vec![base.diff_id.clone(), top.diff_id.clone()];
        let digest = write_image(
            &store,
            &config,
            &[
                (base.descriptor.clone(), Some(&base.data[..])),
                (top.descriptor.clone(), Some(&top.data[..])),
            ],
            Some("v1"),
        )
        .await
        .unwrap();
        let report = scan_image(&store, "v1", real_db()).await.unwrap();
        assert_eq!(report.image_digest, digest.as_str());
        let names: Vec<_> = report
            .inventory
            .packages
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["jinja2"]);
        assert_eq!(
            report.inventory.packages[0].layer.as_deref(),
            Some(base.descriptor.digest.as_str())
        );
        assert!(report.findings.iter().any(|f| f.id == "CVE-2014-1402"));
        assert_eq!(report.db.per_ecosystem.get("PyPI"), Some(&2661));
        // The crates.io export is from 2026-08-21: the age is at least the time since then.
        let newest = report.db.newest_modified.as_deref().unwrap();
        assert!(newest.starts_with("20"), "{newest}");
        assert!(report.db_age_seconds.is_some_and(|a| a >= 0), "{report:?}");
        assert!(report.scanned_at.starts_with("20"), "{}", report.scanned_at);
    }

    #[tokio::test]
    async fn a_missing_image_is_an_error_naming_the_reference() {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::create(dir.path()).unwrap();
        let err = scan_image(&store, "nope", real_db())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
