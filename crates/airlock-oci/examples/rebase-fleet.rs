//! `rebase-fleet setup|run HOST N [PARALLEL]`: the fleet rebase of `bench/rebase.sh`, without the gate.
//!
//! `setup` pushes base v1 (`bench/base:v1`: a busybox layer and an 8 MiB "os" layer) and N app images
//! (`bench/app-NNN:v1`: base v1 plus one app layer of their own) to the plain-HTTP registry HOST; the bench
//! builds base v2 into a local layout too. `run` pushes base v2 (the busybox layer kept, a new "os" layer and a
//! "patch" layer), then rebases every app image onto it in place (`bench/app-NNN:rebased`), PARALLEL at a
//! time, and prints the wall time of that phase and the digests of v2's new layers (for the bench to tell
//! them apart in the registry's access log).

use std::time::Instant;

use airlock_oci::{
    Compression, Digest, Layer, LayerBuilder, RegistryAuth, RegistryStore, Store, read_image,
    rebase_image, write_image,
};

/// Bytes that do not compress away, seeded, so each layer is distinct and reproducible.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn layer(files: Vec<(&str, Vec<u8>)>) -> Result<Layer, airlock_oci::Error> {
    let mut b = LayerBuilder::new(1_700_000_000);
    for (path, data) in files {
        b.add_file(path, 0o755, 0, 0, data)?;
    }
    b.finish(Compression::Gzip)
}

/// Pushes an image made of `layers` (each with its bytes, or `None` when the repository has it) as `tag`.
async fn push(
    store: &dyn Store,
    layers: &[(&Layer, bool)],
    tag: &str,
) -> Result<Digest, airlock_oci::Error> {
    let mut config = airlock_oci::ImageConfig::new("amd64", "linux");
    config.rootfs.diff_ids = layers.iter().map(|(l, _)| l.diff_id.clone()).collect();
    config.history = layers
        .iter()
        .map(|(l, _)| airlock_oci::History {
            created_by: Some(format!("layer {}", l.diff_id)),
            ..Default::default()
        })
        .collect();
    let parts: Vec<(airlock_oci::Descriptor, Option<&[u8]>)> = layers
        .iter()
        .map(|(l, upload)| (l.descriptor.clone(), upload.then_some(&l.data[..])))
        .collect();
    write_image(store, &config, &parts, Some(tag)).await
}

fn base_layers(version: u64) -> Result<Vec<Layer>, Box<dyn std::error::Error>> {
    let busybox = std::fs::read("/bin/busybox")?;
    let mut layers = vec![
        layer(vec![("/bin/busybox", busybox)])?,
        layer(vec![("/usr/lib/os", noise(version, 8 << 20))])?,
    ];
    if version > 1 {
        layers.push(layer(vec![(
            "/etc/patch",
            format!("base v{version}\n").into_bytes(),
        )])?);
    }
    Ok(layers)
}

fn store(host: &str, repo: &str) -> Result<RegistryStore, airlock_oci::Error> {
    RegistryStore::new(host, repo, RegistryAuth::Anonymous, true)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: rebase-fleet setup|run HOST N [PARALLEL]";
    let (mode, host, n) = match args.as_slice() {
        [mode, host, n, ..] => (mode.as_str(), host.as_str(), n.parse::<usize>()?),
        _ => return Err(usage.into()),
    };
    let parallel: usize = args.get(3).map_or(Ok(16), |p| p.parse())?;
    let base = store(host, "bench/base")?;
    match mode {
        "setup" => {
            let v1 = base_layers(1)?;
            let refs: Vec<(&Layer, bool)> = v1.iter().map(|l| (l, true)).collect();
            push(&base, &refs, "v1").await?;
            for i in 0..n {
                let app = store(host, &format!("bench/app-{i:03}"))?;
                // The base's layers come across by mount, as a build on the base would push them.
                let v1_image = read_image(&base, "v1").await?;
                let descs: Vec<&airlock_oci::Descriptor> =
                    v1_image.manifest.layers.iter().collect();
                for d in &descs {
                    if !app.has_blob(&d.digest).await? {
                        app.mount_blob(&d.digest, "bench/base").await?;
                    }
                }
                let own = layer(vec![("/app/bin", noise(1000 + i as u64, 64 << 10))])?;
                let mut layers: Vec<(&Layer, bool)> = v1.iter().map(|l| (l, false)).collect();
                layers.push((&own, true));
                push(&app, &layers, "v1").await?;
            }
            println!("pushed base v1 and {n} app images");
        }
        "run" => {
            let v2 = base_layers(2)?;
            let started = Instant::now();
            let refs: Vec<(&Layer, bool)> = v2.iter().map(|l| (l, true)).collect();
            push(&base, &refs, "v2").await?;
            let pushed_base = started.elapsed();
            let mut running = futures::stream::FuturesUnordered::new();
            let mut next = 0usize;
            let mut done = 0usize;
            let rebase_one = |i: usize| async move {
                let app = store(host, &format!("bench/app-{i:03}")).map_err(|e| e.to_string())?;
                let base = store(host, "bench/base").map_err(|e| e.to_string())?;
                rebase_image(
                    (&app, "v1"),
                    (&base, "v1"),
                    (&base, "v2"),
                    &app,
                    Some("rebased"),
                )
                .await
                .map_err(|e| format!("app-{i:03}: {e}"))
            };
            use futures::StreamExt;
            while next < n.min(parallel) {
                running.push(rebase_one(next));
                next += 1;
            }
            while let Some(result) = running.next().await {
                result?;
                done += 1;
                if next < n {
                    running.push(rebase_one(next));
                    next += 1;
                }
            }
            let total = started.elapsed();
            println!(
                "rebased {done} app images in {:.2} s (base v2 pushed in {:.2} s, {parallel} at a time)",
                total.as_secs_f64(),
                pushed_base.as_secs_f64()
            );
            let v1_digests: Vec<String> = base_layers(1)?
                .iter()
                .map(|l| l.descriptor.digest.to_string())
                .collect();
            for l in &v2 {
                let d = l.descriptor.digest.to_string();
                if !v1_digests.contains(&d) {
                    println!("new-base-layer {d}");
                }
            }
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
