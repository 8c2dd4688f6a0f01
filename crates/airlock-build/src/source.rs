//! Source tarballs: the hostile-input boundary of the gate.
//!
//! A submitted tarball is untrusted. [`unpack_tarball`] writes it into a fresh directory and refuses anything
//! that could write outside that directory (absolute paths, `..`, symlinks or hard links that point out, paths
//! that go through a symlink), anything that is not a plain file, directory or link (devices, fifos), and
//! anything too big (total size, entry count, single file size, compression ratio of a zip bomb). On any error
//! the destination directory is removed so nothing half-written is left behind.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::error::SourceError;

/// Limits applied while unpacking a source tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Upper bound on the decompressed tar stream (headers and contents).
    pub max_total_bytes: u64,
    /// Upper bound on the number of entries in the archive.
    pub max_entries: u64,
    /// Upper bound on one file's size.
    pub max_file_bytes: u64,
    /// Upper bound on decompressed/compressed bytes, checked once more than [`RATIO_GRACE_BYTES`] were
    /// decompressed (small tars are mostly zero padding and compress extremely well).
    pub max_ratio: u64,
}

/// Decompressed bytes read before the compression ratio limit is enforced.
pub const RATIO_GRACE_BYTES: u64 = 1024 * 1024;

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_total_bytes: 512 * 1024 * 1024,
            max_entries: 100_000,
            max_file_bytes: 256 * 1024 * 1024,
            max_ratio: 200,
        }
    }
}

/// What an unpack produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnpackStats {
    /// Regular files (including hard links) written.
    pub files: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Unpacks a gzip-compressed tar stream into `dest`, which must not exist or be empty.
///
/// Every entry is checked before anything is written for it; the first offending entry stops the unpack, the
/// error names it and the reason, and `dest` is removed. Ownership, timestamps and special mode bits from the
/// archive are ignored: files become 0644, or 0755 when any execute bit was set; directories 0755.
pub fn unpack_tarball(
    gz: impl Read,
    dest: &Path,
    limits: &UnpackLimits,
) -> Result<UnpackStats, SourceError> {
    prepare_dest(dest)?;
    let result = unpack_inner(gz, dest, limits);
    if result.is_err() {
        let _ = fs::remove_dir_all(dest);
    }
    result
}

/// Creates `dest`, or accepts it when it is an existing empty directory.
pub(crate) fn prepare_dest(dest: &Path) -> Result<(), SourceError> {
    match fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(SourceError::DestNotEmpty {
                    path: dest.to_path_buf(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dest).map_err(|source| SourceError::Io {
                path: dest.to_path_buf(),
                source,
            })
        }
        Err(source) => Err(SourceError::Io {
            path: dest.to_path_buf(),
            source,
        }),
    }
}

/// Which limit a [`LimitedReader`] hit; carried through `io::Error` back to the unpack loop.
#[derive(Debug)]
struct LimitHit(String);

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LimitHit {}

/// Counts the compressed bytes pulled from the submitter.
struct CountingReader<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Enforces the total size and compression ratio limits on the decompressed stream.
struct LimitedReader<R> {
    inner: R,
    compressed: Option<std::rc::Rc<std::cell::Cell<u64>>>,
    total: u64,
    max_total: u64,
    max_ratio: u64,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        if self.total > self.max_total {
            return Err(io::Error::other(LimitHit(format!(
                "decompressed size exceeds {} bytes",
                self.max_total
            ))));
        }
        let compressed = self
            .compressed
            .as_ref()
            .map(|c| c.get().max(1))
            .unwrap_or(1);
        if self.compressed.is_some()
            && self.total > RATIO_GRACE_BYTES
            && self.total / compressed > self.max_ratio
        {
            return Err(io::Error::other(LimitHit(format!(
                "compression ratio above {} ({} bytes from {} compressed): looks like a decompression bomb",
                self.max_ratio, self.total, compressed
            ))));
        }
        Ok(n)
    }
}

/// Turns an I/O error from reading the archive into a limit error or a corrupt-archive error.
fn read_error(path: &str, e: io::Error) -> SourceError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|inner| inner as _);
    while let Some(err) = cur {
        if let Some(hit) = err.downcast_ref::<LimitHit>() {
            return SourceError::LimitExceeded {
                path: path.to_string(),
                what: hit.0.clone(),
            };
        }
        cur = err.source();
    }
    SourceError::Corrupt {
        path: path.to_string(),
        source: e,
    }
}

