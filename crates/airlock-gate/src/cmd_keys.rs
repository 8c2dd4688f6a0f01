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
use airlock_oci::{Digest, LayoutRoot};
use airlock_sign::{PublicKey, SigningKey};
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Environment variable holding the password of an encrypted signing key (for `keys generate --encrypt`
/// and for loading such a key).
pub const PASSWORD_ENV: &str = "AIRLOCK_SIGNING_KEY_PASSWORD";
/// Environment variable that may hold the signing key's PEM text itself instead of a file.
pub const PEM_ENV: &str = "AIRLOCK_SIGNING_KEY_PEM";

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

fn password_from_env() -> Option<zeroize::Zeroizing<Vec<u8>>> {
    std::env::var_os(PASSWORD_ENV).map(|p| zeroize::Zeroizing::new(p.into_encoded_bytes()))
}

/// Loads the gate's signing key: the PEM text in AIRLOCK_SIGNING_KEY_PEM when set, else the configured key
/// file; an encrypted key is decrypted with AIRLOCK_SIGNING_KEY_PASSWORD. Errors name the variable or
/// file, never key material or the password.
pub fn load_signing_key(config: &GateConfig) -> anyhow::Result<SigningKey> {
    if let Some(key) = SigningKey::from_env(PEM_ENV, PASSWORD_ENV)? {
        return Ok(key);
    }
    let password = password_from_env();
    let path = config.key_path();
    SigningKey::load_with_password(&path, password.as_ref().map(|p| p.as_slice()))
        .with_context(|| format!("loading the signing key {}", path.display()))
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
    let root = LayoutRoot::open_or_create(&config.boundary_dir())
        .with_context(|| format!("opening the boundary {}", config.boundary_dir().display()))?;
    let store = root
        .repo(airlock_sign::REVOCATIONS_REPOSITORY)
        .context("opening the revocations repository")?;
    let docker_reference = format!(
        "{}/{}",
        config.boundary.reference_prefix,
        airlock_sign::REVOCATIONS_REPOSITORY
    );
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
