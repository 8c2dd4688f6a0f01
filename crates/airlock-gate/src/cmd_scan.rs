//! `airlock-gate scan REF` and `airlock-gate vulndb import|status|publish` (publish is in `cmd_vulndb.rs`):
//! the scanner on its own, outside a pipeline run, so a developer or an operator can see what the gate
//! would find in an image.
//!
//! `REF` uses skopeo's transport syntax as `airlock-oci` parses it ([`airlock_oci::ImageRef`]:
//! `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker://HOST/REPO[:TAG|@DIGEST]`), or is a plain
//! directory holding either an OCI image layout or a root filesystem. The database defaults to the gate's (`[vulndb] dir` of the config, else
//! `DATA/vulndb`), and `--db DIR` chooses another.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use airlock_scan::{Finding, Report, Severity, VulnDb};
use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

/// Exit code of `scan` when a finding is at or above `--fail-on` (1 is an error, 2 a usage error).
pub const EXIT_FINDINGS: u8 = 3;

/// Returned (as an error, so `main` can pick the exit code) when `--fail-on` is crossed.
#[derive(Debug, thiserror::Error)]
#[error("{count} finding(s) at or above severity {threshold}")]
pub struct FailOn {
    /// How many findings crossed the threshold.
    pub count: usize,
    /// The threshold given.
    pub threshold: String,
}

/// Where the vulnerability database is: `--db`, else the gate's config, else the data directory.
#[derive(Args, Debug, Clone)]
pub struct DbArgs {
    /// Directory of the indexed OSV database (default: the gate config's `[vulndb] dir`, else
    /// `DATA/vulndb` with DATA from `AIRLOCK_DATA_DIR` or `~/.local/share/airlock`).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// The gate's platform config, to find its database when `--db` is not given.
    #[arg(long, env = "AIRLOCK_CONFIG")]
    pub config: Option<PathBuf>,
}

impl DbArgs {
    /// The database directory these arguments select.
    fn dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(d) = &self.db {
            return Ok(d.clone());
        }
        if let Some(c) = &self.config {
            let config = airlock_gate::config::GateConfig::load(c)
                .with_context(|| format!("reading the gate config {}", c.display()))?;
            return Ok(config.vulndb_dir());
        }
        if let Some(d) = std::env::var_os("AIRLOCK_DATA_DIR") {
            return Ok(PathBuf::from(d).join("vulndb"));
        }
        let home = std::env::var_os("HOME")
            .context("no --db, no --config, no AIRLOCK_DATA_DIR and no HOME: pass --db DIR")?;
        Ok(PathBuf::from(home).join(".local/share/airlock/vulndb"))
    }

    fn open(&self) -> anyhow::Result<VulnDb> {
        let dir = self.dir()?;
        VulnDb::open(&dir)
            .with_context(|| format!("opening the vulnerability database {}", dir.display()))
    }
}

/// Output formats of `scan`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table of findings for people.
    Table,
    /// The whole report (inventory, findings, database status) as JSON.
    Json,
    /// A CycloneDX 1.6 JSON SBOM.
    Cyclonedx,
    /// An SPDX 2.3 JSON SBOM.
    Spdx,
}

/// Severity thresholds for `--fail-on`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Threshold {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Threshold {
    fn severity(self) -> Severity {
        match self {
            Threshold::Unknown => Severity::Unknown,
            Threshold::Low => Severity::Low,
            Threshold::Medium => Severity::Medium,
            Threshold::High => Severity::High,
            Threshold::Critical => Severity::Critical,
        }
    }
}

/// `airlock-gate scan REF`.
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// What to scan: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker://HOST/REPO[:TAG|@DIGEST]`,
    /// or a directory (an OCI image layout, or a root filesystem).
    pub reference: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Exit with code 3 when any finding is at or above this severity.
    #[arg(long, value_enum)]
    pub fail_on: Option<Threshold>,
    /// Write the output to this file (atomically) instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Use plain HTTP for a `docker://` registry (a local test registry).
    #[arg(long)]
    pub insecure: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

