//! Requests to a registry (reads, uploads, mounts, manifest pushes) with authentication learned once per
//! store.
//!
//! `oci-client` sends `GET /v2/` before every request when the registry answers it without a challenge (an
//! open registry: nothing to cache), doubling the requests of a poller. Here a request goes out with the
//! `Authorization` header learned so far (none at first); only a `401` with a `WWW-Authenticate` challenge
//! makes the store authenticate (HTTP Basic with the credentials, or a Bearer token from the challenge's
//! realm), after which the request is sent once more and the header is kept for later requests. An expired
//! token therefore costs one `401` and one token request, and an open registry costs nothing at all.

use base64::Engine as _;
use oci_client::errors::{OciDistributionError, OciEnvelope};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};

use crate::registry::RegistryAuth;

/// Largest error or token body read from a registry.
const MAX_SMALL_BODY: u64 = 1 << 20;

/// An HTTP client for one repository of one registry, with the auth header it has learned.
pub(crate) struct RegistryHttp {
    http: reqwest::Client,
    base: String,
    repository: String,
    auth: RegistryAuth,
    /// The header that answered the last challenge (`None`: send none).
    authorization: tokio::sync::RwLock<Option<HeaderValue>>,
    /// Held while a challenge is answered: requests that meet the same challenge together (a copy checks
    /// several blobs at once) then ask for one token, not one each, and a narrower token never replaces
    /// a wider one another request has just got.
    answering: tokio::sync::Mutex<()>,
    /// The tag list of the last read with the registry's `ETag`, for a conditional read next time.
    pub(crate) tags_seen: tokio::sync::Mutex<Option<(String, Vec<String>)>>,
}

impl RegistryHttp {
    /// A client for `repository` at `host`, over plain HTTP when `insecure`.
    pub(crate) fn new(
        host: &str,
        repository: &str,
        auth: RegistryAuth,
        insecure: bool,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .read_timeout(std::time::Duration::from_secs(300))
            .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let scheme = if insecure { "http" } else { "https" };
        // A static bearer token needs no challenge: send it from the start.
        let preset = match &auth {
            RegistryAuth::Bearer(token) => HeaderValue::from_str(&format!("Bearer {token}")).ok(),
            _ => None,
        };
        Ok(RegistryHttp {
            http,
            base: format!("{scheme}://{host}"),
            repository: repository.to_string(),
            auth,
            authorization: tokio::sync::RwLock::new(preset),
            answering: tokio::sync::Mutex::new(()),
            tags_seen: tokio::sync::Mutex::new(None),
        })
    }

