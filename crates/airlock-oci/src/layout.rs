//! The OCI image layout on disk (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), what skopeo reads as
//! `oci:DIR:TAG`, and [`LayoutRoot`], a directory of such layouts, one per repository.
//!
//! Every write goes to a temporary file in the same directory and is renamed into place, so readers never
//! see half a blob. Updates of `index.json` are serialised by a process mutex plus an exclusive lock on the
//! `index.json.lock` file, so concurrent writers (threads or processes) never lose a tag.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::reference::validate_ref_name;
use crate::store::{
    BlobStream, MAX_MANIFEST_SIZE, OpenBlobStream, check_manifest_to_put, sniff_media_type,
    verify_stream,
};
use crate::types::ANNOTATION_REF_NAME;
use crate::{Descriptor, Digest, Error, FetchedManifest, ImageIndex, Store};

/// Largest `index.json` read (it lists tags, so it stays small in practice).
pub const MAX_INDEX_JSON_SIZE: u64 = 64 * 1024 * 1024;
/// Deepest repository nesting [`LayoutRoot::repositories`] looks into.
const MAX_REPO_DEPTH: usize = 16;

const OCI_LAYOUT_FILE: &str = "oci-layout";
const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_FILE: &str = "index.json";
const LOCK_FILE: &str = "index.json.lock";

/// One OCI image layout directory. Cheap to clone; clones share the index lock.
#[derive(Clone, Debug)]
pub struct OciLayout {
    dir: PathBuf,
    index_lock: Arc<Mutex<()>>,
}

fn process_lock(dir: &Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut map = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    map.entry(key).or_default().clone()
}

/// Writes `data` to `path` atomically: temp file in the same directory, fsync, rename.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(
        ".tmp-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(data).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads a whole file, refusing more than `limit` bytes.
fn read_limited(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, Error> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut data = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::io(path, e))?;
    if data.len() as u64 > limit {
        return Err(Error::TooLarge {
            what: path.display().to_string(),
            limit,
        });
    }
    Ok(Some(data))
}

impl OciLayout {
    /// Creates the layout in `dir` (and `dir` itself) if missing; existing content is kept.
    pub fn create(dir: &Path) -> Result<Self, Error> {
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
        let layout_file = dir.join(OCI_LAYOUT_FILE);
        if !layout_file.exists() {
            write_atomic(&layout_file, OCI_LAYOUT_CONTENT)?;
        }
        let layout = OciLayout {
            dir: dir.to_path_buf(),
            index_lock: process_lock(dir),
        };
        let index = dir.join(INDEX_FILE);
        if !index.exists() {
            layout.update_index(|_| Ok(()))?;
        }
        Ok(layout)
    }

