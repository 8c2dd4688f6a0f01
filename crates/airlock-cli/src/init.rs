//! `airlock init`: write an `airlock.toml` from what the source tree shows.
//!
//! A `Dockerfile` means a Dockerfile build (its first `EXPOSE` gives the port); a `Cargo.toml` with a
//! `[package]` means a standard build on the `rust-static` stack with a static release binary as the artifact.
//! Anything else is a sentence saying what to add. The app name comes from the package, else the directory.

use std::path::{Path, PathBuf};

/// Why `airlock init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} already exists; pass --force to overwrite it")]
    Exists(PathBuf),
    #[error(
        "cannot tell how to build {0}: it has neither a Dockerfile nor a Cargo.toml with a [package]; \
         add one, or write airlock.toml by hand (see examples/hello/airlock.toml)"
    )]
    Undetected(PathBuf),
    #[error(
        "team {0:?} is not a valid team name: use lowercase letters, digits and '-' (at most 63 characters)"
    )]
    BadTeam(String),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What was detected in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The app name (a DNS-1123 label).
    pub name: String,
    /// `dockerfile` or `standard`.
    pub mode: &'static str,
    /// Port the app listens on.
    pub port: u16,
    /// Standard Rust builds: the binary's name.
    pub binary: Option<String>,
    /// Why this mode was chosen, for the developer.
    pub reason: String,
}

/// Lowercases and replaces anything outside `[a-z0-9-]` with `-`, trimmed to 63 characters.
pub fn dns_label(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out.truncate(63);
    out.trim_matches('-').to_string()
}

fn read(path: &Path) -> Result<String, InitError> {
    std::fs::read_to_string(path).map_err(|source| InitError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The `name` in a Cargo.toml's `[package]`, if it has one.
fn cargo_package_name(text: &str) -> Option<String> {
    let value: toml::Value = toml::from_str(text).ok()?;
    value
        .get("package")?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

/// Looks at `dir` and decides how the app is built.
pub fn detect(dir: &Path) -> Result<Detected, InitError> {
    let dir_name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "app".into());
    let dockerfile = dir.join("Dockerfile");
    if dockerfile.is_file() {
        let text = read(&dockerfile)?;
        let port = text
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                if !l.get(..7)?.eq_ignore_ascii_case("expose ") {
                    return None;
                }
                l[7..]
                    .split_whitespace()
                    .next()?
                    .split('/')
                    .next()?
                    .parse()
                    .ok()
            })
            .next();
        return Ok(Detected {
            name: dns_label(&dir_name),
            mode: "dockerfile",
            port: port.unwrap_or(8080),
            binary: None,
            reason: match port {
                Some(p) => format!("found a Dockerfile (EXPOSE {p})"),
                None => "found a Dockerfile (no EXPOSE, so port 8080 is assumed)".into(),
            },
        });
    }
    let cargo = dir.join("Cargo.toml");
    if cargo.is_file()
        && let Some(name) = cargo_package_name(&read(&cargo)?)
    {
        return Ok(Detected {
            name: dns_label(&name),
            mode: "standard",
            port: 8080,
            binary: Some(name.clone()),
            reason: format!(
                "found Cargo.toml of package {name}: a static Rust binary on the rust-static stack"
            ),
        });
    }
    Err(InitError::Undetected(dir.to_path_buf()))
}

/// The `airlock.toml` text for what was detected.
pub fn render(d: &Detected, team: &str) -> String {
    let mut out = format!(
        "# Written by `airlock init` ({}). Check it, then commit it.\n[app]\nname = {:?}\nteam = {:?}\n\n[build]\nmode = {:?}\n",
        d.reason, d.name, team, d.mode
    );
    if let Some(bin) = &d.binary {
        out.push_str(&format!(
            "stack = \"rust-static\"\n\
             command = \"RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --offline --target x86_64-unknown-linux-gnu\"\n\
             artifacts = [{{ from = \"target/x86_64-unknown-linux-gnu/release/{bin}\", to = \"/app/{bin}\" }}]\n\n\
             [run]\ncommand = [\"/app/{bin}\"]\n"
        ));
    } else {
        out.push_str("\n[run]\n");
    }
    out.push_str(&format!(
        "port = {}\nhealth = \"/healthz\"\n\n[deploy]\nreplicas = 2\n",
        d.port
    ));
    out
}

/// Detects, renders and writes `DIR/airlock.toml` (refusing to overwrite unless `force`); returns the path.
pub fn write(dir: &Path, team: &str, force: bool) -> Result<(PathBuf, Detected), InitError> {
    if dns_label(team) != team || team.is_empty() {
        return Err(InitError::BadTeam(team.to_string()));
    }
    let path = dir.join("airlock.toml");
    if path.exists() && !force {
        return Err(InitError::Exists(path));
    }
    let detected = detect(dir)?;
    std::fs::write(&path, render(&detected, team)).map_err(|source| InitError::Write {
        path: path.clone(),
        source,
    })?;
    Ok((path, detected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_package_gives_a_standard_descriptor_the_gate_accepts() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"My_Service\"\nversion = \"0.1.0\"\n",
        )
        .expect("write");
        let (path, d) = write(dir.path(), "payments", false).expect("written");
        assert_eq!((d.name.as_str(), d.mode), ("my-service", "standard"));
        let parsed = airlock_descriptor::AppDescriptor::load(dir.path())
            .expect("the gate's parser accepts it");
        assert_eq!(parsed.app.team, "payments");
        assert_eq!(parsed.run.command, ["/app/My_Service"]);
        assert!(
            matches!(write(dir.path(), "payments", false), Err(InitError::Exists(p)) if p == path)
        );
    }

    #[test]
    fn dockerfile_expose_gives_the_port() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nexpose 9090/tcp\n",
        )
        .expect("write");
        let (_, d) = write(dir.path(), "web", false).expect("written");
        assert_eq!((d.mode, d.port), ("dockerfile", 9090));
        let parsed = airlock_descriptor::AppDescriptor::load(dir.path())
            .expect("the gate's parser accepts it");
        assert_eq!(parsed.run.port, 9090);
    }

    #[test]
    fn nothing_to_detect_is_a_sentence() {
        let dir = tempfile::tempdir().expect("dir");
        let err = write(dir.path(), "web", false).unwrap_err().to_string();
        assert!(
            err.contains("neither a Dockerfile nor a Cargo.toml"),
            "{err}"
        );
        assert!(!dir.path().join("airlock.toml").exists());
        assert!(matches!(
            write(dir.path(), "Bad Team", false),
            Err(InitError::BadTeam(_))
        ));
    }
}
