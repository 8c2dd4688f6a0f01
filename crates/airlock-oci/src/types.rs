//! The JSON documents of the OCI image spec (descriptor, manifest, index, config) as serde types.
//!
//! Field names follow the spec exactly (camelCase, PascalCase inside the container config, snake_case in history),
//! optional fields are left out when absent and maps are `BTreeMap`s, so what we write is deterministic and what
//! Docker or skopeo write reads back (unknown fields are ignored).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Digest, media_type};

/// The annotation holding a tag inside an OCI layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The platform an image manifest inside an index is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    /// CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU variant, e.g. `v8` for arm64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A reference to content by media type, digest and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced bytes.
    pub digest: Digest,
    /// Size of the referenced bytes.
    pub size: u64,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// For artifact manifests: the artifact's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// For entries of an index: the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor with only media type, digest and size.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            annotations: None,
            artifact_type: None,
            platform: None,
        }
    }

    /// A descriptor for `bytes` (digest and size computed).
    pub fn for_bytes(media_type: impl Into<String>, bytes: &[u8]) -> Self {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    /// The OCI "empty" descriptor (`{}` with media type [`media_type::OCI_EMPTY`]), the config of artifacts.
    pub fn empty() -> Self {
        Descriptor::for_bytes(media_type::OCI_EMPTY, EMPTY_JSON)
    }
}

/// The bytes of the OCI empty blob, `{}`.
pub const EMPTY_JSON: &[u8] = b"{}";

/// An image (or artifact) manifest: one config and an ordered list of layers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type (OCI or Docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// For artifacts: their type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layer blobs, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (signatures, attestations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ImageManifest {
    /// An OCI image manifest (schema 2) over `config` and `layers`.
    pub fn new(config: Descriptor, layers: Vec<Descriptor>) -> Self {
        ImageManifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.to_string()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: None,
        }
    }

    /// The manifest as JSON bytes (compact, deterministic field order).
    pub fn to_bytes(&self) -> Vec<u8> {
        to_json_bytes(self)
    }

    /// Parses manifest bytes; `what` names them in the error.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self, crate::Error> {
        from_json_bytes(bytes, what)
    }
}

/// An image index (or Docker manifest list): one manifest per platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests, each usually with a platform.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ImageIndex {
    /// An OCI index (schema 2) listing `manifests`.
    pub fn new(manifests: Vec<Descriptor>) -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.to_string()),
            manifests,
            annotations: None,
        }
    }

    /// The index as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_json_bytes(self)
    }

    /// Parses index bytes; `what` names them in the error.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self, crate::Error> {
        from_json_bytes(bytes, what)
    }
}

/// The image config: platform, run settings and the layers' uncompressed digests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageConfig {
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who made the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// How a container of this image runs.
    #[serde(default)]
    pub config: ContainerConfig,
    /// The uncompressed layer digests.
    pub rootfs: RootFs,
    /// One entry per build step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

impl ImageConfig {
    /// A config for `architecture`/`os` with no layers and default run settings.
    pub fn new(architecture: impl Into<String>, os: impl Into<String>) -> Self {
        ImageConfig {
            created: None,
            author: None,
            architecture: architecture.into(),
            os: os.into(),
            config: ContainerConfig::default(),
            rootfs: RootFs::default(),
            history: Vec::new(),
        }
    }

    /// The config as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_json_bytes(self)
    }

    /// Parses config bytes; `what` names them in the error.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self, crate::Error> {
        from_json_bytes(bytes, what)
    }
}

/// Run settings of a container (the `config` object of an image config), with the spec's PascalCase names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `user`, `uid`, `user:group` or `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Ports as `"8080/tcp": {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `NAME=value` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// The entrypoint argv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// The default arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Image labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// The signal that stops the container, e.g. `SIGTERM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Volumes as `"/data": {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
}

/// The `rootfs` object: the layers' uncompressed (diff) digests, base first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Digest of each layer's uncompressed tar.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// One build step in the image history (snake_case names, as in the spec).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// RFC 3339 time of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who made the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// A comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step produced no layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
}

