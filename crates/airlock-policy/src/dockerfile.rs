//! Facts from a Dockerfile for the policy input (`input.dockerfile`): every `FROM` with its
//! line, image and pinned digest, and every `ADD` of a remote URL.
//!
//! A small reader, not a full Dockerfile parser: it follows line continuations, comments and
//! the `escape` parser directive, skips `--flag` options and reads the JSON (exec) form of
//! `ADD`. That is all the rules need, and it keeps the policies independent of any builder.

use serde_json::{Value, json};

/// Largest Dockerfile read, in bytes; the rest is ignored (a Dockerfile is never this big).
pub const MAX_DOCKERFILE_BYTES: usize = 1024 * 1024;

/// One logical instruction: its first line (1-based), keyword in upper case, arguments.
struct Instruction {
    line: usize,
    keyword: String,
    args: String,
}

/// `{"from": [{"line", "image", "digest", "stage"}], "remote_add": [{"line", "url"}]}` for a
/// Dockerfile's text, in the shape `policies/input.schema.json` documents. `digest` is the
/// `@sha256:...` pin or `null`; `stage` is the `AS` name or `null`.
pub fn dockerfile_facts(text: &str) -> Value {
    let mut end = text.len().min(MAX_DOCKERFILE_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text[..end];
    let mut from = Vec::new();
    let mut remote_add = Vec::new();
    for ins in instructions(text) {
        let words = words_without_flags(&ins.args);
        match ins.keyword.as_str() {
            "FROM" => {
                let Some(image) = words.first() else { continue };
                let digest = image.split_once('@').map(|(_, d)| d.to_string());
                let stage = match (words.get(1), words.get(2)) {
                    (Some(kw), Some(name)) if kw.eq_ignore_ascii_case("as") => Some(name.clone()),
                    _ => None,
                };
                from.push(
                    json!({"line": ins.line, "image": image, "digest": digest, "stage": stage}),
                );
            }
            "ADD" => {
                let sources = add_sources(&ins.args, &words);
                for src in sources.into_iter().filter(|s| is_remote(s)) {
                    remote_add.push(json!({"line": ins.line, "url": src}));
                }
            }
            _ => {}
        }
    }
    json!({"from": from, "remote_add": remote_add})
}

fn is_remote(source: &str) -> bool {
    let lower = source.to_ascii_lowercase();
    lower.starts_with("http://")
        || lower.starts_with("https://")
        || lower.starts_with("git@")
        || lower.starts_with("git://")
}

/// Sources of an `ADD` (every argument but the destination), in shell or JSON form.
fn add_sources(args: &str, words: &[String]) -> Vec<String> {
    let rest = strip_flags(args);
    if rest.starts_with('[')
        && let Ok(items) = serde_json::from_str::<Vec<String>>(rest)
    {
        return items
            .split_last()
            .map(|(_, s)| s.to_vec())
            .unwrap_or_default();
    }
    words
        .split_last()
        .map(|(_, s)| s.to_vec())
        .unwrap_or_default()
}

/// The arguments after leading `--flag` / `--flag=value` options.
fn strip_flags(args: &str) -> &str {
    let mut rest = args.trim_start();
    while rest.starts_with("--") {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest
}

fn words_without_flags(args: &str) -> Vec<String> {
    strip_flags(args)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Logical instructions: continuation lines joined, comments and blank lines dropped.
fn instructions(text: &str) -> Vec<Instruction> {
    let escape = escape_char(text);
    let mut out = Vec::new();
    let mut current: Option<Instruction> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        // Docker skips comment and empty lines, also inside a continued instruction.
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (body, continues) = match line.strip_suffix(escape) {
            Some(body) => (body, true),
            None => (line, false),
        };
        match current.as_mut() {
            Some(ins) => {
                ins.args.push(' ');
                ins.args.push_str(body.trim());
            }
            None => {
                let (keyword, args) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
                current = Some(Instruction {
                    line: index + 1,
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.trim().to_string(),
                });
            }
        }
        if !continues && let Some(ins) = current.take() {
            out.push(ins);
        }
    }
    out.extend(current);
    out
}

/// The escape character from a leading `# escape=` parser directive (default `\`).
fn escape_char(text: &str) -> char {
    for line in text.lines() {
        let Some(directive) = line.trim().strip_prefix('#') else {
            break;
        };
        let directive = directive.trim();
        if let Some(value) = directive
            .split_once('=')
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("escape"))
            .map(|(_, v)| v.trim())
            && let Some(c) = value.chars().next()
        {
            return c;
        }
    }
    '\\'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_from_lines_with_digest_and_stage() {
        let facts = dockerfile_facts(
            "# syntax=docker/dockerfile:1\nFROM --platform=linux/amd64 rust:1.95 AS build\nRUN cargo build\n\nfrom registry.local/static@sha256:abc\nCOPY --from=build /app /app\n",
        );
        assert_eq!(
            facts["from"],
            json!([
                {"line": 2, "image": "rust:1.95", "digest": null, "stage": "build"},
                {"line": 5, "image": "registry.local/static@sha256:abc", "digest": "sha256:abc", "stage": null},
            ])
        );
        assert_eq!(facts["remote_add"], json!([]));
    }

    #[test]
    fn finds_remote_add_across_continuations_and_json_form() {
        let facts = dockerfile_facts(
            "FROM scratch\nADD --chown=1:1 \\\n    https://example.com/tool.tgz \\\n    /opt/\nADD [\"http://x.test/a\", \"local.txt\", \"/d/\"]\nADD local /l\nCOPY https://not-fetched /c\n",
        );
        assert_eq!(
            facts["remote_add"],
            json!([
                {"line": 2, "url": "https://example.com/tool.tgz"},
                {"line": 5, "url": "http://x.test/a"},
            ])
        );
    }

    #[test]
    fn honours_the_escape_directive() {
        let facts =
            dockerfile_facts("# escape=`\nFROM base\nADD `\n  https://example.com/x `\n  C:\\x\n");
        assert_eq!(
            facts["remote_add"],
            json!([{"line": 3, "url": "https://example.com/x"}])
        );
    }

    #[test]
    fn empty_text_has_no_facts() {
        assert_eq!(dockerfile_facts(""), json!({"from": [], "remote_add": []}));
    }
}
