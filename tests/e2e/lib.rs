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

/// Runs `airlock-gate demo` on the example app with its data in `data_dir` (fetch through publish, then the
/// agent's sync); panics when any step fails.
pub async fn run_demo(data_dir: &Path) -> airlock_gate::demo::DemoOutcome {
    airlock_gate::demo::run(airlock_gate::demo::DemoOptions {
        data_dir: Some(data_dir.to_path_buf()),
        app_dir: repo_root().join("examples/hello"),
        vulndb: None,
    })
    .await
    .expect("the demo runs end to end")
}

/// The Python of the checkers' venv (installed by scripts/setup).
pub fn python() -> PathBuf {
    airlock_testkit::tools::python("jsonschema cryptography securesystemslib")
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
    airlock_testkit::fs::copy_tree_except(from, to, &["target"]);
}

/// Every file below `dir`, relative, sorted (to show that nothing was written).
pub use airlock_testkit::fs::files_below;
