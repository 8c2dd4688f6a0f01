//! Version order per ecosystem: PEP 440 for PyPI, SemVer for crates.io, npm and Go (lenient:
//! `v` prefix, missing minor/patch), dpkg order for Debian, and a segment-wise order for Alpine
//! and Maven.

use std::cmp::Ordering;
use std::str::FromStr;

/// How an ecosystem orders its versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// PEP 440 (`pep440_rs`).
    Pep440,
    /// Semantic Versioning 2.0 (`semver`), read leniently.
    Semver,
    /// dpkg (`debversion`): epoch, upstream, revision with `~` sorting first.
    Dpkg,
    /// Numeric segments compared as numbers, pre-release words before a release, `-rN` last.
    Segments,
}

impl Scheme {
    /// The scheme of an OSV ecosystem name (`PyPI`, `crates.io`, `Debian:12`, ...).
    pub fn for_ecosystem(ecosystem: &str) -> Scheme {
        let base = ecosystem.split(':').next().unwrap_or(ecosystem);
        match base {
            "PyPI" => Scheme::Pep440,
            "crates.io" | "npm" | "Go" | "Packagist" | "NuGet" | "Hex" | "Pub" => Scheme::Semver,
            "Debian" | "Ubuntu" => Scheme::Dpkg,
            _ => Scheme::Segments,
        }
    }
}

/// A version parsed under a scheme, so it can be compared many times.
#[derive(Clone, Debug)]
pub enum Parsed {
    /// A PEP 440 version.
    Pep440(pep440_rs::Version),
    /// A SemVer version.
    Semver(semver::Version),
    /// A dpkg version.
    Dpkg(debversion::Version),
    /// Segments: numbers and words, then the Alpine `-rN` revision.
    Segments(Vec<Segment>, u64),
}

/// One piece of a segment-wise version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A pre-release word (`alpha`, `beta`, `rc`, ...): sorts before the release it precedes.
    Pre(String),
    /// A number.
    Num(u64),
    /// Any other word (`p`, `git`, a letter): after a release, before a further number.
    Word(String),
}

/// Parses a version under a scheme. None when it is not a valid version of that scheme.
pub fn parse(scheme: Scheme, v: &str) -> Option<Parsed> {
    let v = v.trim();
    match scheme {
        Scheme::Pep440 => pep440_rs::Version::from_str(v).ok().map(Parsed::Pep440),
        Scheme::Semver => parse_semver_lenient(v).map(Parsed::Semver),
        Scheme::Dpkg => debversion::Version::from_str(v).ok().map(Parsed::Dpkg),
        Scheme::Segments => Some(parse_segments(v)),
    }
}

/// Compares two parsed versions of the same scheme.
pub fn compare(a: &Parsed, b: &Parsed) -> Option<Ordering> {
    match (a, b) {
        (Parsed::Pep440(a), Parsed::Pep440(b)) => Some(a.cmp(b)),
        (Parsed::Semver(a), Parsed::Semver(b)) => Some(a.cmp_precedence(b)),
        (Parsed::Dpkg(a), Parsed::Dpkg(b)) => Some(a.cmp(b)),
        (Parsed::Segments(a, ra), Parsed::Segments(b, rb)) => {
            Some(cmp_segments(a, b).then(ra.cmp(rb)))
        }
        _ => None,
    }
}

