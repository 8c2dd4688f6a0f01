//! in-toto attestations: Statements (v1) about an image, signed in DSSE envelopes and attached to the image
//! the way `cosign attest` does (a `.att` manifest, one envelope layer per attestation).

use std::collections::BTreeMap;

use airlock_oci::{Descriptor, Digest, Store};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::attached::{read_attached, read_layer, write_attached};
use crate::cosign::{SIGNATURE_ANNOTATION, attestation_tag};
use crate::dsse::{self, Envelope, IN_TOTO_PAYLOAD_TYPE, MAX_ENVELOPE_PAYLOAD};
use crate::{KeyId, SignError, SigningKey, TrustSet};

/// The `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE_V1: &str = "https://in-toto.io/Statement/v1";
/// The `_type` of the older Statement v0.1, still written by some cosign versions; accepted on read.
pub const STATEMENT_TYPE_V01: &str = "https://in-toto.io/Statement/v0.1";
/// Media type of an attestation layer (a DSSE envelope as JSON).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Layer annotation naming the predicate type, as cosign writes it.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// Largest attestation layer read.
pub const MAX_ATTESTATION_LAYER: u64 = (MAX_ENVELOPE_PAYLOAD as u64) / 3 * 4 + 64 * 1024;

/// An attestation whose envelope verified against a trusted key and whose subject is the image.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedAttestation {
    /// The statement's `predicateType`.
    pub predicate_type: String,
    /// The whole statement.
    pub statement: serde_json::Value,
    /// The key that signed it.
    pub key: KeyId,
}

/// An in-toto Statement v1 about one subject (`subject_name` at `subject_digest`).
pub fn statement(
    subject_name: &str,
    subject_digest: &Digest,
    predicate_type: &str,
    predicate: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "_type": STATEMENT_TYPE_V1,
        "subject": [{"name": subject_name, "digest": {"sha256": subject_digest.hex()}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    })
}

/// Signs `statement` with `key` into a DSSE envelope of payload type `application/vnd.in-toto+json`.
pub fn sign_envelope(statement: &serde_json::Value, key: &SigningKey) -> Envelope {
    // Serializing a `Value` cannot fail.
    let payload = serde_json::to_vec(statement).unwrap_or_default();
    dsse::sign_payload(IN_TOTO_PAYLOAD_TYPE, &payload, key)
}

/// Verifies an attestation envelope against `trust` and returns the in-toto statement inside. The payload
/// type must be in-toto and the statement must have a `_type`, subjects and a `predicateType`.
pub fn verify_envelope(env: &Envelope, trust: &TrustSet) -> Result<serde_json::Value, SignError> {
    verify_statement(env, trust).map(|(statement, _)| statement)
}

fn verify_statement(
    env: &Envelope,
    trust: &TrustSet,
) -> Result<(serde_json::Value, KeyId), SignError> {
    if env.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(SignError::invalid(
            "DSSE envelope",
            format!(
                "payloadType is {:?}, expected {IN_TOTO_PAYLOAD_TYPE:?}",
                env.payload_type
            ),
        ));
    }
    let (payload, key) = dsse::verify_payload(env, trust)?;
    let statement: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|e| SignError::json("in-toto statement", e))?;
    let kind = statement["_type"].as_str().unwrap_or_default();
    if kind != STATEMENT_TYPE_V1 && kind != STATEMENT_TYPE_V01 {
        return Err(SignError::invalid(
            "in-toto statement",
            format!("_type is {kind:?}, expected {STATEMENT_TYPE_V1:?}"),
        ));
    }
    if statement["predicateType"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        return Err(SignError::invalid("in-toto statement", "no predicateType"));
    }
    if statement["subject"].as_array().is_none_or(Vec::is_empty) {
        return Err(SignError::invalid("in-toto statement", "no subject"));
    }
    Ok((statement, key))
}

