//! Smoke test of a built image: start it in the Docker Engine with the descriptor's port published on
//! loopback, and require its health path to answer 2xx within the descriptor's start timeout.
//!
//! A release that cannot even start is caught here, before it is scanned, signed and shipped. The container
//! runs with every capability dropped, `no-new-privileges`, a memory and pid limit, and is always removed;
//! its output is returned either way so the run keeps it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use airlock_descriptor::AppDescriptor;
use airlock_oci::Store;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveImageOptionsBuilder};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::BuildError;
use crate::bootstrap::load_into_docker;
use crate::docker::{collect_logs, remove_container};
use crate::host::ERROR_TAIL_CHARS;
use crate::log::tail;

/// Memory limit of the smoke-test container: enough for a service to start, not to hurt the gate.
const SMOKE_MEMORY_BYTES: i64 = 512 * 1024 * 1024;
/// Time one health request may take before it counts as "not answering yet".
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between health requests.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// What the smoke test checks, taken from the descriptor's `[run]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmokeSpec {
    /// Port the app listens on inside the container.
    pub port: u16,
    /// HTTP path that must answer 2xx; `None` means a TCP connect that gets an HTTP answer is enough.
    pub health: Option<String>,
    /// How long the app may take to become healthy.
    pub start_timeout_secs: u64,
}

impl SmokeSpec {
    /// The spec of an app's descriptor.
    pub fn from_descriptor(descriptor: &AppDescriptor) -> Self {
        SmokeSpec {
            port: descriptor.run.port,
            health: descriptor.run.health.clone(),
            start_timeout_secs: descriptor.run.start_timeout_secs,
        }
    }
}

/// A passed smoke test.
#[derive(Debug, Clone, Serialize)]
pub struct SmokeReport {
    /// What was asked, e.g. `GET /healthz on port 8080`.
    pub checked: String,
    /// The HTTP status that passed.
    pub status: u16,
    /// Time from start to the first 2xx.
    pub elapsed_ms: u64,
    /// The container's output (tail-limited).
    #[serde(skip)]
    pub log: String,
}

/// Loads the image `reference` of `store` into the Engine under a temporary name, runs the smoke test on it
/// and removes the container and the temporary name again. A failure is [`BuildError::SmokeFailed`] with
/// the reason and the tail of the container's output.
pub async fn smoke_test_from_store(
    docker: &Docker,
    store: &dyn Store,
    reference: &str,
    app: &str,
    spec: &SmokeSpec,
) -> Result<SmokeReport, BuildError> {
    let image = airlock_oci::read_image(store, reference).await?;
    let name = format!("airlock.local/smoke/{app}:{}", &image.digest.hex()[..16]);
    load_into_docker(docker, store, reference, &name).await?;
    let result = smoke_test(docker, &name, spec).await;
    // The name only existed for this test; layers other images share stay (noprune keeps parents).
    let opts = RemoveImageOptionsBuilder::default().noprune(true).build();
    if let Err(e) = docker.remove_image(&name, Some(opts), None).await {
        tracing::warn!(image = %name, error = %e, "could not remove the smoke-test image name");
    }
    result
}

