//! One reconciliation pass: for every app in the source, verify its newest
//! release and apply it to the target if it is new, trusted and admitted.

use crate::admission::{ADMISSION_PACKAGE, admission_input, refusal_reason};
use crate::error::AgentError;
use crate::spec::{SourceSpec, TargetSpec};
use crate::target::{DirectoryTarget, ReleaseRecord, validate_env};
use airlock_oci::{LayoutRoot, Store};
use airlock_policy::PolicySet;
use airlock_sign::predicates::{CYCLONEDX, POLICY_DECISION, SLSA_PROVENANCE_V1};
use airlock_sign::release::RELEASE_TAG_PREFIX;
use airlock_sign::{PublicKey, TrustSet, release_tag, verify_release};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Docker-reference prefix the gate signs for unless configured otherwise.
pub const DEFAULT_REFERENCE_PREFIX: &str = "airlock.local";

/// Attestations every release's image must carry, verified.
pub const REQUIRED_PREDICATES: [&str; 3] = [SLSA_PROVENANCE_V1, CYCLONEDX, POLICY_DECISION];

/// What one sync pass reads, trusts and writes.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Where releases come from.
    pub source: SourceSpec,
    /// Docker-reference prefix the gate signed for: an app's images are `<prefix>/<app>`.
    pub reference_prefix: String,
    /// Public keys whose signatures are trusted.
    pub trust: TrustSet,
    /// The environment this agent deploys (e.g. `staging`).
    pub env: String,
    /// Where admitted releases are written.
    pub target: TargetSpec,
    /// Directory of admission policies (`policies/admission`); `None` skips admission.
    pub admission: Option<PathBuf>,
}

impl SyncConfig {
    /// A config with the default reference prefix and no admission policies.
    pub fn new(source: SourceSpec, trust: TrustSet, env: &str, target: TargetSpec) -> Self {
        SyncConfig {
            source,
            reference_prefix: DEFAULT_REFERENCE_PREFIX.to_string(),
            trust,
            env: env.to_string(),
            target,
            admission: None,
        }
    }
}

/// A release written to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// App name.
    pub app: String,
    /// Release sequence.
    pub sequence: u64,
    /// Release artifact digest.
    pub release_digest: String,
    /// Image digest the release deploys.
    pub image_digest: String,
    /// Where its manifests are (`DIR/<env>/<app>`).
    pub path: PathBuf,
}

/// A release the agent would not apply, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// App (repository) name.
    pub app: String,
    /// The release looked at, `<prefix>/<app>:release-…`.
    pub reference: String,
    /// Why it was refused, as a sentence.
    pub reason: String,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Releases applied.
    pub applied: Vec<Applied>,
    /// Apps whose newest release is already applied.
    pub unchanged: Vec<String>,
    /// Releases refused.
    pub refused: Vec<Refusal>,
}

/// Loads the public keys in `paths` into a trust set; at least one is required.
pub fn load_trust(paths: &[PathBuf]) -> Result<TrustSet, AgentError> {
    if paths.is_empty() {
        return Err(AgentError::NoTrustedKey);
    }
    let mut keys = Vec::with_capacity(paths.len());
    for path in paths {
        keys.push(
            PublicKey::load(path).map_err(|source| AgentError::TrustKey {
                path: path.clone(),
                source,
            })?,
        );
    }
    Ok(TrustSet::new(keys))
}

/// The sequence of a `release-NNNNNNNNNN` tag.
fn parse_release_tag(tag: &str) -> Option<u64> {
    let digits = tag.strip_prefix(RELEASE_TAG_PREFIX)?;
    let sequence = digits.parse::<u64>().ok()?;
    (release_tag(sequence) == tag).then_some(sequence)
}

/// Runs one pass over every app of the source; see the crate docs for the checks.
pub async fn sync_once(cfg: &SyncConfig) -> Result<SyncReport, AgentError> {
    if validate_env(&cfg.env).is_err() {
        return Err(AgentError::BadEnvironment(cfg.env.clone()));
    }
    if cfg.trust.keys.is_empty() {
        return Err(AgentError::NoTrustedKey);
    }
    let policies = match &cfg.admission {
        Some(dir) => Some(PolicySet::load(dir).map_err(|source| AgentError::Policy {
            path: dir.clone(),
            source: Box::new(source),
        })?),
        None => None,
    };
    let SourceSpec::Layout(source_dir) = &cfg.source;
    let root = open_source(source_dir, &cfg.source)?;
    let TargetSpec::Directory(target_dir) = &cfg.target;
    let target = DirectoryTarget::new(target_dir);

    let repositories = root.repositories().map_err(|source| AgentError::Source {
        source_spec: cfg.source.to_string(),
        source,
    })?;
    let mut report = SyncReport::default();
    for app in repositories {
        let step = sync_app(cfg, &root, &target, policies.as_ref(), &app).await?;
        match step {
            AppOutcome::NoRelease => {}
            AppOutcome::Unchanged => report.unchanged.push(app),
            AppOutcome::Applied(applied) => report.applied.push(applied),
            AppOutcome::Refused(refusal) => {
                tracing::warn!(app = %refusal.app, reference = %refusal.reference, reason = %refusal.reason, "release refused");
                report.refused.push(refusal);
            }
        }
    }
    Ok(report)
}

