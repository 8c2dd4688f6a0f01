//! The on-disk vulnerability database: OSV records indexed by (ecosystem, package) so a lookup
//! reads one small file, imported from OSV's bulk export zips or a directory of JSON records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::ScanError;
use crate::osv::OsvRecord;
use crate::package::normalize_pypi_name;

/// Largest single OSV record accepted on import.
pub const MAX_RECORD_BYTES: u64 = 4 << 20;
/// Most records in one import source.
pub const MAX_IMPORT_RECORDS: usize = 2_000_000;
/// Largest per-package index file read on lookup.
pub const MAX_PACKAGE_FILE_BYTES: u64 = 256 << 20;
/// Largest id index read.
pub const MAX_INDEX_BYTES: u64 = 2 << 30;
/// Most import problems listed in [`ImportStats::problems`] (all are counted).
pub const MAX_LISTED_PROBLEMS: usize = 100;

const META: &str = "meta.json";
const IDS: &str = "ids.json";
const PKGS: &str = "pkgs";
const LOCK: &str = ".lock";

/// What the database holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbStatus {
    /// Records per OSV ecosystem (a record affecting two ecosystems counts in both).
    pub per_ecosystem: BTreeMap<String, u64>,
    /// The newest `modified` time of any record: how fresh the data is.
    pub newest_modified: Option<String>,
    /// When the last import finished (RFC 3339).
    pub imported_at: Option<String>,
}

/// What one import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportStats {
    /// Records read from the source.
    pub read: u64,
    /// Records new to the database.
    pub added: u64,
    /// Records replaced by a newer version.
    pub updated: u64,
    /// Records already present with the same or a newer `modified` time.
    pub unchanged: u64,
    /// Entries that were not valid OSV records and were skipped.
    pub skipped: u64,
    /// The first problems, each naming the entry.
    pub problems: Vec<String>,
}

/// Where each record id is filed, so a re-import can update it in place.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct IdEntry {
    modified: String,
    /// (ecosystem, package name) pairs the record is filed under.
    keys: Vec<(String, String)>,
}

/// The vulnerability database in a directory.
#[derive(Clone, Debug)]
pub struct VulnDb {
    dir: PathBuf,
}

/// The name a package is filed under: PyPI names are PEP 503 normalised, others are exact.
pub(crate) fn canonical_name(ecosystem: &str, name: &str) -> String {
    if ecosystem == "PyPI" {
        normalize_pypi_name(name)
    } else {
        name.to_string()
    }
}

fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, ScanError> {
    let f = File::open(path).map_err(|e| ScanError::io("reading", path, e))?;
    let mut buf = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ScanError::io("reading", path, e))?;
    if buf.len() as u64 > limit {
        return Err(ScanError::Limit {
            what: path.display().to_string(),
            limit,
        });
    }
    Ok(buf)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ScanError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ScanError::io("creating", dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| ScanError::io("creating a file in", dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| ScanError::io("writing", path, e))?;
    tmp.persist(path)
        .map_err(|e| ScanError::io("replacing", path, e.error))?;
    Ok(())
}

/// Orders RFC 3339 times; falls back to text order when one does not parse.
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