/// `airlock-gate vulndb ...`.
#[derive(Subcommand, Debug)]
pub enum VulnDbCommand {
    /// Import OSV data: export zips (one `<ID>.json` per record) or directories of OSV JSON files.
    /// A record already present is replaced only by a newer `modified` time.
    Import {
        /// Zips or directories to import, in order. With `--config`, the database is published across
        /// the gate's boundary afterwards (as `vulndb publish` does).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Publish the database across the boundary as a signed OCI artifact
    /// (`<boundary>/airlock.vulndb:vulndb`) for agents to rescan what they run.
    Publish {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Records per ecosystem, the newest `modified` time and the database's age.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// What `REF` names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// An image in a store, in skopeo's transport syntax (parsed by `airlock-oci`).
    Image(airlock_oci::ImageRef),
    /// A root filesystem in a directory.
    RootFs(PathBuf),
}

/// Transports [`airlock_oci::ImageRef`] reads; anything else is a directory path.
const TRANSPORTS: [&str; 4] = ["docker://", "oci:", "oci-archive:", "docker-daemon:"];

/// Parses `REF`: a transport reference, or a directory holding an OCI layout or a root filesystem.
fn parse_ref(reference: &str) -> anyhow::Result<Target> {
    let path = Path::new(reference);
    if TRANSPORTS.iter().any(|t| reference.starts_with(t)) || !path.exists() {
        return airlock_oci::ImageRef::parse(reference)
            .map(Target::Image)
            .map_err(|e| {
                anyhow::anyhow!("{e} (or name a directory holding a root filesystem or OCI layout)")
            });
    }
    if !path.is_dir() {
        bail!("{reference}: not a directory (for an OCI archive write oci-archive:{reference})");
    }
    if path.join("oci-layout").is_file() {
        return Ok(Target::Image(airlock_oci::ImageRef::Layout {
            dir: path.to_path_buf(),
            tag: None,
        }));
    }
    Ok(Target::RootFs(path.to_path_buf()))
}

/// Runs `airlock-gate scan`.
pub async fn scan(args: ScanArgs) -> anyhow::Result<()> {
    let db = args.db.open()?;
    let status = db.status().context("reading the vulnerability database")?;
    if status.per_ecosystem.is_empty() {
        if args.fail_on.is_some() {
            bail!(
                "the vulnerability database {} is empty, so --fail-on cannot decide anything \
                 (import OSV data with `airlock-gate vulndb import`)",
                db.dir().display()
            );
        }
        eprintln!(
            "warning: the vulnerability database {} is empty: no vulnerability can be found \
             (import OSV data with `airlock-gate vulndb import`)",
            db.dir().display()
        );
    }
    let target = parse_ref(&args.reference)?;
    let (subject, report) = match target {
        Target::Image(image) => {
            let mut options = airlock_oci::OpenOptions::default();
            if args.insecure
                && let airlock_oci::ImageRef::Registry { host, .. } = &image
            {
                options.insecure_hosts.push(host.clone());
            }
            let (opened, reference) = image
                .open_source(&options)
                .with_context(|| format!("opening {}", args.reference))?;
            let report = airlock_scan::scan_image(opened.store(), &reference, &db)
                .await
                .with_context(|| format!("scanning {}", args.reference))?;
            (args.reference.clone(), report)
        }
        Target::RootFs(dir) => {
            let db = db.clone();
            let root = dir.clone();
            let report = tokio::task::spawn_blocking(move || airlock_scan::scan_dir(&root, &db))
                .await
                .context("the directory scan task failed")?
                .with_context(|| format!("scanning the directory {}", dir.display()))?;
            (dir.display().to_string(), report)
        }
    };
    for w in &report.inventory.warnings {
        eprintln!("warning: {w}");
    }
    let out = match args.format {
        Format::Table => table(&subject, &report),
        Format::Json => pretty(&serde_json::to_value(&report)?)?,
        Format::Cyclonedx => pretty(&airlock_scan::cyclonedx(
            &report.inventory,
            &subject,
            &report.image_digest,
        ))?,
        Format::Spdx => pretty(&airlock_scan::spdx(
            &report.inventory,
            &subject,
            &report.image_digest,
        ))?,
    };
    match &args.output {
        Some(path) => write_atomic(path, out.as_bytes())?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
                .context("writing to standard output")?;
        }
    }
    if let Some(t) = args.fail_on {
        let count = report
            .findings
            .iter()
            .filter(|f| f.severity >= t.severity())
            .count();
        if count > 0 {
            return Err(FailOn {
                count,
                threshold: format!("{t:?}").to_lowercase(),
            }
            .into());
        }
    }
    Ok(())
}

fn pretty(v: &serde_json::Value) -> anyhow::Result<String> {
    let mut s = serde_json::to_string_pretty(v).context("serialising the output")?;
    s.push('\n');
    Ok(s)
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so a reader never sees
/// half a document.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// A duration in the largest whole unit that fits (for "database age").
fn human_age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 2 * 3_600 => format!("{} hours", s / 3_600),
        s if s >= 120 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Unknown => "UNKNOWN",
        Severity::Low => "LOW",
        Severity::Medium => "MEDIUM",
        Severity::High => "HIGH",
        Severity::Critical => "CRITICAL",
    }
}

