//! The rendered Kubernetes manifests of one environment as a reproducible tar.gz (same files, same bytes),
//! and reading such a tar back with limits on size, count and paths.

use std::collections::BTreeMap;
use std::io::Read;

use airlock_oci::{Compression, LayerBuilder, media_type, normalize_path};

use crate::SignError;

/// Most files one environment's bundle may hold.
pub const MAX_FILES: usize = 1000;
/// Most uncompressed bytes one environment's bundle may hold.
pub const MAX_BUNDLE_BYTES: u64 = 16 * 1024 * 1024;

/// Writes `files` (name → YAML) as a deterministic tar.gz: sorted, mtime 0, root-owned, mode 0644.
/// Names must be relative paths without `..`; `env` names the bundle in errors.
pub fn pack(env: &str, files: &BTreeMap<String, String>) -> Result<Vec<u8>, SignError> {
    if files.len() > MAX_FILES {
        return Err(SignError::invalid(
            format!("manifests of environment {env}"),
            format!("{} files, more than the {MAX_FILES} allowed", files.len()),
        ));
    }
    let mut builder = LayerBuilder::new(0);
    for (name, yaml) in files {
        let norm = normalize_path(name)?;
        if norm != *name {
            return Err(SignError::invalid(
                format!("manifest file name {name:?} of environment {env}"),
                format!("must be written in normal form ({norm:?})"),
            ));
        }
        builder.add_file(name, 0o644, 0, 0, yaml.as_bytes().to_vec())?;
    }
    Ok(builder.finish(Compression::Gzip)?.data)
}

/// Reads a bundle written by [`pack`] (or any tar.gz of regular files): name → UTF-8 text. Directories are
/// skipped; links, devices, unsafe paths, non-UTF-8 files and bundles over the limits are errors naming
/// `what` and the entry.
pub fn unpack(what: &str, data: &[u8]) -> Result<BTreeMap<String, String>, SignError> {
    let reader = airlock_oci::uncompressed_reader(media_type::OCI_LAYER_GZIP, data)?;
    // Tar headers add 512 bytes per entry and padding; allow for them on top of the content limit.
    let limit = MAX_BUNDLE_BYTES + (MAX_FILES as u64 + 2) * 1024;
    let mut archive = tar::Archive::new(reader.take(limit));
    let io_err = |e: std::io::Error| SignError::invalid(what, format!("unreadable tar.gz: {e}"));
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(SignError::invalid(
                what,
                format!("entry {raw_path:?} is not a regular file"),
            ));
        }
        let name = normalize_path(&raw_path)?;
        if files.len() >= MAX_FILES {
            return Err(SignError::invalid(
                what,
                format!("more than {MAX_FILES} files"),
            ));
        }
        total = total.saturating_add(entry.size());
        if total > MAX_BUNDLE_BYTES {
            return Err(SignError::invalid(
                what,
                format!("more than {MAX_BUNDLE_BYTES} bytes of files"),
            ));
        }
        let mut text = String::new();
        entry
            .read_to_string(&mut text)
            .map_err(|e| SignError::invalid(what, format!("entry {raw_path:?}: {e}")))?;
        files.insert(name, text);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "deployment.yaml".to_string(),
                "kind: Deployment\n".to_string(),
            ),
            ("service.yaml".to_string(), "kind: Service\n".to_string()),
        ])
    }

    #[test]
    fn same_files_give_the_same_bytes() {
        assert_eq!(
            pack("staging", &sample()).unwrap(),
            pack("staging", &sample()).unwrap()
        );
    }

    #[test]
    fn pack_and_unpack_round_trip() {
        let data = pack("staging", &sample()).unwrap();
        assert_eq!(unpack("staging", &data).unwrap(), sample());
    }

    #[test]
    fn rejects_file_name_with_dotdot() {
        let files = BTreeMap::from([("../evil.yaml".to_string(), String::new())]);
        assert!(pack("staging", &files).is_err());
    }

    #[test]
    fn rejects_symlink_entries_on_read() {
        let mut builder = LayerBuilder::new(0);
        builder.add_symlink("link.yaml", "/etc/passwd").unwrap();
        let data = builder.finish(Compression::Gzip).unwrap().data;
        let err = unpack("env prod", &data).unwrap_err();
        assert!(err.to_string().contains("link.yaml"), "{err}");
    }
}
