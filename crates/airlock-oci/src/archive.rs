//! An OCI image layout in one tar file (skopeo's `oci-archive:`), for one-way hand-offs across an air gap.
//!
//! Opening an archive unpacks it into a private temporary layout and checks it completely before anything
//! is served: the tar must end with its end-of-archive marker, every entry must be an expected layout file,
//! every blob must hash to its name, and everything `index.json` reaches must be present. A cut-off transfer
//! therefore never looks like a smaller valid archive. Writing goes to the temporary layout; [`OciArchive::finish`]
//! packs it to a temporary name beside the target and renames it into place, so the target is either the old
//! file or the complete new one.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::media_type::{is_index, is_manifest};
use crate::store::{BlobStream, OpenBlobStream};
use crate::{
    Descriptor, Digest, DigestWriter, Error, FetchedManifest, ImageIndex, ImageManifest, OciLayout,
    Store,
};

/// Deepest index nesting followed when checking an archive.
const MAX_DEPTH: usize = 8;
/// Most manifests one archive may hold (counted while checking).
const MAX_MANIFESTS: usize = 100_000;

/// An OCI layout archive, unpacked into a private temporary directory while it is used.
#[derive(Debug)]
pub struct OciArchive {
    file: PathBuf,
    layout: OciLayout,
    // Kept for its Drop: the unpacked copy disappears with the store.
    _dir: tempfile::TempDir,
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidArchive {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A tar stream ends with two 512-byte zero blocks and is a whole number of blocks long. A truncated file
/// fails this even when it was cut exactly between two entries (which the tar reader alone would accept).
fn check_tar_end(path: &Path, file: &mut std::fs::File) -> Result<(), Error> {
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len < 1024 || !len.is_multiple_of(512) {
        return Err(invalid(
            path,
            format!("{len} bytes is not a whole tar archive (truncated?)"),
        ));
    }
    let mut tail = [0u8; 1024];
    file.seek(SeekFrom::Start(len - 1024))
        .and_then(|_| file.read_exact(&mut tail))
        .and_then(|_| file.seek(SeekFrom::Start(0)).map(|_| ()))
        .map_err(|e| Error::io(path, e))?;
    if tail.iter().any(|&b| b != 0) {
        return Err(invalid(
            path,
            "no end-of-archive marker (truncated?)".to_string(),
        ));
    }
    Ok(())
}

/// Where an archive entry goes in the layout, or `None` for a directory entry that needs nothing.
enum Entry {
    Dir,
    File(&'static str),
    Blob(Digest),
}

fn classify(path: &Path, name: &str) -> Result<Entry, Error> {
    let name = name.trim_start_matches("./");
    let name = name.strip_suffix('/').unwrap_or(name);
    match name {
        "" | "." | "blobs" | "blobs/sha256" => Ok(Entry::Dir),
        "oci-layout" => Ok(Entry::File("oci-layout")),
        "index.json" => Ok(Entry::File("index.json")),
        _ => match name.strip_prefix("blobs/sha256/") {
            Some(hex) => Digest::parse(&format!("sha256:{hex}"))
                .map(Entry::Blob)
                .map_err(|_| invalid(path, format!("entry {name:?} is not a sha256 blob name"))),
            None => Err(invalid(
                path,
                format!(
                    "unexpected entry {name:?} (an OCI layout holds only oci-layout, index.json and blobs/)"
                ),
            )),
        },
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl OciArchive {
    /// Opens the archive at `file` for reading (and adding): unpacks and checks it as described in the module
    /// documentation. Any defect is [`Error::InvalidArchive`] or [`Error::DigestMismatch`] naming the file.
    pub fn open(file: &Path) -> Result<Self, Error> {
        let dir = temp_dir()?;
        let mut f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
        check_tar_end(file, &mut f)?;
        let source = format!("oci-archive:{}", file.display());
        let mut archive = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, f));
        let blobs = dir.path().join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
        let mut seen = BTreeSet::new();
        let entries = archive
            .entries()
            .map_err(|e| invalid(file, format!("reading the tar: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| invalid(file, format!("reading the tar: {e}")))?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = entry.header().entry_type();
            match classify(file, &name)? {
                Entry::Dir if kind.is_dir() => {}
                Entry::File(target) if kind.is_file() => {
                    let target = dir.path().join(target);
                    copy_entry(file, &mut entry, &target, None)?;
                    seen.insert(name);
                }
                Entry::Blob(digest) if kind.is_file() => {
                    let target = blobs.join(digest.hex());
                    copy_entry(file, &mut entry, &target, Some((&digest, &source)))?;
                }
                _ => {
                    return Err(invalid(
                        file,
                        format!("entry {name:?} has the wrong type ({kind:?})"),
                    ));
                }
            }
        }
        for required in ["oci-layout", "index.json"] {
            if !seen.iter().any(|s| s.trim_start_matches("./") == required) {
                return Err(invalid(
                    file,
                    format!("no {required} (not an OCI layout archive, or truncated)"),
                ));
            }
        }
        let layout = OciLayout::open(dir.path())?;
        let archive = OciArchive {
            file: file.to_path_buf(),
            layout,
            _dir: dir,
        };
        archive.check_complete()?;
        Ok(archive)
    }

    /// Starts a new, empty archive to be written to `file` by [`OciArchive::finish`].
    pub fn create(file: &Path) -> Result<Self, Error> {
        let dir = temp_dir()?;
        let layout = OciLayout::create(dir.path())?;
        Ok(OciArchive {
            file: file.to_path_buf(),
            layout,
            _dir: dir,
        })
    }

    /// Opens `file` when it exists (so copies add to it), else starts an empty archive.
    pub fn open_or_create(file: &Path) -> Result<Self, Error> {
        if file.exists() {
            Self::open(file)
        } else {
            Self::create(file)
        }
    }

    /// The archive file.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The unpacked layout (temporary; gone when this value is dropped).
    pub fn layout(&self) -> &OciLayout {
        &self.layout
    }

    /// Every manifest and blob reachable from `index.json` is present (blob contents were verified while
    /// unpacking; manifests are verified again as they are read).
    fn check_complete(&self) -> Result<(), Error> {
        let index = self.layout.read_index()?;
        let mut seen = BTreeSet::new();
        for desc in &index.manifests {
            self.check_manifest(desc, 0, &mut seen)?;
        }
        Ok(())
    }

    fn check_manifest(
        &self,
        desc: &Descriptor,
        depth: usize,
        seen: &mut BTreeSet<Digest>,
    ) -> Result<(), Error> {
        if !seen.insert(desc.digest.clone()) {
            return Ok(());
        }
        if depth > MAX_DEPTH || seen.len() > MAX_MANIFESTS {
            return Err(invalid(
                &self.file,
                "index nesting or manifest count too large",
            ));
        }
        let fetched = self
            .layout
            .get_manifest_sync(desc.digest.as_str())
            .map_err(|e| self.rename(e))
            .map_err(|e| match e {
                Error::ManifestNotFound { reference, .. } => invalid(
                    &self.file,
                    format!("manifest {reference} listed but missing (truncated?)"),
                ),
                other => other,
            })?;
        let what = format!("manifest {} in {}", desc.digest, self.describe());
        if is_index(&fetched.media_type) {
            let index = ImageIndex::from_bytes(&fetched.bytes, &what)?;
            for child in &index.manifests {
                self.check_manifest(child, depth + 1, seen)?;
            }
            return Ok(());
        }
        if !is_manifest(&fetched.media_type) {
            return Err(Error::UnsupportedMediaType {
                media_type: fetched.media_type,
                reference: what,
            });
        }
        let manifest = ImageManifest::from_bytes(&fetched.bytes, &what)?;
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            if !self.layout.has_blob_sync(&blob.digest)? {
                return Err(invalid(
                    &self.file,
                    format!(
                        "blob {} of manifest {} is missing (truncated?)",
                        blob.digest, desc.digest
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Packs the layout into the archive file: to a temporary name in the same directory, fsync, rename.
    /// Entries are in a fixed order with fixed metadata (same content → same bytes), `index.json` last.
    pub async fn finish(&self) -> Result<(), Error> {
        let file = self.file.clone();
        let layout = self.layout.clone();
        tokio::task::spawn_blocking(move || pack(&layout, &file))
            .await
            .map_err(|e| Error::io(&self.file, std::io::Error::other(e)))?
    }

    /// Errors of the inner layout name the temporary directory; name the archive instead.
    fn rename(&self, err: Error) -> Error {
        let inner = self.layout.describe();
        let outer = self.describe();
        let fix = |s: String| if s == inner { outer.clone() } else { s };
        match err {
            Error::DigestMismatch { digest, source } => Error::DigestMismatch {
                digest,
                source: fix(source),
            },
            Error::BlobNotFound { digest, store } => Error::BlobNotFound {
                digest,
                store: fix(store),
            },
            Error::ManifestNotFound { reference, store } => Error::ManifestNotFound {
                reference,
                store: fix(store),
            },
            other => other,
        }
    }
}

fn temp_dir() -> Result<tempfile::TempDir, Error> {
    tempfile::Builder::new()
        .prefix("airlock-oci-archive-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))
}

/// Streams one tar entry to `target` (through a temporary name), checking the digest when one is given.
fn copy_entry(
    archive: &Path,
    entry: &mut impl Read,
    target: &Path,
    digest: Option<(&Digest, &str)>,
) -> Result<(), Error> {
    let tmp = target.with_extension(format!("tmp-{}", COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut out = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut hasher = DigestWriter::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| invalid(archive, format!("reading {}: {e}", target.display())))?;
            if n == 0 {
                break;
            }
            if digest.is_some() {
                hasher
                    .write_all(&buf[..n])
                    .map_err(|e| Error::io(&tmp, e))?;
            }
            out.write_all(&buf[..n]).map_err(|e| Error::io(&tmp, e))?;
        }
        if let Some((expected, source)) = digest {
            let (actual, _) = hasher.finish();
            if actual != *expected {
                return Err(Error::DigestMismatch {
                    digest: expected.clone(),
                    source: source.to_string(),
                });
            }
        }
        std::fs::rename(&tmp, target).map_err(|e| Error::io(target, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn pack(layout: &OciLayout, file: &Path) -> Result<(), Error> {
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| invalid(file, "the archive path has no file name"))?;
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let out = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, out));
        let io = |e| Error::io(&tmp, e);
        let layout_file = layout.path().join("oci-layout");
        let layout_bytes = std::fs::read(&layout_file).map_err(|e| Error::io(&layout_file, e))?;
        let mut h = header(tar::EntryType::Regular, 0o644, layout_bytes.len() as u64);
        tar.append_data(&mut h, "oci-layout", layout_bytes.as_slice())
            .map_err(io)?;
        for d in ["blobs/", "blobs/sha256/"] {
            let mut h = header(tar::EntryType::Directory, 0o755, 0);
            tar.append_data(&mut h, d, std::io::empty()).map_err(io)?;
        }
        let blobs = layout.path().join("blobs").join("sha256");
        let mut names: Vec<String> = std::fs::read_dir(&blobs)
            .map_err(|e| Error::io(&blobs, e))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| Digest::parse(&format!("sha256:{n}")).is_ok())
            .collect();
        names.sort();
        for n in names {
            let path = blobs.join(&n);
            let f = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
            let len = f.metadata().map_err(|e| Error::io(&path, e))?.len();
            let mut h = header(tar::EntryType::Regular, 0o644, len);
            tar.append_data(&mut h, format!("blobs/sha256/{n}"), f)
                .map_err(io)?;
        }
        let index = layout.read_index()?.to_bytes();
        let mut h = header(tar::EntryType::Regular, 0o644, index.len() as u64);
        tar.append_data(&mut h, "index.json", index.as_slice())
            .map_err(io)?;
        let out = tar
            .into_inner()
            .map_err(io)?
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        out.sync_all().map_err(io)?;
        std::fs::rename(&tmp, file).map_err(|e| Error::io(file, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[async_trait::async_trait]
impl Store for OciArchive {
    fn describe(&self) -> String {
        format!("oci-archive:{}", self.file.display())
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool, Error> {
        self.layout.has_blob(digest).await
    }

    async fn get_blob(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        self.layout
            .get_blob(digest)
            .await
            .map_err(|e| self.rename(e))
    }

    async fn put_blob(&self, digest: &Digest, data: &[u8]) -> Result<(), Error> {
        self.layout.put_blob(digest, data).await
    }

    async fn get_manifest(&self, reference: &str) -> Result<FetchedManifest, Error> {
        self.layout
            .get_manifest(reference)
            .await
            .map_err(|e| self.rename(e))
    }

    async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<Digest, Error> {
        self.layout.put_manifest(bytes, media_type, tag).await
    }

    async fn list_tags(&self) -> Result<Vec<String>, Error> {
        self.layout.list_tags().await
    }

    async fn get_blob_stream(&self, digest: &Digest) -> Result<BlobStream, Error> {
        use futures::StreamExt;
        let stream = self
            .layout
            .get_blob_stream(digest)
            .await
            .map_err(|e| self.rename(e))?;
        let (inner, outer) = (self.layout.describe(), self.describe());
        Ok(Box::pin(stream.map(move |item| {
            item.map_err(|e| match e {
                Error::DigestMismatch { digest, source } if source == inner => {
                    Error::DigestMismatch {
                        digest,
                        source: outer.clone(),
                    }
                }
                other => other,
            })
        })))
    }

    async fn put_blob_stream(
        &self,
        digest: &Digest,
        size: u64,
        open: OpenBlobStream<'_>,
    ) -> Result<(), Error> {
        self.layout.put_blob_stream(digest, size, open).await
    }
}
