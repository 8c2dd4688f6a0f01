//! A compiled set of Rego policies and its evaluation into a [`Decision`].

use std::fmt;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::decision::{apply_waivers, classify_waivers, input_scope, parse_entries};
use crate::source::{self, MAX_POLICY_BYTES, MAX_POLICY_FILES, is_dotted_identifier, package_of};
use crate::{Decision, PolicyError, Waiver};

/// Wall-clock limit for one evaluation of deny or warn.
pub const EVAL_TIME_LIMIT: Duration = Duration::from_secs(10);

/// How long the load-time probe for unknown functions may run (see [`PolicySet::from_sources`]).
const LOAD_PROBE_LIMIT: Duration = Duration::from_millis(500);

/// Work units between two reads of the clock while evaluating: often enough that a runaway
/// policy stops within milliseconds of the limit, rarely enough not to slow every step.
const TIMER_CHECK_INTERVAL: NonZeroU32 = NonZeroU32::new(256).expect("256 is not zero");

/// One named Rego source of a [`PolicySet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySource {
    /// The name (file name when loaded from a directory).
    pub name: String,
    /// The Rego text.
    pub rego: String,
}

/// The serialized form of a policy set: its sources (the engine is rebuilt on load).
#[derive(Serialize, Deserialize)]
struct PolicySetSources {
    sources: Vec<PolicySource>,
}

/// Rego policies compiled once and evaluated many times.
///
/// Evaluation clones the prepared engine, so one set can serve concurrent callers
/// through `&self` (the set is `Send + Sync`). Serializes as its sources.
#[derive(Clone, Serialize, Deserialize)]
#[serde(into = "PolicySetSources", try_from = "PolicySetSources")]
pub struct PolicySet {
    /// Sources sorted by name, with the package each declares.
    sources: Vec<(PolicySource, String)>,
    digest: String,
    engine: regorus::Engine,
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySet")
            .field(
                "sources",
                &self
                    .sources
                    .iter()
                    .map(|(s, _)| &s.name)
                    .collect::<Vec<_>>(),
            )
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl From<PolicySet> for PolicySetSources {
    fn from(set: PolicySet) -> Self {
        PolicySetSources {
            sources: set.sources.into_iter().map(|(s, _)| s).collect(),
        }
    }
}

impl TryFrom<PolicySetSources> for PolicySet {
    type Error = PolicyError;
    fn try_from(value: PolicySetSources) -> Result<Self, Self::Error> {
        PolicySet::from_sources(
            value
                .sources
                .into_iter()
                .map(|s| (s.name, s.rego))
                .collect(),
        )
    }
}

impl PolicySet {
    /// Loads every `*.rego` file directly in `dir` except `*_test.rego`, sorted by
    /// file name; the file name is the source name.
    pub fn load(dir: &Path) -> Result<PolicySet, PolicyError> {
        let mut sources = Vec::new();
        for path in source::rego_files(dir)? {
            if source::is_test_file(&path) {
                continue;
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            sources.push((name, source::read_policy(&path)?));
        }
        if sources.is_empty() {
            return Err(PolicyError::Empty(dir.display().to_string()));
        }
        PolicySet::from_sources(sources)
    }

    /// Compiles named Rego sources (Rego v1). Names must be unique; every source must
    /// declare a package. Compile errors name the source.
    pub fn from_sources(mut sources: Vec<(String, String)>) -> Result<PolicySet, PolicyError> {
        if sources.is_empty() {
            return Err(PolicyError::Empty("the given sources".into()));
        }
        if sources.len() > MAX_POLICY_FILES {
            return Err(PolicyError::TooLarge {
                what: "number of policy sources",
                limit: MAX_POLICY_FILES,
                subject: "the given sources".into(),
            });
        }
        sources.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(pair) = sources.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(PolicyError::DuplicateName(pair[0].0.clone()));
        }
        let mut engine = new_engine();
        let mut compiled = Vec::with_capacity(sources.len());
        for (name, rego) in sources {
            if rego.len() as u64 > MAX_POLICY_BYTES {
                return Err(PolicyError::TooLarge {
                    what: "policy source bytes",
                    limit: MAX_POLICY_BYTES as usize,
                    subject: name,
                });
            }
            let package = package_of(&rego)
                .ok_or_else(|| PolicyError::MissingPackage { name: name.clone() })?;
            engine
                .add_policy(name.clone(), rego.clone())
                .map_err(|e| PolicyError::Compile {
                    name: name.clone(),
                    message: e.to_string(),
                })?;
            compiled.push((PolicySource { name, rego }, package));
        }
        // Run the engine's analysis now, once: errors surface at load time and every
        // evaluation starts from the prepared engine.
        engine
            .eval_query("true".to_string(), false)
            .map_err(|e| PolicyError::Compile {
                name: String::new(),
                message: e.to_string(),
            })?;
        // regorus resolves function names only when a call is evaluated. Evaluating
        // every rule once over an empty input reaches each call (undefined arguments
        // do not short-circuit the lookup), so a misspelt function fails the load
        // rather than the first real run; the error's span names the source. The probe
        // is bounded: a rule that is merely slow is the evaluation limit's business.
        let mut probe = engine.clone();
        probe.set_input(regorus::Value::new_object());
        probe.set_execution_timer_config(timer_config(LOAD_PROBE_LIMIT));
        if let Err(e) = probe.eval_modules(false) {
            let message = e.to_string();
            if !message.contains("exceeded time limit") {
                return Err(PolicyError::Compile {
                    name: String::new(),
                    message,
                });
            }
        }
        let digest = digest_of(compiled.iter().map(|(s, _)| s));
        Ok(PolicySet {
            sources: compiled,
            digest,
            engine,
        })
    }