/// The `sha256` digests of a statement's subjects, as `sha256:<hex>` (missing ones as empty strings).
fn subject_digests(statement: &serde_json::Value) -> Vec<String> {
    statement["subject"]
        .as_array()
        .map(|subjects| {
            subjects
                .iter()
                .map(|s| match s["digest"]["sha256"].as_str() {
                    Some(hex) => format!("sha256:{hex}"),
                    None => String::new(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Attaches `envelopes` to the image `manifest_digest` in `store` (the cosign `.att` manifest, created when
/// absent). Envelopes already attached are not added twice. Returns the `.att` manifest digest.
pub async fn attach_attestations(
    store: &dyn Store,
    manifest_digest: &Digest,
    envelopes: &[Envelope],
) -> Result<Digest, SignError> {
    let tag = attestation_tag(manifest_digest);
    let existing = read_attached(store, &tag).await?;
    let existing_digest = existing.as_ref().map(|(_, d)| d.clone());
    let mut layers = existing.map(|(m, _)| m.layers).unwrap_or_default();
    let mut added = false;
    for env in envelopes {
        let bytes = serde_json::to_vec(env)
            .map_err(|e| SignError::json(format!("envelope for {tag}"), e))?;
        let mut layer = Descriptor::for_bytes(DSSE_MEDIA_TYPE, &bytes);
        if layers.iter().any(|l| l.digest == layer.digest) {
            continue;
        }
        let predicate_type = B64
            .decode(env.payload.as_bytes())
            .ok()
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok())
            .and_then(|s| s["predicateType"].as_str().map(str::to_string))
            .unwrap_or_default();
        layer.annotations = Some(BTreeMap::from([
            (SIGNATURE_ANNOTATION.to_string(), String::new()),
            (PREDICATE_TYPE_ANNOTATION.to_string(), predicate_type),
        ]));
        store.put_blob(&layer.digest, &bytes).await?;
        layers.push(layer);
        added = true;
    }
    match existing_digest {
        Some(digest) if !added => Ok(digest),
        _ => write_attached(store, &tag, layers).await,
    }
}

/// Reads and verifies every attestation attached to `manifest_digest`. Attestations signed only by keys
/// outside `trust` are skipped (so re-attesting after a key rotation works); a broken signature claiming a
/// trusted key is [`SignError::BadSignature`]; a verified statement about another subject is
/// [`SignError::AttestationSubjectMismatch`]. An image with no `.att` manifest has no attestations.
pub async fn read_attestations(
    store: &dyn Store,
    manifest_digest: &Digest,
    trust: &TrustSet,
) -> Result<Vec<VerifiedAttestation>, SignError> {
    let tag = attestation_tag(manifest_digest);
    let Some((manifest, _)) = read_attached(store, &tag).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for layer in manifest
        .layers
        .iter()
        .filter(|l| l.media_type == DSSE_MEDIA_TYPE)
    {
        let bytes = read_layer(store, layer, MAX_ATTESTATION_LAYER, &tag).await?;
        let env: Envelope = serde_json::from_slice(&bytes)
            .map_err(|e| SignError::json(format!("envelope {} of {tag}", layer.digest), e))?;
        let (statement, key) = match verify_statement(&env, trust) {
            Ok(verified) => verified,
            // Made by a key no longer (or never) trusted, e.g. before a rotation: not evidence, but no
            // reason to distrust the attestations that do verify.
            Err(SignError::UntrustedKey { key_ids_seen, .. }) => {
                tracing::warn!(layer = %layer.digest, image = %manifest_digest, key_ids = ?key_ids_seen,
                    "ignoring attestation signed by an untrusted key");
                continue;
            }
            Err(SignError::BadSignature { .. }) => {
                return Err(SignError::BadSignature {
                    reference: format!("attestation {} of {manifest_digest}", layer.digest),
                });
            }
            Err(e) => return Err(e),
        };
        let subjects = subject_digests(&statement);
        if subjects.iter().any(|s| s != manifest_digest.as_str()) {
            return Err(SignError::AttestationSubjectMismatch {
                expected: manifest_digest.clone(),
                found: subjects.join(", "),
            });
        }
        out.push(VerifiedAttestation {
            predicate_type: statement["predicateType"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            statement,
            key,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predicates;
    use airlock_oci::OciLayout;

    fn layout() -> (tempfile::TempDir, OciLayout) {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::create(&dir.path().join("repo")).unwrap();
        (dir, store)
    }

    #[test]
    fn statement_is_in_toto_v1_with_hex_subject_digest() {
        let d = Digest::of(b"img");
        let s = statement(
            "registry.example/app",
            &d,
            predicates::VULN,
            serde_json::json!({"x": 1}),
        );
        assert_eq!(s["_type"], STATEMENT_TYPE_V1);
        assert_eq!(s["subject"][0]["digest"]["sha256"], d.hex());
        assert_eq!(s["predicateType"], predicates::VULN);
        assert_eq!(s["predicate"]["x"], 1);
    }

    #[test]
    fn envelope_round_trips_to_the_statement() {
        let key = SigningKey::generate();
        let s = statement(
            "app",
            &Digest::of(b"img"),
            predicates::CYCLONEDX,
            serde_json::json!({}),
        );
        let env = sign_envelope(&s, &key);
        assert_eq!(env.payload_type, IN_TOTO_PAYLOAD_TYPE);
        assert_eq!(
            verify_envelope(&env, &TrustSet::new(vec![key.public_key()])).unwrap(),
            s
        );
    }

    #[test]
    fn rejects_envelope_of_another_payload_type() {
        let key = SigningKey::generate();
        let env = dsse::sign_payload("text/plain", b"{}", &key);
        let err = verify_envelope(&env, &TrustSet::new(vec![key.public_key()])).unwrap_err();
        assert!(err.to_string().contains("payloadType"), "{err}");
    }

    #[tokio::test]
    async fn attached_attestations_read_back_verified() {
        let (_d, store) = layout();
        let key = SigningKey::generate();
        let image = Digest::of(b"img");
        let envs: Vec<Envelope> = [predicates::SLSA_PROVENANCE_V1, predicates::VULN]
            .iter()
            .map(|p| sign_envelope(&statement("app", &image, p, serde_json::json!({})), &key))
            .collect();
        let first = attach_attestations(&store, &image, &envs).await.unwrap();
        let again = attach_attestations(&store, &image, &envs).await.unwrap();
        assert_eq!(
            first, again,
            "re-attaching the same envelopes must be a no-op"
        );
        let read = read_attestations(&store, &image, &TrustSet::new(vec![key.public_key()]))
            .await
            .unwrap();
        let types: Vec<&str> = read.iter().map(|a| a.predicate_type.as_str()).collect();
        assert_eq!(types, [predicates::SLSA_PROVENANCE_V1, predicates::VULN]);
        assert!(read.iter().all(|a| a.key == key.public_key().key_id()));
    }

    #[tokio::test]
    async fn image_without_attestations_reads_as_empty() {
        let (_d, store) = layout();
        let read = read_attestations(&store, &Digest::of(b"img"), &TrustSet::default())
            .await
            .unwrap();
        assert!(read.is_empty());
    }

    #[tokio::test]
    async fn attestation_for_another_subject_is_rejected() {
        let (_d, store) = layout();
        let key = SigningKey::generate();
        let image = Digest::of(b"img");
        let other = Digest::of(b"other");
        let env = sign_envelope(
            &statement("app", &other, predicates::VULN, serde_json::json!({})),
            &key,
        );
        attach_attestations(&store, &image, &[env]).await.unwrap();
        let err = read_attestations(&store, &image, &TrustSet::new(vec![key.public_key()]))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SignError::AttestationSubjectMismatch { expected, found }
                if *expected == image && *found == other.to_string()),
            "{err}"
        );
    }

    #[tokio::test]
    async fn attestation_by_untrusted_key_is_ignored() {
        let (_d, store) = layout();
        let image = Digest::of(b"img");
        let stranger = SigningKey::generate();
        let env = sign_envelope(
            &statement("app", &image, predicates::VULN, serde_json::json!({})),
            &stranger,
        );
        attach_attestations(&store, &image, &[env]).await.unwrap();
        let trust = TrustSet::new(vec![SigningKey::generate().public_key()]);
        assert!(
            read_attestations(&store, &image, &trust)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
