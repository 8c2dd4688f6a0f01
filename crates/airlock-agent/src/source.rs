//! Opening a release source: an OCI layout root, an OCI archive carried across
//! an air gap, or a registry repository prefix. All of them hand out one
//! [`Store`] per app, so verification is the same code whatever the transport.
//!
//! Archives come in two shapes. The gate's export (`airlock_oci::export_releases`: one OCI layout whose
//! index names every entry `REPOSITORY:TAG`) is checked completely and imported by
//! `airlock_oci::import_archive`. A tar of a layout root (one directory per app) or of one app's plain
//! layout (as `skopeo copy … oci-archive:` writes it) is read with this crate's own bounded tar reader into
//! a temporary layout root: only regular files and directories with plain relative names are accepted, so
//! an archive can never write outside its temporary directory.

use crate::error::AgentError;
use crate::spec::SourceSpec;
use airlock_oci::{
    ImageManifest, LayoutRoot, RegistryAuth, RegistryStore, Store, copy_image, validate_repository,
};
use airlock_sign::release::RELEASE_TAG_PREFIX;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path};
use std::sync::Arc;

/// Most entries one archive may hold.
pub const MAX_ARCHIVE_ENTRIES: usize = 200_000;
/// Most bytes one archive may unpack to.
pub const MAX_ARCHIVE_BYTES: u64 = 8 << 30;

/// Options of a source besides its spec.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// Apps to look at. Required for a registry (registries cannot be listed reliably); for a layout or
    /// archive an empty list means every repository in it.
    pub apps: Vec<String>,
    /// Use plain HTTP for the registry (a local test registry).
    pub insecure: bool,
    /// Registry user name and password (pull credentials); anonymous when `None`.
    pub credentials: Option<(String, String)>,
}

/// An opened source.
pub struct Source {
    spec: SourceSpec,
    kind: Kind,
    apps: Vec<String>,
}

enum Kind {
    Layout(LayoutRoot),
    Archive {
        root: LayoutRoot,
        // Held so the unpacked archive lives as long as the source.
        _dir: tempfile::TempDir,
    },
    Registry {
        host: String,
        insecure: bool,
        credentials: Option<(String, String)>,
        // One client per repository, kept across cycles so a token is not fetched every cycle.
        stores: std::sync::Mutex<HashMap<String, Arc<RegistryStore>>>,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("spec", &self.spec.to_string())
            .field("apps", &self.apps)
            .finish_non_exhaustive()
    }
}

fn source_error(spec: &SourceSpec, source: airlock_oci::Error) -> AgentError {
    AgentError::Source {
        source_spec: spec.to_string(),
        source,
    }
}

impl Source {
    /// Opens `spec`. A missing layout directory or archive file is an error (a typo must not look like
    /// "no releases"); a registry is not contacted until the first [`Source::store`] call.
    pub async fn open(spec: &SourceSpec, options: &SourceOptions) -> Result<Source, AgentError> {
        for app in &options.apps {
            validate_repository(app).map_err(|e| source_error(spec, e))?;
        }
        let kind = match spec {
            SourceSpec::Layout(dir) => {
                if !dir.is_dir() {
                    return Err(AgentError::SourceMissing {
                        source_spec: spec.to_string(),
                    });
                }
                Kind::Layout(LayoutRoot::open_or_create(dir).map_err(|e| source_error(spec, e))?)
            }
            SourceSpec::Archive(file) => {
                if !file.is_file() {
                    return Err(AgentError::SourceMissing {
                        source_spec: spec.to_string(),
                    });
                }
                let (dir, root) = match gate_export(file)? {
                    true => {
                        let dir = tempfile::Builder::new()
                            .prefix("airlock-agent-archive-")
                            .tempdir()
                            .map_err(|e| archive_error(file, e.to_string()))?;
                        let root = LayoutRoot::open_or_create(&dir.path().join("root"))
                            .map_err(|e| source_error(spec, e))?;
                        airlock_oci::import_archive(file, &root)
                            .await
                            .map_err(|e| source_error(spec, e))?;
                        (dir, root)
                    }
                    false => unpack_archive(file)?,
                };
                Kind::Archive { root, _dir: dir }
            }
            SourceSpec::Registry { host, prefix } => {
                if options.apps.is_empty() {
                    return Err(AgentError::NoApps {
                        source_spec: spec.to_string(),
                    });
                }
                for app in &options.apps {
                    let repo = spec.repository(app);
                    validate_repository(&repo).map_err(|e| source_error(spec, e))?;
                }
                let _ = prefix;
                Kind::Registry {
                    host: host.clone(),
                    insecure: options.insecure,
                    credentials: options.credentials.clone(),
                    stores: std::sync::Mutex::new(HashMap::new()),
                }
            }
        };
        Ok(Source {
            spec: spec.clone(),
            kind,
            apps: options.apps.clone(),
        })
    }

