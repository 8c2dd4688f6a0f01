//! npm packages: `node_modules/[@scope/]name/package.json`.

use crate::found::Found;

#[derive(serde::Deserialize)]
struct Manifest {
    name: Option<String>,
    version: Option<String>,
}

/// Reads the name and version of an installed npm package.
pub(crate) fn parse(bytes: &[u8]) -> Result<Found, String> {
    let m: Manifest =
        serde_json::from_slice(bytes).map_err(|e| format!("not a package.json: {e}"))?;
    match (m.name, m.version) {
        (Some(n), Some(v))
            if !n.is_empty() && !v.is_empty() && n.len() <= 214 && v.len() <= 256 =>
        {
            Ok(Found::new(n, v))
        }
        _ => Err("no usable name and version".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_and_version() {
        assert_eq!(
            parse(br#"{"name":"@babel/core","version":"7.0.0","dependencies":{}}"#).unwrap(),
            Found::new("@babel/core", "7.0.0")
        );
        assert!(parse(b"{}").is_err());
    }
}
