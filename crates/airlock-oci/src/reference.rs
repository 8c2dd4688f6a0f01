//! Image references in skopeo's transport syntax, so operators can use the names they already know:
//! `docker://HOST/REPO:TAG`, `docker://HOST/REPO@DIGEST`, `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` and
//! `docker-daemon:NAME:TAG`.
//!
//! Parsing is pure; [`ImageRef::open`] turns a reference into the [`Store`](crate::Store) that holds it.

use std::fmt;
use std::path::PathBuf;

use crate::store::validate_tag;
use crate::{Digest, Error, validate_repository};

/// The tag or digest a `docker://` reference names inside its repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryTarget {
    /// `:TAG` (`latest` when the reference names neither tag nor digest, as skopeo does).
    Tag(String),
    /// `@sha256:...`.
    Digest(Digest),
}

impl RegistryTarget {
    /// The tag or digest as the string a [`Store`](crate::Store) takes.
    pub fn as_str(&self) -> &str {
        match self {
            RegistryTarget::Tag(t) => t,
            RegistryTarget::Digest(d) => d.as_str(),
        }
    }
}

/// A parsed image reference with its transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    /// `docker://HOST/REPO:TAG` or `docker://HOST/REPO@DIGEST`: a repository in a registry.
    Registry {
        /// `host[:port]`.
        host: String,
        /// Repository path inside the registry.
        repository: String,
        /// Tag or digest.
        target: RegistryTarget,
    },
    /// `oci:DIR[:TAG]`: an OCI image layout directory.
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// The reference name (`org.opencontainers.image.ref.name`); `None` picks the layout's only image.
        tag: Option<String>,
    },
    /// `oci-archive:FILE[:TAG]`: an OCI image layout in a tar file.
    Archive {
        /// The tar file.
        file: PathBuf,
        /// The reference name; `None` picks the archive's only image.
        tag: Option<String>,
    },
    /// `docker-daemon:NAME:TAG`: an image in the local Docker Engine.
    DockerDaemon {
        /// Image name, e.g. `airlock.local/app`.
        name: String,
        /// Its tag.
        tag: String,
    },
}

/// The transports [`ImageRef::parse`] understands, for error messages.
const TRANSPORTS: &str = "docker://, oci:, oci-archive:, docker-daemon:";

fn invalid(input: &str, reason: impl Into<String>) -> Error {
    Error::InvalidReference {
        reference: input.to_string(),
        reason: reason.into(),
    }
}

/// Checks an OCI layout reference name (`org.opencontainers.image.ref.name`): alphanumeric components joined
/// by one of `-._:@/+` (or `--`). Wider than a registry tag so an archive can name `app:tag` entries.
pub fn validate_ref_name(name: &str) -> Result<(), Error> {
    let bad = || Error::InvalidTag(name.to_string());
    if name.is_empty() || name.len() > 255 {
        return Err(bad());
    }
    let bytes = name.as_bytes();
    let is_alnum = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    if !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return Err(bad());
    }
    let mut sep: &[u8] = &[];
    for (i, &b) in bytes.iter().enumerate() {
        if is_alnum(b) {
            sep = &[];
        } else if matches!(b, b'-' | b'.' | b':' | b'@' | b'/' | b'+') {
            sep = &bytes[i + 1 - (sep.len() + 1)..=i];
            // One separator, or "--"; anything else doubled (e.g. "..", "//", ":-") is not allowed.
            if sep.len() > 1 && sep != b"--" {
                return Err(bad());
            }
        } else {
            return Err(bad());
        }
    }
    Ok(())
}

impl ImageRef {
    /// Parses a reference in skopeo's syntax. Errors name the reference and say what is wrong with it.
    pub fn parse(input: &str) -> Result<ImageRef, Error> {
        if let Some(rest) = input.strip_prefix("docker://") {
            return parse_registry(input, rest);
        }
        if let Some(rest) = input.strip_prefix("oci-archive:") {
            let (file, tag) = split_path_and_tag(input, rest)?;
            return Ok(ImageRef::Archive { file, tag });
        }
        if let Some(rest) = input.strip_prefix("oci:") {
            let (dir, tag) = split_path_and_tag(input, rest)?;
            return Ok(ImageRef::Layout { dir, tag });
        }
        if let Some(rest) = input.strip_prefix("docker-daemon:") {
            return parse_daemon(input, rest);
        }
        let reason = match input.split_once(':') {
            Some((transport, _)) if !transport.contains('/') && !transport.is_empty() => {
                format!("unknown transport {transport:?}; expected one of {TRANSPORTS}")
            }
            _ => format!("no transport; expected one of {TRANSPORTS}"),
        };
        Err(invalid(input, reason))
    }

