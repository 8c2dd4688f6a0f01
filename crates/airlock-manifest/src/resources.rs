//! Requests and limits: the descriptor's values, else the environment's defaults, else
//! built-in fallbacks; checked against the environment's ceilings.
//!
//! A request above a ceiling is an error (the app would not get what it asked for); a limit
//! above a ceiling is lowered to the ceiling (the app still gets its request). Without any
//! limit, memory is limited to its request and CPU to the ceiling (or 1 core, or the request
//! if larger).

use airlock_descriptor::quantity::{self, QuantityError};

use crate::error::ManifestError;
use crate::settings::EnvironmentSettings;
use airlock_descriptor::Resources;

/// CPU request used when neither descriptor nor environment gives one.
pub const FALLBACK_CPU: &str = "100m";
/// Memory request used when neither descriptor nor environment gives one.
pub const FALLBACK_MEMORY: &str = "128Mi";

/// Final quantities for the container's `resources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub cpu: String,
    pub memory: String,
    pub cpu_limit: String,
    pub memory_limit: String,
}

#[derive(Clone, Copy)]
enum Kind {
    Cpu,
    Memory,
}

impl Kind {
    fn parse(self, s: &str) -> Result<u64, QuantityError> {
        match self {
            Kind::Cpu => quantity::parse_cpu(s),
            Kind::Memory => quantity::parse_memory(s),
        }
    }
    fn format(self, v: u64) -> String {
        match self {
            Kind::Cpu => quantity::format_cpu(v),
            Kind::Memory => quantity::format_memory(v),
        }
    }
}

/// A quantity and the field it came from, for error messages.
struct Sourced {
    field: String,
    text: String,
    value: u64,
}

fn pick(
    kind: Kind,
    key: &str,
    app: &Option<String>,
    env_default: &Option<String>,
    env_name: &str,
) -> Result<Option<Sourced>, ManifestError> {
    let (field, text) = match (app, env_default) {
        (Some(v), _) => (format!("deploy.resources.{key}"), v.clone()),
        (None, Some(v)) => (
            format!("environments.{env_name}.default_resources.{key}"),
            v.clone(),
        ),
        (None, None) => return Ok(None),
    };
    let value = kind.parse(&text).map_err(|e| {
        ManifestError::invalid(
            &field,
            &text,
            format!("is not a valid quantity: {}", e.reason),
        )
    })?;
    if value == 0 {
        return Err(ManifestError::invalid(
            &field,
            &text,
            "must be more than zero",
        ));
    }
    Ok(Some(Sourced { field, text, value }))
}

fn resolve_one(
    kind: Kind,
    key: &str,
    app: (&Option<String>, &Option<String>),
    env: &EnvironmentSettings,
    defaults: (&Option<String>, &Option<String>),
    ceiling: Option<u64>,
    fallback: &str,
) -> Result<(String, String), ManifestError> {
    let request = match pick(kind, key, app.0, defaults.0, &env.name)? {
        Some(r) => r,
        None => Sourced {
            field: format!("built-in default {key}"),
            text: fallback.to_string(),
            value: kind.parse(fallback).unwrap_or(1),
        },
    };
    if let Some(ceiling) = ceiling
        && request.value > ceiling
    {
        return Err(ManifestError::AboveCeiling {
            field: request.field,
            value: request.text,
            environment: env.name.clone(),
            ceiling: kind.format(ceiling),
        });
    }
    let limit_key = format!("{key}_limit");
    let (limit_text, limit_value, limit_field) =
        match pick(kind, &limit_key, app.1, defaults.1, &env.name)? {
            Some(l) => (l.text, l.value, l.field),
            None => {
                let v = match kind {
                    Kind::Memory => request.value,
                    Kind::Cpu => ceiling.unwrap_or(request.value.max(1000)),
                };
                (kind.format(v), v, format!("default {limit_key}"))
            }
        };
    let (limit_text, limit_value) = match ceiling {
        Some(c) if limit_value > c => (kind.format(c), c),
        _ => (limit_text, limit_value),
    };
    if limit_value < request.value {
        return Err(ManifestError::invalid(
            &limit_field,
            limit_text,
            format!("is below the request {} {:?}", request.field, request.text),
        ));
    }
    Ok((request.text, limit_text))
}

