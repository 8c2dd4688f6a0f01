//! Operator commands over OCI objects: `airlock-gate image copy`, `airlock-gate export` and `airlock-gate rebase`.
//!
//! Wiring only: references, stores, copies and archives are `airlock-oci`'s.

use std::path::PathBuf;

use std::sync::Arc;

use airlock_cli::api::RunState;
use airlock_gate::config::GateConfig;
use airlock_gate::rebase::{RebaseOutcome, RebaseRequest, rebase_release};
use airlock_oci::{CopyOptions, ImageRef, LayoutRoot, OpenOptions};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};

/// `airlock-gate image ...`.
#[derive(Subcommand)]
pub enum ImageCommand {
    /// Copy an image or index with its cosign signatures and attestations, keeping every digest.
    ///
    /// References use skopeo's syntax: docker://HOST/REPO:TAG, docker://HOST/REPO@DIGEST, oci:DIR[:TAG],
    /// oci-archive:FILE[:TAG].
    Copy {
        /// Where to copy from.
        src: String,
        /// Where to copy to (without a tag: the source's tag).
        dst: String,
        /// Copy every platform of an index (otherwise only its linux/amd64 image).
        #[arg(long)]
        all: bool,
        /// A registry host (host:port) to reach over plain HTTP; repeat for several.
        #[arg(long = "insecure", value_name = "HOST")]
        insecure: Vec<String>,
    },
}

/// `airlock-gate export`: the releases of one or all apps as one OCI layout archive for an air gap.
#[derive(Args)]
pub struct ExportArgs {
    /// The app whose releases to export (repeatable).
    #[arg(
        long = "app",
        value_name = "APP",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    apps: Vec<String>,
    /// Export every app of the boundary.
    #[arg(long)]
    all: bool,
    /// Only releases with a sequence number greater than this (0: all of them).
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// The archive to write (written to a temporary name, renamed when complete).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// The gate config, for its boundary directory.
    #[arg(long, env = "AIRLOCK_CONFIG", required_unless_present = "boundary")]
    config: Option<PathBuf>,
    /// The boundary directory (an OCI layout per app), instead of the config's.
    #[arg(long)]
    boundary: Option<PathBuf>,
}

/// `airlock-gate rebase`: put an app image on a newer base without rebuilding it.
///
/// Two forms. With `--to`, a plain image rebase: IMAGE (any reference) from `--from` onto `--onto`, written to
/// DST, nothing recorded. Without `--to`, a release rebase on the gate's data directory (`--config`): the newest
/// published release of `--app` (or the run `--run`), or with `--all-on BASE` that of every app built on BASE,
/// is rebased onto the approved base `--onto` of the same lineage and taken through scan, gate, sign and
/// publish as a new release. Bases are then named as in the bases store: `NAME`, `NAME@sha256:...` or
/// `sha256:...`; the old base is inferred when `--from` is omitted.
#[derive(Args)]
pub struct RebaseArgs {
    /// The app image (e.g. docker://HOST/REPO:TAG, oci:DIR:TAG); only with --to.
    #[arg(requires = "to")]
    image: Option<String>,
    /// The base it was built on (its layers must be the image's first layers); inferred for releases.
    #[arg(long = "from", value_name = "OLD_BASE", conflicts_with = "all_on")]
    from: Option<String>,
    /// The newer base of the same lineage.
    #[arg(long = "onto", value_name = "NEW_BASE")]
    onto: String,
    /// Where to write the rebased image (plain image rebase; nothing is recorded).
    #[arg(long = "to", value_name = "DST", requires_all = ["image", "from"], conflicts_with_all = ["app", "run", "all_on"])]
    to: Option<String>,
    /// A registry host (host:port) to reach over plain HTTP; repeat for several.
    #[arg(long = "insecure", value_name = "HOST")]
    insecure: Vec<String>,
    /// Rebase this app's newest published release as a new release.
    #[arg(long, value_name = "APP", conflicts_with = "all_on")]
    app: Option<String>,
    /// Rebase this published run's image as a new release.
    #[arg(long, value_name = "RUN", conflicts_with = "all_on")]
    run: Option<String>,
    /// Rebase the newest release of every app built on this base.
    #[arg(long = "all-on", value_name = "BASE")]
    all_on: Option<String>,
    /// How many apps `--all-on` rebases at once (one wave).
    #[arg(long = "max-parallel", value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    max_parallel: u16,
    /// The gate config (data directory, stacks, boundary) for a release rebase.
    #[arg(long, env = "AIRLOCK_CONFIG")]
    config: Option<PathBuf>,
}