fn unsafe_entry(path: &str, reason: impl Into<String>) -> SourceError {
    SourceError::UnsafeEntry {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Unpacks an uncompressed tar stream (e.g. from the Docker Engine's archive API) with the same checks as
/// [`unpack_tarball`], except the compression ratio.
pub fn unpack_tar(
    tar: impl Read,
    dest: &Path,
    limits: &UnpackLimits,
) -> Result<UnpackStats, SourceError> {
    prepare_dest(dest)?;
    let limited = LimitedReader {
        inner: tar,
        compressed: None,
        total: 0,
        max_total: limits.max_total_bytes,
        max_ratio: limits.max_ratio,
    };
    let result = unpack_entries(limited, dest, limits);
    if result.is_err() {
        let _ = fs::remove_dir_all(dest);
    }
    result
}

fn unpack_inner(
    gz: impl Read,
    dest: &Path,
    limits: &UnpackLimits,
) -> Result<UnpackStats, SourceError> {
    let compressed = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let counting = CountingReader {
        inner: gz,
        count: compressed.clone(),
    };
    let limited = LimitedReader {
        inner: flate2::read::GzDecoder::new(counting),
        compressed: Some(compressed),
        total: 0,
        max_total: limits.max_total_bytes,
        max_ratio: limits.max_ratio,
    };
    unpack_entries(limited, dest, limits)
}

fn unpack_entries(
    reader: impl Read,
    dest: &Path,
    limits: &UnpackLimits,
) -> Result<UnpackStats, SourceError> {
    let mut archive = tar::Archive::new(reader);
    let mut stats = UnpackStats::default();
    let mut count: u64 = 0;
    let mut last_path = String::from("(start of archive)");
    let entries = archive.entries().map_err(|e| read_error(&last_path, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| read_error(&format!("after {last_path}"), e))?;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        last_path = shown.clone();
        count += 1;
        if count > limits.max_entries {
            return Err(SourceError::LimitExceeded {
                path: shown,
                what: format!("more than {} entries", limits.max_entries),
            });
        }
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let rel = safe_relative(&shown).map_err(|reason| unsafe_entry(&shown, reason))?;
        if rel.as_os_str().is_empty() {
            // The archive root itself ("./").
            continue;
        }
        let target = dest.join(&rel);
        check_parents(dest, &rel).map_err(|reason| unsafe_entry(&shown, reason))?;
        if kind.is_dir() {
            create_dir(&target, &shown)?;
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let size = entry.header().size().map_err(|e| read_error(&shown, e))?;
            if size > limits.max_file_bytes {
                return Err(SourceError::LimitExceeded {
                    path: shown,
                    what: format!(
                        "file of {size} bytes is over the {} byte limit",
                        limits.max_file_bytes
                    ),
                });
            }
            let mode = entry.header().mode().unwrap_or(0o644);
            make_parent(&target, &shown)?;
            remove_existing(&target, &shown)?;
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)
                .map_err(|source| SourceError::Io {
                    path: target.clone(),
                    source,
                })?;
            let written = io::copy(&mut (&mut entry).take(size), &mut out).map_err(|e| {
                match read_error(&shown, e) {
                    SourceError::Corrupt { source, .. } => SourceError::Io {
                        path: target.clone(),
                        source,
                    },
                    other => other,
                }
            })?;
            let perm = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
            set_mode(&target, perm)?;
            stats.files += 1;
            stats.bytes += written;
        } else if kind.is_symlink() {
            let link = entry
                .link_name_bytes()
                .ok_or_else(|| unsafe_entry(&shown, "symlink without a target"))?;
            let link = String::from_utf8_lossy(&link).into_owned();
            check_symlink_target(&rel, &link).map_err(|reason| unsafe_entry(&shown, reason))?;
            make_parent(&target, &shown)?;
            remove_existing(&target, &shown)?;
            std::os::unix::fs::symlink(&link, &target).map_err(|source| SourceError::Io {
                path: target.clone(),
                source,
            })?;
        } else if kind.is_hard_link() {
            let link = entry
                .link_name_bytes()
                .ok_or_else(|| unsafe_entry(&shown, "hard link without a target"))?;
            let link = String::from_utf8_lossy(&link).into_owned();
            let link_rel = safe_relative(&link).map_err(|reason| {
                unsafe_entry(&shown, format!("hard link target {link:?}: {reason}"))
            })?;
            check_parents(dest, &link_rel).map_err(|reason| {
                unsafe_entry(&shown, format!("hard link target {link:?}: {reason}"))
            })?;
            let source_path = dest.join(&link_rel);
            let meta = fs::symlink_metadata(&source_path).map_err(|_| {
                unsafe_entry(
                    &shown,
                    format!("hard link target {link:?} is not a file earlier in the archive"),
                )
            })?;
            if !meta.file_type().is_file() {
                return Err(unsafe_entry(
                    &shown,
                    format!("hard link target {link:?} is not a regular file"),
                ));
            }
            make_parent(&target, &shown)?;
            remove_existing(&target, &shown)?;
            fs::hard_link(&source_path, &target).map_err(|source| SourceError::Io {
                path: target.clone(),
                source,
            })?;
            stats.files += 1;
        } else {
            let what = match kind {
                tar::EntryType::Char => "character device",
                tar::EntryType::Block => "block device",
                tar::EntryType::Fifo => "fifo",
                tar::EntryType::GNUSparse => "sparse file",
                _ => "unsupported entry type",
            };
            return Err(unsafe_entry(
                &shown,
                format!("{what} entries are not allowed"),
            ));
        }
    }
    Ok(stats)
}

/// Turns an archive path into a relative path with only normal components, or says why it cannot.
pub(crate) fn safe_relative(path: &str) -> Result<PathBuf, String> {
    if path.contains('\0') {
        return Err("path contains a NUL byte".into());
    }
    let p = Path::new(path);
    let mut out = PathBuf::new();
    for comp in p.components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains `..`".into()),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
        }
    }
    Ok(out)
}

