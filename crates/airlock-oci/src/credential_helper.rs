//! Docker credential helpers: the `docker-credential-<name>` programs that `credsStore` and `credHelpers`
//! in `~/.docker/config.json` name (what `docker login` uses on most workstations: `pass`, `desktop`,
//! `osxkeychain`, `ecr-login`, ..).
//!
//! The protocol is the Docker CLI's: run `docker-credential-<name> get`, write the server address on stdin,
//! read `{"ServerURL","Username","Secret"}` on stdout. A helper's stdout may hold the secret, so it never
//! reaches an error message; only its (trimmed, bounded) stderr may.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{Error, RegistryAuth};

/// Most bytes read from a helper's stdout: credentials are a few hundred bytes; more is not an answer.
pub const MAX_HELPER_OUTPUT: usize = 64 * 1024;
/// How long a helper may run before it is killed: some prompt (a GPG pinentry, a desktop unlock dialog), and
/// an unattended gate must not hang on them.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(30);
/// Most characters of a failing helper's stderr quoted in the error.
const MAX_STDERR_QUOTED: usize = 512;
/// The Docker CLI's server address for Docker Hub, whatever host name the reference used.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// How credential helpers are found and run. The default searches `$PATH` and gives the helper this
/// process's environment, as the Docker CLI does; tests (and embedders) can point at other directories and
/// add variables (e.g. `GNUPGHOME`, `PASSWORD_STORE_DIR` for `pass`) without touching the process
/// environment.
#[derive(Clone, Default)]
pub struct CredentialHelpers {
    /// Directories searched for `docker-credential-<name>`, in order; `None` means `$PATH`.
    pub path_dirs: Option<Vec<PathBuf>>,
    /// Variables set for the helper on top of this process's environment.
    pub env: Vec<(OsString, OsString)>,
}

// By hand: the environment given to a helper may carry secrets (a keychain password), so only the names.
impl std::fmt::Debug for CredentialHelpers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.env.iter().map(|(k, _)| k).collect();
        f.debug_struct("CredentialHelpers")
            .field("path_dirs", &self.path_dirs)
            .field("env", &names)
            .finish()
    }
}

impl CredentialHelpers {
    /// Asks the helper `name` (the program `docker-credential-<name>`) for `host`'s credentials. The server
    /// address is tried as the bare `host` first (what `docker login HOST` stores), then `https://host`,
    /// and for Docker Hub `https://index.docker.io/v1/`. No entry for any of them is anonymous access.
    /// `configured_by` says where the helper was named (e.g. `"credsStore" in /home/u/.docker/config.json`)
    /// for the error when it is not installed.
    pub fn get(&self, name: &str, host: &str, configured_by: &str) -> Result<RegistryAuth, Error> {
        let program_name = format!("docker-credential-{name}");
        let error = |message: String| Error::Registry {
            store: host.to_string(),
            message,
        };
        // The name becomes part of a program path: a separator would run something else than a helper.
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(error(format!(
                "credential helper name {name:?} ({configured_by}) is not a program name suffix: \
                 expected letters, digits, '-', '_' or '.'"
            )));
        }
        let Some(program) = self.find(&program_name) else {
            return Err(error(format!(
                "credential helper {program_name} ({configured_by}) is not installed: \
                 no executable {program_name} on PATH"
            )));
        };
        for server in server_addresses(host) {
            let output = self.run(&program, &server).map_err(|why| {
                error(format!(
                    "credential helper {program_name} get for {server}: {why}"
                ))
            })?;
            let answer = interpret(&output).map_err(|why| {
                error(format!(
                    "credential helper {program_name} for {server}: {why}"
                ))
            })?;
            if let Some(auth) = answer {
                tracing::debug!(host, helper = %program_name, server, "registry credentials from a credential helper");
                return Ok(auth);
            }
        }
        Ok(RegistryAuth::Anonymous)
    }

    /// The first executable `program` in the search directories.
    fn find(&self, program: &str) -> Option<PathBuf> {
        let dirs: Vec<PathBuf> = match &self.path_dirs {
            Some(dirs) => dirs.clone(),
            None => std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default(),
        };
        dirs.into_iter()
            .map(|d| d.join(program))
            .find(|p| is_executable(p))
    }

    /// Runs `program get` with `server` on stdin, bounded in output and time.
    fn run(&self, program: &Path, server: &str) -> Result<HelperOutput, String> {
        let mut child = Command::new(program)
            .arg("get")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start it: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading closes the pipe; its exit status says what happened.
            let _ = stdin.write_all(server.as_bytes());
        }
        let stdout = child
            .stdout
            .take()
            .map(|r| read_bounded(r, MAX_HELPER_OUTPUT));
        let stderr = child
            .stderr
            .take()
            .map(|r| read_bounded(r, MAX_HELPER_OUTPUT));
        let deadline = Instant::now() + HELPER_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "no answer within {} s (is it waiting for a password or an unlock prompt?); killed",
                        HELPER_TIMEOUT.as_secs()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("cannot wait for it: {e}")),
            }
        };
        // A daemon the helper started (gpg-agent) could inherit the pipes and keep them open: wait for the
        // readers no longer than the helper's own deadline.
        let collect = |rx: Option<mpsc::Receiver<Bounded>>| -> Result<Bounded, String> {
            let Some(rx) = rx else {
                return Ok(Bounded::default());
            };
            let left = deadline.saturating_duration_since(Instant::now());
            rx.recv_timeout(left.max(Duration::from_secs(1)))
                .map_err(|_| {
                    "exited but its output stayed open (a process it started holds it)".to_string()
                })
        };
        Ok(HelperOutput {
            status,
            stdout: collect(stdout)?,
            stderr: collect(stderr)?,
        })
    }
}

