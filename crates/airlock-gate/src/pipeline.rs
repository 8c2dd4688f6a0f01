//! The pipeline of one run: fetch → build → scan → gate → sign → publish.
//!
//! Each step reads what earlier steps left (in the store's `outputs` and the run's work directory) and is safe to
//! repeat: a restart re-runs the step the run was in. The state is written before a step starts, so the store
//! always says where a run is. Content addressing makes a repeated copy or push a no-op.

use crate::config::GateConfig;
use crate::store::{RunRecord, SourceKind, Store};
use airlock_build::{SourceMeta, UnpackLimits};
use airlock_cli::api::{RunState, StepState};
use airlock_descriptor::AppDescriptor;
use airlock_oci::{Digest, LayoutRoot, OciLayout, Store as OciStore};
use airlock_policy::{PolicySet, WaiverBook};
use airlock_scan::VulnDb;
use airlock_sign::{ReleaseConfig, ReleaseImage, SigningKey, predicates};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The steps in order, as the store and the API name them.
pub const STEPS: [&str; 6] = ["fetch", "build", "scan", "gate", "sign", "publish"];

/// Everything the pipeline needs, loaded once at start.
pub struct Pipeline {
    pub config: GateConfig,
    pub store: Store,
    pub key: SigningKey,
    pub policies: PolicySet,
    /// The reviewed waivers file plus those added through the admin API; read at every gate step.
    pub waivers: WaiverBook,
}

/// Why a step stopped the run.
#[derive(Debug)]
enum Stop {
    /// Something broke: the run fails with this message.
    Failed(String),
    /// The gate said no: the run is rejected with this summary.
    Rejected(String),
}

type StepResult = Result<(Value, Option<String>), Stop>;

fn fail<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> Stop + '_ {
    move |e| Stop::Failed(format!("{context}: {e}"))
}

impl Pipeline {
    fn run_dir(&self, id: &str) -> PathBuf {
        self.config.runs_dir().join(id)
    }

    fn docker_reference(&self, app: &str) -> String {
        format!("{}/{}", self.config.boundary.reference_prefix, app)
    }

    /// Drives one claimed run from its current state to a terminal one (or until cancelled).
    pub async fn process(self: &Arc<Self>, run_id: &str) -> anyhow::Result<()> {
        loop {
            let run = self.store.get_run(run_id).await?;
            if run.state.is_terminal() {
                return Ok(());
            }
            if run.cancel_requested {
                self.store
                    .set_terminal(
                        run_id,
                        RunState::Cancelled,
                        Some(("cancel", "cancelled on request")),
                    )
                    .await?;
                return Ok(());
            }
            let (state, step) = match run.state {
                RunState::Queued | RunState::Fetching => (RunState::Fetching, "fetch"),
                RunState::Building => (RunState::Building, "build"),
                RunState::Scanning => (RunState::Scanning, "scan"),
                RunState::Gating => (RunState::Gating, "gate"),
                RunState::Signing => (RunState::Signing, "sign"),
                RunState::Publishing => (RunState::Publishing, "publish"),
                _ => return Ok(()),
            };
            self.store.start_step(run_id, state, step).await?;
            tracing::info!(run = run_id, step, attempt = run.attempts, "step started");
            let started = Instant::now();
            let result = match step {
                "fetch" => self.fetch(&run).await,
                "build" => self.build(&run).await,
                "scan" => self.scan(&run).await,
                "gate" => self.gate(&run).await,
                "sign" => self.sign(&run).await,
                _ => self.publish(&run).await,
            };
            let ms = started.elapsed().as_millis() as u64;
            match result {
                Ok((outputs, detail)) => {
                    self.store
                        .finish_step(
                            run_id,
                            step,
                            StepState::Succeeded,
                            ms,
                            detail.as_deref(),
                            Some(&outputs),
                        )
                        .await?;
                    tracing::info!(run = run_id, step, ms, "step succeeded");
                    let next = match step {
                        "fetch" => RunState::Building,
                        "build" => RunState::Scanning,
                        "scan" => RunState::Gating,
                        "gate" => RunState::Signing,
                        "sign" => RunState::Publishing,
                        _ => {
                            self.store
                                .set_terminal(run_id, RunState::Published, None)
                                .await?;
                            return Ok(());
                        }
                    };
                    self.store
                        .start_step(
                            run_id,
                            next,
                            STEPS[STEPS.iter().position(|s| *s == step).unwrap_or(0) + 1],
                        )
                        .await?;
                }
                Err(Stop::Failed(message)) => {
                    tracing::warn!(run = run_id, step, %message, "step failed");
                    self.store
                        .finish_step(run_id, step, StepState::Failed, ms, Some(&message), None)
                        .await?;
                    self.store
                        .set_terminal(run_id, RunState::Failed, Some((step, &message)))
                        .await?;
                    return Ok(());
                }
                Err(Stop::Rejected(message)) => {
                    tracing::info!(run = run_id, step, %message, "run rejected");
                    self.store
                        .finish_step(run_id, step, StepState::Failed, ms, Some(&message), None)
                        .await?;
                    self.store
                        .set_terminal(run_id, RunState::Rejected, Some((step, &message)))
                        .await?;
                    return Ok(());
                }
            }
        }
    }

