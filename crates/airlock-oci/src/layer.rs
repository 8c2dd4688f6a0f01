//! Deterministic layer tars: the same entries always give the same bytes, and so the same digest.
//!
//! Entries are kept in a map sorted by path and every tar header is written by hand (fixed mtime, no user or
//! group names, explicit mode/uid/gid), parents are created implicitly, and the gzip header carries mtime 0.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use crate::{Descriptor, Digest, Error, media_type};

/// How a layer's tar is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar ([`media_type::OCI_LAYER_TAR`]).
    None,
    /// gzip ([`media_type::OCI_LAYER_GZIP`]), the most widely read.
    Gzip,
    /// zstd ([`media_type::OCI_LAYER_ZSTD`]).
    Zstd,
}

impl Compression {
    /// The OCI media type of a layer compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => media_type::OCI_LAYER_TAR,
            Compression::Gzip => media_type::OCI_LAYER_GZIP,
            Compression::Zstd => media_type::OCI_LAYER_ZSTD,
        }
    }
}

/// Most bytes of file contents one layer may hold (the layer is built in memory).
pub const MAX_LAYER_BYTES: u64 = 4 << 30;
/// Most entries one layer may hold.
pub const MAX_LAYER_ENTRIES: usize = 1_000_000;
/// Deepest directory nesting [`LayerBuilder::add_tree`] follows.
pub const MAX_TREE_DEPTH: usize = 64;

#[derive(Clone, Debug)]
enum Entry {
    Dir {
        mode: u32,
        uid: u64,
        gid: u64,
    },
    File {
        mode: u32,
        uid: u64,
        gid: u64,
        contents: Vec<u8>,
    },
    Symlink {
        target: String,
    },
}

/// Collects files, directories and symlinks, then writes them as one reproducible layer.
#[derive(Clone, Debug)]
pub struct LayerBuilder {
    mtime: u64,
    entries: BTreeMap<String, Entry>,
    bytes: u64,
}

/// A finished layer: its (possibly compressed) bytes, its descriptor and the digest of the uncompressed tar.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The blob as stored (compressed as asked).
    pub data: Vec<u8>,
    /// Media type by compression, digest and size of `data`.
    pub descriptor: Descriptor,
    /// Digest of the uncompressed tar (goes into the image config's `rootfs.diff_ids`).
    pub diff_id: Digest,
}