    /// Opens an existing layout; a missing or foreign `oci-layout` file is an error naming it.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let layout_file = dir.join(OCI_LAYOUT_FILE);
        let bytes = read_limited(&layout_file, 4096)?.ok_or_else(|| {
            Error::io(
                &layout_file,
                std::io::Error::new(std::io::ErrorKind::NotFound, "not an OCI image layout"),
            )
        })?;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct LayoutFile {
            image_layout_version: String,
        }
        let parsed: LayoutFile = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: layout_file.display().to_string(),
            source,
        })?;
        if !parsed.image_layout_version.starts_with("1.") {
            return Err(Error::UnsupportedMediaType {
                media_type: format!("imageLayoutVersion {}", parsed.image_layout_version),
                reference: layout_file.display().to_string(),
            });
        }
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
        Ok(OciLayout {
            dir: dir.to_path_buf(),
            index_lock: process_lock(dir),
        })
    }

    /// Opens the layout in `dir`, creating it when there is none.
    pub fn open_or_create(dir: &Path) -> Result<Self, Error> {
        if dir.join(OCI_LAYOUT_FILE).exists() {
            Self::open(dir)
        } else {
            Self::create(dir)
        }
    }

    /// The layout directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    /// Reads `index.json` (an empty index when the file is missing).
    pub fn read_index(&self) -> Result<ImageIndex, Error> {
        let path = self.dir.join(INDEX_FILE);
        match read_limited(&path, MAX_INDEX_JSON_SIZE)? {
            None => Ok(ImageIndex::new(Vec::new())),
            Some(bytes) => ImageIndex::from_bytes(&bytes, &path.display().to_string()),
        }
    }

    /// Read-modify-write of `index.json` under the process mutex and the lock file.
    fn update_index(
        &self,
        change: impl FnOnce(&mut ImageIndex) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let _guard = self.index_lock.lock().unwrap_or_else(|p| p.into_inner());
        let lock_path = self.dir.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        lock.lock().map_err(|e| Error::io(&lock_path, e))?;
        let mut index = self.read_index()?;
        change(&mut index)?;
        let result = write_atomic(&self.dir.join(INDEX_FILE), &index.to_bytes());
        let _ = lock.unlock();
        result
    }

    /// Synchronous [`Store::has_blob`].
    pub fn has_blob_sync(&self, digest: &Digest) -> Result<bool, Error> {
        let path = self.blob_path(digest);
        match std::fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Synchronous [`Store::get_blob`].
    pub fn get_blob_sync(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(digest);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::BlobNotFound {
                    digest: digest.clone(),
                    store: self.describe(),
                });
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        digest.verify(&data, &self.describe())?;
        Ok(data)
    }

    /// Synchronous [`Store::put_blob`].
    pub fn put_blob_sync(&self, digest: &Digest, data: &[u8]) -> Result<(), Error> {
        digest.verify(data, "input")?;
        let path = self.blob_path(digest);
        if let Ok(m) = std::fs::metadata(&path)
            && m.is_file()
            && m.len() == data.len() as u64
        {
            return Ok(());
        }
        write_atomic(&path, data)
    }

    /// Synchronous [`Store::get_manifest`].
    pub fn get_manifest_sync(&self, reference: &str) -> Result<FetchedManifest, Error> {
        let not_found = || Error::ManifestNotFound {
            reference: reference.to_string(),
            store: self.describe(),
        };
        let (digest, media_type) = if let Ok(digest) = Digest::parse(reference) {
            (digest, None)
        } else {
            validate_ref_name(reference)?;
            let index = self.read_index()?;
            let entry = index
                .manifests
                .iter()
                .rev()
                .find(|d| ref_name(d) == Some(reference))
                .ok_or_else(not_found)?;
            if entry.size > MAX_MANIFEST_SIZE {
                return Err(Error::ManifestTooLarge {
                    reference: reference.to_string(),
                    size: entry.size,
                });
            }
            (entry.digest.clone(), Some(entry.media_type.clone()))
        };
        let path = self.blob_path(&digest);
        let size = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(Error::io(path, e)),
        };
        if size > MAX_MANIFEST_SIZE {
            return Err(Error::ManifestTooLarge {
                reference: reference.to_string(),
                size,
            });
        }
        let bytes = self.get_blob_sync(&digest)?;
        let media_type = match media_type {
            Some(mt) => mt,
            None => sniff_media_type(&bytes, reference)?,
        };
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Synchronous [`Store::put_manifest`].
    pub fn put_manifest_sync(
        &self,
        bytes: &[u8],
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<Digest, Error> {
        let digest = check_manifest_to_put(bytes, tag)?;
        if let Some(tag) = tag {
            validate_ref_name(tag)?;
        }
        self.put_blob_sync(&digest, bytes)?;
        if let Some(tag) = tag {
            let desc = Descriptor::new(media_type, digest.clone(), bytes.len() as u64);
            self.set_tags(&[(tag.to_string(), desc)])?;
        }
        Ok(digest)
    }

    /// Points every `(tag, manifest descriptor)` pair at its manifest in one `index.json` update, so readers
    /// see all of them or none (what an import needs). The manifests must already be stored.
    pub fn set_tags(&self, tags: &[(String, Descriptor)]) -> Result<(), Error> {
        for (tag, desc) in tags {
            validate_ref_name(tag)?;
            if !self.has_blob_sync(&desc.digest)? {
                return Err(Error::ManifestNotFound {
                    reference: desc.digest.to_string(),
                    store: self.describe(),
                });
            }
        }
        self.update_index(|index| {
            for (tag, desc) in tags {
                let mut desc = desc.clone();
                let mut annotations = desc.annotations.take().unwrap_or_default();
                annotations.insert(ANNOTATION_REF_NAME.to_string(), tag.clone());
                desc.annotations = Some(annotations);
                desc.platform = None;
                let mut replaced = false;
                index.manifests.retain_mut(|d| {
                    if ref_name(d) != Some(tag.as_str()) {
                        return true;
                    }
                    if replaced {
                        return false;
                    }
                    replaced = true;
                    *d = desc.clone();
                    true
                });
                if !replaced {
                    index.manifests.push(desc);
                }
            }
            Ok(())
        })
    }

    /// Synchronous [`Store::list_tags`].
    pub fn list_tags_sync(&self) -> Result<Vec<String>, Error> {
        let mut tags: Vec<String> = self
            .read_index()?
            .manifests
            .iter()
            .filter_map(|d| ref_name(d).map(str::to_string))
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// Removes a tag from `index.json` (the blobs stay). Returns whether the tag existed.
    pub fn untag(&self, tag: &str) -> Result<bool, Error> {
        let mut found = false;
        self.update_index(|index| {
            let before = index.manifests.len();
            index.manifests.retain(|d| ref_name(d) != Some(tag));
            found = index.manifests.len() != before;
            Ok(())
        })?;
        Ok(found)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(OciLayout) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(me))
            .await
            .map_err(|e| Error::io(&self.dir, std::io::Error::other(e)))?
    }
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations
        .as_ref()?
        .get(ANNOTATION_REF_NAME)
        .map(String::as_str)
}

