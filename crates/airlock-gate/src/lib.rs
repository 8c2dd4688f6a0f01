//! The airlock gate: the service between a team's inner loop and the governed outer loop.
//!
//! It takes a commit (a webhook or an `airlock submit` upload), stores it, and drives it through a durable
//! pipeline — fetch, build, scan, gate, sign, publish — leaving a signed release at the boundary that
//! `airlock-agent` verifies on the other side. This crate is wiring: each stage's logic lives in its own crate
//! (`airlock-build`, `airlock-scan`, `airlock-policy`, `airlock-manifest`, `airlock-sign`, `airlock-oci`).
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! let config = airlock_gate::config::GateConfig::load("gate.toml".as_ref())?;
//! let gate = airlock_gate::server::start(config).await?;
//! println!("listening on {}", gate.addr);
//! # Ok(()) }
//! ```

pub mod audit;
pub mod auth;
pub mod cmd_audit;
pub mod cmd_build;
pub mod config;
pub mod demo;
pub mod http;
pub mod init;
pub mod metrics;
pub mod openapi;
pub mod pipeline;
pub mod rebase;
pub mod server;
pub mod store;
pub mod ui;
pub mod webhooks;
