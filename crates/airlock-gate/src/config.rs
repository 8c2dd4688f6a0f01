//! The platform config: what infra teams decide (stacks, boundary, keys, policy, environments, teams).
//!
//! Read from a TOML file; `AIRLOCK_*` environment variables override single values. Secrets (team tokens, webhook
//! secrets) are held as hashes or wrapped so that `Debug` never prints them.

use airlock_build::Stack;
use airlock_manifest::EnvironmentSettings;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// The gate's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// Where the store, boundary layout, keys, vulnerability database and run work directories live.
    pub data_dir: PathBuf,
    /// Address the HTTP server listens on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `sqlite://...` or `postgres://...`; defaults to a SQLite file in the data directory.
    #[serde(default)]
    pub database_url: Option<String>,
    /// The builder id written into SLSA provenance.
    #[serde(default = "default_identity")]
    pub identity: String,
    /// Largest accepted request body (source tarballs), in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    #[serde(default)]
    pub boundary: BoundaryConfig,
    #[serde(default)]
    pub signing: SigningConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub vulndb: VulnDbConfig,
    /// Where approved stack base images live (an OCI layout root; one repository per base).
    #[serde(default)]
    pub bases_dir: Option<PathBuf>,
    #[serde(default)]
    pub stacks: Vec<Stack>,
    #[serde(default)]
    pub environments: Vec<EnvironmentSettings>,
    #[serde(default)]
    pub teams: Vec<TeamConfig>,
    #[serde(default)]
    pub webhooks: WebhookConfig,
}

/// Where releases are pushed across the boundary.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundaryConfig {
    /// An OCI layout root directory (one repository per app). Defaults to `DATA/boundary`.
    pub layout: Option<PathBuf>,
    /// The repository prefix signatures name as `docker-reference` (`PREFIX/APP`).
    #[serde(default = "default_reference_prefix")]
    pub reference_prefix: String,
}

/// The gate's signing key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// PKCS#8 PEM private key; defaults to `DATA/keys/airlock.key`, generated on first start.
    pub key: Option<PathBuf>,
}

/// Policies and waivers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Directory of the gate's Rego policies (default: the shipped `policies/gate`).
    pub dir: Option<PathBuf>,
    /// The waivers file (default: the shipped `policies/waivers.toml`).
    pub waivers: Option<PathBuf>,
    /// Whether runs built by the host builder (no Docker Engine) may pass.
    #[serde(default = "default_true")]
    pub allow_host_builder: bool,
}

/// The vulnerability database.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VulnDbConfig {
    /// Directory of the indexed OSV database (default `DATA/vulndb`).
    pub dir: Option<PathBuf>,
}

/// A team and the hashes of its API tokens.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    pub name: String,
    /// `sha256:<hex>` of each token; tokens themselves are never stored.
    #[serde(default)]
    pub token_hashes: Vec<String>,
}

impl fmt::Debug for TeamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeamConfig")
            .field("name", &self.name)
            .field("tokens", &self.token_hashes.len())
            .finish()
    }
}

/// Webhook secrets, by git host.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The shared secret GitHub signs deliveries with (`X-Hub-Signature-256`). Env: `AIRLOCK_GITHUB_SECRET`.
    pub github_secret: Option<String>,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("github_secret", &self.github_secret.as_ref().map(|_| "***"))
            .finish()
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_identity() -> String {
    "https://airlock.dev/gate/local".into()
}
fn default_max_body() -> usize {
    256 * 1024 * 1024
}
fn default_reference_prefix() -> String {
    "airlock.local".into()
}
fn default_true() -> bool {
    true
}

/// The repository this binary was built from; shipped policies are found there when no path is configured.
pub fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl GateConfig {
    /// Reads a config file, then applies environment overrides.
    pub fn load(path: &Path) -> anyhow::Result<GateConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading gate config {}: {e}", path.display()))?;
        let mut cfg: GateConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("gate config {}: {e}", path.display()))?;
        cfg.apply_env();
        Ok(cfg)
    }

    /// `AIRLOCK_DATABASE_URL`, `AIRLOCK_LISTEN`, `AIRLOCK_GITHUB_SECRET`, `AIRLOCK_SIGNING_KEY` override the file.
    pub fn apply_env(&mut self) {
        if let Ok(v) = std::env::var("AIRLOCK_DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Ok(v) = std::env::var("AIRLOCK_LISTEN") {
            self.listen = v;
        }
        if let Ok(v) = std::env::var("AIRLOCK_GITHUB_SECRET") {
            self.webhooks.github_secret = Some(v);
        }
        if let Ok(v) = std::env::var("AIRLOCK_SIGNING_KEY") {
            self.signing.key = Some(PathBuf::from(v));
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("airlock.db").display()
            )
        })
    }
    pub fn boundary_dir(&self) -> PathBuf {
        self.boundary
            .layout
            .clone()
            .unwrap_or_else(|| self.data_dir.join("boundary"))
    }
    pub fn key_path(&self) -> PathBuf {
        self.signing
            .key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys/airlock.key"))
    }
    pub fn public_key_path(&self) -> PathBuf {
        self.key_path().with_extension("pub")
    }
    pub fn policy_dir(&self) -> PathBuf {
        self.policy
            .dir
            .clone()
            .unwrap_or_else(|| source_root().join("policies/gate"))
    }
    pub fn admission_dir(&self) -> PathBuf {
        self.policy_dir()
            .parent()
            .map(|p| p.join("admission"))
            .unwrap_or_else(|| source_root().join("policies/admission"))
    }
    pub fn waivers_path(&self) -> PathBuf {
        self.policy
            .waivers
            .clone()
            .unwrap_or_else(|| source_root().join("policies/waivers.toml"))
    }
    pub fn vulndb_dir(&self) -> PathBuf {
        self.vulndb
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("vulndb"))
    }
    pub fn bases_dir(&self) -> PathBuf {
        self.bases_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("bases"))
    }
    pub fn runs_dir(&self) -> PathBuf {
        self.data_dir.join("runs")
    }
    pub fn sources_dir(&self) -> PathBuf {
        self.data_dir.join("sources")
    }
    pub fn work_layout_dir(&self) -> PathBuf {
        self.data_dir.join("work")
    }

    /// The stack a descriptor asks for, or a sentence saying which stacks exist.
    pub fn stack(&self, name: Option<&str>) -> Result<&Stack, String> {
        let names = || {
            self.stacks
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match name {
            Some(n) => self.stacks.iter().find(|s| s.name == n).ok_or_else(|| {
                format!(
                    "stack {n:?} is not approved on this platform (approved: {})",
                    names()
                )
            }),
            None => self
                .stacks
                .first()
                .ok_or_else(|| "no stack is configured on this platform".to_string()),
        }
    }
}