/// The human-readable report: what was scanned, the database's age, a table of findings.
fn table(subject: &str, report: &Report) -> String {
    let mut out = String::new();
    let digest = if report.image_digest.is_empty() {
        String::new()
    } else {
        format!(" ({})", report.image_digest)
    };
    out.push_str(&format!("{subject}{digest}\n"));
    if let Some(os) = &report.inventory.os {
        out.push_str(&format!(
            "os        {}\n",
            os.pretty_name.clone().unwrap_or_else(|| format!(
                "{} {}",
                os.id,
                os.version_id.as_deref().unwrap_or("")
            ))
        ));
    }
    let mut per_eco: BTreeMap<String, usize> = BTreeMap::new();
    for p in &report.inventory.packages {
        *per_eco
            .entry(p.ecosystem.osv_name(p.distro.as_deref()))
            .or_default() += 1;
    }
    let ecos: Vec<String> = per_eco.iter().map(|(e, n)| format!("{e} {n}")).collect();
    out.push_str(&format!(
        "packages  {} ({})\n",
        report.inventory.packages.len(),
        ecos.join(", ")
    ));
    let age = report
        .db_age_seconds
        .map(|a| format!(", data {} old", human_age(a)))
        .unwrap_or_default();
    let records: u64 = report.db.per_ecosystem.values().sum();
    out.push_str(&format!(
        "database  {records} records, newest modified {}{age}\n",
        report.db.newest_modified.as_deref().unwrap_or("never")
    ));
    if !report.inventory.warnings.is_empty() {
        out.push_str(&format!(
            "warnings  {} (on standard error)\n",
            report.inventory.warnings.len()
        ));
    }
    out.push('\n');
    if report.findings.is_empty() {
        out.push_str("no known vulnerabilities\n");
        return out;
    }
    let rows: Vec<[String; 6]> = report.findings.iter().map(row).collect();
    let header = [
        "SEVERITY",
        "ID",
        "PACKAGE",
        "INSTALLED",
        "FIXED IN",
        "ALIASES",
    ]
    .map(String::from);
    let mut widths = [0usize; 6];
    for r in std::iter::once(&header).chain(rows.iter()) {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        for (i, (w, c)) in widths.iter().zip(r.iter()).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let mut counts: BTreeMap<Severity, usize> = BTreeMap::new();
    for f in &report.findings {
        *counts.entry(f.severity).or_default() += 1;
    }
    let summary: Vec<String> = counts
        .iter()
        .rev()
        .map(|(s, n)| format!("{n} {}", severity_label(*s).to_lowercase()))
        .collect();
    out.push_str(&format!(
        "\n{} findings: {}\n",
        report.findings.len(),
        summary.join(", ")
    ));
    out
}

fn row(f: &Finding) -> [String; 6] {
    let score = f.cvss_score.map(|s| format!(" {s:.1}")).unwrap_or_default();
    [
        format!("{}{score}", severity_label(f.severity)),
        f.id.clone(),
        format!("{} ({})", f.package, f.ecosystem),
        f.installed.clone(),
        f.fixed.clone().unwrap_or_else(|| "-".into()),
        f.aliases.join(" "),
    ]
}

/// Runs `airlock-gate vulndb ...`.
pub async fn vulndb(cmd: VulnDbCommand) -> anyhow::Result<()> {
    match cmd {
        VulnDbCommand::Import { paths, db: args } => {
            let db = args.open()?;
            for path in paths {
                let d = db.clone();
                let p = path.clone();
                let stats = tokio::task::spawn_blocking(move || d.import(&p))
                    .await
                    .context("the import task failed")?
                    .with_context(|| format!("importing {}", path.display()))?;
                println!(
                    "{}: {} read, {} added, {} updated, {} unchanged, {} skipped",
                    path.display(),
                    stats.read,
                    stats.added,
                    stats.updated,
                    stats.unchanged,
                    stats.skipped
                );
                for p in &stats.problems {
                    eprintln!("warning: {p}");
                }
                if stats.skipped as usize > stats.problems.len() {
                    eprintln!(
                        "warning: {} more problems not listed",
                        stats.skipped as usize - stats.problems.len()
                    );
                }
            }
            print_status(&db, false)?;
            if let Some(config) = &args.config {
                crate::cmd_vulndb::publish(config, &db)
                    .await
                    .context("the import is done, but publishing it across the boundary failed")?;
            }
            Ok(())
        }
        VulnDbCommand::Publish { db: args } => {
            let Some(config) = &args.config else {
                bail!(
                    "publishing needs the gate's config (--config FILE or AIRLOCK_CONFIG): it names the boundary and the signing key"
                );
            };
            let db = args.open()?;
            crate::cmd_vulndb::publish(config, &db).await
        }
        VulnDbCommand::Status { json, db } => {
            let db = db.open()?;
            print_status(&db, json)
        }
    }
}

fn print_status(db: &VulnDb, json: bool) -> anyhow::Result<()> {
    let status = db
        .status()
        .with_context(|| format!("reading the status of {}", db.dir().display()))?;
    let age = status.newest_modified.as_deref().and_then(|m| {
        let m =
            time::OffsetDateTime::parse(m, &time::format_description::well_known::Rfc3339).ok()?;
        Some((time::OffsetDateTime::now_utc() - m).whole_seconds())
    });
    if json {
        let mut v = serde_json::to_value(&status)?;
        v["dir"] = serde_json::json!(db.dir());
        v["age_seconds"] = serde_json::json!(age);
        print!("{}", pretty(&v)?);
        return Ok(());
    }
    println!("database  {}", db.dir().display());
    if status.per_ecosystem.is_empty() {
        println!("empty: import OSV data with `airlock-gate vulndb import PATH...`");
        return Ok(());
    }
    let width = status
        .per_ecosystem
        .keys()
        .map(|k| k.len())
        .max()
        .unwrap_or(0);
    for (eco, n) in &status.per_ecosystem {
        println!("  {eco:<width$}  {n}");
    }
    println!(
        "newest modified  {}{}",
        status.newest_modified.as_deref().unwrap_or("-"),
        age.map(|a| format!(" ({} ago)", human_age(a)))
            .unwrap_or_default()
    );
    println!(
        "last import      {}",
        status.imported_at.as_deref().unwrap_or("-")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transport_references_and_directories() {
        assert!(matches!(
            parse_ref("oci:/tmp/layout:v1").unwrap(),
            Target::Image(airlock_oci::ImageRef::Layout { tag: Some(t), .. }) if t == "v1"
        ));
        assert!(matches!(
            parse_ref("docker://127.0.0.1:5000/team/app:v2").unwrap(),
            Target::Image(airlock_oci::ImageRef::Registry { host, repository, .. })
                if host == "127.0.0.1:5000" && repository == "team/app"
        ));
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            parse_ref(d.path().to_str().unwrap()).unwrap(),
            Target::RootFs(d.path().to_path_buf())
        );
        std::fs::write(d.path().join("oci-layout"), "{}").unwrap();
        assert!(matches!(
            parse_ref(d.path().to_str().unwrap()).unwrap(),
            Target::Image(airlock_oci::ImageRef::Layout { tag: None, .. })
        ));
    }

    #[test]
    fn unknown_transports_and_missing_paths_are_named() {
        let e = parse_ref("podman:app:v1").unwrap_err().to_string();
        assert!(e.contains("podman"), "{e}");
        let e = format!("{:#}", parse_ref("/no/such/dir").unwrap_err());
        assert!(e.contains("/no/such/dir"), "{e}");
    }

    #[test]
    fn ages_read_in_whole_units() {
        assert_eq!(human_age(30), "30 seconds");
        assert_eq!(human_age(3 * 3600), "3 hours");
        assert_eq!(human_age(400 * 86_400), "400 days");
    }
}
