//! The append-only audit log: who changed what, when, and from where, hash-chained.
//!
//! Every entry's hash is SHA-256 over the previous entry's hash and the entry's own fields in a fixed order, so
//! an entry removed from the middle, edited in place, or reordered breaks the chain at that point, and
//! [`verify_chain`] names the first sequence number where it breaks. (Truncating the newest entries cannot be
//! detected from the log alone; an exported copy or the last hash kept elsewhere covers that.)

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// What the caller did, before the store gives it a place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Who: the token's name, or `webhook:<host>` for a signed delivery, or `gate` for the gate itself.
    pub actor: String,
    /// The caller's team (empty for webhooks before the repository is mapped).
    pub team: String,
    /// The caller's role (`developer`, `operator`, `admin`, or `webhook`).
    pub role: String,
    /// What: a verb-like name such as `run.submit`, `run.cancel`, `webhook.push`.
    pub action: String,
    /// On what: usually a run id.
    pub target: String,
    /// From where: the peer address of the HTTP connection.
    pub source_ip: String,
    /// `accepted`, `denied`, `duplicate`, ...
    pub outcome: String,
    /// Free text with whatever else matters (never a secret).
    pub detail: String,
}

/// An entry as stored: sequence number, time, and the chain hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    /// RFC 3339 time the gate recorded the entry.
    pub at: String,
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// Builds the stored form of `entry` at position `seq`, chaining it to `prev_hash`.
    pub fn seal(seq: i64, at: String, entry: AuditEntry, prev_hash: String) -> AuditRecord {
        let hash = entry_hash(seq, &at, &entry, &prev_hash);
        AuditRecord {
            seq,
            at,
            entry,
            prev_hash,
            hash,
        }
    }
}

/// The chain hash of one entry. Fields are length-prefixed so that no two different entries encode alike.
pub fn entry_hash(seq: i64, at: &str, e: &AuditEntry, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    let seq_text = seq.to_string();
    for field in [
        prev_hash,
        seq_text.as_str(),
        at,
        &e.actor,
        &e.team,
        &e.role,
        &e.action,
        &e.target,
        &e.source_ip,
        &e.outcome,
        &e.detail,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("audit entry {seq}: its hash does not match its contents (the entry was edited)")]
    Edited { seq: i64 },
    #[error(
        "audit entry {seq}: it does not follow entry {expected_prev_seq} (an entry was removed or reordered)"
    )]
    Broken { seq: i64, expected_prev_seq: i64 },
}

/// Checks records in sequence order, continuing from `prev` (the last verified record's seq and hash, or `None`
/// at the start of the log). Returns the last seq and hash so a caller can verify the log page by page.
pub fn verify_chain(
    records: &[AuditRecord],
    prev: Option<(i64, String)>,
) -> Result<Option<(i64, String)>, ChainError> {
    let mut prev = prev;
    for r in records {
        let (expected_seq, expected_prev) = match &prev {
            Some((seq, hash)) => (seq + 1, hash.as_str()),
            None => (1, GENESIS),
        };
        if r.seq != expected_seq || r.prev_hash != expected_prev {
            return Err(ChainError::Broken {
                seq: r.seq,
                expected_prev_seq: expected_seq - 1,
            });
        }
        if entry_hash(r.seq, &r.at, &r.entry, &r.prev_hash) != r.hash {
            return Err(ChainError::Edited { seq: r.seq });
        }
        prev = Some((r.seq, r.hash.clone()));
    }
    Ok(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            actor: "alice".into(),
            team: "payments".into(),
            role: "developer".into(),
            action: action.into(),
            target: "run-1".into(),
            source_ip: "127.0.0.1".into(),
            outcome: "accepted".into(),
            detail: String::new(),
        }
    }

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map(|r| r.hash.clone()).unwrap_or(GENESIS.into());
            out.push(AuditRecord::seal(
                seq,
                format!("t{seq}"),
                entry("run.submit"),
                prev,
            ));
        }
        out
    }

    #[test]
    fn intact_chain_verifies_and_returns_its_head() {
        let c = chain(3);
        let head = verify_chain(&c, None).expect("intact");
        assert_eq!(head, Some((3, c[2].hash.clone())));
        // Page by page gives the same answer.
        let first = verify_chain(&c[..1], None).expect("page 1");
        assert_eq!(verify_chain(&c[1..], first).expect("page 2"), head);
    }

    #[test]
    fn edited_entry_is_named() {
        let mut c = chain(3);
        c[1].entry.actor = "mallory".into();
        assert_eq!(verify_chain(&c, None), Err(ChainError::Edited { seq: 2 }));
    }

    #[test]
    fn removed_entry_is_named() {
        let mut c = chain(3);
        c.remove(1);
        assert_eq!(
            verify_chain(&c, None),
            Err(ChainError::Broken {
                seq: 3,
                expected_prev_seq: 1
            })
        );
    }

    #[test]
    fn rehashed_edit_still_breaks_the_next_link() {
        let mut c = chain(3);
        c[1].entry.action = "run.cancel".into();
        let resealed = AuditRecord::seal(
            2,
            c[1].at.clone(),
            c[1].entry.clone(),
            c[1].prev_hash.clone(),
        );
        c[1] = resealed;
        assert_eq!(
            verify_chain(&c, None),
            Err(ChainError::Broken {
                seq: 3,
                expected_prev_seq: 2
            })
        );
    }
}
