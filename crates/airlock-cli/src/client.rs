//! A typed client for the gate's HTTP API.
//!
//! Every call sends the team token as a bearer token, limits the size of what
//! it reads back, and turns a 4xx/5xx answer into [`ClientError::Api`]
//! carrying the gate's own sentence, so the CLI can print it as it is.

use crate::api::{ApiError, RunList, RunView, SubmissionAccepted};
use crate::pack::PackedSource;
use std::time::Duration;

/// Most bytes read from any one answer of the gate.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Pause between two polls in [`GateClient::wait`].
const POLL_INTERVAL: Duration = Duration::from_millis(300);
/// Consecutive failed polls tolerated by [`GateClient::wait`] (a gate restart).
const MAX_POLL_FAILURES: u32 = 20;
/// Longest accepted run identifier.
const MAX_RUN_ID_LEN: usize = 128;

/// What a submission says about its source, besides the tarball.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitMeta {
    /// Repository the source came from (URL or name).
    pub repository: String,
    /// Commit id of the source.
    pub commit: String,
    /// Branch of the source.
    pub branch: String,
    /// Who submits.
    pub author: String,
    /// App name, when it should override the descriptor's.
    pub app: Option<String>,
    /// Commit time in unix seconds, for reproducible builds.
    pub commit_time: Option<i64>,
}

/// Why a call to the gate failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not an http(s) URL.
    #[error("gate URL {url:?} is not valid: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A run id that could not be a run id (and would change the request path).
    #[error(
        "{id:?} is not a run id: run ids are letters, digits, '-', '_' and '.', as `airlock runs` shows them"
    )]
    InvalidRunId {
        /// The id given.
        id: String,
    },
    /// No answer: connection refused, DNS, TLS or timeout.
    #[error("the gate is unreachable at {url}: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What the HTTP stack reported.
        reason: String,
    },
    /// The gate answered with an error and said why.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The gate's machine code, e.g. `unauthorized`.
        code: String,
        /// The gate's sentence.
        message: String,
    },
    /// The gate answered something this client does not understand.
    #[error("unexpected answer from {url} (HTTP {status}): {detail}")]
    UnexpectedResponse {
        /// The URL called.
        url: String,
        /// HTTP status.
        status: u16,
        /// What was wrong with the answer.
        detail: String,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
}

