//! DSSE envelopes (Dead Simple Signing Envelope, <https://github.com/secure-systems-lab/dsse>): a payload, its
//! type, and signatures over the pre-authentication encoding (PAE) of both. The wrapper in-toto attestations
//! travel in.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::{KeyId, SignError, SigningKey, TrustSet};

/// The payload type of an in-toto statement inside a DSSE envelope.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Largest decoded envelope payload accepted (SBOMs can be large).
pub const MAX_ENVELOPE_PAYLOAD: usize = 32 * 1024 * 1024;
/// Most signatures one envelope may carry.
pub const MAX_ENVELOPE_SIGNATURES: usize = 16;

/// A DSSE envelope as JSON: `{"payloadType", "payload" (base64), "signatures": [{"keyid", "sig"}]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// What the payload is, e.g. [`IN_TOTO_PAYLOAD_TYPE`].
    pub payload_type: String,
    /// The payload, standard base64.
    pub payload: String,
    /// Signatures over `pae(payload_type, payload)`.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an [`Envelope`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// The [`KeyId`] of the signing key (may be empty in envelopes from other tools).
    #[serde(default)]
    pub keyid: String,
    /// The DER ECDSA signature, standard base64.
    pub sig: String,
}

/// The DSSE pre-authentication encoding: `"DSSEv1" SP len(type) SP type SP len(payload) SP payload`, lengths
/// as ASCII decimal. Signing this rather than the payload binds the type to the bytes.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(
        format!(
            "DSSEv1 {} {payload_type} {} ",
            payload_type.len(),
            payload.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(payload);
    out
}

/// Wraps `payload` of `payload_type` in an envelope signed by `key` (keyid = the key's [`KeyId`]).
pub fn sign_payload(payload_type: &str, payload: &[u8], key: &SigningKey) -> Envelope {
    let sig = key.sign(&pae(payload_type, payload));
    Envelope {
        payload_type: payload_type.to_string(),
        payload: B64.encode(payload),
        signatures: vec![EnvelopeSignature {
            keyid: key.public_key().key_id().to_string(),
            sig: B64.encode(sig),
        }],
    }
}

/// Verifies that a key of `trust` signed the envelope and returns its decoded payload and the key's id.
/// A signature naming a trusted key id is checked against that key only; one naming no or an unknown id
/// is tried against every trusted key.
pub fn verify_payload(env: &Envelope, trust: &TrustSet) -> Result<(Vec<u8>, KeyId), SignError> {
    let what = format!("DSSE envelope ({})", env.payload_type);
    if env.payload.len() > MAX_ENVELOPE_PAYLOAD / 3 * 4 + 4 {
        return Err(SignError::invalid(
            &what,
            format!("payload larger than {MAX_ENVELOPE_PAYLOAD} bytes"),
        ));
    }
    if env.signatures.len() > MAX_ENVELOPE_SIGNATURES {
        return Err(SignError::invalid(
            &what,
            format!(
                "{} signatures, more than the {MAX_ENVELOPE_SIGNATURES} allowed",
                env.signatures.len()
            ),
        ));
    }
    if env.signatures.is_empty() {
        return Err(SignError::Unsigned { reference: what });
    }
    let payload = B64
        .decode(env.payload.as_bytes())
        .map_err(|e| SignError::invalid(&what, format!("payload is not base64: {e}")))?;
    let message = pae(&env.payload_type, &payload);
    let mut bad_trusted = false;
    let mut seen = Vec::new();
    for s in &env.signatures {
        let Ok(sig) = B64.decode(s.sig.as_bytes()) else {
            bad_trusted = true;
            continue;
        };
        if let Some(key) = trust.find(&s.keyid) {
            if key.verifies(&message, &sig) {
                return Ok((payload, key.key_id()));
            }
            bad_trusted = true;
            continue;
        }
        match trust.verify(&message, &sig) {
            Ok(id) => return Ok((payload, id)),
            Err(_) => seen.push(if s.keyid.is_empty() {
                "unknown".to_string()
            } else {
                s.keyid.clone()
            }),
        }
    }
    if bad_trusted {
        return Err(SignError::BadSignature { reference: what });
    }
    Err(SignError::UntrustedKey {
        reference: what,
        key_ids_seen: seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn envelope_json_uses_payload_type_in_camel_case() {
        let env = sign_payload("t", b"p", &SigningKey::generate());
        let v = serde_json::to_value(&env).unwrap();
        assert_eq!(v["payloadType"], "t");
        assert!(
            v["signatures"][0]["keyid"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
    }

    #[test]
    fn payload_round_trips_and_names_the_key() {
        let key = SigningKey::generate();
        let env = sign_payload(IN_TOTO_PAYLOAD_TYPE, b"{}", &key);
        let trust = TrustSet::new(vec![key.public_key()]);
        let (payload, id) = verify_payload(&env, &trust).unwrap();
        assert_eq!(payload, b"{}");
        assert_eq!(id, key.public_key().key_id());
    }

    #[test]
    fn changed_payload_type_breaks_the_signature() {
        let key = SigningKey::generate();
        let mut env = sign_payload(IN_TOTO_PAYLOAD_TYPE, b"{}", &key);
        env.payload_type = "text/plain".to_string();
        let trust = TrustSet::new(vec![key.public_key()]);
        assert!(matches!(
            verify_payload(&env, &trust),
            Err(SignError::BadSignature { .. })
        ));
    }

    #[test]
    fn untrusted_signer_is_named() {
        let key = SigningKey::generate();
        let env = sign_payload(IN_TOTO_PAYLOAD_TYPE, b"{}", &key);
        let trust = TrustSet::new(vec![SigningKey::generate().public_key()]);
        match verify_payload(&env, &trust) {
            Err(SignError::UntrustedKey { key_ids_seen, .. }) => {
                assert_eq!(key_ids_seen, vec![key.public_key().key_id().to_string()])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn signature_without_keyid_is_tried_against_every_trusted_key() {
        let key = SigningKey::generate();
        let mut env = sign_payload(IN_TOTO_PAYLOAD_TYPE, b"{}", &key);
        env.signatures[0].keyid.clear();
        let trust = TrustSet::new(vec![SigningKey::generate().public_key(), key.public_key()]);
        assert_eq!(
            verify_payload(&env, &trust).unwrap().1,
            key.public_key().key_id()
        );
    }

    #[test]
    fn envelope_without_signatures_is_unsigned() {
        let mut env = sign_payload(IN_TOTO_PAYLOAD_TYPE, b"{}", &SigningKey::generate());
        env.signatures.clear();
        assert!(matches!(
            verify_payload(&env, &TrustSet::default()),
            Err(SignError::Unsigned { .. })
        ));
    }
}