/// Refuses to write through an existing symlink in any parent component of `rel` under `root`.
pub(crate) fn check_parents(root: &Path, rel: &Path) -> Result<(), String> {
    let mut cur = root.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for comp in comps.iter().take(comps.len().saturating_sub(1)) {
        cur.push(comp);
        match fs::symlink_metadata(&cur) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "path goes through the symlink {}",
                    cur.strip_prefix(root).unwrap_or(&cur).display()
                ));
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(format!(
                    "parent {} is not a directory",
                    cur.strip_prefix(root).unwrap_or(&cur).display()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks that a symlink at `rel` with target `link` stays inside the root: relative, with `..` only as
/// leading components (so the result does not depend on what later entries make of the names).
pub(crate) fn check_symlink_target(rel: &Path, link: &str) -> Result<(), String> {
    if link.is_empty() {
        return Err("symlink with an empty target".into());
    }
    if Path::new(link).is_absolute() {
        return Err(format!(
            "symlink target {link:?} is absolute (outside the source tree)"
        ));
    }
    let mut depth: i64 = rel.components().count() as i64 - 1;
    let mut seen_name = false;
    for comp in Path::new(link).components() {
        match comp {
            Component::Normal(_) => {
                depth += 1;
                seen_name = true;
            }
            Component::CurDir => {}
            Component::ParentDir => {
                // `name/..` depends on what `name` is when the link is followed (it may become a symlink).
                if seen_name {
                    return Err(format!("symlink target {link:?} has `..` after a name"));
                }
                depth -= 1;
                if depth < 0 {
                    return Err(format!(
                        "symlink target {link:?} points outside the source tree"
                    ));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "symlink target {link:?} is absolute (outside the source tree)"
                ));
            }
        }
    }
    Ok(())
}

fn create_dir(target: &Path, shown: &str) -> Result<(), SourceError> {
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(unsafe_entry(
                shown,
                "directory replaces a file or symlink of the same name",
            ));
        }
        Err(_) => {}
    }
    fs::create_dir_all(target).map_err(|source| SourceError::Io {
        path: target.to_path_buf(),
        source,
    })?;
    set_mode(target, 0o755)
}