impl ClientError {
    /// The gate's machine code when the gate answered with an error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Client of one gate, authenticated with one token.
#[derive(Debug, Clone)]
pub struct GateClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl GateClient {
    /// A client for the gate at `base_url` (e.g. `http://127.0.0.1:8080`),
    /// sending `token` as `Authorization: Bearer`.
    pub fn new(base_url: &str, token: &str) -> Result<Self, ClientError> {
        let base = base_url.trim().trim_end_matches('/').to_string();
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .ok_or_else(|| ClientError::InvalidUrl {
                url: base_url.to_string(),
                reason: "it must start with http:// or https://".into(),
            })?;
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(ClientError::InvalidUrl {
                url: base_url.to_string(),
                reason: "it has no host, or contains spaces".into(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("airlock-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(GateClient {
            base,
            token: token.to_string(),
            http,
        })
    }

    /// The gate's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Uploads a packed source tree; the gate stores it and queues a run.
    pub async fn submit(
        &self,
        source: &PackedSource,
        meta: &SubmitMeta,
    ) -> Result<SubmissionAccepted, ClientError> {
        let url = format!("{}/api/v1/submissions", self.base);
        let part = reqwest::multipart::Part::bytes(source.tarball.clone())
            .file_name("source.tar.gz")
            .mime_str("application/gzip")
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let mut form = reqwest::multipart::Form::new()
            .text("repository", meta.repository.clone())
            .text("commit", meta.commit.clone())
            .text("branch", meta.branch.clone())
            .text("author", meta.author.clone());
        if let Some(app) = &meta.app {
            form = form.text("app", app.clone());
        }
        if let Some(time) = meta.commit_time {
            form = form.text("commit_time", time.to_string());
        }
        form = form.part("source", part);
        let request = self.http.post(&url).multipart(form);
        self.send_json(&url, request).await
    }

    /// One run, as the gate sees it now.
    pub async fn run(&self, id: &str) -> Result<RunView, ClientError> {
        let url = format!("{}/api/v1/runs/{}", self.base, check_run_id(id)?);
        self.send_json(&url, self.http.get(&url)).await
    }

    /// Recent runs, optionally of one app only.
    pub async fn runs(&self, app: Option<&str>) -> Result<Vec<RunView>, ClientError> {
        let mut url = format!("{}/api/v1/runs", self.base);
        if let Some(app) = app {
            url.push_str("?app=");
            url.push_str(&percent_encode(app));
        }
        let list: RunList = self.send_json(&url, self.http.get(&url)).await?;
        Ok(list.runs)
    }

    /// Asks the gate to cancel a run, then returns the run as it is after.
    pub async fn cancel(&self, id: &str) -> Result<RunView, ClientError> {
        let id = check_run_id(id)?;
        let url = format!("{}/api/v1/runs/{id}/cancel", self.base);
        let body = self.send(&url, self.http.post(&url)).await?;
        match serde_json::from_slice::<RunView>(&body) {
            Ok(view) => Ok(view),
            Err(_) => self.run(id).await,
        }
    }

    /// Polls a run every 300 ms until it reaches a terminal state, calling
    /// `on_change` with each new version (and the first one). A few failed
    /// polls in a row are tolerated, so a gate restart does not end the wait.
    pub async fn wait(
        &self,
        id: &str,
        mut on_change: impl FnMut(&RunView),
    ) -> Result<RunView, ClientError> {
        let mut last: Option<RunView> = None;
        let mut failures = 0u32;
        loop {
            match self.run(id).await {
                Ok(view) => {
                    failures = 0;
                    if last.as_ref() != Some(&view) {
                        on_change(&view);
                    }
                    if view.state.is_terminal() {
                        return Ok(view);
                    }
                    last = Some(view);
                }
                Err(err @ ClientError::Unreachable { .. }) => {
                    failures += 1;
                    if failures >= MAX_POLL_FAILURES {
                        return Err(err);
                    }
                }
                Err(err) => return Err(err),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Follows a run's server-sent events (`GET /api/v1/runs/{id}/events`), calling `on_event(name, data)` for
    /// each event, until the gate closes the stream after the run's `end` event. Returns the run as the `end`
    /// event carried it.
    pub async fn events(
        &self,
        id: &str,
        mut on_event: impl FnMut(&str, &str),
    ) -> Result<RunView, ClientError> {
        let id = check_run_id(id)?;
        let url = format!("{}/api/v1/runs/{id}/events", self.base);
        let mut response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            // A run may take longer than the client's default timeout; the stream ends with the run.
            .timeout(Duration::from_secs(24 * 3600))
            .send()
            .await
            .map_err(|e| unreachable(&url, &e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body = read_limited(&url, status, &mut response).await?;
            return Err(answer_error(&url, status, &body));
        }
        let mut parser = SseParser::default();
        let mut end: Option<RunView> = None;
        while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(&url, &e))? {
            for (event, data) in parser.push(&chunk) {
                if event == "end" {
                    end = serde_json::from_str(&data).ok();
                }
                on_event(&event, &data);
            }
        }
        end.ok_or_else(|| ClientError::UnexpectedResponse {
            url,
            status,
            detail: "the event stream closed before the run ended".into(),
        })
    }

    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let body = self.send(url, request).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::UnexpectedResponse {
            url: url.to_string(),
            status: 200,
            detail: format!("the JSON does not match the API: {e}"),
        })
    }

    /// Sends a request and returns the body of a 2xx answer.
    async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, ClientError> {
        let mut response = request
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| unreachable(url, &e))?;
        let status = response.status().as_u16();
        let body = read_limited(url, status, &mut response).await?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(answer_error(url, status, &body))
    }
}

/// The error for a non-2xx answer: the gate's JSON error when the body is one, else a snippet of the body.
fn answer_error(url: &str, status: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ApiError>(body) {
        Ok(api) => ClientError::Api {
            status,
            code: api.code,
            message: api.error,
        },
        Err(_) => ClientError::UnexpectedResponse {
            url: url.to_string(),
            status,
            detail: snippet(body),
        },
    }
}

/// Splits a `text/event-stream` body into (event, data) pairs as chunks arrive (the WHATWG format: `event:` and
/// `data:` lines, a blank line ends an event, lines starting with `:` are comments).
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: Vec<String>,
}

impl SseParser {
    /// Feeds bytes; returns the events they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() || !self.event.is_empty() {
                    let event = if self.event.is_empty() {
                        "message".to_string()
                    } else {
                        std::mem::take(&mut self.event)
                    };
                    out.push((event, std::mem::take(&mut self.data).join("\n")));
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = value.to_string(),
                "data" => self.data.push(value.to_string()),
                _ => {}
            }
        }
        out
    }
}

