//! Checking a Dockerfile before it is built: every `FROM` (and `COPY --from` of an image) must name an
//! approved base of the platform, `ADD` must not fetch a URL. The check runs on the text alone, before the
//! Docker Engine sees anything, and names the line it refuses.
//!
//! The checked Dockerfile is then rewritten so each approved `FROM` names the exact local image the gate put
//! into the Engine for that pinned digest: the Engine never resolves a name on its own (nothing is pulled).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::{BuildError, Stack};

/// Where an approved base lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseSource {
    /// In the gate's base store (an OCI layout) under this reference; pinned by manifest digest.
    Store(String),
    /// In the Docker Engine (a stack's builder image); pinned by the Engine's image id.
    Engine,
}

/// An image a Dockerfile may start from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovedBase {
    /// The name a Dockerfile writes (`static`, `airlock.local/builders/rust-host:1.95.0-...`).
    pub name: String,
    /// The pinned digest (`sha256:...`).
    pub digest: String,
    /// Where the gate gets it from.
    pub source: BaseSource,
}

/// The approved bases of a platform: every stack's run image, and its builder image when pinned.
pub fn approved_bases(stacks: &[Stack]) -> Vec<ApprovedBase> {
    let mut out: Vec<ApprovedBase> = Vec::new();
    for stack in stacks {
        let run = ApprovedBase {
            name: stack.run_image.clone(),
            digest: stack.run_image_digest.to_string(),
            source: BaseSource::Store(stack.run_image.clone()),
        };
        if !out.contains(&run) {
            out.push(run);
        }
        if let (Some(name), Some(digest)) = (&stack.builder_image, &stack.builder_image_digest) {
            let builder = ApprovedBase {
                name: name.clone(),
                digest: digest.clone(),
                source: BaseSource::Engine,
            };
            if !out.contains(&builder) {
                out.push(builder);
            }
        }
    }
    out
}

/// One `FROM` (or `COPY --from` naming an image) and what it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FromLine {
    /// 1-based line of the instruction.
    pub line: usize,
    /// The image as written, after `ARG` substitution.
    pub image: String,
    /// The pinned digest it resolved to; `None` for a reference to an earlier stage.
    pub digest: Option<String>,
}

/// A Dockerfile that passed the checks.
#[derive(Debug, Clone)]
pub struct CheckedDockerfile {
    /// Every `FROM` / `COPY --from` in order (the policy input's `dockerfile.from`).
    pub from: Vec<FromLine>,
    /// The approved bases used, by index into the list given to [`check_dockerfile`].
    pub bases_used: Vec<usize>,
    /// The base at the bottom of the stage that is built (the target, else the last).
    pub final_base: usize,
    /// Instructions whose image must be replaced by the local name of a base: (instruction index, base).
    replacements: Vec<Replacement>,
    /// The instructions, for rewriting.
    instructions: Vec<Instruction>,
}

#[derive(Debug, Clone)]
struct Replacement {
    instruction: usize,
    /// The text to replace (the image as written, before substitution) and the base it resolved to.
    written: String,
    base: usize,
}

#[derive(Debug, Clone)]
struct Instruction {
    /// 1-based first line.
    line: usize,
    /// Number of physical lines it spans.
    lines: usize,
    /// Keyword, upper case.
    keyword: String,
    /// Everything after the keyword, continuation lines joined with a space.
    args: String,
}

impl CheckedDockerfile {
    /// The Dockerfile with each approved image replaced by `local_names[base index]`, line numbers kept
    /// (continuation lines of a rewritten instruction become empty lines).
    pub fn rewrite(&self, original: &str, local_names: &BTreeMap<usize, String>) -> String {
        let physical: Vec<&str> = original.split('\n').collect();
        let mut out: Vec<String> = physical.iter().map(|l| l.to_string()).collect();
        for (idx, ins) in self.instructions.iter().enumerate() {
            let mut args = ins.args.clone();
            let mut changed = false;
            for r in self.replacements.iter().filter(|r| r.instruction == idx) {
                if let Some(local) = local_names.get(&r.base) {
                    args = replace_word(&args, &r.written, local);
                    changed = true;
                }
            }
            if changed {
                let first = ins.line - 1;
                out[first] = format!("{} {}", ins.keyword, args);
                for extra in out.iter_mut().skip(first + 1).take(ins.lines - 1) {
                    extra.clear();
                }
            }
        }
        out.join("\n")
    }
}

