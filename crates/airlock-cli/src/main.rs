//! `airlock`: submit a source tree to the gate and follow what it decides.
//!
//! Exit codes: 0 published (or the command succeeded), 1 rejected by policy,
//! 2 failed or cancelled (or the gate could not be reached), 3 usage error.

mod live;

use airlock_cli::api::{RunState, RunView};
use airlock_cli::client::{ClientError, GateClient, SubmitMeta};
use airlock_cli::config::{CliConfig, ConfigError, config_path};
use airlock_cli::git::git_author;
use airlock_cli::pack::{PackedSource, pack_dir};
use airlock_cli::render;
use clap::{Parser, Subcommand};
use sha2::Digest as _;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const EXIT_OK: u8 = 0;
const EXIT_REJECTED: u8 = 1;
const EXIT_FAILED: u8 = 2;
const EXIT_USAGE: u8 = 3;

/// The airlock developer CLI: hand a commit to the gate, see what it decided.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pack DIR (default: the current directory) and submit it to the gate.
    Submit {
        /// Root of the app's source tree.
        dir: Option<PathBuf>,
        /// Return as soon as the gate accepted the submission.
        #[arg(long)]
        no_wait: bool,
        /// Print JSON (the accepted submission, or the final run) instead of text.
        #[arg(long)]
        json: bool,
        /// App name, when it should override the one in airlock.toml.
        #[arg(long)]
        app: Option<String>,
        /// Repository to record (default: the git remote `origin`, else the directory name).
        #[arg(long)]
        repository: Option<String>,
        /// Commit to record (default: git HEAD, else a hash of the tarball).
        #[arg(long)]
        commit: Option<String>,
        /// Branch to record (default: the current git branch, else `local`).
        #[arg(long)]
        branch: Option<String>,
        /// Author to record (default: git user.name and user.email, else $USER).
        #[arg(long)]
        author: Option<String>,
    },
    /// Show one run: state, steps and verdict.
    Status {
        /// Run id.
        run: String,
        /// Print the run as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List recent runs.
    Runs {
        /// Only runs of this app.
        #[arg(long)]
        app: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Explain a run's policy decision: violations, warnings and waivers, in sentences.
    Explain {
        /// Run id.
        run: String,
    },
    /// Show a run's steps; with -f, follow them live (server-sent events) until the run ends.
    Logs {
        /// Run id.
        run: String,
        /// Follow the run until it ends; the exit code is then the run's (0 published, 1 rejected, 2 failed).
        #[arg(short = 'f', long)]
        follow: bool,
        /// Print each event as a JSON line (`{"event": ..., "data": ...}`).
        #[arg(long)]
        json: bool,
    },
    /// Write an airlock.toml for DIR (default: the current directory) from what it contains.
    Init {
        /// Root of the app's source tree.
        dir: Option<PathBuf>,
        /// The team that owns the app.
        #[arg(long)]
        team: String,
        /// Overwrite an existing airlock.toml.
        #[arg(long)]
        force: bool,
    },
    /// Ask the gate to cancel a run.
    Cancel {
        /// Run id.
        run: String,
    },
    /// Store the gate URL and token in the config file (mode 0600).
    Login {
        /// Base URL of the gate, e.g. https://airlock.example.
        #[arg(long)]
        url: String,
        /// Team token; `-` reads it from standard input (keeps it out of the process list).
        #[arg(long)]
        token: String,
    },
}

/// Errors that end the command, with the exit code each maps to.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Pack(#[from] airlock_cli::pack::PackError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot print JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Init(#[from] airlock_cli::init::InitError),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(
                ConfigError::MissingUrl | ConfigError::MissingToken | ConfigError::NoConfigDir,
            )
            | CliError::Usage(_)
            | CliError::Init(
                airlock_cli::init::InitError::Exists(_)
                | airlock_cli::init::InitError::Undetected(_)
                | airlock_cli::init::InitError::BadTeam(_),
            )
            | CliError::Client(ClientError::InvalidUrl { .. } | ClientError::InvalidRunId { .. }) => {
                EXIT_USAGE
            }
            // The gate refused the submission at once (another team's app): a verdict, like a rejected run.
            CliError::Client(ClientError::Api { code, .. }) if code == "wrong_team" => {
                EXIT_REJECTED
            }
            _ => EXIT_FAILED,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_OK
            };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn client() -> Result<GateClient, CliError> {
    let config = CliConfig::load_from(&config_path()?)?.with_env_overrides();
    let (url, token) = config.require()?;
    Ok(GateClient::new(url, token)?)
}

fn exit_for(state: RunState) -> u8 {
    match state {
        RunState::Published => EXIT_OK,
        RunState::Rejected => EXIT_REJECTED,
        _ => EXIT_FAILED,
    }
}

