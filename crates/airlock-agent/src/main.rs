//! `airlock-agent`: pull signed releases across the boundary, verify and admit
//! them, and apply them to the target.
//!
//! Exit codes of `sync`, `import` and `rollback`: 0 everything admitted was applied, 1 a release was
//! refused, 2 an error stopped it (source unreachable, target unwritable, or a wrong command line).

use airlock_agent::config::{RunConfig, credentials_from_env};
use airlock_agent::server::{Health, Shared, router, run_loop};
use airlock_agent::{
    Agent, Metrics, SourceOptions, SourceSpec, SyncConfig, SyncReport, Target, TargetSpec,
    import_archive, load_trust,
};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const EXIT_OK: u8 = 0;
const EXIT_REFUSED: u8 = 1;
const EXIT_ERROR: u8 = 2;

/// The outer-loop agent of airlock.
#[derive(Debug, Parser)]
#[command(name = "airlock-agent", version, about, long_about = None)]
struct Cli {
    /// Log as JSON lines.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Source, trust and target, as flags.
#[derive(Debug, Args)]
struct Flags {
    /// Where releases come from: oci:DIR, oci-archive:FILE or docker://HOST[:PORT]/PREFIX.
    #[arg(long)]
    source: SourceSpec,
    /// An app to poll (repeatable; required for a registry source, otherwise a filter).
    #[arg(long = "app")]
    apps: Vec<String>,
    /// Talk plain HTTP to the registry (local test registries only).
    #[arg(long)]
    insecure_registry: bool,
    /// A trusted public key (PEM) of the gate; repeat for key rotation.
    #[arg(long = "trust-key", required = true)]
    trust_keys: Vec<PathBuf>,
    /// The environment this agent deploys, e.g. staging.
    #[arg(long)]
    env: String,
    /// Where admitted releases go: directory:DIR, git:REPO[#PATH] or kubernetes[:CONTEXT].
    #[arg(long)]
    target: TargetSpec,
    /// Kubernetes target: seconds a rollout may take before the sync fails.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    rollout_timeout: Option<u64>,
    /// Directory of admission policies (Rego, package airlock.admission).
    #[arg(long)]
    admission: Option<PathBuf>,
    /// Docker-reference prefix the gate signs for.
    #[arg(long, default_value = airlock_agent::sync::DEFAULT_REFERENCE_PREFIX)]
    reference_prefix: String,
    /// Mirror verified images (with signatures and attestations) to HOST/PREFIX/<app> and point the
    /// manifests there, by digest. Credentials: AIRLOCK_AGENT_MIRROR_USERNAME/_PASSWORD, else the
    /// Docker client config's entry for HOST.
    #[arg(long)]
    mirror: Option<String>,
}

impl Flags {
    fn config(self) -> Result<SyncConfig, airlock_agent::AgentError> {
        let trust = load_trust(&self.trust_keys)?;
        let mut target = self.target;
        if let (TargetSpec::Kubernetes(k), Some(secs)) = (&mut target, self.rollout_timeout) {
            k.rollout_timeout = Duration::from_secs(secs);
        }
        let mut cfg = SyncConfig::new(self.source, trust, &self.env, target);
        cfg.admission = self.admission;
        cfg.reference_prefix = self.reference_prefix;
        cfg.mirror = self.mirror;
        cfg.source_options = SourceOptions {
            apps: self.apps,
            insecure: self.insecure_registry,
            credentials: credentials_from_env(),
        };
        Ok(cfg)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify the newest release of every app and apply the admitted ones.
    Sync {
        /// Run one pass and exit (otherwise repeat every --interval seconds).
        #[arg(long)]
        once: bool,
        /// Seconds between passes when not --once.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        interval: u64,
        #[command(flatten)]
        flags: Flags,
    },
    /// Run the reconcile loop of a config file, serving /healthz and /metrics.
    Run {
        /// The config file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Copy an OCI archive (tar or tar.gz of an OCI layout) into an import folder read by `--source oci:DIR`.
    Import {
        /// The archive.
        file: PathBuf,
        /// The import folder (an OCI layout root).
        #[arg(long)]
        into: PathBuf,
    },
    /// Apply an older release on purpose; recorded in the target, and releases up to the one rolled back
    /// from stay out afterwards.
    Rollback {
        /// The app.
        app: String,
        /// The release sequence to go back to.
        #[arg(long = "to")]
        sequence: u64,
        /// Why (recorded).
        #[arg(long, default_value = "manual rollback")]
        reason: String,
        #[command(flatten)]
        flags: Flags,
    },
    /// List what the target runs: app, environment, release, since, last sync, last error.
    Status {
        /// The target: directory:DIR, git:REPO[#PATH] or kubernetes[:CONTEXT].
        #[arg(long)]
        target: TargetSpec,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                EXIT_ERROR
            } else {
                EXIT_OK
            };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    let default_level = if matches!(cli.command, Command::Run { .. }) {
        "info"
    } else {
        "error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    ExitCode::from(runtime.block_on(run(cli.command)))
}

async fn run(command: Command) -> u8 {
    match command {
        Command::Sync {
            once,
            interval,
            flags,
        } => {
            let (env, mut agent) = match open_agent(flags) {
                Ok(opened) => opened,
                Err(code) => return code,
            };
            loop {
                let code = match agent.sync().await {
                    Ok(report) => {
                        print_report(&env, &report);
                        report.exit_code()
                    }
                    Err(err) => fail(err),
                };
                if once {
                    return code;
                }
                tokio::time::sleep(Duration::from_secs(interval)).await;
            }
        }
        Command::Run { config } => {
            let config = match RunConfig::load(&config) {
                Ok(c) => c,
                Err(err) => return fail(err),
            };
            let shared = Shared {
                metrics: Arc::new(Metrics::default()),
                health: Arc::new(Mutex::new(Health::default())),
            };
            if let Some(addr) = config.listen {
                let listener = match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => l,
                    Err(err) => {
                        eprintln!("error: cannot listen on {addr}: {err}");
                        return EXIT_ERROR;
                    }
                };
                let app = router(shared.clone());
                tokio::spawn(async move {
                    if let Err(err) = axum::serve(listener, app).await {
                        tracing::error!(error = %err, "the metrics server stopped");
                    }
                });
                tracing::info!(%addr, "serving /healthz and /metrics");
            }
            let result = run_loop(&config, shared, None, |env, result| match result {
                Ok(report) => print_report(env, report),
                Err(err) => tracing::error!(env, error = %err, "sync failed"),
            })
            .await;
            match result {
                Ok(()) => EXIT_OK,
                Err(err) => fail(err),
            }
        }
        Command::Import { file, into } => match import_archive(&file, &into).await {
            Ok(apps) => {
                println!(
                    "imported {} into {} ({})",
                    file.display(),
                    into.display(),
                    if apps.is_empty() {
                        "no apps".to_string()
                    } else {
                        apps.join(", ")
                    }
                );
                EXIT_OK
            }
            Err(err) => fail(err),
        },
        Command::Rollback {
            app,
            sequence,
            reason,
            flags,
        } => {
            let (env, mut agent) = match open_agent(flags) {
                Ok(opened) => opened,
                Err(code) => return code,
            };
            match agent.rollback(&app, sequence, &reason).await {
                Ok(applied) => {
                    println!(
                        "rolled back {app} in {env} to release {} (image {}) at {}",
                        applied.sequence,
                        applied.image_digest,
                        applied.path.display()
                    );
                    EXIT_OK
                }
                Err(err @ airlock_agent::AgentError::Rollback { .. }) => {
                    eprintln!("refused: {err}");
                    EXIT_REFUSED
                }
                Err(err) => fail(err),
            }
        }
        Command::Status { target } => status(&Target::open(&target), &target).await,
    }
}

/// The agent the flags describe and its environment's name, or the exit code of the (printed) error.
fn open_agent(flags: Flags) -> Result<(String, Agent), u8> {
    let cfg = flags.config().map_err(fail)?;
    let env = cfg.env.clone();
    let agent = Agent::new(cfg, Arc::new(Metrics::default())).map_err(fail)?;
    Ok((env, agent))
}

fn fail(err: impl std::fmt::Display) -> u8 {
    eprintln!("error: {err}");
    EXIT_ERROR
}

async fn status(target: &Target, spec: &TargetSpec) -> u8 {
    let list = match target.list().await {
        Ok(list) => list,
        Err(err) => return fail(err),
    };
    let mut rows: Vec<[String; 6]> = Vec::new();
    let mut envs_with_rows = std::collections::BTreeSet::new();
    for (env, record) in &list {
        let st = target.read_status(env);
        let app_st = st.apps.get(&record.app).cloned().unwrap_or_default();
        let mut release = record.sequence.to_string();
        if let Some(rb) = &record.rollback {
            release.push_str(&format!(" (rolled back from {})", rb.from));
        }
        let note = app_st
            .last_error
            .or(app_st.waiting.map(|w| format!("waiting: {w}")))
            .or(st.last_error.clone())
            .unwrap_or_else(|| "-".into());
        rows.push([
            record.app.clone(),
            env.clone(),
            release,
            record.applied_at.clone(),
            st.last_sync.clone().unwrap_or_else(|| "-".into()),
            note,
        ]);
        envs_with_rows.insert(env.clone());
    }
    // Apps refused or failing before anything was applied still show up.
    for env in target.status_envs() {
        let st = target.read_status(&env);
        for (app, app_st) in &st.apps {
            if list.iter().any(|(e, r)| e == &env && &r.app == app) {
                continue;
            }
            let note = app_st
                .last_error
                .clone()
                .or(app_st.waiting.clone().map(|w| format!("waiting: {w}")));
            if let Some(note) = note {
                rows.push([
                    app.clone(),
                    env.clone(),
                    "-".into(),
                    "-".into(),
                    st.last_sync.clone().unwrap_or_default(),
                    note,
                ]);
            }
        }
        if let (Some(err), false) = (&st.last_error, envs_with_rows.contains(&env)) {
            rows.push([
                "-".into(),
                env.clone(),
                "-".into(),
                "-".into(),
                st.last_sync.clone().unwrap_or_default(),
                err.clone(),
            ]);
        }
    }
    if rows.is_empty() {
        println!("nothing applied in {spec}");
        return EXIT_OK;
    }
    let header = ["APP", "ENV", "RELEASE", "SINCE", "LAST SYNC", "LAST ERROR"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()).take(5) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 6]| {
        format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {:<w4$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4]
        )
    };
    println!("{}", line(header));
    for row in &rows {
        println!(
            "{}",
            line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]])
        );
    }
    print_rescans(target);
    EXIT_OK
}

