//! The `Store` trait: anything that holds blobs and manifests by digest (an OCI layout, a registry).

use std::pin::Pin;

use futures::{Stream, StreamExt};

use crate::{Digest, DigestWriter, Error};

/// A blob as a stream of chunks, so large layers move without being held in memory.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<bytes::Bytes, Error>> + Send>>;

/// A blob's bytes, opened when awaited. A store that writes a blob prepares its side first (a registry
/// opens its upload session) and only then opens the bytes, so a source is not held open meanwhile and a
/// copy can bound how many blobs move at once (see `copy_blobs`).
pub type OpenBlobStream<'a> =
    Pin<Box<dyn std::future::Future<Output = Result<BlobStream, Error>> + Send + 'a>>;

/// Wraps `stream` so that it hashes what passes and, at its end, yields [`Error::DigestMismatch`] (naming
/// `digest` and `source`) or [`Error::SizeMismatch`] instead of ending normally when the bytes are not the
/// blob. The last chunk is held back until the check passed: a consumer that stops reading once it has all
/// the bytes it expects (an HTTP body with a known length) still never sends the whole of a wrong blob.
pub fn verify_stream(
    stream: BlobStream,
    digest: Digest,
    size: Option<u64>,
    source: String,
) -> BlobStream {
    use std::io::Write as _;
    struct State {
        stream: BlobStream,
        hasher: Option<DigestWriter>,
        pending: Option<bytes::Bytes>,
        digest: Digest,
        size: Option<u64>,
        source: String,
    }
    let state = State {
        stream,
        hasher: Some(DigestWriter::new()),
        pending: None,
        digest,
        size,
        source,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            let hasher = st.hasher.as_mut()?;
            match st.stream.next().await {
                Some(Ok(chunk)) => {
                    let _ = hasher.write_all(&chunk);
                    if let Some(previous) = st.pending.replace(chunk) {
                        return Some((Ok(previous), st));
                    }
                }
                Some(Err(e)) => {
                    st.hasher = None;
                    return Some((Err(e), st));
                }
                None => {
                    let (actual, len) = st.hasher.take()?.finish();
                    if actual != st.digest {
                        let err = Error::DigestMismatch {
                            digest: st.digest.clone(),
                            source: st.source.clone(),
                        };
                        return Some((Err(err), st));
                    }
                    if let Some(size) = st.size.filter(|&s| s != len) {
                        let err = Error::SizeMismatch {
                            digest: st.digest.clone(),
                            expected: size,
                            actual: len,
                        };
                        return Some((Err(err), st));
                    }
                    return st.pending.take().map(|last| (Ok(last), st));
                }
            }
        }
    }))
}

/// Largest manifest accepted, as in the OCI distribution spec (4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// The checks every store makes before storing manifest `bytes` (to be tagged `tag`, if any): at most
/// [`MAX_MANIFEST_SIZE`] and JSON. Returns their digest.
pub(crate) fn check_manifest_to_put(bytes: &[u8], tag: Option<&str>) -> Result<Digest, Error> {
    let digest = Digest::of(bytes);
    if bytes.len() as u64 > MAX_MANIFEST_SIZE {
        return Err(Error::ManifestTooLarge {
            reference: tag.map_or_else(|| digest.to_string(), str::to_string),
            size: bytes.len() as u64,
        });
    }
    serde_json::from_slice::<serde_json::Value>(bytes).map_err(|source| Error::Json {
        what: format!("manifest {digest}"),
        source,
    })?;
    Ok(digest)
}

/// A manifest as fetched: its exact bytes (so the digest stays valid), media type and digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The manifest bytes, unchanged.
    pub bytes: Vec<u8>,
    /// Its media type (from the store, or from the manifest's `mediaType` field).
    pub media_type: String,
    /// SHA-256 of `bytes`.
    pub digest: Digest,
}