/// Resolves the container's requests and limits for `env`.
pub(crate) fn resolve(
    app: &Resources,
    env: &EnvironmentSettings,
) -> Result<Resolved, ManifestError> {
    let d = &env.default_resources;
    let (cpu, cpu_limit) = resolve_one(
        Kind::Cpu,
        "cpu",
        (&app.cpu, &app.cpu_limit),
        env,
        (&d.cpu, &d.cpu_limit),
        env.max_cpu_millis,
        FALLBACK_CPU,
    )?;
    let (memory, memory_limit) = resolve_one(
        Kind::Memory,
        "memory",
        (&app.memory, &app.memory_limit),
        env,
        (&d.memory, &d.memory_limit),
        env.max_memory_bytes,
        FALLBACK_MEMORY,
    )?;
    Ok(Resolved {
        cpu,
        memory,
        cpu_limit,
        memory_limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> EnvironmentSettings {
        EnvironmentSettings {
            name: "prod".into(),
            namespace: "shop".into(),
            replicas: None,
            default_resources: Resources {
                cpu: Some("200m".into()),
                memory: Some("256Mi".into()),
                cpu_limit: None,
                memory_limit: None,
            },
            max_cpu_millis: Some(2000),
            max_memory_bytes: Some(1 << 30),
            ingress_namespace: "ingress".into(),
            registry_rewrite: None,
        }
    }

    #[test]
    fn fills_gaps_from_environment_defaults() {
        let r = resolve(&Resources::default(), &env()).unwrap();
        assert_eq!(r.cpu, "200m");
        assert_eq!(r.memory, "256Mi");
        assert_eq!(r.memory_limit, "256Mi");
        assert_eq!(r.cpu_limit, "2");
    }

    #[test]
    fn rejects_request_above_ceiling_naming_field() {
        let app = Resources {
            memory: Some("2Gi".into()),
            ..Resources::default()
        };
        let e = resolve(&app, &env()).unwrap_err().to_string();
        assert_eq!(
            e,
            "deploy.resources.memory \"2Gi\" is above the ceiling of environment \"prod\" (1Gi)"
        );
    }

    #[test]
    fn caps_limit_at_ceiling() {
        let app = Resources {
            cpu_limit: Some("8".into()),
            ..Resources::default()
        };
        assert_eq!(resolve(&app, &env()).unwrap().cpu_limit, "2");
    }

    #[test]
    fn rejects_limit_below_request() {
        let app = Resources {
            memory_limit: Some("64Mi".into()),
            ..Resources::default()
        };
        let e = resolve(&app, &env()).unwrap_err().to_string();
        assert!(
            e.starts_with("deploy.resources.memory_limit \"64Mi\" is below the request"),
            "{e}"
        );
    }

    #[test]
    fn rejects_bad_environment_default() {
        let mut env = env();
        env.default_resources.cpu = Some("lots".into());
        let e = resolve(&Resources::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "environments.prod.default_resources.cpu \"lots\" is not a valid quantity"
            ),
            "{e}"
        );
    }

    #[test]
    fn uses_builtin_fallbacks_without_any_setting() {
        let mut env = env();
        env.default_resources = Resources::default();
        env.max_cpu_millis = None;
        let r = resolve(&Resources::default(), &env).unwrap();
        assert_eq!(
            (r.cpu.as_str(), r.memory.as_str()),
            (FALLBACK_CPU, FALLBACK_MEMORY)
        );
        assert_eq!(r.cpu_limit, "1");
    }
}