/// Runs `rebase`.
pub async fn run_rebase(args: RebaseArgs) -> anyhow::Result<()> {
    match &args.to {
        Some(to) => rebase_image_to(&args, to).await,
        None => rebase_releases(&args).await,
    }
}

/// The plain form: one image from one base onto another, written to `to`.
async fn rebase_image_to(args: &RebaseArgs, to: &str) -> anyhow::Result<()> {
    let (Some(image_arg), Some(from)) = (&args.image, &args.from) else {
        bail!("a rebase with --to needs IMAGE and --from");
    };
    let options = OpenOptions {
        insecure_hosts: args.insecure.clone(),
        docker_config: None,
    };
    let open = |r: &str| -> anyhow::Result<(airlock_oci::OpenedStore, String)> {
        ImageRef::parse(r)?
            .open_source(&options)
            .with_context(|| format!("opening {r}"))
    };
    let (image, image_ref) = open(image_arg)?;
    let (old, old_ref) = open(from)?;
    let (new, new_ref) = open(&args.onto)?;
    let (dst, dst_tag) = ImageRef::parse(to)?
        .open_destination(&options)
        .with_context(|| format!("opening {to}"))?;
    let report = airlock_oci::rebase_image(
        (image.store(), &image_ref),
        (old.store(), &old_ref),
        (new.store(), &new_ref),
        dst.store(),
        dst_tag.as_deref(),
    )
    .await
    .with_context(|| format!("rebasing {image_arg} onto {}", args.onto))?;
    dst.finish()
        .await
        .with_context(|| format!("writing {to}"))?;
    println!("{}", report.digest);
    println!(
        "  {} base layers replaced by {}, {} app layers kept",
        report.old_base_layers, report.new_base_layers, report.app_layers
    );
    Ok(())
}

/// The release form: one app's (or run's) release, or every app's on a base, as new releases.
async fn rebase_releases(args: &RebaseArgs) -> anyhow::Result<()> {
    if args.image.is_some() {
        bail!(
            "IMAGE is for a plain rebase with --to; name a release with --app or --run, or use --all-on"
        );
    }
    let Some(config_path) = &args.config else {
        bail!(
            "a release rebase works on the gate's data: name its config with --config (or AIRLOCK_CONFIG)"
        );
    };
    let config = GateConfig::load(config_path)?;
    let pipeline = Arc::new(airlock_gate::server::load_pipeline(config).await?);
    let by = "operator (airlock-gate rebase)";
    let Some(all_on) = &args.all_on else {
        if args.app.is_none() && args.run.is_none() {
            bail!("name what to rebase: --app APP, --run RUN or --all-on BASE");
        }
        let req = RebaseRequest {
            app: args.app.clone(),
            run: args.run.clone(),
            from: args.from.clone(),
            onto: args.onto.clone(),
        };
        let outcome = rebase_release(&pipeline, &req, by).await?;
        print_outcome(&outcome);
        if outcome.state != RunState::Published {
            bail!(
                "the rebased release of {} was {}: {}",
                outcome.rebase.app,
                outcome.state.as_str(),
                outcome.error.as_deref().unwrap_or("no reason recorded")
            );
        }
        return Ok(());
    };

    let base = airlock_gate::rebase::resolve_base(&pipeline.config, all_on).await?;
    let runs = airlock_gate::rebase::releases_on(&pipeline, &base).await?;
    if runs.is_empty() {
        println!("no app's newest release is built on {base}; nothing to rebase");
        return Ok(());
    }
    println!(
        "rebasing {} app(s) from {base} onto {} in waves of {}",
        runs.len(),
        args.onto,
        args.max_parallel
    );
    // One row per app: (app, from run, new run, release, outcome).
    let mut rows: Vec<[String; 5]> = Vec::with_capacity(runs.len());
    let mut failures = 0usize;
    for wave in runs.chunks(usize::from(args.max_parallel)) {
        let mut tasks = tokio::task::JoinSet::new();
        for run in wave {
            let req = RebaseRequest {
                app: Some(run.app.clone()),
                run: Some(run.id.clone()),
                from: Some(base.to_string()),
                onto: args.onto.clone(),
            };
            let (pipeline, app, from_run) = (pipeline.clone(), run.app.clone(), run.id.clone());
            tasks.spawn(async move { (app, from_run, rebase_release(&pipeline, &req, by).await) });
        }
        // One app's failure is reported in its row and does not stop the others.
        while let Some(joined) = tasks.join_next().await {
            let (app, from_run, result) = joined.context("a rebase task panicked")?;
            let row = match result {
                Ok(o) if o.state == RunState::Published => [
                    app,
                    from_run,
                    o.rebase.run_id,
                    o.sequence.map_or_else(|| "-".into(), |s| s.to_string()),
                    "published".into(),
                ],
                Ok(o) => {
                    failures += 1;
                    [
                        app,
                        from_run,
                        o.rebase.run_id,
                        o.sequence.map_or_else(|| "-".into(), |s| s.to_string()),
                        format!("{}: {}", o.state.as_str(), o.error.unwrap_or_default()),
                    ]
                }
                Err(e) => {
                    failures += 1;
                    [
                        app,
                        from_run,
                        "-".into(),
                        "-".into(),
                        format!("failed: {e}"),
                    ]
                }
            };
            rows.push(row);
        }
    }
    rows.sort();
    print_table(&rows);
    if failures > 0 {
        bail!("{failures} of {} rebase(s) did not publish", rows.len());
    }
    Ok(())
}