/// The server addresses a helper is asked for, in order, for `host` (`host[:port]`).
fn server_addresses(host: &str) -> Vec<String> {
    let mut addresses = vec![host.to_string(), format!("https://{host}")];
    if matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        addresses.push(DOCKER_HUB_SERVER.to_string());
    }
    addresses
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Bytes read from a pipe, and whether there were more than the limit.
#[derive(Default)]
struct Bounded {
    bytes: Vec<u8>,
    overflow: bool,
}

/// Reads `reader` on a thread, up to `limit` bytes (then stops reading: a helper writing more gets a broken
/// pipe rather than an unbounded buffer here).
fn read_bounded(reader: impl Read + Send + 'static, limit: usize) -> mpsc::Receiver<Bounded> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error mid-way keeps what was read: the exit status decides what the run means.
        let _ = reader.take(limit as u64 + 1).read_to_end(&mut bytes);
        let overflow = bytes.len() > limit;
        bytes.truncate(limit);
        let _ = tx.send(Bounded { bytes, overflow });
    });
    rx
}

/// What a helper run produced.
struct HelperOutput {
    status: ExitStatus,
    stdout: Bounded,
    stderr: Bounded,
}

/// The Docker CLI's marker for "no credentials for this server" (`credentials not found in native
/// keychain`), printed by helpers on stdout or stderr with a failing status.
const NOT_FOUND_MARKER: &str = "credentials not found";

/// What a finished helper run means: credentials, none for that server (`Ok(None)`), or why it failed.
/// The reason never quotes stdout.
fn interpret(output: &HelperOutput) -> Result<Option<RegistryAuth>, String> {
    let contains_marker = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .to_ascii_lowercase()
            .contains(NOT_FOUND_MARKER)
    };
    if !output.status.success() {
        if contains_marker(&output.stdout.bytes) || contains_marker(&output.stderr.bytes) {
            return Ok(None);
        }
        let stderr = excerpt(&output.stderr.bytes);
        return Err(if stderr.is_empty() {
            format!("failed ({})", output.status)
        } else {
            format!("failed ({}): {stderr}", output.status)
        });
    }
    if output.stdout.overflow {
        return Err(format!("answered more than {MAX_HELPER_OUTPUT} bytes"));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    // serde's message may quote the secret: none of it goes into the error.
    let answer: Answer = serde_json::from_slice(&output.stdout.bytes).map_err(|_| {
        "answered something other than {\"ServerURL\",\"Username\",\"Secret\"} JSON".to_string()
    })?;
    if answer.username.is_empty() && answer.secret.is_empty() {
        // Some helpers (e.g. Debian's docker-credential-pass) answer an empty entry instead of failing.
        return Ok(None);
    }
    if answer.username == "<token>" {
        return Err(
            "holds an identity token (OAuth2 refresh token), which airlock does not support; \
             log in with a username and password or token instead"
                .to_string(),
        );
    }
    Ok(Some(RegistryAuth::Basic(answer.username, answer.secret)))
}