/// Normalises a path inside a layer: `/app/x`, `app/x`, `./app/x/` all become `app/x`.
/// `..` components, NUL bytes and paths naming nothing are [`Error::InvalidPath`].
pub fn normalize_path(path: &str) -> Result<String, Error> {
    if path.contains('\0') {
        return Err(Error::path(path, "contains a NUL byte"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(Error::path(path, "contains a '..' component")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(Error::path(path, "is empty or names the root"));
    }
    Ok(parts.join("/"))
}

impl LayerBuilder {
    /// An empty layer whose entries will all carry modification time `mtime` (seconds since the epoch).
    pub fn new(mtime: u64) -> Self {
        LayerBuilder {
            mtime,
            entries: BTreeMap::new(),
            bytes: 0,
        }
    }

    /// Number of entries so far (implicit parents included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a directory. Adding it again (or after it was created implicitly) sets its mode and owner.
    pub fn add_dir(&mut self, path: &str, mode: u32, uid: u64, gid: u64) -> Result<(), Error> {
        let norm = normalize_path(path)?;
        self.insert(
            path,
            norm,
            Entry::Dir {
                mode: mode & 0o7777,
                uid,
                gid,
            },
        )
    }

    /// Adds a regular file with `contents`. A later add of the same path replaces it.
    pub fn add_file(
        &mut self,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        contents: Vec<u8>,
    ) -> Result<(), Error> {
        let norm = normalize_path(path)?;
        let size = contents.len() as u64;
        if self.bytes.saturating_add(size) > MAX_LAYER_BYTES {
            return Err(Error::TooLarge {
                what: format!("layer content at {path:?}"),
                limit: MAX_LAYER_BYTES,
            });
        }
        self.insert(
            path,
            norm,
            Entry::File {
                mode: mode & 0o7777,
                uid,
                gid,
                contents,
            },
        )?;
        self.bytes += size;
        Ok(())
    }

    /// Adds a symbolic link at `path` pointing to `target` (kept verbatim; it may be relative or absolute).
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<(), Error> {
        let norm = normalize_path(path)?;
        if target.is_empty() || target.contains('\0') {
            return Err(Error::path(path, "symlink target is empty or contains NUL"));
        }
        self.insert(
            path,
            norm,
            Entry::Symlink {
                target: target.to_string(),
            },
        )
    }

    /// Adds a host directory tree under `prefix` (sorted walk, modes normalised to 0755 for dirs and
    /// executables, 0644 otherwise; symlinks kept as symlinks; fifos, devices and sockets are an error naming
    /// the path). `prefix` may be empty or `/` to add the tree's contents at the layer root.
    pub fn add_tree(
        &mut self,
        host_dir: &Path,
        prefix: &str,
        uid: u64,
        gid: u64,
    ) -> Result<(), Error> {
        let meta = std::fs::symlink_metadata(host_dir).map_err(|e| Error::io(host_dir, e))?;
        if !meta.is_dir() {
            return Err(Error::io(
                host_dir,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        let prefix = match normalize_path(prefix) {
            Ok(p) => {
                self.add_dir(&p, 0o755, uid, gid)?;
                p
            }
            Err(_)
                if prefix.split('/').all(|p| p.is_empty() || p == ".")
                    && !prefix.contains('\0') =>
            {
                String::new()
            }
            Err(e) => return Err(e),
        };
        self.walk(host_dir, &prefix, uid, gid, 0)
    }

    fn walk(
        &mut self,
        dir: &Path,
        prefix: &str,
        uid: u64,
        gid: u64,
        depth: usize,
    ) -> Result<(), Error> {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        if depth > MAX_TREE_DEPTH {
            return Err(Error::path(
                &dir.display().to_string(),
                format!("directory nesting deeper than {MAX_TREE_DEPTH}"),
            ));
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            names.push(entry.file_name());
        }
        names.sort();
        for name in names {
            let host = dir.join(&name);
            let Some(name) = name.to_str() else {
                return Err(Error::path(
                    &host.display().to_string(),
                    "file name is not UTF-8",
                ));
            };
            let inner = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            let meta = std::fs::symlink_metadata(&host).map_err(|e| Error::io(&host, e))?;
            let ft = meta.file_type();
            if ft.is_symlink() {
                let target = std::fs::read_link(&host).map_err(|e| Error::io(&host, e))?;
                let Some(target) = target.to_str() else {
                    return Err(Error::path(
                        &host.display().to_string(),
                        "symlink target is not UTF-8",
                    ));
                };
                self.add_symlink(&inner, target)?;
            } else if ft.is_dir() {
                self.add_dir(&inner, 0o755, uid, gid)?;
                self.walk(&host, &inner, uid, gid, depth + 1)?;
            } else if ft.is_file() {
                if self.bytes.saturating_add(meta.len()) > MAX_LAYER_BYTES {
                    return Err(Error::TooLarge {
                        what: format!("layer content at {}", host.display()),
                        limit: MAX_LAYER_BYTES,
                    });
                }
                let contents = std::fs::read(&host).map_err(|e| Error::io(&host, e))?;
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                self.add_file(&inner, mode, uid, gid, contents)?;
            } else {
                let kind = if ft.is_fifo() {
                    "a fifo"
                } else if ft.is_socket() {
                    "a socket"
                } else if ft.is_block_device() || ft.is_char_device() {
                    "a device"
                } else {
                    "not a file, directory or symlink"
                };
                return Err(Error::path(
                    &host.display().to_string(),
                    format!("is {kind}; layers hold only files, directories and symlinks"),
                ));
            }
        }
        Ok(())
    }

    fn insert(&mut self, given: &str, norm: String, entry: Entry) -> Result<(), Error> {
        // Every parent must be (or become) a directory.
        let mut parent = String::new();
        let parts: Vec<&str> = norm.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            match self.entries.get(&parent) {
                Some(Entry::Dir { .. }) => {}
                Some(_) => {
                    return Err(Error::path(
                        given,
                        format!("parent {parent:?} is already a file or symlink in this layer"),
                    ));
                }
                None => {
                    self.check_count()?;
                    self.entries.insert(
                        parent.clone(),
                        Entry::Dir {
                            mode: 0o755,
                            uid: 0,
                            gid: 0,
                        },
                    );
                }
            }
        }
        match (self.entries.get(&norm), &entry) {
            (Some(Entry::Dir { .. }), Entry::Dir { .. }) => {}
            (Some(Entry::Dir { .. }), _) => {
                let prefix = format!("{norm}/");
                if self
                    .entries
                    .range(prefix.clone()..)
                    .next()
                    .is_some_and(|(k, _)| k.starts_with(&prefix))
                {
                    return Err(Error::path(
                        given,
                        "is already a non-empty directory in this layer",
                    ));
                }
            }
            (Some(Entry::File { contents, .. }), _) => {
                self.bytes -= contents.len() as u64;
            }
            (Some(Entry::Symlink { .. }), _) => {}
            (None, _) => self.check_count()?,
        }
        self.entries.insert(norm, entry);
        Ok(())
    }

    fn check_count(&self) -> Result<(), Error> {
        if self.entries.len() >= MAX_LAYER_ENTRIES {
            return Err(Error::TooLarge {
                what: "number of layer entries".to_string(),
                limit: MAX_LAYER_ENTRIES as u64,
            });
        }
        Ok(())
    }

    /// Writes the uncompressed tar (entries in path order, two zero blocks at the end).
    pub fn to_tar(&self) -> Result<Vec<u8>, Error> {
        let tar_err = |path: &str, e: std::io::Error| Error::io(format!("<layer>/{path}"), e);
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_ustar();
            header.set_mtime(self.mtime);
            match entry {
                Entry::Dir { mode, uid, gid, .. } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_uid(*uid);
                    header.set_gid(*gid);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, format!("{path}/"), std::io::empty())
                        .map_err(|e| tar_err(path, e))?;
                }
                Entry::File {
                    mode,
                    uid,
                    gid,
                    contents,
                } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_uid(*uid);
                    header.set_gid(*gid);
                    header.set_size(contents.len() as u64);
                    builder
                        .append_data(&mut header, path, contents.as_slice())
                        .map_err(|e| tar_err(path, e))?;
                }
                Entry::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_uid(0);
                    header.set_gid(0);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, path, target)
                        .map_err(|e| tar_err(path, e))?;
                }
            }
        }
        builder.into_inner().map_err(|e| tar_err("", e))
    }

    /// Writes the layer, compressed as asked.
    pub fn finish(self, compression: Compression) -> Result<Layer, Error> {
        let tar = self.to_tar()?;
        let diff_id = Digest::of(&tar);
        let data = compress(tar, compression)?;
        let descriptor = Descriptor::for_bytes(compression.media_type(), &data);
        Ok(Layer {
            data,
            descriptor,
            diff_id,
        })
    }
}

