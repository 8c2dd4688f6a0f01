//! `airlock-agent`: pull signed releases across the boundary, verify and admit
//! them, and apply them to the target.
//!
//! Exit codes of `sync`: 0 nothing refused, 1 a release was refused, 2 an
//! error stopped the sync (or the command line was wrong).

use airlock_agent::{
    DirectoryTarget, SourceSpec, SyncConfig, SyncReport, TargetSpec, load_trust, sync_once,
};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXIT_OK: u8 = 0;
const EXIT_REFUSED: u8 = 1;
const EXIT_ERROR: u8 = 2;

/// The outer-loop agent of airlock.
#[derive(Debug, Parser)]
#[command(name = "airlock-agent", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
        /// Where releases come from: oci:DIR.
        #[arg(long)]
        source: SourceSpec,
        /// A trusted public key (PEM) of the gate; repeat for key rotation.
        #[arg(long = "trust-key", required = true)]
        trust_keys: Vec<PathBuf>,
        /// The environment this agent deploys, e.g. staging.
        #[arg(long)]
        env: String,
        /// Where admitted releases go: directory:DIR.
        #[arg(long)]
        target: TargetSpec,
        /// Directory of admission policies (Rego, package airlock.admission).
        #[arg(long)]
        admission: Option<PathBuf>,
        /// Docker-reference prefix the gate signs for.
        #[arg(long, default_value = airlock_agent::sync::DEFAULT_REFERENCE_PREFIX)]
        reference_prefix: String,
    },
    /// List what the target runs: app, environment, sequence, since when.
    Status {
        /// The target: directory:DIR.
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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
    ExitCode::from(runtime.block_on(run(cli)))
}

async fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Sync {
            once,
            interval,
            source,
            trust_keys,
            env,
            target,
            admission,
            reference_prefix,
        } => {
            let trust = match load_trust(&trust_keys) {
                Ok(trust) => trust,
                Err(err) => {
                    eprintln!("error: {err}");
                    return EXIT_ERROR;
                }
            };
            let cfg = SyncConfig {
                source,
                reference_prefix,
                trust,
                env,
                target,
                admission,
            };
            loop {
                let code = match sync_once(&cfg).await {
                    Ok(report) => {
                        print_report(&cfg.env, &report);
                        if report.refused.is_empty() {
                            EXIT_OK
                        } else {
                            EXIT_REFUSED
                        }
                    }
                    Err(err) => {
                        eprintln!("error: {err}");
                        EXIT_ERROR
                    }
                };
                if once {
                    return code;
                }
                tokio::time::sleep(Duration::from_secs(interval)).await;
            }
        }
        Command::Status { target } => {
            let TargetSpec::Directory(dir) = target;
            match DirectoryTarget::new(&dir).list() {
                Ok(list) if list.is_empty() => {
                    println!("nothing applied in {}", dir.display());
                    EXIT_OK
                }
                Ok(list) => {
                    let app_width = list
                        .iter()
                        .map(|(_, r)| r.app.len())
                        .max()
                        .unwrap_or(3)
                        .max(3);
                    let env_width = list.iter().map(|(e, _)| e.len()).max().unwrap_or(3).max(3);
                    println!(
                        "{:<app_width$}  {:<env_width$}  {:>8}  {:<20}  IMAGE",
                        "APP", "ENV", "SEQUENCE", "SINCE"
                    );
                    for (env, record) in list {
                        println!(
                            "{:<app_width$}  {:<env_width$}  {:>8}  {:<20}  {}",
                            record.app,
                            env,
                            record.sequence,
                            record.applied_at,
                            record.image_digest
                        );
                    }
                    EXIT_OK
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    EXIT_ERROR
                }
            }
        }
    }
}

fn print_report(env: &str, report: &SyncReport) {
    for a in &report.applied {
        println!(
            "applied   {} release {} to {env} (image {}) at {}",
            a.app,
            a.sequence,
            a.image_digest,
            a.path.display()
        );
    }
    for app in &report.unchanged {
        println!("unchanged {app}: its newest release is already applied to {env}");
    }
    for r in &report.refused {
        println!("refused   {} ({}): {}", r.app, r.reference, r.reason);
    }
    if report.applied.is_empty() && report.unchanged.is_empty() && report.refused.is_empty() {
        println!("no releases found");
    }
}
