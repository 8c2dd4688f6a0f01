//! The independent tools and cached inputs the tests run against: skopeo, git, the Python venvs, the
//! fixtures `scripts/setup` caches, the real OSV exports, and free loopback ports.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A free loopback port (bound, read and released: the test binds it again right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Runs `git ARGS` in `dir` as a fixed author at a fixed time (2023-11-14T22:13:20Z), so commits made by
/// tests have the same ids on every run; returns its trimmed stdout and panics with its stderr when it
/// fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("git prints UTF-8")
        .trim()
        .to_string()
}

/// Runs skopeo (an OCI client that shares no code with airlock) and returns its stdout; panics with its
/// stderr when it fails.
pub fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed (apt-get install -y skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("skopeo prints UTF-8")
}

/// `$HOME`, or `/root` when it is not set.
fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
}

/// Where `scripts/setup` caches venvs and fixtures: `$AIRLOCK_CACHE`, else `$HOME/.cache/airlock`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("AIRLOCK_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/airlock"))
}

/// A cached fixture (`rel` below [`cache_dir`]); panics saying to run `scripts/setup` when it is missing.
pub fn fixture(rel: &str) -> PathBuf {
    let p = cache_dir().join(rel);
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup (it builds the test fixtures)",
        p.display()
    );
    p
}

/// One of the real OSV exports (`PyPI.zip`, `crates.io.zip`): in `$AIRLOCK_VULNDB_SOURCE`, else in
/// `shared/vulndb` beside the checkout (where the demo finds it too).
pub fn vulndb_source(name: &str) -> PathBuf {
    std::env::var_os("AIRLOCK_VULNDB_SOURCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vulndb"))
        .join(name)
}

/// The venv directory named by the environment variable `var`, else `$HOME/.cache/airlock/<default>`.
pub fn venv_dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/airlock").join(default))
}

/// `bin/<tool>` of the venv [`venv_dir`]`(var, default)`; panics with the command that installs
/// `install` (pip package names) into it when the tool is missing.
pub fn venv_tool(var: &str, default: &str, tool: &str, install: &str) -> PathBuf {
    let dir = venv_dir(var, default);
    let bin = dir.join("bin").join(tool);
    assert!(
        bin.is_file(),
        "{} not found. Install it with: python3 -m venv {d} && {d}/bin/pip install {install} (or set {var})",
        bin.display(),
        d = dir.display(),
    );
    bin
}

/// The Python of the checkers' venv (`$AIRLOCK_PY_VENV`, else `$HOME/.cache/airlock/venv`); panics naming
/// the pip packages `install` when it is missing.
pub fn python(install: &str) -> PathBuf {
    venv_tool("AIRLOCK_PY_VENV", "venv", "python", install)
}

/// Like [`python`], and the interpreter must also import every module in `modules`: a venv that
/// exists but lacks a checker's library fails here, naming the pip packages `install`, rather than deep in
/// a checker's output.
pub fn python_importing(modules: &[&str], install: &str) -> PathBuf {
    let py = python(install);
    let ok = Command::new(&py)
        .args(["-c", &format!("import {}", modules.join(", "))])
        .status()
        .is_ok_and(|s| s.success());
    let venv = venv_dir("AIRLOCK_PY_VENV", "venv");
    assert!(
        ok,
        "{} cannot import {}; install them with: python3 -m venv {v} && {v}/bin/pip install {install} \
         (or set AIRLOCK_PY_VENV)",
        py.display(),
        modules.join(", "),
        v = venv.display()
    );
    py
}

/// Runs `python script args...`; returns whether it exited 0 and its stdout followed by its stderr.
pub fn run_python(python: &Path, script: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {} {}: {e}", python.display(), script.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Whether a Docker Engine answers `docker info` (tests that need one say so and skip, or fail, on `false`).
pub fn docker_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
}
