//! Where the agent reads releases from and where it applies them, as given on
//! the command line (`oci:DIR`, `directory:DIR`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Forms `--source` accepts, for error messages.
pub const SOURCE_FORMS: &str = "oci:DIR (an OCI layout root with one repository per app)";
/// Forms `--target` accepts, for error messages.
pub const TARGET_FORMS: &str = "directory:DIR (manifests written to DIR/<env>/<app>/)";

/// Where releases come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// `oci:DIR`: an OCI layout root (`airlock_oci::LayoutRoot`), one repository per app.
    Layout(PathBuf),
}

/// Where verified releases are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// `directory:DIR`: each environment's manifests under `DIR/<env>/<app>/`.
    Directory(PathBuf),
}

/// A `--source` or `--target` value that is not one of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {given:?} is not understood: accepted forms are {accepted}")]
pub struct SpecError {
    /// "source" or "target".
    pub what: &'static str,
    /// The value given.
    pub given: String,
    /// The accepted forms.
    pub accepted: &'static str,
}

fn split(
    given: &str,
    scheme: &str,
    what: &'static str,
    accepted: &'static str,
) -> Result<PathBuf, SpecError> {
    let err = || SpecError {
        what,
        given: given.to_string(),
        accepted,
    };
    let rest = given
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix(':'))
        .ok_or_else(err)?;
    if rest.is_empty() {
        return Err(err());
    }
    Ok(PathBuf::from(rest))
}

impl FromStr for SourceSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        split(s, "oci", "source", SOURCE_FORMS).map(SourceSpec::Layout)
    }
}

impl FromStr for TargetSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        split(s, "directory", "target", TARGET_FORMS).map(TargetSpec::Directory)
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Layout(dir) => write!(f, "oci:{}", dir.display()),
        }
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Directory(dir) => write!(f, "directory:{}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oci_source_and_directory_target() {
        assert_eq!(
            "oci:/data/boundary".parse::<SourceSpec>().unwrap(),
            SourceSpec::Layout("/data/boundary".into())
        );
        assert_eq!(
            "directory:out".parse::<TargetSpec>().unwrap(),
            TargetSpec::Directory("out".into())
        );
    }

    #[test]
    fn rejects_unknown_source_naming_accepted_forms() {
        let err = "registry://r.example".parse::<SourceSpec>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("registry://r.example"), "{text}");
        assert!(text.contains("oci:DIR"), "{text}");
        assert!("oci:".parse::<SourceSpec>().is_err());
    }

    #[test]
    fn rejects_unknown_target_naming_accepted_forms() {
        let err = "kubernetes:prod".parse::<TargetSpec>().unwrap_err();
        assert!(err.to_string().contains("directory:DIR"), "{err}");
        assert!("/plain/path".parse::<TargetSpec>().is_err());
    }
}