    /// The tag this reference names, when it names one.
    pub fn tag(&self) -> Option<&str> {
        match self {
            ImageRef::Registry {
                target: RegistryTarget::Tag(t),
                ..
            } => Some(t),
            ImageRef::Registry { .. } => None,
            ImageRef::Layout { tag, .. } | ImageRef::Archive { tag, .. } => tag.as_deref(),
            ImageRef::DockerDaemon { tag, .. } => Some(tag),
        }
    }
}

fn parse_registry(input: &str, rest: &str) -> Result<ImageRef, Error> {
    let Some((host, path)) = rest.split_once('/') else {
        return Err(invalid(
            input,
            "expected docker://HOST/REPOSITORY[:TAG|@DIGEST]",
        ));
    };
    // Without a registry host skopeo would go to Docker Hub; nothing here may, so the host is required.
    let looks_like_host = host == "localhost" || host.contains('.') || host.contains(':');
    if !looks_like_host || host.chars().any(|c| c.is_whitespace() || c == '@') {
        return Err(invalid(
            input,
            format!(
                "{host:?} is not a registry host; name one explicitly, e.g. docker://127.0.0.1:5000/{rest}"
            ),
        ));
    }
    let (name, target) = if let Some((name, digest)) = path.split_once('@') {
        if name
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
        {
            return Err(invalid(
                input,
                "a reference with both a tag and a digest is not supported; use one",
            ));
        }
        let digest = Digest::parse(digest).map_err(|_| {
            invalid(
                input,
                format!("{digest:?} is not a digest (sha256: and 64 lowercase hex characters)"),
            )
        })?;
        (name, RegistryTarget::Digest(digest))
    } else {
        // A ':' after the last '/' starts the tag.
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        match path[last_slash..].find(':') {
            Some(i) => {
                let (name, tag) = (&path[..last_slash + i], &path[last_slash + i + 1..]);
                validate_tag(tag).map_err(|_| {
                    invalid(
                        input,
                        format!(
                            "invalid tag {tag:?}: expected [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}"
                        ),
                    )
                })?;
                (name, RegistryTarget::Tag(tag.to_string()))
            }
            None => (path, RegistryTarget::Tag("latest".to_string())),
        }
    };
    validate_repository(name).map_err(|_| {
        invalid(
            input,
            format!(
                "invalid repository {name:?}: expected lowercase [a-z0-9] components separated by '.', '_', '-' or '/'"
            ),
        )
    })?;
    Ok(ImageRef::Registry {
        host: host.to_string(),
        repository: name.to_string(),
        target,
    })
}

/// `PATH[:TAG]`, split at the first ':' as skopeo does (paths containing ':' cannot be named).
fn split_path_and_tag(input: &str, rest: &str) -> Result<(PathBuf, Option<String>), Error> {
    let (path, tag) = match rest.split_once(':') {
        Some((path, tag)) => (path, Some(tag)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(invalid(input, "the path is empty"));
    }
    if let Some(tag) = tag {
        validate_ref_name(tag).map_err(|_| {
            invalid(
                input,
                format!("invalid reference name {tag:?}: expected alphanumeric parts joined by one of -._:@/+"),
            )
        })?;
    }
    Ok((PathBuf::from(path), tag.map(str::to_string)))
}

fn parse_daemon(input: &str, rest: &str) -> Result<ImageRef, Error> {
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let Some(i) = rest[last_slash..].find(':') else {
        return Err(invalid(
            input,
            "docker-daemon: needs NAME:TAG (the Docker Engine has no default tag here)",
        ));
    };
    let (name, tag) = (&rest[..last_slash + i], &rest[last_slash + i + 1..]);
    // The Engine accepts a registry host with a port as the first component; check the rest as a repository.
    let repo_part = match name.split_once('/') {
        Some((first, more)) if first.contains('.') || first.contains(':') => more,
        _ => name,
    };
    validate_repository(repo_part)
        .map_err(|_| invalid(input, format!("invalid image name {name:?}")))?;
    validate_tag(tag).map_err(|_| invalid(input, format!("invalid tag {tag:?}")))?;
    Ok(ImageRef::DockerDaemon {
        name: name.to_string(),
        tag: tag.to_string(),
    })
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Registry {
                host,
                repository,
                target: RegistryTarget::Tag(t),
            } => write!(f, "docker://{host}/{repository}:{t}"),
            ImageRef::Registry {
                host,
                repository,
                target: RegistryTarget::Digest(d),
            } => write!(f, "docker://{host}/{repository}@{d}"),
            ImageRef::Layout { dir, tag } => {
                write!(f, "oci:{}", dir.display())?;
                tag.as_ref().map_or(Ok(()), |t| write!(f, ":{t}"))
            }
            ImageRef::Archive { file, tag } => {
                write!(f, "oci-archive:{}", file.display())?;
                tag.as_ref().map_or(Ok(()), |t| write!(f, ":{t}"))
            }
            ImageRef::DockerDaemon { name, tag } => write!(f, "docker-daemon:{name}:{tag}"),
        }
    }
}

