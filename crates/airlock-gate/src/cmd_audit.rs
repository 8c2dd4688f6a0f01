//! `airlock-gate audit verify|export`: check the audit log's hash chain, or write it out as JSON lines.

use crate::audit::verify_chain;
use crate::config::GateConfig;
use crate::store::Store;
use anyhow::Context;
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;

/// Audit log commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of the whole audit log; exits 1 naming the first entry that was edited or removed.
    Verify {
        /// The platform config file (for the database URL).
        #[arg(long, env = "AIRLOCK_CONFIG")]
        config: PathBuf,
    },
    /// Write audit entries as JSON lines (one entry per line, oldest first), verifying the chain on the way.
    Export {
        /// The platform config file (for the database URL).
        #[arg(long, env = "AIRLOCK_CONFIG")]
        config: PathBuf,
        /// Only entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Entries read from the store per page.
const PAGE: i64 = 1000;

/// Runs an audit command; a broken chain is an error whose message names the entry.
pub async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify { config } => {
            let store = open(&config).await?;
            let (count, head) = walk(&store, 0, |_| Ok(())).await?;
            match head {
                Some((seq, hash)) => {
                    println!("audit log intact: {count} entries, last {seq} with hash {hash}")
                }
                None => println!("audit log intact: no entries yet"),
            }
        }
        AuditCommand::Export { config, after, out } => {
            let store = open(&config).await?;
            let mut sink: Box<dyn Write> = match &out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let (count, _) = walk(&store, after, |line| {
                sink.write_all(line.as_bytes())?;
                sink.write_all(b"\n")?;
                Ok(())
            })
            .await?;
            sink.flush().context("writing the export")?;
            if let Some(path) = out {
                eprintln!("wrote {count} audit entries to {}", path.display());
            }
        }
    }
    Ok(())
}

async fn open(config: &std::path::Path) -> anyhow::Result<Store> {
    let config = GateConfig::load(config)?;
    Store::connect(&config.database_url())
        .await
        .context("opening the gate's store")
}

/// Reads entries page by page after `after`, verifying the chain (from the start of the log, so an export of a
/// tail is still checked against everything before it), handing each entry's JSON line to `each`.
async fn walk(
    store: &Store,
    after: i64,
    mut each: impl FnMut(&str) -> std::io::Result<()>,
) -> anyhow::Result<(u64, Option<(i64, String)>)> {
    let mut cursor = 0;
    let mut head = None;
    let mut count = 0u64;
    loop {
        let page = store.audit_entries(cursor, PAGE).await?;
        if page.is_empty() {
            break;
        }
        head = verify_chain(&page, head).context("the audit log's hash chain is broken")?;
        for r in page.iter().filter(|r| r.seq > after) {
            each(&serde_json::to_string(r)?).context("writing the export")?;
            count += 1;
        }
        cursor = page.last().map(|r| r.seq).unwrap_or(cursor);
    }
    Ok((count, head))
}