/// Segment-wise order: a missing segment equals `0` against a number (`1.0` == `1.0.0`), sorts
/// after a pre-release word (`1.0_rc1` < `1.0`) and before any other word (`1.0` < `1.0_p1`).
fn cmp_segments(a: &[Segment], b: &[Segment]) -> Ordering {
    fn end_vs(s: &Segment) -> Ordering {
        match s {
            Segment::Num(0) => Ordering::Equal,
            Segment::Num(_) | Segment::Word(_) => Ordering::Less,
            Segment::Pre(_) => Ordering::Greater,
        }
    }
    fn rank(s: &Segment) -> u8 {
        match s {
            Segment::Pre(_) => 0,
            Segment::Word(_) => 1,
            Segment::Num(_) => 2,
        }
    }
    for i in 0..a.len().max(b.len()) {
        let o = match (a.get(i), b.get(i)) {
            (None, None) => Ordering::Equal,
            (None, Some(y)) => end_vs(y),
            (Some(x), None) => end_vs(x).reverse(),
            (Some(Segment::Num(x)), Some(Segment::Num(y))) => x.cmp(y),
            (Some(Segment::Pre(x)), Some(Segment::Pre(y)))
            | (Some(Segment::Word(x)), Some(Segment::Word(y))) => x.cmp(y),
            (Some(x), Some(y)) => rank(x).cmp(&rank(y)),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// SemVer with the leniencies real ecosystems need: a `v`/`=` prefix, `1.2` meaning `1.2.0`.
fn parse_semver_lenient(v: &str) -> Option<semver::Version> {
    let v = v.trim_start_matches(['v', '=']);
    if let Ok(p) = semver::Version::parse(v) {
        return Some(p);
    }
    let split = v.find(['-', '+']).unwrap_or(v.len());
    let (core, rest) = v.split_at(split);
    let mut parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    while parts.len() < 3 {
        parts.push("0");
    }
    semver::Version::parse(&format!("{}{rest}", parts.join("."))).ok()
}

fn parse_segments(v: &str) -> Parsed {
    let (main, rev) = match v.rsplit_once("-r") {
        Some((m, r)) if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) => {
            (m, r.parse().unwrap_or(0))
        }
        _ => (v, 0),
    };
    let mut segs = Vec::new();
    let mut chars = main.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() {
            let mut n = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                n.push(d);
                chars.next();
            }
            segs.push(Segment::Num(n.parse().unwrap_or(u64::MAX)));
        } else if c.is_alphabetic() {
            let mut w = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_alphabetic()) {
                w.extend(d.to_lowercase());
                chars.next();
            }
            let pre = matches!(
                w.as_str(),
                "alpha" | "a" | "beta" | "b" | "pre" | "rc" | "cr" | "m" | "milestone" | "snapshot"
            );
            segs.push(if pre {
                Segment::Pre(w)
            } else {
                Segment::Word(w)
            });
        } else {
            chars.next();
        }
    }
    Parsed::Segments(segs, rev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(scheme: Scheme, a: &str, b: &str) -> Ordering {
        compare(&parse(scheme, a).unwrap(), &parse(scheme, b).unwrap()).unwrap()
    }

    #[test]
    fn pep440_orders_pre_releases_and_post_releases() {
        assert_eq!(cmp(Scheme::Pep440, "2.7.1", "2.7.2"), Ordering::Less);
        assert_eq!(cmp(Scheme::Pep440, "2.0rc1", "2.0"), Ordering::Less);
        assert_eq!(cmp(Scheme::Pep440, "1.0.post1", "1.0"), Ordering::Greater);
        assert_eq!(cmp(Scheme::Pep440, "1.0", "1.0.0"), Ordering::Equal);
    }

    #[test]
    fn semver_is_lenient_about_prefix_and_missing_parts() {
        assert_eq!(cmp(Scheme::Semver, "v1.2", "1.2.0"), Ordering::Equal);
        assert_eq!(cmp(Scheme::Semver, "0.1.45", "0.2.0"), Ordering::Less);
        assert_eq!(cmp(Scheme::Semver, "0.2.7-0", "0.2.7"), Ordering::Less);
        assert!(parse(Scheme::Semver, "not-a-version").is_none());
    }

    #[test]
    fn dpkg_order_sorts_tilde_first_and_respects_epoch() {
        assert_eq!(
            cmp(Scheme::Dpkg, "3.0.15-1~deb12u1", "3.0.15-1"),
            Ordering::Less
        );
        assert_eq!(cmp(Scheme::Dpkg, "1:1.0-1", "9.9-1"), Ordering::Greater);
    }

    #[test]
    fn segment_order_handles_alpine_revisions_and_pre_releases() {
        assert_eq!(
            cmp(Scheme::Segments, "1.2.4-r2", "1.2.4-r10"),
            Ordering::Less
        );
        assert_eq!(cmp(Scheme::Segments, "1.10", "1.9"), Ordering::Greater);
        assert_eq!(cmp(Scheme::Segments, "1.0_rc1", "1.0"), Ordering::Less);
        assert_eq!(cmp(Scheme::Segments, "1.0", "1.0.0"), Ordering::Equal);
        assert_eq!(cmp(Scheme::Segments, "1.0_p1", "1.0"), Ordering::Greater);
    }
}