impl VulnDb {
    /// Opens the database in `dir`, creating the directory if needed. A directory without data is
    /// an empty database (its status shows no records).
    pub fn open(dir: &Path) -> Result<VulnDb, ScanError> {
        std::fs::create_dir_all(dir).map_err(|e| ScanError::io("creating", dir, e))?;
        Ok(VulnDb {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory holding the database.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn package_file(&self, ecosystem: &str, name: &str) -> PathBuf {
        let mut h = Sha256::new();
        h.update(ecosystem.as_bytes());
        h.update([0u8]);
        h.update(name.as_bytes());
        let hash = hex::encode(h.finalize());
        self.dir
            .join(PKGS)
            .join(sanitize(ecosystem, 64))
            .join(format!("{}-{}.json", sanitize(name, 64), &hash[..16]))
    }

    /// What the database holds; zero records when nothing was imported yet.
    pub fn status(&self) -> Result<DbStatus, ScanError> {
        let path = self.dir.join(META);
        if !path.exists() {
            return Ok(DbStatus::default());
        }
        let bytes = read_capped(&path, 16 << 20)?;
        serde_json::from_slice(&bytes).map_err(|e| ScanError::CorruptDb {
            path,
            message: e.to_string(),
        })
    }

    /// The records that affect `name` in `ecosystem` (an OSV ecosystem name such as `PyPI` or
    /// `Debian:12`). Reads only that package's file.
    pub fn lookup(&self, ecosystem: &str, name: &str) -> Result<Vec<OsvRecord>, ScanError> {
        let name = canonical_name(ecosystem, name);
        let path = self.package_file(ecosystem, &name);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let bytes = read_capped(&path, MAX_PACKAGE_FILE_BYTES)?;
        let records: Vec<OsvRecord> =
            serde_json::from_slice(&bytes).map_err(|e| ScanError::CorruptDb {
                path: path.clone(),
                message: e.to_string(),
            })?;
        // The file name is a hash: keep only records that really name this package.
        Ok(records
            .into_iter()
            .filter(|r| {
                r.affected.iter().any(|a| {
                    a.package.ecosystem == ecosystem
                        && canonical_name(ecosystem, &a.package.name) == name
                })
            })
            .collect())
    }

    /// Imports an OSV export: a zip of `<ID>.json` records (as OSV publishes per ecosystem) or a
    /// directory of JSON records. A record already present is replaced only by a newer `modified`
    /// time, and is removed from packages it no longer affects. Entries that are not valid OSV
    /// records are skipped and listed in the stats. Only one import runs at a time.
    pub fn import(&self, path: &Path) -> Result<ImportStats, ScanError> {
        let lock_path = self.dir.join(LOCK);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| ScanError::io("opening", &lock_path, e))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => ScanError::Locked {
                path: lock_path.clone(),
            },
            std::fs::TryLockError::Error(e) => ScanError::io("locking", &lock_path, e),
        })?;

        let mut stats = ImportStats::default();
        let mut incoming: HashMap<String, OsvRecord> = HashMap::new();
        let mut accept = |entry: &str, bytes: &[u8], stats: &mut ImportStats| {
            stats.read += 1;
            match serde_json::from_slice::<OsvRecord>(bytes) {
                Ok(mut r) if !r.id.is_empty() => {
                    r.trim_details();
                    for a in &mut r.affected {
                        a.package.name = canonical_name(&a.package.ecosystem, &a.package.name);
                    }
                    match incoming.get(&r.id) {
                        Some(old) if newer(&old.modified, &r.modified).is_ge() => {}
                        _ => {
                            incoming.insert(r.id.clone(), r);
                        }
                    }
                }
                Ok(_) => problem(stats, format!("{entry}: record has no id")),
                Err(e) => problem(stats, format!("{entry}: not an OSV record: {e}")),
            }
        };
        let meta = std::fs::metadata(path).map_err(|e| ScanError::io("reading", path, e))?;
        if meta.is_dir() {
            read_dir_source(path, &mut stats, &mut accept)?;
        } else {
            read_zip_source(path, &mut stats, &mut accept)?;
        }

        let ids_path = self.dir.join(IDS);
        let mut ids: BTreeMap<String, IdEntry> = if ids_path.exists() {
            serde_json::from_slice(&read_capped(&ids_path, MAX_INDEX_BYTES)?).map_err(|e| {
                ScanError::CorruptDb {
                    path: ids_path.clone(),
                    message: e.to_string(),
                }
            })?
        } else {
            BTreeMap::new()
        };

        // Per package file: ids to drop and records to add.
        let mut changes: BTreeMap<(String, String), (BTreeSet<String>, Vec<OsvRecord>)> =
            BTreeMap::new();
        let mut incoming: Vec<OsvRecord> = incoming.into_values().collect();
        incoming.sort_by(|a, b| a.id.cmp(&b.id));
        for r in incoming {
            if let Some(old) = ids.get(&r.id) {
                if newer(&old.modified, &r.modified).is_ge() {
                    stats.unchanged += 1;
                    continue;
                }
                stats.updated += 1;
                for key in &old.keys {
                    changes
                        .entry(key.clone())
                        .or_default()
                        .0
                        .insert(r.id.clone());
                }
            } else {
                stats.added += 1;
            }
            let keys: BTreeSet<(String, String)> = r
                .affected
                .iter()
                .filter(|a| !a.package.ecosystem.is_empty() && !a.package.name.is_empty())
                .map(|a| (a.package.ecosystem.clone(), a.package.name.clone()))
                .collect();
            ids.insert(
                r.id.clone(),
                IdEntry {
                    modified: r.modified.clone(),
                    keys: keys.iter().cloned().collect(),
                },
            );
            for key in keys {
                let c = changes.entry(key).or_default();
                c.0.insert(r.id.clone());
                c.1.push(r.clone());
            }
        }

        for ((eco, name), (drop, add)) in changes {
            let file = self.package_file(&eco, &name);
            let mut records: Vec<OsvRecord> = if file.exists() {
                serde_json::from_slice(&read_capped(&file, MAX_PACKAGE_FILE_BYTES)?).map_err(
                    |e| ScanError::CorruptDb {
                        path: file.clone(),
                        message: e.to_string(),
                    },
                )?
            } else {
                Vec::new()
            };
            records.retain(|r| !drop.contains(&r.id));
            records.extend(add);
            records.sort_by(|a, b| a.id.cmp(&b.id));
            if records.is_empty() {
                if file.exists() {
                    std::fs::remove_file(&file).map_err(|e| ScanError::io("removing", &file, e))?;
                }
                continue;
            }
            let bytes = serde_json::to_vec(&records).map_err(|e| ScanError::CorruptDb {
                path: file.clone(),
                message: e.to_string(),
            })?;
            write_atomic(&file, &bytes)?;
        }

        let mut status = DbStatus::default();
        for e in ids.values() {
            let ecos: BTreeSet<&String> = e.keys.iter().map(|(eco, _)| eco).collect();
            for eco in ecos {
                *status.per_ecosystem.entry(eco.clone()).or_default() += 1;
            }
            if status
                .newest_modified
                .as_deref()
                .is_none_or(|n| newer(&e.modified, n).is_gt())
            {
                status.newest_modified = Some(e.modified.clone());
            }
        }
        status.imported_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .ok();
        write_atomic(&ids_path, &to_json(&ids, &ids_path)?)?;
        let meta_path = self.dir.join(META);
        write_atomic(&meta_path, &to_json(&status, &meta_path)?)?;
        drop(lock);
        Ok(stats)
    }
}