#[async_trait::async_trait]
impl Store for OciLayout {
    fn describe(&self) -> String {
        format!("oci:{}", self.dir.display())
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool, Error> {
        let digest = digest.clone();
        self.blocking(move |l| l.has_blob_sync(&digest)).await
    }

    async fn get_blob(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        let digest = digest.clone();
        self.blocking(move |l| l.get_blob_sync(&digest)).await
    }

    async fn put_blob(&self, digest: &Digest, data: &[u8]) -> Result<(), Error> {
        let digest = digest.clone();
        let data = data.to_vec();
        self.blocking(move |l| l.put_blob_sync(&digest, &data))
            .await
    }

    async fn get_manifest(&self, reference: &str) -> Result<FetchedManifest, Error> {
        let reference = reference.to_string();
        self.blocking(move |l| l.get_manifest_sync(&reference))
            .await
    }

    async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<Digest, Error> {
        let bytes = bytes.to_vec();
        let media_type = media_type.to_string();
        let tag = tag.map(str::to_string);
        self.blocking(move |l| l.put_manifest_sync(&bytes, &media_type, tag.as_deref()))
            .await
    }

    async fn list_tags(&self) -> Result<Vec<String>, Error> {
        self.blocking(|l| l.list_tags_sync()).await
    }

    async fn get_blob_stream(&self, digest: &Digest) -> Result<BlobStream, Error> {
        use tokio::io::AsyncReadExt;
        let path = self.blob_path(digest);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::BlobNotFound {
                    digest: digest.clone(),
                    store: self.describe(),
                });
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let size = file
            .metadata()
            .await
            .map_err(|e| Error::io(&path, e))?
            .len();
        let chunks = futures::stream::unfold(Some((file, path)), |state| async move {
            let (mut file, path) = state?;
            let mut buf = vec![0u8; STREAM_CHUNK];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), Some((file, path))))
                }
                Err(e) => Some((Err(Error::io(&path, e)), None)),
            }
        });
        Ok(verify_stream(
            Box::pin(chunks),
            digest.clone(),
            Some(size),
            self.describe(),
        ))
    }

    async fn put_blob_stream(
        &self,
        digest: &Digest,
        size: u64,
        open: OpenBlobStream<'_>,
    ) -> Result<(), Error> {
        use futures::StreamExt;
        use std::io::Write as _;
        use tokio::io::AsyncWriteExt;
        let path = self.blob_path(digest);
        if let Ok(m) = tokio::fs::metadata(&path).await
            && m.is_file()
            && m.len() == size
        {
            return Ok(());
        }
        let mut stream = open.await?;
        static STREAM_COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = path.with_file_name(format!(
            ".tmp-{}-{}-{}",
            digest.hex(),
            std::process::id(),
            STREAM_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| Error::io(&tmp, e))?;
            let mut hasher = crate::DigestWriter::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                let _ = hasher.write_all(&chunk);
                file.write_all(&chunk)
                    .await
                    .map_err(|e| Error::io(&tmp, e))?;
            }
            let (actual, len) = hasher.finish();
            if actual != *digest {
                return Err(Error::DigestMismatch {
                    digest: digest.clone(),
                    source: "input".to_string(),
                });
            }
            if len != size {
                return Err(Error::SizeMismatch {
                    digest: digest.clone(),
                    expected: size,
                    actual: len,
                });
            }
            file.sync_all().await.map_err(|e| Error::io(&tmp, e))?;
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(|e| Error::io(&path, e))
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}

