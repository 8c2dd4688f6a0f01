//! Reading `airlock.toml`: TOML → raw serde structs (unknown keys rejected) →
//! validated [`AppDescriptor`], with every error located by line and key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::de::DeTable;

use crate::error::DescriptorError;
use crate::locate::{self, Seg};
use crate::model::{
    AppDescriptor, AppSection, Artifact, Autoscale, BuildMode, BuildSection, DeploySection,
    Resources, RunSection,
};
use crate::quantity;

/// Largest `airlock.toml` accepted, in bytes.
pub const MAX_DESCRIPTOR_BYTES: usize = 256 * 1024;
const MAX_ITEMS: usize = 256;
const MAX_STRING: usize = 4096;
const MAX_ENV_VALUE: usize = 32 * 1024;
const MAX_REPLICAS: i64 = 1000;
const MAX_START_TIMEOUT: i64 = 3600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDescriptor {
    app: RawApp,
    #[serde(default)]
    build: RawBuild,
    run: RawRun,
    #[serde(default)]
    deploy: RawDeploy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: String,
    team: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    mode: Option<BuildMode>,
    stack: Option<String>,
    command: Option<String>,
    #[serde(default)]
    artifacts: Vec<toml::Value>,
    dockerfile: Option<String>,
    target: Option<String>,
    #[serde(default)]
    args: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    #[serde(default)]
    command: Vec<String>,
    port: i64,
    health: Option<String>,
    start_timeout: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDeploy {
    replicas: Option<i64>,
    #[serde(default)]
    resources: Resources,
    #[serde(default)]
    env: BTreeMap<String, String>,
    autoscale: Option<RawAutoscale>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAutoscale {
    min: i64,
    max: i64,
    cpu_percent: i64,
}

/// Parses and validates descriptor text. With `dir`, the build mode is resolved
/// against the repository (Dockerfile present or not) and standard-build inputs
/// are required when the resolved mode is standard.
pub(crate) fn parse(text: &str, dir: Option<&Path>) -> Result<AppDescriptor, DescriptorError> {
    if text.len() > MAX_DESCRIPTOR_BYTES {
        return Err(DescriptorError::TooLarge {
            what: "airlock.toml".into(),
            size: text.len() as u64,
            limit: MAX_DESCRIPTOR_BYTES as u64,
        });
    }
    let doc = DeTable::parse(text).map_err(|e| DescriptorError::Parse {
        line: e
            .span()
            .map(|s| locate::line_of(text, s.start))
            .unwrap_or(1),
        message: first_line(e.message()),
    })?;
    let doc = doc.get_ref();
    let raw: RawDescriptor = toml::from_str(text).map_err(|e| serde_error(text, doc, &e))?;
    let ctx = Ctx { text, doc };
    let descriptor = ctx.convert(raw)?;
    let mode = match (descriptor.build.mode, dir) {
        (Some(mode), _) => Some(mode),
        (None, Some(dir)) => Some(descriptor.build_mode(dir)),
        (None, None) => None,
    };
    if mode == Some(BuildMode::Standard) {
        ctx.require_standard_inputs(&descriptor)?;
    }
    Ok(descriptor)
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or("").trim().to_string()
}

/// Turns a serde error from `toml` into a located, worded error.
fn serde_error(text: &str, doc: &DeTable<'_>, e: &toml::de::Error) -> DescriptorError {
    let message = first_line(e.message());
    let offset = e.span().map(|s| s.start).unwrap_or(0);
    let line = locate::line_of(text, offset);
    let hit = locate::path_at(doc, offset);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let mut names = rest.split('`').skip(2).step_by(2).collect::<Vec<_>>();
        let key = rest.split('`').next().unwrap_or_default().to_string();
        if names.is_empty() {
            names.push("(none)");
        }
        let mut section = hit.path.clone();
        if hit.on_key {
            section.pop();
        }
        return DescriptorError::UnknownKey {
            line,
            key,
            section: section_name(&section),
            expected: names.join(", "),
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or_default();
        let empty_span = e.span().is_none_or(|s| s.is_empty());
        let section = if empty_span { Vec::new() } else { hit.path };
        return DescriptorError::Parse {
            line,
            message: format!("missing key `{key}` in {}", section_name(&section)),
        };
    }
    let friendly = message
        .replace("expected i64", "expected an integer")
        .replace("expected u32", "expected an integer")
        .replace("expected a sequence", "expected an array");
    if hit.path.is_empty() {
        DescriptorError::Parse {
            line,
            message: friendly,
        }
    } else {
        DescriptorError::Parse {
            line,
            message: format!("{}: {friendly}", locate::render(&hit.path)),
        }
    }
}

fn section_name(path: &[Seg]) -> String {
    if path.is_empty() {
        "the top level".to_string()
    } else {
        format!("[{}]", locate::render(path))
    }
}

/// Builds a path from dotted parts; parts of the form `[3]` are array indices.
fn path(parts: &[&str]) -> Vec<Seg> {
    parts
        .iter()
        .map(
            |p| match p.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                Some(i) => i.parse().map(Seg::Index).unwrap_or(Seg::Key(p.to_string())),
                None => Seg::Key(p.to_string()),
            },
        )
        .collect()
}

/// Validation context: the source text and its spanned parse, for line numbers.
struct Ctx<'a> {
    text: &'a str,
    doc: &'a DeTable<'a>,
}

