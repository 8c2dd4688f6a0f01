//! Opening the [`Store`] an [`ImageRef`] names, with registry credentials from `~/.docker/config.json`.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::credential_helper::CredentialHelpers;
use crate::reference::{ImageRef, RegistryTarget};
use crate::{Error, OciArchive, OciLayout, RegistryAuth, RegistryStore, Store};

/// How references are opened.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Registry hosts (`host[:port]`) spoken to over plain HTTP; every other host needs HTTPS.
    pub insecure_hosts: Vec<String>,
    /// The Docker client config to read credentials from (`credHelpers`, `credsStore`, `auths`); `None`
    /// means `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub docker_config: Option<PathBuf>,
}

/// A store opened for a reference. Archives are written only when [`OpenedStore::finish`] is called.
#[derive(Debug)]
pub enum OpenedStore {
    /// `docker://`.
    Registry(RegistryStore),
    /// `oci:`.
    Layout(OciLayout),
    /// `oci-archive:`.
    Archive(OciArchive),
    /// `docker-daemon:` as a source: the saved image as a temporary layout.
    Daemon(crate::daemon::DaemonImage),
    /// `docker-daemon:` as a destination: a temporary layout that [`OpenedStore::finish`] loads into the
    /// Engine.
    DaemonDestination(crate::daemon::DaemonDestination),
}

impl OpenedStore {
    /// The store.
    pub fn store(&self) -> &dyn Store {
        match self {
            OpenedStore::Registry(s) => s,
            OpenedStore::Layout(s) => s,
            OpenedStore::Archive(s) => s,
            OpenedStore::Daemon(d) => &d.layout,
            OpenedStore::DaemonDestination(d) => &d.layout,
        }
    }

    /// Makes what was written durable: packs and atomically renames an archive, loads a `docker-daemon:`
    /// destination into the Engine (`docker load`); nothing for the others.
    pub async fn finish(&self) -> Result<(), Error> {
        match self {
            OpenedStore::Archive(a) => a.finish().await,
            OpenedStore::DaemonDestination(d) => d.load().await.map(|_| ()),
            _ => Ok(()),
        }
    }
}

impl ImageRef {
    /// Opens the store holding this reference for reading, and says which tag or digest to read in it. A
    /// layout or archive named without a tag must hold exactly one image. A `docker-daemon:` image is saved
    /// through the `docker` CLI here (this blocks while the Engine writes it).
    pub fn open_source(&self, options: &OpenOptions) -> Result<(OpenedStore, String), Error> {
        let (store, layout, tag) = match self {
            ImageRef::Registry {
                host,
                repository,
                target,
            } => {
                let store = open_registry(host, repository, options)?;
                return Ok((OpenedStore::Registry(store), target.as_str().to_string()));
            }
            ImageRef::Layout { dir, tag } => {
                let layout = OciLayout::open(dir)?;
                (OpenedStore::Layout(layout.clone()), layout, tag)
            }
            ImageRef::Archive { file, tag } => {
                let archive = OciArchive::open(file)?;
                let layout = archive.layout().clone();
                (OpenedStore::Archive(archive), layout, tag)
            }
            ImageRef::DockerDaemon { name, tag } => {
                let image = crate::daemon::save_image(name, tag)?;
                return Ok((OpenedStore::Daemon(image), tag.clone()));
            }
        };
        if let Some(tag) = tag {
            return Ok((store, tag.clone()));
        }
        match layout.read_index()?.manifests.as_slice() {
            [only] => Ok((store, only.digest.to_string())),
            entries => Err(Error::InvalidReference {
                reference: self.to_string(),
                reason: format!("it holds {} images; name one with :TAG", entries.len()),
            }),
        }
    }

    /// Opens (creating when missing) the store to write this reference to, and the tag to write, if any.
    pub fn open_destination(
        &self,
        options: &OpenOptions,
    ) -> Result<(OpenedStore, Option<String>), Error> {
        match self {
            ImageRef::Registry {
                host,
                repository,
                target,
            } => {
                let store = open_registry(host, repository, options)?;
                let tag = match target {
                    RegistryTarget::Tag(t) => Some(t.clone()),
                    RegistryTarget::Digest(_) => None,
                };
                Ok((OpenedStore::Registry(store), tag))
            }
            ImageRef::Layout { dir, tag } => Ok((
                OpenedStore::Layout(OciLayout::open_or_create(dir)?),
                tag.clone(),
            )),
            ImageRef::Archive { file, tag } => Ok((
                OpenedStore::Archive(OciArchive::open_or_create(file)?),
                tag.clone(),
            )),
            // The Engine keeps no manifest: the image lands there under its config digest (the image ID).
            ImageRef::DockerDaemon { name, tag } => Ok((
                OpenedStore::DaemonDestination(crate::daemon::DaemonDestination::create(
                    name, tag,
                )?),
                Some(tag.clone()),
            )),
        }
    }
}

fn open_registry(
    host: &str,
    repository: &str,
    options: &OpenOptions,
) -> Result<RegistryStore, Error> {
    let config = options.docker_config.clone().or_else(docker_config_path);
    let auth = match config {
        Some(path) => docker_config_auth(&path, host)?,
        None => RegistryAuth::Anonymous,
    };
    let insecure = options.insecure_hosts.iter().any(|h| h == host);
    RegistryStore::new(host, repository, auth, insecure)
}

