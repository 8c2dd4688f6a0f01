//! Matching speed: 10,000 packages against the full imported OSV database (run by bench/scan.sh).
//!
//! The inventory mixes every package the database knows (PyPI and crates.io names, at versions
//! both affected and not) with names it does not know, as a real image would; it is matched five
//! times against a freshly imported database and the median is printed.
//!
//! Usage: bench_match VULNDB_SOURCE_DIR   (the directory holding PyPI.zip and crates.io.zip)

use std::time::Instant;

use airlock_scan::{Ecosystem, Inventory, Package, VulnDb, match_inventory, purl};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let source = std::env::args()
        .nth(1)
        .ok_or("usage: bench_match VULNDB_SOURCE_DIR")?;
    let source = std::path::Path::new(&source);
    let dir = tempfile::tempdir()?;
    let db = VulnDb::open(dir.path())?;
    let start = Instant::now();
    db.import(&source.join("PyPI.zip"))?;
    db.import(&source.join("crates.io.zip"))?;
    let import = start.elapsed();

    // Known package names, read back from the export zips.
    let mut known: Vec<(Ecosystem, String)> = Vec::new();
    for (zip, eco, osv) in [
        ("PyPI.zip", Ecosystem::PyPI, "PyPI"),
        ("crates.io.zip", Ecosystem::CratesIo, "crates.io"),
    ] {
        let mut z = zip::ZipArchive::new(std::fs::File::open(source.join(zip))?)?;
        for i in 0..z.len() {
            let rec: airlock_scan::OsvRecord = serde_json::from_reader(z.by_index(i)?)?;
            for a in rec.affected.iter().filter(|a| a.package.ecosystem == osv) {
                known.push((eco, a.package.name.clone()));
            }
        }
    }
    known.sort();
    known.dedup();

    let versions = ["0.1.0", "1.0.0", "2.7.1", "0.1.45", "3.1.4", "10.2.3"];
    let mut packages = Vec::with_capacity(10_000);
    let mut i = 0usize;
    while packages.len() < 10_000 {
        let (eco, name) = if i % 3 == 2 || known.is_empty() {
            (Ecosystem::PyPI, format!("unknown-package-{i}"))
        } else {
            known[i % known.len()].clone()
        };
        let version = versions[i % versions.len()];
        packages.push(Package {
            purl: purl(eco, &name, version, None, None),
            name,
            version: version.to_string(),
            ecosystem: eco,
            distro: None,
            layer: None,
            path: format!("/bench/{i}"),
            source: None,
            local: false,
        });
        i += 1;
    }
    let inv = Inventory {
        os: None,
        packages,
        warnings: Vec::new(),
    };

    // How much of it is reading the database: every distinct package looked up once.
    let start = Instant::now();
    let mut records = 0;
    for (eco, name) in &known {
        records += db.lookup(&eco.osv_name(None), name)?.len();
    }
    let lookups = start.elapsed();

    let mut times = Vec::new();
    let mut findings = 0;
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    for _ in 0..runs {
        let start = Instant::now();
        findings = match_inventory(&inv, &db)?.len();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "import of both exports: {:.0} ms; {} distinct known packages",
        import.as_secs_f64() * 1000.0,
        known.len()
    );
    println!(
        "reading the records of every known package: {:.1} ms ({records} records)",
        lookups.as_secs_f64() * 1000.0
    );
    println!(
        "matching 10,000 packages: median {median:.1} ms over {runs} runs ({findings} findings; target < 200 ms)"
    );
    Ok(())
}
