//! Checks on the inputs that the Kubernetes API would otherwise reject later (or worse,
//! accept): names, label values, image digests, annotation text.

use crate::error::ManifestError;

/// DNS-1123 label: lowercase alphanumerics and '-', alphanumeric at both ends, 1..=63.
pub(crate) fn dns_label(field: &str, value: &str) -> Result<(), ManifestError> {
    let b = value.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-';
    if ok {
        Ok(())
    } else {
        Err(ManifestError::invalid(
            field,
            value,
            "is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)",
        ))
    }
}

/// Kubernetes label value: at most 63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends.
pub(crate) fn label_value(field: &str, value: &str) -> Result<(), ManifestError> {
    let b = value.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(ManifestError::invalid(
            field,
            value,
            "is not a Kubernetes label value (letters, digits, '-', '_', '.', at most 63)",
        ))
    }
}

/// Short printable text for an annotation (commit id, run id).
pub(crate) fn annotation_text(field: &str, value: &str) -> Result<(), ManifestError> {
    if value.is_empty()
        || value.len() > 256
        || value.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(ManifestError::invalid(
            field,
            value.chars().take(80).collect::<String>(),
            "must be 1 to 256 printable characters without spaces",
        ));
    }
    Ok(())
}

/// Image reference pinned by digest: `name[:tag]@sha256:<64 lowercase hex>`.
pub(crate) fn image_by_digest(field: &str, image: &str) -> Result<(), ManifestError> {
    let bad = |reason: &str| ManifestError::invalid(field, image, reason.to_string());
    if image.len() > 512 || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("is not an image reference"));
    }
    let Some((name, digest)) = image.split_once('@') else {
        return Err(bad(
            "is not pinned by digest (expected repo@sha256:<64 hex>)",
        ));
    };
    let hex_ok = digest.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if name.is_empty() || !hex_ok {
        return Err(bad(
            "is not pinned by digest (expected repo@sha256:<64 hex>)",
        ));
    }
    Ok(())
}

/// C identifier, as environment variable names must be.
pub(crate) fn env_name(field: &str, name: &str) -> Result<(), ManifestError> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ManifestError::invalid(
            field,
            name,
            "is not a valid environment variable name (letters, digits and '_', not starting with a digit)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_image_by_digest_and_rejects_tag_only() {
        let d = format!("reg.example/app@sha256:{}", "a".repeat(64));
        assert!(image_by_digest("meta.image", &d).is_ok());
        let e = image_by_digest("meta.image", "reg.example/app:latest").unwrap_err();
        assert_eq!(
            e.to_string(),
            "meta.image \"reg.example/app:latest\" is not pinned by digest (expected repo@sha256:<64 hex>)"
        );
        assert!(image_by_digest("meta.image", "app@sha256:ABC").is_err());
    }

    #[test]
    fn rejects_label_value_with_slash() {
        assert!(label_value("meta.team", "team/a").is_err());
        assert!(label_value("meta.team", "Team_A.1").is_ok());
    }
}
