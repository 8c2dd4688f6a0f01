//! The host builder: runs the build command directly on the gate's machine (development only), with a
//! scrubbed environment, in its own process group, killed as a group on timeout.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::BuildError;
use crate::log::{MAX_LOG_BYTES, TailBuf, tail};

/// Characters of output kept in [`BuildError::CommandFailed`].
pub(crate) const ERROR_TAIL_CHARS: usize = 4000;

/// The environment of a build command: PATH, HOME, LANG, SOURCE_DATE_EPOCH, the stack's variables, and the
/// Rust toolchain locations when set (so a cargo build works). Nothing else of the gate's environment leaks.
pub(crate) fn build_env(
    home: &Path,
    commit_time: i64,
    stack_env: &std::collections::BTreeMap<String, String>,
    for_host: bool,
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    // In a container the builder image's own PATH applies: it knows where its tools are.
    if for_host {
        let path =
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_string());
        env.push(("PATH".to_string(), path));
    }
    env.push(("HOME".to_string(), home.display().to_string()));
    env.push(("LANG".to_string(), "C.UTF-8".to_string()));
    env.push(("SOURCE_DATE_EPOCH".to_string(), commit_time.to_string()));
    if for_host {
        for key in ["RUSTUP_HOME", "CARGO_HOME"] {
            if let Ok(value) = std::env::var(key) {
                env.push((key.to_string(), value));
            } else if let Some(user_home) = std::env::var_os("HOME") {
                let dir = Path::new(&user_home).join(if key == "CARGO_HOME" {
                    ".cargo"
                } else {
                    ".rustup"
                });
                if dir.is_dir() {
                    env.push((key.to_string(), dir.display().to_string()));
                }
            }
        }
    }
    for (k, v) in stack_env {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// Runs `sh -c command` in `workdir` and returns its combined output (tail-limited).
pub(crate) async fn run_host(
    workdir: &Path,
    command: &str,
    env: &[(String, String)],
    timeout_secs: u64,
) -> Result<String, BuildError> {
    let (reader, writer) =
        std::io::pipe().map_err(|e| BuildError::io("pipe for build output", e))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| BuildError::io("pipe for build output", e))?;
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(workdir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2))
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| BuildError::io(workdir, e))?;
    // Our copies of the pipe's write end must go, or the reader never sees the end.
    drop(cmd);
    let pgid = child.id().map(|id| id as i32);
    let reader_thread = std::thread::spawn(move || {
        let mut reader = reader;
        let mut buf = TailBuf::new(MAX_LOG_BYTES);
        let mut chunk = [0u8; 8192];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.push(&chunk[..n]),
            }
        }
        buf
    });
    let waited = tokio::time::timeout(Duration::from_secs(timeout_secs), child.wait()).await;
    // Kill the whole group in every case: leftover background processes would hold the pipe open.
    if let Some(pgid) = pgid {
        kill_group(pgid);
    }
    let status = match waited {
        Ok(status) => Some(status.map_err(|e| BuildError::io(workdir, e))?),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    let log = tokio::task::spawn_blocking(move || reader_thread.join())
        .await
        .ok()
        .and_then(|r| r.ok())
        .map(TailBuf::into_string)
        .unwrap_or_default();
    match status {
        None => Err(BuildError::TimedOut {
            after_secs: timeout_secs,
        }),
        Some(status) if status.success() => Ok(log),
        Some(status) => Err(BuildError::CommandFailed {
            exit_code: status.code().map(i64::from).unwrap_or(-1),
            log_tail: tail(&log, ERROR_TAIL_CHARS),
        }),
    }
}

fn kill_group(pgid: i32) {
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals the process group we created for the build (process_group(0)
    // made the child its leader); it touches no memory.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_in_scrubbed_environment() {
        let tmp = tempfile::tempdir().unwrap();
        // SAFETY-free check: a variable of the test process must not reach the command.
        let env = build_env(tmp.path(), 42, &Default::default(), true);
        let log = run_host(
            tmp.path(),
            "echo epoch=$SOURCE_DATE_EPOCH; env | wc -l >&2; echo user=${USER:-none}",
            &env,
            10,
        )
        .await
        .unwrap();
        assert!(log.contains("epoch=42"), "{log}");
        assert!(log.contains("user=none"), "{log}");
    }

    #[tokio::test]
    async fn failing_command_reports_exit_code_and_output() {
        let tmp = tempfile::tempdir().unwrap();
        let env = build_env(tmp.path(), 0, &Default::default(), true);
        let err = run_host(
            tmp.path(),
            "echo compiling; echo boom >&2; exit 3",
            &env,
            10,
        )
        .await
        .unwrap_err();
        match err {
            BuildError::CommandFailed {
                exit_code,
                log_tail,
            } => {
                assert_eq!(exit_code, 3);
                assert!(
                    log_tail.contains("compiling") && log_tail.contains("boom"),
                    "{log_tail}"
                );
            }
            other => panic!("expected CommandFailed, got {other}"),
        }
    }

    #[tokio::test]
    async fn timed_out_command_and_its_children_are_killed() {
        let tmp = tempfile::tempdir().unwrap();
        let env = build_env(tmp.path(), 0, &Default::default(), true);
        let started = std::time::Instant::now();
        let err = run_host(tmp.path(), "sleep 30 & sleep 30; echo never", &env, 1)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BuildError::TimedOut { after_secs: 1 }),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }
}
