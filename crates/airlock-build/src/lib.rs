//! airlock-build turns a team's source into a standard container image.
//!
//! The source arrives as an untrusted tarball ([`unpack_tarball`]) or a git commit ([`fetch_git`]); both
//! land as plain files in a fresh directory. Then, by the descriptor's mode:
//!
//! - **standard** ([`build_standard`]): the app's build command runs in the stack's builder image through
//!   the Docker Engine (or on the host when there is no engine; the run records `builder: host`), only the
//!   artifacts `airlock.toml` names are taken, and they are [`assemble`]d as one reproducible layer on the
//!   stack's pinned run base: no daemon is needed for the image itself, and the same commit gives the same
//!   digest. Builder image and run base are both pinned by digest ([`Stack`]). An unchanged resubmission
//!   reuses the image an earlier identical build left in the output store.
//! - **dockerfile** ([`build_dockerfile`]): the Dockerfile is [`check_dockerfile`]ed first (every `FROM`
//!   and `COPY --from` image must be an [`approved_bases`] entry, by name or digest; `ADD` of a URL is
//!   refused; both name the line), the bases are put into the Engine under gate-only names, the classic
//!   builder builds a [`context`] that honours `.dockerignore` with no network, and the result is exported
//!   and re-packed: the base's layers reused byte for byte, the Dockerfile's layers rewritten
//!   deterministically.
//!
//! Either way the image is then [`smoke_test`]ed when an engine answers: started with its port on loopback,
//! its health path must answer 2xx within the start timeout. [`bootstrap`] makes base images locally,
//! since nothing can be pulled here; [`toolchain`] makes a builder image from the host's own Rust
//! toolchain; [`fixtures`] makes the test stacks (busybox; Debian with Python, cached).

pub mod bootstrap;
pub mod build;
pub mod context;
pub mod docker;
pub mod dockerbuild;
pub mod dockerfile;
pub mod error;
pub mod fixtures;
pub mod git;
pub mod host;
pub mod log;
pub mod smoke;
pub mod source;
pub mod stack;
pub mod toolchain;
pub mod workspace;

pub use bootstrap::{create_busybox_image, create_static_base, load_into_docker};
pub use build::{BuildRequest, BuiltImage, SourceMeta, assemble, build_standard};
pub use dockerbuild::{DockerfileReport, DockerfileRequest, build_dockerfile, dockerfile_path};
pub use dockerfile::{ApprovedBase, BaseSource, FromLine, approved_bases, check_dockerfile};
pub use error::{BuildError, SourceError};
pub use git::{GitSource, fetch_git, fetch_git_with_ssh};
pub use smoke::{SmokeReport, SmokeSpec, smoke_test, smoke_test_from_store};
pub use source::{UnpackLimits, UnpackStats, unpack_tarball};
pub use stack::{BuilderKind, Stack, choose_builder, connect_docker};
pub use toolchain::{ToolchainImage, ensure_toolchain_image};
