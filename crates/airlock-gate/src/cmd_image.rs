//! Operator commands over OCI objects: `airlock-gate image copy` and `airlock-gate export`.
//!
//! Wiring only: references, stores, copies and archives are `airlock-oci`'s.

use std::path::PathBuf;

use airlock_gate::config::GateConfig;
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
#[derive(Args)]
pub struct RebaseArgs {
    /// The app image (e.g. docker://HOST/REPO:TAG, oci:DIR:TAG).
    image: String,
    /// The base it was built on (its layers must be the image's first layers).
    #[arg(long = "from", value_name = "OLD_BASE")]
    from: String,
    /// The newer base of the same lineage.
    #[arg(long = "onto", value_name = "NEW_BASE")]
    onto: String,
    /// Where to write the rebased image.
    #[arg(long = "to", value_name = "DST")]
    to: String,
    /// A registry host (host:port) to reach over plain HTTP; repeat for several.
    #[arg(long = "insecure", value_name = "HOST")]
    insecure: Vec<String>,
}

/// Runs `rebase`.
pub async fn run_rebase(args: RebaseArgs) -> anyhow::Result<()> {
    let options = OpenOptions {
        insecure_hosts: args.insecure.clone(),
        docker_config: None,
    };
    let open = |r: &str| -> anyhow::Result<(airlock_oci::OpenedStore, String)> {
        ImageRef::parse(r)?
            .open_source(&options)
            .with_context(|| format!("opening {r}"))
    };
    let (image, image_ref) = open(&args.image)?;
    let (old, old_ref) = open(&args.from)?;
    let (new, new_ref) = open(&args.onto)?;
    let (dst, dst_tag) = ImageRef::parse(&args.to)?
        .open_destination(&options)
        .with_context(|| format!("opening {}", args.to))?;
    let report = airlock_oci::rebase_image(
        (image.store(), &image_ref),
        (old.store(), &old_ref),
        (new.store(), &new_ref),
        dst.store(),
        dst_tag.as_deref(),
    )
    .await
    .with_context(|| format!("rebasing {} onto {}", args.image, args.onto))?;
    dst.finish()
        .await
        .with_context(|| format!("writing {}", args.to))?;
    println!("{}", report.digest);
    println!(
        "  {} base layers replaced by {}, {} app layers kept",
        report.old_base_layers, report.new_base_layers, report.app_layers
    );
    Ok(())
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
            let src_ref = ImageRef::parse(&src)?;
            let dst_ref = ImageRef::parse(&dst)?;
            let (source, reference) = src_ref
                .open_source(&options)
                .with_context(|| format!("opening {src}"))?;
            let (destination, dst_tag) = dst_ref
                .open_destination(&options)
                .with_context(|| format!("opening {dst}"))?;
            // A destination named without a tag takes the source's tag (like `skopeo copy` to oci:DIR).
            let dst_tag = dst_tag.or_else(|| src_ref.tag().map(str::to_string));
            let report = airlock_oci::copy_with_attachments(
                source.store(),
                destination.store(),
                &reference,
                dst_tag.as_deref(),
                CopyOptions { all_platforms: all },
            )
            .await
            .with_context(|| format!("copying {src} to {dst}"))?;
            destination
                .finish()
                .await
                .with_context(|| format!("writing {dst}"))?;
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