fn open_source(dir: &Path, spec: &SourceSpec) -> Result<LayoutRoot, AgentError> {
    // Do not create a missing source: a typo must not look like "no releases".
    if !dir.is_dir() {
        return Err(AgentError::SourceMissing {
            source_spec: spec.to_string(),
        });
    }
    LayoutRoot::open_or_create(dir).map_err(|source| AgentError::Source {
        source_spec: spec.to_string(),
        source,
    })
}

enum AppOutcome {
    NoRelease,
    Unchanged,
    Applied(Applied),
    Refused(Refusal),
}

async fn sync_app(
    cfg: &SyncConfig,
    root: &LayoutRoot,
    target: &DirectoryTarget,
    policies: Option<&PolicySet>,
    app: &str,
) -> Result<AppOutcome, AgentError> {
    let docker_reference = format!("{}/{app}", cfg.reference_prefix);
    let refuse = |reference: &str, reason: String| {
        Ok(AppOutcome::Refused(Refusal {
            app: app.to_string(),
            reference: reference.to_string(),
            reason,
        }))
    };
    let store = match root.repo(app) {
        Ok(store) => store,
        Err(e) => {
            return refuse(
                &docker_reference,
                format!("cannot open its repository: {e}"),
            );
        }
    };
    let tags = match store.list_tags().await {
        Ok(tags) => tags,
        Err(e) => return refuse(&docker_reference, format!("cannot list its tags: {e}")),
    };
    let Some(newest) = tags.iter().filter_map(|t| parse_release_tag(t)).max() else {
        tracing::debug!(app, "no release tags");
        return Ok(AppOutcome::NoRelease);
    };
    let tag = release_tag(newest);
    let reference = format!("{docker_reference}:{tag}");

    let deployed = target.deployed(&cfg.env, app)?;
    let deployed_sequence = deployed.as_ref().map(|d| d.sequence);
    match deployed_sequence {
        Some(current) if current == newest => return Ok(AppOutcome::Unchanged),
        Some(current) if current > newest => {
            return refuse(
                &reference,
                format!(
                    "its newest release {newest} is older than the deployed release {current}: rollback refused (anti-rollback)"
                ),
            );
        }
        _ => {}
    }

    let verified = match verify_release(
        &store,
        &docker_reference,
        &tag,
        &cfg.trust,
        deployed_sequence,
        &REQUIRED_PREDICATES,
    )
    .await
    {
        Ok(verified) => verified,
        Err(e) => return refuse(&reference, format!("verification failed: {e}")),
    };
    let config = &verified.config;
    if config.app != app {
        return refuse(
            &reference,
            format!(
                "the release is for app {:?} but was found in repository {app:?}",
                config.app
            ),
        );
    }
    let Some(files) = verified.manifests.get(&cfg.env) else {
        return refuse(
            &reference,
            format!(
                "release {} does not list environment {} (it lists {})",
                config.sequence,
                cfg.env,
                config.environments.join(", ")
            ),
        );
    };
    if let Some(policies) = policies {
        let input = admission_input(&verified, &cfg.env);
        match policies.evaluate(ADMISSION_PACKAGE, &input, &[], OffsetDateTime::now_utc()) {
            Ok(decision) if decision.allowed => {}
            Ok(decision) => return refuse(&reference, refusal_reason(&decision)),
            Err(e) => {
                return refuse(
                    &reference,
                    format!("the admission policy could not be evaluated: {e}"),
                );
            }
        }
    }

    let record = ReleaseRecord {
        app: app.to_string(),
        sequence: config.sequence,
        release_digest: verified.digest.to_string(),
        image_digest: config.image.digest.to_string(),
        applied_at: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_else(|_| "unknown".into()),
        signed_by: verified.signed_by.as_str().to_string(),
    };
    let path = target.apply(&cfg.env, &record, files)?;
    tracing::info!(app, sequence = record.sequence, env = %cfg.env, path = %path.display(), "release applied");
    Ok(AppOutcome::Applied(Applied {
        app: app.to_string(),
        sequence: record.sequence,
        release_digest: record.release_digest,
        image_digest: record.image_digest,
        path,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_canonical_release_tags() {
        assert_eq!(parse_release_tag("release-0000000007"), Some(7));
        assert_eq!(parse_release_tag("release-7"), None);
        assert_eq!(parse_release_tag("release-+000000007"), None);
        assert_eq!(parse_release_tag("latest"), None);
    }
}
