//! Reconciliation: for every app of the source, make the target run its newest admitted release.
//!
//! One [`Agent::sync`] pass per environment: list the app's tags (one request for a registry when nothing
//! changed), and when the newest `release-*` tag is newer than what the target runs, verify it (or take
//! the verdict from the cache by release digest), check it is for this app and this environment, ask the
//! admission policy, wait for the promotion soak when the environment comes after another, and apply it.
//! A release the target already runs is compared with the target (drift) and rewritten when it differs.
//! Anything that fails a check is refused with the reason and nothing is written for it; the target keeps
//! what it ran.

use crate::admission::{ADMISSION_PACKAGE, admission_input, refusal_reason};
use crate::deploy::{AppStatus, EnvStatus, Target};
use crate::error::AgentError;
use crate::evidence::{
    EvidenceCheck, EvidenceConfig, HealthClaim, check_evidence, evidence_store, has_evidence,
    publish_evidence,
};
use crate::metrics::{Counter, Metrics};
use crate::source::{Source, SourceOptions};
use crate::spec::{SourceSpec, TargetSpec};
use crate::target::{ReleaseRecord, RollbackNote, validate_env};
use airlock_oci::{Digest, Store};
use airlock_policy::PolicySet;
use airlock_sign::predicates::{CYCLONEDX, POLICY_DECISION, SLSA_PROVENANCE_V1};
use airlock_sign::release::RELEASE_TAG_PREFIX;
use airlock_sign::revocation::VerifiedRevocations;
use airlock_sign::{
    PublicKey, REVOCATIONS_REPOSITORY, SignError, TrustSet, VerifiedRelease, read_revocations,
    release_tag, verify_release,
};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Docker-reference prefix the gate signs for unless configured otherwise.
pub const DEFAULT_REFERENCE_PREFIX: &str = "airlock.local";

/// Attestations every release's image must carry, verified.
pub const REQUIRED_PREDICATES: [&str; 3] = [SLSA_PROVENANCE_V1, CYCLONEDX, POLICY_DECISION];

/// An environment that takes a release only after it was healthy in an earlier one for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// The earlier environment.
    pub after: String,
    /// How long the release must have been healthy there.
    pub soak: Duration,
}

/// What one environment's sync reads, trusts and writes.
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
    /// Apps to poll (required for a registry), plain HTTP and credentials.
    pub source_options: SourceOptions,
    /// Promotion gate of this environment, if it comes after another.
    pub promotion: Option<Promotion>,
    /// Where health evidence is published and verified.
    pub evidence: Option<EvidenceConfig>,
    /// Registry and prefix (`HOST/PREFIX`) verified images are mirrored to before they are applied, with
    /// the manifests rewritten to pull from there (see [`crate::mirror`]); plain HTTP follows
    /// `source_options.insecure`.
    pub mirror: Option<String>,
}

impl SyncConfig {
    /// A config with the default reference prefix, no admission policies, no promotion.
    pub fn new(source: SourceSpec, trust: TrustSet, env: &str, target: TargetSpec) -> Self {
        SyncConfig {
            source,
            reference_prefix: DEFAULT_REFERENCE_PREFIX.to_string(),
            trust,
            env: env.to_string(),
            target,
            admission: None,
            source_options: SourceOptions::default(),
            promotion: None,
            evidence: None,
            mirror: None,
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
    /// Where its manifests are (`DIR/<env>/<app>`, or the app's directory in the git work tree).
    pub path: PathBuf,
    /// The commit made, for the git target.
    pub commit: Option<String>,
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
    /// The reason as one word for metrics (`unsigned`, `untrusted-key`, `rollback`, `admission`, …).
    pub kind: &'static str,
}

/// An app whose sync could not finish (source unreachable, target unwritable): retried next cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// App name.
    pub app: String,
    /// What went wrong.
    pub error: String,
}

/// A verified, admitted release held back by the promotion soak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// App name.
    pub app: String,
    /// Its sequence.
    pub sequence: u64,
    /// Why it waits.
    pub reason: String,
}

/// A drift found in the target and corrected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    /// App name.
    pub app: String,
    /// The release rewritten.
    pub sequence: u64,
    /// What differed.
    pub drift: String,
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
    /// Apps that could not be synced this time.
    pub failed: Vec<Failure>,
    /// Releases waiting for their promotion soak.
    pub waiting: Vec<Waiting>,
    /// Drift corrected.
    pub corrected: Vec<Correction>,
}

