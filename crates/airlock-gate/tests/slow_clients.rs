//! Slow clients against a real gate on loopback, over raw TCP: a client that trickles its headers is
//! disconnected, one that trickles its body gets 408 and a closed connection, and neither leaves anything
//! behind (no partial source tarball, no run). Meanwhile the gate keeps answering everyone else.
//!
//! The timeouts are set to 1 s (headers) and 2 s (body) so the test is quick; the assertions are on what the
//! client sees (status, closed socket, files), never on how long it took. The 60 s guard only turns a gate that
//! never cuts the client off into a failure instead of a hung test.

use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Gate {
    running: airlock_gate::server::RunningGate,
    token: String,
    dir: tempfile::TempDir,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.running.server.abort();
        self.running.worker.abort();
    }
}

async fn start() -> Gate {
    let dir = tempfile::tempdir().expect("temp dir");
    let init = airlock_gate::init::init_data_dir(dir.path(), None)
        .await
        .expect("init data dir");
    let mut config = init.config;
    config.header_read_timeout_secs = 1;
    config.body_read_timeout_secs = 2;
    let running = airlock_gate::server::start(config)
        .await
        .expect("gate starts");
    Gate {
        running,
        token: init.token,
        dir,
    }
}

/// What the client reads until the gate closes the connection (or the guard gives up: a failure).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read_all)
        .await
        .expect("the gate never closed the slow client's connection");
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends `bytes` one at a time, 200 ms apart, until the gate stops accepting them; returns how many went out.
async fn trickle(stream: &mut TcpStream, bytes: &[u8]) -> usize {
    for (i, b) in bytes.iter().enumerate() {
        if stream.write_all(&[*b]).await.is_err() {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bytes.len()
}

fn files_under(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn healthz(gate: &Gate) -> u16 {
    reqwest::get(format!("http://{}/healthz", gate.running.addr))
        .await
        .expect("healthz answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_headers_is_disconnected() {
    let gate = start().await;
    let mut stream = TcpStream::connect(gate.running.addr)
        .await
        .expect("connect");
    // 60 header bytes at 5 a second would take 12 s; the gate allows 1 s.
    let headers = format!(
        "GET /api/v1/runs HTTP/1.1\r\nHost: gate\r\nAuthorization: Bearer {}\r\n\r\n",
        gate.token
    );
    let trickler = async {
        trickle(&mut stream, headers.as_bytes()).await;
        read_until_closed(&mut stream).await
    };
    let (answer, status) = tokio::join!(trickler, healthz(&gate));
    // Others are served while the slow client waits.
    assert_eq!(status, 200);
    // Cut off before its request was complete: never answered with the runs (at most a 408).
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "the gate answered a request whose headers never finished: {answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_body_gets_408_and_nothing_is_kept() {
    let gate = start().await;
    let mut stream = TcpStream::connect(gate.running.addr)
        .await
        .expect("connect");
    let boundary = "airlockboundary";
    // A multipart submission whose `source` part starts like a gzip tarball, announced as 1 MB: the gate opens
    // the partial file, then the client sends a byte every 200 ms.
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"source\"; filename=\"s.tar.gz\"\r\n\
         Content-Type: application/gzip\r\n\r\n"
    );
    let request = format!(
        "POST /api/v1/submissions HTTP/1.1\r\nHost: gate\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 1000000\r\n\r\n{head}",
        gate.token
    );
    let mut start = request.into_bytes();
    start.extend_from_slice(&[0x1f, 0x8b, 0x08, 0x00]); // gzip magic: the gate opens the partial file
    stream
        .write_all(&start)
        .await
        .expect("send headers and the start of the body");
    let trickler = async {
        trickle(&mut stream, &[0u8; 400]).await;
        read_until_closed(&mut stream).await
    };
    let (answer, status) = tokio::join!(trickler, healthz(&gate));
    assert_eq!(status, 200);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "expected 408 for a body that never arrived, got {answer:?}"
    );
    assert!(
        answer.contains("body_read_timeout_secs") && answer.contains("nothing was stored"),
        "the 408 should say which limit and that nothing was kept: {answer:?}"
    );
    // The connection is closed (read_until_closed returned) and nothing of the upload remains.
    assert_eq!(
        files_under(&gate.dir.path().join("sources")),
        Vec::<String>::new()
    );
    let runs = reqwest::Client::new()
        .get(format!("http://{}/api/v1/runs", gate.running.addr))
        .bearer_auth(&gate.token)
        .send()
        .await
        .expect("runs answers")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(0), "{runs}");
}