/// Where the Docker client config is looked for when none is given: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json` (`None` without either variable). Public so every reader of registry
/// credentials (e.g. the agent's mirror) finds the same file the Docker CLI and skopeo would.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// The credentials the Docker client config at `path` gives for `host`, looked up as the Docker CLI does:
/// the credential helper `credHelpers` names for `host`, else the `credsStore` helper, else the `auths`
/// entry (keys may also be written as URLs, `https://host` or `https://host/v1/`). Helpers are found on
/// `$PATH` (see [`CredentialHelpers::get`]). A missing file, host or helper entry is anonymous access; a
/// malformed file or entry, or a helper that is missing or fails, is an error naming the file or helper
/// (never the secret).
pub fn docker_config_auth(path: &Path, host: &str) -> Result<RegistryAuth, Error> {
    docker_config_auth_with(path, host, &CredentialHelpers::default())
}

/// [`docker_config_auth`], running credential helpers as `helpers` says (search directories, extra
/// environment) rather than from `$PATH` with this process's environment.
pub fn docker_config_auth_with(
    path: &Path,
    host: &str,
    helpers: &CredentialHelpers,
) -> Result<RegistryAuth, Error> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistryAuth::Anonymous),
        Err(e) => return Err(Error::io(path, e)),
    };
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        auths: std::collections::BTreeMap<String, AuthEntry>,
        #[serde(rename = "credsStore", default)]
        creds_store: Option<String>,
        #[serde(rename = "credHelpers", default)]
        cred_helpers: std::collections::BTreeMap<String, String>,
    }
    #[derive(serde::Deserialize)]
    struct AuthEntry {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
    }
    let config: Config = serde_json::from_slice(&bytes).map_err(|source| {
        // serde's message for a value of the wrong type quotes the value, which may be a secret put in the
        // wrong place: for those, only the position.
        if source.classify() == serde_json::error::Category::Data {
            Error::Registry {
                store: host.to_string(),
                message: format!(
                    "{} is not a Docker client config: unexpected value at line {}, column {}",
                    path.display(),
                    source.line(),
                    source.column()
                ),
            }
        } else {
            Error::Json {
                what: path.display().to_string(),
                source,
            }
        }
    })?;
    let key_host = |key: &str| {
        let key = key
            .strip_prefix("https://")
            .or_else(|| key.strip_prefix("http://"))
            .unwrap_or(key);
        key.split('/').next().unwrap_or(key).to_string()
    };
    // The Docker CLI's order: a per-registry helper, then the default store, then the file itself. An
    // empty name is how `docker logout` and editors leave an unset helper.
    if let Some((key, helper)) = config
        .cred_helpers
        .iter()
        .find(|(k, v)| key_host(k) == host && !v.is_empty())
    {
        let configured_by = format!("\"credHelpers\" {key:?} in {}", path.display());
        return helpers.get(helper, host, &configured_by);
    }
    if let Some(store) = config.creds_store.as_deref().filter(|s| !s.is_empty()) {
        let configured_by = format!("\"credsStore\" in {}", path.display());
        return helpers.get(store, host, &configured_by);
    }
    let Some(entry) = config
        .auths
        .iter()
        .find(|(k, _)| key_host(k) == host)
        .map(|(_, v)| v)
    else {
        return Ok(RegistryAuth::Anonymous);
    };
    let bad = |why: &str| Error::Registry {
        store: host.to_string(),
        message: format!("auths entry in {}: {why}", path.display()),
    };
    if let (Some(user), Some(pass)) = (&entry.username, &entry.password) {
        return Ok(RegistryAuth::Basic(user.clone(), pass.clone()));
    }
    let Some(auth) = &entry.auth else {
        return Ok(RegistryAuth::Anonymous);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| bad("\"auth\" is not base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad("\"auth\" is not UTF-8"))?;
    let (user, pass) = decoded
        .split_once(':')
        .ok_or_else(|| bad("\"auth\" is not base64 of USER:PASSWORD"))?;
    Ok(RegistryAuth::Basic(user.to_string(), pass.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_basic_credentials_from_docker_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://reg.example:5000/v1/":{"auth":"dXNlcjpwYTpzcw=="},
                "other.io":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        assert!(matches!(
            docker_config_auth(&path, "reg.example:5000").unwrap(),
            RegistryAuth::Basic(u, p) if u == "user" && p == "pa:ss"
        ));
        assert!(matches!(
            docker_config_auth(&path, "other.io").unwrap(),
            RegistryAuth::Basic(u, p) if u == "u" && p == "p"
        ));
        assert!(matches!(
            docker_config_auth(&path, "unknown.io").unwrap(),
            RegistryAuth::Anonymous
        ));
        assert!(matches!(
            docker_config_auth(&dir.path().join("none.json"), "x.io").unwrap(),
            RegistryAuth::Anonymous
        ));
        std::fs::write(&path, r#"{"auths":{"x.io":{"auth":"%%%"}}}"#).unwrap();
        let err = docker_config_auth(&path, "x.io").unwrap_err().to_string();
        assert!(
            err.contains("not base64") && err.contains("config.json"),
            "{err}"
        );
        // A secret where an object belongs: serde would quote it; the error gives only the position.
        std::fs::write(&path, r#"{"auths":{"x.io":"hunter2-pw"}}"#).unwrap();
        let err = docker_config_auth(&path, "x.io").unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains("line 1") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn layout_without_tag_needs_exactly_one_image() {
        let dir = tempfile::tempdir().unwrap();
        OciLayout::create(dir.path()).unwrap();
        let r = ImageRef::parse(&format!("oci:{}", dir.path().display())).unwrap();
        let err = r.open_source(&OpenOptions::default()).unwrap_err();
        assert!(err.to_string().contains("holds 0 images"), "{err}");
    }
}