impl SyncReport {
    /// 0 when everything admitted was applied, 1 when a release was refused, 2 when an app failed.
    pub fn exit_code(&self) -> u8 {
        if !self.failed.is_empty() {
            2
        } else if !self.refused.is_empty() {
            1
        } else {
            0
        }
    }
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

/// Runs one pass over every app of the source with a fresh agent (no cache); see [`Agent`].
pub async fn sync_once(cfg: &SyncConfig) -> Result<SyncReport, AgentError> {
    let mut agent = Agent::new(cfg.clone(), Arc::new(Metrics::default()))?;
    agent.sync().await
}

/// Whether a verification error is the source's fault for now (retry) rather than the release's.
fn is_transient(err: &SignError) -> bool {
    matches!(
        err,
        SignError::Oci(airlock_oci::Error::Registry { .. } | airlock_oci::Error::Io { .. })
    )
}

/// The metrics word for a verification error.
fn refusal_kind(err: &SignError) -> &'static str {
    match err {
        SignError::Unsigned { .. } => "unsigned",
        SignError::UntrustedKey { .. } => "untrusted-key",
        SignError::BadSignature { .. }
        | SignError::PayloadDigestMismatch { .. }
        | SignError::ReferenceMismatch { .. } => "bad-signature",
        SignError::ReleaseImageMismatch { .. } | SignError::AttestationSubjectMismatch { .. } => {
            "attestation-mismatch"
        }
        SignError::AttestationMissing { .. } => "attestation-missing",
        SignError::SequenceNotNewer { .. } => "rollback",
        SignError::Oci(
            airlock_oci::Error::DigestMismatch { .. } | airlock_oci::Error::SizeMismatch { .. },
        ) => "tampered",
        _ => "invalid",
    }
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}

enum AppOutcome {
    NoRelease,
    Unchanged,
    Applied(Applied),
    Refused(Refusal),
    Failed(String),
    Waiting(Waiting),
}

