//! airlock-scan: what is inside an image, and which known vulnerabilities affect it.
//!
//! The scanner reads an image's layers (or a plain root-filesystem directory) the way the container
//! runtime would see them, applying whiteouts so deleted files do not count, and keeps only the
//! files that say what is installed: `/etc/os-release`, the dpkg and apk databases, Python
//! `dist-info`/`egg-info` metadata, `Cargo.lock` files, npm `package.json` and lock files, the
//! `cargo auditable` section and Go build info of executables, and `pom.properties` inside Java
//! archives (nested ones too). The result is an [`Inventory`] of [`Package`]s, each with a package
//! URL and the layer and file it came from. Executables and archives are reduced to the packages
//! they name as soon as they are read, so their bytes are never kept.
//!
//! The inventory is written as a CycloneDX 1.6 ([`cyclonedx`], read back by
//! [`inventory_from_cyclonedx`]) or SPDX 2.3 ([`spdx`]) SBOM, and
//! matched ([`match_inventory`]) against a local copy of the OSV database ([`VulnDb`], imported from
//! OSV's bulk export zips or directories of OSV JSON, indexed per package on disk) using each
//! ecosystem's own version order (PEP 440, SemVer, dpkg, apk). Records that are aliases of one
//! another become one [`Finding`], rated by its CVSS v3 base score. A [`Report`] records when it was
//! made and how old the database's newest record was then.
//!
//! Everything read from an image is untrusted: files have size limits per kind, symlinks are
//! resolved inside the image root with a hop limit, and files that cannot be read are skipped
//! with a warning naming them instead of failing the scan.

mod apk;
mod binary;
mod cargo_lock;
mod control;
pub mod cvss;
mod cyclonedx;
mod db;
mod dir;
mod dpkg;
mod error;
mod evidence;
mod found;
mod image;
mod inventory;
mod jar;
mod layers;
mod matching;
mod npm;
mod os_release;
pub mod osv;
mod package;
mod python;
mod spdx;
mod tree;
pub mod version;

#[cfg(test)]
mod testutil;

pub use cyclonedx::{cyclonedx, inventory_from_cyclonedx};
pub use db::{DbStatus, ImportStats, VulnDb};
pub use dir::inventory_dir;
pub use error::ScanError;
pub use image::{Report, scan_dir, scan_image};
pub use layers::{LayerWalker, inventory_layers};
pub use matching::{Finding, Severity, match_inventory};
pub use osv::OsvRecord;
pub use package::{
    Ecosystem, Inventory, OsRelease, Package, SourcePackage, normalize_pypi_name, purl,
};
pub use spdx::spdx;
