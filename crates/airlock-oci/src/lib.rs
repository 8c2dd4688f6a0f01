//! airlock-oci: content-addressed OCI objects, and nothing else.
//!
//! This crate is the bottom of airlock. It knows digests ([`Digest`]), the JSON documents of the OCI image
//! spec ([`types`]), how to write reproducible layer tars ([`LayerBuilder`]), where blobs and manifests live
//! ([`Store`]: an OCI image layout directory with [`OciLayout`] / [`LayoutRoot`], or a registry), and how to
//! read, write and copy whole images ([`read_image`], [`write_image`], [`copy_image`]). It knows nothing of
//! apps, policies or signatures.
//!
//! Everything read from a store is checked against its digest before it is returned, and every input has a
//! size or count limit.

pub mod digest;
pub mod error;
pub mod image;
pub mod layer;
pub mod layout;
pub mod media_type;
pub mod registry;
pub mod store;
pub mod types;

pub use digest::{Digest, DigestWriter};
pub use error::Error;
pub use image::{Image, copy_image, read_image, write_image};
pub use layer::{Compression, Layer, LayerBuilder, normalize_path, uncompressed_reader};
pub use layout::{LayoutRoot, OciLayout, validate_repository};
pub use registry::{RegistryAuth, RegistryStore};
pub use store::{FetchedManifest, MAX_MANIFEST_SIZE, Store, validate_tag};
pub use types::{
    ContainerConfig, Descriptor, History, ImageConfig, ImageIndex, ImageManifest, Platform, RootFs,
};
