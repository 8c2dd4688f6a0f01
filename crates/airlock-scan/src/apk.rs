//! The Alpine package database (`/lib/apk/db/installed`): stanzas of one-letter `X:value` lines.

use crate::found::Found;
use crate::package::SourcePackage;

/// Parses the apk installed database (`P:` name, `V:` version, `A:` arch, `o:` origin).
pub(crate) fn parse(text: &str) -> (Vec<Found>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for block in text.split("\n\n") {
        let (mut name, mut version, mut arch, mut origin) = (None, None, None, None);
        for line in block.lines() {
            match line.split_once(':') {
                Some(("P", v)) => name = Some(v.trim()),
                Some(("V", v)) => version = Some(v.trim()),
                Some(("A", v)) => arch = Some(v.trim()),
                Some(("o", v)) => origin = Some(v.trim()),
                _ => {}
            }
        }
        match (name, version) {
            (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => out.push(Found {
                name: n.to_string(),
                version: v.to_string(),
                arch: arch.map(str::to_string),
                source: Some(SourcePackage {
                    name: origin.unwrap_or(n).to_string(),
                    version: None,
                }),
                local: false,
            }),
            (Some(n), _) => problems.push(format!("package {n} has no version")),
            _ => {}
        }
        if out.len() >= crate::control::MAX_STANZAS {
            problems.push("too many packages; the rest were ignored".into());
            break;
        }
    }
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_version_arch_and_origin() {
        let (p, _) = parse(
            "C:Q1abc=\nP:libcrypto3\nV:3.3.2-r0\nA:x86_64\no:openssl\n\nP:musl\nV:1.2.5-r0\n",
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].source.as_ref().unwrap().name, "openssl");
        assert_eq!(p[1].source.as_ref().unwrap().name, "musl");
        assert_eq!(p[0].arch.as_deref(), Some("x86_64"));
    }
}
