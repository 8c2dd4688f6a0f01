//! npm packages: `node_modules/[@scope/]name/package.json`, and `package-lock.json` /
//! `npm-shrinkwrap.json` (lockfile versions 1 to 3).

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
            if !n.is_empty()
                && !v.is_empty()
                && n.len() <= 214
                && v.len() <= 256
                && !n.chars().chain(v.chars()).any(char::is_control) =>
        {
            Ok(Found::new(n, v))
        }
        _ => Err("no usable name and version".into()),
    }
}

/// Reads a `package.json` outside `node_modules/<name>/`: a package when it names itself and a
/// version, None when it does not (a stub such as `{"main": "index.js"}`).
pub(crate) fn parse_manifest(bytes: &[u8]) -> Result<Option<Found>, String> {
    let m: Manifest =
        serde_json::from_slice(bytes).map_err(|e| format!("not a package.json: {e}"))?;
    if m.name.is_none() || m.version.is_none() {
        return Ok(None);
    }
    parse(bytes).map(Some)
}

/// Deepest nesting of `dependencies` read from a version 1 lockfile.
const MAX_LOCK_DEPTH: usize = 64;

/// Whether a lockfile version is a registry version (not `file:`, a git URL or a tarball URL).
fn registry_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && v.starts_with(|c: char| c.is_ascii_digit())
        && !v.chars().any(char::is_control)
}

/// Reads the installed packages a lockfile records: `packages` (lockfile v2/v3, keyed by
/// `node_modules/...` path) or, for v1, the nested `dependencies`. Links, the root project and
/// non-registry versions are left out.
pub(crate) fn parse_lock(bytes: &[u8]) -> Result<Vec<Found>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not a package-lock.json: {e}"))?;
    let mut out = Vec::new();
    if let Some(pkgs) = v.get("packages").and_then(|p| p.as_object()) {
        for (path, p) in pkgs {
            let Some((_, name)) = path.rsplit_once("node_modules/") else {
                continue; // "" is the project itself; workspace folders are not installed packages
            };
            if p.get("link").and_then(|l| l.as_bool()) == Some(true) {
                continue;
            }
            if let Some(ver) = p.get("version").and_then(|v| v.as_str())
                && registry_version(ver)
                && !name.is_empty()
                && name.len() <= 214
                && !name.chars().any(char::is_control)
            {
                out.push(Found::new(name, ver));
            }
        }
    } else if let Some(deps) = v.get("dependencies") {
        walk_v1(deps, 0, &mut out);
    } else {
        return Err("no packages or dependencies".into());
    }
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out.dedup();
    Ok(out)
}

fn walk_v1(deps: &serde_json::Value, depth: usize, out: &mut Vec<Found>) {
    let Some(map) = deps.as_object() else { return };
    if depth >= MAX_LOCK_DEPTH {
        return;
    }
    for (name, d) in map {
        if let Some(ver) = d.get("version").and_then(|v| v.as_str())
            && registry_version(ver)
            && name.len() <= 214
            && !name.chars().any(char::is_control)
        {
            out.push(Found::new(name.as_str(), ver));
        }
        if let Some(nested) = d.get("dependencies") {
            walk_v1(nested, depth + 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lockfile_v3_packages_without_links_or_the_root() {
        let lock = br#"{"name":"app","lockfileVersion":3,"packages":{
            "":{"name":"app","version":"1.0.0"},
            "node_modules/lodash":{"version":"4.17.20"},
            "node_modules/@babel/core":{"version":"7.0.0"},
            "node_modules/a/node_modules/lodash":{"version":"3.10.1"},
            "node_modules/local":{"resolved":"packages/local","link":true},
            "node_modules/gitdep":{"version":"git+ssh://git@github.com/x/y.git#abc"}}}"#;
        assert_eq!(
            parse_lock(lock).unwrap(),
            vec![
                Found::new("@babel/core", "7.0.0"),
                Found::new("lodash", "3.10.1"),
                Found::new("lodash", "4.17.20"),
            ]
        );
    }

    #[test]
    fn reads_nested_lockfile_v1_dependencies() {
        let lock = br#"{"lockfileVersion":1,"dependencies":{"a":{"version":"1.0.0","dependencies":{"b":{"version":"2.0.0"}}}}}"#;
        assert_eq!(
            parse_lock(lock).unwrap(),
            vec![Found::new("a", "1.0.0"), Found::new("b", "2.0.0")]
        );
        assert!(parse_lock(b"[1,2]").is_err());
        assert!(
            parse_lock(b"{\"packages\":")
                .unwrap_err()
                .contains("not a package-lock")
        );
    }

    #[test]
    fn reads_name_and_version() {
        assert_eq!(
            parse(br#"{"name":"@babel/core","version":"7.0.0","dependencies":{}}"#).unwrap(),
            Found::new("@babel/core", "7.0.0")
        );
        assert!(parse(b"{}").is_err());
    }
}
