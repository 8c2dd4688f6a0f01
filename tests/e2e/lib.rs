//! Support for the end-to-end tests: a real gate on a loopback port over a fresh data directory, the real
//! example app, and the independent checkers that `scripts/setup` installs.

use airlock_gate::config::GateConfig;
use airlock_gate::init::{default_vulndb_source, init_data_dir};
use airlock_gate::server::{self, RunningGate};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A gate serving on 127.0.0.1 with its own data directory (removed when dropped).
pub struct TestGate {
    pub gate: RunningGate,
    pub config: GateConfig,
    pub token: String,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Drop for TestGate {
    fn drop(&mut self) {
        self.gate.server.abort();
        self.gate.worker.abort();
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Starts a gate on embedded defaults; `tweak` may change the config before it starts.
pub async fn start_gate(tweak: impl FnOnce(&mut GateConfig)) -> TestGate {
    let dir = tempfile::tempdir().expect("temp dir");
    let init = init_data_dir(dir.path(), Some(&default_vulndb_source()))
        .await
        .expect("init data dir");
    let mut config = init.config;
    tweak(&mut config);
    let gate = server::start(config.clone()).await.expect("gate starts");
    let url = format!("http://{}", gate.addr);
    TestGate {
        gate,
        config,
        token: init.token,
        url,
        dir,
    }
}

/// The Python of the checkers' venv (installed by scripts/setup).
pub fn python() -> PathBuf {
    let venv = std::env::var("AIRLOCK_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/airlock/venv")
        });
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/setup to install the independent checkers",
        py.display()
    );
    py
}

/// Copies the example app into `dest` and makes it a git repository with one commit; returns the commit id.
pub fn git_repo_of_example(dest: &Path) -> String {
    copy_tree(&repo_root().join("examples/hello"), dest);
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dest)
            .env("GIT_AUTHOR_NAME", "Dev")
            .env("GIT_AUTHOR_EMAIL", "dev@example.com")
            .env("GIT_COMMITTER_NAME", "Dev")
            .env("GIT_COMMITTER_EMAIL", "dev@example.com")
            .env("GIT_AUTHOR_DATE", "2026-11-01T12:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-11-01T12:00:00Z")
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "hello"]);
    git(&["rev-parse", "HEAD"])
}

/// Copies a directory tree, skipping build output.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

/// Every file below `dir`, relative, sorted (to show that nothing was written).
pub fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap_or(&p).display().to_string());
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}
