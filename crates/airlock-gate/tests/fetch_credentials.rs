//! Fetch credentials per repository, against a real `sshd` (Debian's openssh-server, run as the current user on
//! a free loopback port with its own host key) and the real `airlock-gate serve` binary with debug logging:
//!
//! - a repository mapped with `ssh_key_file` and `ssh_known_hosts` is fetched over ssh with that key (the fetch
//!   step succeeds and names the commit);
//! - the same repository mapped without a key (so ssh offers no key of ours and knows no host key) fails at
//!   fetch;
//! - a repository mapped with an HTTP `fetch_token` fails to fetch (nothing listens) with a message that does not
//!   hold the token;
//! - a repository served over git's smart HTTP protocol (`git http-backend` behind a Python server that demands
//!   HTTP Basic auth, as git hosts do) is fetched with its mapped token, and the same repository mapped with a
//!   wrong token fails at fetch with an authentication error;
//! - neither the private key nor the token appears anywhere in the gate's log, the runs API, the audit export or
//!   the web UI.

use airlock_gate::auth::{generate_token, hash_token, sign_github_body};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const GITHUB_SECRET: &str = "fetch-credentials-hook-secret";
const FETCH_TOKEN: &str = "glpat-fetch-token-must-never-show";
const HTTP_TOKEN: &str = "glpat-http-token-must-never-show";
const WRONG_HTTP_TOKEN: &str = "glpat-wrong-token-must-never-show";
const HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// sshd on 127.0.0.1:`port` accepting `client_pub` for the current user; returns the process and the
/// known_hosts line of its host key.
fn start_sshd(dir: &Path, client_pub: &Path, port: u16) -> (Killed, String) {
    let sshd = Path::new("/usr/sbin/sshd");
    assert!(
        sshd.exists(),
        "/usr/sbin/sshd is missing: run scripts/setup (it installs openssh-server)"
    );
    let host_key = dir.join("host_ed25519");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&host_key));
    let authorized = dir.join("authorized_keys");
    std::fs::copy(client_pub, &authorized).expect("authorized_keys");
    // Privilege separation needs this directory when sshd starts as root.
    let _ = std::fs::create_dir_all("/run/sshd");
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {auth}\nPidFile {pid}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PermitRootLogin prohibit-password\nLogLevel VERBOSE\n",
            host = host_key.display(),
            auth = authorized.display(),
            pid = dir.join("sshd.pid").display(),
        ),
    )
    .expect("sshd_config");
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("sshd.log")).expect("sshd log"),
        ))
        .spawn()
        .expect("sshd starts");
    let pub_key = std::fs::read_to_string(host_key.with_extension("pub")).expect("host key");
    let mut parts = pub_key.split_whitespace();
    let line = format!(
        "[127.0.0.1]:{port} {} {}\n",
        parts.next().expect("key type"),
        parts.next().expect("key")
    );
    (Killed(child), line)
}

/// The smart-HTTP git server of airlock-build's tests serving the bare repositories under `root`, accepting
/// only `oauth2:HTTP_TOKEN`; returns the process and its port. Plain HTTP on loopback: the subject is the
/// token's path through the gate, not TLS (test builds let gix send credentials over http; release builds
/// refuse to).
fn start_git_http(dir: &Path, root: &Path) -> (Killed, u16) {
    assert!(
        Path::new(HTTP_BACKEND).exists(),
        "{HTTP_BACKEND} missing: install Debian's git package"
    );
    let script = dir.join("git_http_server.py");
    std::fs::write(
        &script,
        include_str!("../../airlock-build/tests/git_http_server.py"),
    )
    .expect("write server");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(root)
        .arg(HTTP_BACKEND)
        .arg("oauth2")
        .arg(HTTP_TOKEN)
        .arg(dir.join("git_http_auth.log"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let stdout = child.stdout.take().expect("piped stdout");
    let child = Killed(child);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("server prints its port");
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("server port, got {line:?}"));
    (child, port)
}

/// A bare repository holding one commit whose airlock.toml names app `hello` of team `payments` and a stack
/// that does not exist, so the run stops at build right after the fetch this test is about.
fn bare_repo(dir: &Path) -> (PathBuf, String) {
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::write(
        work.join("airlock.toml"),
        "[app]\nname = \"hello\"\nteam = \"payments\"\n\n[build]\nmode = \"standard\"\nstack = \"no-such-stack\"\n\
         command = \"true\"\nartifacts = [{ from = \"airlock.toml\", to = \"/app/airlock.toml\" }]\n\n\
         [run]\ncommand = [\"/app/x\"]\nport = 8080\n",
    )
    .expect("write");
    let git = |args: &[&str], cwd: &Path| {
        run(Command::new("git")
            .args(args)
            .current_dir(cwd)
            .env("GIT_AUTHOR_NAME", "Dev")
            .env("GIT_AUTHOR_EMAIL", "dev@example.com")
            .env("GIT_COMMITTER_NAME", "Dev")
            .env("GIT_COMMITTER_EMAIL", "dev@example.com"))
    };
    git(&["init", "-q", "-b", "main"], &work);
    git(&["add", "-A"], &work);
    git(&["commit", "-q", "-m", "hello"], &work);
    let commit = git(&["rev-parse", "HEAD"], &work);
    let bare = dir.join("hello.git");
    git(
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().expect("utf-8"),
            bare.to_str().expect("utf-8"),
        ],
        dir,
    );
    (bare, commit)
}

