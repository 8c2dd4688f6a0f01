//! Who is calling: bearer tokens (stored only as hashes) and webhook signatures, both compared in constant time.

use crate::config::TeamConfig;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of a token, the only form in which tokens are stored.
pub fn hash_token(token: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(token.as_bytes())))
}

/// A fresh random API token (256 bits, hex).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom_fill(&mut bytes);
    format!("alk_{}", hex::encode(bytes))
}

fn getrandom_fill(buf: &mut [u8]) {
    // Uuid v4 draws from the OS RNG; two of them give 256 bits without another dependency.
    for chunk in buf.chunks_mut(16) {
        let id = uuid::Uuid::new_v4();
        chunk.copy_from_slice(&id.as_bytes()[..chunk.len()]);
    }
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The team a bearer token belongs to, if any. Every configured hash is compared, so timing says nothing.
pub fn team_for_token<'a>(teams: &'a [TeamConfig], token: &str) -> Option<&'a str> {
    let presented = hash_token(token);
    let mut found = None;
    for team in teams {
        for stored in &team.token_hashes {
            if constant_time_eq(presented.as_bytes(), stored.as_bytes()) {
                found = Some(team.name.as_str());
            }
        }
    }
    found
}

/// Checks GitHub's `X-Hub-Signature-256: sha256=<hex>` over the raw body.
pub fn verify_github_signature(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The header value GitHub would send for `body` (used by the demo and tests to sign deliveries).
pub fn sign_github_body(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_githubs_documented_example_signature() {
        // The example from GitHub's "Validating webhook deliveries" documentation.
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify_github_signature(
            "It's a Secret to Everybody",
            b"Hello, World!",
            header
        ));
        assert!(!verify_github_signature(
            "It's a Secret to Everybody",
            b"Hello, World?",
            header
        ));
        assert!(!verify_github_signature("wrong", b"Hello, World!", header));
        assert!(!verify_github_signature(
            "It's a Secret to Everybody",
            b"Hello, World!",
            "sha1=abc"
        ));
    }

    #[test]
    fn finds_team_by_token_hash_only() {
        let token = generate_token();
        let teams = vec![TeamConfig {
            name: "demo".into(),
            token_hashes: vec![hash_token(&token)],
        }];
        assert_eq!(team_for_token(&teams, &token), Some("demo"));
        assert_eq!(team_for_token(&teams, "alk_wrong"), None);
        assert_ne!(generate_token(), token);
    }
}