    async fn fetch(&self, run: &RunRecord) -> StepResult {
        let src = self.run_dir(&run.id).join("src");
        if src.exists() {
            std::fs::remove_dir_all(&src).map_err(fail("clearing an earlier checkout"))?;
        }
        std::fs::create_dir_all(src.parent().unwrap_or(&src))
            .map_err(fail("creating the run directory"))?;
        let mut commit = run.commit.clone();
        let mut commit_time = run
            .outputs
            .pointer("/source/commit_time")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        match run.source_kind {
            SourceKind::Tarball => {
                let path = PathBuf::from(&run.source_ref);
                let src2 = src.clone();
                tokio::task::spawn_blocking(move || {
                    let file = std::fs::File::open(&path)
                        .map_err(|e| format!("opening stored source {}: {e}", path.display()))?;
                    airlock_build::unpack_tarball(file, &src2, &UnpackLimits::default())
                        .map_err(|e| format!("unpacking the source tarball: {e}"))
                })
                .await
                .map_err(fail("unpacking"))?
                .map_err(Stop::Failed)?;
            }
            SourceKind::Git => {
                // The fetch URL may carry the repository's token (config); it goes to the fetcher only.
                let url = self.config.fetch_url(&run.source_ref);
                // An ssh key mapped to the repository is passed to ssh by path, for this fetch only.
                let ssh = self.config.fetch_ssh_command(&run.source_ref);
                let (wanted, src2) = (run.commit.clone(), src.clone());
                let git = tokio::task::spawn_blocking(move || {
                    airlock_build::fetch_git_with_ssh(&url, &wanted, &src2, ssh.as_deref())
                })
                .await
                .map_err(fail("fetching"))?
                .map_err(|e| {
                    Stop::Failed(self.config.scrub(&format!(
                        "fetching {} at {}: {e}",
                        run.source_ref, run.commit
                    )))
                })?;
                commit = git.commit;
                commit_time = git.commit_time;
            }
        }
        let descriptor = AppDescriptor::load(&src).map_err(|e| Stop::Failed(e.to_string()))?;
        let team = if run.source_kind == SourceKind::Tarball {
            if descriptor.app.team != run.team {
                return Err(Stop::Rejected(format!(
                    "app {:?} belongs to team {:?}, but this submission was made with a token of team {:?}; \
                     submit with a token of team {:?}",
                    descriptor.app.name, descriptor.app.team, run.team, descriptor.app.team
                )));
            }
            run.team.clone()
        } else {
            descriptor.app.team.clone()
        };
        self.store
            .set_identity(&run.id, &descriptor.app.name, &team, &commit)
            .await
            .map_err(fail("recording the app"))?;
        let detail = format!(
            "{} of team {} at {}",
            descriptor.app.name,
            team,
            short(&commit)
        );
        Ok((
            json!({ "source": { "commit": commit, "commit_time": commit_time }, "descriptor": descriptor.to_json() }),
            Some(detail),
        ))
    }

    fn descriptor(&self, run: &RunRecord) -> Result<AppDescriptor, Stop> {
        AppDescriptor::load(&self.run_dir(&run.id).join("src"))
            .map_err(|e| Stop::Failed(e.to_string()))
    }

