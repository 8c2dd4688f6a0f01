//! Where the agent reads releases from and where it applies them, as given on
//! the command line or in the config file (`oci:DIR`, `oci-archive:FILE`,
//! `docker://HOST/PREFIX`; `directory:DIR`, `git:REPO[#PATH]`, `kubernetes[:CONTEXT]`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Forms `--source` accepts, for error messages.
pub const SOURCE_FORMS: &str = "oci:DIR (an OCI layout root with one repository per app), \
oci-archive:FILE (a tar or tar.gz of such a root, or of one app's layout), \
docker://HOST[:PORT][/PREFIX] (a registry; apps are PREFIX/<app>)";
/// Forms `--target` accepts, for error messages.
pub const TARGET_FORMS: &str = "directory:DIR (manifests written to DIR/<env>/<app>/), \
git:REPO[#PATH] (committed to REPO under PATH/<env>/<app>/), \
kubernetes[:CONTEXT] (server-side applied to the cluster of the kubeconfig context, or in-cluster)";

/// Where releases come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// `oci:DIR`: an OCI layout root (`airlock_oci::LayoutRoot`), one repository per app.
    Layout(PathBuf),
    /// `oci-archive:FILE`: a tar (optionally gzip) of a layout root or of one app's layout, as
    /// carried across an air gap.
    Archive(PathBuf),
    /// `docker://HOST/PREFIX`: a registry; app `A` lives in repository `PREFIX/A`.
    Registry {
        /// `host[:port]`.
        host: String,
        /// Repository prefix without leading or trailing `/` (may be empty).
        prefix: String,
    },
}

impl SourceSpec {
    /// The repository holding `app` for a registry source (`PREFIX/app`), or `app` itself.
    pub fn repository(&self, app: &str) -> String {
        match self {
            SourceSpec::Registry { prefix, .. } if !prefix.is_empty() => format!("{prefix}/{app}"),
            _ => app.to_string(),
        }
    }
}

/// Where verified releases are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// `directory:DIR`: each environment's manifests under `DIR/<env>/<app>/`.
    Directory(PathBuf),
    /// `git:REPO[#PATH]`: a git work tree; one commit per release under `PATH/<env>/<app>/`.
    Git {
        /// The repository's work tree (created with `git init` when missing).
        repo: PathBuf,
        /// Directory inside the repository (relative, may be empty).
        path: String,
    },
    /// `kubernetes[:CONTEXT]`: server-side apply to a cluster (see [`crate::kubernetes`]).
    Kubernetes(crate::kubernetes::KubernetesSpec),
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

fn strip<'a>(given: &'a str, scheme: &str) -> Option<&'a str> {
    given
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix(':'))
        .filter(|r| !r.is_empty())
}

