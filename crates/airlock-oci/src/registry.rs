//! A [`Store`] over an OCI distribution registry, speaking the distribution API with `oci-client`'s
//! credential and error types.
//!
//! Everything fetched is verified against its digest, and sizes are bounded. Credentials are only put in
//! request headers; they never appear in errors or logs.

use futures::StreamExt;
use oci_client::errors::{OciDistributionError, OciErrorCode};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};

pub use oci_client::secrets::RegistryAuth;

use crate::registry_http::{RegistryHttp, bounded_body, small_body, status_error};
use crate::store::{
    BlobStream, MAX_MANIFEST_SIZE, OpenBlobStream, check_manifest_to_put, sniff_media_type,
    validate_tag, verify_stream,
};
use crate::{Digest, Error, FetchedManifest, Store, media_type, validate_repository};

/// Largest blob read into memory from a registry.
pub const MAX_BLOB_SIZE: u64 = 4 << 30;
/// Most tags listed from one repository.
pub const MAX_TAGS: usize = 100_000;
const TAG_PAGE: usize = 1000;

/// One repository in a registry, e.g. `127.0.0.1:5000` + `team/app`.
pub struct RegistryStore {
    registry: String,
    repository: String,
    /// Every request goes through this client: it authenticates once, on a challenge, where `oci-client`'s
    /// own client pings `/v2/` before every request to an open registry.
    /// (Boxed: the store is a variant of `OpenedStore` and should stay small.)
    http: Box<RegistryHttp>,
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
        let http = RegistryHttp::new(registry_host, repository, auth, insecure).map_err(|e| {
            Error::Registry {
                store: registry_host.to_string(),
                message: format!("cannot create an HTTP client: {e}"),
            }
        })?;
        Ok(RegistryStore {
            registry: registry_host.to_string(),
            repository: repository.to_string(),
            http: Box::new(http),
        })
    }

    /// The registry host.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository name.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    fn registry_error(&self, err: OciDistributionError) -> Error {
        Error::Registry {
            store: self.describe(),
            message: with_root_cause(&err),
        }
    }

    /// Sends `method path` in this repository (with `body`, for a push); anything but a success (or
    /// `304 Not Modified`) is an error in `oci-client`'s terms, so retries and not-found checks are the
    /// same for both clients.
    async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &HeaderMap,
        body: Option<bytes::Bytes>,
    ) -> Result<reqwest::Response, OciDistributionError> {
        let url = self.http.url(path);
        success(self.http.send_body(method, &url, headers, body).await?).await
    }

    /// Opens an upload session for `digest` and returns the URL that commits it when the bytes are `PUT`
    /// there (one request for the whole blob: chunked uploads cost a round trip per chunk).
    async fn begin_upload(&self, digest: &Digest) -> Result<reqwest::Url, OciDistributionError> {
        let response = self
            .request(Method::POST, "blobs/uploads/", &HeaderMap::new(), None)
            .await?;
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                OciDistributionError::GenericError(Some(format!(
                    "{} opened an upload session without a Location",
                    self.describe()
                )))
            })?;
        self.http.upload_location(location, digest.as_str())
    }

    async fn open_blob(&self, digest: &Digest) -> Result<reqwest::Response, Error> {
        let path = format!("blobs/{digest}");
        let none = HeaderMap::new();
        with_retry("pull blob", || {
            self.request(Method::GET, &path, &none, None)
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
        })
    }
}

/// The response if it is a success (or `304 Not Modified`); anything else as an error in `oci-client`'s
/// terms, so retries and not-found checks are the same for every request.
async fn success(response: reqwest::Response) -> Result<reqwest::Response, OciDistributionError> {
    let status = response.status();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        Ok(response)
    } else {
        Err(status_error(response).await)
    }
}

/// `err` followed by its innermost cause when that says something more: the HTTP client's own message
/// ("error sending request for url (…)") leaves out why (connection refused, a certificate, a timeout).
fn with_root_cause(err: &OciDistributionError) -> String {
    let message = err.to_string();
    let mut root: &dyn std::error::Error = err;
    while let Some(source) = root.source() {
        root = source;
    }
    let cause = root.to_string();
    let mut message = if std::ptr::addr_eq(root, err) || message.contains(&cause) {
        message
    } else {
        format!("{message}: {cause}")
    };
    // What a TLS client makes of a plain-HTTP answer.
    if cause.contains("InvalidContentType") {
        message.push_str(" (the registry may serve plain HTTP: list its host as insecure)");
    }
    message
}

/// The headers of a blob upload of `size` bytes.
fn blob_headers(size: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
    headers
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
            None if is_tls_failure(e) => false,
            None => e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
        },
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