    /// The spec this source was opened from.
    pub fn spec(&self) -> &SourceSpec {
        &self.spec
    }

    /// The apps to look at this cycle: the configured ones, or every repository of a layout/archive.
    pub fn apps(&self) -> Result<Vec<String>, AgentError> {
        let root = match &self.kind {
            Kind::Layout(root) | Kind::Archive { root, .. } => root,
            Kind::Registry { .. } => return Ok(self.apps.clone()),
        };
        let all: Vec<String> = root
            .repositories()
            .map_err(|e| source_error(&self.spec, e))?
            .into_iter()
            // The revocation list's and the vulnerability database's repositories are not apps.
            .filter(|r| {
                r != airlock_sign::REVOCATIONS_REPOSITORY && r != airlock_sign::VULNDB_REPOSITORY
            })
            .collect();
        if self.apps.is_empty() {
            Ok(all)
        } else {
            Ok(all.into_iter().filter(|a| self.apps.contains(a)).collect())
        }
    }

    /// The store of the gate's revocation list (`airlock.revocations`), or `None` for a layout or archive
    /// that has none (never created in a source: the agent does not write there).
    pub fn revocation_store(&self) -> Result<Option<Arc<dyn Store>>, airlock_oci::Error> {
        self.optional_store(airlock_sign::REVOCATIONS_REPOSITORY)
    }

    /// The store of the gate's vulnerability database (`airlock.vulndb`), or `None` for a layout or archive
    /// that has none.
    pub fn vulndb_store(&self) -> Result<Option<Arc<dyn Store>>, airlock_oci::Error> {
        self.optional_store(airlock_sign::VULNDB_REPOSITORY)
    }

    /// The store of the gate-written repository `repo`, or `None` for a layout or archive that has none
    /// (never created in a source: the agent does not write there).
    fn optional_store(&self, repo: &str) -> Result<Option<Arc<dyn Store>>, airlock_oci::Error> {
        match &self.kind {
            Kind::Layout(root) | Kind::Archive { root, .. } => {
                if root.path().join(repo).join("oci-layout").is_file() {
                    Ok(Some(Arc::new(root.repo(repo)?)))
                } else {
                    Ok(None)
                }
            }
            Kind::Registry { .. } => self.store(repo).map(Some),
        }
    }

    /// The store holding `app`'s releases, images, signatures and attestations.
    pub fn store(&self, app: &str) -> Result<Arc<dyn Store>, airlock_oci::Error> {
        match &self.kind {
            Kind::Layout(root) | Kind::Archive { root, .. } => Ok(Arc::new(root.repo(app)?)),
            Kind::Registry {
                host,
                insecure,
                credentials,
                stores,
            } => {
                let mut stores = stores.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(store) = stores.get(app) {
                    return Ok(store.clone());
                }
                let auth = match credentials {
                    Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
                    None => RegistryAuth::Anonymous,
                };
                let store = Arc::new(RegistryStore::new(
                    host,
                    &self.spec.repository(app),
                    auth,
                    *insecure,
                )?);
                stores.insert(app.to_string(), store.clone());
                Ok(store)
            }
        }
    }
}