fn print_outcome(o: &RebaseOutcome) {
    let r = &o.rebase;
    println!("run      {}", r.run_id);
    println!(
        "app      {} (from run {}, image {})",
        r.app, r.from_run, r.from_image
    );
    println!("image    {}", r.image);
    println!(
        "base     {} -> {} ({} base layers replaced by {}, {} app layers kept)",
        r.old_base, r.new_base, r.old_base_layers, r.new_base_layers, r.app_layers
    );
    println!(
        "release  {} ({})",
        o.sequence.map_or_else(|| "-".into(), |s| s.to_string()),
        o.state.as_str()
    );
}

fn print_table(rows: &[[String; 5]]) {
    let head = ["APP", "FROM RUN", "NEW RUN", "RELEASE", "OUTCOME"];
    let mut widths = head.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 4 {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out
    };
    println!("{}", line(head));
    for row in rows {
        println!("{}", line(row.each_ref().map(String::as_str)));
    }
}

/// Runs `image copy`.
pub async fn run_image(command: ImageCommand) -> anyhow::Result<()> {
    match command {
        ImageCommand::Copy {
            src,
            dst,
            all,
            insecure,
        } => {
            let options = OpenOptions {
                insecure_hosts: insecure,
                docker_config: None,
            };
            let copy = CopyOptions { all_platforms: all };
            let report = airlock_oci::copy_references(&src, &dst, &options, copy)
                .await
                .with_context(|| format!("copying {src} to {dst}"))?;
            println!("{}", report.digest);
            for tag in &report.attachments {
                println!("  with {tag}");
            }
        }
    }
    Ok(())
}

/// Runs `export`.
pub async fn run_export(args: ExportArgs) -> anyhow::Result<()> {
    let boundary = match (&args.boundary, &args.config) {
        (Some(dir), _) => dir.clone(),
        (None, Some(config)) => GateConfig::load(config)?.boundary_dir(),
        (None, None) => bail!("name the boundary with --config or --boundary"),
    };
    if !boundary.is_dir() {
        bail!("boundary {} does not exist", boundary.display());
    }
    let root = LayoutRoot::open_or_create(&boundary)?;
    let apps = if args.all {
        root.repositories()
            .with_context(|| format!("listing apps in {}", boundary.display()))?
    } else {
        args.apps.clone()
    };
    let entries = airlock_oci::export_releases(&root, &apps, args.since, &args.output)
        .await
        .with_context(|| format!("exporting to {}", args.output.display()))?;
    let releases = entries
        .iter()
        .filter(|e| airlock_oci::release_sequence(&e.tag).is_some())
        .count();
    println!(
        "{} ({releases} releases, {} tags)",
        args.output.display(),
        entries.len()
    );
    for e in &entries {
        println!("  {}:{} {}", e.repository, e.tag, e.digest);
    }
    Ok(())
}
