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
    /// Largest accepted webhook body, in bytes (GitHub caps its payloads at 25 MB).
    #[serde(default = "default_max_webhook_body")]
    pub max_webhook_bytes: usize,
    /// Seconds a client may take to send a request's headers; a connection that trickles them is closed, so a
    /// slow client holds no connection slot. Env: `AIRLOCK_HEADER_READ_TIMEOUT_SECS`.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    /// Seconds a client may take to send a request's body (and the gate to answer it); past that the gate
    /// answers 408, closes the connection and keeps nothing of the request. Large enough for a source tarball
    /// over a slow link. Env: `AIRLOCK_BODY_READ_TIMEOUT_SECS`.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout_secs: u64,
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundaryConfig {
    /// An OCI layout root directory (one repository per app). Defaults to `DATA/boundary`.
    pub layout: Option<PathBuf>,
    /// The repository prefix signatures name as `docker-reference` (`PREFIX/APP`).
    #[serde(default = "default_reference_prefix")]
    pub reference_prefix: String,
}

// Written out rather than derived: a config without a `[boundary]` section must sign for the same prefix as
// one with an empty section, not for an empty prefix (`/APP`).
impl Default for BoundaryConfig {
    fn default() -> Self {
        Self {
            layout: None,
            reference_prefix: default_reference_prefix(),
        }
    }
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

/// What a token may do. Ordered: each role may do everything the roles before it may.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Submits to its team's apps and sees its team's runs.
    #[default]
    Developer,
    /// Sees and cancels every team's runs.
    Operator,
    /// Also waivers, rebase and key operations.
    Admin,
}

impl Role {
    /// The config and audit name (`developer`, `operator`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Developer => "developer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A team and the hashes of its API tokens.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    pub name: String,
    /// The role of the tokens in `token_hashes` (default `developer`).
    #[serde(default)]
    pub role: Role,
    /// `sha256:<hex>` of each token; tokens themselves are never stored.
    #[serde(default)]
    pub token_hashes: Vec<String>,
    /// Named tokens, each with its own role; the name is what the audit log records as the actor.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// One named token of a team.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (a person or a CI system), for the audit log.
    pub name: String,
    /// `sha256:<hex>` of the token.
    pub hash: String,
    /// Defaults to the team's role.
    #[serde(default)]
    pub role: Option<Role>,
}

impl fmt::Debug for TeamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeamConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("tokens", &(self.token_hashes.len() + self.tokens.len()))
            .finish()
    }
}

/// Webhook secrets, by git host, and which repositories start runs of which apps.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The shared secret GitHub signs deliveries with (`X-Hub-Signature-256`). Env: `AIRLOCK_GITHUB_SECRET`.
    pub github_secret: Option<String>,
    /// The secret token GitLab sends as `X-Gitlab-Token`. Env: `AIRLOCK_GITLAB_TOKEN`.
    pub gitlab_token: Option<String>,
    /// The secret Gitea and Forgejo sign deliveries with (`X-Gitea-Signature`). Env: `AIRLOCK_GITEA_SECRET`.
    pub gitea_secret: Option<String>,
    /// Repositories mapped to apps. When empty, any repository's push to any branch starts a run and the app and
    /// team come from its `airlock.toml`; when set, only the listed repositories and branches do.
    #[serde(default)]
    pub repositories: Vec<RepositoryConfig>,
}

/// One repository a git host sends pushes for.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    /// The repository as the host names it (`group/project`), or its clone URL.
    pub repository: String,
    /// The app its pushes build.
    pub app: String,
    /// The team that owns the app.
    pub team: String,
    /// Branches whose pushes start runs (default `["main"]`).
    #[serde(default = "default_branches")]
    pub branches: Vec<String>,
    /// Whether tag pushes start runs too.
    #[serde(default)]
    pub tags: bool,
    /// Fetch from this URL instead of the clone URL in the event.
    #[serde(default)]
    pub clone_url: Option<String>,
    /// HTTP token to fetch with (sent as the URL's password; never logged or stored with the run).
    #[serde(default)]
    pub fetch_token: Option<String>,
    /// User name to go with `fetch_token` (default `oauth2`, which GitHub, GitLab and Gitea accept).
    #[serde(default)]
    pub fetch_user: Option<String>,
    /// Private key for `ssh://` (and `git@host:path`) clone URLs: git runs
    /// `ssh -i KEY -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes ...` for this repository only. The gate
    /// passes the path to ssh and never reads, logs or shows the key itself.
    #[serde(default)]
    pub ssh_key_file: Option<PathBuf>,
    /// The known_hosts file that holds the git host's key (default: the gate user's `~/.ssh/known_hosts`). Host
    /// keys are always checked: an unknown or changed host key fails the fetch.
    #[serde(default)]
    pub ssh_known_hosts: Option<PathBuf>,
}

