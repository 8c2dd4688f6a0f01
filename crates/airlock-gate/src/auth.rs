//! Who is calling: bearer tokens (stored only as hashes) and webhook signatures, both compared in constant time.

use crate::config::{Role, TeamConfig};
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

/// Who a bearer token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name (named tokens), or `TEAM token` for the team's unnamed tokens.
    pub name: String,
    pub team: String,
    pub role: Role,
}

impl Caller {
    /// Whether the caller may see or act on a run of `team` (operators and admins see every team's runs).
    pub fn may_see_team(&self, team: &str) -> bool {
        self.role >= Role::Operator || self.team == team
    }
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (team {}, {})",
            self.name,
            self.team,
            self.role.as_str()
        )
    }
}

/// The caller a bearer token belongs to, if any. Every configured hash is compared, so timing says nothing about
/// which (or whether one) matched.
pub fn authenticate(teams: &[TeamConfig], token: &str) -> Option<Caller> {
    let presented = hash_token(token);
    let mut found = None;
    for team in teams {
        for stored in &team.token_hashes {
            if constant_time_eq(presented.as_bytes(), stored.as_bytes()) {
                found = Some(Caller {
                    name: format!("{} token", team.name),
                    team: team.name.clone(),
                    role: team.role,
                });
            }
        }
        for named in &team.tokens {
            if constant_time_eq(presented.as_bytes(), named.hash.as_bytes()) {
                found = Some(Caller {
                    name: named.name.clone(),
                    team: team.name.clone(),
                    role: named.role.unwrap_or(team.role),
                });
            }
        }
    }
    found
}

/// The team a bearer token belongs to, if any.
pub fn team_for_token<'a>(teams: &'a [TeamConfig], token: &str) -> Option<&'a str> {
    let caller = authenticate(teams, token)?;
    teams
        .iter()
        .find(|t| t.name == caller.team)
        .map(|t| t.name.as_str())
}

/// Checks GitLab's `X-Gitlab-Token`, which is the configured secret itself, in constant time.
pub fn verify_gitlab_token(secret: &str, header: &str) -> bool {
    // Compare hashes so that the comparison's length never depends on the secret's length.
    let a = Sha256::digest(secret.as_bytes());
    let b = Sha256::digest(header.as_bytes());
    constant_time_eq(&a, &b)
}

/// Checks Gitea's and Forgejo's `X-Gitea-Signature` (also sent as `X-Forgejo-Signature`): hex HMAC-SHA256 of the
/// raw body, without a prefix.
pub fn verify_gitea_signature(secret: &str, body: &[u8], header: &str) -> bool {
    let Ok(sig) = hex::decode(header.trim()) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
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
            role: Role::Developer,
            token_hashes: vec![hash_token(&token)],
            tokens: vec![],
        }];
        assert_eq!(team_for_token(&teams, &token), Some("demo"));
        assert_eq!(team_for_token(&teams, "alk_wrong"), None);
        assert_ne!(generate_token(), token);
    }

    #[test]
    fn named_tokens_carry_their_own_role() {
        let (dev, ops) = (generate_token(), generate_token());
        let teams = vec![TeamConfig {
            name: "platform".into(),
            role: Role::Developer,
            token_hashes: vec![hash_token(&dev)],
            tokens: vec![crate::config::TokenConfig {
                name: "oncall".into(),
                hash: hash_token(&ops),
                role: Some(Role::Operator),
            }],
        }];
        let d = authenticate(&teams, &dev).expect("developer token");
        assert_eq!(
            (d.role, d.name.as_str()),
            (Role::Developer, "platform token")
        );
        let o = authenticate(&teams, &ops).expect("operator token");
        assert_eq!((o.role, o.name.as_str()), (Role::Operator, "oncall"));
        assert!(o.may_see_team("payments"));
        assert!(!d.may_see_team("payments"));
        assert!(d.may_see_team("platform"));
    }

    #[test]
    fn gitlab_token_must_match_exactly() {
        assert!(verify_gitlab_token("s3cret", "s3cret"));
        assert!(!verify_gitlab_token("s3cret", "s3cre"));
        assert!(!verify_gitlab_token("s3cret", ""));
    }

    #[test]
    fn gitea_signature_is_bare_hex_hmac() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = sign_github_body("k", body);
        let hex_only = good.strip_prefix("sha256=").expect("prefix");
        assert!(verify_gitea_signature("k", body, hex_only));
        assert!(
            !verify_gitea_signature("k", body, &good),
            "GitHub's prefixed form is not Gitea's"
        );
        assert!(!verify_gitea_signature("other", body, hex_only));
    }
}