/// Size of the chunks a layout streams blobs in.
const STREAM_CHUNK: usize = 1 << 20;

/// A directory holding one [`OciLayout`] per repository name: what the boundary is when it is a directory.
#[derive(Clone, Debug)]
pub struct LayoutRoot {
    dir: PathBuf,
}

/// Checks a repository name: `/`-separated components of `[a-z0-9]+` joined by `.`, `_`, `__` or `-`s.
pub fn validate_repository(name: &str) -> Result<(), Error> {
    let bad = || Error::InvalidRepository(name.to_string());
    if name.is_empty() || name.len() > 255 {
        return Err(bad());
    }
    for component in name.split('/') {
        let bytes = component.as_bytes();
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return Err(bad());
        };
        if !(first.is_ascii_lowercase() || first.is_ascii_digit())
            || !(last.is_ascii_lowercase() || last.is_ascii_digit())
        {
            return Err(bad());
        }
        // Separators between alphanumeric runs: ".", "_", "__" or one or more "-".
        let mut sep = String::new();
        for &b in bytes {
            if b.is_ascii_lowercase() || b.is_ascii_digit() {
                // An empty separator and one made only of '-' both pass the `all` check.
                let allowed =
                    matches!(sep.as_str(), "." | "_" | "__") || sep.bytes().all(|c| c == b'-');
                if !allowed {
                    return Err(bad());
                }
                sep.clear();
            } else if matches!(b, b'.' | b'_' | b'-') {
                sep.push(b as char);
            } else {
                return Err(bad());
            }
        }
    }
    Ok(())
}

impl LayoutRoot {
    /// Opens (creating it if needed) the directory of repositories.
    pub fn open_or_create(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(LayoutRoot {
            dir: dir.to_path_buf(),
        })
    }

    /// The layout of repository `name` (created if missing); the name is validated first, so it can never
    /// escape the root.
    pub fn repo(&self, name: &str) -> Result<OciLayout, Error> {
        validate_repository(name)?;
        OciLayout::open_or_create(&self.dir.join(name))
    }