fn unreachable(url: &str, err: &reqwest::Error) -> ClientError {
    // reqwest's Display hides the cause ("error sending request"); walk the chain.
    let mut reason = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        reason.push_str(": ");
        reason.push_str(&inner.to_string());
        source = inner.source();
    }
    ClientError::Unreachable {
        url: url.to_string(),
        reason,
    }
}

async fn read_limited(
    url: &str,
    status: u16,
    response: &mut reqwest::Response,
) -> Result<Vec<u8>, ClientError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(url, &e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ClientError::UnexpectedResponse {
                url: url.to_string(),
                status,
                detail: format!("the answer is over {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first 200 characters of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "empty body".into();
    }
    text.chars().take(200).collect()
}

/// Checks that `id` can go into a URL path unchanged.
fn check_run_id(id: &str) -> Result<&str, ClientError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_RUN_ID_LEN
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(id)
    } else {
        Err(ClientError::InvalidRunId { id: id.to_string() })
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_sent_events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: step\ndata: {\"a\"").is_empty());
        let got =
            p.push(b":1}\n\n: keep-alive\n\ndata: x\ndata: y\n\nevent: end\r\ndata: {}\r\n\r\n");
        assert_eq!(
            got,
            vec![
                ("step".to_string(), "{\"a\":1}".to_string()),
                ("message".to_string(), "x\ny".to_string()),
                ("end".to_string(), "{}".to_string()),
            ]
        );
    }

    #[test]
    fn rejects_base_url_without_scheme() {
        let err = GateClient::new("gate.example:8080", "t").unwrap_err();
        assert!(err.to_string().contains("http://"), "{err}");
        assert!(GateClient::new("http://127.0.0.1:8080/", "t").is_ok());
    }

    #[test]
    fn trims_trailing_slash_from_base_url() {
        let client = GateClient::new("https://gate.example/", "t").unwrap();
        assert_eq!(client.base_url(), "https://gate.example");
    }

    #[test]
    fn rejects_run_id_with_path_characters() {
        for bad in ["", "..", "a/b", "a?b", "a b", "%2e"] {
            assert!(check_run_id(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_run_id("01J9Z-abc_1.2").is_ok());
    }

    #[test]
    fn percent_encodes_app_names() {
        assert_eq!(percent_encode("my app&x=1"), "my%20app%26x%3D1");
        assert_eq!(percent_encode("hello-web"), "hello-web");
    }

    #[tokio::test]
    async fn reports_unreachable_gate_with_its_url() {
        // Bind then drop a listener so the port is closed.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let client = GateClient::new(&url, "t").unwrap();
        let err = client.run("r1").await.unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains(&url), "{err}");
    }
}