/// Copies every repository of an archive into the import folder `into` (an OCI layout root that
/// `sync --source oci:DIR` then reads). Images named only as a release's subject are copied too, and
/// release tags are copied last so a half-finished import never shows a release whose parts are missing.
/// Nothing is trusted here: verification happens when the agent syncs. Returns the apps imported.
pub async fn import_archive(file: &Path, into: &Path) -> Result<Vec<String>, AgentError> {
    let spec = SourceSpec::Archive(file.to_path_buf());
    if !file.is_file() {
        return Err(AgentError::SourceMissing {
            source_spec: spec.to_string(),
        });
    }
    let dest = LayoutRoot::open_or_create(into).map_err(|e| AgentError::Source {
        source_spec: format!("oci:{}", into.display()),
        source: e,
    })?;
    if gate_export(file)? {
        // The gate's own export: checked whole, then imported with each repository's tags set at once.
        let entries = airlock_oci::import_archive(file, &dest)
            .await
            .map_err(|e| source_error(&spec, e))?;
        let mut apps: Vec<String> = entries.into_iter().map(|e| e.repository).collect();
        apps.sort();
        apps.dedup();
        return Ok(apps);
    }
    let source = Source::open(&spec, &SourceOptions::default()).await?;
    let apps = source.apps()?;
    for app in &apps {
        let src = source.store(app).map_err(|e| source_error(&spec, e))?;
        let dst = dest.repo(app).map_err(|e| source_error(&spec, e))?;
        let mut tags = src.list_tags().await.map_err(|e| source_error(&spec, e))?;
        // Release tags last: everything they point at is in place before they appear.
        tags.sort_by_key(|t| t.starts_with(RELEASE_TAG_PREFIX));
        for tag in tags {
            let fetched = src
                .get_manifest(&tag)
                .await
                .map_err(|e| source_error(&spec, e))?;
            if let Ok(manifest) = ImageManifest::from_bytes(&fetched.bytes, &tag)
                && let Some(subject) = manifest.subject
            {
                copy_image(src.as_ref(), &dst, subject.digest.as_str(), None)
                    .await
                    .map_err(|e| source_error(&spec, e))?;
            }
            copy_image(src.as_ref(), &dst, &tag, Some(&tag))
                .await
                .map_err(|e| source_error(&spec, e))?;
        }
    }
    Ok(apps)
}

/// Whether `file` is an archive in the gate's export format (entries named `REPOSITORY:TAG`). A damaged
/// archive in that format is an error here, never read another way.
fn gate_export(file: &Path) -> Result<bool, AgentError> {
    match airlock_oci::OciArchive::open(file) {
        Ok(archive) => {
            let index = archive
                .layout()
                .read_index()
                .map_err(|e| archive_error(file, e.to_string()))?;
            Ok(!index.manifests.is_empty()
                && index.manifests.iter().all(|d| {
                    d.annotations
                        .as_ref()
                        .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                        .is_some_and(|n| n.contains(':'))
                }))
        }
        // Not a single layout (e.g. a tar of a layout root): this crate's reader handles it.
        Err(airlock_oci::Error::InvalidArchive { .. }) => Ok(false),
        Err(e) => Err(archive_error(file, e.to_string())),
    }
}

fn archive_error(file: &Path, reason: impl Into<String>) -> AgentError {
    AgentError::Archive {
        file: file.to_path_buf(),
        reason: reason.into(),
    }
}