/// `bytes` as one trimmed line of at most [`MAX_STDERR_QUOTED`] characters, control characters replaced.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let mut out: String = text
        .chars()
        .take(MAX_STDERR_QUOTED)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX_STDERR_QUOTED {
        out.push('…');
    }
    out
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn status(code: i32) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt as _;
        ExitStatus::from_raw(code << 8)
    }

    fn output(code: i32, stdout: &str, stderr: &str) -> HelperOutput {
        HelperOutput {
            status: status(code),
            stdout: Bounded {
                bytes: stdout.as_bytes().to_vec(),
                overflow: false,
            },
            stderr: Bounded {
                bytes: stderr.as_bytes().to_vec(),
                overflow: false,
            },
        }
    }

    #[test]
    fn answers_become_credentials_none_or_errors_without_stdout() {
        let ok = output(0, r#"{"ServerURL":"h","Username":"u","Secret":"pw"}"#, "");
        assert!(
            matches!(interpret(&ok), Ok(Some(RegistryAuth::Basic(u, p))) if u == "u" && p == "pw")
        );
        let empty = output(0, r#"{"ServerURL":"h","Username":"","Secret":""}"#, "");
        assert!(matches!(interpret(&empty), Ok(None)));
        let not_found = output(1, "credentials not found in native keychain\n", "");
        assert!(matches!(interpret(&not_found), Ok(None)));
        let not_found_err = output(1, "", "Credentials not found in native keychain");
        assert!(matches!(interpret(&not_found_err), Ok(None)));

        let failed = output(
            1,
            "leaked-secret-pw",
            "  gpg: decryption failed: No secret key\n",
        );
        let err = interpret(&failed).unwrap_err();
        assert!(
            err.contains("gpg: decryption failed") && !err.contains("leaked"),
            "{err}"
        );
        let token = output(0, r#"{"Username":"<token>","Secret":"refresh-pw"}"#, "");
        let err = interpret(&token).unwrap_err();
        assert!(
            err.contains("identity token") && !err.contains("refresh-pw"),
            "{err}"
        );
        let garbage = output(0, r#"{"Username":"u","Secret":42-pw"#, "");
        let err = interpret(&garbage).unwrap_err();
        assert!(err.contains("JSON") && !err.contains("42-pw"), "{err}");
        let mut big = output(0, "", "");
        big.stdout.overflow = true;
        assert!(interpret(&big).unwrap_err().contains("65536"));
    }

    #[test]
    fn stderr_is_quoted_trimmed_and_bounded() {
        let long = format!("  {}\nend", "x".repeat(2000));
        let quoted = excerpt(long.as_bytes());
        assert!(
            quoted.starts_with("xxx") && quoted.ends_with('…'),
            "{quoted}"
        );
        assert_eq!(quoted.chars().count(), MAX_STDERR_QUOTED + 1);
        assert_eq!(excerpt(b"a\nb\n"), "a b");
    }

    #[test]
    fn docker_hub_is_also_asked_under_its_cli_address() {
        assert_eq!(
            server_addresses("reg:5000"),
            ["reg:5000", "https://reg:5000"]
        );
        assert_eq!(
            server_addresses("docker.io").last().unwrap(),
            DOCKER_HUB_SERVER
        );
    }

    #[test]
    fn names_that_are_not_program_suffixes_or_missing_programs_are_refused() {
        let helpers = CredentialHelpers {
            path_dirs: Some(vec![]),
            env: vec![("SECRET_VAR".into(), "hidden-pw".into())],
        };
        let err = helpers
            .get("../../bin/sh", "h:1", "credsStore")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a program name"), "{err}");
        let err = helpers
            .get("absent", "h:1", "\"credsStore\" in c.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("docker-credential-absent")
                && err.contains("not installed")
                && err.contains("c.json"),
            "{err}"
        );
        let debug = format!("{helpers:?}");
        assert!(
            debug.contains("SECRET_VAR") && !debug.contains("hidden-pw"),
            "{debug}"
        );
    }
}
