//! `airlock-gate`: the service and its operator commands.

use airlock_gate::{config::GateConfig, demo, init, server};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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
    Keys(KeysCommand),
    /// Make a new team API token: prints the token once and the hash to put in the config.
    Token,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate an ECDSA P-256 key pair (PKCS#8 PEM private key, mode 0600, and OUT.pub).
    Generate {
        /// Path of the private key to write.
        #[arg(long)]
        out: PathBuf,
    },
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
        Command::Keys(KeysCommand::Generate { out }) => {
            let key = airlock_sign::SigningKey::generate();
            init::write_key_pair(&out, &key)?;
            println!("private key {} (mode 0600)", out.display());
            println!("public key  {}", out.with_extension("pub").display());
            println!("key id      {}", key.public_key().key_id());
        }
        Command::Token => {
            let token = airlock_gate::auth::generate_token();
            println!("token {token}");
            println!("hash  {}", airlock_gate::auth::hash_token(&token));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json, matches!(cli.command, Command::Demo { .. }));
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
            ExitCode::FAILURE
        }
    }
}
