//! ECDSA P-256 keys (cosign's default algorithm): loading and saving as PEM, signing with DER signatures,
//! key ids, and the set of public keys a verifier trusts.

use std::fmt;
use std::path::Path;

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::elliptic_curve::Generate as _;
use p256::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
    LineEnding,
};
use sha2::{Digest as _, Sha256};

use crate::SignError;

/// Largest key file read (a P-256 PEM is a few hundred bytes).
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// A private signing key (ECDSA P-256 with SHA-256, as cosign uses by default).
///
/// Its `Debug` output shows only the key id, never key material.
#[derive(Clone)]
pub struct SigningKey {
    inner: p256::ecdsa::SigningKey,
}

/// A public verification key (ECDSA P-256).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: VerifyingKey,
}

/// The id of a public key: `sha256:` + hex of the SHA-256 of its SubjectPublicKeyInfo DER. Used as the DSSE
/// `keyid` and in error messages, so an operator can tell which key signed (or which key is missing).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// The id as a string (`sha256:<hex>`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn read_key_file(path: &Path) -> Result<String, SignError> {
    let key_err = |reason: String| SignError::Key {
        what: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| key_err(e.to_string()))?;
    if meta.len() > MAX_KEY_FILE {
        return Err(key_err(format!(
            "file is {} bytes, more than the {MAX_KEY_FILE} bytes a key file may have",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| key_err(e.to_string()))?;
    String::from_utf8(bytes).map_err(|_| key_err("not a PEM text file".to_string()))
}

impl SigningKey {
    /// A new random key from the operating system's random number generator.
    pub fn generate() -> Self {
        SigningKey {
            inner: p256::ecdsa::SigningKey::generate(),
        }
    }

    /// Reads an unencrypted private key: PKCS#8 (`BEGIN PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`, as
    /// `openssl ecparam -genkey` writes). Encrypted keys (cosign's own format) are refused with a hint.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, SignError> {
        let key_err = |reason: &str| SignError::Key {
            what: "PEM private key".to_string(),
            reason: reason.to_string(),
        };
        if pem.contains("ENCRYPTED") {
            return Err(key_err(
                "the key is encrypted: give its password (AIRLOCK_SIGNING_KEY_PASSWORD), \
                 or use an unencrypted PKCS#8 P-256 key (`openssl pkcs8 -topk8 -nocrypt`)",
            ));
        }
        if pem.contains("BEGIN EC PRIVATE KEY") {
            let secret = p256::SecretKey::from_sec1_pem(pem)
                .map_err(|_| key_err("not a valid SEC1 P-256 private key"))?;
            return Ok(SigningKey {
                inner: secret.into(),
            });
        }
        let inner = p256::ecdsa::SigningKey::from_pkcs8_pem(pem)
            .map_err(|_| key_err("not a valid PKCS#8 P-256 private key (BEGIN PRIVATE KEY)"))?;
        Ok(SigningKey { inner })
    }

    /// Reads a private key in any supported PEM form: cosign's encrypted format (`ENCRYPTED SIGSTORE PRIVATE
    /// KEY`, decrypted with `password`), PKCS#8 or SEC1. `password` is ignored for unencrypted keys.
    pub fn from_pem(pem: &str, password: Option<&[u8]>) -> Result<Self, SignError> {
        if crate::encrypted::is_encrypted_pem(pem) {
            let Some(password) = password else {
                return SigningKey::from_pkcs8_pem(pem);
            };
            let der = crate::encrypted::decrypt(pem, password)?;
            return SigningKey::from_pkcs8_der(&der);
        }
        SigningKey::from_pkcs8_pem(pem)
    }

    /// Reads a PKCS#8 DER private key (the plaintext of cosign's encrypted format).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, SignError> {
        let inner = p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|_| SignError::Key {
            what: "PKCS#8 DER private key".to_string(),
            reason: "not a valid PKCS#8 P-256 private key".to_string(),
        })?;
        Ok(SigningKey { inner })
    }

    /// Writes the key in cosign's encrypted format (`ENCRYPTED SIGSTORE PRIVATE KEY`), which
    /// `cosign sign --key` reads with the same password.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> Result<String, SignError> {
        let der = self.inner.to_pkcs8_der().map_err(|_| SignError::Key {
            what: "private key".to_string(),
            reason: "cannot be encoded as PKCS#8".to_string(),
        })?;
        crate::encrypted::encrypt(der.as_bytes(), password)
    }

    /// Reads a private key file, decrypting a cosign encrypted key with `password`; errors name the path.
    pub fn load_with_password(path: &Path, password: Option<&[u8]>) -> Result<Self, SignError> {
        let text = zeroize::Zeroizing::new(read_key_file(path)?);
        SigningKey::from_pem(&text, password).map_err(|e| match e {
            SignError::Key { reason, .. } => SignError::Key {
                what: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// Reads the key from the environment: the PEM text in `pem_var` (e.g. `AIRLOCK_SIGNING_KEY_PEM`, for
    /// secret stores that inject values rather than files) and, for an encrypted key, its password in
    /// `password_var`. `Ok(None)` when `pem_var` is unset. Errors name the variable, never its value.
    pub fn from_env(pem_var: &str, password_var: &str) -> Result<Option<Self>, SignError> {
        let Some(pem) = std::env::var_os(pem_var) else {
            return Ok(None);
        };
        let pem = zeroize::Zeroizing::new(pem.into_string().map_err(|_| SignError::Key {
            what: format!("environment variable {pem_var}"),
            reason: "not UTF-8 text".to_string(),
        })?);
        let password =
            std::env::var_os(password_var).map(|p| zeroize::Zeroizing::new(p.into_encoded_bytes()));
        SigningKey::from_pem(&pem, password.as_ref().map(|p| p.as_slice()))
            .map(Some)
            .map_err(|e| match e {
                SignError::Key { reason, .. } => SignError::Key {
                    what: format!("environment variable {pem_var}"),
                    reason,
                },
                other => other,
            })
    }

    /// Writes the key as unencrypted PKCS#8 PEM (`BEGIN PRIVATE KEY`), readable by OpenSSL and cosign.
    pub fn to_pkcs8_pem(&self) -> String {
        match self.inner.to_pkcs8_pem(LineEnding::LF) {
            Ok(pem) => pem.to_string(),
            // Encoding a valid in-memory P-256 key cannot fail; an empty string would fail loudly on load.
            Err(_) => String::new(),
        }
    }

    /// Reads a private key file (see [`SigningKey::from_pkcs8_pem`]); errors name the path.
    pub fn load(path: &Path) -> Result<Self, SignError> {
        let text = read_key_file(path)?;
        SigningKey::from_pkcs8_pem(&text).map_err(|e| match e {
            SignError::Key { reason, .. } => SignError::Key {
                what: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            inner: *self.inner.verifying_key(),
        }
    }

    /// Signs `msg` (hashed with SHA-256) and returns the ASN.1 DER signature, as cosign and DSSE expect.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let sig: DerSignature = self.inner.sign(msg);
        sig.as_bytes().to_vec()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.public_key().key_id().0)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Reads a public key in PEM (`BEGIN PUBLIC KEY`, SubjectPublicKeyInfo), as `cosign generate-key-pair`
    /// and `openssl ec -pubout` write it.
    pub fn from_pem(pem: &str) -> Result<Self, SignError> {
        let inner = VerifyingKey::from_public_key_pem(pem).map_err(|_| SignError::Key {
            what: "PEM public key".to_string(),
            reason: "not a valid P-256 public key (BEGIN PUBLIC KEY)".to_string(),
        })?;
        Ok(PublicKey { inner })
    }

    /// Writes the key as PEM (`BEGIN PUBLIC KEY`).
    pub fn to_pem(&self) -> String {
        self.inner
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }

    /// The key's id: `sha256:` + hex of the SHA-256 of its SubjectPublicKeyInfo DER.
    pub fn key_id(&self) -> KeyId {
        let der = self
            .inner
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        KeyId(format!("sha256:{}", hex::encode(Sha256::digest(&der))))
    }

    /// Reads a public key file (see [`PublicKey::from_pem`]); errors name the path.
    pub fn load(path: &Path) -> Result<Self, SignError> {
        let text = read_key_file(path)?;
        PublicKey::from_pem(&text).map_err(|e| match e {
            SignError::Key { reason, .. } => SignError::Key {
                what: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// True when `der_sig` is a valid DER ECDSA-SHA256 signature of `msg` by this key.
    pub fn verifies(&self, msg: &[u8], der_sig: &[u8]) -> bool {
        match DerSignature::from_bytes(der_sig) {
            Ok(sig) => self.inner.verify(msg, &sig).is_ok(),
            Err(_) => false,
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id().0)
            .finish()
    }
}

/// The public keys a verifier trusts. Several keys are allowed so that a key rotation has no gap: trust the
/// new key, re-sign with it, then drop the old one.
#[derive(Clone, Debug, Default)]
pub struct TrustSet {
    /// The trusted keys.
    pub keys: Vec<PublicKey>,
}

impl TrustSet {
    /// A trust set of `keys`.
    pub fn new(keys: Vec<PublicKey>) -> Self {
        TrustSet { keys }
    }

    /// The key with id `id`, if trusted.
    pub fn find(&self, id: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.key_id().as_str() == id)
    }

    /// Checks `der_sig` over `msg` against every trusted key and returns the id of the key that made it.
    /// Fails with [`SignError::BadSignature`] (reference "message") when no trusted key verifies it; callers
    /// that know what was signed report it with more context.
    pub fn verify(&self, msg: &[u8], der_sig: &[u8]) -> Result<KeyId, SignError> {
        self.keys
            .iter()
            .find(|k| k.verifies(msg, der_sig))
            .map(PublicKey::key_id)
            .ok_or_else(|| SignError::BadSignature {
                reference: format!("message (checked against {} trusted keys)", self.keys.len()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trips_and_names_the_key() {
        let key = SigningKey::generate();
        let sig = key.sign(b"hello");
        let trust = TrustSet::new(vec![key.public_key()]);
        assert_eq!(
            trust.verify(b"hello", &sig).unwrap(),
            key.public_key().key_id()
        );
        assert!(matches!(
            trust.verify(b"hellO", &sig),
            Err(SignError::BadSignature { .. })
        ));
    }

    #[test]
    fn trust_set_with_two_keys_accepts_either_during_rotation() {
        let old = SigningKey::generate();
        let new = SigningKey::generate();
        let trust = TrustSet::new(vec![old.public_key(), new.public_key()]);
        assert_eq!(
            trust.verify(b"m", &old.sign(b"m")).unwrap(),
            old.public_key().key_id()
        );
        assert_eq!(
            trust.verify(b"m", &new.sign(b"m")).unwrap(),
            new.public_key().key_id()
        );
        let only_new = TrustSet::new(vec![new.public_key()]);
        assert!(only_new.verify(b"m", &old.sign(b"m")).is_err());
    }

    #[test]
    fn pem_round_trips_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate();
        let pem = key.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        std::fs::write(dir.path().join("k.pem"), &pem).unwrap();
        std::fs::write(dir.path().join("k.pub"), key.public_key().to_pem()).unwrap();
        let loaded = SigningKey::load(&dir.path().join("k.pem")).unwrap();
        let public = PublicKey::load(&dir.path().join("k.pub")).unwrap();
        assert_eq!(public, key.public_key());
        assert!(public.verifies(b"x", &loaded.sign(b"x")));
    }

    #[test]
    fn key_id_is_sha256_of_spki_der() {
        let key = SigningKey::generate();
        let id = key.public_key().key_id();
        assert!(id.as_str().starts_with("sha256:"));
        assert_eq!(id.as_str().len(), 7 + 64);
        assert_ne!(id, SigningKey::generate().public_key().key_id());
    }

    #[test]
    fn debug_does_not_print_key_material() {
        let key = SigningKey::generate();
        let pem = key.to_pkcs8_pem();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let debug = format!("{key:?}");
        assert!(debug.contains("key_id"));
        assert!(!debug.contains(&body[..20]), "{debug}");
        assert!(!debug.contains(&hex::encode(key.inner.to_bytes())));
    }

    #[test]
    fn rejects_garbage_pem_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pem");
        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = SigningKey::load(&path).unwrap_err();
        assert!(err.to_string().contains("bad.pem"), "{err}");
        let err = PublicKey::load(&dir.path().join("missing.pub")).unwrap_err();
        assert!(err.to_string().contains("missing.pub"), "{err}");
    }

    #[test]
    fn refuses_encrypted_cosign_keys_with_a_hint() {
        let err = SigningKey::from_pkcs8_pem(
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("AIRLOCK_SIGNING_KEY_PASSWORD"),
            "{err}"
        );
    }

    #[test]
    fn encrypted_key_round_trips_and_needs_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate();
        let pem = key.to_encrypted_pem(b"correct horse").unwrap();
        let path = dir.path().join("cosign.key");
        std::fs::write(&path, &pem).unwrap();
        let loaded = SigningKey::load_with_password(&path, Some(b"correct horse")).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        let err = SigningKey::load_with_password(&path, Some(b"wrong")).unwrap_err();
        assert!(err.to_string().contains("cosign.key"), "{err}");
        assert!(err.to_string().contains("wrong password"), "{err}");
        let err = SigningKey::load(&path).unwrap_err();
        assert!(err.to_string().contains("is encrypted"), "{err}");
    }

    #[test]
    fn key_from_environment_names_the_variable_not_the_value() {
        // Variable names unique to this test: tests run in parallel threads of one process.
        let (pem_var, pw_var) = ("AIRLOCK_TEST_KEYS_PEM_1", "AIRLOCK_TEST_KEYS_PW_1");
        assert!(SigningKey::from_env(pem_var, pw_var).unwrap().is_none());
        let key = SigningKey::generate();
        // SAFETY: no other thread reads or writes these two test-only variables.
        unsafe {
            std::env::set_var(pem_var, key.to_encrypted_pem(b"pw").unwrap());
            std::env::set_var(pw_var, "pw");
        }
        let loaded = SigningKey::from_env(pem_var, pw_var).unwrap().unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        unsafe {
            std::env::set_var(
                pem_var,
                "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
            )
        };
        let err = SigningKey::from_env(pem_var, pw_var)
            .unwrap_err()
            .to_string();
        assert!(err.contains(pem_var), "{err}");
        assert!(!err.contains("c2VjcmV0"), "{err}");
    }

    #[test]
    fn reads_openssl_sec1_keys() {
        let key = SigningKey::generate();
        let secret = p256::SecretKey::from(key.inner.as_nonzero_scalar().to_owned());
        let sec1 = secret.to_sec1_pem(LineEnding::LF).unwrap();
        let loaded = SigningKey::from_pkcs8_pem(&sec1).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
    }

    #[test]
    fn rejects_oversized_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.pem");
        std::fs::write(&path, vec![b'A'; (MAX_KEY_FILE + 1) as usize]).unwrap();
        assert!(
            SigningKey::load(&path)
                .unwrap_err()
                .to_string()
                .contains("more than")
        );
    }
}
