//! Mapping between byte spans in the TOML text, key paths and line numbers,
//! so that every error can say "airlock.toml line N" and name the key.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Renders a path as `deploy.resources.memory` or `build.artifacts[1].to`.
pub(crate) fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Where a path points in a parsed document.
pub(crate) struct Hit {
    /// The deepest path whose key or value contains the offset.
    pub path: Vec<Seg>,
    /// True when the offset is on the key itself rather than its value.
    pub on_key: bool,
}

/// Finds the deepest key path whose key or value contains `offset`. Searches the whole
/// tree: a `[section]` table's span covers only its header, not its body.
pub(crate) fn path_at(root: &DeTable<'_>, offset: usize) -> Hit {
    let mut path = Vec::new();
    match walk_table(root, offset, &mut path) {
        Some(on_key) => Hit { path, on_key },
        None => Hit {
            path: Vec::new(),
            on_key: false,
        },
    }
}

fn contains(span: Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

/// Returns `Some(on_key)` and leaves the found path in `path`, or `None` (path unchanged).
fn walk_table(table: &DeTable<'_>, offset: usize, path: &mut Vec<Seg>) -> Option<bool> {
    for (key, value) in table.iter() {
        path.push(Seg::Key(key.get_ref().to_string()));
        if contains(key.span(), offset) {
            return Some(true);
        }
        if let Some(on_key) = walk_value(value, offset, path) {
            return Some(on_key);
        }
        path.pop();
    }
    None
}

fn walk_value(value: &Spanned<DeValue<'_>>, offset: usize, path: &mut Vec<Seg>) -> Option<bool> {
    let inner = match value.get_ref() {
        DeValue::Table(t) => walk_table(t, offset, path),
        DeValue::Array(items) => {
            let mut found = None;
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                if let Some(on_key) = walk_value(item, offset, path) {
                    found = Some(on_key);
                    break;
                }
                path.pop();
            }
            found
        }
        _ => None,
    };
    inner.or_else(|| contains(value.span(), offset).then_some(false))
}

/// Byte offset of the value at `path` (or of its key when `key` is true), if present.
pub(crate) fn offset_of(root: &DeTable<'_>, path: &[Seg], key: bool) -> Option<usize> {
    let (first, rest) = path.split_first()?;
    let Seg::Key(name) = first else { return None };
    let (k, v) = root.get_key_value(name.as_str())?;
    if rest.is_empty() {
        return Some(if key { k.span().start } else { v.span().start });
    }
    offset_in_value(v, rest, key)
}

fn offset_in_value(value: &Spanned<DeValue<'_>>, path: &[Seg], key: bool) -> Option<usize> {
    match (value.get_ref(), path.first()?) {
        (DeValue::Table(t), Seg::Key(_)) => offset_of(t, path, key),
        (DeValue::Array(items), Seg::Index(i)) => {
            let item = items.get(*i)?;
            if path.len() == 1 {
                Some(item.span().start)
            } else {
                offset_in_value(item, &path[1..], key)
            }
        }
        _ => None,
    }
}
