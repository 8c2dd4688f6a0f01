//! Fetching over git's smart HTTP protocol with a per-repository token, against a real server: Debian's
//! `git http-backend` (the CGI program git hosts are built on) behind a small Python HTTP server that demands
//! HTTP Basic auth with the expected token, as GitHub, GitLab and Gitea do for private repositories.
//!
//! Plain HTTP on 127.0.0.1 is used because the subject here is the authentication exchange, not TLS: the
//! server is on loopback and lives only for the test. HTTPS goes through the same gix code with reqwest's
//! rustls backend.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use airlock_build::{SourceError, fetch_git};
use airlock_testkit::tools::git;

const HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";
const USER: &str = "oauth2";
const TOKEN: &str = "glpat-Xy9kT0kenN0tInLogs";

/// The Python server (stdlib only), shared with the gate's fetch_credentials test: it answers 401 with
/// `WWW-Authenticate: Basic` unless the request carries `Authorization: Basic base64(USER:TOKEN)`, then runs
/// `git http-backend` as a CGI program. It prints its port on the first line of stdout once it listens, and
/// appends every `Authorization` header it saw to `auth.log` so the test can tell what the client sent.
const SERVER_PY: &str = include_str!("git_http_server.py");

/// The server process; killed when the test ends, pass or fail.
struct GitHttpServer {
    child: Child,
    port: u16,
    auth_log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GitHttpServer {
    fn url(&self, userinfo: Option<(&str, &str)>) -> String {
        match userinfo {
            Some((user, password)) => {
                format!("http://{user}:{password}@127.0.0.1:{}/repo.git", self.port)
            }
            None => format!("http://127.0.0.1:{}/repo.git", self.port),
        }
    }

    /// Every `Authorization` header value the server received, in order (`None` when absent).
    fn authorizations(&self) -> Vec<String> {
        fs::read_to_string(&self.auth_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A bare repository `repo.git` under a fresh project root with two commits on `main`, served over HTTP.
/// Returns the server and the ids of the first and second commit.
fn serve_repo() -> (GitHttpServer, String, String) {
    assert!(
        Path::new(HTTP_BACKEND).exists(),
        "{HTTP_BACKEND} missing: install Debian's git package"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    fs::create_dir(&work).expect("mkdir");
    git(&work, &["init", "-q", "-b", "main"]);
    fs::write(work.join("README"), "one\n").expect("write");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    fs::create_dir(work.join("src")).expect("mkdir");
    fs::write(work.join("src/app.py"), "print('hello')\n").expect("write");
    fs::write(work.join("README"), "two\n").expect("write");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "two"]);
    let second = git(&work, &["rev-parse", "HEAD"]);
    let root = dir.path().join("root");
    fs::create_dir(&root).expect("mkdir");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &work.display().to_string(),
            &root.join("repo.git").display().to_string(),
        ],
    );
    // Lets a client ask for a commit by id, as the gate does for a webhook's `after`.
    git(
        &root.join("repo.git"),
        &["config", "uploadpack.allowAnySHA1InWant", "true"],
    );

    let script = dir.path().join("server.py");
    fs::write(&script, SERVER_PY).expect("write server");
    let auth_log = dir.path().join("auth.log");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(&root)
        .arg(HTTP_BACKEND)
        .arg(USER)
        .arg(TOKEN)
        .arg(&auth_log)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("server prints its port");
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("server port, got {line:?}"));
    (
        GitHttpServer {
            child,
            port,
            auth_log,
            _dir: dir,
        },
        first,
        second,
    )
}

#[test]
fn fetches_branch_and_commit_with_the_repository_token_as_basic_auth() {
    let (server, first, second) = serve_repo();
    let out = tempfile::tempdir().expect("tempdir");

    let dest = out.path().join("branch");
    let got = fetch_git(&server.url(Some((USER, TOKEN))), "main", &dest).expect("fetch main");
    assert_eq!(got.commit, second);
    assert_eq!(
        fs::read_to_string(dest.join("README")).expect("README"),
        "two\n"
    );
    assert_eq!(
        fs::read_to_string(dest.join("src/app.py")).expect("app.py"),
        "print('hello')\n"
    );
    assert!(!dest.join(".git").exists());

    // An older commit by full id, as a webhook names it.
    let dest = out.path().join("commit");
    let got = fetch_git(&server.url(Some((USER, TOKEN))), &first, &dest).expect("fetch commit");
    assert_eq!(got.commit, first);
    assert_eq!(
        fs::read_to_string(dest.join("README")).expect("README"),
        "one\n"
    );
    assert!(!dest.join("src").exists());

    // The token reached the server as HTTP Basic auth (the server serves nothing otherwise).
    let basic = format!(
        "Basic {}",
        base64_encode(format!("{USER}:{TOKEN}").as_bytes())
    );
    let seen = server.authorizations();
    assert!(seen.contains(&basic), "{seen:?}");
}

#[test]
fn wrong_token_is_an_authentication_error_without_the_token_and_leaves_nothing() {
    let (server, _first, _second) = serve_repo();
    let out = tempfile::tempdir().expect("tempdir");
    let wrong = "glpat-WrongWrongWrong";
    for rev in ["main", "0123456789abcdef0123456789abcdef01234567"] {
        let dest = out.path().join("src");
        let err = fetch_git(&server.url(Some((USER, wrong))), rev, &dest).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, SourceError::Git { .. }), "{err:?}");
        assert!(text.contains("authentication failed"), "{text}");
        assert!(!text.contains(wrong), "{text}");
        assert!(!format!("{err:?}").contains(wrong), "{err:?}");
        assert!(
            text.contains(&format!(
                "http://{USER}:***@127.0.0.1:{}/repo.git",
                server.port
            )),
            "the URL is named, redacted: {text}"
        );
        assert!(!dest.exists(), "nothing is left in the destination");
    }
}

#[test]
fn missing_token_is_an_authentication_error_and_leaves_nothing() {
    let (server, _first, _second) = serve_repo();
    let out = tempfile::tempdir().expect("tempdir");
    let dest = out.path().join("src");
    fs::create_dir(&dest).expect("an empty destination is accepted");
    let err = fetch_git(&server.url(None), "main", &dest).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("authentication failed"), "{text}");
    assert!(text.contains("none are configured"), "{text}");
    assert!(!dest.exists(), "nothing is left in the destination");
    // The gate never asked the host's credential helpers or a terminal: it sent nothing but no-auth requests.
    assert!(
        server.authorizations().iter().all(|a| a == "None"),
        "{:?}",
        server.authorizations()
    );
}

/// Standard base64 (RFC 4648 with padding), enough to compute the header the server expects.
fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