    /// Replaces the wall-clock limit of one evaluation (default [`EVAL_TIME_LIMIT`]);
    /// an evaluation that runs longer fails with [`PolicyError::Eval`].
    pub fn with_time_limit(mut self, limit: Duration) -> PolicySet {
        self.engine.set_execution_timer_config(timer_config(limit));
        self
    }

    /// `sha256:<hex>` over the names and sources (each length-prefixed, in name
    /// order), recorded in every decision so it can be traced to the exact policies.
    pub fn digest(&self) -> String {
        self.digest.clone()
    }

    /// The sources of this set, sorted by name.
    pub fn sources(&self) -> impl Iterator<Item = &PolicySource> {
        self.sources.iter().map(|(s, _)| s)
    }

    /// Evaluates `data.<package>.deny` and `data.<package>.warn` for `input`
    /// (`package` is `airlock.gate` or `airlock.admission`), then applies the waivers:
    /// an entry is waived when its `advisories` contain the waiver id, its `package`
    /// matches, the waiver's team/app scope matches `input.submission` (or
    /// `input.release`), and the waiver has not expired on `now`'s UTC date. Matching
    /// expired waivers are listed in `expired_waivers` and do not apply.
    pub fn evaluate(
        &self,
        package: &str,
        input: &serde_json::Value,
        waivers: &[Waiver],
        now: time::OffsetDateTime,
    ) -> Result<Decision, PolicyError> {
        if !is_dotted_identifier(package) || !self.sources.iter().any(|(_, p)| p == package) {
            return Err(PolicyError::UnknownPackage(package.to_string()));
        }
        let today = now.to_offset(time::UtcOffset::UTC).date();
        let waivers = classify_waivers(waivers, today)?;

        // Deserialize from the borrowed JSON: no deep copy of the input, and an input the engine
        // cannot represent is an error (`Value::from` would silently make it undefined).
        let engine_input = regorus::Value::deserialize(input).map_err(|e| PolicyError::Eval {
            rule: format!("data.{package}"),
            message: format!("the input is not usable JSON: {e}"),
        })?;
        // deny and warn are independent: each gets its own engine (cheap clones of the prepared
        // one, sharing the reference-counted input) and they run side by side.
        let evaluate_set = |set: &str| {
            let mut engine = self.engine.clone();
            engine.set_input(engine_input.clone());
            eval_entries(&mut engine, &format!("data.{package}.{set}"))
        };
        let (deny, warn) = std::thread::scope(|scope| {
            let warn = scope.spawn(|| evaluate_set("warn"));
            let deny = evaluate_set("deny");
            let warn = warn.join().unwrap_or_else(|_| {
                Err(PolicyError::Eval {
                    rule: format!("data.{package}.warn"),
                    message: "the evaluation thread panicked".into(),
                })
            });
            (deny, warn)
        });
        let (deny, warn) = (deny?, warn?);

        let scope = input_scope(input);
        let mut waived = Vec::new();
        let mut expired_waivers = Vec::new();
        let violations = apply_waivers(deny, &waivers, scope, &mut waived, &mut expired_waivers);
        let warnings = apply_waivers(warn, &waivers, scope, &mut waived, &mut expired_waivers);
        tracing::debug!(
            package,
            violations = violations.len(),
            warnings = warnings.len(),
            waived = waived.len(),
            "policy evaluated"
        );
        Ok(Decision {
            allowed: violations.is_empty(),
            violations,
            warnings,
            waived,
            expired_waivers,
            policy_digest: self.digest.clone(),
            rules_evaluated: self
                .sources
                .iter()
                .filter(|(_, p)| p == package)
                .map(|(s, _)| s.name.clone())
                .collect(),
        })
    }
}

/// An engine with our settings: Rego v1 (the default) and a time limit per evaluation.
pub(crate) fn new_engine() -> regorus::Engine {
    let mut engine = regorus::Engine::new();
    engine.set_execution_timer_config(timer_config(EVAL_TIME_LIMIT));
    engine
}

fn timer_config(limit: Duration) -> regorus::utils::limits::ExecutionTimerConfig {
    regorus::utils::limits::ExecutionTimerConfig {
        limit,
        check_interval: TIMER_CHECK_INTERVAL,
    }
}

/// Evaluates a set-valued rule; undefined (no such rule) is an empty set.
fn eval_entries(
    engine: &mut regorus::Engine,
    rule: &str,
) -> Result<Vec<crate::Violation>, PolicyError> {
    let results = engine
        .eval_query(rule.to_string(), false)
        .map_err(|e| PolicyError::Eval {
            rule: rule.to_string(),
            message: e.to_string(),
        })?;
    let Some(value) = results
        .result
        .into_iter()
        .next()
        .and_then(|r| r.expressions.into_iter().next())
        .map(|e| e.value)
    else {
        return Ok(Vec::new());
    };
    // Through text: measurably cheaper than `serde_json::to_value` for thousands of entries.
    let json: serde_json::Value = value
        .to_json_str()
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .ok_or_else(|| PolicyError::Eval {
            rule: rule.to_string(),
            message: "the result is not JSON".into(),
        })?;
    parse_entries(rule, json)
}

fn digest_of<'a>(sources: impl Iterator<Item = &'a PolicySource>) -> String {
    let mut hasher = Sha256::new();
    for s in sources {
        for part in [s.name.as_bytes(), s.rego.as_bytes()] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}