impl std::str::FromStr for ImageRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        ImageRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(input: &str) -> String {
        match ImageRef::parse(input) {
            Err(Error::InvalidReference { reference, reason }) => {
                assert_eq!(reference, input);
                reason
            }
            other => panic!("{input:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_every_transport() {
        assert_eq!(
            ImageRef::parse("docker://127.0.0.1:5000/team/app:v1").unwrap(),
            ImageRef::Registry {
                host: "127.0.0.1:5000".into(),
                repository: "team/app".into(),
                target: RegistryTarget::Tag("v1".into())
            }
        );
        let d = Digest::of(b"x");
        assert_eq!(
            ImageRef::parse(&format!("docker://reg.example/app@{d}")).unwrap(),
            ImageRef::Registry {
                host: "reg.example".into(),
                repository: "app".into(),
                target: RegistryTarget::Digest(d.clone())
            }
        );
        assert_eq!(
            ImageRef::parse("docker://localhost/app").unwrap().tag(),
            Some("latest")
        );
        assert_eq!(
            ImageRef::parse("oci:/tmp/lay:v1").unwrap(),
            ImageRef::Layout {
                dir: "/tmp/lay".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            ImageRef::parse("oci:rel/dir").unwrap(),
            ImageRef::Layout {
                dir: "rel/dir".into(),
                tag: None
            }
        );
        // Archive entries may carry "app:tag" names (what `airlock-gate export` writes).
        assert_eq!(
            ImageRef::parse("oci-archive:/x.tar:hello:release-0000000001").unwrap(),
            ImageRef::Archive {
                file: "/x.tar".into(),
                tag: Some("hello:release-0000000001".into())
            }
        );
        assert_eq!(
            ImageRef::parse("docker-daemon:airlock.local/app:1.0").unwrap(),
            ImageRef::DockerDaemon {
                name: "airlock.local/app".into(),
                tag: "1.0".into()
            }
        );
        assert_eq!(
            ImageRef::parse("docker-daemon:localhost:5000/app:1.0").unwrap(),
            ImageRef::DockerDaemon {
                name: "localhost:5000/app".into(),
                tag: "1.0".into()
            }
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "docker://127.0.0.1:5000/team/app:v1",
            "oci:/tmp/lay:v1",
            "oci:/tmp/lay",
            "oci-archive:/x.tar:a:b",
            "docker-daemon:app:1",
        ] {
            assert_eq!(ImageRef::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(reason("app:v1").contains("unknown transport \"app\""));
        assert!(reason("/tmp/x").contains("no transport"));
        assert!(reason("docker://app:v1").contains("expected docker://HOST/REPOSITORY"));
        assert!(reason("docker://team/app:v1").contains("\"team\" is not a registry host"));
        assert!(reason("docker://h.io/App:v1").contains("invalid repository \"App\""));
        assert!(reason("docker://h.io/app:bad/tag").contains("invalid repository"));
        assert!(reason("docker://h.io/app:.x").contains("invalid tag \".x\""));
        assert!(reason("docker://h.io/app@sha256:abc").contains("is not a digest"));
        let d = Digest::of(b"x");
        assert!(reason(&format!("docker://h.io/app:v1@{d}")).contains("both a tag and a digest"));
        assert!(reason("oci::v1").contains("path is empty"));
        assert!(reason("oci:/x:../y").contains("invalid reference name"));
        assert!(reason("docker-daemon:app").contains("needs NAME:TAG"));
        assert!(reason("docker-daemon:APP:1").contains("invalid image name"));
    }

    #[test]
    fn ref_names_allow_app_tag_pairs_but_not_traversal() {
        for good in [
            "v1",
            "hello:release-0000000001",
            "a/b",
            "a--b",
            "sha256-ab.sig",
        ] {
            validate_ref_name(good).unwrap();
        }
        for bad in ["", ".x", "x.", "a..b", "a//b", "a b", "../x", "a:-b"] {
            assert!(validate_ref_name(bad).is_err(), "{bad}");
        }
    }
}