/// A long-lived agent for one environment: the source stays open, verified releases are cached by
/// digest, and refusals are counted once per release in the metrics.
pub struct Agent {
    cfg: SyncConfig,
    source: Option<Source>,
    target: Target,
    policies: Option<PolicySet>,
    // Keyed by (app, digest): the same bytes verified for one repository prove nothing for another.
    verified: HashMap<(String, Digest), Arc<VerifiedRelease>>,
    rejected: HashMap<(String, Digest), (String, &'static str)>,
    seen: HashSet<(String, Digest)>,
    counted_refusals: HashSet<(String, String)>,
    evidence_done: HashSet<(String, u64)>,
    // Releases seen applied but not yet rolled out: their health starts when the rollout completes,
    // not when they were applied, so a slow rollout does not count toward a later environment's soak.
    rollout_seen_pending: HashSet<(String, u64)>,
    revocations: Option<VerifiedRevocations>,
    revocations_seen: Option<u64>,
    rescanner: crate::rescan::Rescanner,
    mirror: Option<crate::mirror::Mirror>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("env", &self.cfg.env)
            .field("source", &self.cfg.source.to_string())
            .field("target", &self.cfg.target.to_string())
            .field("cached", &self.verified.len())
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Checks the config and loads the admission policies; the source is opened on the first sync.
    pub fn new(cfg: SyncConfig, metrics: Arc<Metrics>) -> Result<Agent, AgentError> {
        if validate_env(&cfg.env).is_err() {
            return Err(AgentError::BadEnvironment(cfg.env.clone()));
        }
        if cfg.trust.keys.is_empty() {
            return Err(AgentError::NoTrustedKey);
        }
        if let Some(p) = &cfg.promotion
            && cfg
                .evidence
                .as_ref()
                .is_none_or(|e| e.trust.keys.is_empty())
        {
            return Err(AgentError::NoEvidenceStore {
                env: cfg.env.clone(),
                after: p.after.clone(),
            });
        }
        let policies = match &cfg.admission {
            Some(dir) => Some(PolicySet::load(dir).map_err(|source| AgentError::Policy {
                path: dir.clone(),
                source: Box::new(source),
            })?),
            None => None,
        };
        let mirror = match &cfg.mirror {
            Some(m) => Some(crate::mirror::Mirror::open(m, cfg.source_options.insecure)?),
            None => None,
        };
        Ok(Agent {
            mirror,
            target: Target::open(&cfg.target),
            cfg,
            source: None,
            policies,
            verified: HashMap::new(),
            rejected: HashMap::new(),
            seen: HashSet::new(),
            counted_refusals: HashSet::new(),
            evidence_done: HashSet::new(),
            rollout_seen_pending: HashSet::new(),
            revocations: None,
            revocations_seen: None,
            rescanner: crate::rescan::Rescanner::default(),
            metrics,
        })
    }

    /// The environment this agent deploys.
    pub fn env(&self) -> &str {
        &self.cfg.env
    }

    /// The target it writes.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// One pass over every app, with the status written to the target afterwards.
    pub async fn sync(&mut self) -> Result<SyncReport, AgentError> {
        let started = Instant::now();
        let result = self.sync_inner().await;
        let env = self.cfg.env.clone();
        let mut status = self.target.read_status(&env);
        status.last_sync = Some(now_rfc3339());
        match &result {
            Ok(report) => {
                status.last_error = None;
                self.note_status(&mut status, report);
                status.revocations_sequence = self.revocations_seen;
                self.note_rescans(&mut status);
            }
            Err(err) => {
                status.last_error = Some(err.to_string());
                self.metrics.inc(&env, Counter::Error);
            }
        }
        if let Err(err) = self.target.write_status(&env, &status) {
            tracing::warn!(env, error = %err, "cannot write the agent status");
        }
        let waiting = result.as_ref().map(|r| r.waiting.len() as u64).unwrap_or(0);
        let now = OffsetDateTime::now_utc().unix_timestamp() as f64;
        self.metrics
            .sync_done(&env, started.elapsed().as_secs_f64(), now, waiting);
        result
    }

    fn note_status(&self, status: &mut EnvStatus, report: &SyncReport) {
        fn entry<'a>(status: &'a mut EnvStatus, app: &str) -> &'a mut AppStatus {
            status.apps.entry(app.to_string()).or_default()
        }
        for app in report
            .applied
            .iter()
            .map(|a| &a.app)
            .chain(&report.unchanged)
        {
            // Applied or unchanged is a successful sync of the app: an earlier failure (e.g. a rollout) is over.
            let s = entry(status, app);
            s.last_error = None;
            s.waiting = None;
        }
        for r in &report.refused {
            entry(status, &r.app).last_error =
                Some(format!("refused {}: {}", r.reference, r.reason));
        }
        for f in &report.failed {
            entry(status, &f.app).last_error = Some(f.error.clone());
        }
        for w in &report.waiting {
            entry(status, &w.app).waiting = Some(format!("release {}: {}", w.sequence, w.reason));
        }
        for c in &report.corrected {
            entry(status, &c.app).drift_corrections += 1;
        }
    }

    async fn sync_inner(&mut self) -> Result<SyncReport, AgentError> {
        if self.source.is_none() {
            self.source = Some(Source::open(&self.cfg.source, &self.cfg.source_options).await?);
        }
        self.load_revocations().await?;
        let apps = match &self.source {
            Some(source) => source.apps()?,
            None => Vec::new(),
        };
        let mut report = SyncReport::default();
        for app in apps.clone() {
            let outcome = self.sync_app(&app, &mut report).await;
            match outcome {
                AppOutcome::NoRelease => {}
                AppOutcome::Unchanged => report.unchanged.push(app),
                AppOutcome::Applied(applied) => {
                    self.metrics.inc(&self.cfg.env, Counter::Applied);
                    report.applied.push(applied);
                }
                AppOutcome::Refused(refusal) => {
                    tracing::warn!(env = %self.cfg.env, app = %refusal.app, reference = %refusal.reference, reason = %refusal.reason, "release refused");
                    if self
                        .counted_refusals
                        .insert((refusal.reference.clone(), refusal.reason.clone()))
                    {
                        self.metrics.refused(&self.cfg.env, refusal.kind);
                    }
                    report.refused.push(refusal);
                }
                AppOutcome::Failed(error) => {
                    tracing::warn!(env = %self.cfg.env, app, error, "sync of app failed");
                    self.metrics.inc(&self.cfg.env, Counter::Error);
                    report.failed.push(Failure { app, error });
                }
                AppOutcome::Waiting(waiting) => {
                    tracing::info!(env = %self.cfg.env, app, sequence = waiting.sequence, reason = %waiting.reason, "release waiting");
                    report.waiting.push(waiting);
                }
            }
        }
        self.rescan(&apps).await;
        Ok(report)
    }

    /// Reads the gate's vulnerability database (one request when it did not change) and rescans the SBOM of
    /// each app's running release against it when the database or the release changed; see [`crate::rescan`].
    /// Never fails the sync: a database that does not verify is refused and the previous one kept.
    async fn rescan(&mut self, apps: &[String]) {
        let store = match self.source.as_ref().map(Source::vulndb_store) {
            Some(Ok(Some(store))) => store,
            Some(Ok(None)) | None => return,
            Some(Err(e)) => {
                tracing::warn!(env = %self.cfg.env, error = %e, "cannot open the vulnerability database repository");
                return;
            }
        };
        let reference = format!(
            "{}/{}",
            self.cfg.reference_prefix,
            airlock_sign::VULNDB_REPOSITORY
        );
        let had_error = self.rescanner.status().last_error.is_some();
        self.rescanner
            .refresh(store.as_ref(), &reference, &self.cfg.trust)
            .await;
        if !had_error
            && self
                .rescanner
                .status()
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("refused"))
        {
            self.metrics.vulndb_refused(&self.cfg.env);
        }
        let env = self.cfg.env.clone();
        for app in apps {
            let Ok(Some(current)) = self.target.deployed(&env, app).await else {
                continue;
            };
            let Ok(digest) = Digest::parse(&current.release_digest) else {
                continue;
            };
            // The running release is usually verified already (cached by digest, nothing fetched); after a
            // restart it is verified once, and only when there is a database to rescan it with.
            let release = match self.verified.get(&(app.clone(), digest)).cloned() {
                Some(release) => release,
                None if self.rescanner.has_db() => {
                    let Ok(store) = self.store(app) else {
                        continue;
                    };
                    match self
                        .verify(store.as_ref(), app, &current.release_digest)
                        .await
                    {
                        Ok(release) => release,
                        Err(_) => continue,
                    }
                }
                None => continue,
            };
            match self.rescanner.rescan(app, &release) {
                None => {}
                Some(Ok(found)) => {
                    let mut counts = std::collections::BTreeMap::new();
                    for f in found {
                        *counts.entry(f.severity.clone()).or_insert(0u64) += 1;
                    }
                    self.metrics.set_findings(&env, app, &counts);
                }
                Some(Err(e)) => tracing::warn!(env, app, error = %e, "rescan failed"),
            }
        }
    }

    /// Copies the database in use and each app's new findings into the status.
    fn note_rescans(&self, status: &mut EnvStatus) {
        if self.rescanner.status() != &crate::rescan::VulnDbStatus::default() {
            status.vulndb = Some(self.rescanner.status().clone());
        }
        for (app, found) in self.rescanner.all_findings() {
            status.apps.entry(app.clone()).or_default().new_findings = found.clone();
        }
    }

    /// Reads the signed revocation list (one request when it did not change) and keeps it. A list that is
    /// present but does not verify, or is older than one seen before (also across restarts, through the
    /// status in the target), stops the sync: applying without knowing what is revoked is not safe.
    async fn load_revocations(&mut self) -> Result<(), AgentError> {
        if self.revocations_seen.is_none() {
            self.revocations_seen = self.target.read_status(&self.cfg.env).revocations_sequence;
        }
        let Some(source) = &self.source else {
            return Ok(());
        };
        let fail = |reason: String| AgentError::Revocations {
            source_spec: self.cfg.source.to_string(),
            reason,
        };
        let store = match source.revocation_store() {
            Ok(Some(store)) => store,
            Ok(None) => return Ok(()),
            Err(e) => return Err(fail(e.to_string())),
        };
        let reference = self.docker_reference(REVOCATIONS_REPOSITORY);
        match read_revocations(
            store.as_ref(),
            &reference,
            &self.cfg.trust,
            self.revocations_seen,
        )
        .await
        {
            Ok(Some(list)) => {
                if self.revocations.as_ref().map(|r| &r.digest) != Some(&list.digest) {
                    tracing::info!(env = %self.cfg.env, sequence = list.list.sequence, revoked = list.list.revoked.len(), "revocation list verified");
                }
                self.revocations_seen = Some(list.list.sequence);
                self.revocations = Some(list);
                Ok(())
            }
            Ok(None) => Ok(()),
            // Unreachable is not untrusted: say so, and try again next cycle.
            Err(SignError::Oci(
                e @ (airlock_oci::Error::Registry { .. } | airlock_oci::Error::Io { .. }),
            )) => Err(AgentError::Source {
                source_spec: self.cfg.source.to_string(),
                source: e,
            }),
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// The revocation naming the release or its image, if any.
    fn revoked(&self, release_digest: &str, image_digest: &str) -> Option<String> {
        let list = &self.revocations.as_ref()?.list;
        list.revoked
            .iter()
            .find(|r| r.digest.as_str() == release_digest || r.digest.as_str() == image_digest)
            .map(|r| format!("{} was revoked at {}: {}", r.digest, r.revoked_at, r.reason))
    }

    /// Moves an app off a revoked release to the newest release that verifies, is admitted and is not
    /// revoked (older or newer; no soak: a revocation is an emergency). Refused when there is none, so
    /// the app stays flagged in status and metrics.
    async fn replace_revoked(
        &mut self,
        store: &dyn Store,
        app: &str,
        tags: &[String],
        current: &ReleaseRecord,
        why: String,
    ) -> AppOutcome {
        let env = self.cfg.env.clone();
        let mut sequences: Vec<u64> = tags.iter().filter_map(|t| parse_release_tag(t)).collect();
        sequences.sort_unstable_by(|a, b| b.cmp(a));
        for sequence in sequences {
            if sequence == current.sequence {
                continue;
            }
            let Ok(verified) = self.verify(store, app, &release_tag(sequence)).await else {
                continue;
            };
            let config = &verified.config;
            if config.app != app
                || self
                    .revoked(verified.digest.as_str(), config.image.digest.as_str())
                    .is_some()
                || self.admit(&verified).is_err()
            {
                continue;
            }
            let Some(files) = verified.manifests.get(&env) else {
                continue;
            };
            let files = &match self.deliverable(store, app, &verified, files).await {
                Ok(files) => files,
                Err(e) => return AppOutcome::Failed(e),
            };
            let record = ReleaseRecord {
                app: app.to_string(),
                sequence,
                release_digest: verified.digest.to_string(),
                image_digest: config.image.digest.to_string(),
                applied_at: now_rfc3339(),
                signed_by: verified.signed_by.as_str().to_string(),
                commit: config.commit.clone(),
                source: config.source.clone(),
                files: ReleaseRecord::hash_files(files),
                floor: current.anti_rollback_floor().max(sequence),
                rollback: (sequence < current.sequence).then(|| RollbackNote {
                    from: current.sequence,
                    at: now_rfc3339(),
                    reason: format!("release {} revoked: {why}", current.sequence),
                }),
            };
            return match self.target.apply(&env, &record, files).await {
                Ok(commit) => {
                    tracing::warn!(
                        env,
                        app,
                        from = current.sequence,
                        to = sequence,
                        why,
                        "moved off a revoked release"
                    );
                    AppOutcome::Applied(Applied {
                        app: app.to_string(),
                        sequence,
                        release_digest: record.release_digest,
                        image_digest: record.image_digest,
                        path: self.target.app_path(&env, app),
                        commit,
                    })
                }
                Err(e) => AppOutcome::Failed(e.to_string()),
            };
        }
        AppOutcome::Refused(Refusal {
            app: app.to_string(),
            reference: format!(
                "{}:{}",
                self.docker_reference(app),
                release_tag(current.sequence)
            ),
            reason: format!(
                "the running release {} is revoked ({why}) and no other release is admitted and not revoked: it keeps running, act now",
                current.sequence
            ),
            kind: "revoked",
        })
    }

    fn docker_reference(&self, app: &str) -> String {
        format!("{}/{app}", self.cfg.reference_prefix)
    }

    fn store(&self, app: &str) -> Result<Arc<dyn Store>, String> {
        match &self.source {
            Some(source) => source
                .store(app)
                .map_err(|e| format!("cannot open its repository: {e}")),
            None => Err("the source is not open".into()),
        }
    }

    /// Verifies the release at `reference` (tag or digest) once per release digest.
    async fn verify(
        &mut self,
        store: &dyn Store,
        app: &str,
        reference: &str,
    ) -> Result<Arc<VerifiedRelease>, Result<(String, &'static str), String>> {
        let digest = match store.get_manifest(reference).await {
            Ok(fetched) => fetched.digest,
            Err(e @ (airlock_oci::Error::Registry { .. } | airlock_oci::Error::Io { .. })) => {
                return Err(Err(format!("cannot read {reference}: {e}")));
            }
            Err(e) => return Err(Ok((format!("cannot read the release: {e}"), "invalid"))),
        };
        if self.seen.insert((app.to_string(), digest.clone())) {
            self.metrics.inc(&self.cfg.env, Counter::Seen);
        }
        let key = (app.to_string(), digest.clone());
        if let Some(v) = self.verified.get(&key) {
            return Ok(v.clone());
        }
        if let Some(r) = self.rejected.get(&key) {
            return Err(Ok(r.clone()));
        }
        // The digest pins what is verified: a tag moved between the two reads cannot swap the content.
        let docker_reference = self.docker_reference(app);
        match verify_release(
            store,
            &docker_reference,
            digest.as_str(),
            &self.cfg.trust,
            None,
            &REQUIRED_PREDICATES,
        )
        .await
        {
            Ok(v) => {
                if reference.starts_with(RELEASE_TAG_PREFIX)
                    && release_tag(v.config.sequence) != reference
                {
                    let verdict = (
                        format!(
                            "tag {reference} does not match the release's sequence {}",
                            v.config.sequence
                        ),
                        "invalid",
                    );
                    self.rejected.insert(key, verdict.clone());
                    return Err(Ok(verdict));
                }
                self.metrics.inc(&self.cfg.env, Counter::Verified);
                let v = Arc::new(v);
                self.verified.insert(key, v.clone());
                Ok(v)
            }
            Err(e) if is_transient(&e) => Err(Err(format!("cannot read the release: {e}"))),
            Err(e) => {
                let verdict = (format!("verification failed: {e}"), refusal_kind(&e));
                self.rejected.insert(key, verdict.clone());
                Err(Ok(verdict))
            }
        }
    }

    async fn sync_app(&mut self, app: &str, report: &mut SyncReport) -> AppOutcome {
        let docker_reference = self.docker_reference(app);
        let store = match self.store(app) {
            Ok(s) => s,
            Err(e) => return AppOutcome::Failed(e),
        };
        let tags = match store.list_tags().await {
            Ok(tags) => tags,
            Err(e) => {
                return AppOutcome::Failed(format!(
                    "cannot list the tags of {}: {e}",
                    store.describe()
                ));
            }
        };
        let Some(newest) = tags.iter().filter_map(|t| parse_release_tag(t)).max() else {
            tracing::debug!(app, "no release tags");
            return AppOutcome::NoRelease;
        };
        let tag = release_tag(newest);
        let reference = format!("{docker_reference}:{tag}");
        let refuse = |reason: String, kind: &'static str| {
            AppOutcome::Refused(Refusal {
                app: app.to_string(),
                reference: reference.clone(),
                reason,
                kind,
            })
        };

        let env = self.cfg.env.clone();
        let deployed = match self.target.deployed(&env, app).await {
            Ok(d) => d,
            Err(e) => return AppOutcome::Failed(e.to_string()),
        };
        if let Some(current) = &deployed
            && let Some(why) = self.revoked(&current.release_digest, &current.image_digest)
        {
            return self
                .replace_revoked(store.as_ref(), app, &tags, current, why)
                .await;
        }
        if let Some(current) = &deployed {
            // Keep what runs as it was applied, whatever else happens to this app below.
            if let Err(e) = self.reconcile(store.as_ref(), app, current, report).await {
                return AppOutcome::Failed(e);
            }
            // A release applied but not rolled out (timed out, or ProgressDeadlineExceeded) stays an
            // error until it is available, and is no evidence of health; a newer release may still fix it.
            let pending = self.target.rollout_pending(&env, app);
            let key = (app.to_string(), current.sequence);
            if pending.is_some() {
                self.rollout_seen_pending.insert(key);
            } else if self.rollout_seen_pending.remove(&key) {
                let mut rolled_out = current.clone();
                rolled_out.applied_at = now_rfc3339();
                self.publish_health(app, &rolled_out).await;
            } else {
                self.publish_health(app, current).await;
            }
            let settled = pending.map_or(AppOutcome::Unchanged, AppOutcome::Failed);
            let floor = current.anti_rollback_floor();
            if newest == current.sequence {
                return settled;
            }
            if newest < current.sequence {
                return refuse(
                    format!(
                        "its newest release {newest} is older than the deployed release {}: rollback refused (anti-rollback; use `airlock-agent rollback` to roll back on purpose)",
                        current.sequence
                    ),
                    "rollback",
                );
            }
            if newest <= floor {
                // A recorded rollback holds releases up to the one rolled back from.
                tracing::debug!(app, newest, floor, "held back by a recorded rollback");
                return settled;
            }
        }

        let verified = match self.verify(store.as_ref(), app, &tag).await {
            Ok(v) => v,
            Err(Ok((reason, kind))) => return refuse(reason, kind),
            Err(Err(failure)) => return AppOutcome::Failed(failure),
        };
        let config = &verified.config;
        if config.app != app {
            return refuse(
                format!(
                    "the release is for app {:?} but was found in repository {app:?}",
                    config.app
                ),
                "wrong-app",
            );
        }
        if let Some(why) = self.revoked(verified.digest.as_str(), config.image.digest.as_str()) {
            return refuse(
                format!("release {} is revoked: {why}", config.sequence),
                "revoked",
            );
        }
        let floor = deployed.as_ref().map(ReleaseRecord::anti_rollback_floor);
        if let Some(floor) = floor
            && config.sequence <= floor
        {
            return refuse(
                format!(
                    "release sequence {} is not newer than {floor}: rollback refused (anti-rollback)",
                    config.sequence
                ),
                "rollback",
            );
        }
        let Some(files) = verified.manifests.get(&env) else {
            return refuse(
                format!(
                    "release {} does not list environment {env} (it lists {})",
                    config.sequence,
                    config.environments.join(", ")
                ),
                "environment",
            );
        };
        if let Err((reason, kind)) = self.admit(&verified) {
            return refuse(reason, kind);
        }
        if let Some(promotion) = self.cfg.promotion.clone() {
            match self.soaked(app, &verified, &promotion).await {
                Ok(()) => {}
                Err(SoakVerdict::Wait(reason)) => {
                    return AppOutcome::Waiting(Waiting {
                        app: app.to_string(),
                        sequence: config.sequence,
                        reason,
                    });
                }
                Err(SoakVerdict::Refuse(reason)) => return refuse(reason, "evidence"),
                Err(SoakVerdict::Fail(reason)) => return AppOutcome::Failed(reason),
            }
        }
        let files = &match self
            .deliverable(store.as_ref(), app, &verified, files)
            .await
        {
            Ok(files) => files,
            Err(e) => return AppOutcome::Failed(e),
        };

        let record = ReleaseRecord {
            app: app.to_string(),
            sequence: config.sequence,
            release_digest: verified.digest.to_string(),
            image_digest: config.image.digest.to_string(),
            applied_at: now_rfc3339(),
            signed_by: verified.signed_by.as_str().to_string(),
            commit: config.commit.clone(),
            source: config.source.clone(),
            files: ReleaseRecord::hash_files(files),
            floor: config.sequence.max(floor.unwrap_or(0)),
            rollback: None,
        };
        let commit = match self.target.apply(&env, &record, files).await {
            Ok(c) => c,
            Err(e) => return AppOutcome::Failed(e.to_string()),
        };
        let path = self.target.app_path(&env, app);
        tracing::info!(app, sequence = record.sequence, env, path = %path.display(), "release applied");
        self.publish_health(app, &record).await;
        AppOutcome::Applied(Applied {
            app: app.to_string(),
            sequence: record.sequence,
            release_digest: record.release_digest,
            image_digest: record.image_digest,
            path,
            commit,
        })
    }

    /// The files of this environment to write for `verified`: as signed, or, with a mirror, after its image
    /// was copied there and verified, pointing at the mirror by digest (see [`crate::mirror`]).
    async fn deliverable(
        &self,
        store: &dyn Store,
        app: &str,
        verified: &VerifiedRelease,
        files: &std::collections::BTreeMap<String, String>,
    ) -> Result<std::collections::BTreeMap<String, String>, String> {
        let Some(mirror) = &self.mirror else {
            return Ok(files.clone());
        };
        mirror.copy(store, app, verified, &self.cfg.trust).await?;
        mirror.rewrite(app, verified, files)
    }

    fn admit(&self, verified: &VerifiedRelease) -> Result<(), (String, &'static str)> {
        let Some(policies) = &self.policies else {
            return Ok(());
        };
        let input = admission_input(verified, &self.cfg.env);
        match policies.evaluate(ADMISSION_PACKAGE, &input, &[], OffsetDateTime::now_utc()) {
            Ok(decision) if decision.allowed => Ok(()),
            Ok(decision) => Err((refusal_reason(&decision), "admission")),
            Err(e) => Err((
                format!("the admission policy could not be evaluated: {e}"),
                "admission",
            )),
        }
    }

    /// Compares the target with the release it runs and rewrites it when it drifted.
    async fn reconcile(
        &mut self,
        store: &dyn Store,
        app: &str,
        current: &ReleaseRecord,
        report: &mut SyncReport,
    ) -> Result<(), String> {
        let env = self.cfg.env.clone();
        let drift = match self.target.drift(&env, app).await {
            Ok(Some(drift)) => drift,
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        // The files to restore come from the signed release itself, verified (or cached) by digest.
        let verified = match self.verify(store, app, &current.release_digest).await {
            Ok(v) => v,
            Err(Ok((reason, _))) => {
                return Err(format!(
                    "drift in {app} ({drift}) cannot be corrected: its release {} no longer verifies: {reason}",
                    current.sequence
                ));
            }
            Err(Err(failure)) => return Err(failure),
        };
        let Some(files) = verified.manifests.get(&env) else {
            return Err(format!(
                "release {} of {app} has no manifests for {env}",
                current.sequence
            ));
        };
        let files = &self.deliverable(store, app, &verified, files).await?;
        self.target
            .repair(&env, current, files, &drift)
            .await
            .map_err(|e| e.to_string())?;
        tracing::warn!(
            env,
            app,
            sequence = current.sequence,
            drift,
            "drift corrected"
        );
        self.metrics.inc(&env, Counter::Drift);
        report.corrected.push(Correction {
            app: app.to_string(),
            sequence: current.sequence,
            drift,
        });
        Ok(())
    }

    /// Publishes the health evidence of what runs here, once per release and process.
    async fn publish_health(&mut self, app: &str, current: &ReleaseRecord) {
        let Some(evidence) = &self.cfg.evidence else {
            return;
        };
        let Some(key) = &evidence.key else {
            return;
        };
        if self
            .evidence_done
            .contains(&(app.to_string(), current.sequence))
        {
            return;
        }
        let Ok(release_digest) = Digest::parse(&current.release_digest) else {
            return;
        };
        let result = async {
            let store = evidence_store(evidence, app)?;
            if has_evidence(store.as_ref(), &self.cfg.env, current.sequence).await? {
                return Ok(());
            }
            publish_evidence(
                store.as_ref(),
                &self.docker_reference(app),
                &HealthClaim {
                    app,
                    env: &self.cfg.env,
                    sequence: current.sequence,
                    release_digest: &release_digest,
                    healthy_since: &current.applied_at,
                },
                key,
            )
            .await
            .map(|_| ())
        }
        .await;
        match result {
            Ok(()) => {
                self.evidence_done
                    .insert((app.to_string(), current.sequence));
            }
            Err(e) => {
                tracing::warn!(app, env = %self.cfg.env, error = %e, "cannot publish health evidence")
            }
        }
    }

    async fn soaked(
        &self,
        app: &str,
        verified: &VerifiedRelease,
        promotion: &Promotion,
    ) -> Result<(), SoakVerdict> {
        let Some(evidence) = &self.cfg.evidence else {
            return Err(SoakVerdict::Fail("no evidence store configured".into()));
        };
        let store = evidence_store(evidence, app).map_err(|e| SoakVerdict::Fail(e.to_string()))?;
        let sequence = verified.config.sequence;
        match check_evidence(
            store.as_ref(),
            app,
            &promotion.after,
            sequence,
            &verified.digest,
            &evidence.trust,
        )
        .await
        {
            EvidenceCheck::Missing => Err(SoakVerdict::Wait(format!(
                "not yet healthy in {} (no evidence published)",
                promotion.after
            ))),
            EvidenceCheck::Invalid(why) => Err(SoakVerdict::Refuse(format!(
                "the health evidence from {} is not trusted: {why}",
                promotion.after
            ))),
            EvidenceCheck::Unreachable(why) => Err(SoakVerdict::Fail(format!(
                "cannot read the health evidence: {why}"
            ))),
            EvidenceCheck::Healthy(since) => {
                let ready = since + promotion.soak;
                if OffsetDateTime::now_utc() >= ready {
                    Ok(())
                } else {
                    Err(SoakVerdict::Wait(format!(
                        "healthy in {} since {}, soaking until {}",
                        promotion.after,
                        since.format(&Rfc3339).unwrap_or_default(),
                        ready.format(&Rfc3339).unwrap_or_default()
                    )))
                }
            }
        }
    }

    /// Applies release `sequence` of `app` although it is older than what runs: an explicit rollback,
    /// recorded in the target with `reason`. Releases up to the one rolled back from stay out afterwards.
    pub async fn rollback(
        &mut self,
        app: &str,
        sequence: u64,
        reason: &str,
    ) -> Result<Applied, AgentError> {
        if self.source.is_none() {
            self.source = Some(Source::open(&self.cfg.source, &self.cfg.source_options).await?);
        }
        self.load_revocations().await?;
        let env = self.cfg.env.clone();
        let refused = |reason: String| AgentError::Rollback {
            app: app.to_string(),
            sequence,
            reason,
        };
        let store = self.store(app).map_err(&refused)?;
        let tag = release_tag(sequence);
        let verified = match self.verify(store.as_ref(), app, &tag).await {
            Ok(v) => v,
            Err(Ok((reason, _)) | Err(reason)) => return Err(refused(reason)),
        };
        if verified.config.app != app {
            return Err(refused(format!(
                "the release is for app {:?}",
                verified.config.app
            )));
        }
        if let Some(why) = self.revoked(
            verified.digest.as_str(),
            verified.config.image.digest.as_str(),
        ) {
            return Err(refused(format!("it is revoked: {why}")));
        }
        let files = verified
            .manifests
            .get(&env)
            .ok_or_else(|| refused(format!("it has no manifests for {env}")))?;
        self.admit(&verified).map_err(|(r, _)| refused(r))?;
        let files = &self
            .deliverable(store.as_ref(), app, &verified, files)
            .await
            .map_err(&refused)?;
        let current = self.target.deployed(&env, app).await?;
        let from = current.as_ref().map(|c| c.sequence).unwrap_or(0);
        let floor = current
            .as_ref()
            .map(ReleaseRecord::anti_rollback_floor)
            .unwrap_or(0)
            .max(sequence);
        let record = ReleaseRecord {
            app: app.to_string(),
            sequence,
            release_digest: verified.digest.to_string(),
            image_digest: verified.config.image.digest.to_string(),
            applied_at: now_rfc3339(),
            signed_by: verified.signed_by.as_str().to_string(),
            commit: verified.config.commit.clone(),
            source: verified.config.source.clone(),
            files: ReleaseRecord::hash_files(files),
            floor,
            rollback: Some(RollbackNote {
                from,
                at: now_rfc3339(),
                reason: reason.to_string(),
            }),
        };
        let commit = self.target.apply(&env, &record, files).await?;
        tracing::warn!(app, env, from, to = sequence, reason, "rolled back");
        self.metrics.inc(&env, Counter::Applied);
        Ok(Applied {
            app: app.to_string(),
            sequence,
            release_digest: record.release_digest,
            image_digest: record.image_digest,
            path: self.target.app_path(&env, app),
            commit,
        })
    }
}

enum SoakVerdict {
    Wait(String),
    Refuse(String),
    Fail(String),
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

    #[test]
    fn exit_code_reflects_the_worst_outcome() {
        let mut report = SyncReport::default();
        assert_eq!(report.exit_code(), 0);
        report.waiting.push(Waiting {
            app: "a".into(),
            sequence: 1,
            reason: "soak".into(),
        });
        assert_eq!(report.exit_code(), 0);
        report.refused.push(Refusal {
            app: "a".into(),
            reference: "r".into(),
            reason: "x".into(),
            kind: "unsigned",
        });
        assert_eq!(report.exit_code(), 1);
        report.failed.push(Failure {
            app: "a".into(),
            error: "down".into(),
        });
        assert_eq!(report.exit_code(), 2);
    }
}