/// A content-addressed store of blobs and manifests. Both sides of the boundary use the same code for an
/// OCI layout directory and a registry through this trait. Everything read is verified against its digest.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// A human-readable name, e.g. `oci:/data/boundary/hello`, used in error messages.
    fn describe(&self) -> String;
    /// Whether the store holds the blob.
    async fn has_blob(&self, digest: &Digest) -> Result<bool, Error>;
    /// Reads a blob; always verified ([`Error::DigestMismatch`] names the digest and the store).
    async fn get_blob(&self, digest: &Digest) -> Result<Vec<u8>, Error>;
    /// Stores a blob after checking it hashes to `digest`; atomic and idempotent.
    async fn put_blob(&self, digest: &Digest, data: &[u8]) -> Result<(), Error>;
    /// Reads a manifest by tag or `sha256:..` digest; verified; larger than 4 MiB is refused.
    async fn get_manifest(&self, reference: &str) -> Result<FetchedManifest, Error>;
    /// Stores manifest bytes unchanged, optionally under `tag`; returns their digest.
    async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<Digest, Error>;
    /// All tags, sorted.
    async fn list_tags(&self) -> Result<Vec<String>, Error>;

    /// Streams a blob. The bytes are verified by the time the stream ends: a mismatch is the stream's last
    /// item (see [`verify_stream`]). The default reads the whole blob with [`Store::get_blob`].
    async fn get_blob_stream(&self, digest: &Digest) -> Result<BlobStream, Error> {
        let data = self.get_blob(digest).await?;
        Ok(Box::pin(futures::stream::once(async move {
            Ok(bytes::Bytes::from(data))
        })))
    }

    /// Stores a blob of `size` bytes from the stream `open` gives; nothing is stored unless the stream ends
    /// cleanly and the bytes hash to `digest`. The default collects the stream (up to `size` bytes) and
    /// calls [`Store::put_blob`].
    async fn put_blob_stream(
        &self,
        digest: &Digest,
        size: u64,
        open: OpenBlobStream<'_>,
    ) -> Result<(), Error> {
        let mut stream = open.await?;
        let mut data = Vec::with_capacity(size.min(64 << 20) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if (data.len() + chunk.len()) as u64 > size {
                return Err(Error::SizeMismatch {
                    digest: digest.clone(),
                    expected: size,
                    actual: (data.len() + chunk.len()) as u64,
                });
            }
            data.extend_from_slice(&chunk);
        }
        self.put_blob(digest, &data).await
    }

    /// For a registry repository, `(host, repository)`; lets a copy between two repositories of the same
    /// registry mount blobs instead of moving their bytes. Other stores answer `None`.
    fn registry_location(&self) -> Option<(String, String)> {
        None
    }

    /// Asks the store to take `digest` from `from_repository` of the same registry without an upload.
    /// `Ok(false)` means "not done" (not supported or refused); the caller then copies the bytes.
    async fn mount_blob(&self, _digest: &Digest, _from_repository: &str) -> Result<bool, Error> {
        Ok(false)
    }
}

/// Checks a tag against the OCI distribution rule `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), Error> {
    let mut bytes = tag.bytes();
    let ok = match bytes.next() {
        Some(first) => {
            (first.is_ascii_alphanumeric() || first == b'_')
                && tag.len() <= 128
                && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidTag(tag.to_string()))
    }
}

/// Works out a manifest's media type from its `mediaType` field, or from its shape when the field is absent.
pub fn sniff_media_type(bytes: &[u8], reference: &str) -> Result<String, Error> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what: format!("manifest {reference}"),
        source,
    })?;
    match probe {
        Probe {
            media_type: Some(mt),
            ..
        } => Ok(mt),
        Probe {
            manifests: Some(_), ..
        } => Ok(crate::media_type::OCI_INDEX.to_string()),
        Probe {
            config: Some(_), ..
        } => Ok(crate::media_type::OCI_MANIFEST.to_string()),
        _ => Err(Error::UnsupportedMediaType {
            media_type: String::new(),
            reference: reference.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_tags_and_rejects_bad_ones() {
        for good in ["latest", "v1.2.3", "_x", "sha256-abc.sig", &"a".repeat(128)] {
            validate_tag(good).unwrap();
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "../x", &"a".repeat(129)] {
            assert!(
                matches!(validate_tag(bad), Err(Error::InvalidTag(t)) if t == bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn sniffs_media_type_from_shape_when_field_absent() {
        assert_eq!(
            sniff_media_type(br#"{"manifests":[]}"#, "x").unwrap(),
            crate::media_type::OCI_INDEX
        );
        assert_eq!(
            sniff_media_type(br#"{"config":{}}"#, "x").unwrap(),
            crate::media_type::OCI_MANIFEST
        );
        assert_eq!(
            sniff_media_type(br#"{"mediaType":"a/b"}"#, "x").unwrap(),
            "a/b"
        );
        assert!(sniff_media_type(b"not json", "x").is_err());
    }
}