/// Serialises an index file's content.
fn to_json<T: Serialize>(value: &T, path: &Path) -> Result<Vec<u8>, ScanError> {
    serde_json::to_vec(value).map_err(|e| ScanError::CorruptDb {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn problem(stats: &mut ImportStats, message: String) {
    stats.skipped += 1;
    if stats.problems.len() < MAX_LISTED_PROBLEMS {
        stats.problems.push(message);
    }
}

type Accept<'a> = dyn FnMut(&str, &[u8], &mut ImportStats) + 'a;

fn import_err(path: &Path, message: impl Into<String>) -> ScanError {
    ScanError::Import {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read_zip_source(
    path: &Path,
    stats: &mut ImportStats,
    accept: &mut Accept<'_>,
) -> Result<(), ScanError> {
    let file = File::open(path).map_err(|e| ScanError::io("reading", path, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| import_err(path, format!("not a zip file nor a directory: {e}")))?;
    if zip.len() > MAX_IMPORT_RECORDS {
        return Err(ScanError::Limit {
            what: format!("entries in {}", path.display()),
            limit: MAX_IMPORT_RECORDS as u64,
        });
    }
    let mut buf = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| import_err(path, format!("entry {i}: {e}")))?;
        let name = entry
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|_| format!("entry {i}"));
        if entry.is_dir() || !name.ends_with(".json") {
            continue;
        }
        if entry.size() > MAX_RECORD_BYTES {
            problem(
                stats,
                format!(
                    "{name}: {} bytes, over the limit of {MAX_RECORD_BYTES}",
                    entry.size()
                ),
            );
            continue;
        }
        buf.clear();
        if let Err(e) = (&mut entry)
            .take(MAX_RECORD_BYTES + 1)
            .read_to_end(&mut buf)
        {
            problem(stats, format!("{name}: {e}"));
            continue;
        }
        if buf.len() as u64 > MAX_RECORD_BYTES {
            problem(
                stats,
                format!("{name}: over the limit of {MAX_RECORD_BYTES} bytes"),
            );
            continue;
        }
        accept(&name, &buf, stats);
    }
    Ok(())
}

fn read_dir_source(
    path: &Path,
    stats: &mut ImportStats,
    accept: &mut Accept<'_>,
) -> Result<(), ScanError> {
    let mut count = 0usize;
    for entry in walkdir::WalkDir::new(path)
        .follow_links(false)
        .max_depth(8)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| import_err(path, e.to_string()))?;
        if !entry.file_type().is_file() || entry.path().extension().is_none_or(|e| e != "json") {
            continue;
        }
        count += 1;
        if count > MAX_IMPORT_RECORDS {
            return Err(ScanError::Limit {
                what: format!("records in {}", path.display()),
                limit: MAX_IMPORT_RECORDS as u64,
            });
        }
        let shown = entry.path().display().to_string();
        match read_capped(entry.path(), MAX_RECORD_BYTES) {
            Ok(bytes) => accept(&shown, &bytes, stats),
            Err(e) => problem(stats, format!("{shown}: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{real_db, vulndb_source};

    fn record(id: &str, modified: &str, package: &str) -> String {
        format!(
            r#"{{"id":"{id}","modified":"{modified}","affected":[{{"package":{{"ecosystem":"PyPI","name":"{package}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"2.0"}}]}}]}}]}}"#
        )
    }

    #[test]
    fn empty_database_reports_zero_records() {
        let dir = tempfile::tempdir().unwrap();
        let db = VulnDb::open(&dir.path().join("new")).unwrap();
        let st = db.status().unwrap();
        assert!(st.per_ecosystem.is_empty());
        assert_eq!(st.imported_at, None);
        assert!(db.lookup("PyPI", "jinja2").unwrap().is_empty());
    }

    #[test]
    fn imports_both_real_exports_quickly_with_counts_per_ecosystem() {
        let dir = tempfile::tempdir().unwrap();
        let db = VulnDb::open(dir.path()).unwrap();
        let start = std::time::Instant::now();
        let py = db.import(&vulndb_source("PyPI.zip")).unwrap();
        let rs = db.import(&vulndb_source("crates.io.zip")).unwrap();
        let took = start.elapsed();
        assert_eq!(
            (py.read, py.added, py.skipped),
            (2661, 2661, 0),
            "{:?}",
            py.problems
        );
        assert_eq!((rs.read, rs.added), (1206, 1206));
        let st = db.status().unwrap();
        assert_eq!(st.per_ecosystem.get("PyPI"), Some(&2661));
        assert_eq!(st.per_ecosystem.get("crates.io"), Some(&1206));
        assert!(st.newest_modified.unwrap().starts_with("20"));
        assert!(st.imported_at.is_some());
        // Debug builds are slower than release; the budget is "a few seconds" for release.
        assert!(took.as_secs() < 20, "import took {took:?}");
        // Re-importing the same data changes nothing.
        let again = db.import(&vulndb_source("crates.io.zip")).unwrap();
        assert_eq!((again.added, again.updated, again.unchanged), (0, 0, 1206));
    }

    #[test]
    fn lookup_normalizes_pypi_names_and_reads_real_records() {
        let recs = real_db().lookup("PyPI", "Jinja2").unwrap();
        assert!(recs.iter().any(|r| r.id == "PYSEC-2014-8"));
        assert!(
            real_db()
                .lookup("crates.io", "time")
                .unwrap()
                .iter()
                .any(|r| r.id == "RUSTSEC-2020-0071")
        );
        assert!(real_db().lookup("npm", "time").unwrap().is_empty());
    }

    #[test]
    fn reimport_of_a_newer_record_moves_it_to_the_packages_it_now_affects() {
        let dir = tempfile::tempdir().unwrap();
        let db = VulnDb::open(&dir.path().join("db")).unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(
            src.join("X-1.json"),
            record("X-1", "2024-01-01T00:00:00Z", "Old_Pkg"),
        )
        .unwrap();
        db.import(&src).unwrap();
        assert_eq!(db.lookup("PyPI", "old-pkg").unwrap().len(), 1);

        std::fs::write(
            src.join("X-1.json"),
            record("X-1", "2024-02-01T00:00:00Z", "new-pkg"),
        )
        .unwrap();
        let st = db.import(&src).unwrap();
        assert_eq!((st.updated, st.added), (1, 0));
        assert!(db.lookup("PyPI", "old-pkg").unwrap().is_empty());
        assert_eq!(db.lookup("PyPI", "new-pkg").unwrap().len(), 1);

        // An older copy does not overwrite the newer one.
        std::fs::write(
            src.join("X-1.json"),
            record("X-1", "2023-01-01T00:00:00Z", "old-pkg"),
        )
        .unwrap();
        assert_eq!(db.import(&src).unwrap().unchanged, 1);
        assert!(db.lookup("PyPI", "old-pkg").unwrap().is_empty());
        assert_eq!(db.status().unwrap().per_ecosystem.get("PyPI"), Some(&1));
    }

    #[test]
    fn broken_records_are_skipped_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let db = VulnDb::open(&dir.path().join("db")).unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("BAD-1.json"), "{not json").unwrap();
        std::fs::write(
            src.join("X-2.json"),
            record("X-2", "2024-01-01T00:00:00Z", "a"),
        )
        .unwrap();
        let st = db.import(&src).unwrap();
        assert_eq!((st.added, st.skipped), (1, 1));
        assert!(st.problems[0].contains("BAD-1.json"), "{:?}", st.problems);
    }

    #[test]
    fn rejects_a_source_that_is_neither_zip_nor_directory() {
        let dir = tempfile::tempdir().unwrap();
        let db = VulnDb::open(&dir.path().join("db")).unwrap();
        let f = dir.path().join("notes.txt");
        std::fs::write(&f, "hello").unwrap();
        let err = db.import(&f).unwrap_err().to_string();
        assert!(
            err.contains("notes.txt") && err.contains("not a zip"),
            "{err}"
        );
    }
}
