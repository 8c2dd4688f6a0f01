//! Helpers shared by the unit tests: the real OSV data imported once, layer tars, the Python venv.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::db::VulnDb;

pub(crate) use airlock_testkit::tools::vulndb_source;

/// The database imported from both real exports, once per test process.
pub(crate) fn real_db() -> &'static VulnDb {
    static DB: OnceLock<(tempfile::TempDir, VulnDb)> = OnceLock::new();
    &DB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let db = VulnDb::open(dir.path()).unwrap();
        db.import(&vulndb_source("PyPI.zip")).unwrap();
        db.import(&vulndb_source("crates.io.zip")).unwrap();
        (dir, db)
    })
    .1
}

/// One entry of a test layer.
pub(crate) enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
}

/// A gzipped layer tar holding the entries, in order.
pub(crate) fn layer(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(0);
        match e {
            Entry::File(p, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).unwrap();
            }
            Entry::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            Entry::Symlink(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
            Entry::HardLink(p, t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
        }
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

/// Core metadata of a Python distribution.
pub(crate) fn metadata(name: &str, version: &str) -> Vec<u8> {
    format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: test\n\nLong description.\n").into_bytes()
}

/// The Python of the checker venv; panics with an install hint when it is missing.
pub(crate) fn venv_python() -> PathBuf {
    airlock_testkit::tools::python("'cyclonedx-python-lib[json-validation]' spdx-tools")
}