/// Replaces `word` where it stands as a whole whitespace-separated word (or the value of `--from=`).
fn replace_word(args: &str, word: &str, with: &str) -> String {
    args.split(' ')
        .map(|w| {
            if w == word {
                with.to_string()
            } else if let Some(v) = w.strip_prefix("--from=")
                && v == word
            {
                format!("--from={with}")
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks `text` (the Dockerfile at `file`) against `bases`, with the descriptor's build args and target.
pub fn check_dockerfile(
    file: &str,
    text: &str,
    bases: &[ApprovedBase],
    build_args: &BTreeMap<String, String>,
    target: Option<&str>,
) -> Result<CheckedDockerfile, BuildError> {
    let refuse = |line: usize, reason: String| BuildError::DockerfileRefused {
        file: file.to_string(),
        line,
        reason,
    };
    let (escape, instructions) = split_instructions(text);
    let _ = escape;
    let mut global_args: HashMap<String, String> = HashMap::new();
    // Stage names (lower case) → (stage index, base index at the bottom of that stage).
    let mut stages: Vec<(Option<String>, usize)> = Vec::new();
    let mut from = Vec::new();
    let mut replacements = Vec::new();
    let mut bases_used = Vec::new();
    let approved_list = || {
        if bases.is_empty() {
            "none are configured".to_string()
        } else {
            bases
                .iter()
                .map(|b| format!("{} ({})", b.name, b.digest))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };

    for (idx, ins) in instructions.iter().enumerate() {
        match ins.keyword.as_str() {
            "ARG" if stages.is_empty() => {
                for decl in ins.args.split_whitespace() {
                    let (name, default) = match decl.split_once('=') {
                        Some((n, d)) => (n, Some(unquote(d))),
                        None => (decl, None),
                    };
                    let value = build_args.get(name).cloned().or(default);
                    if let Some(v) = value {
                        global_args.insert(name.to_string(), v);
                    }
                }
            }
            "FROM" => {
                let words: Vec<&str> = ins.args.split_whitespace().collect();
                let mut rest = words.iter().skip_while(|w| w.starts_with("--"));
                let Some(written) = rest.next() else {
                    return Err(refuse(ins.line, "FROM names no image".into()));
                };
                let alias = match (rest.next(), rest.next()) {
                    (Some(kw), Some(name)) if kw.eq_ignore_ascii_case("as") => {
                        Some(name.to_ascii_lowercase())
                    }
                    (None, _) => None,
                    _ => {
                        return Err(refuse(
                            ins.line,
                            format!("cannot read `FROM {}`", ins.args.trim()),
                        ));
                    }
                };
                let image = substitute(written, &global_args).map_err(|var| {
                    refuse(
                        ins.line,
                        format!(
                            "FROM uses ${var}, which no ARG before the first FROM or build arg sets"
                        ),
                    )
                })?;
                let lower = image.to_ascii_lowercase();
                let stage_base = if let Some((_, base)) = stages
                    .iter()
                    .find(|(name, _)| name.as_deref() == Some(lower.as_str()))
                {
                    from.push(FromLine {
                        line: ins.line,
                        image: image.clone(),
                        digest: None,
                    });
                    *base
                } else {
                    let base = resolve(&image, bases).ok_or_else(|| {
                        refuse(
                            ins.line,
                            format!(
                                "FROM {image} is not an approved base of this platform; use one of: {} \
                                 (by name, or any name with @ its digest)",
                                approved_list()
                            ),
                        )
                    })?;
                    from.push(FromLine {
                        line: ins.line,
                        image: image.clone(),
                        digest: Some(bases[base].digest.clone()),
                    });
                    replacements.push(Replacement {
                        instruction: idx,
                        written: written.to_string(),
                        base,
                    });
                    if !bases_used.contains(&base) {
                        bases_used.push(base);
                    }
                    base
                };
                stages.push((alias, stage_base));
            }
            "ADD" => {
                for source in sources(&ins.args) {
                    if is_remote(&source) {
                        return Err(refuse(
                            ins.line,
                            format!(
                                "ADD of a remote URL ({source}) is refused: its content is not pinned by digest; \
                                 vendor the file into the repository and COPY it"
                            ),
                        ));
                    }
                }
            }
            "COPY" => {
                let Some(written) = ins
                    .args
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("--from="))
                else {
                    continue;
                };
                let image = substitute(written, &global_args).map_err(|var| {
                    refuse(
                        ins.line,
                        format!("COPY --from uses ${var}, which nothing sets"),
                    )
                })?;
                let lower = image.to_ascii_lowercase();
                let is_stage = stages
                    .iter()
                    .any(|(name, _)| name.as_deref() == Some(lower.as_str()))
                    || lower.parse::<usize>().is_ok_and(|n| n < stages.len());
                if is_stage {
                    continue;
                }
                let base = resolve(&image, bases).ok_or_else(|| {
                    refuse(
                        ins.line,
                        format!(
                            "COPY --from={image} names neither an earlier stage nor an approved base; use one of: {}",
                            approved_list()
                        ),
                    )
                })?;
                from.push(FromLine {
                    line: ins.line,
                    image,
                    digest: Some(bases[base].digest.clone()),
                });
                replacements.push(Replacement {
                    instruction: idx,
                    written: written.to_string(),
                    base,
                });
                if !bases_used.contains(&base) {
                    bases_used.push(base);
                }
            }
            _ => {}
        }
    }
    let final_base = match target {
        Some(t) => stages
            .iter()
            .find(|(name, _)| name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
            .map(|(_, base)| *base)
            .ok_or_else(|| {
                BuildError::Invalid(format!(
                    "build.target {t:?} is not a stage of {file} (stages: {})",
                    stages
                        .iter()
                        .filter_map(|(n, _)| n.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
        None => stages
            .last()
            .map(|(_, base)| *base)
            .ok_or_else(|| BuildError::Invalid(format!("{file} has no FROM instruction")))?,
    };
    Ok(CheckedDockerfile {
        from,
        bases_used,
        final_base,
        replacements,
        instructions,
    })
}

/// The approved base `image` names: by digest (`anything@sha256:...`, or a bare digest) or by exact name.
fn resolve(image: &str, bases: &[ApprovedBase]) -> Option<usize> {
    if image.eq_ignore_ascii_case("scratch") {
        return None;
    }
    match image.rsplit_once('@') {
        Some((name, digest)) => bases
            .iter()
            .position(|b| b.digest == digest && (name.is_empty() || name == b.name))
            .or_else(|| bases.iter().position(|b| b.digest == digest)),
        None => bases
            .iter()
            .position(|b| b.name == image || b.digest == image),
    }
}

/// `${VAR}`, `$VAR`, `${VAR:-default}` from the global args; `Err(var)` when a variable is unset.
fn substitute(word: &str, args: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let (name, default) = if chars.peek() == Some(&'{') {
            chars.next();
            let mut inner = String::new();
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
                inner.push(c);
            }
            match inner.split_once(":-") {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (inner, None),
            }
        } else {
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    name.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            (name, None)
        };
        match args
            .get(&name)
            .filter(|v| !v.is_empty())
            .cloned()
            .or(default)
        {
            Some(v) => out.push_str(&v),
            None => return Err(name),
        }
    }
    Ok(out)
}

fn unquote(s: &str) -> String {
    s.trim_matches('"').trim_matches('\'').to_string()
}

/// The source operands of `ADD`/`COPY` arguments (flags and the destination left out; JSON form read).
fn sources(args: &str) -> Vec<String> {
    let trimmed = args.trim();
    let words: Vec<String> = if trimmed.starts_with('[') {
        serde_json::from_str::<Vec<String>>(trimmed).unwrap_or_default()
    } else {
        trimmed
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .map(str::to_string)
            .collect()
    };
    let n = words.len().saturating_sub(1);
    words.into_iter().take(n).collect()
}

/// A URL (`scheme://...`) or a git SSH address (`git@host:...`).
fn is_remote(source: &str) -> bool {
    if source.starts_with("git@") {
        return true;
    }
    match source.split_once("://") {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '.' || c == '-')
        }
        None => false,
    }
}

/// Splits the text into instructions: parser directives read (only `escape`), comment lines dropped,
/// continuation lines joined. Returns the escape character and the instructions.
fn split_instructions(text: &str) -> (char, Vec<Instruction>) {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut escape = '\\';
    let mut i = 0;
    // Parser directives: `# key=value` lines at the very top.
    while i < lines.len() {
        let l = lines[i].trim();
        let Some(directive) = l.strip_prefix('#') else {
            break;
        };
        match directive.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("escape") => {
                if let Some(c) = v.trim().chars().next() {
                    escape = c;
                }
                i += 1;
            }
            Some((k, _)) if k.trim().eq_ignore_ascii_case("syntax") => i += 1,
            _ => break,
        }
    }
    let mut out = Vec::new();
    while i < lines.len() {
        let first = i;
        let l = lines[i].trim_end_matches('\r');
        i += 1;
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let mut joined = String::new();
        let mut current = t.trim_end().to_string();
        loop {
            if let Some(stripped) = current.strip_suffix(escape) {
                joined.push_str(stripped);
                joined.push(' ');
                // Comment and empty lines inside a continuation are skipped.
                let mut next = None;
                while i < lines.len() {
                    let n = lines[i].trim_end_matches('\r').trim();
                    i += 1;
                    if n.is_empty() || n.starts_with('#') {
                        continue;
                    }
                    next = Some(n.to_string());
                    break;
                }
                match next {
                    Some(n) => current = n,
                    None => break,
                }
            } else {
                joined.push_str(&current);
                break;
            }
        }
        let (keyword, args) = match joined.split_once(char::is_whitespace) {
            Some((k, a)) => (k.to_ascii_uppercase(), a.trim().to_string()),
            None => (joined.to_ascii_uppercase(), String::new()),
        };
        out.push(Instruction {
            line: first + 1,
            lines: i - first,
            keyword,
            args,
        });
    }
    (escape, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATIC: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const BUILDER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn bases() -> Vec<ApprovedBase> {
        vec![
            ApprovedBase {
                name: "static".into(),
                digest: STATIC.into(),
                source: BaseSource::Store("static".into()),
            },
            ApprovedBase {
                name: "airlock.local/builders/busybox:1".into(),
                digest: BUILDER.into(),
                source: BaseSource::Engine,
            },
        ]
    }

    fn check(text: &str) -> Result<CheckedDockerfile, BuildError> {
        check_dockerfile("Dockerfile", text, &bases(), &BTreeMap::new(), None)
    }

    #[test]
    fn multi_stage_with_approved_bases_passes_and_is_rewritten() {
        let text = "# syntax=docker/dockerfile:1\nARG BUILDER=airlock.local/builders/busybox:1\nFROM ${BUILDER} AS build\nRUN echo hi > /x\n\nFROM static@sha256:1111111111111111111111111111111111111111111111111111111111111111\nCOPY --from=build /x /x\nUSER 65532\n";
        let checked = check(text).unwrap();
        assert_eq!(checked.from.len(), 2);
        assert_eq!(checked.from[0].line, 3);
        assert_eq!(checked.from[0].digest.as_deref(), Some(BUILDER));
        assert_eq!(checked.from[1].line, 6);
        assert_eq!(checked.final_base, 0);
        assert_eq!(checked.bases_used, vec![1, 0]);
        let names = BTreeMap::from([
            (0, "airlock.local/approved/static:1".to_string()),
            (1, "airlock.local/approved/busybox:2".to_string()),
        ]);
        let out = checked.rewrite(text, &names);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[2], "FROM airlock.local/approved/busybox:2 AS build");
        assert_eq!(lines[5], "FROM airlock.local/approved/static:1");
        assert_eq!(lines[6], "COPY --from=build /x /x");
        assert_eq!(out.lines().count(), text.lines().count());
    }

    #[test]
    fn unapproved_from_is_refused_naming_the_line() {
        let err = check("FROM static\nRUN true\nFROM \\\n  debian:bookworm\n").unwrap_err();
        match &err {
            BuildError::DockerfileRefused { line, reason, .. } => {
                assert_eq!(*line, 3);
                assert!(reason.contains("debian:bookworm"), "{reason}");
                assert!(reason.contains("static (sha256:1111"), "{reason}");
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().starts_with("Dockerfile line 3: "), "{err}");
        // A digest that no base has, even under an approved name.
        let err = check(&format!("FROM static@{BUILDER}x\n")).unwrap_err();
        assert!(matches!(err, BuildError::DockerfileRefused { line: 1, .. }));
        assert!(matches!(
            check("FROM scratch\n").unwrap_err(),
            BuildError::DockerfileRefused { line: 1, .. }
        ));
    }

    #[test]
    fn remote_add_and_image_copy_from_are_refused() {
        let err =
            check("FROM static\nADD --chown=1:1 https://example.com/tool.tgz /opt/\n").unwrap_err();
        assert!(
            matches!(&err, BuildError::DockerfileRefused { line: 2, reason, .. } if reason.contains("https://example.com/tool.tgz")),
            "{err}"
        );
        let err = check("FROM static\nADD [\"git@github.com:a/b.git\", \"/src\"]\n").unwrap_err();
        assert!(matches!(err, BuildError::DockerfileRefused { line: 2, .. }));
        let err = check("FROM static\nCOPY --from=alpine:3 /bin/sh /bin/sh\n").unwrap_err();
        assert!(
            matches!(&err, BuildError::DockerfileRefused { line: 2, reason, .. } if reason.contains("alpine:3")),
            "{err}"
        );
        // Local ADD is fine; so is COPY --from a stage index.
        check("FROM static\nADD app.tar /app/\nFROM static\nCOPY --from=0 /app /app\n").unwrap();
    }

    #[test]
    fn build_args_and_target_choose_the_base() {
        let text = "ARG BASE\nFROM $BASE AS run\nFROM airlock.local/builders/busybox:1 AS tools\n";
        let err = check(text).unwrap_err();
        assert!(
            matches!(&err, BuildError::DockerfileRefused { line: 2, reason, .. } if reason.contains("$BASE")),
            "{err}"
        );
        let args = BTreeMap::from([("BASE".to_string(), "static".to_string())]);
        let checked = check_dockerfile("Dockerfile", text, &bases(), &args, Some("run")).unwrap();
        assert_eq!(checked.final_base, 0);
        let checked = check_dockerfile("Dockerfile", text, &bases(), &args, None).unwrap();
        assert_eq!(checked.final_base, 1);
        let err = check_dockerfile("Dockerfile", text, &bases(), &args, Some("nope")).unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
    }
}
