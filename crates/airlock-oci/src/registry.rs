//! A [`Store`] over an OCI distribution registry, through `oci-client`.
//!
//! Everything fetched is verified against its digest here again (whatever the client already checked), and
//! sizes are bounded. Credentials are only handed to the client; they never appear in errors or logs.

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::{Client, Reference};

pub use oci_client::secrets::RegistryAuth;

use crate::store::{BlobStream, MAX_MANIFEST_SIZE, sniff_media_type, validate_tag, verify_stream};
use crate::{Digest, Error, FetchedManifest, Store, media_type, validate_repository};

/// Largest blob read into memory from a registry.
pub const MAX_BLOB_SIZE: u64 = 4 << 30;
/// Most tags listed from one repository.
pub const MAX_TAGS: usize = 100_000;
const TAG_PAGE: usize = 1000;

/// One repository in a registry, e.g. `127.0.0.1:5000` + `team/app`.
pub struct RegistryStore {
    client: Client,
    registry: String,
    repository: String,
    auth: RegistryAuth,
}

impl std::fmt::Debug for RegistryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The auth's own Debug redacts secrets, but leave it out entirely.
        f.debug_struct("RegistryStore")
            .field("registry", &self.registry)
            .field("repository", &self.repository)
            .finish_non_exhaustive()
    }
}

impl RegistryStore {
    /// A store for `repository` at `registry_host` (`host[:port]`, no scheme). With `insecure`, plain HTTP is
    /// used for this host (local test registries); otherwise HTTPS. The repository name is validated.
    pub fn new(
        registry_host: &str,
        repository: &str,
        auth: RegistryAuth,
        insecure: bool,
    ) -> Result<Self, Error> {
        validate_repository(repository)?;
        if registry_host.is_empty()
            || registry_host.contains('/')
            || registry_host.chars().any(char::is_whitespace)
        {
            return Err(Error::Registry {
                store: registry_host.to_string(),
                message: "registry host must be host[:port] without scheme or path".to_string(),
            });
        }
        let protocol = if insecure {
            ClientProtocol::HttpsExcept(vec![registry_host.to_string()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            read_timeout: Some(std::time::Duration::from_secs(300)),
            // One PUT per blob: chunked uploads cost a round trip per chunk and gain nothing for blobs
            // that are already in memory.
            use_monolithic_push: true,
            ..Default::default()
        };
        Ok(RegistryStore {
            client: Client::new(config),
            registry: registry_host.to_string(),
            repository: repository.to_string(),
            auth,
        })
    }

    /// The underlying `oci-client` client (auth for this registry is stored after the first call).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The registry host.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository name.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// An `oci-client` reference to `tag` in this repository.
    pub fn tag_reference(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.registry.clone(),
            self.repository.clone(),
            tag.to_string(),
        )
    }

    /// An `oci-client` reference to `digest` in this repository.
    pub fn digest_reference(&self, digest: &Digest) -> Reference {
        Reference::with_digest(
            self.registry.clone(),
            self.repository.clone(),
            digest.to_string(),
        )
    }

    async fn ensure_auth(&self) {
        self.client
            .store_auth_if_needed(&self.registry, &self.auth)
            .await;
    }

    fn registry_error(&self, err: OciDistributionError) -> Error {
        Error::Registry {
            store: self.describe(),
            message: err.to_string(),
        }
    }

    async fn fetch_blob(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        let reference = self.digest_reference(digest);
        let mut stream = with_retry("pull blob", || {
            self.client.pull_blob_stream(&reference, digest.as_str())
        })
        .await
        .map_err(|e| {
            if is_not_found(&e) {
                Error::BlobNotFound {
                    digest: digest.clone(),
                    store: self.describe(),
                }
            } else {
                self.registry_error(e)
            }
        })?;
        let too_large = || Error::TooLarge {
            what: format!("blob {digest} from {}", self.describe()),
            limit: MAX_BLOB_SIZE,
        };
        if stream.content_length.is_some_and(|n| n > MAX_BLOB_SIZE) {
            return Err(too_large());
        }
        let mut data =
            Vec::with_capacity(stream.content_length.unwrap_or(0).min(64 << 20) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::Registry {
                store: self.describe(),
                message: format!("reading blob {digest}: {e}"),
            })?;
            if (data.len() + chunk.len()) as u64 > MAX_BLOB_SIZE {
                return Err(too_large());
            }
            data.extend_from_slice(&chunk);
        }
        Ok(data)
    }
}

