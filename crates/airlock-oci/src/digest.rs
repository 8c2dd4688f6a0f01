//! SHA-256 content digests in their OCI string form, and a writer that hashes while streaming.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::Error;

/// A content digest, always `sha256:<64 lowercase hex>`.
///
/// Only SHA-256 is accepted: it is what every registry and tool we talk to uses, and refusing the rest
/// keeps "same digest" meaning "same bytes".
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Digest(String);

const PREFIX: &str = "sha256:";

impl Digest {
    /// The SHA-256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(format!("{PREFIX}{}", hex::encode(Sha256::digest(bytes))))
    }

    /// Parses `sha256:<64 lowercase hex>`; anything else is [`Error::InvalidDigest`] naming the string.
    pub fn parse(s: &str) -> Result<Digest, Error> {
        let hex = s
            .strip_prefix(PREFIX)
            .ok_or_else(|| Error::InvalidDigest(s.to_string()))?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(Error::InvalidDigest(s.to_string()));
        }
        Ok(Digest(s.to_string()))
    }

    /// The 64 hex characters after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0[PREFIX.len()..]
    }

    /// The full `sha256:<hex>` string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The algorithm name, always `sha256`.
    pub fn algorithm(&self) -> &str {
        "sha256"
    }

    /// Checks that `bytes` hash to this digest; `source` names where they came from in the error.
    pub fn verify(&self, bytes: &[u8], source: &str) -> Result<(), Error> {
        if Digest::of(bytes) == *self {
            Ok(())
        } else {
            Err(Error::DigestMismatch {
                digest: self.clone(),
                source: source.to_string(),
            })
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Digest::parse(s)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An [`std::io::Write`] sink that computes the SHA-256 digest and byte count of everything written,
/// so a stream (e.g. a tar being produced) can be hashed without keeping it in memory.
#[derive(Default)]
pub struct DigestWriter {
    hasher: Sha256,
    len: u64,
}

impl DigestWriter {
    /// A writer with nothing hashed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The digest and byte count of everything written.
    pub fn finish(self) -> (Digest, u64) {
        (
            Digest(format!("{PREFIX}{}", hex::encode(self.hasher.finalize()))),
            self.len,
        )
    }
}

impl std::io::Write for DigestWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn digest_of_empty_input_is_the_well_known_value() {
        assert_eq!(
            Digest::of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_round_trips_and_exposes_hex() {
        let d = Digest::of(b"hello");
        let p = Digest::parse(d.as_str()).unwrap();
        assert_eq!(p, d);
        assert_eq!(p.hex().len(), 64);
        assert_eq!(format!("{p}"), d.as_str());
        assert_eq!(d.as_str().parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn rejects_other_algorithms_uppercase_and_short_hex() {
        for bad in [
            "sha512:abcd",
            "sha256:ABCDEF0000000000000000000000000000000000000000000000000000000000",
            "sha256:abc",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "",
        ] {
            match Digest::parse(bad) {
                Err(Error::InvalidDigest(s)) => assert_eq!(s, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn serializes_as_plain_string_and_rejects_bad_json_digest() {
        let d = Digest::of(b"x");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{d}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }

    #[test]
    fn digest_writer_matches_one_shot_digest_and_counts_bytes() {
        let mut w = DigestWriter::new();
        w.write_all(b"hel").unwrap();
        w.write_all(b"lo").unwrap();
        let (d, n) = w.finish();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(n, 5);
    }

    #[test]
    fn verify_names_the_digest_on_mismatch() {
        let d = Digest::of(b"a");
        let err = d.verify(b"b", "test").unwrap_err();
        assert!(err.to_string().contains(d.as_str()), "{err}");
    }
}