/// Starts `image` (already in the Engine) with `spec.port` published on 127.0.0.1 and waits for its health
/// path to answer 2xx. The container is removed whatever happens.
pub async fn smoke_test(
    docker: &Docker,
    image: &str,
    spec: &SmokeSpec,
) -> Result<SmokeReport, BuildError> {
    let port_key = format!("{}/tcp", spec.port);
    let mut bindings = HashMap::new();
    bindings.insert(
        port_key.clone(),
        Some(vec![PortBinding {
            host_ip: Some("127.0.0.1".into()),
            host_port: Some(String::new()),
        }]),
    );
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        exposed_ports: Some(vec![port_key.clone()]),
        host_config: Some(HostConfig {
            port_bindings: Some(bindings),
            memory: Some(SMOKE_MEMORY_BYTES),
            memory_swap: Some(SMOKE_MEMORY_BYTES),
            pids_limit: Some(512),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let created = docker
        .create_container(Some(CreateContainerOptionsBuilder::default().build()), body)
        .await
        .map_err(|e| {
            BuildError::docker(format!("creating a smoke-test container of {image}"), e)
        })?;
    let id = created.id;
    let result = probe(docker, &id, spec, &port_key).await;
    let log = collect_logs(docker, &id, "the container log").await;
    remove_container(docker, &id, "smoke-test").await;
    match result {
        Ok((checked, status, elapsed)) => Ok(SmokeReport {
            checked,
            status,
            elapsed_ms: elapsed.as_millis() as u64,
            log,
        }),
        Err(reason) => Err(BuildError::SmokeFailed {
            reason,
            log_tail: tail(&log, ERROR_TAIL_CHARS),
        }),
    }
}

/// Starts the container and probes until 2xx, exit, or timeout; `Err` is the sentence for the run.
async fn probe(
    docker: &Docker,
    id: &str,
    spec: &SmokeSpec,
    port_key: &str,
) -> Result<(String, u16, Duration), String> {
    let path = spec.health.as_deref().unwrap_or("/");
    let checked = format!("GET {path} on port {}", spec.port);
    docker
        .start_container(id, None)
        .await
        .map_err(|e| format!("the image did not start: {e}"))?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(spec.start_timeout_secs);
    let inspect = docker
        .inspect_container(id, None)
        .await
        .map_err(|e| format!("inspecting the smoke-test container: {e}"))?;
    let host_port = inspect
        .network_settings
        .and_then(|n| n.ports)
        .and_then(|ports| ports.get(port_key).cloned().flatten())
        .and_then(|b| b.into_iter().find_map(|b| b.host_port))
        .and_then(|p| p.parse::<u16>().ok());
    let Some(host_port) = host_port else {
        // Port assignment happens at start; no port usually means the process exited at once.
        let state = exit_state(docker, id).await;
        return Err(format!(
            "{checked}: the Docker Engine published no host port for {port_key}{state}"
        ));
    };
    loop {
        let last = match http_status(host_port, path).await {
            Ok(status) if (200..300).contains(&status) => {
                return Ok((checked, status, started.elapsed()));
            }
            Ok(status) => format!("last answer was HTTP {status}"),
            Err(e) => format!("last attempt: {e}"),
        };
        let state = exit_state(docker, id).await;
        if !state.is_empty() {
            return Err(format!(
                "{checked}: the app stopped before it was healthy{state}"
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{checked}: no 2xx within the start timeout of {} s ({last})",
                spec.start_timeout_secs
            ));
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// `""` while the container runs, else `" (exited with code N)"`.
async fn exit_state(docker: &Docker, id: &str) -> String {
    match docker.inspect_container(id, None).await {
        Ok(inspect) => match inspect.state {
            Some(state) if state.running != Some(true) => format!(
                " (exited with code {}{})",
                state.exit_code.unwrap_or(-1),
                if state.oom_killed == Some(true) {
                    ", killed for using too much memory"
                } else {
                    ""
                }
            ),
            _ => String::new(),
        },
        Err(e) => format!(" (cannot inspect the container: {e})"),
    }
}

/// One `GET path` to 127.0.0.1:port; the status code of the answer.
async fn http_status(port: u16, path: &str) -> Result<u16, String> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while !buf.contains(&b'\n') && buf.len() < 4096 {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("reading the answer: {e}"))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        parse_status_line(&buf)
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .map_err(|_| format!("no answer within {} s", PROBE_TIMEOUT.as_secs()))?
}

/// The status code of `HTTP/1.x NNN ...`.
fn parse_status_line(buf: &[u8]) -> Result<u16, String> {
    if buf.is_empty() {
        return Err("connection closed without an answer".into());
    }
    let line = String::from_utf8_lossy(buf);
    let line = line.lines().next().unwrap_or("");
    let mut words = line.split_whitespace();
    match (
        words.next(),
        words.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(format!(
            "answer is not HTTP: {:?}",
            line.chars().take(80).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 204 No Content\r\n"), Ok(204));
        assert_eq!(parse_status_line(b"HTTP/1.0 503 x\r\n\r\n"), Ok(503));
        assert!(parse_status_line(b"").unwrap_err().contains("closed"));
        assert!(
            parse_status_line(b"SSH-2.0-OpenSSH\r\n")
                .unwrap_err()
                .contains("not HTTP")
        );
    }
}