async fn push(url: &str, delivery: &str, full_name: &str, commit: &str) -> Value {
    let body = serde_json::json!({
        "ref": "refs/heads/main", "after": commit,
        "repository": { "clone_url": format!("https://git.example/{full_name}.git"), "full_name": full_name },
        "pusher": { "name": "dev" }
    })
    .to_string();
    let resp = reqwest::Client::new()
        .post(format!("{url}/api/v1/hooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header(
            "x-hub-signature-256",
            sign_github_body(GITHUB_SECRET, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("webhook answers");
    assert_eq!(resp.status(), 202);
    resp.json().await.expect("json")
}

/// Polls the run until it has ended (the guard turns a run that never ends into a failure, not a hang).
async fn finished_run(url: &str, token: &str, id: &str) -> Value {
    for _ in 0..600 {
        let view: Value = reqwest::Client::new()
            .get(format!("{url}/api/v1/runs/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("run answers")
            .json()
            .await
            .expect("json");
        if ["published", "rejected", "failed", "cancelled"]
            .contains(&view["state"].as_str().unwrap_or(""))
        {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("run {id} did not finish");
}

/// The run fetched `commit` and then stopped at build (the unknown stack).
fn assert_fetched_then_stopped_at_build(view: &Value, commit: &str) {
    assert_eq!(step(view, "fetch")["state"], "succeeded", "{view:#}");
    assert!(
        step(view, "fetch")["detail"]
            .as_str()
            .unwrap_or("")
            .contains(&commit[..12]),
        "{view:#}"
    );
    assert_eq!(view["error"]["step"], "build", "{view:#}");
}

fn step<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_keys_and_tokens_fetch_per_repository_and_never_show() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (bare, commit) = bare_repo(dir.path());
    let client_key = dir.path().join("client_ed25519");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "airlock-test", "-f"])
        .arg(&client_key));
    let port = free_port();
    let (_sshd, known_line) = start_sshd(dir.path(), &client_key.with_extension("pub"), port);
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, &known_line).expect("known_hosts");
    let user = run(Command::new("id").arg("-un"));
    let ssh_url = format!("ssh://{user}@127.0.0.1:{port}{}", bare.display());
    let (_git_http, http_port) = start_git_http(dir.path(), bare.parent().expect("parent"));
    let http_url = format!("http://127.0.0.1:{http_port}/hello.git");
    // The same repository under a second name, for the mapping with the wrong token.
    std::os::unix::fs::symlink(&bare, dir.path().join("hello-wrong.git")).expect("symlink");
    let http_wrong_url = format!("http://127.0.0.1:{http_port}/hello-wrong.git");

    // The gate: embedded defaults plus three mappings of the same ssh repository or an HTTP one.
    let data = dir.path().join("data");
    let init = airlock_gate::init::init_data_dir(&data, None)
        .await
        .expect("init");
    let operator = generate_token();
    let mut config_text = std::fs::read_to_string(&init.config_path).expect("gate.toml");
    config_text.push_str(&format!(
        r#"
[[teams]]
name = "platform"
role = "admin"
token_hashes = ["{op}"]

[webhooks]
github_secret = "{GITHUB_SECRET}"

[[webhooks.repositories]]
repository = "acme/hello"
app = "hello"
team = "payments"
clone_url = "{ssh_url}"
ssh_key_file = {key:?}
ssh_known_hosts = {known:?}

[[webhooks.repositories]]
repository = "acme/hello-nokey"
app = "hello"
team = "payments"
clone_url = "{ssh_url}?nokey"

[[webhooks.repositories]]
repository = "acme/private"
app = "private"
team = "payments"
clone_url = "http://127.0.0.1:9/acme/private.git"
fetch_token = "{FETCH_TOKEN}"

[[webhooks.repositories]]
repository = "acme/hello-http"
app = "hello"
team = "payments"
clone_url = "{http_url}"
fetch_token = "{HTTP_TOKEN}"

[[webhooks.repositories]]
repository = "acme/hello-http-wrong"
app = "hello"
team = "payments"
clone_url = "{http_wrong_url}"
fetch_token = "{WRONG_HTTP_TOKEN}"
"#,
        op = hash_token(&operator),
        key = client_key.display().to_string(),
        known = known_hosts.display().to_string(),
    ));
    std::fs::write(&init.config_path, config_text).expect("gate.toml");
    let gate_port = free_port();
    let log_path = dir.path().join("gate.log");
    let gate = Command::new(env!("CARGO_BIN_EXE_airlock-gate"))
        .args(["--log-json", "serve", "--config"])
        .arg(&init.config_path)
        .env("AIRLOCK_LISTEN", format!("127.0.0.1:{gate_port}"))
        .env("RUST_LOG", "debug")
        // No user ssh config or agent may supply another key: only the mapped one counts.
        .env_remove("SSH_AUTH_SOCK")
        .stdout(Stdio::from(std::fs::File::create(&log_path).expect("log")))
        .stderr(Stdio::from(
            std::fs::File::options()
                .append(true)
                .open(&log_path)
                .expect("log"),
        ))
        .spawn()
        .expect("gate starts");
    let _gate = Killed(gate);
    let url = format!("http://127.0.0.1:{gate_port}");
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(r) = reqwest::get(format!("{url}/readyz")).await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "the gate never became ready: {}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );

    // With the key: fetched over ssh, then stopped at build by the unknown stack.
    let accepted = push(&url, "d-ssh", "acme/hello", &commit).await;
    let view = finished_run(&url, &operator, accepted["run_id"].as_str().expect("id")).await;
    assert_fetched_then_stopped_at_build(&view, &commit);

    // The same repository without a key: no accepted key, unknown host key; the run says the fetch failed.
    let accepted = push(&url, "d-nokey", "acme/hello-nokey", &commit).await;
    let view = finished_run(&url, &operator, accepted["run_id"].as_str().expect("id")).await;
    assert_eq!(view["state"], "failed", "{view:#}");
    assert_eq!(view["error"]["step"], "fetch", "{view:#}");

    // The HTTP token: the fetch fails (nothing listens on port 9) and the message holds no token.
    let accepted = push(&url, "d-token", "acme/private", &commit).await;
    let view = finished_run(&url, &operator, accepted["run_id"].as_str().expect("id")).await;
    assert_eq!(view["error"]["step"], "fetch", "{view:#}");
    let message = view["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("127.0.0.1:9"), "{message}");

    // Over smart HTTP with the mapped token: fetched, then stopped at build by the unknown stack.
    let accepted = push(&url, "d-http", "acme/hello-http", &commit).await;
    let view = finished_run(&url, &operator, accepted["run_id"].as_str().expect("id")).await;
    assert_fetched_then_stopped_at_build(&view, &commit);

    // A wrong token: the server refuses it, and the run says so.
    let accepted = push(&url, "d-http-wrong", "acme/hello-http-wrong", &commit).await;
    let view = finished_run(&url, &operator, accepted["run_id"].as_str().expect("id")).await;
    assert_eq!(view["state"], "failed", "{view:#}");
    assert_eq!(view["error"]["step"], "fetch", "{view:#}");
    let message = view["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("authentication failed"), "{message}");

    // No secret anywhere a person or a log collector can read.
    let key_text = std::fs::read_to_string(&client_key).expect("key");
    let key_body: Vec<&str> = key_text
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .collect();
    assert!(!key_body.is_empty());
    let mut outputs = vec![("gate log", std::fs::read_to_string(&log_path).expect("log"))];
    for path in ["/api/v1/runs?limit=1000", "/api/v1/audit", "/metrics"] {
        let text = reqwest::Client::new()
            .get(format!("{url}{path}"))
            .bearer_auth(&operator)
            .send()
            .await
            .expect("answers")
            .text()
            .await
            .expect("text");
        outputs.push((path, text));
    }
    let runs: Value = serde_json::from_str(&outputs[1].1).expect("runs json");
    for run in runs["runs"].as_array().expect("runs") {
        let id = run["id"].as_str().expect("id");
        let page = reqwest::Client::new()
            .get(format!("{url}/ui/runs/{id}"))
            .header("cookie", format!("airlock_token={operator}"))
            .bearer_auth(&operator)
            .send()
            .await
            .expect("ui answers")
            .text()
            .await
            .expect("text");
        outputs.push(("web UI run page", page));
    }
    assert!(
        outputs[0].1.contains("hello") && outputs[0].1.len() > 1000,
        "the debug log is too thin to mean anything"
    );
    for (what, text) in &outputs {
        for token in [FETCH_TOKEN, HTTP_TOKEN, WRONG_HTTP_TOKEN] {
            if let Some(at) = text.find(token) {
                let line_start = text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
                let line_end = text[at..].find('\n').map(|i| at + i).unwrap_or(text.len());
                panic!(
                    "the fetch token {token} appears in the {what}: {}",
                    &text[line_start..line_end]
                );
            }
        }
        for line in &key_body {
            assert!(
                !text.contains(line),
                "the ssh private key appears in the {what}"
            );
        }
    }
}