/// Attempts per registry call: the first plus retries after 0.2 s, 0.4 s, 0.8 s, 1.6 s.
pub const MAX_ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);

/// Whether a failed call may succeed when repeated: server errors (5xx), rate limiting (429) and dropped or
/// refused connections. Client errors (4xx) are final.
fn is_transient(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::Toomanyrequests)),
        OciDistributionError::RequestError(e) => match e.status() {
            Some(status) => status.is_server_error() || status.as_u16() == 429,
            None => e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
        },
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

/// Runs `call` until it succeeds, fails with a final error, or [`MAX_ATTEMPTS`] are used, doubling the wait
/// between attempts. Every call retried this way is idempotent: blob uploads are content-addressed and
/// verified by the registry against their digest, and manifests are put whole.
async fn with_retry<T, F, Fut>(what: &str, mut call: F) -> Result<T, OciDistributionError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, OciDistributionError>>,
{
    let mut wait = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if attempt < MAX_ATTEMPTS && is_transient(&e) => {
                tracing::warn!(attempt, error = %e, "{what}: transient registry error, retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn is_not_found(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::BlobUnknown
                    | OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        _ => false,
    }
}

const ACCEPTED_MANIFESTS: &[&str] = &[
    media_type::OCI_MANIFEST,
    media_type::OCI_INDEX,
    media_type::DOCKER_MANIFEST,
    media_type::DOCKER_MANIFEST_LIST,
];

#[async_trait::async_trait]
impl Store for RegistryStore {
    fn describe(&self) -> String {
        format!("docker://{}/{}", self.registry, self.repository)
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool, Error> {
        self.ensure_auth().await;
        let reference = self.digest_reference(digest);
        with_retry("check blob", || {
            self.client.blob_exists(&reference, digest.as_str())
        })
        .await
        .map_err(|e| self.registry_error(e))
    }

    async fn get_blob(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        self.ensure_auth().await;
        // A connection dropped in the middle of the body surfaces while streaming: fetch again.
        let mut attempt = 1;
        loop {
            match self.fetch_blob(digest).await {
                Err(Error::Registry { .. }) if attempt < MAX_ATTEMPTS => {
                    tokio::time::sleep(FIRST_BACKOFF * 2u32.pow(attempt - 1)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
                Ok(data) => {
                    digest.verify(&data, &self.describe())?;
                    return Ok(data);
                }
            }
        }
    }

    async fn get_blob_stream(&self, digest: &Digest) -> Result<BlobStream, Error> {
        self.ensure_auth().await;
        let reference = self.digest_reference(digest);
        let stream = with_retry("pull blob", || {
            self.client.pull_blob_stream(&reference, digest.as_str())
        })
        .await
        .map_err(|e| {
            if is_not_found(&e) {
                Error::BlobNotFound {
                    digest: digest.clone(),
                    store: self.describe(),
                }
            } else {
                self.registry_error(e)
            }
        })?;
        let size = stream.content_length;
        let store = self.describe();
        let what = digest.clone();
        let chunks = stream.map(move |chunk| {
            chunk.map_err(|e| Error::Registry {
                store: store.clone(),
                message: format!("reading blob {what}: {e}"),
            })
        });
        Ok(verify_stream(
            Box::pin(chunks),
            digest.clone(),
            size,
            self.describe(),
        ))
    }

    async fn put_blob_stream(
        &self,
        digest: &Digest,
        size: u64,
        stream: BlobStream,
    ) -> Result<(), Error> {
        if self.has_blob(digest).await? {
            return Ok(());
        }
        // The registry checks the digest before it commits the upload; an error item from the source
        // aborts the request body, so nothing is committed.
        // The source's own error (e.g. a digest mismatch naming blob and source) is kept to be returned
        // as it is, rather than as whatever the HTTP client makes of an aborted body.
        let source_error = std::sync::Arc::new(std::sync::Mutex::new(None));
        let slot = source_error.clone();
        let body = stream.map(move |chunk| {
            chunk.map_err(|e| {
                let message = e.to_string();
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some(e);
                }
                OciDistributionError::GenericError(Some(message))
            })
        });
        let pushed = self
            .client
            .push_blob_stream(
                &self.digest_reference(digest),
                body,
                digest.as_str(),
                Some(size),
            )
            .await;
        if let Some(e) = source_error.lock().ok().and_then(|mut s| s.take()) {
            return Err(e);
        }
        pushed.map_err(|e| self.registry_error(e))?;
        Ok(())
    }

    fn registry_location(&self) -> Option<(String, String)> {
        Some((self.registry.clone(), self.repository.clone()))
    }

    async fn mount_blob(&self, digest: &Digest, from_repository: &str) -> Result<bool, Error> {
        if validate_repository(from_repository).is_err() || from_repository == self.repository {
            return Ok(false);
        }
        self.ensure_auth().await;
        let source = Reference::with_digest(
            self.registry.clone(),
            from_repository.to_string(),
            digest.to_string(),
        );
        // A registry that does not mount answers 202 (an upload session) and the client reports an error:
        // either way the caller falls back to copying the bytes.
        match self
            .client
            .mount_blob(&self.digest_reference(digest), &source, digest.as_str())
            .await
        {
            Ok(()) => Ok(true),
            Err(e) => {
                tracing::debug!(error = %e, %digest, "cross-repository mount not done");
                Ok(false)
            }
        }
    }

    async fn put_blob(&self, digest: &Digest, data: &[u8]) -> Result<(), Error> {
        digest.verify(data, "input")?;
        if self.has_blob(digest).await? {
            return Ok(());
        }
        let reference = self.digest_reference(digest);
        let data = bytes::Bytes::copy_from_slice(data);
        with_retry("push blob", || {
            self.client
                .push_blob(&reference, data.clone(), digest.as_str())
        })
        .await
        .map_err(|e| self.registry_error(e))?;
        Ok(())
    }

    async fn get_manifest(&self, reference: &str) -> Result<FetchedManifest, Error> {
        let expected = Digest::parse(reference).ok();
        let oci_ref = match &expected {
            Some(d) => self.digest_reference(d),
            None => {
                validate_tag(reference)?;
                self.tag_reference(reference)
            }
        };
        self.ensure_auth().await;
        let (bytes, _) = with_retry("pull manifest", || {
            self.client
                .pull_manifest_raw(&oci_ref, &self.auth, ACCEPTED_MANIFESTS)
        })
        .await
        .map_err(|e| {
            if is_not_found(&e) {
                Error::ManifestNotFound {
                    reference: reference.to_string(),
                    store: self.describe(),
                }
            } else {
                self.registry_error(e)
            }
        })?;
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(Error::ManifestTooLarge {
                reference: reference.to_string(),
                size: bytes.len() as u64,
            });
        }
        let digest = Digest::of(&bytes);
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(Error::DigestMismatch {
                digest: expected,
                source: self.describe(),
            });
        }
        let media_type = sniff_media_type(&bytes, reference)?;
        if !media_type::is_known_manifest(&media_type) {
            return Err(Error::UnsupportedMediaType {
                media_type,
                reference: format!("manifest {reference} in {}", self.describe()),
            });
        }
        Ok(FetchedManifest {
            bytes: bytes.to_vec(),
            media_type,
            digest,
        })
    }

    async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<Digest, Error> {
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
        let oci_ref = match tag {
            Some(tag) => {
                validate_tag(tag)?;
                self.tag_reference(tag)
            }
            None => self.digest_reference(&digest),
        };
        let content_type = media_type
            .parse()
            .map_err(|_| Error::UnsupportedMediaType {
                media_type: media_type.to_string(),
                reference: digest.to_string(),
            })?;
        self.ensure_auth().await;
        with_retry("push manifest", || {
            self.client
                .push_manifest_raw(&oci_ref, bytes.to_vec(), Clone::clone(&content_type))
        })
        .await
        .map_err(|e| self.registry_error(e))?;
        Ok(digest)
    }

    async fn list_tags(&self) -> Result<Vec<String>, Error> {
        self.ensure_auth().await;
        let reference = self.tag_reference("latest");
        let mut tags: Vec<String> = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let page = match self
                .client
                .list_tags(&reference, &self.auth, Some(TAG_PAGE), last.as_deref())
                .await
            {
                Ok(page) => page,
                // A repository nothing was pushed to yet has no tags.
                Err(e) if is_not_found(&e) => break,
                Err(e) => return Err(self.registry_error(e)),
            };
            let n = page.tags.len();
            tags.extend(page.tags);
            if tags.len() > MAX_TAGS {
                return Err(Error::TooLarge {
                    what: format!("number of tags in {}", self.describe()),
                    limit: MAX_TAGS as u64,
                });
            }
            if n < TAG_PAGE {
                break;
            }
            let next = tags.last().cloned();
            if next == last {
                break;
            }
            last = next;
        }
        tags.sort();
        tags.dedup();
        Ok(tags)
    }
}
