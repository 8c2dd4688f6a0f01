//! airlock-build turns a team's source into a standard container image.
//!
//! The source arrives as an untrusted tarball ([`unpack_tarball`]) or a git commit ([`fetch_git`]); both
//! land as plain files in a fresh directory. A *standard* build then runs the app's build command in the
//! stack's builder image through the Docker Engine (or on the host when there is no engine), takes only the
//! artifacts the app's `airlock.toml` names, and [`assemble`]s them as one reproducible layer on the stack's
//! pinned run base: no daemon is needed for the image itself, and the same commit gives the same digest.
//! [`bootstrap`] makes the base images locally, since nothing can be pulled here, and [`toolchain`] makes a
//! builder image from the host's own Rust toolchain.

pub mod bootstrap;
pub mod build;
pub mod docker;
pub mod error;
pub mod git;
pub mod host;
pub mod log;
pub mod source;
pub mod stack;
pub mod toolchain;
pub mod workspace;

pub use bootstrap::{create_busybox_image, create_static_base, load_into_docker};
pub use build::{BuildRequest, BuiltImage, SourceMeta, assemble, build_standard};
pub use error::{BuildError, SourceError};
pub use git::{GitSource, fetch_git};
pub use source::{UnpackLimits, UnpackStats, unpack_tarball};
pub use stack::{BuilderKind, Stack, choose_builder, connect_docker};
pub use toolchain::{ToolchainImage, ensure_toolchain_image};
