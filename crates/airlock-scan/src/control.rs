//! Deb822 / RFC 822 style stanzas: `Key: value` lines, continuation lines start with a space,
//! stanzas are separated by blank lines. Used by dpkg status and Python metadata headers.

/// Most stanzas read from one file.
pub const MAX_STANZAS: usize = 200_000;

/// Splits text into stanzas of (key, value) pairs, keys as written. Continuation lines are
/// appended to the previous value with a newline. Stops after [`MAX_STANZAS`] stanzas and
/// reports that it did.
pub(crate) fn stanzas(text: &str) -> (Vec<Vec<(String, String)>>, bool) {
    let mut out = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
                if out.len() >= MAX_STANZAS {
                    return (out, true);
                }
            }
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, v)) = current.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            current.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    (out, false)
}

/// The first value of `key` (case-insensitive) in a stanza.
pub(crate) fn field<'a>(stanza: &'a [(String, String)], key: &str) -> Option<&'a str> {
    stanza
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// The header block of an RFC 822 message (up to the first blank line), as one stanza.
pub(crate) fn headers(text: &str) -> Vec<(String, String)> {
    let end = text
        .find("\n\n")
        .or_else(|| text.find("\r\n\r\n"))
        .unwrap_or(text.len());
    stanzas(&text[..end])
        .0
        .into_iter()
        .next()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_stanzas_and_joins_continuation_lines() {
        let (s, truncated) = stanzas("Package: a\nDescription: x\n more\n\nPackage: b\n");
        assert!(!truncated);
        assert_eq!(s.len(), 2);
        assert_eq!(field(&s[0], "description"), Some("x\nmore"));
        assert_eq!(field(&s[1], "Package"), Some("b"));
    }

    #[test]
    fn headers_stop_at_the_body() {
        let h = headers("Name: foo\nVersion: 1\n\nName: not-this\n");
        assert_eq!(field(&h, "name"), Some("foo"));
        assert_eq!(h.len(), 2);
    }
}
