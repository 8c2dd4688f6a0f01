//! cosign's encrypted private key format, so a key made by `cosign generate-key-pair` can sign for the gate
//! and a key made by `airlock-gate keys generate --encrypt` can be used by cosign.
//!
//! The PEM block (`ENCRYPTED SIGSTORE PRIVATE KEY`, older cosign: `ENCRYPTED COSIGN PRIVATE KEY`) holds
//! JSON: `{"kdf": {"name": "scrypt", "params": {"N", "r", "p"}, "salt"}, "cipher": {"name":
//! "nacl/secretbox", "nonce"}, "ciphertext"}` (binary fields in standard base64). The 32-byte secretbox key
//! is scrypt(password, salt, N, r, p); the plaintext is the PKCS#8 DER of the private key; the ciphertext is
//! NaCl's `secretbox` output (Poly1305 tag, then XSalsa20 ciphertext).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::SignError;

/// The PEM label cosign writes today.
pub const ENCRYPTED_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The PEM label older cosign versions wrote; accepted on read.
pub const LEGACY_ENCRYPTED_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// scrypt `log2(N)` written (N = 65536, as cosign writes).
pub const WRITE_LOG_N: u8 = 16;
/// Largest scrypt `log2(N)` accepted on read: bounds the memory (128 · r · N bytes) a hostile file can demand.
pub const MAX_LOG_N: u8 = 20;
/// Largest scrypt `r` and `p` accepted on read.
pub const MAX_R: u32 = 32;
/// Largest scrypt `p` accepted on read.
pub const MAX_P: u32 = 16;

#[derive(Serialize, Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[allow(non_snake_case)] // the field names are the format's
struct KdfParams {
    N: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

fn key_err(reason: impl Into<String>) -> SignError {
    SignError::Key {
        what: "encrypted private key".to_string(),
        reason: reason.into(),
    }
}

/// True when `pem` is one of cosign's encrypted key blocks.
pub fn is_encrypted_pem(pem: &str) -> bool {
    pem.contains(&format!("BEGIN {ENCRYPTED_LABEL}"))
        || pem.contains(&format!("BEGIN {LEGACY_ENCRYPTED_LABEL}"))
}

/// The base64 body of the PEM block labelled `label`.
fn pem_body(pem: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    Some(pem[start..stop].split_whitespace().collect())
}

fn derive(
    password: &[u8],
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 32]>, SignError> {
    let params = scrypt::Params::new(log_n, r, p).map_err(|_| {
        key_err(format!(
            "invalid scrypt parameters N=2^{log_n}, r={r}, p={p}"
        ))
    })?;
    let mut out = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, salt, &params, out.as_mut()).map_err(|_| key_err("scrypt failed"))?;
    Ok(out)
}

/// Decrypts a cosign encrypted key block with `password` and returns the PKCS#8 DER inside. A wrong
/// password and a modified file both fail authentication and are reported as such (never with key material).
pub fn decrypt(pem: &str, password: &[u8]) -> Result<Zeroizing<Vec<u8>>, SignError> {
    let body = pem_body(pem, ENCRYPTED_LABEL)
        .or_else(|| pem_body(pem, LEGACY_ENCRYPTED_LABEL))
        .ok_or_else(|| key_err(format!("no {ENCRYPTED_LABEL} PEM block")))?;
    let json = B64
        .decode(body.as_bytes())
        .map_err(|_| key_err("PEM body is not base64"))?;
    let enc: EncryptedKey = serde_json::from_slice(&json)
        .map_err(|e| key_err(format!("not cosign's encrypted key JSON: {e}")))?;
    if enc.kdf.name != "scrypt" {
        return Err(key_err(format!(
            "unsupported kdf {:?} (expected scrypt)",
            enc.kdf.name
        )));
    }
    if enc.cipher.name != "nacl/secretbox" {
        return Err(key_err(format!(
            "unsupported cipher {:?} (expected nacl/secretbox)",
            enc.cipher.name
        )));
    }
    let n = enc.kdf.params.N;
    if !n.is_power_of_two() || n < 2 || n.trailing_zeros() > u32::from(MAX_LOG_N) {
        return Err(key_err(format!(
            "scrypt N={n} must be a power of two up to 2^{MAX_LOG_N}"
        )));
    }
    let (r, p) = (enc.kdf.params.r, enc.kdf.params.p);
    if r == 0 || r > MAX_R || p == 0 || p > MAX_P {
        return Err(key_err(format!(
            "scrypt r={r}, p={p} out of range (r 1..={MAX_R}, p 1..={MAX_P})"
        )));
    }
    let salt = B64
        .decode(enc.kdf.salt.as_bytes())
        .map_err(|_| key_err("salt is not base64"))?;
    let nonce = B64
        .decode(enc.cipher.nonce.as_bytes())
        .map_err(|_| key_err("nonce is not base64"))?;
    let nonce: [u8; 24] = nonce
        .try_into()
        .map_err(|n: Vec<u8>| key_err(format!("nonce is {} bytes, expected 24", n.len())))?;
    let ciphertext = B64
        .decode(enc.ciphertext.as_bytes())
        .map_err(|_| key_err("ciphertext is not base64"))?;
    let key = derive(password, &salt, n.trailing_zeros() as u8, r, p)?;
    let cipher = XSalsa20Poly1305::new(key.as_ref().into());
    let plain = cipher
        .decrypt(&Nonce::from(nonce), ciphertext.as_slice())
        .map_err(|_| key_err("wrong password, or the file was modified (authentication failed)"))?;
    Ok(Zeroizing::new(plain))
}

