//! `airlock-gate demo`: one commit through every stage to a verified deploy, on embedded defaults.
//!
//! It is the same path a real installation takes: a gate on a loopback port, `airlock submit`'s client code over
//! real HTTP, the durable pipeline, and then `airlock-agent`'s sync against the boundary with the gate's public key.

use crate::init::{Initialized, default_vulndb_source, init_data_dir};
use crate::server;
use airlock_cli::api::{RunState, RunView, StepState};
use airlock_cli::client::{GateClient, SubmitMeta};
use anyhow::{Context, bail};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

/// Options of the demo.
pub struct DemoOptions {
    /// Keep everything here; a fresh temporary directory otherwise.
    pub data_dir: Option<PathBuf>,
    /// The app to submit (default: the repository's `examples/hello`).
    pub app_dir: PathBuf,
    /// OSV exports to import (default: `../shared/vulndb` beside the repository).
    pub vulndb: Option<PathBuf>,
}

/// What the demo produced, for tests and the summary.
pub struct DemoOutcome {
    pub data_dir: PathBuf,
    pub run: RunView,
    pub deployed: PathBuf,
}

/// Runs the demo, printing each stage with its duration.
pub async fn run(opts: DemoOptions) -> anyhow::Result<DemoOutcome> {
    let data_dir = match &opts.data_dir {
        Some(d) => d.clone(),
        None => tempfile::Builder::new()
            .prefix("airlock-demo-")
            .tempdir()?
            .keep(),
    };
    println!("airlock demo — data directory {}", data_dir.display());
    let t = Instant::now();
    let vulndb = opts.vulndb.clone().unwrap_or_else(default_vulndb_source);
    let vulndb = vulndb.canonicalize().unwrap_or(vulndb);
    if !vulndb.is_dir() {
        bail!(
            "stage setup: the OSV data is not at {} (pass --vulndb DIR holding OSV export zips)",
            vulndb.display()
        );
    }
    let Initialized {
        mut config,
        token,
        generated_key,
        config_path,
        builder,
    } = init_data_dir(&data_dir, Some(&vulndb))
        .await
        .context("stage setup")?;
    config.policy.dir = None; // the shipped policies of this checkout
    stage(
        "setup",
        t,
        &format!(
            "config {}, vulndb from {}",
            config_path.display(),
            vulndb.display()
        ),
    );
    match &builder {
        Ok(image) if image.created => println!(
            "  made builder image {} from this machine's Rust toolchain",
            image.name
        ),
        Ok(_) => {}
        Err(reason) => println!("  ! no Docker builder: {reason}; the host builder will build"),
    }
    if generated_key {
        println!(
            "  ! generated a development signing key at {}; production brings its own",
            config.key_path().display()
        );
    }

    let t = Instant::now();
    let gate = server::start(config.clone())
        .await
        .context("stage start gate")?;
    let url = format!("http://{}", gate.addr);
    stage(
        "gate",
        t,
        &format!("listening on {url} (SQLite store, OCI layout boundary)"),
    );

    let t = Instant::now();
    let app_dir = opts.app_dir.clone();
    let packed = tokio::task::spawn_blocking(move || airlock_cli::pack::pack_dir(&app_dir))
        .await?
        .with_context(|| format!("stage submit: packing {}", opts.app_dir.display()))?;
    let client = GateClient::new(&url, &token).context("stage submit")?;
    let git = packed.git.clone();
    let meta = SubmitMeta {
        repository: git
            .as_ref()
            .and_then(|g| g.remote.clone())
            .unwrap_or_else(|| format!("file://{}", opts.app_dir.display())),
        commit: git
            .as_ref()
            .map(|g| g.commit.clone())
            .unwrap_or_else(|| "local".into()),
        branch: git
            .as_ref()
            .map(|g| g.branch.clone())
            .unwrap_or_else(|| "main".into()),
        author: std::env::var("USER").unwrap_or_else(|_| "demo".into()),
        app: None,
        commit_time: git.as_ref().and_then(|g| g.commit_time),
    };
    let accepted = client
        .submit(&packed, &meta)
        .await
        .context("stage submit")?;
    stage(
        "submit",
        t,
        &format!("run {} accepted ({} files)", accepted.run_id, packed.files),
    );

    let mut printed = BTreeSet::new();
    let run = client
        .wait(&accepted.run_id, |view| {
            for step in &view.steps {
                if matches!(step.state, StepState::Succeeded | StepState::Failed)
                    && printed.insert(step.name.clone())
                {
                    let mark = if step.state == StepState::Succeeded {
                        " "
                    } else {
                        "x"
                    };
                    println!(
                        "{mark} {:<9} {:>7}  {}",
                        step.name,
                        format_ms(step.duration_ms.unwrap_or(0)),
                        step.detail.as_deref().unwrap_or("")
                    );
                }
            }
        })
        .await
        .context("stage pipeline: following the run")?;
    if run.state != RunState::Published {
        let reason = run
            .error
            .as_ref()
            .map(|e| format!("{}: {}", e.step, e.message))
            .unwrap_or_default();
        bail!(
            "stage {}: the run ended {:?}: {reason}",
            run.error.as_ref().map_or("pipeline", |e| e.step.as_str()),
            run.state
        );
    }

    let t = Instant::now();
    let target = data_dir.join("deploy");
    let trust = airlock_sign::TrustSet::new(vec![
        airlock_sign::PublicKey::load(&config.public_key_path())
            .context("stage agent: loading the public key")?,
    ]);
    let mut sync = airlock_agent::SyncConfig::new(
        airlock_agent::SourceSpec::Layout(config.boundary_dir()),
        trust,
        "staging",
        airlock_agent::TargetSpec::Directory(target.clone()),
    );
    sync.reference_prefix = config.boundary.reference_prefix.clone();
    sync.admission = Some(config.admission_dir());
    let report = airlock_agent::sync_once(&sync)
        .await
        .context("stage agent")?;
    if let Some(refusal) = report.refused.first() {
        bail!(
            "stage agent: release {} refused: {}",
            refusal.reference,
            refusal.reason
        );
    }
    let applied = report
        .applied
        .first()
        .context("stage agent: the agent applied nothing")?;
    stage(
        "agent",
        t,
        &format!(
            "verified release {} and wrote staging manifests",
            applied.sequence
        ),
    );

    let image = run
        .image
        .as_ref()
        .map(|i| i.digest.clone())
        .unwrap_or_default();
    println!();
    println!(
        "published  {}",
        run.image
            .as_ref()
            .map(|i| i.reference.as_str())
            .unwrap_or("")
    );
    println!("image      {image}");
    if let Some(r) = &run.release {
        println!("release    {} (sequence {})", r.reference, r.sequence);
    }
    println!("boundary   {}", config.boundary_dir().display());
    println!("deployed   {}", applied.path.display());
    println!("public key {}", config.public_key_path().display());
    gate.server.abort();
    gate.worker.abort();
    Ok(DemoOutcome {
        data_dir,
        run,
        deployed: applied.path.clone(),
    })
}

fn stage(name: &str, started: Instant, detail: &str) {
    println!(
        "  {name:<9} {:>7}  {detail}",
        format_ms(started.elapsed().as_millis() as u64)
    );
}

fn format_ms(ms: u64) -> String {
    if ms >= 1000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{ms}ms")
    }
}

/// The shipped example app.
pub fn default_app_dir() -> PathBuf {
    crate::config::source_root().join("examples/hello")
}