impl Ctx<'_> {
    /// An `Invalid` error for the value at `at`; `message` must name field and value.
    fn invalid(&self, at: &[&str], message: String) -> DescriptorError {
        self.invalid_at(&path(at), false, message)
    }

    fn invalid_at(&self, at: &[Seg], key: bool, message: String) -> DescriptorError {
        // Fall back to the closest enclosing key that exists in the text.
        let mut probe = at.to_vec();
        let mut line = None;
        while !probe.is_empty() {
            if let Some(offset) = locate::offset_of(self.doc, &probe, key) {
                line = Some(locate::line_of(self.text, offset));
                break;
            }
            probe.pop();
        }
        DescriptorError::Invalid {
            line,
            field: locate::render(at),
            message,
        }
    }

    fn convert(&self, raw: RawDescriptor) -> Result<AppDescriptor, DescriptorError> {
        let app = self.app(raw.app)?;
        let build = self.build(raw.build)?;
        let run = self.run(raw.run)?;
        let deploy = self.deploy(raw.deploy)?;
        Ok(AppDescriptor {
            app,
            build,
            run,
            deploy,
        })
    }

    fn app(&self, raw: RawApp) -> Result<AppSection, DescriptorError> {
        for (field, value) in [("name", &raw.name), ("team", &raw.team)] {
            if !is_dns_label(value) {
                return Err(self.invalid(
                    &["app", field],
                    format!(
                        "app.{field} {value:?} is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)"
                    ),
                ));
            }
        }
        Ok(AppSection {
            name: raw.name,
            team: raw.team,
        })
    }

    fn build(&self, raw: RawBuild) -> Result<BuildSection, DescriptorError> {
        for (field, value) in [
            ("stack", &raw.stack),
            ("command", &raw.command),
            ("target", &raw.target),
        ] {
            if let Some(v) = value
                && (v.trim().is_empty() || v.len() > MAX_STRING)
            {
                return Err(self.invalid(
                    &["build", field],
                    format!(
                        "build.{field} must be a non-empty string of at most {MAX_STRING} bytes"
                    ),
                ));
            }
        }
        if let Some(dockerfile) = &raw.dockerfile
            && !is_relative_clean(dockerfile)
        {
            return Err(self.invalid(
                &["build", "dockerfile"],
                format!(
                    "build.dockerfile {dockerfile:?} must be a relative path inside the repository without '..'"
                ),
            ));
        }
        if raw.artifacts.len() > MAX_ITEMS {
            return Err(self.invalid(
                &["build", "artifacts"],
                format!(
                    "build.artifacts has {} entries, more than {MAX_ITEMS}",
                    raw.artifacts.len()
                ),
            ));
        }
        let mut artifacts = Vec::with_capacity(raw.artifacts.len());
        for (i, value) in raw.artifacts.iter().enumerate() {
            artifacts.push(self.artifact(i, value)?);
        }
        if raw.args.len() > MAX_ITEMS {
            return Err(self.invalid(
                &["build", "args"],
                format!(
                    "build.args has {} entries, more than {MAX_ITEMS}",
                    raw.args.len()
                ),
            ));
        }
        for (name, value) in &raw.args {
            if !is_c_identifier(name) || value.len() > MAX_ENV_VALUE {
                return Err(self.invalid_at(
                    &path(&["build", "args", name]),
                    true,
                    format!(
                        "build.args key {name:?} is not a valid build argument name (letters, digits and '_', not starting with a digit) or its value is longer than {MAX_ENV_VALUE} bytes"
                    ),
                ));
            }
        }
        Ok(BuildSection {
            mode: raw.mode,
            stack: raw.stack,
            command: raw.command,
            artifacts,
            dockerfile: raw.dockerfile,
            target: raw.target,
            args: raw.args,
        })
    }

    fn artifact(&self, i: usize, value: &toml::Value) -> Result<Artifact, DescriptorError> {
        let index = format!("[{i}]");
        let at = |field: &str| -> Vec<Seg> {
            let mut p = path(&["build", "artifacts", &index]);
            if !field.is_empty() {
                p.push(Seg::Key(field.to_string()));
            }
            p
        };
        let (from, to) = match value {
            toml::Value::String(from) => {
                let base = Path::new(from)
                    .file_name()
                    .and_then(|b| b.to_str())
                    .filter(|_| !from.ends_with('/'))
                    .ok_or_else(|| {
                        self.invalid_at(
                            &at(""),
                            false,
                            format!("build.artifacts[{i}] {from:?} does not name a file"),
                        )
                    })?;
                (from.clone(), format!("/app/{base}"))
            }
            toml::Value::Table(table) => {
                if let Some(key) = table.keys().find(|k| *k != "from" && *k != "to") {
                    let offset = locate::offset_of(self.doc, &at(key), true).unwrap_or(0);
                    return Err(DescriptorError::UnknownKey {
                        line: locate::line_of(self.text, offset),
                        key: key.clone(),
                        section: format!("[build.artifacts[{i}]]"),
                        expected: "from, to".into(),
                    });
                }
                let get = |field: &str| -> Result<String, DescriptorError> {
                    match table.get(field) {
                        Some(toml::Value::String(s)) => Ok(s.clone()),
                        Some(_) => Err(self.invalid_at(
                            &at(field),
                            false,
                            format!("build.artifacts[{i}].{field} must be a string"),
                        )),
                        None => Err(self.invalid_at(
                            &at(""),
                            false,
                            format!("build.artifacts[{i}] is missing key `{field}`"),
                        )),
                    }
                };
                (get("from")?, get("to")?)
            }
            _ => {
                return Err(self.invalid_at(
                    &at(""),
                    false,
                    format!(
                        "build.artifacts[{i}] must be a path string or a table {{ from = \"..\", to = \"..\" }}"
                    ),
                ));
            }
        };
        if !is_relative_clean(&from) {
            return Err(self.invalid_at(
                &at("from"),
                false,
                format!(
                    "build.artifacts[{i}].from {from:?} must be a relative path in the build workspace without '..'"
                ),
            ));
        }
        if !is_absolute_clean(&to) {
            return Err(self.invalid_at(
                &at("to"),
                false,
                format!(
                    "build.artifacts[{i}].to {to:?} must be an absolute path in the image without '..'"
                ),
            ));
        }
        Ok(Artifact { from, to })
    }

    fn run(&self, raw: RawRun) -> Result<RunSection, DescriptorError> {
        if raw.command.len() > MAX_ITEMS
            || raw.command.iter().any(|a| a.len() > MAX_STRING)
            || raw.command.first().is_some_and(|a| a.is_empty())
        {
            return Err(self.invalid(
                &["run", "command"],
                format!(
                    "run.command must be at most {MAX_ITEMS} arguments of at most {MAX_STRING} bytes, the first not empty"
                ),
            ));
        }
        let port = u16::try_from(raw.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                self.invalid(
                    &["run", "port"],
                    format!("run.port {} is not a TCP port (1 to 65535)", raw.port),
                )
            })?;
        if let Some(health) = &raw.health
            && (!health.starts_with('/')
                || health.len() > 1024
                || health.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(self.invalid(
                &["run", "health"],
                format!("run.health {health:?} must be an HTTP path starting with '/' (no spaces)"),
            ));
        }
        let start_timeout = raw.start_timeout.unwrap_or(30);
        if !(1..=MAX_START_TIMEOUT).contains(&start_timeout) {
            return Err(self.invalid(
                &["run", "start_timeout"],
                format!(
                    "run.start_timeout {start_timeout} is out of range (1 to {MAX_START_TIMEOUT} seconds)"
                ),
            ));
        }
        Ok(RunSection {
            command: raw.command,
            port,
            health: raw.health,
            start_timeout_secs: start_timeout as u64,
        })
    }

    fn deploy(&self, raw: RawDeploy) -> Result<DeploySection, DescriptorError> {
        let replicas = raw.replicas.unwrap_or(1);
        if !(0..=MAX_REPLICAS).contains(&replicas) {
            return Err(self.invalid(
                &["deploy", "replicas"],
                format!("deploy.replicas {replicas} is out of range (0 to {MAX_REPLICAS})"),
            ));
        }
        self.resources(&raw.resources)?;
        if raw.env.len() > MAX_ITEMS {
            return Err(self.invalid(
                &["deploy", "env"],
                format!(
                    "deploy.env has {} entries, more than {MAX_ITEMS}",
                    raw.env.len()
                ),
            ));
        }
        for (name, value) in &raw.env {
            if !is_c_identifier(name) {
                return Err(self.invalid_at(
                    &path(&["deploy", "env", name]),
                    true,
                    format!(
                        "deploy.env key {name:?} is not a valid environment variable name (letters, digits and '_', not starting with a digit)"
                    ),
                ));
            }
            if value.len() > MAX_ENV_VALUE {
                return Err(self.invalid_at(
                    &path(&["deploy", "env", name]),
                    false,
                    format!("deploy.env.{name} is longer than {MAX_ENV_VALUE} bytes"),
                ));
            }
        }
        let autoscale = match raw.autoscale {
            None => None,
            Some(a) => Some(self.autoscale(a)?),
        };
        Ok(DeploySection {
            replicas: replicas as u32,
            resources: raw.resources,
            env: raw.env,
            autoscale,
        })
    }

    fn autoscale(&self, raw: RawAutoscale) -> Result<Autoscale, DescriptorError> {
        let bounded = |field: &str, value: i64, lo: i64, hi: i64| {
            if (lo..=hi).contains(&value) {
                Ok(value as u32)
            } else {
                Err(self.invalid(
                    &["deploy", "autoscale", field],
                    format!("deploy.autoscale.{field} {value} is out of range ({lo} to {hi})"),
                ))
            }
        };
        let min = bounded("min", raw.min, 1, MAX_REPLICAS)?;
        let max = bounded("max", raw.max, 1, MAX_REPLICAS)?;
        let cpu_percent = bounded("cpu_percent", raw.cpu_percent, 1, 100)?;
        if max < min {
            return Err(self.invalid(
                &["deploy", "autoscale", "max"],
                format!("deploy.autoscale.max {max} is less than deploy.autoscale.min {min}"),
            ));
        }
        Ok(Autoscale {
            min,
            max,
            cpu_percent,
        })
    }

    fn resources(&self, r: &Resources) -> Result<(), DescriptorError> {
        let check = |field: &str, value: &Option<String>, cpu: bool| {
            let Some(v) = value else { return Ok(None) };
            let parsed = if cpu {
                quantity::parse_cpu(v)
            } else {
                quantity::parse_memory(v)
            };
            match parsed {
                Ok(0) => Err(self.invalid(
                    &["deploy", "resources", field],
                    format!("deploy.resources.{field} {v:?} must be more than zero"),
                )),
                Ok(n) => Ok(Some(n)),
                Err(e) => Err(self.invalid(
                    &["deploy", "resources", field],
                    format!(
                        "deploy.resources.{field} {v:?} is not a valid {} quantity: {}",
                        if cpu { "CPU" } else { "memory" },
                        e.reason
                    ),
                )),
            }
        };
        let cpu = check("cpu", &r.cpu, true)?;
        let cpu_limit = check("cpu_limit", &r.cpu_limit, true)?;
        let memory = check("memory", &r.memory, false)?;
        let memory_limit = check("memory_limit", &r.memory_limit, false)?;
        for (req, lim, rq, lm, name) in [
            (cpu, cpu_limit, &r.cpu, &r.cpu_limit, "cpu"),
            (memory, memory_limit, &r.memory, &r.memory_limit, "memory"),
        ] {
            if let (Some(a), Some(b), Some(rq), Some(lm)) = (req, lim, rq, lm)
                && a > b
            {
                return Err(self.invalid(
                    &["deploy", "resources", name],
                    format!(
                        "deploy.resources.{name} {rq:?} is more than deploy.resources.{name}_limit {lm:?}"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn require_standard_inputs(&self, d: &AppDescriptor) -> Result<(), DescriptorError> {
        let missing = if d.build.stack.is_none() {
            Some("build.stack")
        } else if d.build.command.is_none() {
            Some("build.command")
        } else if d.build.artifacts.is_empty() {
            Some("build.artifacts")
        } else if d.run.command.is_empty() {
            Some("run.command")
        } else {
            None
        };
        match missing {
            None => Ok(()),
            Some(field) => {
                let how = if d.build.mode.is_some() {
                    "build.mode is \"standard\""
                } else {
                    "there is no Dockerfile, so this is a standard build"
                };
                let parts: Vec<&str> = field.split('.').collect();
                Err(self.invalid(
                    &parts,
                    format!(
                        "{how} but {field} is missing (standard builds need build.stack, build.command, build.artifacts and run.command)"
                    ),
                ))
            }
        }
    }
}

/// DNS-1123 label: lowercase alphanumerics and '-', alphanumeric at both ends, 1..=63.
pub(crate) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// C identifier: `[A-Za-z_][A-Za-z0-9_]*`, at most 256 characters.
fn is_c_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 256
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn has_dotdot(s: &str) -> bool {
    s.split('/').any(|part| part == "..")
}

fn is_relative_clean(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_STRING
        && !s.starts_with('/')
        && !has_dotdot(s)
        && !s.contains('\0')
        && !s.contains('\\')
}

fn is_absolute_clean(s: &str) -> bool {
    s.len() > 1
        && s.len() <= MAX_STRING
        && s.starts_with('/')
        && !s.ends_with('/')
        && !has_dotdot(s)
        && !s.contains('\0')
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