/// Whether the TLS handshake failed (a certificate not trusted, a plain-HTTP answer): the TLS layer reports
/// it as an I/O error of kind `InvalidData`, and trying again gives the same answer.
fn is_tls_failure(err: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            let inner = io
                .get_ref()
                .and_then(|i| i.downcast_ref::<std::io::Error>());
            if io.kind() == std::io::ErrorKind::InvalidData
                || inner.is_some_and(|i| i.kind() == std::io::ErrorKind::InvalidData)
            {
                return true;
            }
        }
        next = e.source();
    }
    false
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

/// The manifest media types asked for (the `Accept` header of a manifest read).
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

#[async_trait::async_trait]
impl Store for RegistryStore {
    fn describe(&self) -> String {
        format!("docker://{}/{}", self.registry, self.repository)
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool, Error> {
        let path = format!("blobs/{digest}");
        let none = HeaderMap::new();
        match with_retry("check blob", || {
            self.request(Method::HEAD, &path, &none, None)
        })
        .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(self.registry_error(e)),
        }
    }

    async fn get_blob(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        // Opening the blob retries by itself; a connection dropped in the middle of the body surfaces only
        // while reading it, so that is what is retried here (opening again from the start).
        let mut attempt = 1;
        loop {
            let mut response = self.open_blob(digest).await?;
            match bounded_body(&mut response, MAX_BLOB_SIZE).await {
                Ok(Some(data)) => {
                    digest.verify(&data, &self.describe())?;
                    return Ok(data);
                }
                Ok(None) => {
                    return Err(Error::TooLarge {
                        what: format!("blob {digest} from {}", self.describe()),
                        limit: MAX_BLOB_SIZE,
                    });
                }
                Err(e) if attempt < MAX_ATTEMPTS => {
                    tracing::warn!(attempt, error = %e, %digest, "blob read cut off, reading it again");
                    tokio::time::sleep(FIRST_BACKOFF * 2u32.pow(attempt - 1)).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(Error::Registry {
                        store: self.describe(),
                        message: format!("reading blob {digest}: {e}"),
                    });
                }
            }
        }
    }