impl fmt::Debug for RepositoryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepositoryConfig")
            .field("repository", &self.repository)
            .field("app", &self.app)
            .field("team", &self.team)
            .field("branches", &self.branches)
            .field("tags", &self.tags)
            .field("clone_url", &self.clone_url)
            .field("fetch_token", &self.fetch_token.as_ref().map(|_| "***"))
            .field("ssh_key_file", &self.ssh_key_file)
            .field("ssh_known_hosts", &self.ssh_known_hosts)
            .finish()
    }
}

impl RepositoryConfig {
    /// Whether this mapping is for the repository an event names (by full name or clone URL).
    pub fn matches(&self, full_name: &str, clone_url: &str) -> bool {
        let norm = |s: &str| {
            s.trim_end_matches('/')
                .trim_end_matches(".git")
                .to_ascii_lowercase()
        };
        let want = norm(&self.repository);
        want == norm(full_name) || want == norm(clone_url)
    }
}

fn default_branches() -> Vec<String> {
    vec!["main".into()]
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("WebhookConfig")
            .field("github_secret", &set(&self.github_secret))
            .field("gitlab_token", &set(&self.gitlab_token))
            .field("gitea_secret", &set(&self.gitea_secret))
            .field("repositories", &self.repositories)
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
fn default_max_webhook_body() -> usize {
    25 * 1024 * 1024
}
fn default_header_read_timeout() -> u64 {
    10
}
fn default_body_read_timeout() -> u64 {
    300
}
fn default_reference_prefix() -> String {
    "airlock.local".into()
}
fn default_true() -> bool {
    true
}

/// `text` in single quotes for a POSIX shell (git runs `core.sshCommand` through `sh`).
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
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

    /// `AIRLOCK_DATABASE_URL`, `AIRLOCK_LISTEN`, `AIRLOCK_GITHUB_SECRET`, `AIRLOCK_GITLAB_TOKEN`,
    /// `AIRLOCK_GITEA_SECRET`, `AIRLOCK_SIGNING_KEY`, `AIRLOCK_HEADER_READ_TIMEOUT_SECS`,
    /// `AIRLOCK_BODY_READ_TIMEOUT_SECS` override the file.
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
        if let Ok(v) = std::env::var("AIRLOCK_GITLAB_TOKEN") {
            self.webhooks.gitlab_token = Some(v);
        }
        if let Ok(v) = std::env::var("AIRLOCK_GITEA_SECRET") {
            self.webhooks.gitea_secret = Some(v);
        }
        if let Ok(v) = std::env::var("AIRLOCK_SIGNING_KEY") {
            self.signing.key = Some(PathBuf::from(v));
        }
        // An unparsable value keeps the file's: the override is for operators, and `serve` logs the values used.
        if let Some(v) = env_u64("AIRLOCK_HEADER_READ_TIMEOUT_SECS") {
            self.header_read_timeout_secs = v;
        }
        if let Some(v) = env_u64("AIRLOCK_BODY_READ_TIMEOUT_SECS") {
            self.body_read_timeout_secs = v;
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

    /// The URL to fetch a git run's source from, with the mapped repository's credentials when it has any.
    /// The result may hold a secret: pass it to the fetcher only, never to a log, and clean error messages
    /// with [`GateConfig::scrub`].
    pub fn fetch_url(&self, source_ref: &str) -> String {
        let Some(repo) = self.mapping_for(source_ref) else {
            return source_ref.to_string();
        };
        match (&repo.fetch_token, source_ref.split_once("://")) {
            (Some(token), Some((scheme, rest))) if scheme.starts_with("http") => format!(
                "{scheme}://{}:{token}@{rest}",
                repo.fetch_user.as_deref().unwrap_or("oauth2")
            ),
            _ => source_ref.to_string(),
        }
    }

    /// The ssh command git runs to fetch `source_ref`, when its repository mapping names an `ssh_key_file`: only
    /// that key is offered (`IdentitiesOnly`), the host key must be known (`StrictHostKeyChecking=yes`, against
    /// `ssh_known_hosts` when set), and ssh never prompts (`BatchMode`). Paths are shell-quoted; the command holds
    /// no secret, only where the key is.
    pub fn fetch_ssh_command(&self, source_ref: &str) -> Option<String> {
        let repo = self.mapping_for(source_ref)?;
        let key = repo.ssh_key_file.as_ref()?;
        let mut command = format!(
            "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes",
            shell_quote(&key.display().to_string())
        );
        if let Some(known) = &repo.ssh_known_hosts {
            command.push_str(&format!(
                " -o UserKnownHostsFile={}",
                shell_quote(&known.display().to_string())
            ));
        }
        Some(command)
    }

    /// The repository mapping a run's source URL belongs to (by its configured clone URL or its name).
    fn mapping_for(&self, source_ref: &str) -> Option<&RepositoryConfig> {
        self.webhooks
            .repositories
            .iter()
            .find(|r| r.clone_url.as_deref() == Some(source_ref) || r.matches("", source_ref))
    }

    /// Replaces every configured secret in `text` with `***`, for messages that may quote a fetch URL.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        let secrets = self
            .webhooks
            .repositories
            .iter()
            .filter_map(|r| r.fetch_token.as_deref())
            .chain(self.webhooks.github_secret.as_deref())
            .chain(self.webhooks.gitlab_token.as_deref())
            .chain(self.webhooks.gitea_secret.as_deref());
        for s in secrets.filter(|s| !s.is_empty()) {
            out = out.replace(s, "***");
        }
        out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_without_a_boundary_section_signs_for_the_default_prefix() {
        let cfg: GateConfig = toml::from_str("data_dir = \"/tmp/x\"\n").expect("config parses");
        let empty: GateConfig =
            toml::from_str("data_dir = \"/tmp/x\"\n[boundary]\n").expect("config parses");
        assert_eq!(cfg.boundary.reference_prefix, "airlock.local");
        assert_eq!(empty.boundary.reference_prefix, "airlock.local");
    }

    fn config_with_repo() -> GateConfig {
        toml::from_str(
            r#"
data_dir = "/tmp/x"
[webhooks]
gitlab_token = "hook-secret"
[[webhooks.repositories]]
repository = "acme/hello"
app = "hello"
team = "payments"
clone_url = "https://git.example/acme/hello.git"
fetch_token = "glpat-SECRET"
"#,
        )
        .expect("config parses")
    }

    #[test]
    fn fetch_url_carries_the_token_and_scrub_removes_it() {
        let cfg = config_with_repo();
        let url = cfg.fetch_url("https://git.example/acme/hello.git");
        assert_eq!(
            url,
            "https://oauth2:glpat-SECRET@git.example/acme/hello.git"
        );
        assert_eq!(
            cfg.fetch_url("https://other.example/x.git"),
            "https://other.example/x.git"
        );
        let message = format!("fetching {url}: 401");
        assert_eq!(
            cfg.scrub(&message),
            "fetching https://oauth2:***@git.example/acme/hello.git: 401"
        );
        let debug = format!("{cfg:?}");
        assert!(
            !debug.contains("glpat-SECRET") && !debug.contains("hook-secret"),
            "{debug}"
        );
    }

    #[test]
    fn ssh_key_mapping_gives_a_strict_ssh_command_for_that_repository_only() {
        let cfg: GateConfig = toml::from_str(
            r#"
data_dir = "/tmp/x"
[[webhooks.repositories]]
repository = "acme/hello"
app = "hello"
team = "payments"
clone_url = "ssh://git@git.example:2222/acme/hello.git"
ssh_key_file = "/etc/airlock/keys/it's hello"
ssh_known_hosts = "/etc/airlock/known_hosts"
"#,
        )
        .expect("config parses");
        let command = cfg
            .fetch_ssh_command("ssh://git@git.example:2222/acme/hello.git")
            .expect("a mapped repository with a key gets a command");
        assert_eq!(
            command,
            "ssh -i '/etc/airlock/keys/it'\\''s hello' -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=yes -o UserKnownHostsFile='/etc/airlock/known_hosts'"
        );
        assert_eq!(
            cfg.fetch_ssh_command("ssh://git@git.example/other.git"),
            None
        );
        // The URL itself is not changed for ssh: the key goes to ssh, not into the URL.
        assert_eq!(
            cfg.fetch_url("ssh://git@git.example:2222/acme/hello.git"),
            "ssh://git@git.example:2222/acme/hello.git"
        );
    }

    #[test]
    fn roles_parse_and_order() {
        let cfg: GateConfig = toml::from_str(
            r#"
data_dir = "/tmp/x"
[[teams]]
name = "ops"
role = "operator"
token_hashes = []
tokens = [{ name = "alice", hash = "sha256:00", role = "admin" }]
"#,
        )
        .expect("config parses");
        assert_eq!(cfg.teams[0].role, Role::Operator);
        assert_eq!(cfg.teams[0].tokens[0].role, Some(Role::Admin));
        assert!(Role::Developer < Role::Operator && Role::Operator < Role::Admin);
        let err = toml::from_str::<GateConfig>(
            "data_dir = \"/x\"\n[[teams]]\nname = \"a\"\nrole = \"root\"\n",
        )
        .expect_err("unknown role");
        assert!(err.to_string().contains("root"), "{err}");
    }
}