    async fn build(&self, run: &RunRecord) -> StepResult {
        let src = self.run_dir(&run.id).join("src");
        let descriptor = self.descriptor(run)?;
        let meta = SourceMeta {
            repository: run.repository.clone(),
            commit: run.commit.clone(),
            commit_time: run
                .outputs
                .pointer("/source/commit_time")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        };
        let work = OciLayout::open_or_create(&self.config.work_layout_dir())
            .map_err(fail("opening the work store"))?;
        // The same step `airlock-gate build` runs: mode dispatch, build, smoke test.
        let outcome = match crate::cmd_build::build_source(
            &self.config,
            &src,
            &descriptor,
            &meta,
            &work,
            &run.id,
            true,
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(crate::cmd_build::BuildStop::Refused(message)) => {
                return Err(Stop::Rejected(message));
            }
            Err(crate::cmd_build::BuildStop::Failed { message, smoke_log }) => {
                if let Some(log) = smoke_log {
                    std::fs::write(self.run_dir(&run.id).join("smoke.log"), log)
                        .map_err(fail("keeping the smoke-test log"))?;
                }
                return Err(Stop::Failed(message));
            }
        };
        let built = &outcome.built;
        std::fs::write(self.run_dir(&run.id).join("build.log"), &built.log)
            .map_err(fail("keeping the build log"))?;
        if let Some(log) = &outcome.smoke_log {
            std::fs::write(self.run_dir(&run.id).join("smoke.log"), log)
                .map_err(fail("keeping the smoke-test log"))?;
        }
        let builder_text = built.builder.to_string();
        self.store
            .set_builder(&run.id, &builder_text)
            .await
            .map_err(fail("recording the builder"))?;
        let reference = format!(
            "{}@{}",
            self.docker_reference(&descriptor.app.name),
            built.digest
        );
        let detail = format!(
            "{} ({}) on {} with the {builder_text} builder ({}); smoke test {}",
            short(built.digest.as_str()),
            outcome.mode,
            outcome.stack.as_deref().map_or_else(
                || format!("base {}", outcome.base_name),
                |s| format!("stack {s}")
            ),
            outcome.reason,
            outcome
                .smoke
                .get("result")
                .and_then(Value::as_str)
                .unwrap_or("skipped"),
        );
        Ok((
            json!({
                "image": { "reference": reference, "digest": built.digest.to_string() },
                "build": outcome.to_json(),
            }),
            Some(detail),
        ))
    }

    fn image_digest(run: &RunRecord) -> Result<Digest, Stop> {
        let text = run
            .outputs
            .pointer("/image/digest")
            .and_then(Value::as_str)
            .unwrap_or("");
        Digest::parse(text)
            .map_err(|e| Stop::Failed(format!("the build left no valid image digest: {e}")))
    }

    async fn scan(&self, run: &RunRecord) -> StepResult {
        let digest = Self::image_digest(run)?;
        let work = OciLayout::open(&self.config.work_layout_dir())
            .map_err(fail("opening the work store"))?;
        let db = VulnDb::open(&self.config.vulndb_dir())
            .map_err(fail("opening the vulnerability database"))?;
        let report = airlock_scan::scan_image(&work, digest.as_str(), &db)
            .await
            .map_err(fail("scanning the image"))?;
        let name = self.docker_reference(&run.app);
        let dir = self.run_dir(&run.id);
        let cdx = airlock_scan::cyclonedx(&report.inventory, &name, digest.as_str());
        let spdx = airlock_scan::spdx(&report.inventory, &name, digest.as_str());
        write_json(&dir.join("sbom.cdx.json"), &cdx)?;
        write_json(&dir.join("sbom.spdx.json"), &spdx)?;
        let mut ecosystems: BTreeMap<String, u64> = BTreeMap::new();
        for p in &report.inventory.packages {
            *ecosystems.entry(format!("{:?}", p.ecosystem)).or_default() += 1;
        }
        let findings =
            serde_json::to_value(&report.findings).map_err(fail("recording findings"))?;
        let detail = format!(
            "{} packages, {} findings",
            report.inventory.packages.len(),
            report.findings.len()
        );
        Ok((
            json!({
                "findings": findings,
                "sbom": { "package_count": report.inventory.packages.len(), "ecosystems": ecosystems },
                "vulndb": serde_json::to_value(&report.db).unwrap_or(Value::Null),
                "scanned_at": report.scanned_at,
                "vulndb_age_seconds": report.db_age_seconds,
                "scan_warnings": report.inventory.warnings,
            }),
            Some(detail),
        ))
    }