/// Unpacks `file` into a new temporary directory and returns it with the layout root inside. An archive of
/// one app's layout (an `oci-layout` file at its top) is placed under the app name its newest release
/// names; verification later binds that name to the signature.
fn unpack_archive(file: &Path) -> Result<(tempfile::TempDir, LayoutRoot), AgentError> {
    let io = |e: std::io::Error| archive_error(file, e.to_string());
    let oci = |e: airlock_oci::Error| archive_error(file, e.to_string());
    let dir = tempfile::Builder::new()
        .prefix("airlock-agent-archive-")
        .tempdir()
        .map_err(io)?;
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).map_err(io)?;

    let mut raw = std::fs::File::open(file).map_err(io)?;
    let mut magic = [0u8; 2];
    let n = raw.read(&mut magic).map_err(io)?;
    let raw = std::fs::File::open(file).map_err(io)?;
    let reader: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    let mut archive = tar::Archive::new(reader);
    let mut total: u64 = 0;
    for (count, entry) in archive.entries().map_err(io)?.enumerate() {
        if count >= MAX_ARCHIVE_ENTRIES {
            return Err(archive_error(
                file,
                format!("more than {MAX_ARCHIVE_ENTRIES} entries"),
            ));
        }
        let mut entry = entry.map_err(io)?;
        let path = entry.path().map_err(io)?.into_owned();
        let mut clean = std::path::PathBuf::new();
        for component in path.components() {
            match component {
                Component::Normal(c) => clean.push(c),
                Component::CurDir => {}
                _ => {
                    return Err(archive_error(
                        file,
                        format!("entry {} is not a plain relative path", path.display()),
                    ));
                }
            }
        }
        if clean.as_os_str().is_empty() {
            continue;
        }
        let dest = unpacked.join(&clean);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&dest).map_err(io)?;
        } else if kind.is_file() {
            total = total.saturating_add(entry.header().size().map_err(io)?);
            if total > MAX_ARCHIVE_BYTES {
                return Err(archive_error(
                    file,
                    format!("unpacks to more than {MAX_ARCHIVE_BYTES} bytes"),
                ));
            }
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            let mut out = std::fs::File::create(&dest).map_err(io)?;
            std::io::copy(&mut entry, &mut out).map_err(io)?;
        } else {
            return Err(archive_error(
                file,
                format!(
                    "entry {} is a {:?}: only files and directories are accepted",
                    path.display(),
                    kind
                ),
            ));
        }
    }

    if !unpacked.join("oci-layout").is_file() {
        return Ok((dir, LayoutRoot::open_or_create(&unpacked).map_err(oci)?));
    }
    // One app's layout: find its name in the newest release's config (unverified, used only to name it).
    let layout = airlock_oci::OciLayout::open(&unpacked).map_err(oci)?;
    let newest = layout
        .list_tags_sync()
        .map_err(oci)?
        .into_iter()
        .filter(|t| t.starts_with(RELEASE_TAG_PREFIX))
        .max()
        .ok_or_else(|| archive_error(file, "a single-layout archive without a release-* tag"))?;
    let manifest = layout.get_manifest_sync(&newest).map_err(oci)?;
    let manifest = ImageManifest::from_bytes(&manifest.bytes, &newest).map_err(oci)?;
    let config = layout.get_blob_sync(&manifest.config.digest).map_err(oci)?;
    let app = serde_json::from_slice::<serde_json::Value>(&config)
        .ok()
        .and_then(|v| v.get("app").and_then(|a| a.as_str()).map(str::to_string))
        .ok_or_else(|| archive_error(file, format!("{newest} names no app")))?;
    validate_repository(&app).map_err(oci)?;
    let root_dir = dir.path().join("root");
    let app_dir = root_dir.join(&app);
    if let Some(parent) = app_dir.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::rename(&unpacked, &app_dir).map_err(io)?;
    Ok((dir, LayoutRoot::open_or_create(&root_dir).map_err(oci)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            // Write the raw name so `..` reaches the reader unchanged.
            let bytes = name.as_bytes();
            header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn archive_entry_escaping_the_directory_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("evil.tar");
        std::fs::write(&file, tar_with(&[("../../escape", b"x")])).unwrap();
        let err = unpack_archive(&file).unwrap_err().to_string();
        assert!(err.contains("../../escape"), "{err}");
        assert!(err.contains("evil.tar"), "{err}");
    }

    #[tokio::test]
    async fn archive_of_a_layout_root_lists_its_repositories() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("root.tar");
        std::fs::write(
            &file,
            tar_with(&[
                ("hello/oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
                ("hello/index.json", br#"{"schemaVersion":2,"manifests":[]}"#),
            ]),
        )
        .unwrap();
        let source = Source::open(&SourceSpec::Archive(file), &SourceOptions::default())
            .await
            .unwrap();
        assert_eq!(source.apps().unwrap(), vec!["hello".to_string()]);
    }

    #[tokio::test]
    async fn registry_source_needs_apps() {
        let spec: SourceSpec = "docker://127.0.0.1:1/boundary".parse().unwrap();
        let err = Source::open(&spec, &SourceOptions::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("--app"), "{err}");
    }
}
