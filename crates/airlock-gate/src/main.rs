//! `airlock-gate`: the service and its operator commands.

use airlock_gate::{config::GateConfig, demo, init, server};

mod cmd_keys;
mod cmd_policy;
mod cmd_scan;
mod cmd_vulndb;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod cmd_image;

#[derive(Parser)]
#[command(
    name = "airlock-gate",
    version,
    about = "The airlock gate: build, scan, gate, sign and publish commits across the boundary"
)]
struct Cli {
    /// Log as JSON lines (for log collectors) instead of text.
    #[arg(long, global = true, env = "AIRLOCK_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one commit of examples/hello through every stage to a verified deploy, on embedded defaults.
    Demo {
        /// Keep the store, boundary, keys and agent target here (default: a fresh temporary directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The app directory to submit.
        #[arg(long)]
        app: Option<PathBuf>,
        /// Directory of OSV export zips to import (default: ../shared/vulndb beside the repository).
        #[arg(long)]
        vulndb: Option<PathBuf>,
    },
    /// Serve the HTTP API and run the pipeline worker.
    Serve {
        /// The platform config file.
        #[arg(long, env = "AIRLOCK_CONFIG")]
        config: PathBuf,
    },
    /// Create a data directory with embedded defaults (dev keys, static base, vulndb, a team token, gate.toml).
    Init {
        #[arg(long)]
        data_dir: PathBuf,
        /// Directory of OSV export zips to import.
        #[arg(long)]
        vulndb: Option<PathBuf>,
    },
    /// Signing keys.
    #[command(subcommand)]
    Keys(cmd_keys::KeysCommand),
    /// Revoke an image or release digest: publish a signed revocation list that every agent honours.
    Revoke(cmd_keys::RevokeArgs),
    /// Make a new team API token: prints the token once and the hash to put in the config.
    Token,
    /// Scan an image or root filesystem: SBOM and known vulnerabilities (exit 3 with --fail-on).
    Scan(cmd_scan::ScanArgs),
    /// The vulnerability database: import OSV data, show its status.
    #[command(subcommand)]
    Vulndb(cmd_scan::VulnDbCommand),
    /// Policies: run the Rego unit tests shipped in policies/ (exit 1 when one fails).
    #[command(subcommand)]
    Policy(cmd_policy::PolicyCommand),
    /// Build a source directory exactly as the gate's build step does, print the image digest, write it to
    /// `--to` (`oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker://...`, `docker-daemon:NAME:TAG`).
    Build(airlock_gate::cmd_build::BuildArgs),
    /// The audit log: verify its hash chain, export it as JSON lines.
    #[command(subcommand)]
    Audit(airlock_gate::cmd_audit::AuditCommand),
    /// OCI images: copy between registries, layouts and archives with signatures.
    #[command(subcommand)]
    Image(cmd_image::ImageCommand),
    /// Write releases (with images, signatures, attestations) as one OCI layout archive for an air gap.
    Export(cmd_image::ExportArgs),
    /// Put an app image on a newer base of the same lineage without rebuilding it.
    Rebase(cmd_image::RebaseArgs),
}

fn init_logging(json: bool, quiet: bool) {
    // The demo prints its own progress (including the dev-key notice that init logs); the service logs its
    // pipeline at info.
    let default = if quiet {
        "warn,airlock_gate::init=error"
    } else {
        "warn,airlock_gate=info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo {
            data_dir,
            app,
            vulndb,
        } => {
            let outcome = demo::run(demo::DemoOptions {
                data_dir,
                app_dir: app.unwrap_or_else(demo::default_app_dir),
                vulndb,
            })
            .await?;
            println!("\nEverything is kept in {}", outcome.data_dir.display());
        }
        Command::Serve { config } => {
            let config = GateConfig::load(&config)?;
            init::ensure_keys(&config)?;
            let gate = server::start(config).await?;
            eprintln!("airlock gate listening on http://{}", gate.addr);
            tokio::select! {
                _ = gate.server => {}
                _ = tokio::signal::ctrl_c() => eprintln!("shutting down"),
            }
        }
        Command::Init { data_dir, vulndb } => {
            let done = init::init_data_dir(&data_dir, vulndb.as_deref()).await?;
            println!("config     {}", done.config_path.display());
            match &done.builder {
                Ok(image) => println!("builder    {} (stack rust-static)", image.name),
                Err(reason) => println!("builder    host ({reason})"),
            }
            println!(
                "token      {}   (team demo; shown once, only its hash is stored)",
                done.token
            );
            println!("public key {}", done.config.public_key_path().display());
        }
        Command::Keys(cmd) => cmd_keys::keys(cmd)?,
        Command::Revoke(args) => cmd_keys::revoke(args).await?,
        Command::Token => {
            let token = airlock_gate::auth::generate_token();
            println!("token {token}");
            println!("hash  {}", airlock_gate::auth::hash_token(&token));
        }
        Command::Scan(args) => cmd_scan::scan(args).await?,
        Command::Vulndb(cmd) => cmd_scan::vulndb(cmd).await?,
        Command::Policy(cmd) => cmd_policy::run(cmd)?,
        Command::Audit(cmd) => airlock_gate::cmd_audit::run(cmd).await?,
        Command::Build(args) => airlock_gate::cmd_build::run(args).await?,
        Command::Image(command) => cmd_image::run_image(command).await?,
        Command::Export(args) => cmd_image::run_export(args).await?,
        Command::Rebase(args) => cmd_image::run_rebase(args).await?,
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(
        cli.log_json,
        matches!(cli.command, Command::Demo { .. } | Command::Build(_)),
    );
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<cmd_scan::FailOn>().is_some() {
                return ExitCode::from(cmd_scan::EXIT_FINDINGS);
            }
            ExitCode::FAILURE
        }
    }
}
