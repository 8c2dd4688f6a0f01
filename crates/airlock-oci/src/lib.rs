//! airlock-oci: content-addressed OCI objects, and nothing else.
//!
//! This crate is the bottom of airlock. It knows digests ([`Digest`]), the JSON documents of the OCI image
//! spec ([`types`]), how to write reproducible layer tars ([`LayerBuilder`]), where blobs and manifests live
//! ([`Store`]: an OCI image layout directory with [`OciLayout`] / [`LayoutRoot`], or a registry), and how to
//! read, write and copy whole images ([`read_image`], [`write_image`], [`copy_image`]). It knows nothing of
//! apps, policies or signatures beyond two conventions: cosign's `sha256-<hex>.sig` / `.att` tags, which
//! [`copy_with_attachments`] brings along, and `release-NNNNNNNNNN` tags, which [`export_releases`] selects.
//!
//! References use skopeo's transport syntax ([`ImageRef`]: `docker://`, `oci:`, `oci-archive:`), and
//! [`ImageRef::open_source`] / [`ImageRef::open_destination`] open the matching store: a registry
//! ([`RegistryStore`], credentials from `~/.docker/config.json` and the credential helpers it names,
//! [`CredentialHelpers`]), a layout ([`OciLayout`]) or a layout tar archive ([`OciArchive`], written
//! atomically).
//!
//! Everything read from a store is checked against its digest before it is returned, and every input has a
//! size or count limit.

pub mod archive;
pub mod credential_helper;
pub mod daemon;
pub mod digest;
pub mod error;
pub mod image;
pub mod layer;
pub mod layout;
pub mod media_type;
pub mod open;
pub mod rebase;
pub mod reference;
pub mod registry;
mod registry_http;
pub mod store;
pub mod transfer;
pub mod types;

pub use archive::OciArchive;
pub use credential_helper::CredentialHelpers;
pub use digest::{Digest, DigestWriter};
pub use error::Error;
pub use image::{
    CopyOptions, CopyReport, Image, attachment_tags, copy_image, copy_references,
    copy_with_attachments, read_image, write_image,
};
pub use layer::{Compression, Layer, LayerBuilder, normalize_path, uncompressed_reader};
pub use layout::{LayoutRoot, OciLayout, validate_repository};
pub use open::{
    OpenOptions, OpenedStore, docker_config_auth, docker_config_auth_with, docker_config_path,
};
pub use rebase::{BASE_DIGEST_LABEL, BASE_NAME_LABEL, RebaseReport, rebase_image};
pub use reference::{ImageRef, RegistryTarget, validate_ref_name};
pub use registry::{RegistryAuth, RegistryStore};
pub use store::{FetchedManifest, MAX_MANIFEST_SIZE, Store, validate_tag};
pub use transfer::{TransferEntry, export_releases, import_archive, release_sequence};
pub use types::{
    ContainerConfig, Descriptor, History, ImageConfig, ImageIndex, ImageManifest, Platform, RootFs,
};