/// The vulnerability database each environment rescans with and the new findings of what runs there.
fn print_rescans(target: &Target) {
    for env in target.status_envs() {
        let st = target.read_status(&env);
        if let Some(db) = &st.vulndb {
            println!(
                "\nvulnerability database of {env}: {} (newest record {}){}",
                db.digest.as_deref().unwrap_or("none verified yet"),
                db.newest_modified.as_deref().unwrap_or("unknown"),
                db.last_error
                    .as_deref()
                    .map(|e| format!("; {e}"))
                    .unwrap_or_default()
            );
        }
        for (app, app_st) in &st.apps {
            for f in &app_st.new_findings {
                println!(
                    "  NEW {app} in {env} (release {}): {} {} {} {}{}",
                    f.sequence,
                    f.severity,
                    f.id,
                    f.package,
                    f.installed,
                    f.fixed
                        .as_deref()
                        .map(|v| format!(", fixed in {v}"))
                        .unwrap_or_default()
                );
            }
        }
    }
}

fn print_report(env: &str, report: &SyncReport) {
    for a in &report.applied {
        println!(
            "applied   {} release {} to {env} (image {}) at {}{}",
            a.app,
            a.sequence,
            a.image_digest,
            a.path.display(),
            a.commit
                .as_ref()
                .map(|c| format!(" (commit {c})"))
                .unwrap_or_default()
        );
    }
    for c in &report.corrected {
        println!(
            "corrected {} release {} in {env}: drift {}",
            c.app, c.sequence, c.drift
        );
    }
    for app in &report.unchanged {
        println!("unchanged {app}: its newest release is already applied to {env}");
    }
    for w in &report.waiting {
        println!(
            "waiting   {} release {} for {env}: {}",
            w.app, w.sequence, w.reason
        );
    }
    for r in &report.refused {
        println!("refused   {} ({}): {}", r.app, r.reference, r.reason);
    }
    for f in &report.failed {
        println!("failed    {} in {env}: {}", f.app, f.error);
    }
    if report.applied.is_empty()
        && report.unchanged.is_empty()
        && report.refused.is_empty()
        && report.failed.is_empty()
        && report.waiting.is_empty()
    {
        println!("no releases found");
    }
}
