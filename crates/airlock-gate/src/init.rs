//! First-start set-up of a data directory: dev keys, the approved static base, the vulnerability database,
//! a team token and a config file that names all of it.

use crate::auth;
use crate::config::GateConfig;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// What `init_data_dir` made, for the caller to print.
pub struct Initialized {
    pub config: GateConfig,
    pub config_path: PathBuf,
    /// The demo team's token in clear text: shown once, stored only as a hash.
    pub token: String,
    pub generated_key: bool,
    /// The builder image of stack `rust-static`, or why there is none (builds then use the host builder).
    pub builder: Result<airlock_build::ToolchainImage, String>,
}

/// Where the shared OSV exports live in a checkout (`../shared/vulndb` beside the repository).
pub fn default_vulndb_source() -> PathBuf {
    crate::config::source_root().join("../shared/vulndb")
}

/// Generates the signing key pair if none exists; returns whether it did.
pub fn ensure_keys(config: &GateConfig) -> anyhow::Result<bool> {
    let key_path = config.key_path();
    if key_path.exists() {
        return Ok(false);
    }
    let dir = key_path
        .parent()
        .context("key path has no parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_key_pair(&key_path, &airlock_sign::SigningKey::generate())?;
    tracing::warn!(
        key = %key_path.display(),
        "generated a development signing key; production must bring its own (signing.key)"
    );
    Ok(true)
}

/// Writes a private key (PKCS#8 PEM, mode 0600, never over an existing file) and its public key beside it (`.pub`).
pub fn write_key_pair(path: &Path, key: &airlock_sign::SigningKey) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(key.to_pkcs8_pem().as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    let public = path.with_extension("pub");
    std::fs::write(&public, key.public_key().to_pem())
        .with_context(|| format!("writing {}", public.display()))?;
    Ok(())
}

/// Makes a complete embedded-defaults data directory: SQLite store, OCI layout boundary, dev keys, the static
/// run base as the approved stack `rust-static`, the vulnerability database imported from `vulndb_source`
/// (when given), environments staging and production, and team `demo` with a fresh token.
pub async fn init_data_dir(
    data_dir: &Path,
    vulndb_source: Option<&Path>,
) -> anyhow::Result<Initialized> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize()?;
    let bases_dir = data_dir.join("bases");
    let bases =
        airlock_oci::OciLayout::open_or_create(&bases_dir).context("creating the bases store")?;
    let base_digest = airlock_build::create_static_base(&bases, "static")
        .await
        .context("creating the static base")?;

    let vulndb_dir = data_dir.join("vulndb");
    let db =
        airlock_scan::VulnDb::open(&vulndb_dir).context("opening the vulnerability database")?;
    if let Some(source) = vulndb_source {
        for entry in
            std::fs::read_dir(source).with_context(|| format!("reading {}", source.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "zip") {
                db.import(&path)
                    .with_context(|| format!("importing {}", path.display()))?;
            }
        }
    }

    let builder = toolchain_builder().await;
    let builder_line = match &builder {
        Ok(image) => format!(
            "builder_image = {:?}\nbuilder_image_digest = {:?}",
            image.name, image.image_id
        ),
        Err(reason) => {
            format!("# No builder image ({reason}), so builds of this stack use the host builder.")
        }
    };

    let token = auth::generate_token();
    let config_path = data_dir.join("gate.toml");
    let text = format!(
        r#"# Written by `airlock-gate demo`/`init`: embedded defaults, development only.
data_dir = {data:?}
listen = "127.0.0.1:0"

[boundary]
layout = {boundary:?}
reference_prefix = "airlock.local"

[signing]
key = {key:?}

[policy]
allow_host_builder = true

[vulndb]
dir = {vulndb:?}

[[stacks]]
name = "rust-static"
# Made from this machine's Rust toolchain when a Docker Engine answers.
{builder_line}
run_image = "static"
run_image_digest = "{base_digest}"
timeout_secs = 600
memory_mb = 2048
cpus = 2.0
network = false

[[environments]]
name = "staging"
namespace = "staging"
ingress_namespace = "ingress"

[[environments]]
name = "production"
namespace = "production"
ingress_namespace = "ingress"

[[teams]]
name = "demo"
token_hashes = ["{hash}"]
"#,
        data = data_dir.display().to_string(),
        boundary = data_dir.join("boundary").display().to_string(),
        key = data_dir.join("keys/airlock.key").display().to_string(),
        vulndb = vulndb_dir.display().to_string(),
        hash = auth::hash_token(&token),
    );
    std::fs::write(&config_path, text)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let config = GateConfig::load(&config_path)?;
    let generated_key = ensure_keys(&config)?;
    Ok(Initialized {
        config,
        config_path,
        token,
        generated_key,
        builder,
    })
}

/// The Docker builder image of the embedded `rust-static` stack: made from this machine's Rust toolchain when
/// a Docker Engine answers; otherwise the reason, and builds use the host builder.
async fn toolchain_builder() -> Result<airlock_build::ToolchainImage, String> {
    let docker = airlock_build::connect_docker()
        .await
        .map_err(|e| e.to_string())?;
    airlock_build::ensure_toolchain_image(&docker)
        .await
        .map_err(|e| format!("cannot make the toolchain builder image: {e}"))
}
