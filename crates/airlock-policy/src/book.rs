//! The waivers a gate applies: the reviewed `waivers.toml` plus waivers added at run time
//! through the admin API, kept in a file of the same format under the gate's data directory.
//!
//! Two sources because they are governed differently: the reviewed file changes by pull
//! request and is read-only here; API waivers are added and removed by an operator while the
//! gate runs and must survive a restart. Both obey the same rules (required fields, expiry at
//! most [`crate::MAX_WAIVER_DAYS`] days ahead) and both are listed with a stable key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::Date;

use crate::waiver::load_waivers;
use crate::{MAX_WAIVERS, PolicyError, Waiver};

/// Where a waiver comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WaiverOrigin {
    /// The reviewed waivers file (`policies/waivers.toml`); read-only for the API.
    File,
    /// Added through the admin API.
    Api,
}

/// A waiver as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedWaiver {
    /// Stable key: the first 16 hex digits of SHA-256 over the lower-cased advisory id and
    /// package and the team and app scope. Two waivers with the same key would be redundant.
    pub key: String,
    /// Where it comes from.
    pub origin: WaiverOrigin,
    /// Whether it applies today (its expiry day included).
    pub active: bool,
    /// The waiver.
    #[serde(flatten)]
    pub waiver: Waiver,
}

/// The waivers of one gate: the reviewed file's and the admin API's.
///
/// Cheap to read from many tasks ([`WaiverBook::current`] clones a snapshot); writes go
/// through one lock and replace the API file atomically (temporary file, fsync, rename), so
/// a crash leaves either the old or the new list, never half of one.
#[derive(Debug)]
pub struct WaiverBook {
    file: Option<PathBuf>,
    file_waivers: Vec<Waiver>,
    store: PathBuf,
    added: RwLock<Vec<Waiver>>,
}

const STORE_HEADER: &str = "# Waivers added through the airlock gate's admin API (POST /api/v1/waivers).\n\
# Managed by the gate: edit through the API. Same format as policies/waivers.toml.\n\n";

impl WaiverBook {
    /// Loads the reviewed file (when given and present) and the API store (when present),
    /// both with the rules of [`load_waivers`] for `today`.
    pub fn open(file: Option<&Path>, store: &Path, today: Date) -> Result<WaiverBook, PolicyError> {
        let file_waivers = match file {
            Some(path) if path.exists() => load_waivers(path, today)?,
            _ => Vec::new(),
        };
        let added = if store.exists() {
            load_waivers(store, today)?
        } else {
            Vec::new()
        };
        Ok(WaiverBook {
            file: file.map(Path::to_path_buf),
            file_waivers,
            store: store.to_path_buf(),
            added: RwLock::new(added),
        })
    }

    /// A book of fixed waivers with no API store file (tests, one-off evaluations): adding
    /// or removing fails with an I/O error naming `/dev/null`.
    pub fn fixed(waivers: Vec<Waiver>) -> WaiverBook {
        WaiverBook {
            file: None,
            file_waivers: waivers,
            store: PathBuf::from("/dev/null/waivers.toml"),
            added: RwLock::new(Vec::new()),
        }
    }

    /// Every waiver (file first, then API, each in the order added), for `PolicySet::evaluate`.
    pub fn current(&self) -> Vec<Waiver> {
        let added = self.added.read().unwrap_or_else(|e| e.into_inner());
        self.file_waivers
            .iter()
            .chain(added.iter())
            .cloned()
            .collect()
    }

    /// Every waiver with its key, origin and whether it applies on `today`.
    pub fn list(&self, today: Date) -> Vec<ListedWaiver> {
        let added = self.added.read().unwrap_or_else(|e| e.into_inner());
        let file = self.file_waivers.iter().map(|w| (w, WaiverOrigin::File));
        let api = added.iter().map(|w| (w, WaiverOrigin::Api));
        file.chain(api)
            .map(|(w, origin)| listed(w, origin, today))
            .collect()
    }

