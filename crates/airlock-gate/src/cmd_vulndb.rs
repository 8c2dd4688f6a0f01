//! `airlock-gate vulndb publish`: the gate's vulnerability database across the boundary, as a signed OCI
//! artifact at `<boundary>/airlock.vulndb:vulndb` (`airlock_sign::vulndb`), so agents in the outer loop
//! rescan what they run against data newer than what the release was scanned with.

use std::path::Path;

use airlock_gate::config::GateConfig;
use airlock_scan::VulnDb;
use airlock_sign::VulnDbInfo;
use anyhow::{Context, bail};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cmd_keys::{boundary_repo, load_signing_key};

/// Publishes the database `db` to the boundary of the gate configured in `config_path`, signed with the
/// gate's key, and prints where it went.
pub async fn publish(config_path: &Path, db: &VulnDb) -> anyhow::Result<()> {
    let config = GateConfig::load(config_path)
        .with_context(|| format!("reading the gate config {}", config_path.display()))?;
    let status = db
        .status()
        .with_context(|| format!("reading the status of {}", db.dir().display()))?;
    if status.per_ecosystem.is_empty() {
        bail!(
            "the vulnerability database {} is empty: import OSV data first (`airlock-gate vulndb import`)",
            db.dir().display()
        );
    }
    let key = load_signing_key(&config)?;
    let dir = db.dir().to_path_buf();
    let layer = tokio::task::spawn_blocking(move || airlock_sign::pack_vulndb_dir(&dir))
        .await
        .context("the packing task failed")?
        .with_context(|| format!("packing {}", db.dir().display()))?;
    let (store, docker_reference) = boundary_repo(
        &config,
        airlock_sign::VULNDB_REPOSITORY,
        "the vulnerability database repository",
    )?;
    let info = VulnDbInfo {
        newest_modified: status.newest_modified.clone(),
        imported_at: status.imported_at.clone(),
        per_ecosystem: status.per_ecosystem.clone(),
        published_at: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .context("formatting the time")?,
    };
    let digest = airlock_sign::publish_vulndb(&store, &docker_reference, &info, &layer, &key)
        .await
        .with_context(|| format!("publishing the vulnerability database to {docker_reference}"))?;
    println!(
        "published   {docker_reference}:{} ({digest}, {} bytes)\nnewest      {}\nsigned by   {}",
        airlock_sign::VULNDB_TAG,
        layer.len(),
        info.newest_modified.as_deref().unwrap_or("unknown"),
        key.public_key().key_id()
    );
    Ok(())
}