    async fn gate(&self, run: &RunRecord) -> StepResult {
        let descriptor = self.descriptor(run)?;
        let digest = Self::image_digest(run)?;
        let sequence = match run.outputs.get("release_sequence").and_then(Value::as_u64) {
            Some(seq) => seq,
            None => self
                .store
                .next_sequence(&run.app)
                .await
                .map_err(fail("allocating a release number"))?,
        };
        let image = format!("{}@{}", self.docker_reference(&run.app), digest);
        let mut manifests = BTreeMap::new();
        for env in &self.config.environments {
            let meta = airlock_manifest::RenderMeta {
                image: image.clone(),
                commit: run.commit.clone(),
                run_id: run.id.clone(),
                release_sequence: sequence,
                team: run.team.clone(),
            };
            let rendered = airlock_manifest::render(&descriptor, env, &meta).map_err(|e| {
                Stop::Rejected(format!("rendering manifests for {}: {e}", env.name))
            })?;
            manifests.insert(env.name.clone(), rendered.files);
        }
        let build = run.outputs.get("build").cloned().unwrap_or(Value::Null);
        // Image facts come from the built image's own config: what will run, not what was asked for.
        let work = OciLayout::open(&self.config.work_layout_dir())
            .map_err(fail("opening the work store"))?;
        let image_config = airlock_oci::read_image(&work, digest.as_str())
            .await
            .map_err(fail("reading the image config"))?
            .config
            .config;
        let ports: Vec<u16> = image_config
            .exposed_ports
            .iter()
            .flatten()
            .filter_map(|(p, _)| p.split('/').next()?.parse().ok())
            .collect();
        let src = self.run_dir(&run.id).join("src");
        let (mode, dockerfile) = match descriptor.build_mode(&src) {
            airlock_descriptor::BuildMode::Dockerfile => {
                let name = descriptor.build.dockerfile.as_deref();
                let path = src.join(name.unwrap_or("Dockerfile"));
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Stop::Failed(format!("reading {}: {e}", path.display())))?;
                ("dockerfile", airlock_policy::dockerfile_facts(&text))
            }
            _ => ("standard", Value::Null),
        };
        let input = json!({
            "submission": { "app": run.app, "team": run.team, "repository": run.repository, "commit": run.commit,
                            "branch": run.branch, "author": run.author },
            "descriptor": descriptor.to_json(),
            "build": { "builder": build.get("builder"), "mode": mode, "stack": build.get("stack") },
            "image": {
                "digest": digest.to_string(),
                "user": image_config.user.unwrap_or_default(),
                "ports": if ports.is_empty() { vec![descriptor.run.port] } else { ports },
                "env_names": image_config.env.iter().flatten()
                    .filter_map(|e| e.split('=').next()).collect::<Vec<_>>(),
                "base": build.get("base"),
                "builder_image": build.get("builder_image"),
            },
            "platform": {
                "approved_bases": self.config.stacks.iter().map(|s| s.run_image_digest.to_string()).collect::<Vec<_>>(),
                "allow_host_builder": self.config.policy.allow_host_builder,
            },
            "sbom": run.outputs.get("sbom").cloned().unwrap_or(json!({})),
            "findings": run.outputs.get("findings").cloned().unwrap_or(json!([])),
            "manifests": manifests,
            "dockerfile": dockerfile,
        });
        write_json(&self.run_dir(&run.id).join("policy-input.json"), &input)?;
        let decision = self
            .policies
            .evaluate(
                "airlock.gate",
                &input,
                &self.waivers.current(),
                OffsetDateTime::now_utc(),
            )
            .map_err(fail("evaluating the gate policies"))?;
        let decision_json =
            serde_json::to_value(&decision).map_err(fail("recording the decision"))?;
        let outputs = json!({ "decision": decision_json, "manifests": manifests, "release_sequence": sequence });
        if !decision.allowed {
            // Keep the decision so `airlock explain` can show every violation, then stop the run as rejected.
            self.store
                .finish_step(&run.id, "gate", StepState::Running, 0, None, Some(&outputs))
                .await
                .map_err(fail("recording the decision"))?;
            let rules: Vec<_> = decision
                .violations
                .iter()
                .map(|v| v.rule.as_str())
                .collect();
            return Err(Stop::Rejected(format!(
                "{} policy violation(s): {}; run `airlock explain {}` for the evidence and fixes",
                decision.violations.len(),
                rules.join(", "),
                run.id
            )));
        }
        let detail = format!(
            "allowed ({} warnings, {} waived), release {sequence}",
            decision.warnings.len(),
            decision.waived.len()
        );
        Ok((outputs, Some(detail)))
    }

    async fn sign(&self, run: &RunRecord) -> StepResult {
        let digest = Self::image_digest(run)?;
        let dir = self.run_dir(&run.id);
        let staging_dir = dir.join("staging");
        if staging_dir.exists() {
            std::fs::remove_dir_all(&staging_dir).map_err(fail("clearing earlier staging"))?;
        }
        let staging =
            OciLayout::create(&staging_dir).map_err(fail("creating the staging store"))?;
        let work = OciLayout::open(&self.config.work_layout_dir())
            .map_err(fail("opening the work store"))?;
        let tag = image_tag(&run.commit, &run.id);
        airlock_oci::copy_image(&work, &staging, digest.as_str(), Some(&tag))
            .await
            .map_err(fail("staging the image"))?;
        let docker_reference = self.docker_reference(&run.app);
        airlock_sign::sign_manifest(&staging, &docker_reference, &digest, &self.key)
            .await
            .map_err(fail("signing the image"))?;

        let now = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let build = run.outputs.get("build").cloned().unwrap_or(Value::Null);
        let descriptor_bytes =
            std::fs::read(dir.join("src/airlock.toml")).map_err(fail("reading airlock.toml"))?;
        // The source (repository at commit) is added first by `slsa_provenance`; these are the images the
        // build used, pinned by digest.
        let mut resolved = Vec::new();
        if let Some(base) = build.pointer("/base/digest").and_then(Value::as_str) {
            resolved.push((
                format!(
                    "oci:bases/{}",
                    build
                        .pointer("/base/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ),
                base.into(),
            ));
        }
        // A rebased release names the image it was made from: its app layers were built by that run.
        if let Some(from) = run
            .outputs
            .pointer("/rebase/from_image")
            .and_then(Value::as_str)
        {
            resolved.push(("oci:rebased-from".into(), from.into()));
        }
        if let Some(b) = build
            .pointer("/builder_image/digest")
            .and_then(Value::as_str)
        {
            resolved.push(("docker:builder".into(), b.into()));
        }
        let provenance = predicates::slsa_provenance(&predicates::ProvenanceInput {
            builder_id: self.config.identity.clone(),
            build_type: "https://airlock.dev/build/standard/v1".into(),
            repository: run.repository.clone(),
            commit: run.commit.clone(),
            descriptor_digest: Digest::of(&descriptor_bytes).to_string(),
            run_id: run.id.clone(),
            started_on: run.created_at.clone(),
            finished_on: now.clone(),
            resolved,
        });
        let sbom: Value = read_json(&dir.join("sbom.cdx.json"))?;
        let vulndb = run.outputs.get("vulndb").cloned().unwrap_or(Value::Null);
        let vuln = predicates::vuln_report(&predicates::VulnScanInput {
            gate_id: self.config.identity.clone(),
            run_id: run.id.clone(),
            scanner_uri: "https://airlock.dev/scanner".into(),
            scanner_version: env!("CARGO_PKG_VERSION").into(),
            db_uri: "https://osv.dev".into(),
            db_version: vulndb
                .get("newest_modified")
                .or_else(|| vulndb.get("imported_at"))
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string(),
            result: run.outputs.get("findings").cloned().unwrap_or(json!([])),
            started_on: now.clone(),
            finished_on: now.clone(),
        });
        let decision = run.outputs.get("decision").cloned().unwrap_or(Value::Null);
        let decision_predicate =
            predicates::policy_decision(&decision, &self.config.identity, &run.id);
        // Waived vulnerabilities as OpenVEX, so VEX-aware scanners honour the gate's waivers too.
        let vex = predicates::openvex(
            &decision,
            &docker_reference,
            &digest,
            &self.config.identity,
            &now,
        );
        let subject = docker_reference.clone();
        let mut predicates_to_sign = vec![
            (predicates::SLSA_PROVENANCE_V1, provenance),
            (predicates::CYCLONEDX, sbom),
            (predicates::VULN, vuln),
            (predicates::POLICY_DECISION, decision_predicate),
        ];
        if let Some(vex) = vex {
            predicates_to_sign.push((predicates::OPENVEX, vex));
        }
        let mut envelopes = Vec::with_capacity(predicates_to_sign.len());
        for (kind, predicate) in predicates_to_sign {
            let statement = airlock_sign::statement(&subject, &digest, kind, predicate);
            envelopes.push(airlock_sign::sign_envelope(&statement, &self.key));
        }
        airlock_sign::attach_attestations(&staging, &digest, &envelopes)
            .await
            .map_err(fail("attaching attestations"))?;

        let sequence = run
            .outputs
            .get("release_sequence")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let manifests: BTreeMap<String, BTreeMap<String, String>> =
            serde_json::from_value(run.outputs.get("manifests").cloned().unwrap_or(json!({})))
                .map_err(fail("reading rendered manifests"))?;
        let release = ReleaseConfig {
            app: run.app.clone(),
            team: run.team.clone(),
            sequence,
            commit: run.commit.clone(),
            source: run.repository.clone(),
            image: ReleaseImage {
                repository: docker_reference.clone(),
                digest: digest.clone(),
            },
            created: now,
            environments: manifests.keys().cloned().collect(),
            run_id: run.id.clone(),
        };
        let release_digest = airlock_sign::publish_release(
            &staging,
            &docker_reference,
            &release,
            &manifests,
            &self.key,
        )
        .await
        .map_err(fail("signing the release"))?;
        let release_tag = airlock_sign::release_tag(sequence);
        let detail = format!(
            "image, {} attestations and release {sequence} signed by {}",
            envelopes.len(),
            self.key.public_key().key_id()
        );
        Ok((
            json!({ "release": { "sequence": sequence, "digest": release_digest.to_string(),
                                 "reference": format!("{docker_reference}:{release_tag}") } }),
            Some(detail),
        ))
    }

    async fn publish(&self, run: &RunRecord) -> StepResult {
        let staging = OciLayout::open(&self.run_dir(&run.id).join("staging"))
            .map_err(fail("opening staging"))?;
        let root = LayoutRoot::open_or_create(&self.config.boundary_dir())
            .map_err(fail("opening the boundary"))?;
        let boundary = root
            .repo(&run.app)
            .map_err(fail("opening the app's boundary repository"))?;
        let tags = staging
            .list_tags()
            .await
            .map_err(fail("listing staged tags"))?;
        // The agent looks only at release tags, so those go last: nobody sees a release before its parts.
        let (releases, parts): (Vec<_>, Vec<_>) =
            tags.into_iter().partition(|t| t.starts_with("release-"));
        for tag in parts.iter().chain(releases.iter()) {
            airlock_oci::copy_image(&staging, &boundary, tag, Some(tag))
                .await
                .map_err(|e| {
                    Stop::Failed(format!("publishing {tag} to {}: {e}", boundary.describe()))
                })?;
        }
        let detail = format!(
            "{} tags to {}",
            parts.len() + releases.len(),
            boundary.describe()
        );
        Ok((json!({ "published_to": boundary.describe() }), Some(detail)))
    }
}

fn short(s: &str) -> &str {
    let s = s.strip_prefix("sha256:").unwrap_or(s);
    &s[..s.len().min(12)]
}

/// The tag an app image gets at the boundary: the commit when it is one, else the run.
fn image_tag(commit: &str, run_id: &str) -> String {
    if commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()) {
        format!("git-{}", &commit[..commit.len().min(12)])
    } else {
        format!("run-{run_id}")
    }
}

fn write_json(path: &Path, value: &Value) -> Result<(), Stop> {
    let text = serde_json::to_vec_pretty(value).map_err(fail("encoding JSON"))?;
    std::fs::write(path, text).map_err(|e| Stop::Failed(format!("writing {}: {e}", path.display())))
}

fn read_json(path: &Path) -> Result<Value, Stop> {
    let text = std::fs::read(path)
        .map_err(|e| Stop::Failed(format!("reading {}: {e}", path.display())))?;
    serde_json::from_slice(&text)
        .map_err(|e| Stop::Failed(format!("parsing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tag_names_commit_or_run() {
        assert_eq!(image_tag("0123456789abcdef0123", "r1"), "git-0123456789ab");
        assert_eq!(image_tag("local", "r1"), "run-r1");
    }
}