/// Serialises one of our types. These types only hold strings, numbers and string-keyed maps,
/// for which serde_json cannot fail.
fn to_json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value)
        .expect("OCI types serialise infallibly: only string keys and plain values")
}

fn from_json_bytes<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, crate::Error> {
    serde_json::from_slice(bytes).map_err(|source| crate::Error::Json {
        what: what.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_CONFIG: &str = r#"{"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"65532","AttachStdin":false,"ExposedPorts":{"8080/tcp":{}},"Tty":false,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/busybox","httpd","-f"],"Image":"","Volumes":null,"WorkingDir":"/app","Entrypoint":null,"OnBuild":null,"Labels":{"a":"b"}},"container":"abc","container_config":{"Hostname":"abc"},"created":"2026-11-23T09:00:00.123456789Z","docker_version":"20.10.24","history":[{"created":"2026-11-23T09:00:00Z","created_by":"/bin/sh -c #(nop) COPY file:x in /bin/busybox "},{"created":"2026-11-23T09:00:00Z","created_by":"/bin/sh -c #(nop)  CMD [\"/bin/busybox\"]","empty_layer":true}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}}"#;

    #[test]
    fn reads_docker_config_ignoring_unknown_fields() {
        let c = ImageConfig::from_bytes(DOCKER_CONFIG.as_bytes(), "docker config").unwrap();
        assert_eq!(c.architecture, "amd64");
        assert_eq!(c.config.user.as_deref(), Some("65532"));
        assert_eq!(c.config.working_dir.as_deref(), Some("/app"));
        assert_eq!(c.config.entrypoint, None);
        assert_eq!(c.config.volumes, None);
        assert!(c.config.exposed_ports.unwrap().contains_key("8080/tcp"));
        assert_eq!(c.history.len(), 2);
        assert_eq!(c.history[1].empty_layer, Some(true));
        assert_eq!(c.rootfs.diff_ids.len(), 1);
    }

    #[test]
    fn writes_spec_field_names_and_skips_absent_options() {
        let mut c = ImageConfig::new("amd64", "linux");
        c.config.working_dir = Some("/app".into());
        c.config.exposed_ports = Some(BTreeMap::from([("80/tcp".into(), serde_json::json!({}))]));
        c.history.push(History {
            created_by: Some("airlock".into()),
            empty_layer: Some(false),
            ..Default::default()
        });
        let text = String::from_utf8(c.to_bytes()).unwrap();
        assert!(text.contains(r#""WorkingDir":"/app""#), "{text}");
        assert!(text.contains(r#""ExposedPorts":{"80/tcp":{}}"#), "{text}");
        assert!(text.contains(r#""created_by":"airlock""#), "{text}");
        assert!(text.contains(r#""empty_layer":false"#), "{text}");
        assert!(
            text.contains(r#""rootfs":{"type":"layers","diff_ids":[]}"#),
            "{text}"
        );
        assert!(!text.contains("null"), "{text}");
        assert!(!text.contains("author"), "{text}");
        let back = ImageConfig::from_bytes(text.as_bytes(), "x").unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn manifest_new_is_oci_schema_2_with_camel_case_names() {
        let m = ImageManifest::new(
            Descriptor::empty(),
            vec![Descriptor::for_bytes(media_type::OCI_LAYER_GZIP, b"x")],
        );
        let text = String::from_utf8(m.to_bytes()).unwrap();
        assert!(
            text.starts_with(
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json""#
            ),
            "{text}"
        );
        assert!(!text.contains("subject"), "{text}");
        assert_eq!(ImageManifest::from_bytes(text.as_bytes(), "m").unwrap(), m);
    }

    #[test]
    fn bad_manifest_json_names_what_was_parsed() {
        let err = ImageManifest::from_bytes(b"{\"schemaVersion\":2}", "manifest of oci:/x:tag")
            .unwrap_err();
        assert!(err.to_string().contains("manifest of oci:/x:tag"), "{err}");
    }

    #[test]
    fn empty_descriptor_has_the_spec_digest() {
        assert_eq!(
            Descriptor::empty().digest.as_str(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(Descriptor::empty().size, 2);
    }
}