impl FromStr for SourceSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SpecError {
            what: "source",
            given: s.to_string(),
            accepted: SOURCE_FORMS,
        };
        if let Some(rest) = s.strip_prefix("docker://") {
            let (host, prefix) = match rest.split_once('/') {
                Some((host, prefix)) => (host, prefix.trim_matches('/')),
                None => (rest, ""),
            };
            if host.is_empty()
                || host.chars().any(|c| c.is_whitespace() || c == '@')
                || (!prefix.is_empty() && airlock_oci::validate_repository(prefix).is_err())
            {
                return Err(err());
            }
            return Ok(SourceSpec::Registry {
                host: host.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some(rest) = strip(s, "oci-archive") {
            return Ok(SourceSpec::Archive(PathBuf::from(rest)));
        }
        if let Some(rest) = strip(s, "oci") {
            return Ok(SourceSpec::Layout(PathBuf::from(rest)));
        }
        Err(err())
    }
}

impl FromStr for TargetSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SpecError {
            what: "target",
            given: s.to_string(),
            accepted: TARGET_FORMS,
        };
        if let Some(rest) = strip(s, "directory") {
            return Ok(TargetSpec::Directory(PathBuf::from(rest)));
        }
        if let Some(rest) = strip(s, "git") {
            let (repo, path) = match rest.split_once('#') {
                Some((repo, path)) => (repo, path.trim_matches('/')),
                None => (rest, ""),
            };
            // The path is inside the repository: plain relative components only.
            let path_ok = path.split('/').all(|c| {
                path.is_empty()
                    || (!c.is_empty() && c != "." && c != ".." && !c.starts_with(".git"))
            });
            if repo.is_empty() || !path_ok || path.contains('\\') {
                return Err(err());
            }
            return Ok(TargetSpec::Git {
                repo: PathBuf::from(repo),
                path: path.to_string(),
            });
        }
        if s == "kubernetes" {
            return Ok(TargetSpec::Kubernetes(
                crate::kubernetes::KubernetesSpec::new(None),
            ));
        }
        if let Some(context) = strip(s, "kubernetes") {
            if context.chars().any(char::is_whitespace) {
                return Err(err());
            }
            return Ok(TargetSpec::Kubernetes(
                crate::kubernetes::KubernetesSpec::new(Some(context.to_string())),
            ));
        }
        Err(err())
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Layout(dir) => write!(f, "oci:{}", dir.display()),
            SourceSpec::Archive(file) => write!(f, "oci-archive:{}", file.display()),
            SourceSpec::Registry { host, prefix } if prefix.is_empty() => {
                write!(f, "docker://{host}")
            }
            SourceSpec::Registry { host, prefix } => write!(f, "docker://{host}/{prefix}"),
        }
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Directory(dir) => write!(f, "directory:{}", dir.display()),
            TargetSpec::Git { repo, path } if path.is_empty() => {
                write!(f, "git:{}", repo.display())
            }
            TargetSpec::Git { repo, path } => write!(f, "git:{}#{path}", repo.display()),
            TargetSpec::Kubernetes(k) => write!(f, "{k}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_source_form() {
        assert_eq!(
            "oci:/data/boundary".parse::<SourceSpec>().unwrap(),
            SourceSpec::Layout("/data/boundary".into())
        );
        assert_eq!(
            "oci-archive:/media/usb/release.tar"
                .parse::<SourceSpec>()
                .unwrap(),
            SourceSpec::Archive("/media/usb/release.tar".into())
        );
        let registry = "docker://127.0.0.1:5000/boundary/team"
            .parse::<SourceSpec>()
            .unwrap();
        assert_eq!(
            registry,
            SourceSpec::Registry {
                host: "127.0.0.1:5000".into(),
                prefix: "boundary/team".into()
            }
        );
        assert_eq!(registry.repository("hello"), "boundary/team/hello");
        assert_eq!(
            registry.to_string(),
            "docker://127.0.0.1:5000/boundary/team"
        );
        let bare = "docker://registry.example".parse::<SourceSpec>().unwrap();
        assert_eq!(bare.repository("hello"), "hello");
    }

    #[test]
    fn rejects_unknown_source_naming_accepted_forms() {
        let err = "registry://r.example".parse::<SourceSpec>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("registry://r.example"), "{text}");
        assert!(text.contains("oci:DIR"), "{text}");
        assert!(text.contains("docker://"), "{text}");
        assert!("oci:".parse::<SourceSpec>().is_err());
        assert!("docker://".parse::<SourceSpec>().is_err());
        assert!("docker://host/Upper".parse::<SourceSpec>().is_err());
        assert!("docker://user@host/x".parse::<SourceSpec>().is_err());
    }

    #[test]
    fn parses_directory_and_git_targets() {
        assert_eq!(
            "directory:out".parse::<TargetSpec>().unwrap(),
            TargetSpec::Directory("out".into())
        );
        let git = "git:/srv/gitops#clusters/prod/"
            .parse::<TargetSpec>()
            .unwrap();
        assert_eq!(
            git,
            TargetSpec::Git {
                repo: "/srv/gitops".into(),
                path: "clusters/prod".into()
            }
        );
        assert_eq!(git.to_string(), "git:/srv/gitops#clusters/prod");
        assert_eq!(
            "git:repo".parse::<TargetSpec>().unwrap(),
            TargetSpec::Git {
                repo: "repo".into(),
                path: String::new()
            }
        );
    }

    #[test]
    fn rejects_unknown_target_and_escaping_git_paths() {
        let err = "helm:prod".parse::<TargetSpec>().unwrap_err();
        assert!(err.to_string().contains("directory:DIR"), "{err}");
        assert!(err.to_string().contains("git:REPO"), "{err}");
        assert!("/plain/path".parse::<TargetSpec>().is_err());
        assert!("git:repo#../outside".parse::<TargetSpec>().is_err());
        assert!("git:repo#.git/hooks".parse::<TargetSpec>().is_err());
        assert!("git:#path".parse::<TargetSpec>().is_err());
        assert!("kubernetes:".parse::<TargetSpec>().is_err());
        assert!("kubernetes:two words".parse::<TargetSpec>().is_err());
    }

    #[test]
    fn parses_kubernetes_target_with_optional_context() {
        let bare = "kubernetes".parse::<TargetSpec>().unwrap();
        assert_eq!(
            bare,
            TargetSpec::Kubernetes(crate::kubernetes::KubernetesSpec::new(None))
        );
        assert_eq!(bare.to_string(), "kubernetes");
        let prod = "kubernetes:prod-eu".parse::<TargetSpec>().unwrap();
        assert_eq!(prod.to_string(), "kubernetes:prod-eu");
    }
}
