//! Operator commands for signing keys and revocations: `airlock-gate keys generate|id` and
//! `airlock-gate revoke DIGEST --reason TEXT`.
//!
//! A key id is `sha256:` + hex of the SHA-256 of the public key's SubjectPublicKeyInfo DER (what
//! `openssl pkey -pubin -outform DER | sha256sum` gives); it is the DSSE `keyid` of every attestation and
//! the value an agent's trust config may pin.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use airlock_gate::config::GateConfig;
pub use airlock_gate::server::{PASSWORD_ENV, load_signing_key, password_from_env};
use airlock_oci::{Digest, LayoutRoot, OciLayout};
use airlock_sign::{PublicKey, SigningKey};
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate an ECDSA P-256 key pair (PKCS#8 PEM private key, mode 0600, and OUT.pub); prints the key id.
    Generate {
        /// Path of the private key to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Write cosign's encrypted format (`ENCRYPTED SIGSTORE PRIVATE KEY`, scrypt + NaCl secretbox) with
        /// the password from AIRLOCK_SIGNING_KEY_PASSWORD, readable by `cosign sign --key`.
        #[arg(long)]
        encrypt: bool,
    },
    /// Print the key id of a public or private key file (private keys may be encrypted: password from
    /// AIRLOCK_SIGNING_KEY_PASSWORD).
    Id {
        /// The key file.
        path: PathBuf,
    },
}

/// Arguments of `airlock-gate revoke`.
#[derive(Args)]
pub struct RevokeArgs {
    /// The image or release manifest digest that must no longer run (`sha256:<hex>`).
    pub digest: String,
    /// Why (recorded in the signed list and shown by agents that refuse it).
    #[arg(long)]
    pub reason: String,
    /// The platform config file (boundary, reference prefix and signing key).
    #[arg(long, env = "AIRLOCK_CONFIG")]
    pub config: PathBuf,
}

fn write_new(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The boundary repository `name` of the configured gate (created if missing) and its docker reference
/// (`<reference prefix>/<name>`), for what the gate publishes beside releases; `what` names it in errors.
pub fn boundary_repo(
    config: &GateConfig,
    name: &str,
    what: &str,
) -> anyhow::Result<(OciLayout, String)> {
    let root = LayoutRoot::open_or_create(&config.boundary_dir())
        .with_context(|| format!("opening the boundary {}", config.boundary_dir().display()))?;
    let store = root.repo(name).with_context(|| format!("opening {what}"))?;
    Ok((
        store,
        format!("{}/{name}", config.boundary.reference_prefix),
    ))
}

/// Runs a `keys` subcommand.
pub fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Generate { out, encrypt } => {
            let key = SigningKey::generate();
            if encrypt {
                let Some(password) = password_from_env() else {
                    bail!("--encrypt needs the password in {PASSWORD_ENV}");
                };
                if password.is_empty() {
                    bail!("{PASSWORD_ENV} is empty; choose a password");
                }
                let pem = key.to_encrypted_pem(&password)?;
                let public = out.with_extension("pub");
                if public.exists() {
                    bail!("{} already exists; not overwriting it", public.display());
                }
                write_new(&out, &pem, 0o600)?;
                write_new(&public, &key.public_key().to_pem(), 0o644)?;
            } else {
                airlock_gate::init::write_key_pair(&out, &key)?;
            }
            let kind = if encrypt {
                "cosign encrypted"
            } else {
                "PKCS#8"
            };
            println!("private key {} ({kind}, mode 0600)", out.display());
            println!("public key  {}", out.with_extension("pub").display());
            println!("key id      {}", key.public_key().key_id());
        }
        KeysCommand::Id { path } => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let public = if text.contains("PUBLIC KEY") {
                PublicKey::from_pem(&text).with_context(|| path.display().to_string())?
            } else {
                let password = password_from_env();
                SigningKey::load_with_password(&path, password.as_ref().map(|p| p.as_slice()))?
                    .public_key()
            };
            println!("{}", public.key_id());
        }
    }
    Ok(())
}

/// `airlock-gate revoke`: adds the digest to the signed revocation list at the boundary.
pub async fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    let digest = Digest::parse(&args.digest)
        .with_context(|| format!("{:?} is not a digest (sha256:<64 hex>)", args.digest))?;
    let config = GateConfig::load(&args.config)?;
    let key = load_signing_key(&config)?;
    let (store, docker_reference) = boundary_repo(
        &config,
        airlock_sign::REVOCATIONS_REPOSITORY,
        "the revocations repository",
    )?;
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .context("formatting the time")?;
    let published = airlock_sign::publish_revocation(
        &store,
        &docker_reference,
        &digest,
        &args.reason,
        &now,
        &key,
    )
    .await
    .with_context(|| format!("revoking {digest}"))?;
    println!(
        "revoked     {digest}\nlist        {docker_reference}:{} (sequence {}, {} digests)\nsigned by   {}",
        airlock_sign::REVOCATIONS_TAG,
        published.list.sequence,
        published.list.revoked.len(),
        published.signed_by
    );
    Ok(())
}
