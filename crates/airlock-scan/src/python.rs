//! Python distributions: `*.dist-info/METADATA`, `*.egg-info/PKG-INFO`, or a `*.egg-info` file.

use crate::control::{field, headers};
use crate::found::Found;

/// Parses core metadata. The name is kept in the package-URL form (lower case, `_` as `-`, dots
/// kept: `zope.interface`), as trivy and the purl spec write it; matching normalises it further
/// per PEP 503. Errors say what is wrong with the file.
pub(crate) fn parse(bytes: &[u8]) -> Result<Found, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text ({e})"))?;
    let head = headers(text);
    if head
        .iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err("contains NUL bytes".into());
    }
    let name = field(&head, "Name").ok_or("no Name header")?;
    let version = field(&head, "Version").ok_or("no Version header")?;
    let valid = |s: &str| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control);
    if !valid(name) || !valid(version) {
        return Err("Name or Version is empty, too long or has control characters".into());
    }
    Ok(Found::new(
        name.trim().to_lowercase().replace('_', "-"),
        version,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_normalizes_the_name() {
        let p =
            parse(b"Metadata-Version: 2.1\nName: Jinja2\nVersion: 2.7.1\n\nName: body\n").unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("jinja2", "2.7.1"));
        let p = parse(b"Name: Zope.Interface\nVersion: 8.7\n").unwrap();
        assert_eq!(p.name, "zope.interface");
    }

    #[test]
    fn rejects_binary_metadata() {
        assert!(
            parse(&[0xff, 0xfe, 0x00, 0x01])
                .unwrap_err()
                .contains("UTF-8")
        );
        assert!(parse(b"Name: a\0b\nVersion: 1\n").is_err());
    }
}
