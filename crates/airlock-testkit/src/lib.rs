//! Helpers shared by airlock's integration tests, one implementation each.
//!
//! The tests of `airlock-oci`, `airlock-sign`, `airlock-agent`, `airlock-gate`, `airlock-scan`,
//! `airlock-policy`, `airlock-manifest` and `tests/e2e` talk to real components (TESTKIT.md): Debian's
//! `docker-registry` on a loopback port, skopeo, the Python checkers in the venv `scripts/setup` makes, the
//! fixtures it caches. Each of them used to carry its own copy of the code that starts or finds those
//! components; this crate is the one copy, so a fix (a port race, a clearer "run scripts/setup" hint) lands
//! everywhere at once.
//!
//! It is a dev-dependency only (`publish = false`): helpers panic with a message naming what is missing
//! and how to install it, because in a test that is the useful failure.
//!
//! - [`registry`]: a `docker-registry` process on a free port, with its data in a temporary directory.
//! - [`image`]: small OCI images and cosign-style attachments written into any `Store`.
//! - [`tools`]: skopeo, the Python venv, cached fixtures, the OSV exports, free ports.
//! - [`fs`]: copying and listing file trees.

pub mod fs;
pub mod image;
pub mod registry;
pub mod tools;

pub use registry::Registry;