    /// Adds a waiver after [`Waiver::validate_new`] and persists the API store; refuses a
    /// waiver whose key (advisory, package, scope) is already taken.
    pub fn add(&self, waiver: Waiver, today: Date) -> Result<ListedWaiver, PolicyError> {
        waiver.validate_new(today)?;
        let key = waiver_key(&waiver);
        let mut added = self.added.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = self
            .file_waivers
            .iter()
            .chain(added.iter())
            .find(|w| waiver_key(w) == key)
        {
            return Err(PolicyError::WaiverExists {
                key,
                id: existing.id.clone(),
                package: existing.package.clone(),
            });
        }
        if self.file_waivers.len() + added.len() >= MAX_WAIVERS {
            return Err(PolicyError::TooLarge {
                what: "number of waivers",
                limit: MAX_WAIVERS,
                subject: self.store.display().to_string(),
            });
        }
        let mut next = added.clone();
        next.push(waiver.clone());
        write_store(&self.store, &next)?;
        *added = next;
        Ok(listed(&waiver, WaiverOrigin::Api, today))
    }

    /// Removes the API waiver with `key` and persists the store. A key of the reviewed
    /// file is refused ([`PolicyError::WaiverInFile`]); an unknown key is
    /// [`PolicyError::WaiverNotFound`].
    pub fn remove(&self, key: &str) -> Result<Waiver, PolicyError> {
        let mut added = self.added.write().unwrap_or_else(|e| e.into_inner());
        let Some(position) = added.iter().position(|w| waiver_key(w) == key) else {
            if self.file_waivers.iter().any(|w| waiver_key(w) == key) {
                return Err(PolicyError::WaiverInFile {
                    key: key.to_string(),
                    path: self.file.clone().unwrap_or_default(),
                });
            }
            return Err(PolicyError::WaiverNotFound(key.to_string()));
        };
        let mut next = added.clone();
        let removed = next.remove(position);
        write_store(&self.store, &next)?;
        *added = next;
        Ok(removed)
    }

    /// The API store file.
    pub fn store_path(&self) -> &Path {
        &self.store
    }
}

fn listed(w: &Waiver, origin: WaiverOrigin, today: Date) -> ListedWaiver {
    ListedWaiver {
        key: waiver_key(w),
        origin,
        // A stored waiver's expiry was checked when it was loaded; unparsable means inactive.
        active: w.is_active_on(today).unwrap_or(false),
        waiver: w.clone(),
    }
}

/// The stable key of a waiver (see [`ListedWaiver::key`]).
pub fn waiver_key(w: &Waiver) -> String {
    let mut hasher = Sha256::new();
    let parts = [
        w.id.to_ascii_lowercase(),
        w.package.to_ascii_lowercase(),
        w.team.clone().unwrap_or_default(),
        w.app.clone().unwrap_or_default(),
    ];
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())[..16].to_string()
}

/// The waivers as a `waivers.toml` text that [`load_waivers`] reads back.
fn to_toml(waivers: &[Waiver]) -> Result<String, PolicyError> {
    let tables: Vec<toml::Value> = waivers
        .iter()
        .map(|w| {
            let mut t = toml::Table::new();
            let mut put = |k: &str, v: &str| {
                t.insert(k.to_string(), toml::Value::String(v.to_string()));
            };
            put("id", &w.id);
            put("package", &w.package);
            if let Some(team) = &w.team {
                put("team", team);
            }
            if let Some(app) = &w.app {
                put("app", app);
            }
            put("expires", &w.expires);
            put("reason", &w.reason);
            put("approver", &w.approver);
            toml::Value::Table(t)
        })
        .collect();
    let mut root = toml::Table::new();
    root.insert("waiver".into(), toml::Value::Array(tables));
    let body = toml::to_string(&root).map_err(|e| PolicyError::WaiversFile {
        path: PathBuf::from("(admin API waivers)"),
        message: e.to_string(),
    })?;
    Ok(format!("{STORE_HEADER}{body}"))
}

