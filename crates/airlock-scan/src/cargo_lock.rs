//! `Cargo.lock`: the crates.io packages a Rust project was built from.

use crate::found::Found;

#[derive(serde::Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<LockPackage>,
}

#[derive(serde::Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    source: Option<String>,
}

/// Parses a Cargo.lock and returns the packages that come from a registry (workspace members and
/// git dependencies are not crates.io packages and would match the wrong advisories).
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Found>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text ({e})"))?;
    let lock: Lock =
        toml::from_str(text).map_err(|e| format!("not a Cargo.lock: {}", e.message()))?;
    Ok(lock
        .package
        .into_iter()
        .filter(|p| {
            p.source
                .as_deref()
                .is_some_and(|s| s.starts_with("registry+") || s.starts_with("sparse+"))
        })
        .map(|p| Found::new(p.name, p.version))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_registry_packages_only() {
        let lock = br#"version = 3
[[package]]
name = "app"
version = "0.1.0"
dependencies = ["time"]

[[package]]
name = "time"
version = "0.1.45"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "1b797afad3f312d1c66a56d11d0316f916356d11bd158fbc6ca6389ff6bf805a"
"#;
        let p = parse(lock).unwrap();
        assert_eq!(p, vec![Found::new("time", "0.1.45")]);
    }

    #[test]
    fn rejects_a_file_that_is_not_toml() {
        assert!(
            parse(b"[[package]\nname=")
                .unwrap_err()
                .contains("not a Cargo.lock")
        );
    }
}
