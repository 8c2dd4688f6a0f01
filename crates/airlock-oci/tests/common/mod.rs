//! Shared fixtures of the copy tests: a real registry process and a TCP proxy that misbehaves on purpose.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A registry process started for one test (airlock-testkit's); killed when dropped. `host` is
/// `127.0.0.1:PORT`.
pub use airlock_testkit::Registry;

/// Starts Debian's `docker-registry` on a free loopback port, or `None` (with a note) when it is missing.
pub fn start_registry() -> Option<Registry> {
    Registry::try_start()
}

/// How the proxy treats the first connections it accepts.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answer `HTTP/1.1 <code>` and close.
    Status(u16),
    /// Read the request, then close without answering (a dropped connection).
    Drop,
}

/// A TCP proxy to a registry on loopback: the first connections get `faults` (one each, in order), the
/// rest are forwarded. It records the request lines it forwards so tests can see what the client did.
pub struct Proxy {
    pub host: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    pub faults_left: Arc<Mutex<Vec<Fault>>>,
    /// Connections accepted (TLS attempts included, which no request line shows).
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
}

pub async fn start_proxy(target: &str, faults: Vec<Fault>) -> Proxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let faults_left = Arc::new(Mutex::new(faults.into_iter().rev().collect::<Vec<_>>()));
    let target = target.to_string();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (reqs, left, accepted) = (requests.clone(), faults_left.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let fault = left.lock().unwrap().pop();
            let target = target.clone();
            let reqs = reqs.clone();
            tokio::spawn(async move {
                if let Some(fault) = fault {
                    let mut buf = vec![0u8; 65536];
                    let _ = client.read(&mut buf).await;
                    if let Fault::Status(code) = fault {
                        let answer = format!(
                            "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                        let _ = client.write_all(answer.as_bytes()).await;
                    }
                    return;
                }
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 65536];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        record(&reqs, &buf[..n]);
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    Proxy {
        host,
        requests,
        faults_left,
        connections,
    }
}

/// Notes request lines (`METHOD /v2/...`) seen in a chunk of client bytes.
fn record(reqs: &Mutex<Vec<String>>, chunk: &[u8]) {
    let text = String::from_utf8_lossy(chunk);
    for line in text.split("\r\n") {
        for method in ["GET ", "HEAD ", "PUT ", "POST ", "PATCH "] {
            if line.starts_with(method) && line.contains(" /v2/") && line.ends_with("HTTP/1.1") {
                reqs.lock().unwrap().push(line.to_string());
            }
        }
    }
}

/// skopeo, the independent OCI client: stdout of a successful run, a panic with its stderr otherwise.
pub fn skopeo(args: &[&str]) -> String {
    airlock_testkit::tools::skopeo(args)
}