    async fn get_blob_stream(&self, digest: &Digest) -> Result<BlobStream, Error> {
        let response = self.open_blob(digest).await?;
        let size = response.content_length();
        if size.is_some_and(|n| n > MAX_BLOB_SIZE) {
            return Err(Error::TooLarge {
                what: format!("blob {digest} from {}", self.describe()),
                limit: MAX_BLOB_SIZE,
            });
        }
        let stream = response.bytes_stream();
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

    /// Uploads the stream without asking first whether the registry has the blob: the one caller, a
    /// copy, has just asked.
    async fn put_blob_stream(
        &self,
        digest: &Digest,
        size: u64,
        open: OpenBlobStream<'_>,
    ) -> Result<(), Error> {
        // Opening the session is retried and authenticates; the bytes go once (a stream cannot be
        // replayed; the copy starts the blob again when this fails). The session is opened before the
        // bytes: a registry may take long to answer while it commits other blobs (fsync), and the source
        // should not wait on that.
        let url = with_retry("push blob", || self.begin_upload(digest))
            .await
            .map_err(|e| self.registry_error(e))?;
        let stream = open.await?;
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
                std::io::Error::other(message)
            })
        });
        let pushed = match self
            .http
            .send_stream(
                Method::PUT,
                url.as_str(),
                &blob_headers(size),
                reqwest::Body::wrap_stream(body),
            )
            .await
        {
            Ok(response) => success(response).await.map(drop),
            Err(e) => Err(e),
        };
        if let Some(e) = source_error.lock().ok().and_then(|mut s| s.take()) {
            return Err(e);
        }
        pushed.map_err(|e| self.registry_error(e))
    }

    fn registry_location(&self) -> Option<(String, String)> {
        Some((self.registry.clone(), self.repository.clone()))
    }

    async fn mount_blob(&self, digest: &Digest, from_repository: &str) -> Result<bool, Error> {
        if validate_repository(from_repository).is_err() || from_repository == self.repository {
            return Ok(false);
        }
        // Through our own client, not `oci-client`: it would ping `/v2/` first on an open registry.
        let url = self.http.url(&format!(
            "blobs/uploads/?mount={digest}&from={from_repository}"
        ));
        let none = HeaderMap::new();
        let response = with_retry("mount blob", || self.http.send(Method::POST, &url, &none)).await;
        // 201: mounted. A registry that does not mount answers 202 (an upload session, left to expire) or
        // an error: either way the caller falls back to copying the bytes.
        match response {
            Ok(r) if r.status() == StatusCode::CREATED => Ok(true),
            Ok(r) => {
                tracing::debug!(status = %r.status(), %digest, "cross-repository mount not done");
                Ok(false)
            }
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
        let data = bytes::Bytes::copy_from_slice(data);
        let headers = blob_headers(data.len() as u64);
        with_retry("push blob", || async {
            let url = self.begin_upload(digest).await?;
            let response = self
                .http
                .send_body(Method::PUT, url.as_str(), &headers, Some(data.clone()))
                .await?;
            success(response).await
        })
        .await
        .map_err(|e| self.registry_error(e))?;
        Ok(())
    }

    async fn get_manifest(&self, reference: &str) -> Result<FetchedManifest, Error> {
        let expected = Digest::parse(reference).ok();
        if expected.is_none() {
            validate_tag(reference)?;
        }
        let path = format!("manifests/{reference}");
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static(ACCEPT_MANIFESTS),
        );
        let not_found = |e: OciDistributionError| {
            if is_not_found(&e) {
                Error::ManifestNotFound {
                    reference: reference.to_string(),
                    store: self.describe(),
                }
            } else {
                self.registry_error(e)
            }
        };
        let mut response = with_retry("pull manifest", || {
            self.request(Method::GET, &path, &headers, None)
        })
        .await
        .map_err(not_found)?;
        let size = response.content_length().unwrap_or(MAX_MANIFEST_SIZE + 1);
        let bytes = bounded_body(&mut response, MAX_MANIFEST_SIZE)
            .await
            .map_err(|e| self.registry_error(e))?
            .ok_or_else(|| Error::ManifestTooLarge {
                reference: reference.to_string(),
                size,
            })?;
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
        let digest = check_manifest_to_put(bytes, tag)?;
        let reference = match tag {
            Some(tag) => {
                validate_tag(tag)?;
                tag.to_string()
            }
            None => digest.to_string(),
        };
        let content_type =
            HeaderValue::from_str(media_type).map_err(|_| Error::UnsupportedMediaType {
                media_type: media_type.to_string(),
                reference: digest.to_string(),
            })?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, content_type);
        let path = format!("manifests/{reference}");
        let body = bytes::Bytes::copy_from_slice(bytes);
        let response = with_retry("push manifest", || {
            self.request(Method::PUT, &path, &headers, Some(body.clone()))
        })
        .await
        .map_err(|e| self.registry_error(e))?;
        // The registry names what it stored: anything but our digest means it changed the bytes.
        if let Some(stored) = response
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            && stored != digest.as_str()
        {
            return Err(Error::DigestMismatch {
                digest,
                source: format!("{} (it stored the manifest as {stored})", self.describe()),
            });
        }
        Ok(digest)
    }

    /// All tags. The first page is read conditionally (`If-None-Match` with the `ETag` of the last read)
    /// when the registry sends an `ETag`, so an unchanged list costs one small `304`; either way one
    /// request per page and no authentication request once the store has authenticated.
    async fn list_tags(&self) -> Result<Vec<String>, Error> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut seen = self.http.tags_seen.lock().await;
        let mut tags: Vec<String> = Vec::new();
        let mut last: Option<String> = None;
        let mut etag = None;
        loop {
            let mut path = format!("tags/list?n={TAG_PAGE}");
            if let Some(last) = &last {
                path.push_str("&last=");
                path.push_str(last);
            }
            let mut headers = HeaderMap::new();
            if last.is_none()
                && let Some((tag, _)) = seen.as_ref()
                && let Ok(value) = HeaderValue::from_str(tag)
            {
                headers.insert(reqwest::header::IF_NONE_MATCH, value);
            }
            let response = match with_retry("list tags", || {
                self.request(Method::GET, &path, &headers, None)
            })
            .await
            {
                Ok(response) => response,
                // A repository nothing was pushed to yet has no tags.
                Err(e) if is_not_found(&e) => break,
                Err(e) => return Err(self.registry_error(e)),
            };
            if response.status() == StatusCode::NOT_MODIFIED
                && let Some((_, cached)) = seen.as_ref()
            {
                return Ok(cached.clone());
            }
            if last.is_none() {
                etag = response
                    .headers()
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
            }
            let body = small_body(response)
                .await
                .map_err(|e| self.registry_error(e))?;
            let page: Page = serde_json::from_slice(&body).map_err(|source| Error::Json {
                what: format!("tag list of {}", self.describe()),
                source,
            })?;
            let page = page.tags.unwrap_or_default();
            let n = page.len();
            tags.extend(page);
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
            // A list of several pages is not kept: its first page's ETag does not cover the others.
            etag = None;
            last = next;
        }
        tags.sort();
        tags.dedup();
        *seen = etag.map(|e| (e, tags.clone()));
        Ok(tags)
    }
}