/// Encrypts `pkcs8_der` with `password` into cosign's format (scrypt N=2^16, r=8, p=1; fresh random salt
/// and nonce) and returns the PEM text.
pub fn encrypt(pkcs8_der: &[u8], password: &[u8]) -> Result<String, SignError> {
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut salt).map_err(|e| key_err(format!("no randomness: {e}")))?;
    getrandom::fill(&mut nonce).map_err(|e| key_err(format!("no randomness: {e}")))?;
    let key = derive(password, &salt, WRITE_LOG_N, 8, 1)?;
    let cipher = XSalsa20Poly1305::new(key.as_ref().into());
    let ciphertext = cipher
        .encrypt(&Nonce::from(nonce), pkcs8_der)
        .map_err(|_| key_err("encryption failed"))?;
    let enc = EncryptedKey {
        kdf: Kdf {
            name: "scrypt".into(),
            params: KdfParams {
                N: 1u64 << WRITE_LOG_N,
                r: 8,
                p: 1,
            },
            salt: B64.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: B64.encode(nonce),
        },
        ciphertext: B64.encode(&ciphertext),
    };
    let json = serde_json::to_vec(&enc).map_err(|e| key_err(format!("encoding: {e}")))?;
    let body = B64.encode(json);
    let mut pem = format!("-----BEGIN {ENCRYPTED_LABEL}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {ENCRYPTED_LABEL}-----\n"));
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key written by `cosign generate-key-pair` with an empty password (a public test fixture of a
    /// cosign-based project): proves we read cosign's real output, not only our own.
    const COSIGN_EMPTY_PASSWORD_KEY: &str = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjo2NTUzNiwiciI6
OCwicCI6MX0sInNhbHQiOiJLYU9OQzduQVJLOVgxM1FoaWFucjAwTTBGYys2Sitr
dnAxN1FuanpiVk9nPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJVOHZqWWtqMlZOUFZGdlZFZWZ3bXZ5VGloUERrelBoaCJ9LCJj
aXBoZXJ0ZXh0IjoidWNWMnQ4TTZVNFJvb29FOXc0d3dkc3E1RDYrS2RKY245dERT
KzFwRDRGN040SVJOWEgzSTBua3h1a3NackFOUHR1emIvTkVYQ201dUp3Zjh3Qzl1
VlprbXdwNU5jRUZ6b3ZNS3JCZmNvdXdjaEkrMzkrQ0NhbVZPbzBucmRnZjhvcmpK
dXdrWDBYL1phY0RUTERGaUxyc1laMWVMMmlqMGU1MVRpZmVQNTl4WXNPK1FnM1Jv
OURRVjNQMk9ndDFDaVFHeGg1VXhUZytGc3c9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----
";

    #[test]
    fn decrypts_a_key_written_by_cosign() {
        let der = decrypt(COSIGN_EMPTY_PASSWORD_KEY, b"").unwrap();
        let key = crate::SigningKey::from_pkcs8_der(&der).unwrap();
        let sig = key.sign(b"m");
        assert!(key.public_key().verifies(b"m", &sig));
        let err = decrypt(COSIGN_EMPTY_PASSWORD_KEY, b"not the password").unwrap_err();
        assert!(err.to_string().contains("wrong password"), "{err}");
    }

    #[test]
    fn encrypt_then_decrypt_round_trips() {
        let pem = encrypt(b"secret der", b"pw").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        assert!(is_encrypted_pem(&pem));
        assert_eq!(decrypt(&pem, b"pw").unwrap().as_slice(), b"secret der");
        assert!(decrypt(&pem, b"pW").is_err());
    }

    #[test]
    fn refuses_hostile_scrypt_parameters() {
        let json = serde_json::json!({
            "kdf": {"name": "scrypt", "params": {"N": 1u64 << 30, "r": 8, "p": 1}, "salt": "AAAA"},
            "cipher": {"name": "nacl/secretbox", "nonce": B64.encode([0u8; 24])},
            "ciphertext": "AAAA",
        });
        let pem = format!(
            "-----BEGIN {ENCRYPTED_LABEL}-----\n{}\n-----END {ENCRYPTED_LABEL}-----\n",
            B64.encode(json.to_string())
        );
        let err = decrypt(&pem, b"").unwrap_err();
        assert!(err.to_string().contains("power of two up to"), "{err}");
    }
}