/// Compresses a tar deterministically (gzip header mtime 0, fixed levels).
pub fn compress(tar: Vec<u8>, compression: Compression) -> Result<Vec<u8>, Error> {
    let io = |e| Error::io("<layer>", e);
    match compression {
        Compression::None => Ok(tar),
        Compression::Gzip => {
            let mut enc = flate2::GzBuilder::new()
                .mtime(0)
                .write(Vec::new(), flate2::Compression::default());
            enc.write_all(&tar).map_err(io)?;
            enc.finish().map_err(io)
        }
        Compression::Zstd => zstd::encode_all(tar.as_slice(), 3).map_err(io),
    }
}

/// A reader over the uncompressed tar of a layer blob of `media_type` (OCI or Docker; plain, gzip or zstd).
pub fn uncompressed_reader<'a>(
    media_type: &str,
    data: &'a [u8],
) -> Result<Box<dyn Read + 'a>, Error> {
    let base = media_type
        .replace(".nondistributable", "")
        .replace(".foreign", "");
    match base.as_str() {
        media_type::OCI_LAYER_TAR | media_type::DOCKER_LAYER_TAR => Ok(Box::new(data)),
        media_type::OCI_LAYER_GZIP | media_type::DOCKER_LAYER_GZIP => {
            Ok(Box::new(flate2::read::MultiGzDecoder::new(data)))
        }
        media_type::OCI_LAYER_ZSTD => Ok(Box::new(
            zstd::stream::read::Decoder::new(data).map_err(|e| Error::io("<zstd layer>", e))?,
        )),
        _ => Err(Error::UnsupportedMediaType {
            media_type: media_type.to_string(),
            reference: format!("layer {}", Digest::of(data)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sample(mtime: u64) -> LayerBuilder {
        let mut b = LayerBuilder::new(mtime);
        b.add_file(
            "/app/bin/server",
            0o755,
            65532,
            65532,
            b"#!/bin/sh\necho hi\n".to_vec(),
        )
        .unwrap();
        b.add_file("app/README", 0o644, 0, 0, b"readme".to_vec())
            .unwrap();
        b.add_dir("/data", 0o700, 65532, 65532).unwrap();
        b.add_symlink("/app/current", "bin/server").unwrap();
        let long = format!("deep/{}/file.txt", "d".repeat(150));
        b.add_file(&long, 0o644, 0, 0, b"long".to_vec()).unwrap();
        b
    }

    fn list_with_tar(data: &[u8], flags: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("layer");
        std::fs::write(&file, data).unwrap();
        let out = Command::new("tar")
            .arg(flags)
            .arg(&file)
            .arg("--numeric-owner")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tar failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn same_inputs_give_byte_identical_layers_twice() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let a = sample(1_700_000_000).finish(c).unwrap();
            let b = sample(1_700_000_000).finish(c).unwrap();
            assert_eq!(a.data, b.data, "{c:?}");
            assert_eq!(a.descriptor, b.descriptor);
            assert_eq!(a.diff_id, b.diff_id);
            assert_eq!(a.descriptor.media_type, c.media_type());
        }
    }

    #[test]
    fn insertion_order_does_not_change_the_layer() {
        let mut a = LayerBuilder::new(0);
        a.add_file("b", 0o644, 0, 0, b"b".to_vec()).unwrap();
        a.add_file("a/x", 0o644, 0, 0, b"x".to_vec()).unwrap();
        let mut b = LayerBuilder::new(0);
        b.add_file("a/x", 0o644, 0, 0, b"x".to_vec()).unwrap();
        b.add_file("b", 0o644, 0, 0, b"b".to_vec()).unwrap();
        assert_eq!(
            a.finish(Compression::Gzip).unwrap().descriptor.digest,
            b.finish(Compression::Gzip).unwrap().descriptor.digest
        );
    }

    #[test]
    fn different_mtime_gives_a_different_layer() {
        let a = sample(1).finish(Compression::None).unwrap();
        let b = sample(2).finish(Compression::None).unwrap();
        assert_ne!(a.diff_id, b.diff_id);
    }

    #[test]
    fn gnu_tar_reads_our_layer_with_modes_owners_links_and_long_names() {
        let layer = sample(1_700_000_000).finish(Compression::Gzip).unwrap();
        let listing = list_with_tar(&layer.data, "-tvzf");
        let lines: Vec<&str> = listing.lines().collect();
        let long = format!("deep/{}/file.txt", "d".repeat(150));
        let names: Vec<&str> = lines
            .iter()
            .map(|l| l.split_whitespace().nth(5).unwrap())
            .collect();
        assert_eq!(
            names,
            vec![
                "app/",
                "app/README",
                "app/bin/",
                "app/bin/server",
                "app/current",
                "data/",
                "deep/",
                &format!("deep/{}/", "d".repeat(150)),
                &long,
            ]
        );
        let line = |name: &str| {
            lines
                .iter()
                .find(|l| l.split_whitespace().nth(5) == Some(name))
                .unwrap_or_else(|| panic!("{name} missing from {listing}"))
                .to_string()
        };
        assert!(
            line("app/bin/server").starts_with("-rwxr-xr-x 65532/65532"),
            "{listing}"
        );
        assert!(
            line("app/README").starts_with("-rw-r--r-- 0/0"),
            "{listing}"
        );
        assert!(
            line("data/").starts_with("drwx------ 65532/65532"),
            "{listing}"
        );
        assert!(
            line("app/current").contains("app/current -> bin/server"),
            "{listing}"
        );
        assert!(
            line("app/current").starts_with("lrwxrwxrwx 0/0"),
            "{listing}"
        );
        assert!(line("app/").starts_with("drwxr-xr-x 0/0"), "{listing}");
        assert!(
            listing.contains("2023-11-14"),
            "mtime not applied: {listing}"
        );

        // And the content extracts intact, from the zstd variant too.
        let zst = sample(1_700_000_000).finish(Compression::Zstd).unwrap();
        let mut tar_bytes = Vec::new();
        uncompressed_reader(media_type::OCI_LAYER_ZSTD, &zst.data)
            .unwrap()
            .read_to_end(&mut tar_bytes)
            .unwrap();
        assert_eq!(Digest::of(&tar_bytes), zst.diff_id);
        assert_eq!(zst.diff_id, layer.diff_id);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("l.tar"), &tar_bytes).unwrap();
        let st = Command::new("tar")
            .args(["-xf", "l.tar"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(std::fs::read(dir.path().join(&long)).unwrap(), b"long");
    }

    #[test]
    fn diff_id_is_digest_of_uncompressed_tar() {
        let layer = sample(5).finish(Compression::Gzip).unwrap();
        let mut plain = Vec::new();
        uncompressed_reader(media_type::DOCKER_LAYER_GZIP, &layer.data)
            .unwrap()
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(Digest::of(&plain), layer.diff_id);
        assert_eq!(layer.descriptor.digest, Digest::of(&layer.data));
        assert_eq!(layer.descriptor.size, layer.data.len() as u64);
    }

    #[test]
    fn gzip_header_has_zero_mtime() {
        let layer = sample(1_700_000_000).finish(Compression::Gzip).unwrap();
        assert_eq!(&layer.data[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn rejects_path_with_dotdot_nul_or_nothing() {
        let mut b = LayerBuilder::new(0);
        for bad in [
            "../etc/passwd",
            "/app/../../x",
            "a/..",
            "",
            "/",
            "./",
            "a\0b",
        ] {
            match b.add_file(bad, 0o644, 0, 0, Vec::new()) {
                Err(Error::InvalidPath { path, .. }) => assert_eq!(path, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        assert!(b.add_symlink("../x", "y").is_err());
        assert!(b.add_dir("x/../../y", 0o755, 0, 0).is_err());
        assert!(b.is_empty());
    }

    #[test]
    fn slash_prefixed_and_relative_paths_are_the_same_entry() {
        let mut b = LayerBuilder::new(0);
        b.add_file("/app/x", 0o644, 0, 0, b"1".to_vec()).unwrap();
        b.add_file("app/x", 0o644, 0, 0, b"2".to_vec()).unwrap();
        b.add_file("./app//x", 0o644, 0, 0, b"3".to_vec()).unwrap();
        assert_eq!(b.len(), 2); // app/ and app/x
        let tar = b.to_tar().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut contents = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_str() == Some("app/x") {
                e.read_to_end(&mut contents).unwrap();
            }
        }
        assert_eq!(contents, b"3");
    }

    #[test]
    fn rejects_file_below_a_file() {
        let mut b = LayerBuilder::new(0);
        b.add_file("a", 0o644, 0, 0, b"x".to_vec()).unwrap();
        let err = b.add_file("a/b", 0o644, 0, 0, Vec::new()).unwrap_err();
        assert!(err.to_string().contains("a/b"), "{err}");
    }

    #[test]
    fn add_tree_normalises_modes_keeps_symlinks_and_walks_sorted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub/inner")).unwrap();
        std::fs::write(root.join("run.sh"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::write(root.join("sub/data.txt"), "data").unwrap();
        std::fs::set_permissions(
            root.join("sub/data.txt"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("sub/data.txt", root.join("link")).unwrap();

        let mut b = LayerBuilder::new(0);
        b.add_tree(root, "/srv/app", 1000, 1000).unwrap();
        let layer = b.clone().finish(Compression::None).unwrap();
        let listing = list_with_tar(&layer.data, "-tvf");
        let line = |name: &str| {
            listing
                .lines()
                .find(|l| l.split_whitespace().nth(5) == Some(name))
                .unwrap_or_else(|| panic!("{name} missing from {listing}"))
                .to_string()
        };
        assert!(line("srv/").starts_with("drwxr-xr-x 0/0"), "{listing}");
        assert!(
            line("srv/app/").starts_with("drwxr-xr-x 1000/1000"),
            "{listing}"
        );
        assert!(
            line("srv/app/run.sh").starts_with("-rwxr-xr-x 1000/1000"),
            "{listing}"
        );
        assert!(
            line("srv/app/sub/data.txt").starts_with("-rw-r--r-- 1000/1000"),
            "{listing}"
        );
        assert!(
            line("srv/app/sub/inner/").starts_with("drwxr-xr-x"),
            "{listing}"
        );
        assert!(
            line("srv/app/link").contains("-> sub/data.txt"),
            "{listing}"
        );

        // The same tree added again gives the same layer.
        let mut again = LayerBuilder::new(0);
        again.add_tree(root, "/srv/app", 1000, 1000).unwrap();
        assert_eq!(
            again.finish(Compression::None).unwrap().diff_id,
            layer.diff_id
        );

        // At the root with an empty prefix.
        let mut top = LayerBuilder::new(0);
        top.add_tree(root, "", 0, 0).unwrap();
        let listing = list_with_tar(&top.finish(Compression::None).unwrap().data, "-tf");
        assert!(listing.lines().any(|l| l == "run.sh"), "{listing}");
    }

    #[test]
    fn add_tree_rejects_a_fifo_naming_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(st.success());
        let mut b = LayerBuilder::new(0);
        let err = b.add_tree(dir.path(), "x", 0, 0).unwrap_err();
        assert!(
            matches!(err, Error::InvalidPath { ref path, .. } if path.ends_with("pipe")),
            "{err}"
        );
        assert!(err.to_string().contains("fifo"), "{err}");
    }

    #[test]
    fn unknown_layer_media_type_is_refused() {
        match uncompressed_reader("application/x-zip", b"abc") {
            Err(Error::UnsupportedMediaType { media_type, .. }) => {
                assert_eq!(media_type, "application/x-zip")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted"),
        }
    }
}