fn write_store(path: &Path, waivers: &[Waiver]) -> Result<(), PolicyError> {
    let text = to_toml(waivers)?;
    let io = |source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension("toml.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 23);

    fn waiver(id: &str, package: &str, expires: &str) -> Waiver {
        Waiver {
            id: id.into(),
            package: package.into(),
            team: Some("demo".into()),
            app: None,
            expires: expires.into(),
            reason: "constant templates only".into(),
            approver: "security@example.com".into(),
        }
    }

    fn reviewed(dir: &Path) -> PathBuf {
        let path = dir.join("waivers.toml");
        std::fs::write(
            &path,
            "[[waiver]]\nid = \"CVE-1\"\npackage = \"p\"\nexpires = \"2026-12-01\"\nreason = \"r\"\napprover = \"a\"\n",
        )
        .unwrap();
        path
    }

    #[test]
    fn added_waiver_is_current_listed_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let file = reviewed(dir.path());
        let store = dir.path().join("data/waivers-api.toml");
        let book = WaiverBook::open(Some(&file), &store, TODAY).unwrap();
        let added = book
            .add(waiver("PYSEC-2014-8", "Jinja2", "2027-01-15"), TODAY)
            .unwrap();
        assert_eq!(added.origin, WaiverOrigin::Api);
        assert!(added.active);
        assert_eq!(book.current().len(), 2);

        let again = WaiverBook::open(Some(&file), &store, TODAY).unwrap();
        let listed = again.list(TODAY);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].origin, WaiverOrigin::File);
        assert_eq!(listed[1].key, added.key);
        assert_eq!(listed[1].waiver, added.waiver);
    }

    #[test]
    fn refuses_a_second_waiver_for_the_same_advisory_package_and_scope() {
        let dir = tempfile::tempdir().unwrap();
        let book = WaiverBook::open(None, &dir.path().join("w.toml"), TODAY).unwrap();
        book.add(waiver("CVE-2", "jinja2", "2026-12-31"), TODAY)
            .unwrap();
        let err = book
            .add(waiver("cve-2", "JINJA2", "2026-12-30"), TODAY)
            .unwrap_err();
        assert!(matches!(err, PolicyError::WaiverExists { .. }), "{err}");
    }

    #[test]
    fn refuses_expiry_beyond_90_days_or_in_the_past_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("w.toml");
        let book = WaiverBook::open(None, &store, TODAY).unwrap();
        let err = book
            .add(waiver("CVE-3", "p", "2027-02-22"), TODAY)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "waiver \"CVE-3\", field `expires`: 2027-02-22 is more than 90 days away (latest allowed: 2027-02-21)"
        );
        let err = book
            .add(waiver("CVE-3", "p", "2026-11-22"), TODAY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is in the past"), "{err}");
        let mut no_reason = waiver("CVE-3", "p", "2026-12-01");
        no_reason.reason = " ".into();
        let err = book.add(no_reason, TODAY).unwrap_err().to_string();
        assert!(err.contains("field `reason`: must not be empty"), "{err}");
        assert!(!store.exists(), "nothing is written for a refused waiver");
        book.add(waiver("CVE-3", "p", "2027-02-21"), TODAY).unwrap();
    }

    #[test]
    fn removes_api_waivers_but_not_those_of_the_reviewed_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = reviewed(dir.path());
        let store = dir.path().join("w.toml");
        let book = WaiverBook::open(Some(&file), &store, TODAY).unwrap();
        let added = book.add(waiver("CVE-4", "p", "2026-12-01"), TODAY).unwrap();
        let file_key = book.list(TODAY)[0].key.clone();
        let err = book.remove(&file_key).unwrap_err().to_string();
        assert!(err.contains("waivers.toml; remove it there"), "{err}");
        assert!(matches!(
            book.remove("0000000000000000"),
            Err(PolicyError::WaiverNotFound(_))
        ));
        assert_eq!(book.remove(&added.key).unwrap().id, "CVE-4");
        assert_eq!(book.current().len(), 1);
        let reopened = WaiverBook::open(Some(&file), &store, TODAY).unwrap();
        assert_eq!(reopened.current().len(), 1, "the removal was persisted");
    }

    #[test]
    fn store_with_odd_characters_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("w.toml");
        let book = WaiverBook::open(None, &store, TODAY).unwrap();
        let mut w = waiver("GHSA-xxxx-yyyy-zzzz", "@scope/pkg", "2026-12-01");
        w.reason = "quotes \" and 'single' and \\ backslash # not a comment".into();
        w.app = Some("shop".into());
        book.add(w.clone(), TODAY).unwrap();
        let back = WaiverBook::open(None, &store, TODAY).unwrap().current();
        assert_eq!(back, vec![w]);
    }
}