    /// The URL of `path` under this repository (`/v2/<repository>/<path>`).
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repository)
    }

    /// Sends `method url` with `headers`, authenticating on a `401` challenge and sending once more. The
    /// response is returned whatever its status, except a `401` that persists after authenticating, which
    /// is an [`OciDistributionError::UnauthorizedError`].
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &HeaderMap,
    ) -> Result<Response, OciDistributionError> {
        self.send_body(method, url, headers, None).await
    }

    /// [`RegistryHttp::send`] with a request body (a manifest, say); `Bytes` so that sending it again after
    /// a challenge copies nothing.
    pub(crate) async fn send_body(
        &self,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: Option<bytes::Bytes>,
    ) -> Result<Response, OciDistributionError> {
        let mut authenticated = false;
        let mut newer_tried = 0;
        loop {
            let sent = self.authorization.read().await.clone();
            let mut request = self
                .http
                .request(method.clone(), url)
                .headers(headers.clone());
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            if let Some(value) = sent.clone() {
                request = request.header(AUTHORIZATION, value);
            }
            let response = request.send().await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match challenge {
                Some(challenge) if !authenticated => {
                    let _answering = self.answering.lock().await;
                    // Another request answered a challenge while this one was out: try its header
                    // first (bounded: headers could keep changing under many concurrent requests).
                    if newer_tried < 2 && *self.authorization.read().await != sent {
                        newer_tried += 1;
                        continue;
                    }
                    let value = self.authenticate(&challenge).await?;
                    *self.authorization.write().await = Some(value);
                    authenticated = true;
                }
                _ => {
                    return Err(OciDistributionError::UnauthorizedError {
                        url: url.to_string(),
                    });
                }
            }
        }
    }

    /// Sends `method url` once with a streamed `body` and the header learned so far. A stream cannot be
    /// sent again, so there is no second try after a challenge: the caller authenticates first with a
    /// request that has no body (opening an upload session does that).
    pub(crate) async fn send_stream(
        &self,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: reqwest::Body,
    ) -> Result<Response, OciDistributionError> {
        let mut request = self
            .http
            .request(method, url)
            .headers(headers.clone())
            .body(body);
        if let Some(value) = self.authorization.read().await.clone() {
            request = request.header(AUTHORIZATION, value);
        }
        let response = request.send().await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(OciDistributionError::UnauthorizedError {
                url: url.to_string(),
            });
        }
        Ok(response)
    }

    /// Where to send a blob's bytes, from the `Location` of an upload session: resolved against this
    /// registry, and refused when it names another origin (the credentials go with the upload).
    pub(crate) fn upload_location(
        &self,
        location: &str,
        digest: &str,
    ) -> Result<reqwest::Url, OciDistributionError> {
        let base = reqwest::Url::parse(&self.url("blobs/uploads/"))
            .map_err(|e| OciDistributionError::UrlParseError(e.to_string()))?;
        let mut url = base
            .join(location)
            .map_err(|e| OciDistributionError::UrlParseError(format!("{location:?}: {e}")))?;
        if url.origin() != base.origin() {
            return Err(OciDistributionError::GenericError(Some(format!(
                "{} sent an upload location on another host ({}); credentials are not sent there",
                self.base,
                url.origin().ascii_serialization()
            ))));
        }
        url.query_pairs_mut().append_pair("digest", digest);
        Ok(url)
    }

    /// The `Authorization` header answering `challenge`.
    async fn authenticate(&self, challenge: &str) -> Result<HeaderValue, OciDistributionError> {
        let (scheme, params) = parse_challenge(challenge);
        let basic = match &self.auth {
            RegistryAuth::Basic(user, password) => Some((user.as_str(), password.as_str())),
            _ => None,
        };
        let header = |text: String| {
            HeaderValue::from_str(&text).map_err(|_| {
                OciDistributionError::AuthenticationFailure(
                    "credentials contain characters not allowed in an HTTP header".to_string(),
                )
            })
        };
        if scheme.eq_ignore_ascii_case("basic") {
            let Some((user, password)) = basic else {
                return Err(OciDistributionError::AuthenticationFailure(format!(
                    "{} asks for a user name and password and none are configured",
                    self.base
                )));
            };
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            return header(format!("Basic {encoded}"));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(OciDistributionError::AuthenticationFailure(format!(
                "{} asks for unsupported authentication scheme {scheme:?}",
                self.base
            )));
        }
        let realm = params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("realm"))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                OciDistributionError::AuthenticationFailure(format!(
                    "{}: Bearer challenge without a realm",
                    self.base
                ))
            })?;
        // A challenge lists its scopes in one space-separated parameter (a mount names two repositories);
        // the token spec wants one `scope` parameter per scope.
        let mut query: Vec<(String, String)> = Vec::new();
        for (key, value) in params {
            if key.eq_ignore_ascii_case("scope") {
                query.extend(
                    value
                        .split_whitespace()
                        .map(|scope| ("scope".to_string(), scope.to_string())),
                );
            } else if key.eq_ignore_ascii_case("service") {
                query.push((key, value));
            }
        }
        if !query.iter().any(|(k, _)| k.eq_ignore_ascii_case("scope")) {
            query.push((
                "scope".to_string(),
                format!("repository:{}:pull", self.repository),
            ));
        }
        let mut request = self.http.get(&realm).query(&query);
        if let Some((user, password)) = basic {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await?;
        let status = response.status();
        let body = small_body(response).await?;
        if !status.is_success() {
            return Err(OciDistributionError::AuthenticationFailure(format!(
                "token request to {realm} answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token: Token = serde_json::from_slice(&body).map_err(|e| {
            OciDistributionError::RegistryTokenDecodeError(format!("token from {realm}: {e}"))
        })?;
        let token = token.token.or(token.access_token).ok_or_else(|| {
            OciDistributionError::RegistryTokenDecodeError(format!("token from {realm}: no token"))
        })?;
        header(format!("Bearer {token}"))
    }
}

/// Reads a body of at most [`MAX_SMALL_BODY`] bytes (error envelopes, tag lists, tokens, manifests are
/// bounded separately by their callers).
pub(crate) async fn small_body(mut response: Response) -> Result<Vec<u8>, OciDistributionError> {
    bounded_body(&mut response, MAX_SMALL_BODY)
        .await?
        .ok_or_else(|| {
            OciDistributionError::GenericError(Some(format!(
                "response body from {} is larger than {MAX_SMALL_BODY} bytes",
                response.url()
            )))
        })
}

/// Reads the body; `None` once it exceeds `limit` bytes (the rest is not read).
pub(crate) async fn bounded_body(
    response: &mut Response,
    limit: u64,
) -> Result<Option<Vec<u8>>, OciDistributionError> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The error for a response that is not a success, in `oci-client`'s terms so that retry and not-found
/// checks treat both clients alike.
pub(crate) async fn status_error(response: Response) -> OciDistributionError {
    let status = response.status();
    let url = response.url().to_string();
    let body = small_body(response).await.unwrap_or_default();
    if status.is_client_error()
        && let Ok(envelope) = serde_json::from_slice::<OciEnvelope>(&body)
    {
        return OciDistributionError::RegistryError { envelope, url };
    }
    OciDistributionError::ServerError {
        code: status.as_u16(),
        url,
        message: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Splits `Bearer realm="https://x/token",service="x",scope="repository:a:pull,push"` into the scheme and
/// its parameters; commas inside quoted values stay in the value.
fn parse_challenge(challenge: &str) -> (String, Vec<(String, String)>) {
    let challenge = challenge.trim();
    let (scheme, rest) = challenge
        .split_once(char::is_whitespace)
        .unwrap_or((challenge, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        params.push((key.trim().to_string(), value.trim().to_string()));
    }
    (scheme.to_string(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_keeps_commas_inside_quotes() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:team/app:pull,push""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(
            params,
            vec![
                ("realm".into(), "https://auth.example/token".into()),
                ("service".into(), "registry.example".into()),
                ("scope".into(), "repository:team/app:pull,push".into()),
            ]
        );
    }

    #[test]
    fn basic_challenge_has_its_realm() {
        let (scheme, params) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(scheme, "Basic");
        assert_eq!(params, vec![("realm".into(), "Registry Realm".into())]);
    }
}
