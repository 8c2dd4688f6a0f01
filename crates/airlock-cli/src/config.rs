//! Where the CLI finds its gate and token.
//!
//! `airlock login` writes `$XDG_CONFIG_HOME/airlock/config.toml` (or
//! `~/.config/airlock/config.toml`) readable by its owner only, because it
//! holds a token. `AIRLOCK_URL` and `AIRLOCK_TOKEN` override the file, so CI
//! jobs need no file at all.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Largest config file read.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// The gate to talk to and the token to use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CliConfig {
    /// Base URL of the gate.
    pub url: Option<String>,
    /// Team token for the gate.
    pub token: Option<String>,
}

/// Why the config could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither `XDG_CONFIG_HOME` nor `HOME` is set.
    #[error("cannot find a config directory: set XDG_CONFIG_HOME or HOME")]
    NoConfigDir,
    /// Reading or writing the file failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{path} is not a valid airlock config: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said (with the line).
        message: String,
    },
    /// The file is larger than any config should be.
    #[error("{path} is over {MAX_CONFIG_BYTES} bytes: it is not an airlock config")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// No gate URL anywhere.
    #[error("no gate URL: run `airlock login --url URL --token TOKEN` or set AIRLOCK_URL")]
    MissingUrl,
    /// No token anywhere.
    #[error("no token: run `airlock login --url URL --token TOKEN` or set AIRLOCK_TOKEN")]
    MissingToken,
}

/// The config file path: `$XDG_CONFIG_HOME/airlock/config.toml`, else `$HOME/.config/airlock/config.toml`.
pub fn config_path() -> Result<PathBuf, ConfigError> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(xdg) = non_empty("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(xdg).join("airlock").join("config.toml"));
    }
    if let Some(home) = non_empty("HOME") {
        return Ok(PathBuf::from(home)
            .join(".config")
            .join("airlock")
            .join("config.toml"));
    }
    Err(ConfigError::NoConfigDir)
}

impl CliConfig {
    /// Reads the file at `path`; a missing file is an empty config.
    pub fn load_from(path: &Path) -> Result<CliConfig, ConfigError> {
        let io = |source| ConfigError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        };
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CliConfig::default()),
            Err(e) => return Err(io(e)),
        };
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Writes the config to `path` with mode 0600 (directory 0700), replacing
    /// any previous file atomically.
    pub fn save_to(&self, path: &Path) -> Result<(), ConfigError> {
        let io = |source| ConfigError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        let text = toml::to_string(self).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(io)?;
        let tmp = dir.join(".config.toml.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    /// Applies `AIRLOCK_URL` / `AIRLOCK_TOKEN` (when set and non-empty) over the file's values.
    pub fn with_env_overrides(mut self) -> CliConfig {
        if let Some(url) = std::env::var("AIRLOCK_URL").ok().filter(|v| !v.is_empty()) {
            self.url = Some(url);
        }
        if let Some(token) = std::env::var("AIRLOCK_TOKEN")
            .ok()
            .filter(|v| !v.is_empty())
        {
            self.token = Some(token);
        }
        self
    }

    /// The URL and token, or an error telling how to provide the missing one.
    pub fn require(&self) -> Result<(&str, &str), ConfigError> {
        let url = self.url.as_deref().ok_or(ConfigError::MissingUrl)?;
        let token = self.token.as_deref().ok_or(ConfigError::MissingToken)?;
        Ok((url, token))
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_config_is_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("airlock/config.toml");
        let cfg = CliConfig {
            url: Some("http://127.0.0.1:8080".into()),
            token: Some("tok-123".into()),
        };
        cfg.save_to(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(CliConfig::load_from(&path).unwrap(), cfg);
        // Saving again replaces the file.
        let other = CliConfig {
            url: Some("https://gate.example".into()),
            token: Some("t2".into()),
        };
        other.save_to(&path).unwrap();
        assert_eq!(CliConfig::load_from(&path).unwrap(), other);
    }

    #[test]
    fn missing_config_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = CliConfig::load_from(&dir.path().join("none.toml")).unwrap();
        assert_eq!(cfg, CliConfig::default());
        assert!(matches!(cfg.require(), Err(ConfigError::MissingUrl)));
    }

    #[test]
    fn rejects_unknown_key_naming_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "url = \"http://x\"\ntokn = \"t\"\n").unwrap();
        let err = CliConfig::load_from(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("config.toml") && text.contains("tokn"),
            "{text}"
        );
    }
}