    /// Names of all repositories (directories holding an `oci-layout` file), sorted.
    pub fn repositories(&self) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        self.collect(&self.dir, "", 0, &mut out)?;
        out.sort();
        Ok(out)
    }

    fn collect(
        &self,
        dir: &Path,
        name: &str,
        depth: usize,
        out: &mut Vec<String>,
    ) -> Result<(), Error> {
        if depth > MAX_REPO_DEPTH {
            return Ok(());
        }
        let is_layout = !name.is_empty() && dir.join(OCI_LAYOUT_FILE).is_file();
        if is_layout {
            out.push(name.to_string());
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let Some(child) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if is_layout && child == "blobs" {
                continue;
            }
            let ft = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
            if !ft.is_dir() {
                continue;
            }
            let child_name = if name.is_empty() {
                child
            } else {
                format!("{name}/{child}")
            };
            if validate_repository(&child_name).is_ok() {
                self.collect(&entry.path(), &child_name, depth + 1, out)?;
            }
        }
        Ok(())
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_type::OCI_MANIFEST;

    fn manifest_bytes(n: u32) -> Vec<u8> {
        let mut m = crate::ImageManifest::new(Descriptor::empty(), Vec::new());
        m.annotations = Some([("n".to_string(), n.to_string())].into());
        m.to_bytes()
    }

    #[tokio::test]
    async fn flipped_byte_in_a_blob_file_gives_digest_mismatch_naming_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let data = b"some layer bytes".to_vec();
        let digest = Digest::of(&data);
        layout.put_blob(&digest, &data).await.unwrap();
        assert_eq!(layout.get_blob(&digest).await.unwrap(), data);

        let path = layout.blob_path(&digest);
        let mut on_disk = std::fs::read(&path).unwrap();
        on_disk[3] ^= 0x01;
        std::fs::write(&path, on_disk).unwrap();

        match layout.get_blob(&digest).await {
            Err(Error::DigestMismatch { digest: d, source }) => {
                assert_eq!(d, digest);
                assert!(
                    source.contains(&dir.path().display().to_string()),
                    "{source}"
                );
            }
            other => panic!("expected DigestMismatch, got {other:?}"),
        }
        let err = layout.get_blob(&digest).await.unwrap_err();
        assert!(err.to_string().contains(digest.as_str()), "{err}");
    }

    #[tokio::test]
    async fn tampered_manifest_is_refused_when_fetched_by_tag() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let bytes = manifest_bytes(1);
        let digest = layout
            .put_manifest(&bytes, OCI_MANIFEST, Some("v1"))
            .await
            .unwrap();
        let mut changed = bytes.clone();
        let last = changed.len() - 3;
        changed[last] = b'9';
        std::fs::write(layout.blob_path(&digest), changed).unwrap();
        assert!(matches!(
            layout.get_manifest("v1").await,
            Err(Error::DigestMismatch { digest: d, .. }) if d == digest
        ));
    }

    #[tokio::test]
    async fn put_blob_refuses_bytes_that_do_not_match_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let digest = Digest::of(b"a");
        assert!(matches!(
            layout.put_blob(&digest, b"b").await,
            Err(Error::DigestMismatch { .. })
        ));
        assert!(!layout.has_blob(&digest).await.unwrap());
        layout.put_blob(&digest, b"a").await.unwrap();
        layout.put_blob(&digest, b"a").await.unwrap();
        assert!(layout.has_blob(&digest).await.unwrap());
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(digest.hex())]);
    }

    #[tokio::test]
    async fn missing_blob_and_manifest_name_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let digest = Digest::of(b"nothing");
        let err = layout.get_blob(&digest).await.unwrap_err();
        assert!(matches!(err, Error::BlobNotFound { .. }));
        assert!(err.to_string().contains(&layout.describe()), "{err}");
        assert!(
            matches!(layout.get_manifest("nope").await, Err(Error::ManifestNotFound { reference, .. }) if reference == "nope")
        );
        assert!(matches!(
            layout.get_manifest(digest.as_str()).await,
            Err(Error::ManifestNotFound { .. })
        ));
    }

    #[tokio::test]
    async fn retagging_replaces_the_entry_and_untagged_put_stores_only_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let d1 = layout
            .put_manifest(&manifest_bytes(1), OCI_MANIFEST, Some("latest"))
            .await
            .unwrap();
        let d2 = layout
            .put_manifest(&manifest_bytes(2), OCI_MANIFEST, Some("latest"))
            .await
            .unwrap();
        let d3 = layout
            .put_manifest(&manifest_bytes(3), OCI_MANIFEST, None)
            .await
            .unwrap();
        assert_eq!(layout.read_index().unwrap().manifests.len(), 1);
        let got = layout.get_manifest("latest").await.unwrap();
        assert_eq!(got.digest, d2);
        assert_eq!(got.media_type, OCI_MANIFEST);
        assert_eq!(
            layout.get_manifest(d1.as_str()).await.unwrap().bytes,
            manifest_bytes(1)
        );
        let by_digest = layout.get_manifest(d3.as_str()).await.unwrap();
        assert_eq!(by_digest.media_type, OCI_MANIFEST);
        assert_eq!(
            layout.list_tags().await.unwrap(),
            vec!["latest".to_string()]
        );
        assert!(layout.untag("latest").unwrap());
        assert!(layout.list_tags().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn rejects_bad_tags_and_oversized_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        assert!(matches!(
            layout.put_manifest(&manifest_bytes(1), OCI_MANIFEST, Some("../x")).await,
            Err(Error::InvalidTag(t)) if t == "../x"
        ));
        let mut huge = b"{\"x\":\"".to_vec();
        huge.resize(MAX_MANIFEST_SIZE as usize + 10, b'a');
        huge.extend_from_slice(b"\"}");
        assert!(matches!(
            layout.put_manifest(&huge, OCI_MANIFEST, Some("big")).await,
            Err(Error::ManifestTooLarge { .. })
        ));
        // A huge blob planted on disk is refused when read as a manifest.
        let digest = Digest::of(&huge);
        layout.put_blob(&digest, &huge).await.unwrap();
        assert!(matches!(
            layout.get_manifest(digest.as_str()).await,
            Err(Error::ManifestTooLarge { size, .. }) if size == huge.len() as u64
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_tagging_keeps_all_tags() {
        let dir = tempfile::tempdir().unwrap();
        OciLayout::create(dir.path()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..40u32 {
            // Separate handles, as separate callers would have.
            let layout = OciLayout::open(dir.path()).unwrap();
            tasks.push(tokio::spawn(async move {
                layout
                    .put_manifest(&manifest_bytes(i), OCI_MANIFEST, Some(&format!("t{i:02}")))
                    .await
                    .unwrap()
            }));
        }
        // And plain threads, which share nothing but the file lock's directory.
        let threads: Vec<_> = (40..60u32)
            .map(|i| {
                let path = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let layout = OciLayout::open(&path).unwrap();
                    layout
                        .put_manifest_sync(
                            &manifest_bytes(i),
                            OCI_MANIFEST,
                            Some(&format!("t{i:02}")),
                        )
                        .unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        let tags = OciLayout::open(dir.path())
            .unwrap()
            .list_tags()
            .await
            .unwrap();
        let expected: Vec<String> = (0..60).map(|i| format!("t{i:02}")).collect();
        assert_eq!(tags, expected);
    }

    #[test]
    fn open_refuses_a_directory_without_oci_layout() {
        let dir = tempfile::tempdir().unwrap();
        let err = OciLayout::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("oci-layout"), "{err}");
    }

    #[test]
    fn repository_names_follow_distribution_rules() {
        for good in ["hello", "team/app", "a.b_c-d", "a__b", "a--b", "x9/y8/z7"] {
            validate_repository(good).unwrap();
        }
        for bad in [
            "", "Hello", "../x", "a/../b", "a//b", "/a", "a/", ".a", "a.", "a..b", "a___b", "a b",
            "a:b",
        ] {
            assert!(
                matches!(validate_repository(bad), Err(Error::InvalidRepository(n)) if n == bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn layout_root_creates_and_lists_repositories() {
        let dir = tempfile::tempdir().unwrap();
        let root = LayoutRoot::open_or_create(&dir.path().join("boundary")).unwrap();
        root.repo("hello").unwrap();
        root.repo("team/web").unwrap();
        assert!(matches!(
            root.repo("../escape"),
            Err(Error::InvalidRepository(_))
        ));
        assert!(!dir.path().join("escape").exists());
        assert_eq!(
            root.repositories().unwrap(),
            vec!["hello".to_string(), "team/web".to_string()]
        );
        assert!(root.path().join("team/web/oci-layout").is_file());
    }
}