async fn run(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Submit {
            dir,
            no_wait,
            json,
            app,
            repository,
            commit,
            branch,
            author,
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            let overrides = SubmitMeta {
                repository: repository.unwrap_or_default(),
                commit: commit.unwrap_or_default(),
                branch: branch.unwrap_or_default(),
                author: author.unwrap_or_default(),
                app,
                commit_time: None,
            };
            submit(&dir, overrides, no_wait, json).await
        }
        Command::Status { run, json } => {
            let view = client()?.run(&run).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print!("{}", render::status(&view));
            }
            Ok(EXIT_OK)
        }
        Command::Runs { app, json } => {
            let runs = client()?.runs(app.as_deref()).await?;
            if json {
                let list = airlock_cli::api::RunList { runs };
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", render::runs_table(&runs));
            }
            Ok(EXIT_OK)
        }
        Command::Explain { run } => {
            let view = client()?.run(&run).await?;
            print!("{}", render::explain(&view));
            Ok(EXIT_OK)
        }
        Command::Logs { run, follow, json } => logs(&run, follow, json).await,
        Command::Init { dir, team, force } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            let (path, detected) = airlock_cli::init::write(&dir, &team, force)?;
            println!("wrote {} ({})", path.display(), detected.reason);
            println!("check it, commit it, then run `airlock submit`");
            Ok(EXIT_OK)
        }
        Command::Cancel { run } => {
            let view = client()?.cancel(&run).await?;
            if view.state.is_terminal() {
                println!("run {} is {}", view.id, view.state);
            } else {
                println!(
                    "cancel requested for run {} (now {}); the gate stops it before its next step",
                    view.id, view.state
                );
            }
            Ok(EXIT_OK)
        }
        Command::Login { url, token } => {
            let token = if token == "-" {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                line.trim().to_string()
            } else {
                token
            };
            if token.is_empty() {
                return Err(CliError::Usage("the token is empty".into()));
            }
            // Validate the URL the same way every later command will.
            GateClient::new(&url, &token)?;
            let path = config_path()?;
            let mut config = CliConfig::load_from(&path)?;
            config.url = Some(url.trim().trim_end_matches('/').to_string());
            config.token = Some(token);
            config.save_to(&path)?;
            println!("saved gate URL and token to {}", path.display());
            Ok(EXIT_OK)
        }
    }
}

/// `airlock logs [-f] RUN`: the steps so far, or every step event until the run ends.
async fn logs(run: &str, follow: bool, json: bool) -> Result<u8, CliError> {
    let client = client()?;
    if !follow {
        let view = client.run(run).await?;
        if json {
            println!("{}", serde_json::to_string(&view)?);
        } else {
            for step in &view.steps {
                println!("{}", render::step_line(step));
            }
            println!("run {} is {}", view.id, view.state);
        }
        return Ok(EXIT_OK);
    }
    let end = client
        .events(run, |event, data| {
            if json {
                let data = serde_json::from_str::<serde_json::Value>(data)
                    .unwrap_or_else(|_| serde_json::Value::String(data.to_string()));
                println!("{}", serde_json::json!({ "event": event, "data": data }));
                return;
            }
            match event {
                "step" => match serde_json::from_str::<airlock_cli::api::StepView>(data) {
                    Ok(step) => println!("{}", render::step_line(&step)),
                    Err(_) => println!("step {data}"),
                },
                "state" => println!("-- {data}"),
                "end" => {}
                other => println!("{other}: {data}"),
            }
        })
        .await?;
    if !json {
        print!("{}", render::verdict(&end));
    }
    Ok(exit_for(end.state))
}

/// Fills what the developer did not give from git, then from the tree itself.
fn submit_meta(dir: &Path, packed: &PackedSource, overrides: SubmitMeta) -> SubmitMeta {
    let git = packed.git.as_ref();
    let or = |given: String, default: &dyn Fn() -> String| {
        if given.is_empty() { default() } else { given }
    };
    let dir_name = || {
        std::fs::canonicalize(dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "source".into())
    };
    SubmitMeta {
        repository: or(overrides.repository, &|| {
            git.and_then(|g| g.remote.clone())
                .unwrap_or_else(|| format!("local/{}", dir_name()))
        }),
        commit: or(overrides.commit, &|| match git {
            Some(g) => g.commit.clone(),
            None => hex_sha256(&packed.tarball),
        }),
        branch: or(overrides.branch, &|| {
            git.map(|g| g.branch.clone())
                .unwrap_or_else(|| "local".into())
        }),
        author: or(overrides.author, &|| {
            git_author(dir)
                .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
                .unwrap_or_else(|| "unknown".into())
        }),
        app: overrides.app,
        commit_time: git.and_then(|g| g.commit_time),
    }
}

fn hex_sha256(data: &[u8]) -> String {
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn submit(
    dir: &Path,
    overrides: SubmitMeta,
    no_wait: bool,
    json: bool,
) -> Result<u8, CliError> {
    let client = client()?;
    let packed = pack_dir(dir)?;
    let meta = submit_meta(dir, &packed, overrides);
    if !json {
        eprintln!(
            "packed {} files ({} bytes) from {}",
            packed.files,
            packed.tarball.len(),
            dir.display()
        );
        if packed.git.as_ref().is_some_and(|g| g.dirty) {
            eprintln!(
                "warning: the working tree has uncommitted changes; they are submitted as commit {}",
                meta.commit
            );
        }
    }
    let accepted = client.submit(&packed, &meta).await?;
    if no_wait {
        if json {
            println!("{}", serde_json::to_string_pretty(&accepted)?);
        } else {
            println!("accepted run {} ({})", accepted.run_id, accepted.state);
            println!("follow it with `airlock status {}`", accepted.run_id);
        }
        return Ok(EXIT_OK);
    }
    let final_view: RunView = if json {
        client.wait(&accepted.run_id, |_| {}).await?
    } else {
        eprintln!("accepted run {}", accepted.run_id);
        let mut display = live::LiveDisplay::new(std::io::stderr().is_terminal());
        let result = client
            .wait(&accepted.run_id, |view| display.update(view))
            .await;
        display.finish();
        result?
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&final_view)?);
    } else {
        print!("{}", render::verdict(&final_view));
    }
    Ok(exit_for(final_view.state))
}
