//! The developer side of airlock: the `airlock` command and the pieces it is
//! made of.
//!
//! A developer runs `airlock submit` in an app's source tree. [`pack`] turns
//! the tree into a deterministic tarball (honouring `.gitignore`), [`client`]
//! uploads it to the gate and follows the run, and [`render`] prints what the
//! gate decided: the image and release when it was published, or every
//! violated rule with its evidence and fix when it was rejected. [`api`] holds
//! the wire types of the gate's HTTP API, shared with the gate itself so both
//! sides agree byte for byte. This crate links no server code.

pub mod api;
pub mod client;
pub mod config;
pub mod git;
pub mod init;
pub mod pack;
pub mod render;
