//! Java archives: the Maven coordinates in `META-INF/maven/**/pom.properties`, in the archive and in
//! the archives nested inside it (Spring Boot's `BOOT-INF/lib/`, a war's `WEB-INF/lib/`).
//!
//! A jar is a zip chosen by whoever built the image: nesting depth, entry count, the size of each
//! nested archive and the bytes decompressed per top-level archive are all limited, so a zip bomb
//! ends in a warning naming the archive, not in an exhausted machine.

use std::io::{Cursor, Read};

use crate::found::Found;

/// Largest archive read from an image.
pub const MAX_JAR: u64 = 256 << 20;
/// Largest nested archive unpacked into memory.
pub const MAX_NESTED_JAR: u64 = 64 << 20;
/// Deepest nesting of archives followed.
pub const MAX_NESTING: usize = 3;
/// Most entries read from one archive.
pub const MAX_JAR_ENTRIES: usize = 100_000;
/// Most decompressed bytes per top-level archive (all nested archives together).
pub const MAX_JAR_BYTES: u64 = 1 << 30;
/// Largest `pom.properties`.
const MAX_POM_PROPERTIES: u64 = 64 << 10;

/// Whether a path names a Java archive.
pub(crate) fn is_archive_name(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    [".jar", ".war", ".ear", ".par"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// The Maven packages in an archive (`groupId:artifactId`, version), and warnings for nested
/// archives that were skipped (each names the entry). Fails only when the outer archive is not a zip.
pub(crate) fn packages(bytes: &[u8]) -> Result<(Vec<Found>, Vec<String>), String> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut budget = MAX_JAR_BYTES;
    walk(bytes, "", 0, &mut budget, &mut out, &mut warnings)?;
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out.dedup();
    Ok((out, warnings))
}

fn walk(
    bytes: &[u8],
    at: &str,
    depth: usize,
    budget: &mut u64,
    out: &mut Vec<Found>,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("{at}not a zip: {e}"))?;
    if zip.len() > MAX_JAR_ENTRIES {
        return Err(format!(
            "{at}{} entries, over the limit of {MAX_JAR_ENTRIES}",
            zip.len()
        ));
    }
    for i in 0..zip.len() {
        let mut entry = match zip.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                warnings.push(format!("{at}entry {i}: {e}"));
                continue;
            }
        };
        let name = entry
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|_| format!("entry {i}"));
        let is_pom = name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties");
        let is_nested = is_archive_name(&name) && !entry.is_dir();
        if !is_pom && !is_nested {
            continue;
        }
        let limit = if is_pom {
            MAX_POM_PROPERTIES
        } else {
            if depth + 1 > MAX_NESTING {
                warnings.push(format!(
                    "{at}{name}: nested more than {MAX_NESTING} archives deep; skipped"
                ));
                continue;
            }
            MAX_NESTED_JAR
        };
        if entry.size() > limit {
            warnings.push(format!(
                "{at}{name}: {} bytes, over the limit of {limit}; skipped",
                entry.size()
            ));
            continue;
        }
        let cap = limit.min(*budget);
        let mut data = Vec::new();
        // The declared size may lie: read at most the limit, whatever the header says.
        if let Err(e) = (&mut entry).take(cap + 1).read_to_end(&mut data) {
            warnings.push(format!("{at}{name}: {e}; skipped"));
            continue;
        }
        *budget = budget.saturating_sub(data.len() as u64);
        if data.len() as u64 > cap {
            warnings.push(format!(
                "{at}{name}: decompresses to more than {cap} bytes (a zip bomb?); skipped"
            ));
            if *budget == 0 {
                return Err(format!(
                    "{at}more than {MAX_JAR_BYTES} bytes decompressed; stopped"
                ));
            }
            continue;
        }
        if is_pom {
            match pom_properties(&data) {
                Some(f) => out.push(f),
                None => warnings.push(format!(
                    "{at}{name}: no groupId, artifactId and version; skipped"
                )),
            }
        } else {
            let inner = format!("{at}{name}!/");
            if let Err(e) = walk(&data, &inner, depth + 1, budget, out, warnings) {
                warnings.push(e);
            }
        }
    }
    Ok(())
}

/// Reads `groupId`, `artifactId` and `version` from a Java properties file.
fn pom_properties(data: &[u8]) -> Option<Found> {
    let text = std::str::from_utf8(data).ok()?;
    let (mut g, mut a, mut v) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((k, val)) = line.split_once(['=', ':']) else {
            continue;
        };
        let val = val.trim();
        match k.trim() {
            "groupId" => g = Some(val),
            "artifactId" => a = Some(val),
            "version" => v = Some(val),
            _ => {}
        }
    }
    let ok = |s: &str| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control);
    match (g, a, v) {
        (Some(g), Some(a), Some(v)) if ok(g) && ok(a) && ok(v) => {
            Some(Found::new(format!("{g}:{a}"), v))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    const POM: &[u8] = b"#Generated by Maven\ngroupId=org.apache.logging.log4j\nartifactId=log4j-core\nversion=2.14.1\n";

    #[test]
    fn reads_pom_properties_in_nested_jars() {
        let inner = zip_of(&[(
            "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties",
            POM,
        )]);
        let outer = zip_of(&[
            (
                "META-INF/maven/com.example/app/pom.properties",
                b"groupId=com.example\nartifactId=app\nversion=1.0\n",
            ),
            ("BOOT-INF/lib/log4j-core-2.14.1.jar", &inner),
        ]);
        let (p, w) = packages(&outer).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            p,
            vec![
                Found::new("com.example:app", "1.0"),
                Found::new("org.apache.logging.log4j:log4j-core", "2.14.1"),
            ]
        );
    }

    #[test]
    fn a_jar_bomb_and_deep_nesting_end_in_warnings() {
        let big = vec![0u8; (MAX_NESTED_JAR + 1024) as usize];
        let bomb = zip_of(&[("lib/bomb.jar", &big)]);
        let (p, w) = packages(&bomb).unwrap();
        assert!(p.is_empty());
        assert!(w.iter().any(|w| w.contains("lib/bomb.jar")), "{w:?}");

        let mut nested = zip_of(&[("META-INF/maven/g/a/pom.properties", POM)]);
        for _ in 0..MAX_NESTING + 1 {
            nested = zip_of(&[("x.jar", &nested)]);
        }
        let (p, w) = packages(&nested).unwrap();
        assert!(p.is_empty());
        assert!(w.iter().any(|w| w.contains("nested more than")), "{w:?}");

        assert!(packages(b"not a zip").unwrap_err().contains("not a zip"));
    }
}