fn make_parent(target: &Path, shown: &str) -> Result<(), SourceError> {
    if let Some(parent) = target.parent() {
        if let Ok(meta) = fs::symlink_metadata(parent) {
            if meta.is_dir() {
                return Ok(());
            }
            return Err(unsafe_entry(shown, "parent is not a directory"));
        }
        fs::create_dir_all(parent).map_err(|source| SourceError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// Later entries replace earlier files/links of the same name (as tar does), never directories.
fn remove_existing(target: &Path, shown: &str) -> Result<(), SourceError> {
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => Err(unsafe_entry(shown, "entry replaces a directory")),
        Ok(_) => fs::remove_file(target).map_err(|source| SourceError::Io {
            path: target.to_path_buf(),
            source,
        }),
        Err(_) => Ok(()),
    }
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), SourceError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    /// Writes a raw tar header (bypassing the tar crate's own path checks, as an attacker would).
    fn raw_entry(out: &mut Vec<u8>, path: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
        let mut header = tar::Header::new_old();
        {
            let bytes = header.as_old_mut();
            bytes.name[..path.len()].copy_from_slice(path.as_bytes());
            bytes.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }

    fn gz(tar: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(tar).unwrap();
        enc.write_all(&[0u8; 1024]).unwrap();
        enc.finish().unwrap()
    }

    fn unpack(
        entries: &[(&str, tar::EntryType, &str, &[u8])],
    ) -> (tempfile::TempDir, PathBuf, Result<UnpackStats, SourceError>) {
        let mut tar = Vec::new();
        for (path, kind, link, data) in entries {
            raw_entry(&mut tar, path, *kind, link, data);
        }
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("src");
        let result = unpack_tarball(&gz(&tar)[..], &dest, &UnpackLimits::default());
        (tmp, dest, result)
    }

    fn refused_entry(result: Result<UnpackStats, SourceError>) -> (String, String) {
        match result {
            Err(SourceError::UnsafeEntry { path, reason }) => (path, reason),
            other => panic!("expected UnsafeEntry, got {other:?}"),
        }
    }

    #[test]
    fn unpacks_plain_files_dirs_and_inside_symlinks() {
        use tar::EntryType as T;
        let (_tmp, dest, result) = unpack(&[
            ("./", T::Directory, "", b""),
            ("app/", T::Directory, "", b""),
            ("app/main.sh", T::Regular, "", b"echo hi\n"),
            ("app/link", T::Symlink, "main.sh", b""),
            ("app/hard", T::Link, "app/main.sh", b""),
        ]);
        let stats = result.unwrap();
        assert_eq!(stats, UnpackStats { files: 2, bytes: 8 });
        assert_eq!(
            fs::read_to_string(dest.join("app/link")).unwrap(),
            "echo hi\n"
        );
        assert_eq!(
            fs::read_to_string(dest.join("app/hard")).unwrap(),
            "echo hi\n"
        );
    }

    #[test]
    fn rejects_path_with_dotdot_and_removes_dest() {
        use tar::EntryType as T;
        let (_tmp, dest, result) = unpack(&[
            ("ok.txt", T::Regular, "", b"fine"),
            ("a/../../evil", T::Regular, "", b"x"),
        ]);
        let (path, reason) = refused_entry(result);
        assert_eq!(path, "a/../../evil");
        assert!(reason.contains(".."), "{reason}");
        assert!(!dest.exists(), "destination must be removed on error");
    }

    #[test]
    fn rejects_absolute_path() {
        let (_tmp, _dest, result) = unpack(&[("/etc/passwd", tar::EntryType::Regular, "", b"x")]);
        let (path, reason) = refused_entry(result);
        assert_eq!(path, "/etc/passwd");
        assert!(reason.contains("absolute"), "{reason}");
    }

    #[test]
    fn rejects_symlink_pointing_outside() {
        use tar::EntryType as T;
        for target in ["../../etc", "/etc/passwd", "a/../../x"] {
            let (_tmp, dest, result) = unpack(&[("sub/link", T::Symlink, target, b"")]);
            let (path, reason) = refused_entry(result);
            assert_eq!(path, "sub/link");
            assert!(reason.contains(target), "{reason}");
            assert!(!dest.exists());
        }
    }

    #[test]
    fn rejects_writing_through_a_symlink() {
        use tar::EntryType as T;
        let (_tmp, _dest, result) = unpack(&[
            ("dir/", T::Directory, "", b""),
            ("link", T::Symlink, "dir", b""),
            ("link/file", T::Regular, "", b"x"),
        ]);
        let (path, reason) = refused_entry(result);
        assert_eq!(path, "link/file");
        assert!(reason.contains("symlink"), "{reason}");
    }

    #[test]
    fn rejects_hardlink_to_outside() {
        let (_tmp, _dest, result) = unpack(&[("h", tar::EntryType::Link, "/etc/shadow", b"")]);
        let (path, reason) = refused_entry(result);
        assert_eq!(path, "h");
        assert!(reason.contains("/etc/shadow"), "{reason}");
    }

    #[test]
    fn rejects_device_and_fifo_entries() {
        for (kind, word) in [
            (tar::EntryType::Char, "character device"),
            (tar::EntryType::Block, "block device"),
            (tar::EntryType::Fifo, "fifo"),
        ] {
            let (_tmp, _dest, result) = unpack(&[("dev/thing", kind, "", b"")]);
            let (path, reason) = refused_entry(result);
            assert_eq!(path, "dev/thing");
            assert!(reason.contains(word), "{reason}");
        }
    }

    #[test]
    fn rejects_decompression_bomb_by_ratio() {
        let zeros = vec![0u8; 20 * 1024 * 1024];
        let mut tar = Vec::new();
        raw_entry(&mut tar, "zeros.bin", tar::EntryType::Regular, "", &zeros);
        let data = gz(&tar);
        assert!(data.len() < 100 * 1024, "test bomb should compress well");
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("src");
        let result = unpack_tarball(&data[..], &dest, &UnpackLimits::default());
        match result {
            Err(SourceError::LimitExceeded { path, what }) => {
                assert_eq!(path, "zeros.bin");
                assert!(what.contains("ratio"), "{what}");
            }
            other => panic!("expected LimitExceeded, got {other:?}"),
        }
        assert!(!dest.exists());
    }

    #[test]
    fn rejects_oversize_total_and_file_and_entry_count() {
        let mut tar = Vec::new();
        for i in 0..5 {
            raw_entry(
                &mut tar,
                &format!("f{i}"),
                tar::EntryType::Regular,
                "",
                &[b'a'; 2000],
            );
        }
        let data = gz(&tar);
        let tmp = tempfile::tempdir().unwrap();
        let cases = [
            (
                UnpackLimits {
                    max_entries: 3,
                    ..UnpackLimits::default()
                },
                "f3",
                "entries",
            ),
            (
                UnpackLimits {
                    max_file_bytes: 1000,
                    ..UnpackLimits::default()
                },
                "f0",
                "limit",
            ),
            (
                UnpackLimits {
                    max_total_bytes: 4000,
                    ..UnpackLimits::default()
                },
                "f1",
                "decompressed size",
            ),
        ];
        for (i, (limits, want_path, want_what)) in cases.into_iter().enumerate() {
            let dest = tmp.path().join(format!("d{i}"));
            match unpack_tarball(&data[..], &dest, &limits) {
                Err(SourceError::LimitExceeded { path, what }) => {
                    assert_eq!(path, want_path, "case {i}: {what}");
                    assert!(what.contains(want_what), "case {i}: {what}");
                }
                other => panic!("case {i}: expected LimitExceeded, got {other:?}"),
            }
            assert!(!dest.exists());
        }
    }

    #[test]
    fn rejects_non_empty_destination_without_touching_it() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("keep"), b"mine").unwrap();
        let result = unpack_tarball(&gz(&[])[..], tmp.path(), &UnpackLimits::default());
        assert!(matches!(result, Err(SourceError::DestNotEmpty { .. })));
        assert_eq!(fs::read(tmp.path().join("keep")).unwrap(), b"mine");
    }

    #[test]
    fn strips_special_mode_bits_and_keeps_executable() {
        let mut tar = Vec::new();
        let mut header = tar::Header::new_gnu();
        header.set_path("run.sh").unwrap();
        header.set_size(3);
        header.set_mode(0o4777);
        header.set_cksum();
        tar.extend_from_slice(header.as_bytes());
        tar.extend_from_slice(b"x\n\n");
        tar.extend(std::iter::repeat_n(0u8, 509));
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("s");
        unpack_tarball(&gz(&tar)[..], &dest, &UnpackLimits::default()).unwrap();
        let mode = fs::metadata(dest.join("run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(mode, 0o755);
    }

    #[test]
    fn reports_corrupt_input() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("s");
        let result = unpack_tarball(&b"definitely not gzip"[..], &dest, &UnpackLimits::default());
        assert!(
            matches!(result, Err(SourceError::Corrupt { .. })),
            "{result:?}"
        );
        assert!(!dest.exists());
    }
}
